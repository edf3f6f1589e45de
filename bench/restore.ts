/**
 * Restore throughput and memory: a server-side backup of N sessions in Synapse, restored through the
 * BUILT extension in headless Chromium, beside Element's crypto restoring the same backup in a page
 * of the same Chromium, in the same run. Run: `npm run bench:restore` (N = 20,000 and 100,000);
 * `--help` lists the options.
 *
 * The backups are written straight through the API: sessions generated here (each a distinct valid
 * megolm export key — version 0x01, first message index, random ratchet, a real Ed25519 point whose
 * unpadded base64 is the session id — in the member shape of a real session exported by Element's
 * crypto), encrypted with the core's `encryptSessionData`, PUT 5,000 at a time. Synapse's data dir
 * and the list of filled backups are kept in `.cache/bench-restore/`, so later runs skip the fill.
 *
 * Extension: a fresh Chromium profile (an empty vault) with the extension loaded; from its popup
 * page `account.login` (a new device of the backup's account), `vault.unlock` with the recovery key,
 * then the clock runs from sending `restore.start` to `status.get` reporting phase `done` (polled
 * every 250 ms). Afterwards `restored` must equal N and `failed` 0.
 *
 * Element: another fresh profile, a page served on 127.0.0.1 that does what Element Web does
 * (bench/restore-element-page.ts: one GET of the whole backup, decryptV1 per entry in chunks of 200,
 * importBackedUpRoomKeys into an OlmMachine with an IndexedDB store), timed in the page. Afterwards
 * the store must hold N sessions.
 *
 * Memory: `Runtime.getHeapUsage` every 200 ms over CDP, on the extension's service worker (attached
 * through a page session with Target.attachToTarget) and on Element's page: the JS heap in use, and
 * that plus ArrayBuffer backing stores (where the wasm linear memory lives). GC runs once before
 * the clock starts; the "before" column is the heap then. Nothing secret is printed.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ed25519 } from '@noble/curves/ed25519.js';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { build, type Plugin, type Rolldown } from 'vite';
import {
  backupPublicKey, BACKUP_ALGORITHM, createBackupDecryptor, encodeBase64, encodeRecoveryKey, encryptSessionData,
  parseExportedSession, type BackedUpSessionData, type EncryptedSessionData,
} from '../src/core/index.ts';
import type { RestoreSummary, Result, VaultStatus } from '../src/shared/messages.ts';
import { buildExtension } from '../scripts/build.ts';
import { chromeDist, chromiumPath, launchExtension, repoRoot } from '../test/harness/browser.ts';
import { startSynapse, SYNAPSE_VERSION, type Synapse } from '../test/harness/synapse.ts';
import { closePeerMachine, createPeerMachine, createSessions, exportSessions, groupByRoom, importBackupIntoFreshMachine, initPeer } from '../test/peer/index.ts';
import { pageProbe, startSampling, workerProbe, type HeapStats } from './heap-probe.ts';
import type { ElementRestoreInput, ElementRestoreResult } from './restore-element-page.ts';
import { processCpuMs, synapsePid } from './proc.ts';
import { synapseApi as api, SynapseApiError, syntheticSessionKey } from './common.ts';

class BenchError extends Error {
  override readonly name = 'BenchError';
  constructor(readonly kind: 'argument' | 'synapse' | 'fill' | 'extension' | 'element' | 'verify', message: string) {
    super(message);
  }
}

// ---------------------------------------------------------------------------------------------
// Options

const usage = `npx tsx bench/restore.ts [options]
  --keys LIST       backup sizes (default 20000,100000); each is its own account and backup
  --side LIST       extension,element (default both)
  --repeat N        runs per size and side, interleaved; medians are shown (default 1)
  --rooms N         rooms the sessions are spread over (default 500)
  --batch N         sessions per PUT when filling (default 5000)
  --extension DIR   a built extension to load as it is (default: build the current source into dist/chrome)
  --no-build        load dist/chrome as it is
  --no-heap         do not sample heaps over CDP (to see what sampling costs the wall time)
  --fresh           forget the cached Synapse (.cache/bench-restore) and fill again`;

type Side = 'extension' | 'element';

function wholeNumber(text: string, name: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1) throw new BenchError('argument', `--${name} must be a whole number ≥ 1, got ${JSON.stringify(text)}`);
  return n;
}

const optionSpec = {
  keys: { type: 'string', default: '20000,100000' },
  side: { type: 'string', default: 'extension,element' },
  repeat: { type: 'string', default: '1' },
  rooms: { type: 'string', default: '500' },
  batch: { type: 'string', default: '5000' },
  extension: { type: 'string' },
  'no-build': { type: 'boolean', default: false },
  'no-heap': { type: 'boolean', default: false },
  fresh: { type: 'boolean', default: false },
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
  const sides = values.side.split(',').map((name): Side => {
    if (name !== 'extension' && name !== 'element') throw new BenchError('argument', `--side takes extension and/or element, got ${JSON.stringify(name)}`);
    return name;
  });
  const keys = [...new Set(values.keys.split(',').map((k) => wholeNumber(k, 'keys')))].sort((a, b) => a - b);
  return {
    help: values.help,
    keys,
    sides: [...new Set(sides)],
    repeat: wholeNumber(values.repeat, 'repeat'),
    rooms: wholeNumber(values.rooms, 'rooms'),
    batch: wholeNumber(values.batch, 'batch'),
    extension: values.extension === undefined ? undefined : resolve(values.extension),
    build: !values['no-build'] && values.extension === undefined,
    heap: !values['no-heap'],
    fresh: values.fresh,
  };
}
type Options = ReturnType<typeof readOptions>;

// ---------------------------------------------------------------------------------------------
// Small helpers

const s = (ms: number): string => (ms / 1000).toFixed(1);
const int = (n: number): string => Math.round(n).toLocaleString('en');
const mb = (bytes: number): string => (bytes / 1e6).toFixed(0);
const progress = (line: string): void => { process.stderr.write(`  … ${line}\n`); };
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function median(xs: readonly number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function printTable(head: string[], rows: string[][]): void {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(line(head));
  for (const r of rows) console.log(line(r));
}


/** A Client-Server API call with an access token; the token never appears in a message. */

