/**
 * `npm start`: the extension's main job on an embedded local homeserver, for someone trying it for
 * the first time (DESIGN.md "Real components": the demo runs a real Synapse).
 *
 * 1. Synapse from the test harness, its data kept in `.cache/demo/synapse` (git-ignored), so the demo
 *    account, its backup and its port survive restarts; the demo account is registered once.
 * 2. The extension is built, then loaded into Debian's Chromium with a profile kept in
 *    `.cache/demo/chromium-profile`, so the extension's own state survives restarts too.
 *    Headed when there is a display, headless otherwise (with a screenshot of the popup).
 * 3. A sample Element key file (sessions made by Element's own crypto) is written once, so importing
 *    can be tried at once.
 * 4. A second account, `element-user`, as Element leaves an account behind: a key backup written by
 *    Element's crypto and secret storage with a Security Key and a Security Phrase, so unlocking and
 *    restoring can be tried at once. Made once; its Security Key is kept in `.cache/demo` to print.
 * 5. A third account, `demo-user`, whose encrypted room holds history another device wrote with
 *    Element's crypto (test/harness/demo-history.ts), with that device's backup and secret storage;
 *    and the demo web client (demo/, built into dist/demo), served on 127.0.0.1 and opened in a tab:
 *    it signs in as a new device, which cannot read the history until the key vault gives it the keys.
 *    Made once; the client's port is kept too, so a site grant given to it survives restarts.
 * It keeps running until Ctrl-C or until the browser is closed. `--check` (or MKV_START_CHECK=1)
 * does all of it headless, checks that the worker answers the popup and that the demo client loads and
 * signs in, prints the summary and exits 0.
 * MKV_DEMO_DIR moves `.cache/demo` elsewhere (a test can use a temp dir).
 *
 * The demo password, key-file passphrase, Security Key and Security Phrase are printed on purpose:
 * they protect made-up data on a server that listens on 127.0.0.1 only. Access tokens are never printed.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { decryptKeyFile } from '../src/core/index.ts';
import { discoverHomeserver } from '../src/platform/discovery.ts';
import type { Result, VaultStatus } from '../src/shared/messages.ts';
import { chromiumPath } from '../test/harness/browser.ts';
import { loginUser, SYNAPSE_VERSION, startSynapse, type Synapse, type SynapseUser } from '../test/harness/synapse.ts';
import { closePeerMachine, createPeerMachine, createSessions, exportSessions, keyFileFromPeer } from '../test/peer/index.ts';
import { HomeserverClient } from '../src/platform/homeserver.ts';
import { createPeerWrittenBackup, writeElementSecretStorage } from '../test/harness/peer-backup.ts';
import { createDemoHistory } from '../test/harness/demo-history.ts';
import { serveDirectory, type StaticServer } from '../test/harness/static-server.ts';
import { buildExtension } from './build.ts';
import { buildDemo } from './build-demo.ts';

const root = resolve(import.meta.dirname, '..');
const demoDir = resolve(process.env.MKV_DEMO_DIR ?? join(root, '.cache/demo'));
const synapseDir = join(demoDir, 'synapse');
const profileDir = join(demoDir, 'chromium-profile');
const screenshotPath = join(demoDir, 'popup.png');
const sampleKeysPath = join(demoDir, 'sample-keys.txt');
const lockPath = join(demoDir, 'start.pid');
const chromeDist = join(root, 'dist/chrome');
const demoClientDist = join(root, 'dist/demo');
const demoClientScreenshotPath = join(demoDir, 'demo-client.png');

const DEMO_USER = 'demo';
/** An account as Element leaves it: a backup and secret storage, for trying unlock and restore. */
const ELEMENT_USER = 'element-user';
const ELEMENT_PHRASE = 'demo security phrase';
const ELEMENT_SESSIONS = 2000;
const elementBackupPath = join(demoDir, 'element-user.json');
/** An account whose encrypted room another device wrote, read by the demo client through the vault. */
const HISTORY_USER = 'demo-user';
const HISTORY_PHRASE = 'demo history phrase';
const HISTORY_EVENTS = 200;
const HISTORY_EVENTS_PER_SESSION = 5;
const historyPath = join(demoDir, 'demo-user.json');
/** The demo client's port, kept so its origin (and a grant the user gave it) survives restarts. */
const demoClientPath = join(demoDir, 'demo-client.json');
const DEMO_PASSWORD = 'demo-password';
const SAMPLE_PASSPHRASE = 'demo-passphrase';
/** Rooms × sessions in the sample key file: a few hundred, like a modest real export. */
const SAMPLE_ROOMS = 6;
const SAMPLE_SESSIONS_PER_ROOM = 50;
/** Element's default for "Export E2E room keys" (spec "Key exports": PBKDF2-SHA-512 rounds). */
const SAMPLE_ROUNDS = 500_000;

