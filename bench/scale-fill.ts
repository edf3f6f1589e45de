/**
 * A Synapse holding one large server-side backup, for the scale benchmarks (bench/scale-synapse.ts):
 * one user, joined to R rooms it created (unencrypted, created through the client API in parallel
 * batches), and a backup version of N entries spread over those rooms, written straight through
 * `PUT /room_keys/keys?version=` in large batches.
 *
 * Every entry is distinct and valid, as in bench/restore.ts: an export-format megolm key (0x01,
 * first message index, random ratchet, an Ed25519 point whose unpadded base64 is the session id —
 * the restore checks that id against the key), with the members of a real session exported by
 * Element's crypto; 70% start at index 0, one in ten was forwarded once; a quarter of the rooms
 * hold ≈ 60% of the entries, and no PUT spans more than 400 rooms (roomOfEntry). Each is encrypted
 * with the core's `encryptSessionData`; that is the slow part of a fill, so it runs in worker
 * threads that each build whole PUT bodies (`--workers`).
 *
 * Kept in `.cache/bench-scale/<keys>-<rooms>/` (Synapse's data dir and backup.json): a later call
 * with the same parameters starts Synapse on it and returns at once; an interrupted fill resumes
 * from the count Synapse holds.
 *
 * As a command: `npx tsx bench/scale-fill.ts --keys N --rooms R` fills (or finds) the backup and
 * stops; `--sweep` instead times PUT batch sizes against a throwaway Synapse.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { ed25519 } from '@noble/curves/ed25519.js';
import {
  backupPublicKey, BACKUP_ALGORITHM, encodeBase64, encodeRecoveryKey, encryptSessionData, parseExportedSession,
  type BackedUpSessionData, type EncryptedSessionData,
} from '../src/core/index.ts';
import { startSynapse, type Synapse } from '../test/harness/synapse.ts';
import { synapseApi as api, SynapseApiError, syntheticSessionKey } from './common.ts';
import { processCpuMs, synapsePid } from './proc.ts';

const repoRoot = resolve(import.meta.dirname, '..');

export class ScaleFillError extends Error {
  override readonly name = 'ScaleFillError';
  constructor(readonly kind: 'argument' | 'synapse' | 'fill' | 'cache', message: string) {
    super(message);
  }
}

const s = (ms: number): string => (ms / 1000).toFixed(1);
const int = (n: number): string => Math.round(n).toLocaleString('en');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A Client-Server API call with an access token; the token never appears in a message. */

// ---------------------------------------------------------------------------------------------
// Sessions and PUT bodies (run in worker threads, or in this thread with workers = 0)

/** What every body maker needs: public data only (the backup's public key, never its private key). */
interface MakerSetup {
  publicKey: string;
  template: BackedUpSessionData;
  roomIds: string[];
  senders: Array<{ curve: string; ed: string }>;
  /** Entries per PUT: it decides each entry's room (roomOfEntry). */
  batch: number;
}

const b64 = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64').replace(/=+$/, '');

/**
 * Rooms per PUT at most. Synapse looks up the body's keys in one SQL statement with an OR clause per
 * room; on SQLite more than ≈ 1,000 rooms in one PUT fail with "Expression tree is too large
 * (maximum depth 1000)" (HTTP 500). Found by this fill; a client's batches of a few hundred keys stay
 * below it.
 */
export const MAX_ROOMS_PER_PUT = 400;

/**
 * Entry i's room, for PUTs of `batch` entries. The rooms are split into m = ⌈rooms / 400⌉ classes
 * (r mod m); PUT number k takes its rooms from class k mod m, so over m PUTs every room has its
 * share and the entries of all rooms stay interleaved in the table, as a real backup's are. Within
 * a PUT, half the entries go round the class's rooms, half round those of them in the first quarter
 * of the rooms (so a quarter of the rooms hold ≈ 60% of the entries).
 */
