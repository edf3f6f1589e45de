/**
 * A large key-file import to the server backup, in the BUILT extension, beside Element's crypto:
 * `npm run bench:scale-upload -- [--sessions 100000] [--rounds 500000] [--rooms 100]`.
 *
 * The key file (Element's format, `--rounds` PBKDF2 rounds) is made once and kept in
 * `.cache/bench-scale-upload/`: N distinct, valid export-format megolm sessions (bench/common.ts's
 * syntheticSessionKey on successive Ed25519 points, so every session id is its key's point), with the
 * members of a real session exported by Element's crypto, spread over `--rooms` rooms as
 * bench/scale-fill.ts spreads a backup (a quarter of the rooms hold ≈ 60%); encrypted with the core's
 * `encryptKeyFile`. A sample is checked to be accepted by the core and imported by Element's crypto,
 * and Element's crypto must decrypt the file.
 *
 * One Synapse (test/harness/synapse.ts, the pinned version) for the whole run; each side gets a fresh
 * account and its own backup version with a random key.
 *
 * - extension: the current source built into `.cache/bench-scale-upload/build` (dist/ is left alone),
 *   headless Chromium with a fresh profile; from its popup page `account.login` and `vault.unlock`
 *   with the backup's recovery key (which pins the backup); then import.html, the file chosen in its
 *   file input and the passphrase typed, as a person does. The clock runs from the click on "Import"
 *   until the page shows its result and `status.get` (polled every 250 ms from the popup page) says
 *   upload phase `idle`, pending 0 and N stored. The import page's JS heap is sampled over CDP
 *   (`Runtime.getHeapUsage`, every 200 ms), and once, half-way through sending, read after a forced
 *   GC: what the page keeps while it hands the sessions over.
 * - Element: @matrix-org/matrix-sdk-crypto-wasm in Node as bench/upload.ts drives it (its IndexedDB
 *   store on fake-indexeddb, as Element Web opens it): `decryptExportedRoomKeys` +
 *   `importExportedRoomKeys` into one OlmMachine, `enableBackupV1`, then `backupRoomKeys` → PUT →
 *   `markRequestAsSent` until nothing is left. The clock runs from the key file's text to that.
 *
 * Afterwards each side's backup version must count N, and sampled entries must decrypt to the file's
 * keys. Nothing secret is printed (the passphrase, passwords, tokens and keys stay in this process).
 */
import 'fake-indexeddb/auto';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ed25519 } from '@noble/curves/ed25519.js';
import { BackupDecryptionKey, DeviceId, OlmMachine, RequestType, StoreHandle, UserId } from '@matrix-org/matrix-sdk-crypto-wasm';
import type { Page } from 'playwright-core';
import {
  BACKUP_ALGORITHM, createBackupDecryptor, decodeBase64, decryptKeyFile, encodeRecoveryKey, encryptKeyFile, parseExportedSession,
} from '../src/core/index.ts';
import { UPLOAD_TIMEOUT_MS } from '../src/background/services.ts';
import { HomeserverClient } from '../src/platform/homeserver.ts';
import type { Result, VaultStatus } from '../src/shared/messages.ts';
import { buildExtension } from '../scripts/build.ts';
import { chromiumPath, launchExtension, repoRoot } from '../test/harness/browser.ts';
import { startSynapse, uniqueLocalpart, SYNAPSE_VERSION, type Synapse, type SynapseUser } from '../test/harness/synapse.ts';
import { createServerBackup, randomKey } from '../test/harness/upload-rig.ts';
import {
  closePeerMachine, createPeerMachine, createSessions, exportSessions, importExportedIntoFreshMachine, initPeer, type ExportedSessionData,
} from '../test/peer/index.ts';
import { syntheticSessionKey } from './common.ts';
import { pageProbe, startSampling, workerProbe, type HeapProbe } from './heap-probe.ts';
import { processCpuMs, synapsePid } from './proc.ts';
import { roomOfEntry } from './scale-fill.ts';

class ScaleUploadError extends Error {
  override readonly name = 'ScaleUploadError';
  constructor(readonly kind: 'argument' | 'keyfile' | 'extension' | 'element' | 'verify', message: string) {
    super(message);
  }
}