export type StartErrorKind =
  | 'usage' | 'chromium-missing' | 'python-missing' | 'already-running' | 'synapse' | 'build'
  | 'demo-account' | 'discovery' | 'sample-keys' | 'element-backup' | 'demo-history' | 'demo-client' | 'browser' | 'worker';

export class StartError extends Error {
  override readonly name = 'StartError';
  constructor(readonly kind: StartErrorKind, message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

const say = (line = ''): void => { process.stdout.write(`${line}\n`); };
/** Paths as the person sees them from the repository. */
const shown = (path: string): string => (path.startsWith(`${root}/`) ? relative(root, path) : path);
const seconds = (since: number): string => `${((Date.now() - since) / 1000).toFixed(1)} s`;

async function step<T>(label: string, body: () => Promise<T>, detail: (value: T) => string = () => 'done'): Promise<T> {
  const started = Date.now();
  const value = await body();
  say(`  ✓ ${label}: ${detail(value)} (${seconds(started)})`);
  return value;
}

// ---------------------------------------------------------------------------------------------
// Before starting anything: what must be installed, and only one demo at a time

function checkChromium(): string {
  const wanted = process.env.CHROMIUM_PATH;
  if (wanted && !existsSync(wanted)) throw new StartError('chromium-missing', `CHROMIUM_PATH is ${wanted}, which does not exist. Install Chromium with \`apt-get install chromium\`, or point CHROMIUM_PATH at a Chromium binary.`);
  try {
    return chromiumPath();
  } catch (e) {
    throw new StartError('chromium-missing', `${(e as Error).message}. (Branded Google Chrome ignores --load-extension; use Debian's chromium.)`, { cause: e });
  }
}

/** Synapse runs in a venv made from this Python (the harness's rule: PYTHON, else python3, ≥ 3.10). */
function checkPython(): string {
  const python = process.env.PYTHON ?? 'python3';
  const fix = 'Install it with `apt-get install python3 python3-venv python3-pip` (or set PYTHON to a Python ≥ 3.10).';
  const probe = spawnSync(python, ['-c', 'import sys; print("%d.%d.%d" % sys.version_info[:3])'], { encoding: 'utf8', timeout: 30_000 });
  if (probe.error || probe.status !== 0) {
    const why = probe.error ? probe.error.message : (probe.stderr || `exit ${probe.status}`).trim();
    throw new StartError('python-missing', `Synapse needs Python ≥ 3.10, and \`${python}\` does not run (${why}). ${fix}`);
  }
  const version = probe.stdout.trim();
  const [major = 0, minor = 0] = version.split('.').map(Number);
  if (major < 3 || (major === 3 && minor < 10)) throw new StartError('python-missing', `Synapse needs Python ≥ 3.10; \`${python}\` is ${version}. ${fix}`);
  return version;
}

function pidAlive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}

/** One demo per data dir: two would fight over Synapse's port and Chromium's profile. */
function takeLock(): void {
  mkdirSync(demoDir, { recursive: true });
  try {
    writeFileSync(lockPath, String(process.pid), { flag: 'wx' });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    const owner = Number(readFileSync(lockPath, 'utf8'));
    if (owner && owner !== process.pid && pidAlive(owner)) {
      throw new StartError('already-running', `another \`npm start\` (pid ${owner}) is using ${shown(demoDir)}; stop it first (Ctrl-C in its terminal).`);
    }
    writeFileSync(lockPath, String(process.pid)); // left behind by a run that was killed
  }
}

function releaseLock(): void {
  try { if (Number(readFileSync(lockPath, 'utf8')) === process.pid) rmSync(lockPath); } catch { /* not ours, or gone */ }
}

// ---------------------------------------------------------------------------------------------
// The homeserver and the demo account

async function startDemoSynapse(): Promise<Synapse> {
  try {
    return await startSynapse({ name: 'demo', dataDir: synapseDir, log: (line) => say(`    [synapse] ${line}`) });
  } catch (e) {
    const message = (e as Error).message;
    const hint = /Address already in use/.test(message)
      ? `\nThe demo keeps its port between runs and another program now uses it. Stop that program, or delete ${shown(synapseDir)} to pick a new port (the demo account and its backup go with it).`
      : /pip could not install/.test(message)
        ? `\nThe first run installs Synapse from PyPI (\`pip install matrix-synapse==${SYNAPSE_VERSION}\` into .cache/synapse-venv); this needs access to pypi.org.`
        : '';
    throw new StartError('synapse', `Synapse did not start: ${message}${hint}`, { cause: e });
  }
}

async function logout(synapse: Synapse, user: SynapseUser): Promise<void> {
  const res = await fetch(`${synapse.baseUrl}/_matrix/client/v3/logout`, { method: 'POST', headers: { authorization: `Bearer ${user.accessToken}` } });
  if (!res.ok) throw new StartError('demo-account', `could not end the check session of ${user.userId}: HTTP ${res.status}`);
}

/**
 * Registers the demo user unless it exists (Synapse answers M_USER_IN_USE), then proves the printed
 * password works by logging in. Both sessions are ended at once: the extension makes its own.
 */
async function ensureDemoAccount(synapse: Synapse): Promise<{ userId: string; created: boolean }> {
  let created = true;
  try {
    await logout(synapse, await synapse.registerUser(DEMO_USER, DEMO_PASSWORD));
  } catch (e) {
    // The harness reports Synapse's answer in its message: HTTP 400 {"errcode":"M_USER_IN_USE",…}.
    if (!/M_USER_IN_USE/.test((e as Error).message)) throw new StartError('demo-account', `could not register the demo account: ${(e as Error).message}`, { cause: e });
    created = false;
  }
  let session: SynapseUser;
  try {
    session = await loginUser(synapse, DEMO_USER, DEMO_PASSWORD);
  } catch (e) {
    throw new StartError('demo-account', `the demo account exists but does not accept the demo password (${(e as Error).message}). Delete ${shown(demoDir)} to start over.`, { cause: e });
  }
  await logout(synapse, session);
  return { userId: session.userId, created };
}

/** What the extension will do with what the person types: the same discovery code, run here. */
async function checkDiscovery(synapse: Synapse): Promise<void> {
  try {
    const found = await discoverHomeserver(synapse.serverName);
    if (!found.viaWellKnown || found.baseUrl !== synapse.baseUrl) {
      throw new Error(`it found ${found.baseUrl} (via .well-known: ${found.viaWellKnown}), expected ${synapse.baseUrl}`);
    }
  } catch (e) {
    throw new StartError('discovery', `typing ${synapse.serverName} would not find the demo homeserver: ${(e as Error).message}`, { cause: e });
  }
}

// ---------------------------------------------------------------------------------------------
// The sample key file

/** Sessions in a key file, read by the extension's own reader (so the demo never hands out a file it refuses). */
async function sessionsInKeyFile(file: string): Promise<number> {
  const sessions: unknown = JSON.parse(await decryptKeyFile(file, SAMPLE_PASSPHRASE));
  if (!Array.isArray(sessions)) throw new StartError('sample-keys', 'the sample key file does not hold a list of sessions');
  return sessions.length;
}

/** Written once and kept (the same sessions can be imported again); rewritten if it no longer opens. */
async function ensureSampleKeys(userId: string): Promise<{ sessions: number; written: boolean }> {
  if (existsSync(sampleKeysPath)) {
    try {
      return { sessions: await sessionsInKeyFile(readFileSync(sampleKeysPath, 'utf8')), written: false };
    } catch (e) {
      say(`    ${shown(sampleKeysPath)} no longer opens with the demo passphrase (${(e as Error).message}); writing a new one`);
    }
  }
  const machine = await createPeerMachine(userId);
  let file: string;
  try {
    await createSessions(machine, { rooms: SAMPLE_ROOMS, sessionsPerRoom: SAMPLE_SESSIONS_PER_ROOM, eventsPerSession: 0 });
    file = await keyFileFromPeer(await exportSessions(machine), SAMPLE_PASSPHRASE, SAMPLE_ROUNDS);
  } finally {
    closePeerMachine(machine);
  }
  const sessions = await sessionsInKeyFile(file);
  const expected = SAMPLE_ROOMS * SAMPLE_SESSIONS_PER_ROOM;
  if (sessions !== expected) throw new StartError('sample-keys', `the new sample key file holds ${sessions} sessions, expected ${expected}`);
  writeFileSync(`${sampleKeysPath}.tmp`, file);
  renameSync(`${sampleKeysPath}.tmp`, sampleKeysPath); // never a half-written file under the real name
  return { sessions, written: true };
}

// ---------------------------------------------------------------------------------------------
// The account with a backup made by Element's crypto

interface ElementBackup {
  userId: string;
  version: string;
  securityKey: string;
  sessions: number;
}

/**
 * Registered once with a backup Element's crypto wrote and secret storage as Element sets it up;
 * kept (with its Security Key) in element-user.json. A demo dir whose file is gone but whose
 * account exists cannot print the key any more: it says to delete the dir.
 */
async function ensureElementBackup(synapse: Synapse): Promise<ElementBackup & { created: boolean }> {
  if (existsSync(elementBackupPath)) return { ...(JSON.parse(readFileSync(elementBackupPath, 'utf8')) as ElementBackup), created: false };
  let user: SynapseUser;
  try {
    user = await synapse.registerUser(ELEMENT_USER, DEMO_PASSWORD);
  } catch (e) {
    throw new StartError('element-backup', `could not register ${ELEMENT_USER} (${(e as Error).message}); delete ${shown(demoDir)} to start over.`, { cause: e });
  }
  const client = new HomeserverClient({ baseUrl: synapse.baseUrl, accessToken: user.accessToken });
  const backup = await createPeerWrittenBackup(client, { sessions: ELEMENT_SESSIONS, rooms: 8 });
  const storage = await writeElementSecretStorage(client, user.userId, backup.privateKey, { passphrase: ELEMENT_PHRASE, iterations: 500_000 });
  backup.privateKey.fill(0);
  await logout(synapse, user);
  const made: ElementBackup = { userId: user.userId, version: backup.version, securityKey: storage.securityKey, sessions: ELEMENT_SESSIONS };
  writeFileSync(`${elementBackupPath}.tmp`, JSON.stringify(made));
  renameSync(`${elementBackupPath}.tmp`, elementBackupPath);
  return { ...made, created: true };
}

// ---------------------------------------------------------------------------------------------
// The account with encrypted history, and the demo client that reads it

interface DemoHistoryRecord {
  userId: string;
  roomId: string;
  backupVersion: string;
  securityKey: string;
  events: number;
  sessions: number;
}

/**
 * Registered once; another device (Element's crypto) writes its room's history, backs up the room's
 * sessions and sets up secret storage. Kept in demo-user.json, whose loss (with the account still
 * there) means the Security Key cannot be printed any more: it says to delete the dir.
 */
async function ensureDemoHistory(synapse: Synapse): Promise<DemoHistoryRecord & { created: boolean }> {
  if (existsSync(historyPath)) return { ...(JSON.parse(readFileSync(historyPath, 'utf8')) as DemoHistoryRecord), created: false };
  let user: SynapseUser;
  try {
    user = await synapse.registerUser(HISTORY_USER, DEMO_PASSWORD);
  } catch (e) {
    throw new StartError('demo-history', `could not register ${HISTORY_USER} (${(e as Error).message}); delete ${shown(demoDir)} to start over.`, { cause: e });
  }
  await logout(synapse, user);
  const history = await createDemoHistory(synapse, {
    localpart: HISTORY_USER, password: DEMO_PASSWORD, events: HISTORY_EVENTS, eventsPerSession: HISTORY_EVENTS_PER_SESSION,
    passphrase: HISTORY_PHRASE, passphraseIterations: 500_000, roomName: 'Encrypted history',
  }).catch((e: unknown) => {
    throw new StartError('demo-history', `could not write ${HISTORY_USER}'s encrypted history: ${(e as Error).message}`, { cause: e });
  });
  const made: DemoHistoryRecord = {
    userId: history.userId, roomId: history.roomId, backupVersion: history.backupVersion, securityKey: history.recoveryKey,
    events: history.eventIds.length, sessions: history.sessionIds.length,
  };
  writeFileSync(`${historyPath}.tmp`, JSON.stringify(made));
  renameSync(`${historyPath}.tmp`, historyPath);
  return { ...made, created: true };
}

/** Serves dist/demo on the port of earlier runs when it is free (else a new one, said so). */
async function serveDemoClient(): Promise<StaticServer & { portChanged: boolean }> {
  let kept: number | undefined;
  try { kept = (JSON.parse(readFileSync(demoClientPath, 'utf8')) as { port?: number }).port; } catch { /* first run */ }
  let server: StaticServer | undefined;
  if (kept) server = await serveDirectory(demoClientDist, { port: kept }).catch(() => undefined);
  server ??= await serveDirectory(demoClientDist).catch((e: unknown) => {
    throw new StartError('demo-client', `could not serve the demo client: ${(e as Error).message}`, { cause: e });
  });
  if (server.port !== kept) writeFileSync(demoClientPath, JSON.stringify({ port: server.port }));
  return { ...server, portChanged: kept !== undefined && server.port !== kept };
}

/** The demo client's address, signed in as demo-user at once, using the vault as soon as the site may. */
function demoClientUrl(web: StaticServer, synapse: Synapse): string {
  const params = new URLSearchParams({ hs: synapse.baseUrl, user: HISTORY_USER, password: DEMO_PASSWORD, autologin: '1', vault: 'auto' });
  return `${web.url}/?${params}`;
}

/** Opens the demo client in a tab and waits until it signed in and loaded the whole history. */
async function openDemoClient(context: BrowserContext, url: string, expectedEvents: number): Promise<{ page: Page; status: string; counter: string }> {
  const page = await context.newPage();
  try {
    await page.goto(url);
    await page.locator('[data-testid="timeline"][data-loaded="true"]').waitFor({ timeout: 60_000 });
    const total = Number(await page.getByTestId('decrypted-count').getAttribute('data-total'));
    if (total < expectedEvents) throw new Error(`it shows ${total} encrypted events, expected at least ${expectedEvents}`);
  } catch (e) {
    const status = await page.getByTestId('status').textContent().catch(() => null);
    throw new StartError('demo-client', `the demo client did not sign in and load its history: ${(e as Error).message}${status ? ` (it says: "${status.trim()}")` : ''}`, { cause: e });
  }
  return {
    page,
    status: (await page.getByTestId('status').textContent() ?? '').trim(),
    counter: (await page.getByTestId('decrypted-count').textContent() ?? '').trim(),
  };
}

// ---------------------------------------------------------------------------------------------
// Chromium

interface Display { headless: boolean; why: string }

function chooseDisplay(check: boolean): Display {
  if (check) return { headless: true, why: '--check never opens a window' };
  const display = process.env.DISPLAY ? `$DISPLAY=${process.env.DISPLAY}` : process.env.WAYLAND_DISPLAY ? `$WAYLAND_DISPLAY=${process.env.WAYLAND_DISPLAY}` : undefined;
  return display ? { headless: false, why: `${display} is set` } : { headless: true, why: 'there is no display: neither $DISPLAY nor $WAYLAND_DISPLAY is set' };
}

async function launchChromium(executablePath: string, display: Display): Promise<{ context: BrowserContext; extensionId: string }> {
  const args = [
    `--disable-extensions-except=${chromeDist}`,
    `--load-extension=${chromeDist}`,
    '--no-first-run', '--no-default-browser-check', '--disable-sync', '--disable-component-update',
  ];
  // Chromium refuses to run as root with its sandbox on; a person's desktop session keeps it.
  if (process.getuid?.() === 0) args.push('--no-sandbox');
  if (!process.env.DISPLAY && process.env.WAYLAND_DISPLAY) args.push('--ozone-platform-hint=auto');
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profileDir, {
      executablePath,
      headless: display.headless,
      // Headed: the window's own size; headless: room for the 380 px popup.
      viewport: display.headless ? { width: 800, height: 900 } : null,
      // This script stops the browser itself, after saying so.
      handleSIGINT: false, handleSIGTERM: false, handleSIGHUP: false,
      args,
    });
  } catch (e) {
    throw new StartError('browser', `Chromium did not start with profile ${shown(profileDir)}: ${(e as Error).message}`, { cause: e });
  }
  try {
    const worker = context.serviceWorkers().find((w) => w.url().startsWith('chrome-extension://'))
      ?? await context.waitForEvent('serviceworker', { timeout: 30_000 });
    return { context, extensionId: new URL(worker.url()).host };
  } catch (e) {
    await context.close();
    throw new StartError('worker', `the extension's service worker did not start within 30 s (is ${shown(chromeDist)} a valid build?): ${(e as Error).message}`, { cause: e });
  }
}