export function roomOfEntry(i: number, rooms: number, batch: number): number {
  const classes = Math.ceil(rooms / MAX_ROOMS_PER_PUT);
  const k = Math.floor(i / batch) % classes;
  const j = i % batch;
  const inClass = Math.floor((rooms - 1 - k) / classes) + 1;
  const quarter = Math.ceil(rooms / 4);
  const inQuarter = k < quarter ? Math.floor((quarter - 1 - k) / classes) + 1 : 0;
  const n = j % 2 === 0 || inQuarter === 0 ? inClass : inQuarter;
  return k + classes * ((j >> 1) % n);
}

interface GeneratedSession { roomId: string; sessionId: string; firstMessageIndex: number; forwardedCount: number; data: BackedUpSessionData }

/**
 * Export-format megolm keys (session-key.ts): 0x01 ‖ index (u32 BE) ‖ 4×32 random ratchet bytes ‖
 * Ed25519 public key. The keys are successive points P, P+B, P+2B, … from a random P: real curve
 * points, all distinct, far cheaper than a key pair each. Each maker starts from its own P.
 */
class SessionFactory {
  readonly #setup: MakerSetup;
  readonly #template: BackedUpSessionData;
  #point = ed25519.Point.BASE.multiply(BigInt(`0x${randomBytes(31).toString('hex')}`) + 1n);

  constructor(setup: MakerSetup) {
    this.#setup = setup;
    const { room_id: _r, session_id: _s, ...rest } = setup.template as BackedUpSessionData & { room_id?: string; session_id?: string };
    this.#template = rest as BackedUpSessionData;
  }

  /** Entry number i of the backup (its number fixes its room and sender; its key is fresh). */
  make(i: number): GeneratedSession {
    this.#point = this.#point.add(ed25519.Point.BASE);
    const publicKey = this.#point.toBytes();
    const { key, firstMessageIndex, forwarded } = syntheticSessionKey(publicKey);
    const { roomIds, senders, batch } = this.#setup;
    const sender = senders[(i * 7919) % senders.length]!;
    const data: BackedUpSessionData = {
      ...this.#template,
      sender_key: sender.curve,
      sender_claimed_keys: { ed25519: sender.ed },
      session_key: b64(key),
      forwarding_curve25519_key_chain: forwarded ? [b64(randomBytes(32))] : [],
    };
    return { roomId: roomIds[roomOfEntry(i, roomIds.length, batch)]!, sessionId: b64(publicKey), firstMessageIndex, forwardedCount: forwarded ? 1 : 0, data };
  }
}

/** Key agreements of this many entries start together, two groups in flight (as decryptMany does; measured fastest). */
const ENCRYPT_GROUP = 64;

/** The body of one `PUT /room_keys/keys` for entries [start, start + size), as JSON text. */
async function makeBody(factory: SessionFactory, publicKey: string, start: number, size: number): Promise<string> {
  const sessions = Array.from({ length: size }, (_, k) => factory.make(start + k));
  const encrypted = new Array<EncryptedSessionData>(size);
  const group = (from: number): Promise<void> | undefined => from < size
    ? Promise.all(sessions.slice(from, from + ENCRYPT_GROUP).map((x) => encryptSessionData(publicKey, x.data)))
      .then((list) => { list.forEach((e, k) => { encrypted[from + k] = e; }); })
    : undefined;
  let next = group(0);
  for (let from = 0; next !== undefined; from += ENCRYPT_GROUP) {
    const current = next;
    next = group(from + ENCRYPT_GROUP);
    await current;
  }
  const rooms: Record<string, { sessions: Record<string, unknown> }> = {};
  sessions.forEach((x, k) => {
    (rooms[x.roomId] ??= { sessions: {} }).sessions[x.sessionId] = {
      first_message_index: x.firstMessageIndex, forwarded_count: x.forwardedCount, is_verified: false, session_data: encrypted[k]!,
    };
  });
  return JSON.stringify({ rooms });
}

interface WorkerJob { id: number; start: number; size: number }
interface WorkerReply { id: number; body?: string; error?: string }