// ---------------------------------------------------------------------------------------------
// Sessions: distinct, valid, in the shape Element's crypto exports

interface KeyBackupData {
  first_message_index: number;
  forwarded_count: number;
  is_verified: boolean;
  session_data: EncryptedSessionData;
}

interface GeneratedSession {
  roomId: string;
  sessionId: string;
  firstMessageIndex: number;
  forwardedCount: number;
  data: BackedUpSessionData;
}

const b64 = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64').replace(/=+$/, '');

/**
 * Makes megolm sessions in the export format (session-key.ts): 0x01 ‖ index (u32 BE) ‖ 4×32 random
 * ratchet bytes ‖ Ed25519 public key. The keys are successive points P, P+B, P+2B, … from a random
 * P: real curve points (Element's crypto decompresses them), all distinct, 20× cheaper than a key
 * pair each. Senders (Curve25519 + Ed25519 device keys) and rooms are drawn from fixed pools; 70%
 * of sessions start at index 0, one in ten is forwarded once — as a real account's backup looks.
 */
class SessionFactory {
  readonly #template: BackedUpSessionData;
  readonly #rooms: string[];
  readonly #senders: Array<{ curve: string; ed: string }>;
  #point = ed25519.Point.BASE.multiply(BigInt(`0x${randomBytes(31).toString('hex')}`) + 1n);
  #count = 0;

  constructor(template: BackedUpSessionData, rooms: number) {
    const { room_id: _r, session_id: _s, ...rest } = template as BackedUpSessionData & { room_id?: string; session_id?: string };
    this.#template = rest as BackedUpSessionData;
    const letters = (n: number): string => Array.from(randomBytes(n), (b) => String.fromCharCode(65 + (b % 26) + (b & 32))).join('');
    this.#rooms = Array.from({ length: rooms }, () => `!${letters(18)}:bench.example`);
    this.#senders = Array.from({ length: 300 }, () => ({ curve: b64(randomBytes(32)), ed: b64(ed25519.getPublicKey(ed25519.utils.randomSecretKey())) }));
  }