const usage = `npm run bench:scale-upload -- [options]
  --sessions N      sessions in the key file (default 100000)
  --rounds N        PBKDF2 rounds of the key file (default 500000, Element's default)
  --rooms N         rooms the sessions are spread over (default 100)
  --side LIST       extension,element (default both)
  --repeat N        runs of each side, interleaved, who goes first alternating (default 1)
  --every S         seconds between progress lines on stderr (default 5)
  --no-build        load .cache/bench-scale-upload/build/chrome as it is
  --no-heap         do not sample the import page's heap
  --fresh           make the key file again even if one is cached`;

const s = (ms: number): string => (ms / 1000).toFixed(1);
const int = (n: number): string => Math.round(n).toLocaleString('en');
const mb = (bytes: number): string => (bytes / 1e6).toFixed(1);
const log = (line: string): void => { process.stderr.write(`  … ${line}\n`); };
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function readOptions() {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        sessions: { type: 'string', default: '100000' }, rounds: { type: 'string', default: '500000' }, rooms: { type: 'string', default: '100' },
        side: { type: 'string', default: 'extension,element' }, repeat: { type: 'string', default: '1' }, every: { type: 'string', default: '5' },
        'no-build': { type: 'boolean', default: false }, 'no-heap': { type: 'boolean', default: false }, fresh: { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
    }));
  } catch (e) {
    throw new ScaleUploadError('argument', `${(e as Error).message}\n${usage}`);
  }
  const whole = (text: string, name: string, min = 1): number => {
    const n = Number(text);
    if (!Number.isSafeInteger(n) || n < min) throw new ScaleUploadError('argument', `--${name} must be a whole number ≥ ${min}, got ${JSON.stringify(text)}`);
    return n;
  };
  const sides = values.side.split(',').map((side) => {
    if (side !== 'extension' && side !== 'element') throw new ScaleUploadError('argument', `--side takes extension and/or element, got ${JSON.stringify(side)}`);
    return side;
  });
  return {
    help: values.help,
    sessions: whole(values.sessions, 'sessions'),
    rounds: whole(values.rounds, 'rounds'),
    rooms: whole(values.rooms, 'rooms'),
    sides: new Set(sides),
    repeat: whole(values.repeat, 'repeat'),
    everyMs: Math.min(whole(values.every, 'every'), 10) * 1000,
    build: !values['no-build'],
    heap: !values['no-heap'],
    fresh: values.fresh,
  };
}

// ---------------------------------------------------------------------------------------------
// The key file

/** Bench-only; the file is never a real user's. */
const PASSPHRASE = 'bench-only scale-upload key file passphrase';
/** Bump when what makeKeyFile writes changes: a cached file of another generation is made again. */
const GENERATION = 1;
const cacheDir = join(repoRoot, '.cache/bench-scale-upload');

const b64 = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64').replace(/=+$/, '');

/** One real session exported by Element's crypto: the members every generated one copies. */
async function elementTemplate(): Promise<ExportedSessionData> {
  const machine = await createPeerMachine();
  try {
    await createSessions(machine, { rooms: 1, sessionsPerRoom: 1, eventsPerSession: 0 });
    const [session] = await exportSessions(machine);
    if (!session) throw new ScaleUploadError('keyfile', 'Element\'s crypto exported no session');
    return session;
  } finally {
    closePeerMachine(machine);
  }
}

function makeSessions(count: number, rooms: number, template: ExportedSessionData): ExportedSessionData[] {
  const roomIds = Array.from({ length: rooms }, () => `!${randomBytes(12).toString('base64url')}:bench.invalid`);
  const senders = Array.from({ length: 300 }, () => ({ curve: b64(randomBytes(32)), ed: b64(ed25519.getPublicKey(ed25519.utils.randomSecretKey())) }));
  // Successive points P, P+B, P+2B, …: real, distinct curve points, far cheaper than a key pair each.
  let point = ed25519.Point.BASE.multiply(BigInt(`0x${randomBytes(31).toString('hex')}`) + 1n);
  const sessions: ExportedSessionData[] = [];
  for (let i = 0; i < count; i++) {
    point = point.add(ed25519.Point.BASE);
    const publicKey = point.toBytes();
    const { key, forwarded } = syntheticSessionKey(publicKey);
    const sender = senders[(i * 7919) % senders.length]!;
    sessions.push({
      ...template,
      room_id: roomIds[roomOfEntry(i, rooms, 10_000)]!,
      session_id: b64(publicKey),
      sender_key: sender.curve,
      sender_claimed_keys: { ed25519: sender.ed },
      session_key: b64(key),
      forwarding_curve25519_key_chain: forwarded ? [b64(randomBytes(32))] : [],
    });
  }
  return sessions;
}

