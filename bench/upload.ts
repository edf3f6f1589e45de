/**
 * Upload throughput: one key file of real sessions until every session is stored in Synapse, through
 * the extension's upload engine and through Element's crypto, against the same Synapse in the same
 * run. Run: `npx tsx bench/upload.ts` (≈ 2 min on 2 cores); `--sweep` adds the batch-size sweep that
 * chose UPLOAD_BATCH_SIZE (src/background/services.ts); `--help` lists the options.
 *
 * Extension: the engine in Node, not the built extension in a browser. The worker's own code
 * (decryptKeyFile, ingestSessions in chunks of 500 as the import page sends them, UploadDriver), the
 * real vault on fake-indexeddb and the real HomeserverClient, wired as test/harness/upload-rig.ts does.
 *
 * Element: @matrix-org/matrix-sdk-crypto-wasm 18.9 driven as matrix-js-sdk drives it after a key
 * import: `decryptExportedRoomKeys` + `importExportedRoomKeys` into ONE OlmMachine, `enableBackupV1`,
 * then `backupRoomKeys` → PUT → `markRequestAsSent` until nothing is left (without js-sdk's 0–10 s
 * random start delay: its best case). With the IndexedDB store Element Web uses (on the same
 * fake-indexeddb as the extension's vault), and with the memory store, whose `backupRoomKeys` scans
 * every session per call (O(n²), test/peer/README.md).
 *
 * Both sides: a fresh account with its own backup version and random key, the same key file, the
 * same HomeserverClient (so the same fetch), one PUT at a time. The clock runs from the key file to
 * the engine reporting that nothing is left, just after the last PUT was acknowledged and recorded.
 * Afterwards GET /room_keys/version must count every session, and sampled entries must decrypt to
 * the file's keys. Nothing secret is printed.
 */
import { parseArgs } from 'node:util';
import { BackupDecryptionKey, DeviceId, OlmMachine, RequestType, StoreHandle, UserId } from '@matrix-org/matrix-sdk-crypto-wasm';
import { BACKUP_ALGORITHM, createBackupDecryptor, decodeBase64, decryptKeyFile } from '../src/core/index.ts';
import { initialUploadState } from '../src/core/upload/state.ts';
import { ingestSessions } from '../src/background/ingest.ts';
import { UPLOAD_BATCH_SIZE, UPLOAD_TIMEOUT_MS } from '../src/background/services.ts';
import { HomeserverClient, type FetchLike } from '../src/platform/homeserver.ts';
import type { Vault } from '../src/platform/vault.ts';
import { parseKeyList } from '../src/popup/key-list.ts';
import { backupServer, createServerBackup, freshVault, peerSessions, pinFor, randomKey, uploadRig } from '../test/harness/upload-rig.ts';
import { startSynapse, uniqueLocalpart, SYNAPSE_VERSION, type Synapse, type SynapseUser } from '../test/harness/synapse.ts';
import { closePeerMachine, createPeerMachine, initPeer, keyFileFromPeer, type ExportedSessionData } from '../test/peer/index.ts';
import { processCpuMs, synapsePid } from './proc.ts';

class BenchError extends Error {
  override readonly name = 'BenchError';
  constructor(readonly kind: 'argument' | 'synapse' | 'upload' | 'verify', message: string) {
    super(message);
  }
}

// ---------------------------------------------------------------------------------------------
// Options

const usage = `npx tsx bench/upload.ts [options]
  --sessions N      sessions in the key file (default 10000)
  --rounds N        PBKDF2 rounds of the key file (default 500000, Element's default)
  --rooms N         rooms the sessions are spread over (default 100)
  --batch N         the extension's batch size (default UPLOAD_BATCH_SIZE = ${UPLOAD_BATCH_SIZE})
  --repeat N        runs of the extension and of Element's IndexedDB setup, interleaved; medians are shown (default 3)
  --element LIST    Element setups: indexeddb,memory (default both; "none" skips them). memory runs once.
  --rtt MS          add MS ms of simulated network round trip to every PUT, both sides (default 0: loopback)
  --sweep           also time the extension's upload phase at each batch size of --sizes, --repeat times each
  --sizes LIST      batch sizes for --sweep (default 100,250,500,1000,2000,5000)`;