/** Opens the popup page in a tab and asks the worker for its status from there, as the popup does. */
async function openPopup(context: BrowserContext, extensionId: string): Promise<{ page: Page; status: VaultStatus; rendered: string }> {
  const page = context.pages()[0] ?? await context.newPage();
  await page.goto(`chrome-extension://${extensionId}/popup.html`);
  // refresh: also the server's backup, as the popup itself asks when it opens.
  const answer = await page.evaluate(() => chrome.runtime.sendMessage({ type: 'status.get', refresh: true })) as Result<VaultStatus> | undefined;
  if (!answer?.ok || answer.value.worker.product !== 'Matrix Key Vault') {
    throw new StartError('worker', `the worker did not answer the popup's status request: ${JSON.stringify(answer)}`);
  }
  const statusLine = page.getByTestId('worker-status');
  await statusLine.waitFor({ timeout: 15_000 });
  return { page, status: answer.value, rendered: (await statusLine.textContent() ?? '').trim() };
}

// ---------------------------------------------------------------------------------------------
// Running

function describeState(status: VaultStatus): string {
  if (!status.account) return 'not signed in yet';
  const signedIn = `signed in as ${status.account.userId}`;
  if (status.backup) return `${signedIn}; backup version ${status.backup.version}, ${status.upload.stored} keys held, ${status.upload.pending} waiting to upload`;
  const server = status.server;
  if (server?.state === 'present') return `${signedIn}; the account has backup version ${server.version} (${server.count} keys): the popup asks for its recovery key`;
  return `${signedIn}; no backup yet`;
}