async function checkSample(sessions: readonly ExportedSessionData[]): Promise<void> {
  const sample = sessions.filter((_, i) => i % Math.max(1, Math.floor(sessions.length / 300)) === 0).slice(0, 300);
  for (const session of sample) {
    const parsed = parseExportedSession(session);
    if (parsed.sessionId !== session.session_id) throw new ScaleUploadError('keyfile', `the core reads generated session ${session.session_id} as ${parsed.sessionId}`);
  }
  const { machine, importedCount } = await importExportedIntoFreshMachine(sample);
  closePeerMachine(machine);
  if (importedCount !== sample.length) throw new ScaleUploadError('keyfile', `Element's crypto imported ${importedCount} of ${sample.length} generated sessions`);
}

interface KeyFile {
  path: string;
  text: string;
  /** The file's sessions, read back from the file (for the checks afterwards). */
  keys: ExportedSessionData[];
  /** Length of the decrypted JSON, in characters (= bytes: it is ASCII). */
  jsonLength: number;
  cached: boolean;
  madeInMs: number;
}

async function keyFile(sessions: number, rooms: number, rounds: number, fresh: boolean): Promise<KeyFile> {
  mkdirSync(cacheDir, { recursive: true, mode: 0o700 });
  const path = join(cacheDir, `keys-g${GENERATION}-${sessions}-${rooms}-${rounds}.txt`);
  const started = performance.now();
  const cached = existsSync(path) && !fresh;
  if (!cached) {
    log(`making the key file: ${int(sessions)} sessions over ${rooms} rooms, ${int(rounds)} PBKDF2 rounds`);
    const list = makeSessions(sessions, rooms, await elementTemplate());
    await checkSample(list);
    const text = await encryptKeyFile(JSON.stringify(list), PASSPHRASE, rounds);
    writeFileSync(`${path}.part`, text, { mode: 0o600 });
    renameSync(`${path}.part`, path);
    chmodSync(path, 0o600);
  }
  const text = readFileSync(path, 'utf8');
  const json = await decryptKeyFile(text, PASSPHRASE);
  const keys = JSON.parse(json) as ExportedSessionData[];
  if (keys.length !== sessions) {
    if (cached) {
      log(`the cached key file holds ${keys.length} sessions, not ${sessions}: making it again`);
      return keyFile(sessions, rooms, rounds, true);
    }
    throw new ScaleUploadError('keyfile', `the key file holds ${keys.length} sessions, expected ${sessions}`);
  }
  if (new Set(keys.map((k) => k.session_id)).size !== keys.length) throw new ScaleUploadError('keyfile', 'the key file holds a session id twice');
  // Element's crypto must read the same file (it is what its side starts from).
  const elementCount = (JSON.parse(OlmMachine.decryptExportedRoomKeys(text, PASSPHRASE)) as unknown[]).length;
  if (elementCount !== sessions) throw new ScaleUploadError('keyfile', `Element's crypto reads ${elementCount} sessions from the key file`);
  return { path, text, keys, jsonLength: json.length, cached, madeInMs: performance.now() - started };
}

// ---------------------------------------------------------------------------------------------
// Shared

interface Bench {
  synapse: Synapse;
  synapsePid: number;
  file: KeyFile;
  everyMs: number;
  extensionPath: string;
  heap: boolean;
}

interface RunResult {
  side: 'extension' | 'element';
  wallMs: number;
  synapseCpuMs: number;
  /** Named moments from the start of the clock, in ms. */
  marks: Array<[string, number]>;
  /** Side-specific lines for the report. */
  notes: string[];
}

const keysPerSecond = (bench: Bench, r: RunResult): number => (bench.file.keys.length / r.wallMs) * 1000;

async function newAccount(bench: Bench, prefix: string): Promise<{ user: SynapseUser; localpart: string; password: string; client: HomeserverClient }> {
  const localpart = uniqueLocalpart(prefix);
  const password = `bench-only ${randomBytes(12).toString('hex')}`;
  const user = await bench.synapse.registerUser(localpart, password);
  return { user, localpart, password, client: new HomeserverClient({ baseUrl: bench.synapse.baseUrl, accessToken: user.accessToken }) };
}