type ElementStore = 'indexeddb' | 'memory';

function wholeNumber(text: string, name: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1) throw new BenchError('argument', `--${name} must be a whole number ≥ 1, got ${JSON.stringify(text)}`);
  return n;
}

const optionSpec = {
  sessions: { type: 'string', default: '10000' },
  rounds: { type: 'string', default: '500000' },
  rooms: { type: 'string', default: '100' },
  batch: { type: 'string', default: String(UPLOAD_BATCH_SIZE) },
  repeat: { type: 'string', default: '3' },
  element: { type: 'string', default: 'indexeddb,memory' },
  rtt: { type: 'string', default: '0' },
  sweep: { type: 'boolean', default: false },
  sizes: { type: 'string', default: '100,250,500,1000,2000,5000' },
  help: { type: 'boolean', default: false },
} as const;

function readOptions() {
  let parsed;
  try {
    parsed = parseArgs({ options: optionSpec });
  } catch (e) {
    throw new BenchError('argument', `${(e as Error).message}\n${usage}`);
  }
  const { values } = parsed;
  const element = values.element === 'none' ? [] : values.element.split(',').map((name): ElementStore => {
    if (name !== 'indexeddb' && name !== 'memory') throw new BenchError('argument', `--element takes indexeddb, memory or none, got ${JSON.stringify(name)}`);
    return name;
  });
  return {
    help: values.help,
    sessions: wholeNumber(values.sessions, 'sessions'),
    rounds: wholeNumber(values.rounds, 'rounds'),
    rooms: wholeNumber(values.rooms, 'rooms'),
    batch: wholeNumber(values.batch, 'batch'),
    repeat: wholeNumber(values.repeat, 'repeat'),
    rttMs: values.rtt === '0' ? 0 : wholeNumber(values.rtt, 'rtt'),
    element,
    sweep: values.sweep,
    sizes: values.sizes.split(',').map((size) => wholeNumber(size, 'sizes')),
  };
}

// ---------------------------------------------------------------------------------------------
// Measuring

interface PutRecord {
  /** From sending the (already serialised) body to reading the whole answer: Synapse plus loopback HTTP. */
  ms: number;
  bytes: number;
  ok: boolean;
}

/**
 * A fetch for HomeserverClient that times every `PUT /room_keys/keys` from send to last byte; with
 * `rttMs` each PUT first waits that long, standing in for a real network's round trip.
 */
class PutLog {
  records: PutRecord[] = [];

  constructor(private readonly rttMs: number) {}

  readonly fetch: FetchLike = async (input, init) => {
    const isKeysPut = init.method === 'PUT' && input.includes('/room_keys/keys');
    const bytes = typeof init.body === 'string' ? Buffer.byteLength(init.body) : 0;
    const start = performance.now();
    try {
      if (isKeysPut && this.rttMs > 0) await new Promise((resolve) => setTimeout(resolve, this.rttMs));
      const response = await globalThis.fetch(input, init);
      const text = await response.text();
      if (isKeysPut) this.records.push({ ms: performance.now() - start, bytes, ok: response.ok });
      return new Response(text === '' ? null : text, { status: response.status, statusText: response.statusText, headers: response.headers });
    } catch (e) {
      if (isKeysPut) this.records.push({ ms: performance.now() - start, bytes, ok: false });
      throw e;
    }
  };
}

const sum = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0);

function median(xs: readonly number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}


function benchCpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

/** One run of one side: what the tables print. */
interface RunResult {
  label: string;
  sessions: number;
  wallMs: number;
  batch: string;
  puts: PutRecord[];
  /** Client steps in order, in ms; with the PUT round trips they add up to the wall time. */
  steps: Array<[string, number]>;
  benchCpuMs: number;
  synapseCpuMs: number;
}

interface Bench {
  synapse: Synapse;
  rttMs: number;
  synapsePid: number;
  file: string;
  keys: ExportedSessionData[];
}