function printSummary(o: {
  synapse: Synapse; userId: string; display: Display; status: VaultStatus; sessions: number; element: ElementBackup;
  history: DemoHistoryRecord; demoUrl: string; portChanged: boolean; check: boolean;
}): void {
  const rule = '─'.repeat(76);
  say();
  say(rule);
  say(` Matrix Key Vault ${o.status.worker.version} is running in Chromium, ${o.display.headless ? 'headless' : 'in a window'}, because ${o.display.why}.`);
  say(` Extension state (kept in ${shown(profileDir)}): ${describeState(o.status)}.`);
  if (o.display.headless) {
    say(` Screenshot of the popup: ${shown(screenshotPath)}`);
    if (!o.check) {
      say(' There is no window to click in. While this runs, the homeserver below also works from a browser on');
      say(` this computer: load ${shown(chromeDist)} via chrome://extensions → Developer mode → Load unpacked.`);
    }
  } else {
    say(' The popup page is open in a tab (the toolbar\'s puzzle-piece menu has the real popup; pin it there).');
  }
  say();
  say(' Sign in (popup → "Connect your Matrix account"):');
  say(`   Homeserver  ${o.synapse.serverName}   (found through its .well-known; plain http is allowed only for loopback addresses)`);
  say(`   Username    ${DEMO_USER}   (${o.userId})`);
  say(`   Password    ${DEMO_PASSWORD}`);
  say();
  say(' Then:');
  say('   1. "Create a backup…" opens a page: "Generate my recovery key", save the key it shows, tick');
  say('      "I have saved my recovery key somewhere safe", then "Create the backup".');
  say('   2. "Import a key file…" (shown once a backup exists) takes a file from Element\'s "Export E2E room keys".');
  say(`      A sample with ${o.sessions} real sessions made by Element's crypto is ready to try:`);
  say(`        File        ${sampleKeysPath}`);
  say(`        Passphrase  ${SAMPLE_PASSPHRASE}`);
  say('      Its sessions are encrypted to your backup key and uploaded within seconds ("Keys on the server").');
  say('   3. Restarting `npm start` keeps the account, the backup and the extension\'s state; delete');
  say(`      ${shown(demoDir)} to start from scratch.`);
  say();
  say(` Restore a backup Element made (sign out first, then sign in with the same homeserver):`);
  say(`   Username      ${ELEMENT_USER}   (${o.element.userId}), password ${DEMO_PASSWORD}`);
  say(`   Security Key  ${o.element.securityKey}`);
  say(`   or phrase     ${ELEMENT_PHRASE}`);
  say(`   Type either into "Recovery key", press Unlock, then Restore: ${o.element.sessions} keys of backup`);
  say(`   version ${o.element.version} come into the vault; "Export keys to a file…" writes them as an Element key file.`);
  say();
  say(` Read encrypted history with the vault: the demo web client${o.display.headless ? '' : ' (open in a tab)'}`);
  say(`   ${o.demoUrl}`);
  say(`   signs in as ${HISTORY_USER} (${o.history.userId}) as a new device; its room's ${o.history.events} messages, written by`);
  say(`   another device (${o.history.sessions} sessions), show "Unable to decrypt" until the vault has their keys:`);
  say(`   1. Popup: sign in as ${HISTORY_USER}, password ${DEMO_PASSWORD} (sign out first if signed in as another account).`);
  say(`   2. Type the Security Key into "Recovery key", press Unlock, then Restore (${o.history.sessions} keys of backup version ${o.history.backupVersion}):`);
  say(`        Security Key  ${o.history.securityKey}`);
  say(`        or phrase     ${HISTORY_PHRASE}`);
  say('   3. In the demo client\'s tab, open the popup and press "Allow this site to use your keys" (read keys and');
  say('      back up new keys). The page finds the vault by itself and its messages decrypt; a message you send');
  say('      there starts a new session, which the page hands to the vault for its backup.');
  if (o.portChanged) say('   (Its port changed since the last run, so the site must be allowed again.)');
  if (o.display.headless) say(`   Screenshot of the demo client: ${shown(demoClientScreenshotPath)}`);
  say();
  say(` Homeserver  ${o.synapse.baseUrl}  (Synapse ${SYNAPSE_VERSION}, log: ${shown(o.synapse.logPath)})`);
  say(o.check ? ' --check: everything above was started and checked; stopping now.'
    : o.display.headless ? ' Stop with Ctrl-C.' : ' Stop with Ctrl-C, or close the browser window.');
  say(rule);
}

