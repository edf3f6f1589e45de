/**
 * A web client reading its history through the vault, against the same client importing a key file,
 * and the hand-over latency of new sessions to the server backup. Run: `npm run bench:webclient`
 * (1,000 events, 10,000 keys in the vault, 100 hand-overs); `--help` lists the options.
 *
 * Setup (cached in `.cache/bench-webclient/`: Synapse's data dir and `fixtures.json`): an account
 * whose encrypted room holds N events written by an Element-crypto device, each event its own megolm
 * session (`createDemoHistory`, eventsPerSession 1), with the backup and Element's secret storage;
 * plus (K − N) more sessions made by Element's crypto in 10 other rooms (`peerSessions`), put into
 * the same server backup from Node (the core's `encryptSessionData`, 1,000 per PUT), so the backup
 * holds K. Each run: the built extension (a copy with loopback granted, `grantedCopy`) in headless
 * Chromium with a fresh profile signs in as a new device, unlocks with the Security Key and restores
 * the K keys; the demo's origin is allowed (read + backup).
 *
 * A. The demo web client (dist/demo, matrix-js-sdk 43 with Rust crypto, a new device each time):
 *    A1 with `vault=auto` (the kit attached as soon as the vault is found, before the history is
 *    in), from navigation start until every event shows decrypted; A2 without it: the history loads
 *    with every event failed, then "Use my key vault" is pressed; from the press until all decrypted.
 * B. The same client in Element mode on another origin the vault does not serve (nothing attaches),
 *    history loaded with every event failed; then what Element does with a key file: the file's JSON
 *    (decrypted beforehand: not timed here) goes to `getCrypto().importRoomKeysAsJson` — the same K
 *    keys, exported from the vault. From the call until all decrypted. The file's own decryption
 *    (the core's `decryptKeyFile`, 500,000 PBKDF2 rounds) is timed in Node, for context.
 * A1, A2 and B run `--repeat` rounds (default 3), interleaved, who goes first alternating; medians
 * are shown. After each round, the page API alone: a page on the allowed origin with no Matrix
 * client asks `vault_getRoomKeys` for the room's N sessions, 100 per request as the kit does.
 * C. Hand-over: from an allowed page, `vault_backupRoomKeys` with ONE fresh session at a time, a new
 *    one every 300 ms (the calls are sequential; uploads may overlap); Node polls
 *    `GET /room_keys/keys/{roomId}/{sessionId}` for every pending one every 100 ms and records the
 *    time from the call to the first answer that has it. Afterwards those sessions are deleted from
 *    the backup again, so the cached backup stays at K.
 *
 * Times in the page come from `performance.now()` (0 = navigation start) recorded by a
 * MutationObserver on the demo's counter (`decrypted-count`, updated once per animation frame) and
 * its timeline's `data-loaded`. Only 127.0.0.1 is used. Nothing secret is printed.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Page } from 'playwright-core';
import {
  backupPublicKey, decodeRecoveryKey, decryptKeyFile, encryptKeyFile, encryptSessionData, parseExportedSession,
} from '../src/core/index.ts';
import { HomeserverClient, HomeserverError } from '../src/platform/homeserver.ts';
import { ErrorCode } from '../src/shared/page-api.ts';
import type { ExportBatch, RestoreSummary, Result, UnlockSummary, VaultStatus } from '../src/shared/messages.ts';
import type { KeysBackup } from '../src/core/wire.ts';
import { buildExtension } from '../scripts/build.ts';
import { buildDemo } from '../scripts/build-demo.ts';
import { chromeDist, chromiumPath, launchExtension, repoRoot, type ExtensionBrowser } from '../test/harness/browser.ts';
import { createDemoHistory } from '../test/harness/demo-history.ts';
import { allowSiteViaPopup, callVault, grantedCopy } from '../test/harness/page-site.ts';
import { serveDirectory, type StaticServer } from '../test/harness/static-server.ts';
import { startSynapse, SYNAPSE_VERSION, type Synapse } from '../test/harness/synapse.ts';
import { peerSessions } from '../test/harness/upload-rig.ts';
import { initPeer, type ExportedSessionData } from '../test/peer/index.ts';
import { processCpuMs, synapsePid } from './proc.ts';

class BenchError extends Error {
  override readonly name = 'BenchError';
  constructor(readonly kind: 'argument' | 'setup' | 'extension' | 'demo' | 'handover' | 'timeout', message: string) {
    super(message);
  }
}

// ---------------------------------------------------------------------------------------------
// Options

const usage = `npx tsx bench/webclient.ts [options]
  --events N        encrypted events in the room, each its own session (default 1000)
  --vault-keys N    keys in the vault after the restore, ≥ events (default 10000)
  --repeat N        rounds of A1, A2 and B, interleaved; medians are shown (default 3)
  --handovers N     sessions handed over one at a time in C (default 100)
  --interval MS     time between hand-overs (default 300)
  --poll MS         time between server polls for the pending ones (default 100)
  --target S        the p99 hand-over latency to pass (default 30)
  --rounds N        PBKDF2 rounds of the key file decrypted in Node for context (default 500000; 0 skips it)
  --no-build        use dist/chrome and dist/demo as they are (default: build the current source
                    into .cache/bench-webclient/build, leaving dist/ alone)
  --fresh           forget the cached Synapse and fixtures (.cache/bench-webclient) and make them again`;

function wholeNumber(text: string, name: string, min = 1): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < min) throw new BenchError('argument', `--${name} must be a whole number ≥ ${min}, got ${JSON.stringify(text)}`);
  return n;
}

const optionSpec = {
  events: { type: 'string', default: '1000' },
  'vault-keys': { type: 'string', default: '10000' },
  repeat: { type: 'string', default: '3' },
  handovers: { type: 'string', default: '100' },
  interval: { type: 'string', default: '300' },
  poll: { type: 'string', default: '100' },
  target: { type: 'string', default: '30' },
  rounds: { type: 'string', default: '500000' },
  'no-build': { type: 'boolean', default: false },
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
  const events = wholeNumber(values.events, 'events');
  const vaultKeys = wholeNumber(values['vault-keys'], 'vault-keys');
  if (vaultKeys < events) throw new BenchError('argument', `--vault-keys (${vaultKeys}) must be at least --events (${events}): the vault holds the room's keys and more`);
  return {
    help: values.help,
    events,
    vaultKeys,
    repeat: wholeNumber(values.repeat, 'repeat'),
    handovers: wholeNumber(values.handovers, 'handovers'),
    intervalMs: wholeNumber(values.interval, 'interval', 0),
    pollMs: wholeNumber(values.poll, 'poll', 10),
    targetMs: wholeNumber(values.target, 'target') * 1000,
    rounds: wholeNumber(values.rounds, 'rounds', 0),
    build: !values['no-build'],
    fresh: values.fresh,
  };
}
type Options = ReturnType<typeof readOptions>;

// ---------------------------------------------------------------------------------------------
// Small helpers

const s = (ms: number): string => (ms / 1000).toFixed(2);
const int = (n: number): string => Math.round(n).toLocaleString('en');
const progress = (line: string): void => { process.stderr.write(`  … ${line}\n`); };
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function median(xs: readonly number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Nearest-rank percentile: the smallest value with at least p% of the values at or below it. */
function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function printTable(head: string[], rows: string[][]): void {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(line(head));
  for (const r of rows) console.log(line(r));
}