  next(): GeneratedSession {
    const i = this.#count++;
    this.#point = this.#point.add(ed25519.Point.BASE);
    const publicKey = this.#point.toBytes();
    const { key, firstMessageIndex, forwarded } = syntheticSessionKey(publicKey);
    // Rooms are not equally busy: every room gets sessions, and a quarter of them hold ~60%.
    const room = i % 2 === 0 ? (i >> 1) % this.#rooms.length : (i >> 1) % Math.ceil(this.#rooms.length / 4);
    const sender = this.#senders[(i * 7919) % this.#senders.length]!;
    const data: BackedUpSessionData = {
      ...this.#template,
      sender_key: sender.curve,
      sender_claimed_keys: { ed25519: sender.ed },
      session_key: b64(key),
      forwarding_curve25519_key_chain: forwarded ? [b64(randomBytes(32))] : [],
    };
    return { roomId: this.#rooms[room]!, sessionId: b64(publicKey), firstMessageIndex, forwardedCount: forwarded ? 1 : 0, data };
  }
}

/** One real session exported by Element's crypto: the member shape every generated one copies. */
async function elementTemplate(): Promise<BackedUpSessionData> {
  const machine = await createPeerMachine();
  try {
    await createSessions(machine, { rooms: 1, sessionsPerRoom: 1, eventsPerSession: 0 });
    const [session] = await exportSessions(machine);
    if (!session) throw new BenchError('fill', 'Element\'s crypto exported no session');
    return session;
  } finally {
    closePeerMachine(machine);
  }
}

/** The extension's core and Element's crypto both take what the factory makes: checked on a sample. */
async function checkFactory(factory: SessionFactory): Promise<void> {
  const sample = Array.from({ length: 300 }, () => factory.next());
  for (const session of sample) {
    const parsed = parseExportedSession({ ...session.data, room_id: session.roomId, session_id: session.sessionId });
    if (parsed.sessionId !== session.sessionId || parsed.firstMessageIndex !== session.firstMessageIndex) {
      throw new BenchError('fill', `the core reads a generated session differently: ${parsed.sessionId} at ${parsed.firstMessageIndex}`);
    }
  }
  const { machine, importedCount, totalCount } = await importBackupIntoFreshMachine(groupByRoom(sample), 'bench-check');
  closePeerMachine(machine);
  if (importedCount !== sample.length || totalCount !== sample.length) {
    throw new BenchError('fill', `Element's crypto imported ${importedCount} of ${sample.length} generated sessions`);
  }
}

// ---------------------------------------------------------------------------------------------
// The cached Synapse and its backups

const cacheDir = join(repoRoot, '.cache/bench-restore');
const synapseDir = join(cacheDir, 'synapse');
const manifestPath = join(cacheDir, 'backups.json');
/** Bump when the generated content changes: cached backups of another generation are filled again. */
const GENERATION = 1;

interface CachedBackup {
  n: number;
  rooms: number;
  generation: number;
  localpart: string;
  password: string;
  userId: string;
  version: string;
  /** The backup private key, base64 (bench-only; git-ignored cache). */
  privateKey: string;
  filledInMs: number;
}

interface Manifest { serverName: string; backups: CachedBackup[] }

function readManifest(synapse: Synapse): Manifest {
  if (existsSync(manifestPath)) {
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as Manifest;
    if (manifest.serverName === synapse.serverName) return manifest;
  }
  return { serverName: synapse.serverName, backups: [] };
}

function writeManifest(manifest: Manifest): void {
  writeFileSync(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o600 });
}

async function startCachedSynapse(fresh: boolean): Promise<Synapse> {
  if (fresh) rmSync(cacheDir, { recursive: true, force: true });
  mkdirSync(cacheDir, { recursive: true });
  try {
    return await startSynapse({ name: 'bench-restore', dataDir: synapseDir });
  } catch (e) {
    // Most likely the kept port is taken now: user ids and tokens carry it, so start over.
    progress(`the cached Synapse did not start (${(e as Error).message.split('\n')[0]}); starting a new one and filling again`);
    rmSync(cacheDir, { recursive: true, force: true });
    mkdirSync(cacheDir, { recursive: true });
    return startSynapse({ name: 'bench-restore', dataDir: synapseDir });
  }
}

async function cachedBackupIsIntact(synapse: Synapse, backup: CachedBackup): Promise<boolean> {
  try {
    const user = await synapse.login(backup.localpart, backup.password);
    const info = await api<{ version: string; count: number }>(synapse.baseUrl, user.accessToken, 'GET', '/room_keys/version');
    await api(synapse.baseUrl, user.accessToken, 'POST', '/logout', {});
    return info.version === backup.version && info.count === backup.n;
  } catch {
    return false;
  }
}