/** Runs `body` under the clock and both CPU meters; the body reports its client steps. */
async function measured(bench: Bench, body: (step: (name: string, ms: number) => void) => Promise<void>) {
  const steps = new Map<string, number>();
  const step = (name: string, ms: number): void => { steps.set(name, (steps.get(name) ?? 0) + ms); };
  const cpu0 = benchCpuMs();
  const synapse0 = processCpuMs(bench.synapsePid);
  const start = performance.now();
  await body(step);
  const wallMs = performance.now() - start;
  return { wallMs, steps: [...steps], benchCpuMs: benchCpuMs() - cpu0, synapseCpuMs: processCpuMs(bench.synapsePid) - synapse0 };
}

/** Both sides keep IndexedDB on fake-indexeddb: empty it between runs so neither pays for the other's heap. */
async function dropDatabases(): Promise<void> {
  for (const { name } of await indexedDB.databases()) {
    if (name === undefined) continue;
    await new Promise<void>((resolve, reject) => {
      const request = indexedDB.deleteDatabase(name);
      request.onsuccess = () => resolve();
      request.onerror = () => reject(new BenchError('upload', `could not delete IndexedDB database ${name}: ${String(request.error)}`));
    });
  }
}

const PASSPHRASE = 'bench-only key file passphrase';
const CHUNK = 500; // what src/popup/import.tsx sends per message

async function newAccount(bench: Bench, prefix: string): Promise<{ user: SynapseUser; client: HomeserverClient; log: PutLog }> {
  const user = await bench.synapse.registerUser(uniqueLocalpart(prefix), 'bench-only password');
  const log = new PutLog(bench.rttMs);
  return { user, client: new HomeserverClient({ baseUrl: bench.synapse.baseUrl, accessToken: user.accessToken, fetch: log.fetch }), log };
}

// ---------------------------------------------------------------------------------------------
// The extension

async function ingestFile(bench: Bench, vault: Vault, step: (name: string, ms: number) => void): Promise<void> {
  let t = performance.now();
  const sessions = parseKeyList(await decryptKeyFile(bench.file, PASSPHRASE));
  step('decryptKeyFile + JSON.parse', performance.now() - t);
  t = performance.now();
  for (let i = 0; i < sessions.length; i += CHUNK) {
    const result = await ingestSessions(vault, sessions.slice(i, i + CHUNK));
    if (result.rejected.length > 0) throw new BenchError('upload', `ingestSessions rejected ${result.rejected.length} sessions: ${result.rejected[0]!.reason}`);
  }
  step('ingestSessions (validate, encrypt, store)', performance.now() - t);
}

async function uploadAll(vault: Vault, client: HomeserverClient, log: PutLog, batchSize: number, step: (name: string, ms: number) => void): Promise<void> {
  const rig = uploadRig(vault, async () => backupServer(client, UPLOAD_TIMEOUT_MS), { batchSize });
  const t = performance.now();
  const outcome = await rig.runUntilSettled();
  if (outcome !== 'idle') throw new BenchError('upload', `the upload driver stopped with "${outcome}" instead of finishing`);
  step('upload driver (vault, request bodies)', performance.now() - t - sum(log.records.map((r) => r.ms)));
}

async function runExtension(bench: Bench, batchSize: number): Promise<RunResult> {
  const { user, client, log } = await newAccount(bench, 'bench-ext');
  const privateKey = randomKey();
  const { version, publicKey } = await createServerBackup(client, privateKey);
  const vault = await freshVault();
  await vault.setPin(pinFor(user, version, publicKey));
  const run = await measured(bench, async (step) => {
    await ingestFile(bench, vault, step);
    await uploadAll(vault, client, log, batchSize, step);
  });
  vault.close();
  await dropDatabases();
  await verify(bench, client, version, privateKey);
  return { label: `extension engine in Node, batch ${batchSize}`, sessions: bench.keys.length, batch: String(batchSize), puts: log.records, ...run };
}

