/**
 * A real Synapse for integration tests, end-to-end tests and `npm start` (DESIGN.md "Real
 * components": no fake server stands in for it).
 *
 * Synapse comes from PyPI, pinned, into a git-ignored venv at `.cache/synapse-venv` that later runs
 * reuse. Each start gets a fresh temp dir (config, signing key, SQLite database, log) and a free
 * port on 127.0.0.1. Users are registered through the shared-secret admin API, so registration
 * stays closed. Anything that goes wrong throws with the tail of the log: a test that needs
 * Synapse fails, it never skips.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/**
 * Pinned: 1.163.2 is the newest release on PyPI when this was written; it installs from wheels on
 * Python 3.11 (≈20 s here) and needs Python ≥ 3.10. Bump it here; the venv reinstalls by itself.
 */
export const SYNAPSE_VERSION = '1.163.2';

const repoRoot = resolve(import.meta.dirname, '../..');
export const synapseVenv = join(repoRoot, '.cache/synapse-venv');
const venvPython = join(synapseVenv, 'bin/python');
/** Written last by a successful install, so a half-finished venv is never reused. */
const versionMarker = join(synapseVenv, '.installed-synapse-version');
const installLock = `${synapseVenv}.lock`;

export interface SynapseUser {
  userId: string;
  accessToken: string;
  deviceId: string;
  password: string;
}

/** What a test needs to use an already running Synapse (also what the globalSetup provides). */
export interface SynapseAddress {
  baseUrl: string;
  /** `127.0.0.1:PORT`: what a user types to find this server through `.well-known`. */
  serverName: string;
  registrationSharedSecret: string;
}

export interface Synapse extends SynapseAddress {
  logPath: string;
  dataDir: string;
  registerUser(localpart: string, password: string, options?: { admin?: boolean }): Promise<SynapseUser>;
  login(localpart: string, password: string): Promise<SynapseUser>;
  /** SIGTERM, then SIGKILL after `timeoutMs`; removes the temp dir unless a dataDir was given. */
  stop(timeoutMs?: number): Promise<void>;
}

export interface StartSynapseOptions {
  /** Shows up in the temp dir's name and in progress lines. */
  name?: string;
  /** Keep config, keys and database here (created if missing) instead of a fresh temp dir. */
  dataDir?: string;
  /** How long to wait for `/_matrix/client/versions`; default 60 s. */
  startTimeoutMs?: number;
  /** Where progress lines go; default stderr. */
  log?: (line: string) => void;
}

export class SynapseHarnessError extends Error {
  readonly kind = 'synapse-harness';
  override readonly name = 'SynapseHarnessError';
}

const defaultLog = (line: string): void => { process.stderr.write(`[synapse] ${line}\n`); };

// ---------------------------------------------------------------------------------------------
// The venv

function run(cmd: string, args: string[], timeoutMs: number): { ok: boolean; output: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
  const output = `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}`;
  return { ok: r.status === 0 && !r.error, output };
}

function tail(text: string, lines = 40): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

function installedVersion(): string | undefined {
  if (!existsSync(venvPython) || !existsSync(versionMarker)) return undefined;
  return readFileSync(versionMarker, 'utf8').trim();
}

function pidAlive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