async function fillBackup(synapse: Synapse, n: number, rooms: number, batch: number, template: BackedUpSessionData): Promise<CachedBackup> {
  const started = performance.now();
  const localpart = `bench-restore-${n}-${randomBytes(3).toString('hex')}`;
  const password = randomBytes(12).toString('hex');
  const user = await synapse.registerUser(localpart, password);
  const privateKey = crypto.getRandomValues(new Uint8Array(32));
  const publicKey = await backupPublicKey(privateKey);
  const { version } = await api<{ version: string }>(synapse.baseUrl, user.accessToken, 'POST', '/room_keys/version',
    { algorithm: BACKUP_ALGORITHM, auth_data: { public_key: publicKey } });

  const factory = new SessionFactory(template, rooms);
  await checkFactory(factory);
  const encryptBatch = async (size: number) => {
    const sessions = Array.from({ length: size }, () => factory.next());
    const encrypted = await Promise.all(sessions.map((session) => encryptSessionData(publicKey, session.data)));
    const body: { rooms: Record<string, { sessions: Record<string, KeyBackupData> }> } = { rooms: {} };
    sessions.forEach((session, i) => {
      const room = (body.rooms[session.roomId] ??= { sessions: {} });
      room.sessions[session.sessionId] = {
        first_message_index: session.firstMessageIndex, forwarded_count: session.forwardedCount, is_verified: false, session_data: encrypted[i]!,
      };
    });
    return body;
  };
  let inFlight: Promise<unknown> = Promise.resolve();
  for (let done = 0; done < n;) {
    const size = Math.min(batch, n - done);
    const body = await encryptBatch(size); // while the previous PUT is in Synapse
    await inFlight;
    inFlight = api(synapse.baseUrl, user.accessToken, 'PUT', `/room_keys/keys?version=${encodeURIComponent(version)}`, body);
    done += size;
    if (done % (batch * 4) === 0 || done === n) progress(`filling ${int(n)}: ${int(done)} sent (${s(performance.now() - started)} s)`);
  }
  await inFlight;
  const info = await api<{ version: string; count: number }>(synapse.baseUrl, user.accessToken, 'GET', '/room_keys/version');
  if (info.version !== version || info.count !== n) throw new BenchError('fill', `backup ${version} counts ${info.count} keys after the fill, expected ${int(n)}`);
  return { n, rooms, generation: GENERATION, localpart, password, userId: user.userId, version, privateKey: encodeBase64(privateKey, true), filledInMs: performance.now() - started };
}

/**
 * Reads the whole backup once from Node, before any measured run: every session id is distinct and
 * sampled entries decrypt (core) to sessions whose key is their id. Also brings Synapse's database
 * into the page cache, so the first measured run does not pay for the disk.
 */
async function verifyBackup(synapse: Synapse, backup: CachedBackup): Promise<{ ms: number; bytes: number }> {
  const user = await synapse.login(backup.localpart, backup.password);
  const t = performance.now();
  const response = await fetch(`${synapse.baseUrl}/_matrix/client/v3/room_keys/keys?version=${encodeURIComponent(backup.version)}`, {
    headers: { authorization: `Bearer ${user.accessToken}` },
  });
  const text = await response.text();
  const ms = performance.now() - t;
  await api(synapse.baseUrl, user.accessToken, 'POST', '/logout', {});
  if (!response.ok) throw new BenchError('verify', `GET /room_keys/keys answered HTTP ${response.status}`);
  const all = JSON.parse(text) as { rooms: Record<string, { sessions: Record<string, KeyBackupData> }> };
  const entries = Object.entries(all.rooms).flatMap(([roomId, room]) => Object.entries(room.sessions).map(([sessionId, data]) => ({ roomId, sessionId, data })));
  if (entries.length !== backup.n || new Set(entries.map((e) => e.sessionId)).size !== backup.n) {
    throw new BenchError('verify', `backup ${backup.version} holds ${entries.length} entries (${new Set(entries.map((e) => e.sessionId)).size} distinct), expected ${int(backup.n)}`);
  }
  const decryptor = await createBackupDecryptor(Buffer.from(backup.privateKey, 'base64'));
  for (let i = 0; i < 50; i++) {
    const entry = entries[Math.floor((i * entries.length) / 50)]!;
    const data = await decryptor.decrypt(entry.data.session_data);
    const parsed = parseExportedSession({ ...data, room_id: entry.roomId, session_id: entry.sessionId });
    if (parsed.firstMessageIndex !== entry.data.first_message_index) throw new BenchError('verify', `entry ${entry.sessionId} has a first index unlike its key's`);
  }
  return { ms, bytes: text.length };
}

// ---------------------------------------------------------------------------------------------
// Runs

interface RunResult {
  side: Side;
  n: number;
  round: number;
  wallMs: number;
  heap: HeapStats | null;
  synapseCpuMs: number;
  /** Element: its steps in ms; extension: what the restore summary says. */
  detail: string;
  wasmBytes?: number;
}

interface Bench {
  synapse: Synapse;
  synapsePid: number;
  options: Options;
  extensionPath: string;
  page?: { url: string; wasmUrl: string };
}

async function launchPlainChromium(): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  const userDataDir = mkdtempSync(join(tmpdir(), 'mkv-bench-element-'));
  // The harness's flags (test/harness/browser.ts), without the extension.
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: chromiumPath(),
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  return { context, close: async () => { await context.close(); rmSync(userDataDir, { recursive: true, force: true }); } };
}