if (!isMainThread && (workerData as { scaleFill?: MakerSetup } | null)?.scaleFill) {
  const setup = (workerData as { scaleFill: MakerSetup }).scaleFill;
  const factory = new SessionFactory(setup);
  parentPort!.on('message', (job: WorkerJob) => {
    makeBody(factory, setup.publicKey, job.start, job.size).then(
      (body) => parentPort!.postMessage({ id: job.id, body } satisfies WorkerReply),
      (e: unknown) => parentPort!.postMessage({ id: job.id, error: e instanceof Error ? e.message : String(e) } satisfies WorkerReply),
    );
  });
}

/** A worker thread does not inherit tsx's loader (Node 20): it registers it, then loads this file. */
const workerBoot = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then(({ register }) => { register(); return import(${JSON.stringify(import.meta.url)}); })`;

/** Builds PUT bodies in `workers` threads (0: in this thread), each at most two jobs ahead. */
class BodyMakers {
  readonly #workers: Worker[] = [];
  readonly #local: SessionFactory | undefined;
  readonly #setup: MakerSetup;
  readonly #pending = new Map<number, { resolve: (body: string) => void; reject: (e: Error) => void }>();
  #nextId = 0;
  #turn = 0;

  constructor(setup: MakerSetup, workers: number) {
    this.#setup = setup;
    if (workers === 0) this.#local = new SessionFactory(setup);
    for (let w = 0; w < workers; w++) {
      const worker = new Worker(workerBoot, { eval: true, workerData: { scaleFill: setup } });
      worker.on('message', (reply: WorkerReply) => {
        const waiter = this.#pending.get(reply.id);
        this.#pending.delete(reply.id);
        if (reply.body !== undefined) waiter?.resolve(reply.body);
        else waiter?.reject(new ScaleFillError('fill', `a body maker failed: ${reply.error}`));
      });
      worker.on('error', (e) => { for (const w of this.#pending.values()) w.reject(e); this.#pending.clear(); });
      this.#workers.push(worker);
    }
  }

  get threads(): number { return this.#workers.length; }

  make(start: number, size: number): Promise<string> {
    if (this.#local) return makeBody(this.#local, this.#setup.publicKey, start, size);
    const id = this.#nextId++;
    const worker = this.#workers[this.#turn++ % this.#workers.length]!;
    return new Promise((resolveBody, reject) => {
      this.#pending.set(id, { resolve: resolveBody, reject });
      worker.postMessage({ id, start, size } satisfies WorkerJob);
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.#workers.map((w) => w.terminate()));
  }
}

// ---------------------------------------------------------------------------------------------
// The template and the check that the core and Element's crypto take what the factory makes

/** One real session exported by Element's crypto: the member shape every generated one copies. */
async function elementTemplate(): Promise<BackedUpSessionData> {
  const { closePeerMachine, createPeerMachine, createSessions, exportSessions, initPeer } = await import('../test/peer/index.ts');
  await initPeer();
  const machine = await createPeerMachine();
  try {
    await createSessions(machine, { rooms: 1, sessionsPerRoom: 1, eventsPerSession: 0 });
    const [session] = await exportSessions(machine);
    if (!session) throw new ScaleFillError('fill', 'Element\'s crypto exported no session');
    return session as BackedUpSessionData;
  } finally {
    closePeerMachine(machine);
  }
}

async function checkFactory(setup: MakerSetup): Promise<void> {
  const { closePeerMachine, groupByRoom, importBackupIntoFreshMachine } = await import('../test/peer/index.ts');
  const factory = new SessionFactory(setup);
  const sample = Array.from({ length: 300 }, (_, i) => factory.make(i));
  for (const session of sample) {
    const parsed = parseExportedSession({ ...session.data, room_id: session.roomId, session_id: session.sessionId });
    if (parsed.sessionId !== session.sessionId || parsed.firstMessageIndex !== session.firstMessageIndex) {
      throw new ScaleFillError('fill', `the core reads a generated session differently: ${parsed.sessionId} at ${parsed.firstMessageIndex}`);
    }
  }
  const { machine, importedCount, totalCount } = await importBackupIntoFreshMachine(groupByRoom(sample), 'scale-check');
  closePeerMachine(machine);
  if (importedCount !== sample.length || totalCount !== sample.length) {
    throw new ScaleFillError('fill', `Element's crypto imported ${importedCount} of ${sample.length} generated sessions`);
  }
}