/** One installer at a time across processes (vitest projects, `npm start`): mkdir is atomic. */
async function withInstallLock<T>(log: (l: string) => void, body: () => T): Promise<T> {
  mkdirSync(join(repoRoot, '.cache'), { recursive: true });
  const deadline = Date.now() + 15 * 60_000;
  let told = false;
  for (;;) {
    try {
      mkdirSync(installLock);
      writeFileSync(join(installLock, 'pid'), String(process.pid));
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const owner = Number(readFileOr(join(installLock, 'pid'), '0'));
      if (!owner || !pidAlive(owner)) { rmSync(installLock, { recursive: true, force: true }); continue; }
      if (Date.now() > deadline) throw new SynapseHarnessError(`timed out waiting for process ${owner} to finish installing Synapse (lock ${installLock})`);
      if (!told) { log(`waiting for process ${owner}, which is installing Synapse…`); told = true; }
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  try { return body(); } finally { rmSync(installLock, { recursive: true, force: true }); }
}

function readFileOr(path: string, fallback: string): string {
  try { return readFileSync(path, 'utf8'); } catch { return fallback; }
}

/** Makes sure `.cache/synapse-venv` holds the pinned Synapse; returns the venv's python. */
export async function ensureSynapseInstalled(log: (line: string) => void = defaultLog): Promise<string> {
  if (installedVersion() === SYNAPSE_VERSION) return venvPython;
  return withInstallLock(log, () => {
    const found = installedVersion();
    if (found === SYNAPSE_VERSION) return venvPython; // another process installed it meanwhile
    const python = process.env.PYTHON ?? 'python3';
    const probe = run(python, ['-c', 'import sys; print("%d.%d" % sys.version_info[:2])'], 30_000);
    if (!probe.ok) throw new SynapseHarnessError(`cannot run ${python} (Synapse needs Python ≥ 3.10; set PYTHON to use another): ${tail(probe.output, 5)}`);
    const [major = 0, minor = 0] = probe.output.trim().split('.').map(Number);
    if (major < 3 || (major === 3 && minor < 10)) throw new SynapseHarnessError(`Synapse ${SYNAPSE_VERSION} needs Python ≥ 3.10, ${python} is ${probe.output.trim()}`);

    const why = found ? `replacing Synapse ${found}` : 'first run, about a minute';
    log(`installing Synapse ${SYNAPSE_VERSION} into .cache/synapse-venv (${why})…`);
    const started = Date.now();
    const venv = run(python, ['-m', 'venv', '--clear', synapseVenv], 120_000);
    if (!venv.ok) throw new SynapseHarnessError(`\`${python} -m venv\` failed (on Debian: apt-get install python3-venv):\n${tail(venv.output)}`);
    const pip = run(venvPython, ['-m', 'pip', 'install', '--disable-pip-version-check', '--no-input', `matrix-synapse==${SYNAPSE_VERSION}`], 15 * 60_000);
    if (!pip.ok) throw new SynapseHarnessError(`pip could not install matrix-synapse==${SYNAPSE_VERSION}:\n${tail(pip.output)}`);
    const check = run(venvPython, ['-c', 'import synapse, importlib.metadata as m; print(m.version("matrix-synapse"))'], 60_000);
    if (!check.ok || check.output.trim() !== SYNAPSE_VERSION) throw new SynapseHarnessError(`installed Synapse does not import as ${SYNAPSE_VERSION}: ${tail(check.output, 10)}`);
    writeFileSync(versionMarker, `${SYNAPSE_VERSION}\n`);
    log(`installed Synapse ${SYNAPSE_VERSION} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return venvPython;
  });
}

// ---------------------------------------------------------------------------------------------
// Config

async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

/** Far above anything a load test does, so a 429 only ever comes from the fault proxy. */
const unlimited = { per_second: 100_000, burst_count: 1_000_000 };

function homeserverConfig(dir: string, port: number, secret: string): Record<string, unknown> {
  // server_name is `127.0.0.1:PORT`, not `localhost`: a user who types the server name (as it
  // appears in their user id) makes discovery fetch http://127.0.0.1:PORT/.well-known/matrix/client,
  // which this very listener serves. With `localhost` discovery would go to port 80/443 where
  // nothing listens. The IP literal, not the name `localhost`, avoids a resolver that prefers ::1.
  const serverName = `127.0.0.1:${port}`;
  return {
    server_name: serverName,
    public_baseurl: `http://${serverName}/`,
    serve_client_wellknown: true,
    pid_file: join(dir, 'homeserver.pid'),
    signing_key_path: join(dir, 'signing.key'),
    media_store_path: join(dir, 'media'),
    // Without the media repo Synapse's body limit stays at 200 * 65536 bytes (≈ 12.5 MiB,
    // reference §1.5); upload batches (500 sessions of at most 8 KiB) stay below it.
    enable_media_repo: false,
    listeners: [{
      port,
      bind_addresses: ['127.0.0.1'],
      type: 'http',
      tls: false,
      x_forwarded: false,
      resources: [{ names: ['client'], compress: false }],
    }],
    database: { name: 'sqlite3', args: { database: join(dir, 'homeserver.db') } },
    registration_shared_secret: secret,
    enable_registration: false,
    macaroon_secret_key: randomBytes(32).toString('hex'),
    form_secret: randomBytes(32).toString('hex'),
    // bcrypt's default 12 rounds cost ≈ 250 ms per login; tests log in a lot.
    bcrypt_rounds: 4,
    report_stats: false,
    enable_metrics: false,
    presence: { enabled: false },
    url_preview_enabled: false,
    federation_domain_whitelist: [],
    trusted_key_servers: [],
    suppress_key_server_warning: true,
    rc_message: unlimited,
    rc_registration: unlimited,
    rc_registration_token_validity: unlimited,
    rc_login: { address: unlimited, account: unlimited, failed_attempts: unlimited },
    rc_joins: { local: unlimited, remote: unlimited },
    rc_joins_per_room: unlimited,
    rc_invites: { per_room: unlimited, per_user: unlimited, per_issuer: unlimited },
    rc_room_creation: unlimited,
    rc_key_requests: unlimited,
    rc_3pid_validation: unlimited,
    rc_third_party_invite: unlimited,
    rc_admin_redaction: unlimited,
    rc_profile: unlimited,
    rc_reports: unlimited,
    rc_delayed_event_mgmt: unlimited,
    rc_presence: { per_user: unlimited },
    rc_user_directory: unlimited,
    rc_media_create: unlimited,
  };
}

// ---------------------------------------------------------------------------------------------
// Running it

const running = new Set<ChildProcess>();
let exitHookInstalled = false;
function killAllOnExit(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // 'exit' handlers must be synchronous: SIGKILL is all there is time for.
  process.on('exit', () => { for (const child of running) child.kill('SIGKILL'); });
}

/**
 * Python prelude that makes the kernel SIGTERM Synapse when this Node process dies, even by
 * SIGKILL (prctl PR_SET_PDEATHSIG survives execv), so a crashed test run leaves no server behind.
 */
const parentDeathPrelude = [
  'import ctypes, os, signal, sys',
  'try:',
  '    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))',
  'except Exception:',
  '    pass',
  'if os.getppid() != int(sys.argv[1]):',
  '    sys.exit("parent already gone")',
  'os.execv(sys.executable, [sys.executable, "-m", "synapse.app.homeserver"] + sys.argv[2:])',
].join('\n');

async function waitForVersions(baseUrl: string, child: ChildProcess, spawnError: () => Error | undefined, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    const failed = spawnError();
    if (failed) throw new Error(`Synapse could not be started: ${failed.message}`);
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`Synapse exited (${child.exitCode ?? child.signalCode}) before it answered`);
    try {
      const res = await fetch(`${baseUrl}/_matrix/client/versions`, { signal: AbortSignal.timeout(2000) });
      if (res.ok) { await res.json(); return; }
      last = `HTTP ${res.status}`;
    } catch (e) {
      last = (e as Error).message;
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new Error(`Synapse did not answer /_matrix/client/versions within ${timeoutMs / 1000} s (last: ${last})`);
}

export async function startSynapse(options: StartSynapseOptions = {}): Promise<Synapse> {
  // The free port is only free until Synapse binds it; another process may take it in between.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(options);
    } catch (e) {
      const portTaken = e instanceof SynapseHarnessError && /Address already in use/.test(e.message);
      if (!portTaken || options.dataDir || attempt >= 3) throw e;
      (options.log ?? defaultLog)('the port was taken before Synapse could bind it; trying another');
    }
  }
}

async function startOnce(options: StartSynapseOptions): Promise<Synapse> {
  const log = options.log ?? defaultLog;
  const python = await ensureSynapseInstalled(log);
  const name = (options.name ?? 'synapse').replace(/[^A-Za-z0-9_-]/g, '-');
  const ownDir = !options.dataDir;
  const dir = options.dataDir ? resolve(options.dataDir) : mkdtempSync(join(tmpdir(), `mkv-${name}-`));
  mkdirSync(dir, { recursive: true });
  const configPath = join(dir, 'homeserver.yaml');
  const logPath = join(dir, 'homeserver.log');

  // A kept dataDir keeps its port and secret (they are in the user ids and tokens it holds).
  let config: Record<string, unknown>;
  if (existsSync(configPath)) {
    config = JSON.parse(readFileSync(configPath, 'utf8')) as Record<string, unknown>;
  } else {
    const port = await freePort();
    config = homeserverConfig(dir, port, randomBytes(24).toString('hex'));
    // JSON is YAML, so Synapse reads this file as it is.
    writeFileSync(configPath, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  }
  const serverName = String(config.server_name);
  const baseUrl = `http://${serverName}`;
  const secret = String(config.registration_shared_secret);

  const keys = run(python, ['-m', 'synapse.app.homeserver', '--config-path', configPath, '--generate-keys'], 120_000);
  if (!keys.ok) throw new SynapseHarnessError(`Synapse could not generate its signing key:\n${tail(keys.output)}`);

  const started = Date.now();
  const logFd = openSync(logPath, 'a');
  const child = spawn(python, ['-c', parentDeathPrelude, String(process.pid), '--config-path', configPath], {
    cwd: dir,
    stdio: ['ignore', logFd, logFd],
    env: { ...process.env, PYTHONUNBUFFERED: '1' },
  });
  closeSync(logFd);
  running.add(child);
  killAllOnExit();
  let spawnError: Error | undefined;
  const exited = new Promise<void>((r) => {
    child.once('exit', () => { running.delete(child); r(); });
    // No 'exit' follows a failed spawn; without this listener the 'error' would crash the process.
    child.once('error', (e) => { spawnError = e; running.delete(child); r(); });
  });

  async function stop(timeoutMs = 10_000): Promise<void> {
    if (child.exitCode === null && child.signalCode === null && !spawnError) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      await exited;
      clearTimeout(timer);
    }
    if (ownDir) rmSync(dir, { recursive: true, force: true });
  }

  try {
    await waitForVersions(baseUrl, child, () => spawnError, options.startTimeoutMs ?? 60_000);
  } catch (e) {
    child.kill('SIGKILL');
    await exited;
    const logTail = tail(readFileOr(logPath, '(no log)'));
    // A fresh temp dir is kept so its log can be read; a retry after a port clash removes it.
    if (ownDir && /Address already in use/.test(logTail)) rmSync(dir, { recursive: true, force: true });
    throw new SynapseHarnessError(`${(e as Error).message}\n--- ${logPath} (last lines) ---\n${logTail}`);
  }
  log(`Synapse ${SYNAPSE_VERSION} (${name}) up at ${baseUrl} in ${((Date.now() - started) / 1000).toFixed(1)} s; log: ${logPath}`);

  const address: SynapseAddress = { baseUrl, serverName, registrationSharedSecret: secret };
  return {
    ...address,
    logPath,
    dataDir: dir,
    registerUser: (localpart, password, opts) => registerUser(address, localpart, password, opts),
    login: (localpart, password) => loginUser(address, localpart, password),
    stop,
  };
}

// ---------------------------------------------------------------------------------------------
// Users (usable from any test process that only knows the address)

async function postJson(url: string, body: unknown, what: string): Promise<Record<string, unknown>> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await res.text();
  if (!res.ok) throw new SynapseHarnessError(`${what} failed: HTTP ${res.status} ${text.slice(0, 500)}`);
  return JSON.parse(text) as Record<string, unknown>;
}

function asUser(json: Record<string, unknown>, password: string, what: string): SynapseUser {
  const { user_id: userId, access_token: accessToken, device_id: deviceId } = json;
  if (typeof userId !== 'string' || typeof accessToken !== 'string' || typeof deviceId !== 'string') {
    throw new SynapseHarnessError(`${what}: answer lacks user_id/access_token/device_id`);
  }
  return { userId, accessToken, deviceId, password };
}

/**
 * Shared-secret registration (Synapse admin API `/_synapse/admin/v1/register`): fetch a nonce,
 * then send HMAC-SHA1(secret, nonce \0 user \0 password \0 admin|notadmin) as hex.
 */
export async function registerUser(address: SynapseAddress, localpart: string, password: string, options: { admin?: boolean } = {}): Promise<SynapseUser> {
  const url = `${address.baseUrl}/_synapse/admin/v1/register`;
  const nonceRes = await fetch(url);
  if (!nonceRes.ok) throw new SynapseHarnessError(`register ${localpart}: nonce request failed with HTTP ${nonceRes.status}`);
  const { nonce } = (await nonceRes.json()) as { nonce: string };
  const admin = options.admin ?? false;
  const mac = createHmac('sha1', address.registrationSharedSecret)
    .update(`${nonce}\0${localpart}\0${password}\0${admin ? 'admin' : 'notadmin'}`, 'utf8')
    .digest('hex');
  const json = await postJson(url, { nonce, username: localpart, password, admin, mac }, `register ${localpart}`);
  return asUser(json, password, `register ${localpart}`);
}

/** A fresh device for an existing user (m.login.password). */
export async function loginUser(address: SynapseAddress, localpart: string, password: string): Promise<SynapseUser> {
  const json = await postJson(`${address.baseUrl}/_matrix/client/v3/login`, {
    type: 'm.login.password',
    identifier: { type: 'm.id.user', user: localpart },
    password,
  }, `login ${localpart}`);
  return asUser(json, password, `login ${localpart}`);
}

/** A localpart no other test on the shared server uses. */
export function uniqueLocalpart(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`.toLowerCase();
}