/**
 * The upload phase alone at each batch size: the file is ingested once, then each run pins a fresh
 * account's backup with the same key at a higher epoch, which makes every stored session pending
 * again without re-encrypting (what the worker does when it follows a new version, vault.ts).
 */
async function runSweep(bench: Bench, sizes: readonly number[], repeat: number): Promise<Map<number, RunResult[]>> {
  const privateKey = randomKey();
  const vault = await freshVault();
  const first = await newAccount(bench, 'bench-sweep');
  const { version: firstVersion, publicKey } = await createServerBackup(first.client, privateKey);
  await vault.setPin(pinFor(first.user, firstVersion, publicKey, 1));
  await ingestFile(bench, vault, () => {});
  const results = new Map<number, RunResult[]>(sizes.map((size) => [size, []]));
  let epoch = 1;
  for (let round = 0; round < repeat; round++) {
    for (const size of round % 2 === 0 ? sizes : [...sizes].reverse()) {
      const { user, client, log } = await newAccount(bench, 'bench-sweep');
      const { version } = await createServerBackup(client, privateKey);
      epoch++;
      await vault.setPinAndUploadState(pinFor(user, version, publicKey, epoch), initialUploadState);
      const pending = await vault.countPending(publicKey, epoch);
      if (pending !== bench.keys.length) throw new BenchError('upload', `re-pinning left ${pending} sessions pending, expected ${bench.keys.length}`);
      const run = await measured(bench, (step) => uploadAll(vault, client, log, size, step));
      await verify(bench, client, version, privateKey);
      results.get(size)!.push({ label: `upload phase, batch ${size}`, sessions: bench.keys.length, batch: String(size), puts: log.records, ...run });
      progress(`sweep round ${round + 1}/${repeat}, batch ${size}: upload phase ${s(run.wallMs)} s`);
    }
  }
  vault.close();
  await dropDatabases();
  return results;
}

// ---------------------------------------------------------------------------------------------
// Element's crypto

let storeCount = 0;

/** An OlmMachine as Element Web opens it (IndexedDB with a store key), or with the memory store. */
async function elementMachine(user: SynapseUser, store: ElementStore): Promise<OlmMachine> {
  if (store === 'memory') return createPeerMachine(user.userId, user.deviceId);
  const handle = await StoreHandle.openWithKey(`bench-element-${process.pid}-${storeCount++}`, randomKey());
  const userId = new UserId(user.userId);
  const deviceId = new DeviceId(user.deviceId);
  try {
    return await OlmMachine.initFromStore(userId, deviceId, handle);
  } finally {
    userId.free();
    deviceId.free();
    handle.free();
  }
}

async function runElement(bench: Bench, store: ElementStore): Promise<RunResult> {
  const { user, client, log } = await newAccount(bench, `bench-element-${store}`);
  const backupKey = BackupDecryptionKey.createRandomKey();
  const publicKey = backupKey.megolmV1PublicKey.publicKeyBase64;
  const privateKey = decodeBase64(backupKey.toBase64());
  backupKey.free();
  const version = await client.createBackupVersion({ algorithm: BACKUP_ALGORITHM, auth_data: { public_key: publicKey } });
  const machine = await elementMachine(user, store);

  const run = await measured(bench, async (step) => {
    let t = performance.now();
    const json = OlmMachine.decryptExportedRoomKeys(bench.file, PASSPHRASE);
    step('decryptExportedRoomKeys', performance.now() - t);
    t = performance.now();
    const imported = await machine.importExportedRoomKeys(json, () => {});
    const importedCount = imported.importedCount;
    imported.free();
    if (importedCount !== bench.keys.length) throw new BenchError('upload', `importExportedRoomKeys took ${importedCount} of ${bench.keys.length} sessions`);
    step('importExportedRoomKeys', performance.now() - t);
    t = performance.now();
    await machine.enableBackupV1(publicKey, version);
    step('enableBackupV1', performance.now() - t);
    for (;;) {
      t = performance.now();
      const request = await machine.backupRoomKeys();
      step('backupRoomKeys (find 100, encrypt)', performance.now() - t);
      if (request === undefined) break;
      // Every request carries at least one session: more PUTs than sessions means the loop is stuck.
      if (log.records.length >= bench.keys.length) throw new BenchError('upload', 'backupRoomKeys keeps returning requests');
      t = performance.now();
      const sentBefore = log.records.length;
      const body = JSON.parse(request.body) as Parameters<HomeserverClient['putBackupKeys']>[1];
      const response = await client.putBackupKeys(request.version, body, { timeoutMs: UPLOAD_TIMEOUT_MS });
      step('request body JSON', performance.now() - t - sum(log.records.slice(sentBefore).map((r) => r.ms)));
      t = performance.now();
      // Without this the machine hands out the same request again, forever.
      await machine.markRequestAsSent(request.id, RequestType.KeysBackup, JSON.stringify(response));
      request.free();
      step('markRequestAsSent', performance.now() - t);
    }
  });
  closePeerMachine(machine);
  await dropDatabases();
  await verify(bench, client, version, privateKey);
  const label = store === 'indexeddb' ? 'Element crypto, IndexedDB store as in Element Web' : 'Element crypto, memory store (O(n²) scan)';
  return { label, sessions: bench.keys.length, batch: '100 (wasm)', puts: log.records, ...run };
}