/** A Client-Server API call; the token never appears in a message. */
async function api<T>(baseUrl: string, accessToken: string | null, method: string, path: string, body?: unknown): Promise<{ status: number; json: T }> {
  const response = await fetch(`${baseUrl}/_matrix/client/v3${path}`, {
    method,
    headers: { ...(accessToken ? { authorization: `Bearer ${accessToken}` } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(120_000),
  });
  const text = await response.text();
  return { status: response.status, json: (text ? JSON.parse(text) : {}) as T };
}

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | null | undefined | false>, intervalMs = 200): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== null && value !== undefined && value !== false) return value;
    if (performance.now() > deadline) throw new BenchError('timeout', `${what}: not after ${s(timeoutMs)} s`);
    await sleep(intervalMs);
  }
}

// ---------------------------------------------------------------------------------------------
// The cached Synapse and the account

const cacheDir = join(repoRoot, '.cache/bench-webclient');
const synapseDir = join(cacheDir, 'synapse');
const fixturesPath = join(cacheDir, 'fixtures.json');
const buildDir = join(cacheDir, 'build');
/** Bump when what a fixture holds changes: cached ones of another generation are made again. */
const GENERATION = 1;
const PEER_ROOMS = 10;

interface Fixture {
  generation: number;
  events: number;
  vaultKeys: number;
  localpart: string;
  password: string;
  userId: string;
  roomId: string;
  backupVersion: string;
  /** The Security Key (secret storage) the extension is unlocked with (bench-only; git-ignored cache). */
  recoveryKey: string;
  /** The room's session ids, one per event. */
  sessionIds: string[];
  madeInMs: number;
}

interface Fixtures { serverName: string; fixtures: Fixture[] }

function readFixtures(synapse: Synapse): Fixtures {
  if (existsSync(fixturesPath)) {
    const saved = JSON.parse(readFileSync(fixturesPath, 'utf8')) as Fixtures;
    if (saved.serverName === synapse.serverName) return saved;
  }
  return { serverName: synapse.serverName, fixtures: [] };
}

async function startCachedSynapse(fresh: boolean): Promise<Synapse> {
  if (fresh) {
    rmSync(synapseDir, { recursive: true, force: true });
    rmSync(fixturesPath, { force: true });
  }
  mkdirSync(cacheDir, { recursive: true });
  try {
    return await startSynapse({ name: 'bench-webclient', dataDir: synapseDir });
  } catch (e) {
    // Most likely the kept port is taken now: user ids and tokens carry it, so start over.
    progress(`the cached Synapse did not start (${(e as Error).message.split('\n')[0]}); starting a new one`);
    rmSync(synapseDir, { recursive: true, force: true });
    rmSync(fixturesPath, { force: true });
    return startSynapse({ name: 'bench-webclient', dataDir: synapseDir });
  }
}

async function fixtureIsIntact(synapse: Synapse, fixture: Fixture): Promise<boolean> {
  try {
    const user = await synapse.login(fixture.localpart, fixture.password);
    const { status, json } = await api<{ version: string; count: number }>(synapse.baseUrl, user.accessToken, 'GET', '/room_keys/version');
    await api(synapse.baseUrl, user.accessToken, 'POST', '/logout', {});
    return status === 200 && json.version === fixture.backupVersion && json.count === fixture.vaultKeys;
  } catch {
    return false;
  }
}

/** Puts sessions into the backup from Node: the core's encryptSessionData, 1,000 per PUT. */
async function putSessions(client: HomeserverClient, version: string, publicKey: string, sessions: readonly ExportedSessionData[]): Promise<number> {
  let count = 0;
  for (let first = 0; first < sessions.length; first += 1000) {
    const body: KeysBackup = { rooms: {} };
    for (const raw of sessions.slice(first, first + 1000)) {
      const session = parseExportedSession(raw);
      (body.rooms[session.roomId] ??= { sessions: {} }).sessions[session.sessionId] = {
        first_message_index: session.firstMessageIndex,
        forwarded_count: session.forwardingChainLength,
        is_verified: false,
        session_data: await encryptSessionData(publicKey, session.data),
      };
    }
    count = (await client.putBackupKeys(version, body, { timeoutMs: 120_000 })).count;
  }
  return count;
}