function randomSenders(): Array<{ curve: string; ed: string }> {
  return Array.from({ length: 300 }, () => ({ curve: b64(randomBytes(32)), ed: b64(ed25519.getPublicKey(ed25519.utils.randomSecretKey())) }));
}

// ---------------------------------------------------------------------------------------------
// Filling

/**
 * Default entries per PUT. `--sweep` (2 cores, Synapse 1.163.2 on SQLite; see bench/README.md):
 * larger batches cost Synapse less, up to the body limit (≈ 12.5 MiB ≈ 15,000 of these ≈ 870-byte
 * entries, reference §1.5); Synapse counts the whole version after every PUT, which large batches
 * amortise. 10,000 makes 8.3 MiB bodies.
 */
export const DEFAULT_FILL_BATCH = 10_000;

interface FillProgress { done: number; target: number; startedAt: number; synapsePid: number }

/**
 * PUTs entries [from, target) into the backup: bodies made `workers` threads wide, two PUTs in
 * flight (Synapse serialises a user's writes; the second is read while the first is written).
 */
async function putEntries(synapse: Synapse, accessToken: string, version: string, makers: BodyMakers, from: number, target: number, batch: number,
  log: (line: string) => void): Promise<{ count: number; ms: number }> {
  const started = performance.now();
  const progress: FillProgress = { done: from, target, startedAt: started, synapsePid: synapsePid(synapse) };
  const cpu0 = { node: process.cpuUsage(), synapse: processCpuMs(progress.synapsePid) };
  let lastLog = { at: started, done: from };
  const ahead = Math.max(2, makers.threads * 2);
  const bodies: Array<{ size: number; body: Promise<string> }> = [];
  let next = from;
  const refill = (): void => {
    while (bodies.length < ahead && next < target) {
      const size = Math.min(batch, target - next);
      const body = makers.make(next, size);
      body.catch(() => {}); // awaited below, in order
      bodies.push({ size, body });
      next += size;
    }
  };
  refill();
  const inFlight = new Set<Promise<void>>();
  let count = from;
  let failure: unknown;
  const path = `/room_keys/keys?version=${encodeURIComponent(version)}`;
  while (bodies.length > 0 || inFlight.size > 0) {
    if (failure) break;
    if (bodies.length > 0 && inFlight.size < 2) {
      const { size, body } = bodies.shift()!;
      const text = await body;
      refill();
      const put = api<{ count: number }>(synapse.baseUrl, accessToken, 'PUT', path, text).then((answer) => {
        count = Math.max(count, answer.count);
        progress.done += size;
        const now = performance.now();
        if (now - lastLog.at > 10_000 || progress.done === target) {
          const overall = ((progress.done - from) / (now - started)) * 1000;
          const recent = ((progress.done - lastLog.done) / (now - lastLog.at)) * 1000;
          const node = process.cpuUsage(cpu0.node);
          const cpu = `CPU: Synapse ${s(processCpuMs(progress.synapsePid) - cpu0.synapse)} s, Node ${s((node.user + node.system) / 1000)} s`;
          log(`filled ${int(progress.done)} / ${int(target)} · ${int(recent)} keys/s now, ${int(overall)} keys/s overall · ${s(now - started)} s`
            + ` · eta ${s(((target - progress.done) / Math.max(overall, 1)) * 1000)} s · ${cpu}`);
          lastLog = { at: now, done: progress.done };
        }
      }, (e: unknown) => { failure ??= e; });
      const tracked: Promise<void> = put.finally(() => inFlight.delete(tracked));
      inFlight.add(tracked);
      continue;
    }
    await Promise.race(inFlight);
  }
  await Promise.allSettled(inFlight);
  if (failure) throw failure;
  return { count, ms: performance.now() - started };
}