/** The server counts every session, and sampled entries decrypt to the key file's keys. */
async function verify(bench: Bench, client: HomeserverClient, version: string, privateKey: Uint8Array): Promise<void> {
  const info = await client.getLatestBackupVersion();
  if (info?.version !== version) throw new BenchError('verify', `the current backup is ${info?.version ?? 'none'}, not ${version}`);
  if (info.count !== bench.keys.length) throw new BenchError('verify', `backup ${version} holds ${info.count} keys, expected ${bench.keys.length}`);
  const decryptor = await createBackupDecryptor(privateKey);
  const samples = Math.min(20, bench.keys.length);
  for (let i = 0; i < samples; i++) {
    const expected = bench.keys[Math.floor((i * bench.keys.length) / samples)]!;
    const entry = await client.getBackupSessionKey(version, expected.room_id, expected.session_id);
    const data = await decryptor.decrypt(entry.session_data);
    if (data.session_key !== expected.session_key || data.sender_key !== expected.sender_key) {
      throw new BenchError('verify', `backup entry ${expected.session_id} does not decrypt to the key file's session`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Printing

const s = (ms: number): string => (ms / 1000).toFixed(1);
const s2 = (ms: number): string => (ms / 1000).toFixed(2);
const int = (n: number): string => Math.round(n).toLocaleString('en');
const keysPerSecond = (r: RunResult): number => (r.sessions / r.wallMs) * 1000;
const putMs = (r: RunResult): number => sum(r.puts.map((p) => p.ms));
const putKiB = (r: RunResult): number => sum(r.puts.map((p) => p.bytes)) / r.puts.length / 1024;
const progress = (line: string): void => { process.stderr.write(`  … ${line}\n`); };

/** The run with the median wall time (the slower middle one of an even count), so that its columns belong together. */
function medianRun(runs: readonly RunResult[]): RunResult {
  const sorted = [...runs].sort((a, b) => a.wallMs - b.wallMs);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function printTable(head: string[], rows: string[][]): void {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(line(head));
  for (const r of rows) console.log(line(r));
}

function printSides(sides: ReadonlyArray<RunResult[]>): void {
  const head = ['median run of', 'sessions', 'wall s', 'keys/s', 'keys/s range', 'PUTs', 'batch', 'Synapse wait s', 'client s', 'Synapse CPU s', 'bench CPU s'];
  printTable(head, sides.map((runs) => {
    const r = medianRun(runs);
    const rates = runs.map(keysPerSecond);
    return [
      `${r.label} (${runs.length}×)`, int(r.sessions), s(r.wallMs), int(keysPerSecond(r)),
      runs.length > 1 ? `${int(Math.min(...rates))}–${int(Math.max(...rates))}` : '—', String(r.puts.length), r.batch,
      `${s(putMs(r))} (${Math.round((putMs(r) / r.wallMs) * 100)}%)`, s(r.wallMs - putMs(r)), s(r.synapseCpuMs), s(r.benchCpuMs),
    ];
  }));
  console.log('  Synapse wait = sum of PUT round trips, one PUT at a time; client = wall − wait. Synapse CPU from /proc');
  console.log('  (Synapse is one Python process); bench CPU = this process, all threads (WebCrypto runs in a thread pool).\n');
  console.log('where the time goes (median runs):');
  for (const runs of sides) {
    const r = medianRun(runs);
    const failed = r.puts.filter((p) => !p.ok).length;
    const perKey = putMs(r) / r.sessions;
    console.log(`  ${r.label}`);
    console.log(`    client:  ${r.steps.map(([name, ms]) => `${name} ${s(ms)} s`).join(' · ')}`);
    console.log(`    Synapse: ${(putMs(r) / r.puts.length).toFixed(0)} ms per PUT of ${putKiB(r).toFixed(0)} KiB = ${perKey.toFixed(3)} ms per key, `
      + `a ceiling of ${int(1000 / perKey)} keys/s if the client took no time${failed ? ` · ${failed} PUTs FAILED and were retried` : ''}`);
  }
  console.log('');
}

/**
 * Ratios are taken within a round (the extension and Element's IndexedDB setup ran back to back), and
 * the median over rounds is printed: a busy moment on the shared machine then slows both sides of a
 * ratio instead of one. The memory store runs once; it is compared with the extension's median.
 */
function printRatios(extension: RunResult[], indexeddb: RunResult[], memory: RunResult[]): void {
  const ours = keysPerSecond(medianRun(extension));
  if (indexeddb.length > 0) {
    const ratios = indexeddb.map((run, i) => keysPerSecond(extension[i]!) / keysPerSecond(run));
    const ratio = median(ratios);
    const range = ratios.length > 1 ? `, ${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)} over ${ratios.length} rounds` : '';
    console.log(`ratio extension ÷ ${indexeddb[0]!.label}: ${ratio.toFixed(2)}× (median of per-round ratios${range})`);
    console.log(`target ≥ 1.5× Element's crypto in its best realistic case (the IndexedDB store): ${ratio >= 1.5 ? 'MET' : 'NOT MET'} at ${ratio.toFixed(2)}×`);
  }
  for (const run of memory) {
    console.log(`ratio extension ÷ ${run.label}: ${(ours / keysPerSecond(run)).toFixed(2)}× (${int(ours)} ÷ ${int(keysPerSecond(run))} keys/s)`);
  }
  console.log('');
}

function printSweep(sweep: Map<number, RunResult[]>, ingestMs: number): void {
  console.log(`batch-size sweep: the extension's upload phase alone (file ingested once), median of ${[...sweep.values()][0]!.length} runs per size:`);
  const head = ['batch', 'PUTs', 'KiB/PUT', 'PUT ms', 'PUT ms max', 'Synapse ms/key', 'Synapse wait s', 'Synapse CPU s', 'driver s', 'upload s', 'upload keys/s', 'whole flow keys/s'];
  printTable(head, [...sweep].map(([size, runs]) => {
    const r = medianRun(runs);
    const driver = r.steps.find(([name]) => name.startsWith('upload driver'))?.[1] ?? 0;
    return [
      String(size), String(r.puts.length), putKiB(r).toFixed(0), (putMs(r) / r.puts.length).toFixed(0),
      Math.max(...runs.flatMap((run) => run.puts.map((p) => p.ms))).toFixed(0), (putMs(r) / r.sessions).toFixed(3),
      s2(putMs(r)), s2(r.synapseCpuMs), s2(driver), s2(r.wallMs), int(keysPerSecond(r)), int((r.sessions / (ingestMs + r.wallMs)) * 1000),
    ];
  }));
  console.log(`  whole flow = this upload phase + the median decrypt and ingest of the main extension runs (${s(ingestMs)} s), which no batch size changes.`);
  console.log('  PUT ms max is over every PUT of every run at that size.\n');
}

// ---------------------------------------------------------------------------------------------
// Main

async function makeBench(synapse: Synapse, pid: number, rttMs: number, sessions: number, rooms: number, rounds: number): Promise<Bench> {
  const keys = await peerSessions(sessions, rooms);
  return { synapse, synapsePid: pid, rttMs, file: await keyFileFromPeer(keys, PASSPHRASE, rounds), keys };
}

async function main(): Promise<void> {
  const options = readOptions();
  if (options.help) {
    console.log(usage);
    return;
  }
  await initPeer();
  const synapse = await startSynapse({ name: 'bench-upload' });
  // A signal skips `finally`: stop Synapse (which removes its temp dir) before leaving.
  const onSignal = (): void => { void synapse.stop().finally(() => process.exit(130)); };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const pid = synapsePid(synapse);
    let t = performance.now();
    const bench = await makeBench(synapse, pid, options.rttMs, options.sessions, options.rooms, options.rounds);
    console.log(`Synapse ${SYNAPSE_VERSION} (SQLite) on 127.0.0.1 · Node ${process.version} · ${int(options.sessions)} sessions over ${options.rooms} rooms, made by Element's crypto`);
    console.log(`key file: ${(bench.file.length / 1e6).toFixed(1)} MB, ${int(options.rounds)} PBKDF2 rounds, the same file for every run (made in ${s(performance.now() - t)} s)`);
    console.log('extension side: the upload engine in NODE (ingestSessions + UploadDriver + vault on fake-indexeddb + HomeserverClient), not the built extension');
    if (options.rttMs > 0) console.log(`every PUT of both sides waits a SIMULATED ${options.rttMs} ms network round trip (counted in "Synapse wait")`);

    // Not measured: JIT, wasm tier-up and Synapse's first requests, for every side alike.
    t = performance.now();
    const warm = await makeBench(synapse, pid, options.rttMs, 200, 10, 1_000);
    await runExtension(warm, options.batch);
    for (const store of options.element) await runElement(warm, store);
    console.log(`warm-up: each side once on 200 sessions (${s(performance.now() - t)} s, not measured)\n`);

    const extension: RunResult[] = [];
    const indexeddb: RunResult[] = [];
    const withIndexedDb = options.element.includes('indexeddb');
    for (let round = 0; round < options.repeat; round++) {
      // Alternate who goes first: Synapse's database grows with every run.
      const order = round % 2 === 0 ? ['indexeddb', 'extension'] : ['extension', 'indexeddb'];
      for (const side of order) {
        if (side === 'extension') extension.push(await runExtension(bench, options.batch));
        else if (withIndexedDb) indexeddb.push(await runElement(bench, 'indexeddb'));
        else continue;
        const last = (side === 'extension' ? extension : indexeddb).at(-1)!;
        progress(`round ${round + 1}/${options.repeat}: ${last.label} ${s(last.wallMs)} s`);
      }
    }
    // Its time is the deterministic O(n²) scan (≈ 40 s of ≈ 43 s): one run shows it.
    const memory: RunResult[] = [];
    if (options.element.includes('memory')) {
      memory.push(await runElement(bench, 'memory'));
      progress(`${memory[0]!.label} ${s(memory[0]!.wallMs)} s`);
    }
    printSides([extension, indexeddb, memory].filter((runs) => runs.length > 0));
    printRatios(extension, indexeddb, memory);

    if (options.sweep) {
      const ingestMs = median(extension.map((r) => sum(r.steps.filter(([name]) => !name.startsWith('upload driver')).map(([, ms]) => ms))));
      printSweep(await runSweep(bench, options.sizes, options.repeat), ingestMs);
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await synapse.stop();
  }
}

try {
  await main();
} catch (e) {
  const kind = (e as { kind?: unknown } | null)?.kind;
  // Our own errors say what went wrong; anything else gets its stack.
  const text = e instanceof BenchError ? e.message : e instanceof Error ? e.stack ?? e.message : String(e);
  console.error(`bench/upload.ts failed${typeof kind === 'string' ? ` (${kind})` : ''}: ${text}`);
  process.exitCode = 1;
}