async function makeFixture(synapse: Synapse, options: Options): Promise<Fixture> {
  const started = performance.now();
  const localpart = `bench-webclient-${options.events}-${randomBytes(3).toString('hex')}`;
  const password = randomBytes(12).toString('hex');
  const user = await synapse.registerUser(localpart, password);
  progress(`making the room: ${int(options.events)} events, one session each, by an Element-crypto device…`);
  const history = await createDemoHistory(synapse, { localpart, password, events: options.events, eventsPerSession: 1 });
  progress(`room made in ${s(history.timings.total)} s (encrypt ${s(history.timings.encrypt)} s, send ${s(history.timings.send)} s, backup ${s(history.timings.backup)} s)`);
  const extra = options.vaultKeys - options.events;
  const client = new HomeserverClient({ baseUrl: synapse.baseUrl, accessToken: user.accessToken });
  let count = history.sessionIds.length;
  if (extra > 0) {
    const t = performance.now();
    const sessions = await peerSessions(extra, PEER_ROOMS);
    if (sessions.length !== extra) throw new BenchError('setup', `Element's crypto made ${sessions.length} sessions, not ${extra}`);
    const publicKey = await backupPublicKey(decodeRecoveryKey(history.backupRecoveryKey));
    count = await putSessions(client, history.backupVersion, publicKey, sessions);
    progress(`${int(extra)} more sessions (Element's crypto, ${PEER_ROOMS} rooms) put into the backup in ${s(performance.now() - t)} s`);
  }
  await api(synapse.baseUrl, user.accessToken, 'POST', '/logout', {});
  if (count !== options.vaultKeys) throw new BenchError('setup', `the backup counts ${count} keys, expected ${options.vaultKeys}`);
  return {
    generation: GENERATION, events: options.events, vaultKeys: options.vaultKeys, localpart, password, userId: user.userId,
    roomId: history.roomId, backupVersion: history.backupVersion, recoveryKey: history.recoveryKey, sessionIds: history.sessionIds,
    madeInMs: performance.now() - started,
  };
}

/**
 * Signs out every device of the account (POST /delete_devices with the password), so that each run
 * starts with the same device list: earlier runs' extension, demo and poller devices are gone.
 */
async function deleteAllDevices(synapse: Synapse, fixture: Fixture): Promise<number> {
  const user = await synapse.login(fixture.localpart, fixture.password);
  const { json } = await api<{ devices: Array<{ device_id: string }> }>(synapse.baseUrl, user.accessToken, 'GET', '/devices');
  const devices = json.devices.map((d) => d.device_id);
  const first = await api<{ session?: string }>(synapse.baseUrl, user.accessToken, 'POST', '/delete_devices', { devices });
  if (first.status === 200) return devices.length;
  const auth = { type: 'm.login.password', identifier: { type: 'm.id.user', user: fixture.localpart }, password: fixture.password, session: first.json.session };
  const second = await api(synapse.baseUrl, user.accessToken, 'POST', '/delete_devices', { devices, auth });
  if (second.status !== 200) throw new BenchError('setup', `deleting the account's ${devices.length} devices answered HTTP ${second.status}`);
  return devices.length;
}

// ---------------------------------------------------------------------------------------------
// The extension

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

interface Prepared { popup: Page; call: Call; restoreMs: number; keyFileJson: string; exported: number }

/** Signs in, unlocks with the Security Key, restores; then exports the vault's keys (for B's key file). */
async function prepareVault(ext: ExtensionBrowser, synapse: Synapse, fixture: Fixture): Promise<Prepared> {
  const popup = await ext.openPage('popup.html');
  const call = caller(popup);
  await call({ type: 'account.login', homeserver: synapse.baseUrl, user: fixture.localpart, password: fixture.password });
  const unlocked = await call<UnlockSummary>({ type: 'vault.unlock', input: fixture.recoveryKey });
  if (unlocked.via !== 'security-key') throw new BenchError('extension', `unlocked via ${unlocked.via}, not the Security Key`);
  const t = performance.now();
  let restore: RestoreSummary | null = await call<RestoreSummary>({ type: 'restore.start' });
  await until('the restore', 300_000, async () => {
    if (restore?.phase === 'done') return true;
    if (restore && ['failed', 'cancelled', 'locked'].includes(restore.phase)) {
      throw new BenchError('extension', `the restore ended ${restore.phase}${restore.lastError ? `: ${restore.lastError.kind}: ${restore.lastError.message}` : ''}`);
    }
    restore = (await call<VaultStatus>({ type: 'status.get' })).restore;
    return restore?.phase === 'done';
  }, 250);
  const restoreMs = performance.now() - t;
  if (restore!.restored !== fixture.vaultKeys || restore!.failed !== 0) {
    throw new BenchError('extension', `the restore reports ${restore!.restored} restored, ${restore!.failed} failed; expected ${fixture.vaultKeys}`);
  }
  // Every key of the vault in key-export form: what a key file of this account holds.
  const sessions: unknown[] = [];
  let after: [string, string] | null = null;
  let skipped = 0;
  for (;;) {
    const batch: ExportBatch = await call<ExportBatch>({ type: 'vault.exportBatch', after, limit: 2000 });
    sessions.push(...batch.sessions);
    skipped += batch.skipped;
    if (batch.next === null) break;
    after = batch.next;
  }
  const ids = new Set(sessions.map((k) => (k as { session_id: string }).session_id));
  const missing = fixture.sessionIds.filter((id) => !ids.has(id)).length;
  if (sessions.length !== fixture.vaultKeys || skipped > 0 || missing > 0) {
    throw new BenchError('extension', `the vault exported ${sessions.length} keys (${skipped} skipped, ${missing} of the room's missing); expected ${fixture.vaultKeys}`);
  }
  return { popup, call, restoreMs, keyFileJson: JSON.stringify(sessions), exported: sessions.length };
}

// ---------------------------------------------------------------------------------------------
// The demo page, observed