/** The server counts every session, and sampled entries decrypt to the key file's keys. */
async function verify(bench: Bench, client: HomeserverClient, version: string, privateKey: Uint8Array): Promise<string> {
  const keys = bench.file.keys;
  const info = await client.getLatestBackupVersion();
  if (info?.version !== version) throw new ScaleUploadError('verify', `the current backup is ${info?.version ?? 'none'}, not ${version}`);
  if (info.count !== keys.length) throw new ScaleUploadError('verify', `backup ${version} holds ${int(info.count)} keys, expected ${int(keys.length)}`);
  const decryptor = await createBackupDecryptor(privateKey);
  const samples = Math.min(25, keys.length);
  for (let i = 0; i < samples; i++) {
    const expected = keys[Math.floor((i * keys.length) / samples + Math.random() * (keys.length / samples))]!;
    const entry = await client.getBackupSessionKey(version, expected.room_id, expected.session_id);
    const data = await decryptor.decrypt(entry.session_data);
    if (data.session_key !== expected.session_key || data.sender_key !== expected.sender_key) {
      throw new ScaleUploadError('verify', `backup entry ${expected.session_id} does not decrypt to the key file's session`);
    }
  }
  return `server count ${int(info.count)} = N; ${samples} sampled entries decrypt to the file's keys`;
}

// ---------------------------------------------------------------------------------------------
// The extension

type Call = <T>(message: Record<string, unknown>) => Promise<T>;

function caller(page: Page): Call {
  return async <T>(message: Record<string, unknown>): Promise<T> => {
    const answer = await page.evaluate((m) => chrome.runtime.sendMessage(m), message) as Result<T> | undefined;
    if (!answer?.ok) {
      const error = answer ? `${answer.error.kind}: ${answer.error.message}` : 'no answer';
      throw new ScaleUploadError('extension', `${String(message.type)} failed: ${error}`);
    }
    return answer.value;
  };
}

/** What the import page shows, recorded in the page as it changes (performance.now() of the page). */
interface PageMarks { submit: number | null; firstStoring: number | null; result: number | null; alert: string | null; progress: string | null }

/** Records, inside the page, when its form is submitted, when it starts sending and when it shows a result. */
async function watchImportPage(page: Page): Promise<void> {
  await page.evaluate(() => {
    const marks = { submit: null as number | null, firstStoring: null as number | null, result: null as number | null, alert: null as string | null, progress: null as string | null };
    (globalThis as unknown as { __benchMarks: typeof marks }).__benchMarks = marks;
    document.addEventListener('submit', () => { marks.submit ??= performance.now(); }, true);
    new MutationObserver(() => {
      const progress = document.querySelector('[data-testid=progress]')?.textContent ?? null;
      marks.progress = progress;
      if (progress !== null && progress.startsWith('Storing') && marks.firstStoring === null) marks.firstStoring = performance.now();
      if (marks.result === null && document.querySelector('[data-testid=result]')) marks.result = performance.now();
      const alert = document.querySelector('[role=alert]');
      if (alert && !document.querySelector('[data-testid=result]')) marks.alert = alert.textContent;
    }).observe(document.body, { subtree: true, childList: true, characterData: true });
  });
}

const readMarks = (page: Page): Promise<PageMarks> => page.evaluate(() => (globalThis as unknown as { __benchMarks: PageMarks }).__benchMarks);