async function main(argv: readonly string[]): Promise<void> {
  const unknown = argv.filter((a) => a !== '--check');
  if (unknown.length) throw new StartError('usage', `unknown argument ${unknown.join(' ')}; usage: npm start [-- --check]`);
  const check = argv.includes('--check') || process.env.MKV_START_CHECK === '1';
  const started = Date.now();

  say(`Matrix Key Vault demo${check ? ' (--check)' : ''}: data in ${shown(demoDir)}`);
  const executablePath = checkChromium();
  const pythonVersion = checkPython();
  say(`  ✓ found Chromium (${executablePath}) and Python ${pythonVersion}`);
  takeLock();

  let synapse: Synapse | undefined;
  let demoWeb: StaticServer | undefined;
  let context: BrowserContext | undefined;
  let stopping: Promise<void> | undefined;
  const stop = (why: string, exitCode: number): Promise<void> => {
    stopping ??= (async () => {
      say(`\nStopping (${why})…`);
      const t = Date.now();
      await context?.close().catch(() => undefined); // already gone when the person closed it
      await demoWeb?.close();
      await synapse?.stop();
      releaseLock();
      say(`Stopped Chromium, the demo client's server and Synapse in ${seconds(t)}.`);
      process.exit(exitCode);
    })();
    return stopping;
  };
  // Ctrl-C reaches every process of the terminal's group, and npm and tsx relay it once more, so
  // one keypress arrives here two or three times within milliseconds: only a signal that comes a
  // second or more after the first (a deliberate second Ctrl-C) ends at once. Synapse still dies
  // with us (the harness's exit hook and its parent-death signal), and so does Chromium (Playwright's).
  let firstSignalAt = 0;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (!stopping) { firstSignalAt = Date.now(); void stop(sig, 0); return; }
    if (Date.now() - firstSignalAt > 1000) { say('Second interrupt: exiting at once.'); process.exit(130); }
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, onSignal);

  try {
    // Synapse (Python) and the build (Vite) use different cores; start both at once, and let both
    // finish before acting on a failure, so a Synapse still starting is never left behind.
    const [server, build, demoBuild] = await Promise.allSettled([
      step('Synapse', async () => (synapse = await startDemoSynapse()), (s) => `up at ${s.baseUrl}`),
      step('extension built', () => buildExtension().catch((e: unknown) => {
        throw new StartError('build', `the extension did not build: ${(e as Error).message}`, { cause: e });
      }), () => `${shown(chromeDist)} and dist/firefox`),
      step('demo client built', () => buildDemo().catch((e: unknown) => {
        throw new StartError('build', `the demo client did not build: ${(e as Error).message}`, { cause: e });
      }), () => shown(demoClientDist)),
    ]);
    if (build.status === 'rejected') throw build.reason;
    if (demoBuild.status === 'rejected') throw demoBuild.reason;
    if (server.status === 'rejected') throw server.reason;
    const running = server.value;
    const account = await step('demo account', () => ensureDemoAccount(running), (a) => `${a.userId} ${a.created ? 'registered' : 'already there'}; password checked`);
    await step('discovery', () => checkDiscovery(running), () => `typing ${running.serverName} finds ${running.baseUrl} through .well-known`);
    const sample = await step('sample key file', () => ensureSampleKeys(account.userId),
      (s) => `${shown(sampleKeysPath)}, ${s.sessions} sessions, ${s.written ? 'written now' : 'kept from an earlier run'}`);
    const element = await step('element-user backup', () => ensureElementBackup(running),
      (b) => `${b.userId}, backup version ${b.version} with ${b.sessions} keys and secret storage, ${b.created ? 'made now' : 'kept from an earlier run'}`);
    const history = await step('demo-user history', () => ensureDemoHistory(running),
      (h) => `${h.userId}, ${h.events} encrypted messages in ${h.sessions} sessions written by another device, backup version ${h.backupVersion} and secret storage, ${h.created ? 'made now' : 'kept from an earlier run'}`);
    const web = await step('demo client served', async () => (demoWeb = await serveDemoClient()), (w) => `${w.url}${w.portChanged ? ' (a new port: the one of the last run is taken)' : ''}`);
    const demoUrl = demoClientUrl(web, running);

    const display = chooseDisplay(check);
    const launched = await step('Chromium', () => launchChromium(executablePath, display),
      (l) => `${display.headless ? 'headless' : 'headed'}, because ${display.why}; extension id ${l.extensionId}`);
    context = launched.context;
    // Also fires when stop() closes it; stop() runs once.
    context.on('close', () => void stop('the browser was closed', 0));
    const popup = await step('worker', () => openPopup(launched.context, launched.extensionId), (p) => `answered the popup page: "${p.rendered}"`);
    if (display.headless) await step('screenshot', () => popup.page.locator('body').screenshot({ path: screenshotPath }), () => shown(screenshotPath));
    const demoClient = await step('demo client', () => openDemoClient(launched.context, demoUrl, history.events),
      (d) => `opened in a tab: "${d.status}", ${d.counter}`);
    if (display.headless) await step('screenshot of the demo client', () => demoClient.page.screenshot({ path: demoClientScreenshotPath }), () => shown(demoClientScreenshotPath));
    else await popup.page.bringToFront();

    say(`  ready in ${seconds(started)}`);
    printSummary({ synapse: running, userId: account.userId, display, status: popup.status, sessions: sample.sessions, element, history, demoUrl, portChanged: web.portChanged, check });
    if (check) await stop('--check done', 0);
  } catch (e) {
    report(e);
    await stop('after the error above', 1);
  }
}

function report(e: unknown): void {
  const kind = (e as { kind?: unknown }).kind;
  process.stderr.write(`\nnpm start failed${typeof kind === 'string' ? ` (${kind})` : ''}: ${e instanceof Error ? e.message : String(e)}\n`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await main(process.argv.slice(2)).catch((e: unknown) => {
    // Failures before anything was started (arguments, missing Chromium or Python, the lock).
    report(e);
    process.exit(1);
  });
}