async function runElement(bench: Bench, backup: CachedBackup, round: number): Promise<RunResult> {
  const user = await bench.synapse.login(backup.localpart, backup.password);
  const browser = await launchPlainChromium();
  try {
    const page = await browser.context.newPage();
    await page.goto(bench.page!.url);
    const input: ElementRestoreInput = {
      baseUrl: bench.synapse.baseUrl, accessToken: user.accessToken, userId: user.userId, deviceId: user.deviceId,
      version: backup.version, privateKeyBase64: backup.privateKey, storeName: `bench-element-${backup.n}-${round}`,
      storeKey: [...randomBytes(32)], wasmUrl: bench.page!.wasmUrl,
    };
    // Load the wasm before the clock starts (Element Web has it loaded long before a restore).
    await page.evaluate((wasmUrl) => (globalThis as unknown as { ElementRestore: { countStored: (i: unknown) => Promise<number> } })
      .ElementRestore.countStored({ userId: '@warm:bench.example', deviceId: 'WARM', storeName: 'warm', storeKey: Array(32).fill(1), wasmUrl }), bench.page!.wasmUrl);
    const sampling = await startSampling(bench.options.heap ? await pageProbe(browser.context, page) : null);
    const cpu0 = processCpuMs(bench.synapsePid);
    const result = await page.evaluate((i) => (globalThis as unknown as { ElementRestore: { restore: (i: unknown) => Promise<ElementRestoreResult> } })
      .ElementRestore.restore(i), input);
    const synapseCpuMs = processCpuMs(bench.synapsePid) - cpu0;
    const heap = await sampling.stop();
    if (result.total !== backup.n || result.imported !== backup.n || result.decryptFailures + result.importFailures > 0) {
      throw new BenchError('element', `Element's crypto restored ${result.imported} of ${result.total} (expected ${backup.n}; ${result.decryptFailures} not decrypted, ${result.importFailures} not imported)`);
    }
    const stored = await page.evaluate((i) => (globalThis as unknown as { ElementRestore: { countStored: (i: unknown) => Promise<number> } })
      .ElementRestore.countStored(i), input);
    if (stored !== backup.n) throw new BenchError('element', `the OlmMachine's store holds ${stored} sessions after the restore, expected ${backup.n}`);
    const st = result.steps;
    return {
      side: 'element', n: backup.n, round, wallMs: result.wallMs, heap, synapseCpuMs, wasmBytes: result.wasmMemoryBytes,
      detail: `GET version + key check ${s(st.versionAndKeyCheckMs)} s · GET /room_keys/keys (${mb(result.responseBytes)} MB) + JSON.parse ${s(st.downloadMs)} s`
        + ` · decryptV1 + JSON.parse ${s(st.decryptMs)} s · importBackedUpRoomKeys ${s(st.importMs)} s`,
    };
  } finally {
    await browser.close();
    await api(bench.synapse.baseUrl, user.accessToken, 'POST', '/logout', {}).catch(() => {});
  }
}

type Call = <T>(message: Record<string, unknown>) => Promise<T>;

function caller(page: Page): Call {
  return async <T>(message: Record<string, unknown>): Promise<T> => {
    const answer = await page.evaluate((m) => chrome.runtime.sendMessage(m), message) as Result<T> | undefined;
    if (!answer?.ok) {
      const error = answer ? `${answer.error.kind}: ${answer.error.message}` : 'no answer';
      throw new BenchError('extension', `${String(message.type)} failed: ${error}`);
    }
    return answer.value;
  };
}

