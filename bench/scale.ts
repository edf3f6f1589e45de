/**
 * A very large restore in the BUILT extension: `npm run bench:scale -- --keys N [--rooms R] [--kills K]`.
 * The backup is bench/scale-fill.ts's (one user joined to R rooms, N entries; cached in
 * `.cache/bench-scale/<N>-<R>/`, so filling happens once). The current source is built into
 * `.cache/bench-scale/build` (dist/ is left alone), loaded in headless Chromium with a fresh profile
 * (an empty vault); from its popup page `account.login` (a new device), `vault.unlock` with the
 * recovery key, then the clock runs from sending `restore.start` until `status.get` (polled every
 * 250 ms) reports phase `done`. Afterwards `restored` must be N and `failed` 0.
 *
 * During the run:
 * - kills: the worker is stopped K times with `ServiceWorker.stopAllWorkers` over CDP, when the
 *   restore's count passes N·k/(K+1) (even intervals of progress), and woken at once by the next
 *   `status.get` (the worker resumes a running restore whenever it starts; its alarm would too).
 *   A kill counts as survived when the worker's bootId changed after it and the restore still ends
 *   done with exact counts;
 * - the worker's JS heap (`Runtime.getHeapUsage` every 200 ms, bench/heap-probe.ts; the probe
 *   re-attaches to the restarted worker);
 * - Synapse's CPU time (/proc) and RSS (VmHWM reset through clear_refs, VmRSS sampled every 200 ms);
 * - a progress line every `--every` seconds: keys done, keys/s over the last interval and overall.
 * Whole download or room by room: read from Synapse's access log (`GET …/room_keys/keys?` against
 * `GET …/room_keys/keys/{roomId}` lines written during the run).
 *
 * Then, unless `--no-serve`, with the vault holding the whole backup (bench/scale-serve.ts): serving
 * ONE session per `vault_getRoomKeys` from a page on an allowed origin (`--requests`, timed in the
 * page; sessions drawn from 20 rooms' entries in Synapse; every answer must hold its key), the popup
 * opened `--opens` times until its status is rendered (also before the restore, with the vault
 * empty, for comparison), `status.get` round trips, and the disk:
 * `navigator.storage.estimate()` and the profile's IndexedDB directories before `restore.start`, at
 * done and a minute or more later, per key, against Synapse's own entry JSON. For the site the extension is
 * loaded from a copy whose manifest grants `http://localhost/*`. Nothing secret is printed.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Page } from 'playwright-core';
import type { RestoreSummary, Result, VaultStatus } from '../src/shared/messages.ts';
import { buildExtension } from '../scripts/build.ts';
import { chromiumPath, launchExtension, repoRoot, type ExtensionBrowser } from '../test/harness/browser.ts';
import { allowSiteViaPopup, callVault, startSite } from '../test/harness/page-site.ts';
import { SYNAPSE_VERSION } from '../test/harness/synapse.ts';
import { startSampling, workerProbe } from './heap-probe.ts';
import { processCpuMs, synapsePid } from './proc.ts';
import { fillScaleBackup, type ScaleBackup } from './scale-fill.ts';
import {
  CONTROL_EVERY, drawRefs, findsVault, localhostGrantedCopy, watchIndexedDb, openPopups, readDisk, sampleServerEntries, sampleVaultRows, SERVE_GAP_MS, serveOneByOne, spread, statusRoundTrips,
  type DirSample, type DiskReading, type PopupRun, type ServeRun, type Spread,
} from './scale-serve.ts';

class ScaleBenchError extends Error {
  override readonly name = 'ScaleBenchError';
  constructor(readonly kind: 'argument' | 'extension' | 'verify', message: string) {
    super(message);
  }
}

const usage = `npm run bench:scale -- --keys N [options]
  --keys N          entries in the backup (default 100000)
  --rooms R         rooms (default 100 below 1,000,000 keys, 1000 from there)
  --kills K         times the service worker is stopped during the restore (default 5; 0 = none)
  --every S         seconds between progress lines (default 5)
  --no-build        load .cache/bench-scale/build/chrome as it is
  --no-heap         do not sample the worker's heap
  --no-serve        after the restore, do not measure serving, the popup and disk
  --requests N      one-session vault_getRoomKeys requests timed after the restore (default 500, after 20 warm-up)
  --opens N         popup.html opens timed, before and after the restore (default 10)`;

const s = (ms: number): string => (ms / 1000).toFixed(1);
const int = (n: number): string => Math.round(n).toLocaleString('en');
const mb = (bytes: number): string => (bytes / 1e6).toFixed(0);
const log = (line: string): void => { process.stderr.write(`  … ${line}\n`); };
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function readOptions() {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        keys: { type: 'string', default: '100000' }, rooms: { type: 'string' }, kills: { type: 'string', default: '5' },
        every: { type: 'string', default: '5' }, 'no-build': { type: 'boolean', default: false }, 'no-heap': { type: 'boolean', default: false },
        'no-serve': { type: 'boolean', default: false }, requests: { type: 'string', default: '500' }, opens: { type: 'string', default: '10' },
        help: { type: 'boolean', default: false },
      },
    }));
  } catch (e) {
    throw new ScaleBenchError('argument', `${(e as Error).message}\n${usage}`);
  }
  const whole = (text: string, name: string, min: number): number => {
    const n = Number(text);
    if (!Number.isSafeInteger(n) || n < min) throw new ScaleBenchError('argument', `--${name} must be a whole number ≥ ${min}, got ${JSON.stringify(text)}`);
    return n;
  };
  const keys = whole(values.keys, 'keys', 1);
  return {
    help: values.help,
    keys,
    rooms: values.rooms === undefined ? (keys >= 1_000_000 ? 1000 : 100) : whole(values.rooms, 'rooms', 1),
    kills: whole(values.kills, 'kills', 0),
    everyMs: whole(values.every, 'every', 1) * 1000,
    build: !values['no-build'],
    heap: !values['no-heap'],
    serve: !values['no-serve'],
    requests: whole(values.requests, 'requests', 1),
    opens: whole(values.opens, 'opens', 1),
  };
}

// ---------------------------------------------------------------------------------------------
// Synapse: memory, and what its access log says about the run

function procStatusBytes(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) * 1024 : 0;
}

function watchSynapseMemory(pid: number): { current(): number; stop(): { before: number; peak: number; hwmReset: boolean } } {
  let hwmReset = true;
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
  } catch {
    hwmReset = false;
  }
  const before = procStatusBytes(pid, 'VmRSS');
  let peak = before;
  let last = before;
  const timer = setInterval(() => { last = procStatusBytes(pid, 'VmRSS'); peak = Math.max(peak, last); }, 200);
  return {
    current: () => last,
    stop() {
      clearInterval(timer);
      return { before, peak: Math.max(peak, hwmReset ? procStatusBytes(pid, 'VmHWM') : 0, procStatusBytes(pid, 'VmRSS')), hwmReset };
    },
  };
}

/** `ok`: answered 200 in full; `cut`: 200 but the client went away before the end (Synapse's "200!"). */
interface KeyRequests { whole: number; wholeOk: number; wholeCut: number; rooms: number; roomsOk: number; joinedRooms: number; wholeLines: string[] }