interface PageClock {
  /** performance.now() in the page (0 = navigation start) at each step; null until it happened. */
  loaded: number | null;
  allFailed: number | null;
  firstDecrypted: number | null;
  allDecrypted: number | null;
  decrypted: number;
  failed: number;
  total: number;
}

/**
 * Installed before the demo's own script: records when the counter and the timeline reach each state.
 * Page code is given as text: tsx's transform would wrap named functions in a `__name` helper the
 * page does not have.
 */
function demoObserver(expected: number): string {
  return `(() => {
  const expected = ${JSON.stringify(expected)};
  const clock = { loaded: null, allFailed: null, firstDecrypted: null, allDecrypted: null, decrypted: 0, failed: 0, total: 0 };
  window.__benchClock = clock;
  new MutationObserver(() => {
    const counter = document.querySelector('[data-testid="decrypted-count"]');
    const timeline = document.querySelector('[data-testid="timeline"]');
    if (!counter || !timeline) return;
    const now = performance.now();
    const decrypted = Number(counter.dataset.decrypted ?? 0);
    const total = Number(counter.dataset.total ?? 0);
    const failed = timeline.querySelectorAll('[data-testid="event"][data-state="failed"]').length;
    clock.decrypted = decrypted;
    clock.total = total;
    clock.failed = failed;
    if (clock.firstDecrypted === null && decrypted > 0) clock.firstDecrypted = now;
    if (clock.loaded === null && timeline.dataset.loaded === 'true') clock.loaded = now;
    if (clock.allFailed === null && clock.loaded !== null && failed >= expected) clock.allFailed = now;
    if (clock.allDecrypted === null && decrypted >= expected && total >= expected) clock.allDecrypted = now;
  }).observe(document, { subtree: true, attributes: true, attributeFilter: ['data-decrypted', 'data-loaded'] });
})();`;
}

/**
 * Discovery as a page does it (test/harness/page-site.ts `findsProvider`, as text for the reason
 * above); the provider found is left in `window.__vault` for the harness's `callVault`.
 */
function findsVault(page: Page, timeoutMs: number): Promise<boolean> {
  return page.evaluate(`new Promise((resolve) => {
    const done = (found) => { window.removeEventListener('matrix-key-vault:announce', on); resolve(found); };
    const on = (e) => {
      const detail = e.detail;
      if (detail?.info?.name === 'Matrix Key Vault' && detail.provider) { window.__vault = detail.provider; done(true); }
    };
    window.addEventListener('matrix-key-vault:announce', on);
    window.dispatchEvent(new Event('matrix-key-vault:request'));
    setTimeout(() => done(false), ${JSON.stringify(timeoutMs)});
  })`) as Promise<boolean>;
}

/** How long a demo page may take to reach a state: generous, and still a bound. */
const pageWaitMs = (events: number): number => 60_000 + events * 200;

const readClock = (page: Page): Promise<PageClock> => page.evaluate(() => (window as unknown as { __benchClock: PageClock }).__benchClock);

/** What the demo shows, for an error message: its status line, vault line, counter and the clock. */
async function describeDemo(page: Page): Promise<string> {
  try {
    return await page.evaluate(`(() => {
      const text = (id) => document.querySelector('[data-testid="' + id + '"]')?.textContent?.trim() ?? '(none)';
      return 'status "' + text('status') + '" · vault "' + text('vault-status') + '" · counter "' + text('decrypted-count')
        + '" · last error "' + text('stat-last-error') + '" · clock ' + JSON.stringify(window.__benchClock);
    })()`);
  } catch (e) {
    return `(the page could not be read: ${(e as Error).message})`;
  }
}

/** `until` on a demo page: a timeout says what the page showed. */
async function untilOnPage<T>(page: Page, what: string, timeoutMs: number, probe: () => Promise<T | null | undefined | false>): Promise<T> {
  try {
    return await until(what, timeoutMs, probe);
  } catch (e) {
    if (e instanceof BenchError && e.kind === 'timeout') throw new BenchError('timeout', `${e.message}; the page shows: ${await describeDemo(page)}`);
    throw e;
  }
}

async function openDemo(ext: ExtensionBrowser, expected: number, url: string): Promise<Page> {
  const page = await ext.context.newPage();
  await page.addInitScript({ content: demoObserver(expected) });
  await page.bringToFront();
  await page.goto(url);
  return page;
}

/** Every event decrypted, with its body: the demo's text for event i is "Message i of N from the old laptop". */
async function checkBodies(page: Page, expected: number): Promise<void> {
  const bodies = await page.locator('[data-testid=event][data-state=decrypted]').evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.text ?? ''));
  const wanted = new Set(Array.from({ length: expected }, (_, i) => `Message ${i + 1} of ${expected} from the old laptop`));
  const seen = bodies.filter((b) => wanted.has(b)).length;
  if (seen !== expected || new Set(bodies).size !== bodies.length) throw new BenchError('demo', `${seen} of ${expected} decrypted events show their own body`);
}

const stat = async (page: Page, id: string): Promise<number> => Number(await page.getByTestId(id).textContent());

interface VaultRun { clock: PageClock; attachAt?: number; keysImported: number; keysRequested: number; notFound: number; lastError: string }