async function runExtension(bench: Bench, round: number): Promise<RunResult> {
  const n = bench.file.keys.length;
  const { localpart, password, client } = await newAccount(bench, 'scale-up-ext');
  const privateKey = randomKey();
  const { version } = await createServerBackup(client, privateKey);
  const ext = await launchExtension({ extensionPath: bench.extensionPath });
  try {
    const popup = await ext.openPage('popup.html');
    const call = caller(popup);
    await call({ type: 'account.login', homeserver: bench.synapse.baseUrl, user: localpart, password });
    await call({ type: 'vault.unlock', input: encodeRecoveryKey(privateKey) });
    const before = await call<VaultStatus>({ type: 'status.get' });
    if (before.backup?.version !== version) throw new ScaleUploadError('extension', `the extension pinned backup ${before.backup?.version ?? 'none'}, not ${version}`);
    if (before.upload.stored !== 0) throw new ScaleUploadError('extension', `a fresh profile holds ${before.upload.stored} sessions`);

    const page = await ext.openPage('import.html');
    await page.getByTestId('file').setInputFiles(bench.file.path);
    await page.getByTestId('passphrase').fill(PASSPHRASE);
    await watchImportPage(page);
    let probe: HeapProbe | null = null;
    let lineProbe: HeapProbe | null = null;
    if (bench.heap) {
      probe = await pageProbe(ext.context, page);
      lineProbe = await pageProbe(ext.context, page);
    }
    const sampling = await startSampling(probe);
    const workerSampling = await startSampling(bench.heap ? await workerProbe(ext.context, popup, ext.extensionId) : null);
    // Just after startSampling's GC: the page's JS heap and ArrayBuffers before the import.
    const beforeUsage = bench.heap ? await lineProbe!.read() : null;
    const heapBefore = beforeUsage?.usedSize ?? 0;
    const buffersBefore = beforeUsage?.backingStorageSize ?? 0;
    let retained: { usedSize: number; withBuffers: number; at: number } | null = null;
    let lastHeap = heapBefore;

    const cpu0 = processCpuMs(bench.synapsePid);
    const start = performance.now();
    await page.getByTestId('import').click();
    const deadline = start + 1_800_000 + n * 20;
    let lastLine = { t: 0, stored: 0, server: 0 };
    let status = before;
    let marks: PageMarks | null = null;
    let pageDone = false;
    let waits = 0;
    let pageAnswered = true;
    for (;;) {
      await sleep(250);
      status = await call<VaultStatus>({ type: 'status.get' });
      const now = performance.now();
      const up = status.upload;
      if (up.phase === 'waiting') waits++;
      if (up.phase === 'stopped') throw new ScaleUploadError('extension', `the upload stopped: ${up.stopped ? JSON.stringify(up.stopped) : '?'}${up.lastError ? ` (${up.lastError.kind}: ${up.lastError.message})` : ''}`);
      // The page answers only between its tasks (JSON.parse of the whole file is one): don't wait for it.
      if (!pageDone && pageAnswered) {
        pageAnswered = false;
        void readMarks(page).then((m) => { marks = m; pageAnswered = true; }, () => { pageAnswered = true; });
      }
      const m = marks as PageMarks | null;
      if (m?.alert) throw new ScaleUploadError('extension', `the import page shows an error: ${m.alert}`);
      if (m?.result !== null && m?.result !== undefined) pageDone = true;
      if (pageDone && up.phase === 'idle' && up.pending === 0 && up.stored >= n) break;
      if (now > deadline) throw new ScaleUploadError('extension', `not done after ${s(now - start)} s: page "${m?.progress ?? '?'}", stored ${int(up.stored)}, pending ${int(up.pending)}`);
      // Once, half-way through sending: what the page keeps while it hands the sessions over.
      if (bench.heap && retained === null && m?.firstStoring !== null && m?.firstStoring !== undefined && up.stored >= n / 2 && !pageDone) {
        const usage = await heapAfterGc(lineProbe!);
        if (usage) retained = { ...usage, at: performance.now() - start };
      }
      if (now - start - lastLine.t >= bench.everyMs) {
        const t = now - start;
        if (lineProbe) lastHeap = (await lineProbe.read().catch(() => null))?.usedSize ?? lastHeap;
        const server = up.stored - up.pending;
        log(`extension ${round + 1}: ${s(t)} s · page "${m?.progress ?? (pageDone ? 'done' : '?')}" · vault ${int(up.stored)} / ${int(n)} · uploaded ${int(server)}`
          + ` (${int(((server - lastLine.server) / (t - lastLine.t)) * 1000)} keys/s now, ${int((server / t) * 1000)} overall) · upload ${up.phase}`
          + ` · page heap ${mb(lastHeap)} MB`);
        lastLine = { t, stored: up.stored, server };
      }
    }
    const wallMs = performance.now() - start;
    const synapseCpuMs = processCpuMs(bench.synapsePid) - cpu0;
    const heap = await sampling.stop();
    const workerHeap = await workerSampling.stop();
    const afterwards = lineProbe ? await heapAfterGc(lineProbe) : null;
    await lineProbe?.close().catch(() => {});
    const final = await readMarks(page);
    const result = page.getByTestId('result');
    const stored = Number(await result.getAttribute('data-stored'));
    const unchanged = Number(await result.getAttribute('data-unchanged'));
    const rejected = Number(await result.getAttribute('data-rejected'));
    if (stored !== n || rejected !== 0) throw new ScaleUploadError('extension', `the page stored ${stored}, unchanged ${unchanged}, rejected ${rejected} of ${n}`);
    if (status.upload.stored !== n) throw new ScaleUploadError('extension', `the vault holds ${status.upload.stored} sessions, not ${n}`);
    const checked = await verify(bench, client, version, privateKey);
    const submit = final.submit ?? 0;
    const pageMark = (t: number | null): number => (t === null ? NaN : t - submit);
    const json = bench.file.jsonLength;
    const notes = [
      `page: decrypt + parse until the first chunk went ${s(pageMark(final.firstStoring))} s, all chunks stored ${s(pageMark(final.result))} s (page clock from its submit event)`,
      `page summary: stored ${int(stored)}, already held ${int(unchanged)}, rejected ${rejected}; worker: stored ${int(status.upload.stored)}, pending ${status.upload.pending}, phase ${status.upload.phase}${waits ? `, seen waiting ${waits}×` : ''}`,
      checked,
    ];
    if (heap) {
      notes.push(`import page JS heap: before ${mb(heap.before)} MB (after GC; ArrayBuffers ${mb(buffersBefore)} MB) · peak in use ${mb(heap.peakUsed)} MB, above before ${mb(heap.peakUsed - heap.before)} MB`
        + ` = ${((heap.peakUsed - heap.before) / json).toFixed(2)}× the decrypted JSON (${mb(json)} MB)`
        + ` · peak + ArrayBuffers ${mb(heap.peakWithBuffers)} MB = ${(heap.peakWithBuffers / json).toFixed(2)}× · ${heap.samples} samples, longest gap ${s(heap.maxGapMs)} s`);
      if (workerHeap) notes.push(`worker JS heap: peak ${mb(workerHeap.peakUsed)} MB, + ArrayBuffers ${mb(workerHeap.peakWithBuffers)} MB (before ${mb(workerHeap.before)} MB; longest gap ${s(workerHeap.maxGapMs)} s)`);
      notes.push(retained
        ? `import page JS heap after a forced GC half-way through sending (${s(retained.at)} s): ${mb(retained.usedSize)} MB, above before ${mb(retained.usedSize - heap.before)} MB`
          + ` = ${((retained.usedSize - heap.before) / json).toFixed(2)}× the decrypted JSON; + ArrayBuffers ${mb(retained.withBuffers)} MB`
        : 'import page heap half-way through sending: not read (the sending was over before the poll saw it)');
      if (afterwards) notes.push(`import page JS heap after the import, after a forced GC: ${mb(afterwards.usedSize)} MB; + ArrayBuffers ${mb(afterwards.withBuffers)} MB`);
      const peakAbove = heap.peakWithBuffers - heap.before - buffersBefore;
      notes.push(`import page memory (peak JS heap + ArrayBuffers, above before) ÷ decrypted JSON = ${(peakAbove / json).toFixed(2)}×:`
        + ` ${peakAbove < 2 * json ? 'under 2×, so it never held the decrypted file twice' : 'NOT under 2× (it may hold the decrypted file twice; see the lines above)'}`);
    }
    return {
      side: 'extension', wallMs, synapseCpuMs,
      marks: [['first chunk sent (page)', pageMark(final.firstStoring)], ['all chunks stored (page)', pageMark(final.result)]],
      notes,
    };
  } finally {
    await ext.close();
  }
}