/** The key-backup GETs Synapse logged after byte `from` of its log (whole download, per room). */
function keyRequestsSince(logPath: string, from: number): KeyRequests {
  const text = readFileSync(logPath).subarray(from).toString('utf8');
  const found: KeyRequests = { whole: 0, wholeOk: 0, wholeCut: 0, rooms: 0, roomsOk: 0, joinedRooms: 0, wholeLines: [] };
  for (const line of text.split('\n')) {
    if (!line.includes('Processed request')) continue;
    const tail = line.slice(line.indexOf('Processed request'));
    const ok = /\s200\s/.test(tail);
    const cut = /\s200!\s/.test(tail);
    if (line.includes('"GET /_matrix/client/v3/room_keys/keys?')) {
      found.whole++;
      if (ok) found.wholeOk++;
      if (cut) found.wholeCut++;
      found.wholeLines.push(line.slice(line.indexOf('Processed request')));
    } else if (line.includes('"GET /_matrix/client/v3/room_keys/keys/')) {
      found.rooms++;
      if (ok) found.roomsOk++;
    } else if (line.includes('"GET /_matrix/client/v3/joined_rooms')) {
      found.joinedRooms++;
    }
  }
  return found;
}

// ---------------------------------------------------------------------------------------------
// The extension

type Call = <T>(message: Record<string, unknown>) => Promise<T>;