/** A1: vault=auto. A2: attach after the history loaded with every event failed. */
async function runVault(ext: ExtensionBrowser, demoUrl: string, expected: number, mode: 'auto' | 'after-load'): Promise<VaultRun> {
  const page = await openDemo(ext, expected, `${demoUrl}${mode === 'auto' ? '&vault=auto' : ''}`);
  try {
    let attachAt: number | undefined;
    if (mode === 'after-load') {
      await untilOnPage(page, 'A2: the history loaded with every event failed', pageWaitMs(expected), async () => (await readClock(page)).allFailed !== null);
      await untilOnPage(page, 'A2: "Use my key vault" enabled', 30_000, () => page.getByTestId('vault-attach').isEnabled());
      attachAt = await page.evaluate(() => {
        const at = performance.now();
        document.querySelector<HTMLButtonElement>('[data-testid="vault-attach"]')!.click();
        return at;
      });
    }
    const clock = await untilOnPage(page, `A (${mode}): all ${expected} events decrypted`, pageWaitMs(expected), async () => {
      const c = await readClock(page);
      return c.allDecrypted !== null && c.loaded !== null ? c : null;
    });
    await checkBodies(page, expected);
    // The counters render from the kit's stats (possibly a frame later).
    await untilOnPage(page, 'A: the kit\'s counters', 10_000, async () => (await stat(page, 'stat-keys-imported')) >= expected);
    return {
      clock, attachAt,
      keysImported: await stat(page, 'stat-keys-imported'), keysRequested: await stat(page, 'stat-keys-requested'), notFound: await stat(page, 'stat-not-found'),
      lastError: (await page.getByTestId('stat-last-error').textContent())?.trim() ?? '',
    };
  } finally {
    await page.close();
  }
}

interface Round { a1: VaultRun; a2: VaultRun; b: KeyFileRun; raw: RawRun }

interface KeyFileRun { clock: PageClock; importStart: number; importEnd: number }

/** B: Element mode on an origin the vault does not serve; the key file's JSON imported after the history failed. */
async function runKeyFile(ext: ExtensionBrowser, demoUrl: string, expected: number, keyFileJson: string): Promise<KeyFileRun> {
  const page = await openDemo(ext, expected, `${demoUrl}&mode=element`);
  try {
    await untilOnPage(page, 'B: the history loaded with every event failed', pageWaitMs(expected), async () => (await readClock(page)).allFailed !== null);
    // The decrypted file in the page before the clock starts (Element has it in hand after decryptMegolmKeyFile).
    await page.evaluate((json) => { (window as unknown as { __keyFileJson: string }).__keyFileJson = json; }, keyFileJson);
    const { importStart, importEnd } = await page.evaluate(async () => {
      const w = window as unknown as { __keyFileJson: string | null; mxMatrixClientPeg: { get(): { getCrypto(): { importRoomKeysAsJson(json: string): Promise<void> } } } };
      const json = w.__keyFileJson!;
      const crypto = w.mxMatrixClientPeg.get().getCrypto();
      const start = performance.now();
      await crypto.importRoomKeysAsJson(json);
      const end = performance.now();
      w.__keyFileJson = null;
      return { importStart: start, importEnd: end };
    });
    const clock = await untilOnPage(page, `B: all ${expected} events decrypted`, pageWaitMs(expected), async () => {
      const c = await readClock(page);
      return c.allDecrypted !== null ? c : null;
    });
    await checkBodies(page, expected);
    if (await findsVault(page, 1000)) throw new BenchError('demo', 'B: the vault announced itself on the key-file origin');
    return { clock, importStart, importEnd };
  } finally {
    await page.close();
  }
}

interface RawRun {
  totalMs: number;
  /** Each accepted request's round trip. */
  requests: number[];
  /** Requests the site's budget refused (limitExceeded), and the time spent waiting to ask again. */
  refused: number;
  waitedMs: number;
}

/**
 * The page API alone, for where A2's time goes: the room's N sessions asked of the vault from a page
 * on the allowed origin (no Matrix client), in sequential requests of 100 as the kit sends them. A
 * request the site's budget refuses (limitExceeded) is asked again 100 ms later, and counted.
 */
async function runRawFetch(ext: ExtensionBrowser, siteUrl: string, fixture: Fixture): Promise<RawRun> {
  const page = await ext.context.newPage();
  try {
    await page.goto(`${siteUrl}/`);
    if (!(await findsVault(page, 3000))) throw new BenchError('demo', 'the allowed demo origin found no vault');
    // The budget is per origin, shared with the demo pages before: let it fill up (40 tokens at 20/s).
    await sleep(2500);
    const refs = fixture.sessionIds.map((sessionId) => ({ roomId: fixture.roomId, sessionId }));
    const run: RawRun = { totalMs: 0, requests: [], refused: 0, waitedMs: 0 };
    const start = performance.now();
    for (let first = 0; first < refs.length; first += 100) {
      const chunk = refs.slice(first, first + 100);
      for (;;) {
        const t = performance.now();
        const answer = await callVault(page, 'vault_getRoomKeys', { sessions: chunk });
        if (answer.error?.code === ErrorCode.limitExceeded) {
          run.refused++;
          const w = performance.now();
          await sleep(100);
          run.waitedMs += performance.now() - w;
          if (run.refused > 10_000) throw new BenchError('demo', 'vault_getRoomKeys kept saying limitExceeded');
          continue;
        }
        run.requests.push(performance.now() - t);
        const found = (answer.result?.keys as Array<{ found: boolean }> | undefined)?.filter((k) => k.found).length ?? 0;
        if (found !== chunk.length) throw new BenchError('demo', `vault_getRoomKeys found ${found} of ${chunk.length}: ${JSON.stringify(answer.error ?? '')}`);
        break;
      }
    }
    run.totalMs = performance.now() - start;
    return run;
  } finally {
    await page.close();
  }
}

// ---------------------------------------------------------------------------------------------
// C: hand-over latency

interface HandoverSample { roomId: string; sessionId: string; calledAt: number; answeredAt: number; seenAt: number | null }