/**
 * The heap after a forced GC. ArrayBuffer backing stores are freed by a sweeper that runs after the
 * GC, so collect twice with a pause between.
 */
async function heapAfterGc(probe: HeapProbe): Promise<{ usedSize: number; withBuffers: number } | null> {
  await probe.collectGarbage();
  await sleep(500);
  await probe.collectGarbage();
  const usage = await probe.read();
  return usage ? { usedSize: usage.usedSize, withBuffers: usage.usedSize + (usage.backingStorageSize ?? 0) } : null;
}

// ---------------------------------------------------------------------------------------------
// Element's crypto (bench/upload.ts's IndexedDB setup, as Element Web opens its store)

let storeCount = 0;

async function elementMachine(user: SynapseUser): Promise<OlmMachine> {
  const handle = await StoreHandle.openWithKey(`bench-scale-upload-${process.pid}-${storeCount++}`, randomKey());
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

/** fake-indexeddb keeps every database in this process's heap: empty it after a run. */
async function dropDatabases(): Promise<void> {
  for (const { name } of await indexedDB.databases()) {
    if (name === undefined) continue;
    await new Promise<void>((resolve, reject) => {
      const request = indexedDB.deleteDatabase(name);
      request.onsuccess = () => resolve();
      request.onerror = () => reject(new ScaleUploadError('element', `could not delete IndexedDB database ${name}: ${String(request.error)}`));
    });
  }
}

async function runElement(bench: Bench, round: number): Promise<RunResult> {
  const n = bench.file.keys.length;
  const { user, client } = await newAccount(bench, 'scale-up-element');
  const backupKey = BackupDecryptionKey.createRandomKey();
  const publicKey = backupKey.megolmV1PublicKey.publicKeyBase64;
  const privateKey = decodeBase64(backupKey.toBase64());
  backupKey.free();
  const version = await client.createBackupVersion({ algorithm: BACKUP_ALGORITHM, auth_data: { public_key: publicKey } });
  const machine = await elementMachine(user);
  const steps = new Map<string, number>();
  const step = (name: string, ms: number): void => { steps.set(name, (steps.get(name) ?? 0) + ms); };
  const marks: Array<[string, number]> = [];
  const state = { phase: 'decrypting', imported: 0, uploaded: 0, puts: 0 };
  const cpu0 = processCpuMs(bench.synapsePid);
  const start = performance.now();
  let lastLine = { t: 0, uploaded: 0 };
  const ticker = setInterval(() => {
    const t = performance.now() - start;
    log(`Element ${round + 1}: ${s(t)} s · ${state.phase} · imported ${int(state.imported)} / ${int(n)} · uploaded ${int(state.uploaded)}`
      + ` (${int(((state.uploaded - lastLine.uploaded) / (t - lastLine.t)) * 1000)} keys/s now, ${int((state.uploaded / t) * 1000)} overall) · ${state.puts} PUTs`);
    lastLine = { t, uploaded: state.uploaded };
  }, bench.everyMs);
  try {
    let t = performance.now();
    const json = OlmMachine.decryptExportedRoomKeys(bench.file.text, PASSPHRASE);
    step('decryptExportedRoomKeys', performance.now() - t);
    t = performance.now();
    state.phase = 'importing';
    const imported = await machine.importExportedRoomKeys(json, (progress: bigint | number) => { state.imported = Number(progress); });
    const importedCount = imported.importedCount;
    imported.free();
    if (importedCount !== n) throw new ScaleUploadError('element', `importExportedRoomKeys took ${importedCount} of ${n} sessions`);
    state.imported = importedCount;
    step('importExportedRoomKeys', performance.now() - t);
    marks.push(['imported', performance.now() - start]);
    t = performance.now();
    await machine.enableBackupV1(publicKey, version);
    step('enableBackupV1', performance.now() - t);
    state.phase = 'uploading';
    for (;;) {
      t = performance.now();
      const request = await machine.backupRoomKeys();
      step('backupRoomKeys', performance.now() - t);
      if (request === undefined) break;
      if (state.puts > n) throw new ScaleUploadError('element', 'backupRoomKeys keeps returning requests');
      t = performance.now();
      const body = JSON.parse(request.body) as Parameters<HomeserverClient['putBackupKeys']>[1];
      const sessions = Object.values(body.rooms).reduce((sum, room) => sum + Object.keys(room.sessions).length, 0);
      const response = await client.putBackupKeys(request.version, body, { timeoutMs: UPLOAD_TIMEOUT_MS });
      step('PUT (body JSON + Synapse)', performance.now() - t);
      state.puts++;
      t = performance.now();
      await machine.markRequestAsSent(request.id, RequestType.KeysBackup, JSON.stringify(response));
      request.free();
      step('markRequestAsSent', performance.now() - t);
      state.uploaded += sessions;
    }
  } finally {
    clearInterval(ticker);
  }
  const wallMs = performance.now() - start;
  const synapseCpuMs = processCpuMs(bench.synapsePid) - cpu0;
  closePeerMachine(machine);
  await dropDatabases();
  const checked = await verify(bench, client, version, privateKey);
  return {
    side: 'element', wallMs, synapseCpuMs, marks,
    notes: [`steps: ${[...steps].map(([name, ms]) => `${name} ${s(ms)} s`).join(' · ')} · ${state.puts} PUTs of ≤ 100`, checked],
  };
}

// ---------------------------------------------------------------------------------------------
// Main

async function main(): Promise<void> {
  const options = readOptions();
  if (options.help) { console.log(usage); return; }
  await initPeer();
  const out = join(repoRoot, '.cache/bench-scale-upload/build');
  if (options.sides.has('extension') && options.build) {
    const t = performance.now();
    await buildExtension(out);
    log(`built the current source into ${out} in ${s(performance.now() - t)} s`);
  }
  const file = await keyFile(options.sessions, options.rooms, options.rounds, options.fresh);
  const n = file.keys.length;
  const synapse = await startSynapse({ name: 'bench-scale-upload' });
  const onSignal = (): void => { void synapse.stop().finally(() => process.exit(130)); };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const bench: Bench = { synapse, synapsePid: synapsePid(synapse), file, everyMs: options.everyMs, extensionPath: join(out, 'chrome'), heap: options.heap };
    const chromiumVersion = spawnSync(chromiumPath(), ['--version'], { encoding: 'utf8' }).stdout.trim();
    console.log(`${new Date().toISOString()} · Synapse ${SYNAPSE_VERSION} (SQLite) · ${chromiumVersion} headless · Node ${process.version}`);
    console.log(`key file: ${int(n)} sessions over ${options.rooms} rooms, ${int(options.rounds)} PBKDF2 rounds · ${mb(file.text.length)} MB file,`
      + ` ${mb(file.jsonLength)} MB decrypted JSON · ${file.cached ? 'cached' : 'made now'} (${s(file.madeInMs)} s, with the checks)`);

    const results: Record<'extension' | 'element', RunResult[]> = { extension: [], element: [] };
    for (let round = 0; round < options.repeat; round++) {
      const order = round % 2 === 0 ? ['extension', 'element'] as const : ['element', 'extension'] as const;
      for (const side of order) {
        if (!options.sides.has(side)) continue;
        log(`round ${round + 1}/${options.repeat}: ${side}`);
        const r = side === 'extension' ? await runExtension(bench, round) : await runElement(bench, round);
        results[side].push(r);
        log(`round ${round + 1}/${options.repeat}: ${side} ${s(r.wallMs)} s, ${int(keysPerSecond(bench, r))} keys/s`);
      }
    }

    console.log('');
    const label = { extension: 'extension (built, Chromium, import page)', element: 'Element crypto (wasm, IndexedDB store, Node)' };
    for (const side of ['extension', 'element'] as const) {
      for (const [i, r] of results[side].entries()) {
        console.log(`${label[side]}${results[side].length > 1 ? ` run ${i + 1}` : ''}: ${s(r.wallMs)} s · ${int(keysPerSecond(bench, r))} keys/s · Synapse CPU ${s(r.synapseCpuMs)} s`
          + (r.marks.length ? ` · ${r.marks.map(([name, ms]) => `${name} at ${s(ms)} s`).join(', ')}` : ''));
        for (const note of r.notes) console.log(`  ${note}`);
      }
    }
    if (results.extension.length > 0 && results.element.length > 0) {
      const ratios = results.extension.map((r, i) => (results.element[i] ? results.element[i]!.wallMs / r.wallMs : NaN)).filter((x) => !Number.isNaN(x));
      const sorted = [...ratios].sort((a, b) => a - b);
      const ratio = sorted[Math.floor((sorted.length - 1) / 2)]!;
      console.log('');
      console.log(`ratio extension ÷ Element (keys/s): ${ratio.toFixed(2)}×${ratios.length > 1 ? ` (median of per-round ratios ${ratios.map((x) => x.toFixed(2)).join(', ')})` : ''}`);
      console.log(`target ≥ 2× Element's crypto: ${ratio >= 2 ? 'MET' : 'NOT MET'} at ${ratio.toFixed(2)}×`);
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
  console.error(`bench/scale-upload.ts failed${typeof kind === 'string' ? ` (${kind})` : ''}: ${e instanceof ScaleUploadError ? e.message : e instanceof Error ? e.stack ?? e.message : String(e)}`);
  process.exitCode = 1;
}