async function createRooms(synapse: Synapse, accessToken: string, rooms: number, log: (line: string) => void): Promise<string[]> {
  const started = performance.now();
  const ids: string[] = [];
  const parallel = 8;
  for (let done = 0; done < rooms;) {
    const size = Math.min(parallel, rooms - done);
    const created = await Promise.all(Array.from({ length: size }, (_, k) =>
      api<{ room_id: string }>(synapse.baseUrl, accessToken, 'POST', '/createRoom', { preset: 'private_chat', name: `scale ${done + k}` })));
    ids.push(...created.map((c) => c.room_id));
    done += size;
    if (done % 200 === 0 || done === rooms) log(`created ${int(done)} / ${int(rooms)} rooms (${s(performance.now() - started)} s)`);
  }
  return ids;
}

// ---------------------------------------------------------------------------------------------
// The cache

/** Bump when what a fill makes changes: a cache of another generation is filled again. */
const GENERATION = 1;

interface Manifest {
  generation: number;
  keys: number;
  rooms: number;
  serverName: string;
  localpart: string;
  password: string;
  userId: string;
  version: string;
  /** The backup private key, base64 (bench-only; the cache is git-ignored and written 0600). */
  privateKey: string;
  publicKey: string;
  roomIds: string[];
  template: BackedUpSessionData;
  roomsInMs: number;
  /** Fill time summed over the runs that filled it (an interrupted fill resumes). */
  filledInMs: number;
  complete: boolean;
  batch: number;
  workers: number;
}

export interface ScaleFillOptions {
  keys: number;
  rooms: number;
  /** Default `.cache/bench-scale/<keys>-<rooms>/`. */
  dir?: string;
  log?: (line: string) => void;
  /** Entries per PUT (default DEFAULT_FILL_BATCH). */
  batch?: number;
  /** Threads that encrypt (default: one per core, at most 4; 0 = this thread). */
  workers?: number;
  /** Forget the cache and fill again. */
  fresh?: boolean;
}

export interface ScaleBackup {
  /** The running Synapse (the caller stops it): baseUrl, serverName, login… */
  synapse: Synapse;
  user: { localpart: string; password: string; userId: string };
  version: string;
  /** The backup private key and its recovery key (as a user types it). */
  privateKey: Uint8Array;
  recoveryKey: string;
  publicKey: string;
  /** The rooms the user is joined to, which are the rooms the entries are in. */
  roomIds: string[];
  count: number;
  /** How long the fill took (rooms excluded), summed over resumed runs; `roomsInMs` for the rooms. */
  filledInMs: number;
  roomsInMs: number;
  /** True when this call found the backup already filled. */
  cached: boolean;
  dir: string;
}

function readManifest(path: string): Manifest | null {
  if (!existsSync(path)) return null;
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Manifest;
  } catch {
    return null;
  }
}

function writeManifest(path: string, manifest: Manifest): void {
  writeFileSync(path, `${JSON.stringify(manifest, null, 1)}\n`, { mode: 0o600 });
}

function asBackup(synapse: Synapse, m: Manifest, count: number, cached: boolean, dir: string): ScaleBackup {
  const privateKey = new Uint8Array(Buffer.from(m.privateKey, 'base64'));
  return {
    synapse, user: { localpart: m.localpart, password: m.password, userId: m.userId }, version: m.version,
    privateKey, recoveryKey: encodeRecoveryKey(privateKey), publicKey: m.publicKey, roomIds: m.roomIds, count,
    filledInMs: m.filledInMs, roomsInMs: m.roomsInMs, cached, dir,
  };
}

export function scaleCacheDir(keys: number, rooms: number): string {
  return join(repoRoot, '.cache/bench-scale', `${keys}-${rooms}`);
}

const defaultLog = (line: string): void => { process.stderr.write(`  … ${line}\n`); };

export function defaultWorkers(): number {
  return Math.max(1, Math.min(4, cpus().length));
}

/**
 * The backup of `keys` entries over `rooms` rooms, in a running Synapse: from the cache when it is
 * there and intact, else made (or finished) now. The caller stops `synapse`.
 */
