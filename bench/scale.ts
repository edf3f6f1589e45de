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
 * `GET …/room_keys/keys/{roomId}` lines written during the run). Nothing secret is printed.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Page } from 'playwright-core';
import type { RestoreSummary, Result, VaultStatus } from '../src/shared/messages.ts';
import { buildExtension } from '../scripts/build.ts';
import { chromiumPath, launchExtension, repoRoot } from '../test/harness/browser.ts';
import { SYNAPSE_VERSION } from '../test/harness/synapse.ts';
import { startSampling, workerProbe } from './heap-probe.ts';
import { processCpuMs, synapsePid } from './proc.ts';
import { fillScaleBackup } from './scale-fill.ts';

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
  --no-heap         do not sample the worker's heap`;

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
  const ext = await launchExtension({ extensionPath });
  try {
    const pid = synapsePid(synapse);
    const page = await ext.openPage('popup.html');
    const call = caller(page);
    await call({ type: 'account.login', homeserver: synapse.baseUrl, user: backup.user.localpart, password: backup.user.password });
    await call({ type: 'vault.unlock', input: backup.recoveryKey });
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
    console.log(`  timings (summed per step, overlapping): ${restore.timings ? `download+parse ${s(restore.timings.download)} s, lookup ${s(restore.timings.lookup)} s, decrypt ${s(restore.timings.decrypt)} s, store ${s(restore.timings.store)} s` : '—'}`);
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
  } finally {
    await ext.close();
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