async function runExtension(bench: Bench, backup: CachedBackup, round: number): Promise<RunResult> {
  const ext = await launchExtension({ extensionPath: bench.extensionPath });
  try {
    const page = await ext.openPage('popup.html');
    const call = caller(page);
    await call({ type: 'account.login', homeserver: bench.synapse.baseUrl, user: backup.localpart, password: backup.password });
    await call({ type: 'vault.unlock', input: encodeRecoveryKey(Buffer.from(backup.privateKey, 'base64')) });
    const sampling = await startSampling(bench.options.heap ? await workerProbe(ext.context, page, ext.extensionId) : null);
    const cpu0 = processCpuMs(bench.synapsePid);
    const bootIds = new Set([(await call<VaultStatus>({ type: 'status.get' })).worker.bootId]);
    const start = performance.now();
    const deadline = start + 600_000 + backup.n * 20;
    let restore: RestoreSummary | null = await call<RestoreSummary>({ type: 'restore.start' });
    let waits = 0;
    for (;;) {
      if (restore?.phase === 'done') break;
      if (restore && ['failed', 'cancelled', 'locked'].includes(restore.phase)) {
        throw new BenchError('extension', `the restore ended ${restore.phase} after ${int(restore.done)} of ${int(backup.n)}${restore.lastError ? `: ${restore.lastError.kind}: ${restore.lastError.message}` : ''}`);
      }
      if (restore?.phase === 'waiting') waits++;
      if (performance.now() > deadline) throw new BenchError('extension', `the restore was not done after ${s(performance.now() - start)} s (${int(restore?.done ?? 0)} of ${int(backup.n)})`);
      await sleep(250);
      const status = await call<VaultStatus>({ type: 'status.get' });
      bootIds.add(status.worker.bootId);
      restore = status.restore;
    }
    const wallMs = performance.now() - start;
    const synapseCpuMs = processCpuMs(bench.synapsePid) - cpu0;
    const heap = await sampling.stop();
    if (restore.restored !== backup.n || restore.failed !== 0) {
      throw new BenchError('extension', `the restore reports ${int(restore.restored)} restored, ${int(restore.alreadyPresent)} already present, ${int(restore.failed)} failed; expected ${int(backup.n)} restored`);
    }
    const status = await call<VaultStatus>({ type: 'status.get' });
    const workerMs = restore.finishedAt !== null ? restore.finishedAt - restore.startedAt : NaN;
    return {
      side: 'extension', n: backup.n, round, wallMs, heap, synapseCpuMs,
      detail: `worker's own clock ${s(workerMs)} s · ${int(restore.rooms)} rooms · ${restore.rate === null ? '' : `rate ${int(restore.rate)} keys/s · `}`
        + (restore.timings ? `download+parse ${s(restore.timings.download)} s, lookup ${s(restore.timings.lookup)} s, decrypt ${s(restore.timings.decrypt)} s, store ${s(restore.timings.store)} s (overlapping) · ` : '')
        + `${waits > 0 ? `seen waiting ${waits}× · ` : ''}${bootIds.size > 1 ? `WORKER RESTARTED ${bootIds.size - 1}× · ` : ''}upload pending afterwards: ${int(status.upload.pending)}`,
    };
  } finally {
    await ext.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Element's page: bundled with vite, served on 127.0.0.1

const wasmFile = join(repoRoot, 'node_modules/@matrix-org/matrix-sdk-crypto-wasm/pkg/matrix_sdk_crypto_wasm_bg.wasm');

/**
 * index.mjs finds its wasm with `new URL("./pkg/….wasm", import.meta.url)`; in one classic script
 * vite would inline the 8 MB module as a base64 data URL (10 MB of string in the page's heap). The
 * page passes the served file's URL to `initAsync` instead, so that expression is cut out.
 */
function dropDefaultWasmUrl(): Plugin {
  return {
    name: 'bench-drop-default-wasm-url',
    enforce: 'pre',
    transform(code, id) {
      if (!id.includes('matrix-sdk-crypto-wasm') || !id.split('?')[0]!.endsWith('index.mjs')) return null;
      const pattern = /new URL\("\.\/pkg\/matrix_sdk_crypto_wasm_bg\.wasm", import\.meta\.url\)/;
      if (!pattern.test(code)) throw new BenchError('element', 'matrix-sdk-crypto-wasm/index.mjs no longer has the expected default wasm URL');
      return code.replace(pattern, '"(the page passes the wasm URL to initAsync)"');
    },
  };
}

async function bundleElementPage(): Promise<string> {
  const result = await build({
    configFile: false,
    logLevel: 'warn',
    publicDir: false,
    plugins: [dropDefaultWasmUrl()],
    build: {
      write: false,
      minify: false,
      target: 'es2022',
      lib: { entry: join(import.meta.dirname, 'restore-element-page.ts'), formats: ['iife'], name: 'ElementRestore' },
    },
  });
  const outputs = (Array.isArray(result) ? result : [result]) as Rolldown.RolldownOutput[];
  const chunk = outputs.flatMap((o) => o.output).find((o) => o.type === 'chunk');
  if (!chunk || chunk.type !== 'chunk') throw new BenchError('element', 'vite produced no code for the Element page');
  if (chunk.code.includes('data:application/wasm')) throw new BenchError('element', 'the wasm was inlined into the Element page');
  return chunk.code;
}

async function serveElementPage(): Promise<{ server: Server; url: string; wasmUrl: string }> {
  const script = await bundleElementPage();
  const wasm = readFileSync(wasmFile);
  const html = '<!doctype html><meta charset="utf-8"><title>Element restore (bench)</title><script src="/element-restore.js"></script>';
  const server = createServer((request, response) => {
    const files: Record<string, [string, string | Buffer]> = {
      '/': ['text/html; charset=utf-8', html],
      '/element-restore.js': ['text/javascript; charset=utf-8', script],
      '/crypto.wasm': ['application/wasm', wasm],
    };
    const file = files[request.url ?? ''];
    if (!file) { response.writeHead(404).end(); return; }
    response.writeHead(200, { 'content-type': file[0], 'cache-control': 'no-store' }).end(file[1]);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return { server, url: `http://127.0.0.1:${port}/`, wasmUrl: `http://127.0.0.1:${port}/crypto.wasm` };
}

// ---------------------------------------------------------------------------------------------
// Printing

const keysPerSecond = (r: RunResult): number => (r.n / r.wallMs) * 1000;
const label = (side: Side): string => (side === 'extension' ? 'extension (service worker)' : 'Element crypto (page)');

function medianRun(runs: readonly RunResult[]): RunResult {
  const sorted = [...runs].sort((a, b) => a.wallMs - b.wallMs);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function printResults(results: RunResult[], options: Options): void {
  const groups = options.keys.flatMap((n) => options.sides.map((side) => results.filter((r) => r.n === n && r.side === side))).filter((g) => g.length > 0);
  console.log('');
  const head = ['keys', 'side', 'runs', 'wall s', 'keys/s', 'peak JS heap MB', 'peak heap+buffers MB', 'before MB', 'wasm MB', 'samples (max gap s)', 'Synapse CPU s'];
  printTable(head, groups.map((runs) => {
    const r = medianRun(runs);
    const h = r.heap;
    return [
      int(r.n), label(r.side), String(runs.length), s(r.wallMs), int(keysPerSecond(r)),
      h ? mb(h.peakUsed) : '—', h ? mb(h.peakWithBuffers) : '—', h ? mb(h.before) : '—', r.wasmBytes === undefined ? '—' : mb(r.wasmBytes),
      h ? `${h.samples} (${s(h.maxGapMs)})` : '—', s(r.synapseCpuMs),
    ];
  }));
  console.log('  wall: extension = restore.start sent → status.get says done (250 ms polls); Element = in the page, first GET → last import.');
  console.log('  heap: Runtime.getHeapUsage every 200 ms (worker / page), peak of usedSize, and of usedSize + backingStorageSize');
  console.log('  (ArrayBuffers, the wasm memory among them); "before" after a forced GC; wasm MB = Element\'s linear memory at the end (its peak).');
  console.log('  MB = 10^6 bytes. The median run by wall time is shown when --repeat > 1.\n');

  console.log('where the time goes (median runs):');
  for (const runs of groups) {
    const r = medianRun(runs);
    console.log(`  ${int(r.n)} · ${label(r.side)}: ${r.detail}`);
  }
  console.log('');

  if (options.sides.length === 2) {
    console.log('extension ÷ Element (median of per-round ratios):');
    const rows = options.keys.flatMap((n) => {
      const ext = results.filter((r) => r.n === n && r.side === 'extension');
      const el = results.filter((r) => r.n === n && r.side === 'element');
      if (ext.length === 0 || el.length === 0) return [];
      const pairs = ext.map((e) => [e, el.find((x) => x.round === e.round)] as const).filter((p): p is readonly [RunResult, RunResult] => p[1] !== undefined);
      const ratio = (f: (a: RunResult, b: RunResult) => number): string => {
        const values = pairs.map(([a, b]) => f(a, b)).filter((v) => Number.isFinite(v));
        return values.length ? `${median(values).toFixed(2)}×` : '—';
      };
      const heapRatio = (pick: (h: HeapStats, r: RunResult) => number) => ratio((a, b) => (a.heap && b.heap ? pick(a.heap, a) / pick(b.heap, b) : NaN));
      return [[int(n), ratio((a, b) => keysPerSecond(a) / keysPerSecond(b)), heapRatio((h) => h.peakUsed), heapRatio((h) => h.peakWithBuffers)]];
    });
    printTable(['keys', 'keys/s', 'peak JS heap', 'peak heap+buffers'], rows);
    console.log('  keys/s above 1× = the extension is faster; heap below 1× = the extension uses less.\n');
  }

  if (options.keys.length >= 2) {
    const lo = options.keys[0]!;
    const hi = options.keys.at(-1)!;
    console.log(`memory against size: peak at ${int(hi)} ÷ peak at ${int(lo)} keys (${(hi / lo).toFixed(1)}× the keys):`);
    const rows = options.sides.flatMap((side) => {
      const a = results.filter((r) => r.n === lo && r.side === side);
      const b = results.filter((r) => r.n === hi && r.side === side);
      if (a.length === 0 || b.length === 0) return [];
      const pa = medianRun(a).heap;
      const pb = medianRun(b).heap;
      if (!pa || !pb) return [];
      return [[label(side), `${(pb.peakUsed / pa.peakUsed).toFixed(2)}×`, `${(pb.peakWithBuffers / pa.peakWithBuffers).toFixed(2)}×`]];
    });
    printTable(['side', 'peak JS heap', 'peak heap+buffers'], rows);
    console.log('');
  }
}

// ---------------------------------------------------------------------------------------------
// Main

async function prepareExtension(options: Options): Promise<string> {
  if (options.extension) {
    if (!existsSync(join(options.extension, 'manifest.json'))) throw new BenchError('argument', `--extension ${options.extension} holds no manifest.json`);
    return options.extension;
  }
  if (options.build) await buildExtension();
  return chromeDist;
}

async function main(): Promise<void> {
  const options = readOptions();
  if (options.help) {
    console.log(usage);
    return;
  }
  const extensionPath = options.sides.includes('extension') ? await prepareExtension(options) : '';
  await initPeer();
  const synapse = await startCachedSynapse(options.fresh);
  let pageServer: Server | undefined;
  const onSignal = (): void => { void synapse.stop().finally(() => process.exit(130)); };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const bench: Bench = { synapse, synapsePid: synapsePid(synapse), options, extensionPath };
    const chromiumVersion = spawnSync(chromiumPath(), ['--version'], { encoding: 'utf8' }).stdout.trim();
    console.log(`Synapse ${SYNAPSE_VERSION} (SQLite) on 127.0.0.1 · ${chromiumVersion} headless · Node ${process.version}`);
    if (extensionPath) console.log(`extension: ${extensionPath}${options.build ? ' (built from the current source)' : ' (as it is)'}`);

    // The backups: cached ones if intact, else filled now.
    const manifest = readManifest(synapse);
    let template: BackedUpSessionData | undefined;
    const backups = new Map<number, CachedBackup>();
    for (const n of options.keys) {
      const cached = manifest.backups.find((b) => b.n === n && b.rooms === options.rooms && b.generation === GENERATION);
      if (cached && await cachedBackupIsIntact(synapse, cached)) {
        backups.set(n, cached);
        console.log(`backup of ${int(n)} sessions over ${options.rooms} rooms: cached in .cache/bench-restore (filled in ${s(cached.filledInMs)} s)`);
        continue;
      }
      template ??= await elementTemplate();
      const filled = await fillBackup(synapse, n, options.rooms, options.batch, template);
      manifest.backups = manifest.backups.filter((b) => b !== cached).concat(filled);
      writeManifest(manifest);
      backups.set(n, filled);
      console.log(`backup of ${int(n)} sessions over ${options.rooms} rooms: filled in ${s(filled.filledInMs)} s (${options.batch} per PUT)`);
    }
    for (const backup of backups.values()) {
      const { ms, bytes } = await verifyBackup(synapse, backup);
      console.log(`  ${int(backup.n)}: GET /room_keys/keys from Node ${s(ms)} s, ${mb(bytes)} MB; ids distinct, 50 sampled entries decrypt to their sessions (not measured)`);
    }

    if (options.sides.includes('element')) {
      const served = await serveElementPage();
      pageServer = served.server;
      bench.page = served;
    }

    const results: RunResult[] = [];
    for (const n of options.keys) {
      for (let round = 0; round < options.repeat; round++) {
        // Alternate who goes first, so neither always meets a Synapse fresh from the other's run.
        const order = (round + options.keys.indexOf(n)) % 2 === 0 ? options.sides : [...options.sides].reverse();
        for (const side of order) {
          const run = side === 'extension' ? await runExtension(bench, backups.get(n)!, round) : await runElement(bench, backups.get(n)!, round);
          results.push(run);
          progress(`${int(n)} keys, round ${round + 1}/${options.repeat}: ${label(side)} ${s(run.wallMs)} s, ${int(keysPerSecond(run))} keys/s`
            + `${run.heap ? `, peak heap ${mb(run.heap.peakUsed)} MB (+buffers ${mb(run.heap.peakWithBuffers)} MB)` : ''}`);
        }
      }
    }
    printResults(results, options);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    pageServer?.close();
    await synapse.stop();
  }
}

try {
  await main();
} catch (e) {
  const kind = (e as { kind?: unknown } | null)?.kind;
  const text = e instanceof BenchError || e instanceof SynapseApiError ? e.message : e instanceof Error ? e.stack ?? e.message : String(e);
  console.error(`bench/restore.ts failed${typeof kind === 'string' ? ` (${kind})` : ''}: ${text}`);
  process.exitCode = 1;
}