export async function fillScaleBackup(options: ScaleFillOptions): Promise<ScaleBackup> {
  const { keys, rooms } = options;
  if (!Number.isSafeInteger(keys) || keys < 1 || !Number.isSafeInteger(rooms) || rooms < 1) throw new ScaleFillError('argument', `keys and rooms must be whole numbers ≥ 1 (got ${keys}, ${rooms})`);
  const log = options.log ?? defaultLog;
  const batch = options.batch ?? DEFAULT_FILL_BATCH;
  const workers = options.workers ?? defaultWorkers();
  const dir = resolve(options.dir ?? scaleCacheDir(keys, rooms));
  const manifestPath = join(dir, 'backup.json');
  const synapseDir = join(dir, 'synapse');

  let manifest = options.fresh ? null : readManifest(manifestPath);
  if (manifest && (manifest.generation !== GENERATION || manifest.keys !== keys || manifest.rooms !== rooms)) manifest = null;
  if (!manifest) rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });

  let synapse: Synapse;
  try {
    synapse = await startSynapse({ name: 'bench-scale', dataDir: synapseDir, log, startTimeoutMs: 180_000 });
  } catch (e) {
    if (!manifest) throw e;
    // Most likely the kept port is taken now: user ids and tokens carry it, so start over.
    log(`the cached Synapse did not start (${(e as Error).message.split('\n')[0]}); starting a new one and filling again`);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    manifest = null;
    synapse = await startSynapse({ name: 'bench-scale', dataDir: synapseDir, log });
  }
  if (manifest && manifest.serverName !== synapse.serverName) throw new ScaleFillError('cache', `${dir} holds a Synapse for ${synapse.serverName}, backup.json says ${manifest.serverName}`);

  try {
    let accessToken: string;
    if (manifest) {
      accessToken = (await synapse.login(manifest.localpart, manifest.password)).accessToken;
    } else {
      const localpart = `scale-${keys}-${randomBytes(3).toString('hex')}`;
      const password = randomBytes(12).toString('hex');
      const user = await synapse.registerUser(localpart, password);
      accessToken = user.accessToken;
      const roomsStarted = performance.now();
      const roomIds = await createRooms(synapse, accessToken, rooms, log);
      const roomsInMs = performance.now() - roomsStarted;
      const privateKey = crypto.getRandomValues(new Uint8Array(32));
      const publicKey = await backupPublicKey(privateKey);
      const { version } = await api<{ version: string }>(synapse.baseUrl, accessToken, 'POST', '/room_keys/version',
        { algorithm: BACKUP_ALGORITHM, auth_data: { public_key: publicKey } });
      log('making a template session with Element\'s crypto');
      const template = await elementTemplate();
      manifest = {
        generation: GENERATION, keys, rooms, serverName: synapse.serverName, localpart, password, userId: user.userId, version,
        privateKey: encodeBase64(privateKey, true), publicKey, roomIds, template, roomsInMs, filledInMs: 0, complete: false, batch, workers,
      };
      writeManifest(manifestPath, manifest);
    }

    const info = await api<{ version: string; count: number }>(synapse.baseUrl, accessToken, 'GET', '/room_keys/version');
    if (info.version !== manifest.version || info.count > keys) {
      throw new ScaleFillError('cache', `the cached backup is not as left: version ${info.version} with ${info.count} keys, expected ${manifest.version} with ≤ ${keys} (run with --fresh)`);
    }
    if (manifest.complete && info.count === keys) {
      await api(synapse.baseUrl, accessToken, 'POST', '/logout', {}).catch(() => {});
      log(`backup of ${int(keys)} keys over ${int(rooms)} rooms: cached in ${dir} (filled in ${s(manifest.filledInMs)} s)`);
      return asBackup(synapse, manifest, info.count, true, dir);
    }

    // A resumed fill keeps the batch size it started with: it decides each entry's room.
    const fillBatch = info.count > 0 ? manifest.batch : batch;
    if (info.count > 0) log(`resuming the fill at ${int(info.count)} of ${int(keys)} keys (${int(fillBatch)} per PUT, as it began)`);
    manifest.batch = fillBatch;
    writeManifest(manifestPath, manifest);
    const setup: MakerSetup = { publicKey: manifest.publicKey, template: manifest.template, roomIds: manifest.roomIds, senders: randomSenders(), batch: fillBatch };
    await checkFactory(setup);
    const makers = new BodyMakers(setup, workers);
    log(`filling ${int(keys - info.count)} keys: ${int(fillBatch)} per PUT, encrypted in ${workers === 0 ? 'this thread' : `${workers} worker threads`}`);
    let filled: { count: number; ms: number };
    try {
      filled = await putEntries(synapse, accessToken, manifest.version, makers, info.count, keys, fillBatch, log);
    } finally {
      await makers.close();
    }
    const after = await api<{ version: string; count: number }>(synapse.baseUrl, accessToken, 'GET', '/room_keys/version');
    if (after.count !== keys) throw new ScaleFillError('fill', `backup ${manifest.version} counts ${int(after.count)} keys after the fill, expected ${int(keys)}`);
    manifest.filledInMs += filled.ms;
    manifest.complete = true;
    manifest.workers = workers;
    writeManifest(manifestPath, manifest);
    await api(synapse.baseUrl, accessToken, 'POST', '/logout', {}).catch(() => {});
    log(`backup of ${int(keys)} keys over ${int(rooms)} rooms filled in ${s(filled.ms)} s (${int(((keys - info.count) / filled.ms) * 1000)} keys/s); rooms took ${s(manifest.roomsInMs)} s`);
    return asBackup(synapse, manifest, after.count, false, dir);
  } catch (e) {
    await synapse.stop();
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// Batch-size sweep: PUT the same pre-encrypted entries at each size into a fresh version

async function sweep(sizes: number[], entries: number, workers: number, log: (line: string) => void): Promise<void> {
  const synapse = await startSynapse({ name: 'bench-scale-sweep', log });
  try {
    const user = await synapse.registerUser(`sweep-${randomBytes(3).toString('hex')}`, randomBytes(12).toString('hex'));
    const roomIds = await createRooms(synapse, user.accessToken, 100, log);
    const publicKey = await backupPublicKey(crypto.getRandomValues(new Uint8Array(32)));
    const setup: MakerSetup = { publicKey, template: await elementTemplate(), roomIds, senders: randomSenders(), batch: Math.min(...sizes) };
    const makers = new BodyMakers(setup, workers);
    const encryptStarted = performance.now();
    // Blocks of the sizes' greatest common divisor; each batch size merges whole blocks.
    const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
    const unit = sizes.reduce(gcd);
    const starts = Array.from({ length: Math.ceil(entries / unit) }, (_, b) => b * unit);
    const blocks = (await Promise.all(starts.map((start) => makers.make(start, Math.min(unit, entries - start)))))
      .map((text) => JSON.parse(text) as { rooms: Record<string, { sessions: Record<string, unknown> }> });
    await makers.close();
    const encryptMs = performance.now() - encryptStarted;
    log(`encrypted ${int(entries)} entries in ${s(encryptMs)} s with ${workers === 0 ? 'this thread' : `${workers} worker threads`} (${int((entries / encryptMs) * 1000)} keys/s)`);
    const pid = synapsePid(synapse);
    const rows: string[][] = [];
    for (const size of sizes) {
      const per = Math.max(1, Math.round(size / unit));
      const bodies: string[] = [];
      for (let b = 0; b < blocks.length; b += per) {
        const merged: Record<string, { sessions: Record<string, unknown> }> = {};
        for (const block of blocks.slice(b, b + per)) {
          for (const [room, { sessions }] of Object.entries(block.rooms)) Object.assign((merged[room] ??= { sessions: {} }).sessions, sessions);
        }
        bodies.push(JSON.stringify({ rooms: merged }));
      }
      const { version } = await api<{ version: string }>(synapse.baseUrl, user.accessToken, 'POST', '/room_keys/version',
        { algorithm: BACKUP_ALGORITHM, auth_data: { public_key: publicKey } });
      const cpu0 = processCpuMs(pid);
      const t = performance.now();
      const path = `/room_keys/keys?version=${encodeURIComponent(version)}`;
      // Two in flight, as the fill does.
      let i = 0;
      await Promise.all([0, 1].map(async () => {
        while (i < bodies.length) await api(synapse.baseUrl, user.accessToken, 'PUT', path, bodies[i++]!);
      }));
      const ms = performance.now() - t;
      const cpu = processCpuMs(pid) - cpu0;
      rows.push([int(per * unit), String(bodies.length), (Math.max(...bodies.map((b) => b.length)) / 2 ** 20).toFixed(1), s(ms), int((entries / ms) * 1000), s(cpu)]);
      log(`batch ${int(size)}: ${s(ms)} s, ${int((entries / ms) * 1000)} keys/s, Synapse CPU ${s(cpu)} s`);
      await api(synapse.baseUrl, user.accessToken, 'DELETE', `/room_keys/version/${encodeURIComponent(version)}`);
      await sleep(500);
    }
    console.log(['batch', 'PUTs', 'largest body MiB', 'wall s', 'keys/s', 'Synapse CPU s'].join(' | '));
    for (const r of rows) console.log(r.join(' | '));
  } finally {
    await synapse.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// Command line

const usage = `npx tsx bench/scale-fill.ts --keys N --rooms R [options]
  --keys N          entries in the backup (default 100000)
  --rooms R         rooms the user is joined to and the entries are spread over (default 100)
  --batch N         entries per PUT (default ${DEFAULT_FILL_BATCH})
  --workers N       threads that encrypt (default ${defaultWorkers()}; 0 = the main thread)
  --fresh           forget the cached backup and fill again
  --sweep [--sizes 1000,2500,5000,10000] [--entries 40000]
                    time PUT batch sizes against a throwaway Synapse instead`;

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        keys: { type: 'string', default: '100000' }, rooms: { type: 'string', default: '100' }, batch: { type: 'string' },
        workers: { type: 'string' }, fresh: { type: 'boolean', default: false }, sweep: { type: 'boolean', default: false },
        sizes: { type: 'string', default: '1000,2500,5000,10000' }, entries: { type: 'string', default: '40000' }, help: { type: 'boolean', default: false },
      },
    }));
  } catch (e) {
    throw new ScaleFillError('argument', `${(e as Error).message}\n${usage}`);
  }
  if (values.help) { console.log(usage); return; }
  const whole = (text: string, name: string, min = 1): number => {
    const n = Number(text);
    if (!Number.isSafeInteger(n) || n < min) throw new ScaleFillError('argument', `--${name} must be a whole number ≥ ${min}, got ${JSON.stringify(text)}`);
    return n;
  };
  const workers = values.workers === undefined ? undefined : whole(values.workers, 'workers', 0);
  if (values.sweep) {
    await sweep(values.sizes.split(',').map((x) => whole(x, 'sizes')), whole(values.entries, 'entries'), workers ?? defaultWorkers(), defaultLog);
    return;
  }
  const started = performance.now();
  const backup = await fillScaleBackup({
    keys: whole(values.keys, 'keys'), rooms: whole(values.rooms, 'rooms'), fresh: values.fresh,
    ...(values.batch === undefined ? {} : { batch: whole(values.batch, 'batch') }), ...(workers === undefined ? {} : { workers }),
  });
  try {
    console.log(`${int(backup.count)} keys over ${backup.roomIds.length} rooms, backup version ${backup.version} of ${backup.user.userId} at ${backup.synapse.baseUrl}`
      + ` · ${backup.cached ? 'cached' : 'filled'}: fill ${s(backup.filledInMs)} s, rooms ${s(backup.roomsInMs)} s · this call ${s(performance.now() - started)} s · ${backup.dir}`);
  } finally {
    await backup.synapse.stop();
  }
}

if (isMainThread && process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  try {
    await main();
  } catch (e) {
    const kind = (e as { kind?: unknown } | null)?.kind;
    console.error(`bench/scale-fill.ts failed${typeof kind === 'string' ? ` (${kind})` : ''}: ${e instanceof ScaleFillError || e instanceof SynapseApiError ? e.message : e instanceof Error ? e.stack ?? e.message : String(e)}`);
    process.exitCode = 1;
  }
}