function caller(page: Page): Call {
  return async <T>(message: Record<string, unknown>): Promise<T> => {
    const answer = await page.evaluate((m) => chrome.runtime.sendMessage(m), message) as Result<T> | undefined;
    if (!answer?.ok) {
      const error = answer ? `${answer.error.kind}: ${answer.error.message}` : 'no answer';
      throw new ScaleBenchError('extension', `${String(message.type)} failed: ${error}`);
    }
    return answer.value;
  };
}

// ---------------------------------------------------------------------------------------------
// After the restore: serving one key, the popup, and the disk (bench/scale-serve.ts)

const SERVE_WARMUP = 20;
const SAMPLE_ROOMS = 20;
const ms = (v: number): string => v.toFixed(v < 10 ? 1 : 0);
const spreadText = (d: Spread): string => `p50 ${ms(d.p50)} ms, p95 ${ms(d.p95)} ms, p99 ${ms(d.p99)} ms, max ${ms(d.max)} ms (min ${ms(d.min)}, mean ${ms(d.mean)})`;
const median = (values: readonly number[]): number => spread(values).p50;

async function serveAndDisk(run: {
  ext: ExtensionBrowser; page: Page; backup: ScaleBackup; n: number; requests: number; opens: number; diskFresh: DiskReading; diskBefore: DiskReading; popupsEmpty: PopupRun;
}): Promise<void> {
  const { ext, backup, n } = run;
  const diskAfter = await readDisk(run.page, ext.userDataDir);
  const doneAt = performance.now();
  const loadBefore = loadavg()[0]!;
  // The restore's popup polls status.get every second: closed, so that nothing else asks the worker.
  await run.page.close();
  log(`sampling ${SAMPLE_ROOMS} rooms' entries from Synapse`);
  const server = await sampleServerEntries(backup.synapse, backup.user, backup.version, backup.roomIds, SAMPLE_ROOMS);
  if (server.refs.length < run.requests + SERVE_WARMUP) log(`only ${int(server.refs.length)} sessions sampled: some are asked more than once`);
  const refs = drawRefs(server.refs, run.requests + SERVE_WARMUP);
  while (refs.length < run.requests + SERVE_WARMUP) refs.push(...drawRefs(server.refs, run.requests + SERVE_WARMUP - refs.length));

  const site = await startSite();
  // On localhost, the name the extension's copy holds the host permission for (scale-serve.ts).
  const origin = `http://localhost:${new URL(site.origin).port}`;
  let serve: ServeRun;
  let dirSamples: DirSample[] = [];
  try {
    await (await allowSiteViaPopup(ext, origin, ['read'])).close();
    const sitePage = await ext.context.newPage();
    await sitePage.goto(origin);
    if (!(await findsVault(sitePage, 5000))) throw new ScaleBenchError('verify', `the allowed page ${origin} found no vault`);
    const status = await callVault(sitePage, 'vault_status');
    if (status.result?.state !== 'unlocked' || !status.result.scopes?.includes('read')) {
      throw new ScaleBenchError('verify', `the allowed page sees the vault ${status.error ? `failing (${status.error.code})` : `${String(status.result?.state)} with scopes ${JSON.stringify(status.result?.scopes)}`}, expected unlocked with read`);
    }
    log(`serving ${int(run.requests)} + ${SERVE_WARMUP} warm-up requests of one session each, one every ${SERVE_GAP_MS} ms`);
    const dirWatch = watchIndexedDb(ext.userDataDir, 1000);
    try {
      serve = await serveOneByOne(sitePage, refs, SERVE_WARMUP, SERVE_GAP_MS);
    } finally {
      dirSamples = dirWatch.stop();
    }
    await sitePage.close();
  } finally {
    await site.close();
  }

  log(`opening the popup ${run.opens} times`);
  const popups = await openPopups(ext.context, ext.extensionId, run.opens);
  const probe = await ext.openPage('popup.html');
  await probe.locator('main[data-screen]:not([data-screen=loading])').waitFor({ timeout: 30_000 });
  const polled = await statusRoundTrips(probe, 50, false);
  const refreshed = await statusRoundTrips(probe, 10, true);
  const diskLater = await readDisk(probe, ext.userDataDir);
  const laterS = (performance.now() - doneAt) / 1000;
  const rows = await sampleVaultRows(probe, 1000);
  await probe.close();
  const loadAfter = loadavg()[0]!;

  const served = spread(serve.times);
  const entry = spread(server.entryBytes);
  const perKey = (a: number, b: number): number => (a - b) / n;
  const mbText = (b: number): string => (b / 1e6).toFixed(1);
  const usageKey = perKey(diskAfter.usage, run.diskBefore.usage);
  const dirKey = perKey(diskAfter.dirBytes, run.diskBefore.dirBytes);
  const idbText = (d: DiskReading): string => (d.indexedDB === null ? '' : ` (indexedDB ${mbText(d.indexedDB)})`);
  console.log('');
  console.log(`serve, popup and disk after the restore (${int(n)} keys in the vault; load average ${loadBefore.toFixed(1)} before, ${loadAfter.toFixed(1)} after)`);
  console.log(`  serve: ${int(served.n)} vault_getRoomKeys of ONE session each from a page on ${origin} allowed for read, timed in the page around provider.request;`
    + ` one every ${SERVE_GAP_MS} ms after ${SERVE_WARMUP} warm-up; sessions at random from ${int(server.entries)} entries of ${server.rooms} rooms; every answer held its key`);
  console.log(`    ${spreadText(served)} — target p99 < 50 ms: ${served.p99 < 50 ? 'PASS' : 'MISSED'} · ${s(serve.totalMs)} s in all`);
  console.log(`    control, a vault_status after every ${CONTROL_EVERY} key requests (the same trip, no key lookup): ${int(serve.controls.length)} ${spreadText(spread(serve.controls))}`);
  const slowest = serve.times.map((t, i) => ({ t, at: serve.startedAt[i]! })).sort((a, b) => b.t - a.t).slice(0, 8);
  console.log(`    slowest (at s from the first request): ${slowest.map((x) => `${ms(x.t)} ms at ${s(x.at)} s`).join(', ')}; over ${int(served.n)}: ≥ 20 ms ${serve.times.filter((t) => t >= 20).length}, ≥ 50 ms ${serve.times.filter((t) => t >= 50).length}`);
  // LevelDB compactions show as the directory's files being replaced: print where its size or file count moved.
  const moves = dirSamples.filter((x, i) => i === 0 || i === dirSamples.length - 1
    || Math.abs(x.bytes - dirSamples[i - 1]!.bytes) > 1e6 || x.files !== dirSamples[i - 1]!.files);
  console.log(`    IndexedDB dirs during the requests (s: MB, files), where they moved: ${moves.slice(0, 30).map((x) => `${s(x.t)}: ${(x.bytes / 1e6).toFixed(1)}, ${x.files}`).join(' · ')}${moves.length > 30 ? ` · … (${moves.length - 30} more)` : ''}`);
  console.log(`  popup: popup.html → status rendered (main[data-screen] past loading; screen ${[...new Set(popups.screens)].join(', ')}), ${popups.inPageMs.length} opens:`
    + ` from navigation start median ${ms(median(popups.inPageMs))} ms, max ${ms(Math.max(...popups.inPageMs))} ms;`
    + ` from new tab (Node) median ${ms(median(popups.fromTabMs))} ms, max ${ms(Math.max(...popups.fromTabMs))} ms — target < 200 ms: ${Math.max(...popups.inPageMs) < 200 ? 'PASS' : median(popups.inPageMs) < 200 ? 'PASS at the median, not at the max' : 'MISSED'}`);
  console.log(`    of which (medians) navigation start → popup.html's first byte ${ms(median(popups.responseMs))} ms, → the app's first render (loading screen) ${ms(median(popups.mountedMs))} ms`
    + ` (max ${ms(Math.max(...popups.mountedMs))} ms), first render → status ${ms(median(popups.inPageMs.map((t, i) => t - popups.mountedMs[i]!)))} ms`);
  const empty = run.popupsEmpty;
  console.log(`    the same with the vault empty (after vault.unlock, before restore.start): from navigation start median ${ms(median(empty.inPageMs))} ms, max ${ms(Math.max(...empty.inPageMs))} ms;`
    + ` first render ${ms(median(empty.mountedMs))} ms, first render → status ${ms(median(empty.inPageMs.map((t, i) => t - empty.mountedMs[i]!)))} ms (screen ${[...new Set(empty.screens)].join(', ')})`);
  console.log(`    status.get round trip from an extension page: ${polled.length} as polled (refresh false) ${spreadText(spread(polled))}`);
  console.log(`    ${refreshed.length} as the popup opens (refresh true: vault counts and the server's backup) ${spreadText(spread(refreshed))}`);
  console.log(`  disk: navigator.storage.estimate() usage MB: fresh profile ${mbText(run.diskFresh.usage)}${idbText(run.diskFresh)}, before restore.start ${mbText(run.diskBefore.usage)}${idbText(run.diskBefore)},`
    + ` at done ${mbText(diskAfter.usage)}${idbText(diskAfter)}, ${s(laterS * 1000)} s later ${mbText(diskLater.usage)}${idbText(diskLater)}`);
  console.log(`    profile's IndexedDB dirs (${diskAfter.dirs.join(', ') || 'none found'}) MB: before ${mbText(run.diskBefore.dirBytes)}, at done ${mbText(diskAfter.dirBytes)} (allocated ${mbText(diskAfter.dirAllocated)}),`
    + ` later ${mbText(diskLater.dirBytes)} (allocated ${mbText(diskLater.dirAllocated)})`);
  const usageLaterKey = perKey(diskLater.usage, run.diskBefore.usage);
  const dirLaterKey = perKey(diskLater.dirBytes, run.diskBefore.dirBytes);
  console.log(`    bytes per key (after − before restore.start) ÷ ${int(n)}: at done estimate ${int(usageKey)}, dirs ${int(dirKey)}; later estimate ${int(usageLaterKey)}, dirs ${int(dirLaterKey)}`);
  console.log(`    Synapse's entry JSON (${int(entry.n)} entries of ${server.rooms} rooms): mean ${int(entry.mean)} bytes (min ${int(entry.min)}, max ${int(entry.max)}); its room answers ${int(server.answerBytesPerEntry)} bytes per entry`);
  console.log(`    a stored session (${int(rows.rows)} read, in rows and pages): ${int(rows.rowBytes)} bytes of its own (member names and values), of which the envelope ${int(rows.envelopeBytes)};`
    + ` its ids ${int(rows.keyChars)} chars, again in the 'ids' index entry (pages) or the key and 'pending' index entry (rows); members ${rows.fields.join(', ')}`);
  const ratio = usageLaterKey / entry.mean;
  console.log(`    vault bytes per key ÷ entry bytes: later estimate ${ratio.toFixed(2)}×, dirs ${(dirLaterKey / entry.mean).toFixed(2)}× (at done ${(usageKey / entry.mean).toFixed(2)}×, ${(dirKey / entry.mean).toFixed(2)}×) — target ≤ 1.5×: ${ratio <= 1.5 ? 'PASS' : 'MISSED'}`);
}

