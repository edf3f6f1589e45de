/**
 * What Synapse does with a very large key backup: `npx tsx bench/scale-synapse.ts --keys N --rooms R`
 * (the backup comes from bench/scale-fill.ts, cached in `.cache/bench-scale/<N>-<R>/`). Measured from
 * Node on the same machine, one request at a time unless said, in this order:
 *
 *  (c) how a restore could learn the backup's rooms without the whole download: `GET /joined_rooms`,
 *      and an initial `/sync` (each from a new device) with a filter that leaves out timelines,
 *      state, ephemeral events, presence and account data, without and with `full_state=true` —
 *      time, bytes, and whether each lists every room of the backup;
 *  (b) `GET /room_keys/keys/{roomId}?version=` for every room, one after another and then 4 in flight
 *      (`--inflight`): total time, per-room time to first byte and total, bytes, entries;
 *  (a) `GET /room_keys/keys?version=`, the whole backup in one answer (reference §1.5: Synapse builds
 *      all of it before it sends a byte): time to first byte, total time, bytes, entries.
 *
 * For each, Synapse's peak RSS (its VmHWM, reset through /proc/<pid>/clear_refs before the step, and
 * VmRSS sampled every 50 ms) and its CPU time; for (a) a per-second timeline of its RSS and CPU and
 * its own access-log line (processing time, database time). Bodies are counted as they stream in
 * (bytes, and entries by their `"session_data"` members), never held.
 */
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { parseArgs } from 'node:util';
import { SYNAPSE_VERSION } from '../test/harness/synapse.ts';
import { processCpuMs, synapsePid } from './proc.ts';
import { fillScaleBackup, type ScaleBackup } from './scale-fill.ts';
import { synapseApi as api } from './common.ts';

class ScaleError extends Error {
  override readonly name = 'ScaleError';
  constructor(readonly kind: 'argument' | 'synapse' | 'check', message: string) {
    super(message);
  }
}

const usage = `npx tsx bench/scale-synapse.ts --keys N --rooms R [options]
  --keys N          entries in the backup (default 100000)
  --rooms R         rooms (default 100)
  --steps LIST      rooms-list,per-room,whole (default all three, in that order)
  --inflight N      per-room GETs in flight in the parallel pass (default 4)
  --repeat N        times the whole GET is made (default 1)
  --json FILE       also write the figures as JSON`;

const s = (ms: number): string => (ms / 1000).toFixed(1);
const s2 = (ms: number): string => (ms / 1000).toFixed(2);
const int = (n: number): string => Math.round(n).toLocaleString('en');
const mb = (bytes: number): string => (bytes / 1e6).toFixed(0);
const progress = (line: string): void => { process.stderr.write(`  … ${line}\n`); };

function quantile(xs: readonly number[], q: number): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

// ---------------------------------------------------------------------------------------------
// Synapse's memory and CPU

function procStatusKb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new ScaleError('synapse', `/proc/${pid}/status has no ${field}`);
  return Number(match[1]) * 1024;
}

interface Watch {
  stop(): { rssBefore: number; peakRss: number; hwmReset: boolean; cpuMs: number; timeline: Array<{ t: number; rss: number; cpuMs: number }> };
}

/**
 * Watches Synapse from now: VmHWM is reset ("5" to clear_refs, Linux ≥ 4.0) so that it holds the
 * peak of this step alone; VmRSS is sampled every 50 ms besides (the peak is the larger of the two).
 */
function watchSynapse(pid: number, timelineEveryMs = 0): Watch {
  let hwmReset = true;
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
  } catch {
    hwmReset = false;
  }
  const started = performance.now();
  const rssBefore = procStatusKb(pid, 'VmRSS');
  const cpu0 = processCpuMs(pid);
  let peak = rssBefore;
  const timeline: Array<{ t: number; rss: number; cpuMs: number }> = [];
  let lastMark = started;
  const timer = setInterval(() => {
    const rss = procStatusKb(pid, 'VmRSS');
    peak = Math.max(peak, rss);
    const now = performance.now();
    if (timelineEveryMs > 0 && now - lastMark >= timelineEveryMs) {
      timeline.push({ t: now - started, rss, cpuMs: processCpuMs(pid) - cpu0 });
      lastMark = now;
    }
  }, 50);
  return {
    stop() {
      clearInterval(timer);
      const cpuMs = processCpuMs(pid) - cpu0;
      const hwm = hwmReset ? procStatusKb(pid, 'VmHWM') : 0;
      return { rssBefore, peakRss: Math.max(peak, hwm, procStatusKb(pid, 'VmRSS')), hwmReset, cpuMs, timeline };
    },
  };
}