async function runHandovers(ext: ExtensionBrowser, synapse: Synapse, fixture: Fixture, siteUrl: string, options: Options, synapsePidValue: number) {
  const sessions = await peerSessions(options.handovers, 5);
  const poller = await synapse.login(fixture.localpart, fixture.password);
  const client = new HomeserverClient({ baseUrl: synapse.baseUrl, accessToken: poller.accessToken });
  const page = await ext.context.newPage();
  const samples: HandoverSample[] = [];
  let pollErrors = 0;
  let polls = 0;
  let stopPolling = false;
  try {
    await page.goto(`${siteUrl}/`);
    if (!(await findsVault(page, 3000))) throw new BenchError('handover', 'the allowed demo origin found no vault');
    const before = (await client.getBackupVersion(fixture.backupVersion)).count;
    const poll = async (): Promise<void> => {
      while (!stopPolling) {
        const pending = samples.filter((x) => x.seenAt === null);
        await Promise.all(pending.map(async (x) => {
          polls++;
          try {
            await client.getBackupSessionKey(fixture.backupVersion, x.roomId, x.sessionId, { timeoutMs: 10_000 });
            x.seenAt ??= performance.now();
          } catch (e) {
            if (!(e instanceof HomeserverError && e.status === 404)) pollErrors++;
          }
        }));
        await sleep(options.pollMs);
      }
    };
    const polling = poll();
    const cpu0 = processCpuMs(synapsePidValue);
    const start = performance.now();
    for (let i = 0; i < sessions.length; i++) {
      const wait = start + i * options.intervalMs - performance.now();
      if (wait > 0) await sleep(wait);
      const session = sessions[i]!;
      const sample: HandoverSample = { roomId: session.room_id, sessionId: session.session_id, calledAt: performance.now(), answeredAt: 0, seenAt: null };
      samples.push(sample);
      const answer = await callVault(page, 'vault_backupRoomKeys', { sessions: [session] });
      sample.answeredAt = performance.now();
      if (!answer.result?.results?.[0]?.accepted) throw new BenchError('handover', `hand-over ${i + 1} was not accepted: ${JSON.stringify(answer.error ?? answer.result)}`);
      if ((i + 1) % 20 === 0) progress(`C: ${i + 1} of ${sessions.length} handed over; ${samples.filter((x) => x.seenAt !== null).length} on the server so far`);
    }
    const lastCall = performance.now();
    const waitMs = Math.max(60_000, 2 * options.targetMs);
    const deadline = lastCall + waitMs;
    while (samples.some((x) => x.seenAt === null) && performance.now() < deadline) await sleep(50);
    stopPolling = true;
    await polling;
    const synapseCpuMs = processCpuMs(synapsePidValue) - cpu0;
    const after = (await client.getBackupVersion(fixture.backupVersion)).count;
    const status = await caller(await ext.openPage('popup.html'))<VaultStatus>({ type: 'status.get' });
    return { samples, pollErrors, polls, before, after, waitMs, wallMs: performance.now() - start, synapseCpuMs, uploadStored: status.upload.stored, uploadPending: status.upload.pending };
  } finally {
    stopPolling = true;
    await page.close();
    // The hand-over sessions leave the backup again (their rooms hold nothing else), so the cached one stays at K.
    for (const roomId of new Set(sessions.map((x) => x.room_id))) {
      await client.deleteBackupRoomKeys(fixture.backupVersion, roomId).catch((e: unknown) => progress(`could not delete the hand-over room's keys: ${(e as Error).message}`));
    }
    await api(synapse.baseUrl, poller.accessToken, 'POST', '/logout', {}).catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------------------------
// Main

async function prepareBuild(options: Options): Promise<{ extension: string; demo: string }> {
  if (!options.build) {
    const demo = join(repoRoot, 'dist/demo');
    if (!existsSync(join(chromeDist, 'manifest.json')) || !existsSync(join(demo, 'index.html'))) {
      throw new BenchError('argument', '--no-build: dist/chrome or dist/demo is missing (npm run build)');
    }
    return { extension: chromeDist, demo };
  }
  const t = performance.now();
  progress('building the extension and the demo from the current source into .cache/bench-webclient/build…');
  await buildExtension(buildDir);
  const demo = await buildDemo(join(buildDir, 'demo'));
  progress(`built in ${s(performance.now() - t)} s`);
  return { extension: join(buildDir, 'chrome'), demo };
}

async function keyFileContext(json: string, rounds: number): Promise<{ encryptMs: number; decryptMs: number; bytes: number } | null> {
  if (rounds === 0) return null;
  const passphrase = 'bench key file passphrase';
  let t = performance.now();
  const file = await encryptKeyFile(json, passphrase, rounds);
  const encryptMs = performance.now() - t;
  t = performance.now();
  const plain = await decryptKeyFile(file, passphrase);
  const decryptMs = performance.now() - t;
  if (plain !== json) throw new BenchError('setup', 'the key file did not decrypt to what was encrypted');
  return { encryptMs, decryptMs, bytes: file.length };
}

async function main(): Promise<void> {
  const options = readOptions();
  if (options.help) {
    console.log(usage);
    return;
  }
  const built = await prepareBuild(options);
  await initPeer();
  const synapse = await startCachedSynapse(options.fresh);
  const tmp = mkdtempSync(join(tmpdir(), 'mkv-bench-webclient-'));
  let ext: ExtensionBrowser | undefined;
  const servers: StaticServer[] = [];
  const onSignal = (): void => { void synapse.stop().finally(() => process.exit(130)); };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  // A last resort: the bench stops by itself whatever hangs.
  const watchdog = setTimeout(() => {
    console.error('bench/webclient.ts: still running after 30 minutes; giving up');
    void synapse.stop().finally(() => process.exit(2));
  }, 30 * 60_000);
  watchdog.unref();
  try {
    const chromiumVersion = spawnSync(chromiumPath(), ['--version'], { encoding: 'utf8' }).stdout.trim();
    console.log(`Synapse ${SYNAPSE_VERSION} (SQLite) on 127.0.0.1 · ${chromiumVersion} headless · Node ${process.version}`);
    const head = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repoRoot, encoding: 'utf8' }).stdout.trim();
    const dirty = spawnSync('git', ['status', '--porcelain', '--', 'src', 'demo'], { cwd: repoRoot, encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean).length;
    console.log(`extension: ${built.extension} · demo: ${built.demo}${options.build ? ` (built from the working tree at ${head}${dirty ? `, ${dirty} file(s) under src/ or demo/ changed` : ''})` : ' (as they are)'}`);

    // The account: cached if intact, else made now.
    const saved = readFixtures(synapse);
    let fixture = saved.fixtures.find((f) => f.generation === GENERATION && f.events === options.events && f.vaultKeys === options.vaultKeys);
    if (fixture && await fixtureIsIntact(synapse, fixture)) {
      console.log(`account: cached in .cache/bench-webclient (made in ${s(fixture.madeInMs)} s): ${int(fixture.events)} events in one room, ${int(fixture.vaultKeys)} keys in the backup`);
    } else {
      const made = await makeFixture(synapse, options);
      saved.fixtures = saved.fixtures.filter((f) => f !== fixture).concat(made);
      writeFileSync(fixturesPath, `${JSON.stringify(saved, null, 2)}\n`, { mode: 0o600 });
      fixture = made;
      console.log(`account: made in ${s(made.madeInMs)} s: ${int(made.events)} events in one room (each its own session), ${int(made.vaultKeys)} keys in the backup`);
    }
    const removed = await deleteAllDevices(synapse, fixture);
    if (removed > 0) progress(`signed out ${removed} device(s) left by earlier runs`);
    const pid = synapsePid(synapse);

    // The extension: signed in, unlocked with the Security Key, restored; the demo's origin allowed.
    ext = await launchExtension({ extensionPath: grantedCopy(built.extension, join(tmp, 'ext')) });
    const prepared = await prepareVault(ext, synapse, fixture);
    console.log(`vault: signed in, unlocked with the Security Key, ${int(fixture.vaultKeys)} keys restored in ${s(prepared.restoreMs)} s; exported again for the key file (${(prepared.keyFileJson.length / 1e6).toFixed(1)} MB of JSON)`);
    const vaultSite = await serveDirectory(built.demo);
    const keyFileSite = await serveDirectory(built.demo);
    servers.push(vaultSite, keyFileSite);
    await (await allowSiteViaPopup(ext, vaultSite.url, ['read', 'backup'])).close();
    const upload = (await prepared.call<VaultStatus>({ type: 'status.get' })).upload;
    console.log(`demo: ${vaultSite.url} allowed (read, backup); ${keyFileSite.url} not (the key-file side) · upload pending before the runs: ${upload.pending}`);

    const context = await keyFileContext(prepared.keyFileJson, options.rounds);
    if (context) progress(`key file of ${int(fixture.vaultKeys)} keys at ${int(options.rounds)} rounds: the core's decryptKeyFile in Node ${s(context.decryptMs)} s`);

    const query = (server: StaticServer) => `${server.url}/?hs=${encodeURIComponent(synapse.baseUrl)}&user=${encodeURIComponent(fixture.localpart)}&password=${encodeURIComponent(fixture.password)}&autologin=1`;
    const n = fixture.events;

    const rounds: Round[] = [];
    for (let round = 0; round < options.repeat; round++) {
      // Interleaved, who goes first alternating: neither side always meets a Synapse or Chromium fresh from the other.
      const order: Array<'a1' | 'a2' | 'b'> = round % 2 === 0 ? ['a1', 'a2', 'b'] : ['b', 'a2', 'a1'];
      const r: Partial<Round> = {};
      const tag = `round ${round + 1}/${options.repeat}`;
      for (const step of order) {
        if (step === 'a1') {
          const a1 = r.a1 = await runVault(ext, query(vaultSite), n, 'auto');
          progress(`${tag} A1 (vault=auto): all ${int(n)} decrypted ${s(a1.clock.allDecrypted!)} s after navigation start (history loaded at ${s(a1.clock.loaded!)} s)`);
        } else if (step === 'a2') {
          const a2 = r.a2 = await runVault(ext, query(vaultSite), n, 'after-load');
          progress(`${tag} A2 (vault attached after the history failed): all ${int(n)} decrypted ${s(a2.clock.allDecrypted! - a2.attachAt!)} s after "Use my key vault"`);
        } else {
          const b = r.b = await runKeyFile(ext, query(keyFileSite), n, prepared.keyFileJson);
          progress(`${tag} B (key file, Element mode): all ${int(n)} decrypted ${s(b.clock.allDecrypted! - b.importStart)} s after importRoomKeysAsJson was called`);
        }
      }
      r.raw = await runRawFetch(ext, vaultSite.url, fixture);
      progress(`${tag} the page API alone: ${int(n)} keys in ${r.raw.requests.length} vault_getRoomKeys requests, ${s(r.raw.totalMs)} s`);
      rounds.push(r as Round);
    }
    progress(`C: ${options.handovers} hand-overs, one every ${options.intervalMs} ms…`);
    const c = await runHandovers(ext, synapse, fixture, vaultSite.url, options, pid);

    // ---- Printing
    console.log('');
    console.log(`The demo web client (matrix-js-sdk 43, Rust crypto) opening a room of ${int(n)} events, each its own session; ${int(fixture.vaultKeys)} keys in the vault;`
      + ` ${options.repeat} round${options.repeat > 1 ? 's' : ''}, interleaved:`);
    const metric = (name: string, pick: (r: Round) => number, unit: 's' | '×' = 's'): string[] => {
      const values = rounds.map(pick);
      const show = (v: number): string => (unit === 's' ? s(v) : `${v.toFixed(2)}×`);
      return [name, show(median(values)), values.map(show).join('  ')];
    };
    printTable(['', 'median', 'each round'], [
      metric('A1 vault=auto: navigation → history loaded', (r) => r.a1.clock.loaded!),
      metric('A1 vault=auto: navigation → all decrypted', (r) => r.a1.clock.allDecrypted!),
      metric('A1: history loaded → all decrypted', (r) => r.a1.clock.allDecrypted! - r.a1.clock.loaded!),
      metric('A2: navigation → history loaded, all failed', (r) => r.a2.clock.allFailed!),
      metric('A2: "Use my key vault" → all decrypted', (r) => r.a2.clock.allDecrypted! - r.a2.attachAt!),
      metric('B: navigation → history loaded, all failed', (r) => r.b.clock.allFailed!),
      metric(`B: importRoomKeysAsJson (${int(fixture.vaultKeys)} keys) called → all decrypted`, (r) => r.b.clock.allDecrypted! - r.b.importStart),
      metric('B: importRoomKeysAsJson itself', (r) => r.b.importEnd - r.b.importStart),
      metric(`page API alone: ${int(n)} keys, ${Math.ceil(n / 100)} vault_getRoomKeys in a row`, (r) => r.raw.totalMs),
      metric('key file ÷ vault after the history (B ÷ A2)', (r) => (r.b.clock.allDecrypted! - r.b.importStart) / (r.a2.clock.allDecrypted! - r.a2.attachAt!), '×'),
    ]);
    const last = rounds.at(-1)!;
    console.log('  seconds; in the page, performance.now() from navigation start; a new device signs in each time, in the same Chromium.');
    console.log('  history loaded = the timeline\'s data-loaded (A2, B: and every event shown failed); all decrypted = the counter says N of N.');
    console.log('  A1 is what a user of a kit-enabled client sees: the vault is asked while the history pages in. A2 and B start from the same');
    console.log('  state (history in, every event failed), so "→ all decrypted" compares the vault with the key file; the ratio is the median of');
    console.log('  the per-round ratios, below 1× = the key file is faster.');
    console.log(`  The kit asked for ${int(last.a2.keysRequested)} keys and imported ${int(last.a2.keysImported)} (${last.a2.notFound} not found) in A2; ${int(last.a1.keysImported)} in A1`
      + ' (requests of ≤ 100 sessions, after a 100 ms debounce).');
    const rawAll = rounds.flatMap((r) => r.raw.requests).sort((x, y) => x - y);
    console.log(`  page API alone: a page on the allowed origin with no Matrix client asks for the room's ${int(n)} keys as the kit does, 100 per request, one after`
      + ` the other: per accepted request p50 ${int(percentile(rawAll, 50))} ms, max ${int(rawAll.at(-1)!)} ms; refused by the site's budget (limitExceeded, asked again`
      + ` 100 ms later) ${rounds.map((r) => `${r.raw.refused}× (${s(r.raw.waitedMs)} s waited)`).join(', ')}.`);
    const errors = [...new Set(rounds.flatMap((r) => [r.a1.lastError, r.a2.lastError]).filter((e) => e && e !== 'none'))];
    console.log(`  the kit's last error in A1/A2: ${errors.length ? errors.map((e) => JSON.stringify(e)).join('; ') : 'none'} (it backs off 2 s, doubling, after a refusal).`);
    console.log(`  B excludes the key file's own decryption (PBKDF2 and AES of the file, which Element does before the import)${context
      ? `; for context, the core's decryptKeyFile in Node on a ${(context.bytes / 1e6).toFixed(1)} MB file of these ${int(fixture.vaultKeys)} keys at ${int(options.rounds)} rounds: ${s(context.decryptMs)} s`
      : ''}.`);
    console.log('');

    const latencies = c.samples.filter((x) => x.seenAt !== null).map((x) => x.seenAt! - x.calledAt).sort((x, y) => x - y);
    const unseen = c.samples.length - latencies.length;
    const calls = c.samples.map((x) => x.answeredAt - x.calledAt).sort((x, y) => x - y);
    console.log(`Hand-over: ${c.samples.length} new sessions, one per vault_backupRoomKeys call, a call every ${options.intervalMs} ms (sequential), until each is in the server backup (polled every ${options.pollMs} ms):`);
    // Sessions never seen count as the wait (a lower bound) in the percentiles, and fail the target.
    const all = [...latencies, ...Array<number>(unseen).fill(c.waitMs)].sort((x, y) => x - y);
    printTable(['sessions', 'p50 s', 'p90 s', 'p99 s', 'max s', 'not seen', `target p99 < ${options.targetMs / 1000} s`], [[
      String(c.samples.length), s(percentile(all, 50)), s(percentile(all, 90)), s(percentile(all, 99)), s(all.at(-1)!), String(unseen),
      unseen === 0 && percentile(all, 99) < options.targetMs ? 'PASS' : 'FAIL',
    ]]);
    console.log(`  from the call (Node, page.evaluate → provider.request) to the first poll answer holding the session; nearest-rank percentiles; min ${s(all[0]!)} s.`);
    console.log(`  the call itself (until the vault accepted the session): p50 ${s(percentile(calls, 50))} s, max ${s(calls.at(-1)!)} s · server count ${int(c.before)} → ${int(c.after)}`
      + ` · ${int(c.polls)} polls, ${c.pollErrors} errors · whole run ${s(c.wallMs)} s, Synapse CPU ${s(c.synapseCpuMs)} s · the vault's upload afterwards: ${c.uploadPending} pending.`);
    if (c.after - c.before !== c.samples.length) console.log(`  NOTE: the server count grew by ${c.after - c.before}, not ${c.samples.length}.`);
    console.log('');
  } finally {
    clearTimeout(watchdog);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await ext?.close().catch(() => undefined);
    await Promise.all(servers.map((x) => x.close()));
    await synapse.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
}

try {
  await main();
} catch (e) {
  const kind = (e as { kind?: unknown } | null)?.kind;
  const text = e instanceof BenchError ? e.message : e instanceof Error ? e.stack ?? e.message : String(e);
  console.error(`bench/webclient.ts failed${typeof kind === 'string' ? ` (${kind})` : ''}: ${text}`);
  process.exitCode = 1;
}