interface TimelinePoint { t: number; done: number; heap: number; synapseRss: number; synapseCpuMs: number }

async function main(): Promise<void> {
  const options = readOptions();
  if (options.help) { console.log(usage); return; }
  const out = join(repoRoot, '.cache/bench-scale/build');
  if (options.build) {
    const t = performance.now();
    await buildExtension(out);
    log(`built the current source into ${out} in ${s(performance.now() - t)} s`);
  }
  const extensionPath = join(out, 'chrome');

  const backup = await fillScaleBackup({ keys: options.keys, rooms: options.rooms, log });
  const { synapse } = backup;
  const onSignal = (): void => { void synapse.stop().finally(() => process.exit(130)); };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const chromiumVersion = spawnSync(chromiumPath(), ['--version'], { encoding: 'utf8' }).stdout.trim();
  const head = `${new Date().toISOString()} · Synapse ${SYNAPSE_VERSION} (SQLite) · ${chromiumVersion} headless · Node ${process.version}`;
  console.log(head);
  console.log(`backup: ${int(backup.count)} keys over ${int(backup.roomIds.length)} rooms (${backup.cached ? 'cached' : 'filled now'}) · kills planned: ${options.kills}`);
  const n = backup.count;
  // Serving needs a site the user allowed: the build's copy with localhost's host permission (scale-serve.ts).
  const tmp = options.serve ? mkdtempSync(join(tmpdir(), 'mkv-bench-scale-')) : null;
  const ext = await launchExtension({ extensionPath: tmp ? localhostGrantedCopy(extensionPath, join(tmp, 'chrome')) : extensionPath });
  try {
    const pid = synapsePid(synapse);
    const page = await ext.openPage('popup.html');
    const call = caller(page);
    const diskFresh = options.serve ? await readDisk(page, ext.userDataDir) : null;
    await call({ type: 'account.login', homeserver: synapse.baseUrl, user: backup.user.localpart, password: backup.user.password });
    await call({ type: 'vault.unlock', input: backup.recoveryKey });
    const diskBefore = options.serve ? await readDisk(page, ext.userDataDir) : null;
    // The same popup opens with the vault still empty: what the vault's size adds, if anything.
    const popupsEmpty = options.serve ? await openPopups(ext.context, ext.extensionId, options.opens) : null;
    const sampling = await startSampling(options.heap ? await workerProbe(ext.context, page, ext.extensionId) : null);
    let lastHeap = 0;
    // A second, light probe for the progress lines (the sampler keeps only its peak).
    const lineProbe = options.heap ? await workerProbe(ext.context, page, ext.extensionId) : null;
    const logOffset = statSync(synapse.logPath).size;
    const memory = watchSynapseMemory(pid);
    const cpu0 = processCpuMs(pid);

    const bootIds: string[] = [(await call<VaultStatus>({ type: 'status.get' })).worker.bootId];
    const kills: Array<{ at: number; done: number; restartedAfterMs: number | null; bootBefore: string }> = [];
    const killAt = Array.from({ length: options.kills }, (_, k) => Math.floor((n * (k + 1)) / (options.kills + 1)));
    const timeline: TimelinePoint[] = [];
    const start = performance.now();
    const deadline = start + 600_000 + n * 5;
    let restore: RestoreSummary | null = await call<RestoreSummary>({ type: 'restore.start' });
    let lastLine = { t: 0, done: 0 };
    let firstKeyAt: number | null = null;
    let waits = 0;
    for (;;) {
      if (restore?.phase === 'done') break;
      if (restore && ['failed', 'cancelled', 'locked'].includes(restore.phase)) {
        throw new ScaleBenchError('extension', `the restore ended ${restore.phase} after ${int(restore.done)} of ${int(n)}${restore.lastError ? `: ${restore.lastError.kind}: ${restore.lastError.message}` : ''}`);
      }
      if (restore?.phase === 'waiting') waits++;
      const now = performance.now();
      if (now > deadline) throw new ScaleBenchError('extension', `the restore was not done after ${s(now - start)} s (${int(restore?.done ?? 0)} of ${int(n)})`);
      const done = restore?.done ?? 0;
      if (firstKeyAt === null && done > 0) firstKeyAt = now - start;
      if (now - start - lastLine.t >= options.everyMs) {
        const t = now - start;
        if (lineProbe) lastHeap = (await lineProbe.read().catch(() => null))?.usedSize ?? lastHeap;
        const point: TimelinePoint = { t, done, heap: lastHeap, synapseRss: memory.current(), synapseCpuMs: processCpuMs(pid) - cpu0 };
        timeline.push(point);
        log(`${s(t)} s: ${int(done)} / ${int(n)} · ${int(((done - lastLine.done) / (t - lastLine.t)) * 1000)} keys/s now, ${int((done / t) * 1000)} overall`
          + ` · phase ${restore?.phase ?? '?'} · worker heap ${mb(lastHeap)} MB · Synapse RSS ${mb(point.synapseRss)} MB, CPU ${s(point.synapseCpuMs)} s · kills ${kills.length}`);
        lastLine = { t, done };
      }
      if (kills.length < killAt.length && done >= killAt[kills.length]! && restore?.phase === 'running') {
        const bootBefore = bootIds.at(-1)!;
        kills.push({ at: now - start, done, restartedAfterMs: null, bootBefore });
        await ext.stopWorker();
        log(`kill ${kills.length}: stopped the worker at ${s(now - start)} s, ${int(done)} done`);
      }
      await sleep(250);
      const status = await call<VaultStatus>({ type: 'status.get' }); // wakes a stopped worker
      if (status.worker.bootId !== bootIds.at(-1)) {
        bootIds.push(status.worker.bootId);
        const kill = kills.at(-1);
        if (kill && kill.restartedAfterMs === null && kill.bootBefore !== status.worker.bootId) kill.restartedAfterMs = performance.now() - start - kill.at;
      }
      restore = status.restore;
    }
    const wallMs = performance.now() - start;
    const synapseCpuMs = processCpuMs(pid) - cpu0;
    const synapseMemory = memory.stop();
    const heap = await sampling.stop();
    await lineProbe?.close().catch(() => {});
    const requests = keyRequestsSince(synapse.logPath, logOffset);
    const status = await call<VaultStatus>({ type: 'status.get' });
    const exact = restore.restored === n && restore.failed === 0;
    const survived = exact ? kills.filter((k) => k.restartedAfterMs !== null).length : 0;
    const workerMs = restore.finishedAt !== null ? restore.finishedAt - restore.startedAt : NaN;
    const mode = requests.roomsOk > 0
      ? `room by room (${int(requests.roomsOk)} room GETs answered 200${requests.whole > 0 ? `, after ${requests.whole} whole GET${requests.whole > 1 ? 's' : ''} (${requests.wholeOk} answered in full, ${requests.wholeCut} cut off)` : ''})`
      : `whole download (${requests.whole} GET${requests.whole === 1 ? '' : 's'} of the whole backup: ${requests.wholeOk} answered in full, ${requests.wholeCut} cut off by a kill; no room GETs)`;

    console.log('');
    console.log(`restore of ${int(n)} keys over ${int(backup.roomIds.length)} rooms, ${options.kills} kills planned`);
    console.log(`  wall (restore.start → done): ${s(wallMs)} s · ${int((n / wallMs) * 1000)} keys/s · worker's own clock ${s(workerMs)} s${restore.rate === null ? '' : ` (its rate ${int(restore.rate)} keys/s)`}`);
    console.log(`  first key counted after ${firstKeyAt === null ? '—' : `${s(firstKeyAt)} s`}${waits > 0 ? ` · seen waiting ${waits}×` : ''}`);
    console.log(`  counts: restored ${int(restore.restored)}, already present ${int(restore.alreadyPresent)}, failed ${int(restore.failed)} — ${exact ? 'EXACT' : 'NOT EXACT'}`);
    console.log(`  timings (summed per step, overlapping): ${restore.timings ? `download+parse ${s(restore.timings.download)} s, lookup ${s(restore.timings.lookup)} s, decrypt ${s(restore.timings.decrypt)} s, store ${s(restore.timings.store)} s; opened by the decryption helper ${int(restore.timings.helped ?? 0)} entries` : '—'}`);
    console.log(`  how: ${mode} · /joined_rooms ${requests.joinedRooms}×`);
    for (const line of requests.wholeLines) console.log(`    Synapse: ${line}`);
    console.log(`  kills: ${kills.length} done, ${survived} survived (worker restarted, restore ended done with exact counts); worker boots seen ${bootIds.length}`);
    for (const [i, k] of kills.entries()) console.log(`    ${i + 1}: at ${s(k.at)} s, ${int(k.done)} done; ${k.restartedAfterMs === null ? 'no new bootId seen' : `new worker seen ${s(k.restartedAfterMs)} s later`}`);
    console.log(`  worker JS heap: ${heap ? `peak ${mb(heap.peakUsed)} MB, + buffers ${mb(heap.peakWithBuffers)} MB, before ${mb(heap.before)} MB; ${heap.samples} samples, longest gap ${s(heap.maxGapMs)} s` : 'not sampled'}`);
    console.log(`  Synapse: CPU ${s(synapseCpuMs)} s · RSS before ${mb(synapseMemory.before)} MB, peak ${mb(synapseMemory.peak)} MB${synapseMemory.hwmReset ? '' : ' (VmHWM not reset: sampled only)'}`);
    console.log(`  afterwards: vault stored ${int(status.upload.stored)}, pending upload ${int(status.upload.pending)}`);
    console.log('  keys/s over time (per progress interval):');
    let prev = { t: 0, done: 0 };
    for (const p of timeline) {
      console.log(`    ${s(p.t).padStart(6)} s  ${int(p.done).padStart(9)}  ${int(((p.done - prev.done) / (p.t - prev.t)) * 1000).padStart(6)} keys/s  heap ${mb(p.heap).padStart(4)} MB  Synapse ${mb(p.synapseRss).padStart(5)} MB, CPU ${s(p.synapseCpuMs)} s`);
      prev = p;
    }
    if (!exact) throw new ScaleBenchError('verify', `expected ${int(n)} restored and 0 failed`);
    if (diskFresh && diskBefore && popupsEmpty) await serveAndDisk({ ext, page, backup, n, requests: options.requests, opens: options.opens, diskFresh, diskBefore, popupsEmpty });
  } finally {
    await ext.close();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await synapse.stop();
  }
}

try {
  await main();
} catch (e) {
  const kind = (e as { kind?: unknown } | null)?.kind;
  console.error(`bench/scale.ts failed${typeof kind === 'string' ? ` (${kind})` : ''}: ${e instanceof ScaleBenchError ? e.message : e instanceof Error ? e.stack ?? e.message : String(e)}`);
  process.exitCode = 1;
}