/** Synapse's access-log line for the last request whose path starts with `pathStart` (timings, db time). */
function accessLogLine(logPath: string, pathStart: string): string | undefined {
  const size = statSync(logPath).size;
  const text = readFileSync(logPath, 'utf8').slice(Math.max(0, size - 2_000_000));
  const lines = text.split('\n').filter((l) => l.includes('Processed request') && l.includes(`"GET ${pathStart}`));
  const line = lines.at(-1);
  return line?.slice(line.indexOf('Processed request'));
}

// ---------------------------------------------------------------------------------------------
// Timed GETs that count the body as it streams

interface TimedGet { status: number; ttfbMs: number; totalMs: number; bytes: number; entries: number }

const agent = new Agent({ keepAlive: true, maxSockets: 16 });
const ENTRY_MARK = Buffer.from('"session_data"');

function timedGet(baseUrl: string, accessToken: string, path: string, onBytes?: (bytes: number, ttfbMs: number) => void): Promise<TimedGet> {
  return new Promise((resolveGet, reject) => {
    const url = new URL(`${baseUrl}/_matrix/client/v3${path}`);
    const started = performance.now();
    let ttfbMs = NaN;
    let bytes = 0;
    let entries = 0;
    let carry: Buffer = Buffer.alloc(0);
    const req = request(url, { method: 'GET', agent, headers: { authorization: `Bearer ${accessToken}` } }, (response) => {
      // Headers and the first bytes of the body leave Synapse together (it answers once the whole body is made).
      response.on('data', (chunk: Buffer) => {
        if (Number.isNaN(ttfbMs)) ttfbMs = performance.now() - started;
        bytes += chunk.length;
        const view = carry.length ? Buffer.concat([carry, chunk]) : chunk;
        for (let at = view.indexOf(ENTRY_MARK); at !== -1; at = view.indexOf(ENTRY_MARK, at + ENTRY_MARK.length)) entries++;
        carry = view.subarray(Math.max(0, view.length - (ENTRY_MARK.length - 1)));
        onBytes?.(bytes, ttfbMs);
      });
      response.on('end', () => {
        if (Number.isNaN(ttfbMs)) ttfbMs = performance.now() - started;
        resolveGet({ status: response.statusCode ?? 0, ttfbMs, totalMs: performance.now() - started, bytes, entries });
      });
      response.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** A GET read whole as JSON (small answers: /joined_rooms, the filtered /sync), with its timing. */
async function timedJson<T>(baseUrl: string, accessToken: string, path: string): Promise<{ ms: number; bytes: number; body: T }> {
  const started = performance.now();
  const response = await fetch(`${baseUrl}/_matrix/client/v3${path}`, { headers: { authorization: `Bearer ${accessToken}` }, signal: AbortSignal.timeout(900_000) });
  const text = await response.text();
  const ms = performance.now() - started;
  if (!response.ok) throw new ScaleError('synapse', `GET ${path.split('?')[0]} answered HTTP ${response.status}: ${text.slice(0, 300)}`);
  return { ms, bytes: Buffer.byteLength(text), body: JSON.parse(text) as T };
}

// ---------------------------------------------------------------------------------------------
// The steps

interface Bench { backup: ScaleBackup; pid: number; token: string; version: string }

/** The filter of (c): every room the user is in (left ones too), and nothing else. */
export const ROOMS_ONLY_FILTER = {
  room: {
    include_leave: true,
    timeline: { limit: 0 },
    state: { lazy_load_members: true, types: [] },
    ephemeral: { types: [] },
    account_data: { types: [] },
  },
  presence: { types: [] },
  account_data: { types: [] },
};

async function roomsList(bench: Bench): Promise<Record<string, unknown>> {
  const { backup, token, pid } = bench;
  const want = new Set(backup.roomIds);
  const missing = (ids: Iterable<string>): number => { const got = new Set(ids); return [...want].filter((r) => !got.has(r)).length; };

  let watch = watchSynapse(pid);
  const joined = await timedJson<{ joined_rooms: string[] }>(backup.synapse.baseUrl, token, '/joined_rooms');
  const joinedStats = watch.stop();
  const joinedMissing = missing(joined.body.joined_rooms);
  console.log(`GET /joined_rooms: ${s2(joined.ms)} s, ${int(joined.bytes)} bytes, ${int(joined.body.joined_rooms.length)} rooms,`
    + ` ${joinedMissing === 0 ? 'every room of the backup listed' : `${joinedMissing} rooms of the backup MISSING`}; Synapse CPU ${s2(joinedStats.cpuMs)} s`);

  type SyncBody = { next_batch: string; rooms?: { join?: Record<string, unknown>; leave?: Record<string, unknown>; invite?: Record<string, unknown> } };
  const filter = encodeURIComponent(JSON.stringify(ROOMS_ONLY_FILTER));
  const runs: Array<{ variant: string; run: number; ms: number; bytes: number; rooms: number; missing: number; cpuMs: number; peakRss: number }> = [];
  // With this filter every room's entry is empty, and Synapse leaves out an empty room unless the
  // request says full_state=true (JoinedSyncResult.__bool__ in synapse/handlers/sync.py): both are measured.
  // It keeps a sync answer for 2 minutes per device and request, so every run is a new device.
  for (const [variant, query] of [['the filter', ''], ['the filter + full_state=true', '&full_state=true']] as const) {
    for (let run = 1; run <= 2; run++) {
      const device = (await backup.synapse.login(backup.user.localpart, backup.user.password)).accessToken;
      watch = watchSynapse(pid);
      const sync = await timedJson<SyncBody>(backup.synapse.baseUrl, device, `/sync?timeout=0&set_presence=offline${query}&filter=${filter}`);
      const stats = watch.stop();
      await api(backup.synapse.baseUrl, device, 'POST', '/logout', {}).catch(() => {});
      const listed = [...Object.keys(sync.body.rooms?.join ?? {}), ...Object.keys(sync.body.rooms?.leave ?? {})];
      const row = { variant, run, ms: sync.ms, bytes: sync.bytes, rooms: listed.length, missing: missing(listed), cpuMs: stats.cpuMs, peakRss: stats.peakRss };
      runs.push(row);
      console.log(`GET /sync (${variant}, no since, a new device), run ${run}: ${s2(row.ms)} s, ${int(row.bytes)} bytes, ${int(row.rooms)} rooms,`
        + ` ${row.missing === 0 ? 'every room of the backup listed' : `${int(row.missing)} rooms of the backup NOT listed`}; Synapse CPU ${s2(row.cpuMs)} s, peak RSS ${mb(row.peakRss)} MB`);
    }
  }
  return {
    joinedRooms: { ms: joined.ms, bytes: joined.bytes, rooms: joined.body.joined_rooms.length, missing: joinedMissing, cpuMs: joinedStats.cpuMs },
    sync: runs,
  };
}

async function perRoom(bench: Bench, inflight: number): Promise<Record<string, unknown>> {
  const { backup, token, pid, version } = bench;
  const results: Record<string, unknown> = {};
  for (const width of [1, inflight]) {
    const watch = watchSynapse(pid);
    const started = performance.now();
    const gets: TimedGet[] = new Array(backup.roomIds.length);
    let next = 0;
    let lastLog = started;
    await Promise.all(Array.from({ length: width }, async () => {
      while (next < backup.roomIds.length) {
        const i = next++;
        gets[i] = await timedGet(backup.synapse.baseUrl, token, `/room_keys/keys/${encodeURIComponent(backup.roomIds[i]!)}?version=${encodeURIComponent(version)}`);
        if (gets[i]!.status !== 200) throw new ScaleError('synapse', `GET /room_keys/keys/{roomId} answered HTTP ${gets[i]!.status}`);
        if (performance.now() - lastLog > 10_000) { lastLog = performance.now(); progress(`per room, ${width} in flight: ${next} of ${backup.roomIds.length} rooms (${s(lastLog - started)} s)`); }
      }
    }));
    const wallMs = performance.now() - started;
    const stats = watch.stop();
    const entries = gets.reduce((a, g) => a + g.entries, 0);
    const bytes = gets.reduce((a, g) => a + g.bytes, 0);
    const totals = gets.map((g) => g.totalMs);
    const ttfbs = gets.map((g) => g.ttfbMs);
    const sizes = gets.map((g) => g.entries);
    if (entries !== backup.count) throw new ScaleError('check', `the per-room GETs returned ${int(entries)} entries, the backup holds ${int(backup.count)}`);
    const row = {
      inFlight: width, wallMs, bytes, entries, rooms: gets.length,
      perRoomMs: { median: quantile(totals, 0.5), p95: quantile(totals, 0.95), max: Math.max(...totals) },
      perRoomTtfbMs: { median: quantile(ttfbs, 0.5), max: Math.max(...ttfbs) },
      entriesPerRoom: { min: Math.min(...sizes), median: quantile(sizes, 0.5), max: Math.max(...sizes) },
      synapseCpuMs: stats.cpuMs, rssBefore: stats.rssBefore, peakRss: stats.peakRss, hwmReset: stats.hwmReset,
    };
    results[`inFlight${width}`] = row;
    console.log(`GET /room_keys/keys/{roomId} × ${int(gets.length)}, ${width} in flight: ${s(wallMs)} s, ${mb(bytes)} MB, ${int(entries)} entries (${int(row.entriesPerRoom.min)}–${int(row.entriesPerRoom.max)} per room)`
      + ` · per room: median ${int(row.perRoomMs.median)} ms, p95 ${int(row.perRoomMs.p95)} ms, max ${int(row.perRoomMs.max)} ms (time to first byte: median ${int(row.perRoomTtfbMs.median)} ms, max ${int(row.perRoomTtfbMs.max)} ms)`
      + ` · Synapse CPU ${s(stats.cpuMs)} s, RSS ${mb(stats.rssBefore)} → peak ${mb(stats.peakRss)} MB`);
  }
  return results;
}

async function whole(bench: Bench, repeat: number): Promise<Array<Record<string, unknown>>> {
  const { backup, token, pid, version } = bench;
  const runs: Array<Record<string, unknown>> = [];
  for (let round = 1; round <= repeat; round++) {
    progress(`GET /room_keys/keys?version= (the whole backup), run ${round} of ${repeat}…`);
    const watch = watchSynapse(pid, 1000);
    let nextReport = 100e6;
    let told = false;
    const get = await timedGet(backup.synapse.baseUrl, token, `/room_keys/keys?version=${encodeURIComponent(version)}`, (bytes, ttfbMs) => {
      if (!told) { told = true; progress(`first byte after ${s(ttfbMs)} s`); }
      if (bytes >= nextReport) { nextReport += 100e6; progress(`${mb(bytes)} MB received`); }
    });
    const stats = watch.stop();
    if (get.status !== 200) throw new ScaleError('synapse', `GET /room_keys/keys answered HTTP ${get.status}`);
    if (get.entries !== backup.count) throw new ScaleError('check', `the whole GET returned ${int(get.entries)} entries, the backup holds ${int(backup.count)}`);
    const logLine = accessLogLine(backup.synapse.logPath, '/_matrix/client/v3/room_keys/keys?');
    const run = {
      round, ttfbMs: get.ttfbMs, totalMs: get.totalMs, bytes: get.bytes, entries: get.entries,
      synapseCpuMs: stats.cpuMs, rssBefore: stats.rssBefore, peakRss: stats.peakRss, hwmReset: stats.hwmReset, accessLog: logLine,
      timeline: stats.timeline.map((p) => ({ t: Math.round(p.t), rssMB: Math.round(p.rss / 1e6), cpuMs: Math.round(p.cpuMs) })),
    };
    runs.push(run);
    console.log(`GET /room_keys/keys?version= (whole), run ${round}: first byte after ${s(get.ttfbMs)} s (Chrome ends a service worker whose fetch has no answer in 30 s: `
      + `${get.ttfbMs > 30_000 ? 'OVER' : 'under'}), total ${s(get.totalMs)} s, ${mb(get.bytes)} MB, ${int(get.entries)} entries`
      + ` · Synapse CPU ${s(stats.cpuMs)} s, RSS ${mb(stats.rssBefore)} → peak ${mb(stats.peakRss)} MB${stats.hwmReset ? '' : ' (VmHWM not resettable: sampled only)'}`);
    if (logLine) console.log(`  Synapse's access log: ${logLine}`);
    const step = Math.max(1, Math.ceil(stats.timeline.length / 40));
    console.log(`  timeline (s: Synapse RSS MB / CPU s so far): ${stats.timeline.filter((_, i) => i % step === 0)
      .map((p) => `${s(p.t)}: ${mb(p.rss)}/${s(p.cpuMs)}`).join(' · ')}`);
  }
  return runs;
}

// ---------------------------------------------------------------------------------------------

type Step = 'rooms-list' | 'per-room' | 'whole';

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        keys: { type: 'string', default: '100000' }, rooms: { type: 'string', default: '100' }, steps: { type: 'string', default: 'rooms-list,per-room,whole' },
        inflight: { type: 'string', default: '4' }, repeat: { type: 'string', default: '1' }, json: { type: 'string' }, help: { type: 'boolean', default: false },
      },
    }));
  } catch (e) {
    throw new ScaleError('argument', `${(e as Error).message}\n${usage}`);
  }
  if (values.help) { console.log(usage); return; }
  const whole1 = (text: string, name: string): number => {
    const n = Number(text);
    if (!Number.isSafeInteger(n) || n < 1) throw new ScaleError('argument', `--${name} must be a whole number ≥ 1, got ${JSON.stringify(text)}`);
    return n;
  };
  const steps = values.steps.split(',').map((x): Step => {
    if (x !== 'rooms-list' && x !== 'per-room' && x !== 'whole') throw new ScaleError('argument', `--steps takes rooms-list, per-room, whole; got ${JSON.stringify(x)}`);
    return x;
  });
  const keys = whole1(values.keys, 'keys');
  const rooms = whole1(values.rooms, 'rooms');

  const backup = await fillScaleBackup({ keys, rooms, log: progress });
  const { synapse } = backup;
  const onSignal = (): void => { void synapse.stop().finally(() => process.exit(130)); };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let token: string | undefined;
  try {
    const pid = synapsePid(synapse);
    token = (await synapse.login(backup.user.localpart, backup.user.password)).accessToken;
    const info = await api<{ version: string; count: number; etag: string }>(synapse.baseUrl, token, 'GET', '/room_keys/version');
    console.log(`Synapse ${SYNAPSE_VERSION} (SQLite, pid ${pid}, RSS ${mb(procStatusKb(pid, 'VmRSS'))} MB at the start) · backup version ${info.version}: ${int(info.count)} keys`
      + ` over ${int(backup.roomIds.length)} rooms (${backup.cached ? `cached; filled in ${s(backup.filledInMs)} s` : `filled now in ${s(backup.filledInMs)} s`}, rooms made in ${s(backup.roomsInMs)} s) · Node ${process.version}`);
    if (info.count !== keys) throw new ScaleError('check', `the backup holds ${info.count} keys, expected ${keys}`);
    const bench: Bench = { backup, pid, token, version: backup.version };
    const figures: Record<string, unknown> = { keys, rooms, synapse: SYNAPSE_VERSION, filledInMs: backup.filledInMs, roomsInMs: backup.roomsInMs };
    for (const step of steps) {
      if (step === 'rooms-list') figures.roomsList = await roomsList(bench);
      if (step === 'per-room') figures.perRoom = await perRoom(bench, whole1(values.inflight, 'inflight'));
      if (step === 'whole') figures.whole = await whole(bench, whole1(values.repeat, 'repeat'));
    }
    if (values.json) writeFileSync(values.json, `${JSON.stringify(figures, null, 2)}\n`);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (token) await api(synapse.baseUrl, token, 'POST', '/logout', {}).catch(() => {});
    agent.destroy();
    await synapse.stop();
  }
}

try {
  await main();
} catch (e) {
  const kind = (e as { kind?: unknown } | null)?.kind;
  console.error(`bench/scale-synapse.ts failed${typeof kind === 'string' ? ` (${kind})` : ''}: ${e instanceof ScaleError ? e.message : e instanceof Error ? e.stack ?? e.message : String(e)}`);
  process.exitCode = 1;
}
