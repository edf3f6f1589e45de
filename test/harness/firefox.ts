/**
 * Runs a built extension in Debian's Firefox ESR the way a person loads it by hand ("Load Temporary
 * Add-on"): `web-ext run` starts a headless Firefox and installs the add-on as a *temporary* add-on
 * over Firefox's remote debugging protocol (RDP).
 *
 * Playwright cannot drive stock Firefox here, and the extension logs nothing when it starts, so the
 * test looks through the same door web-ext uses: a second RDP connection to the debugger port
 * web-ext opened. Through it the test lists add-ons (is ours there, temporary, background running?),
 * navigates the tab to the extension's popup page, and evaluates code in that page (what the page
 * rendered; what the background answers to a `status.get` sent from the page).
 *
 * RDP, as used here (Firefox 153): packets are `<byte length>:<JSON>`; a request is
 * `{ to: actor, type, ...params }`; each actor answers its requests in order with a packet `from` it
 * that carries no `type` (or carries `error`); packets with a `type` are notifications.
 *
 * Firefox and web-ext run in their own process group with their own TMPDIR (which holds web-ext's
 * temporary profile), so `stop()` can end every process of the run and delete every file it made,
 * and a hard deadline stops a run that a hung test forgot.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from './browser.ts';

export const firefoxDist = join(repoRoot, 'dist/firefox');
export const webExtBin = join(repoRoot, 'node_modules/.bin/web-ext');

export type FirefoxHarnessErrorKind =
  | 'firefox-missing' | 'not-built' | 'install-failed' | 'exited' | 'timeout' | 'protocol' | 'evaluation';

export class FirefoxHarnessError extends Error {
  override readonly name = 'FirefoxHarnessError';
  constructor(readonly kind: FirefoxHarnessErrorKind, message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/** Debian's Firefox ESR, or FIREFOX_PATH. */
export function firefoxPath(): string {
  const path = process.env.FIREFOX_PATH ?? '/usr/bin/firefox-esr';
  if (!existsSync(path)) throw new FirefoxHarnessError('firefox-missing', `Firefox not found at ${path}: install it with \`apt-get install firefox-esr\` (or set FIREFOX_PATH)`);
  return path;
}

function tail(text: string, lines = 30): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

// ---------------------------------------------------------------------------------------------
// The processes

/** Pids in a process group that have not exited yet (zombies excluded: they wait only for a reaper). */
export function livePids(processGroup: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try { stat = readFileSync(`/proc/${entry}/stat`, 'utf8'); } catch { continue; } // exited meanwhile
    // Fields after the parenthesised command name: state ppid pgrp …
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(pgrp) === processGroup && state !== 'Z') found.push(Number(entry));
  }
  return found;
}

function signal(pids: readonly number[], sig: NodeJS.Signals): void {
  for (const pid of pids) { try { process.kill(pid, sig); } catch { /* already gone */ } }
}

async function until(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
  return true;
}

export interface FirefoxRun {
  /** Where Firefox's debugger listens (127.0.0.1). */
  debuggerPort: number;
  /** The process group of web-ext and Firefox: `livePids(processGroup)` is empty after `stop()`. */
  processGroup: number;
  /** Everything web-ext and Firefox printed so far. */
  output(): string;
  connect(): Promise<RdpConnection>;
  /** Ends Firefox and web-ext (TERM, then KILL) and deletes the run's temp dir; safe to call twice. */
  stop(): Promise<void>;
}

export interface StartFirefoxOptions {
  sourceDir?: string;
  /** How long web-ext may take to report the temporary install; default 90 s. */
  installTimeoutMs?: number;
  /** The run is stopped after this long whatever the test does; default 180 s. */
  maxRunMs?: number;
  /** Extra Firefox preferences (`--pref name=value`). */
  prefs?: Record<string, string | number | boolean>;
}

const installedLine = /Installed (.+) as a temporary add-on/;
const debuggerPortLine = /-start-debugger-server (\d+)/;

/** `MOZ_HEADLESS=1 web-ext run --firefox firefox-esr --no-input --verbose`, resolved once the add-on is installed. */
export async function startFirefox(options: StartFirefoxOptions = {}): Promise<FirefoxRun> {
  const sourceDir = options.sourceDir ?? firefoxDist;
  if (!existsSync(join(sourceDir, 'manifest.json'))) throw new FirefoxHarnessError('not-built', `no built extension at ${sourceDir}: run \`npm run build\``);
  const firefox = firefoxPath();
  const dir = mkdtempSync(join(tmpdir(), 'mkv-firefox-'));
  const prefs = Object.entries(options.prefs ?? {}).flatMap(([name, value]) => ['--pref', `${name}=${value}`]);
  const child = spawn(webExtBin, [
    'run', '--source-dir', sourceDir, '--firefox', firefox,
    '--no-input', '--no-reload', '--verbose', '--no-config-discovery', ...prefs,
  ], {
    cwd: dir,
    // Own process group: stop() signals Firefox and its content processes without a broad pkill.
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    // TMPDIR: web-ext's temporary profile lands in our dir, so nothing is left in /tmp after stop().
    env: { ...process.env, MOZ_HEADLESS: '1', MOZ_CRASHREPORTER_DISABLE: '1', TMPDIR: dir },
  });
  const processGroup = child.pid;
  if (processGroup === undefined) {
    rmSync(dir, { recursive: true, force: true });
    throw new FirefoxHarnessError('exited', `could not start ${webExtBin}`);
  }

  let output = '';
  let onOutput = (): void => {};
  const append = (chunk: Buffer): void => {
    output += chunk.toString('utf8');
    // Firefox is chatty offline (remote settings errors); keep the last 4 MB.
    if (output.length > 4 << 20) output = output.slice(-(2 << 20));
    onOutput();
  };
  child.stdout.on('data', append);
  child.stderr.on('data', append);
  let exitCode: number | string | null = null;
  const exited = new Promise<void>((r) => child.once('exit', (code, sig) => { exitCode = code ?? sig; r(); }));

  // A synchronous last resort: the test process exiting must not leave Firefox running.
  const onExit = (): void => { signal(livePids(processGroup), 'SIGKILL'); };
  process.on('exit', onExit);
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      clearTimeout(deadline);
      // Firefox first, so that web-ext sees it close, reaps it and exits by itself.
      signal(livePids(processGroup).filter((pid) => pid !== processGroup), 'SIGTERM');
      if (!await until(() => exitCode !== null, 10_000)) signal(livePids(processGroup), 'SIGTERM');
      if (!await until(() => livePids(processGroup).length === 0, 5_000)) signal(livePids(processGroup), 'SIGKILL');
      await until(() => livePids(processGroup).length === 0, 5_000);
      await exited;
      process.off('exit', onExit);
      rmSync(dir, { recursive: true, force: true });
    })();
    return stopping;
  };
  const deadline = setTimeout(() => void stop(), options.maxRunMs ?? 180_000);
  deadline.unref();

  // Wait for "Installed … as a temporary add-on", or for web-ext to give up.
  const installTimeoutMs = options.installTimeoutMs ?? 90_000;
  const installed = await new Promise<'installed' | 'exited' | 'timeout'>((resolve) => {
    const timer = setTimeout(() => resolve('timeout'), installTimeoutMs);
    onOutput = () => { if (installedLine.test(output)) { clearTimeout(timer); resolve('installed'); } };
    onOutput();
    void exited.then(() => { clearTimeout(timer); resolve(installedLine.test(output) ? 'installed' : 'exited'); });
  });
  onOutput = () => {};
  const port = Number(debuggerPortLine.exec(output)?.[1] ?? 0);
  if (installed !== 'installed' || !port) {
    await stop();
    const why = installed === 'timeout'
      ? new FirefoxHarnessError('timeout', `web-ext did not install the add-on within ${installTimeoutMs / 1000} s`)
      : new FirefoxHarnessError('install-failed', `web-ext could not install ${sourceDir} as a temporary add-on (exit ${exitCode})`);
    why.message += `\n--- web-ext output (last lines) ---\n${tail(output)}`;
    throw why;
  }
  return {
    debuggerPort: port,
    processGroup,
    output: () => output,
    connect: () => RdpConnection.open(port),
    stop,
  };
}

// ---------------------------------------------------------------------------------------------
// The remote debugging protocol

export type RdpPacket = Record<string, unknown> & { from?: string; type?: string; error?: string; message?: string };

interface Waiter { resolve(packet: RdpPacket): void; reject(error: Error): void }

export class RdpConnection {
  readonly #socket: Socket;
  #buffer = Buffer.alloc(0);
  readonly #replies = new Map<string, Waiter[]>();
  readonly #notifications = new Set<{ match(p: RdpPacket): boolean; waiter: Waiter }>();
  #failure: Error | undefined;

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.on('data', (chunk) => this.#receive(chunk));
    socket.on('error', (e) => this.#fail(new FirefoxHarnessError('protocol', `RDP connection failed: ${e.message}`)));
    socket.on('close', () => this.#fail(new FirefoxHarnessError('protocol', 'RDP connection closed')));
  }

  /** Connects and waits for the root actor's greeting. */
  static async open(port: number, timeoutMs = 10_000): Promise<RdpConnection> {
    const socket = connect(port, '127.0.0.1');
    const rdp = new RdpConnection(socket);
    await rdp.#waitFor((p) => p.from === 'root' && 'applicationType' in p, 'the greeting of the root actor', timeoutMs);
    return rdp;
  }

  /** Sends a request and resolves with the actor's reply; a reply carrying `error` rejects. */
  async request(to: string, type: string, params: Record<string, unknown> = {}, timeoutMs = 15_000): Promise<RdpPacket> {
    const reply = new Promise<RdpPacket>((resolve, reject) => {
      if (this.#failure) { reject(this.#failure); return; }
      const queue = this.#replies.get(to) ?? [];
      queue.push({ resolve, reject });
      this.#replies.set(to, queue);
    });
    const json = JSON.stringify({ to, type, ...params });
    this.#socket.write(`${Buffer.byteLength(json)}:${json}`);
    let packet: RdpPacket;
    try {
      packet = await withTimeout(reply, timeoutMs, `${type} to ${to}`);
    } catch (e) {
      // A reply that may still come would be taken for the answer to the next request to `to`.
      this.#fail(e as Error);
      throw e;
    }
    if (packet.error) throw new FirefoxHarnessError('protocol', `${type} to ${to} failed: ${packet.error}: ${packet.message ?? ''}`);
    return packet;
  }

  /** A notification `from` an actor; register it before sending the request that causes it. */
  notification(from: string, type: string, timeoutMs: number): Promise<RdpPacket> {
    return this.#waitFor((p) => p.from === from && p.type === type, `${type} from ${from}`, timeoutMs);
  }

  close(): void {
    this.#socket.destroy();
  }

  #waitFor(match: (p: RdpPacket) => boolean, what: string, timeoutMs: number): Promise<RdpPacket> {
    let entry: { match(p: RdpPacket): boolean; waiter: Waiter } | undefined;
    const found = new Promise<RdpPacket>((resolve, reject) => {
      if (this.#failure) { reject(this.#failure); return; }
      entry = { match, waiter: { resolve, reject } };
      this.#notifications.add(entry);
    });
    return withTimeout(found, timeoutMs, what).finally(() => { if (entry) this.#notifications.delete(entry); });
  }

  #receive(chunk: Buffer): void {
    this.#buffer = Buffer.concat([this.#buffer, chunk]);
    for (;;) {
      const colon = this.#buffer.indexOf(0x3a);
      if (colon < 0) return;
      const header = this.#buffer.subarray(0, colon).toString('latin1');
      // Bulk packets ("bulk actor type length:") carry binary data that nothing here asks for.
      if (!/^\d+$/.test(header)) { this.#fail(new FirefoxHarnessError('protocol', `unexpected RDP packet header ${JSON.stringify(header.slice(0, 40))}`)); return; }
      const length = Number(header);
      if (this.#buffer.length < colon + 1 + length) return;
      let packet: RdpPacket;
      try {
        packet = JSON.parse(this.#buffer.subarray(colon + 1, colon + 1 + length).toString('utf8')) as RdpPacket;
      } catch (e) {
        this.#fail(new FirefoxHarnessError('protocol', `RDP packet is not JSON: ${(e as Error).message}`));
        return;
      }
      this.#buffer = this.#buffer.subarray(colon + 1 + length);
      this.#dispatch(packet);
    }
  }

  #dispatch(packet: RdpPacket): void {
    const isReply = packet.type === undefined || packet.error !== undefined;
    const queue = isReply && packet.from !== undefined ? this.#replies.get(packet.from) : undefined;
    if (queue?.length) { queue.shift()!.resolve(packet); return; }
    for (const entry of this.#notifications) {
      if (entry.match(packet)) { this.#notifications.delete(entry); entry.waiter.resolve(packet); return; }
    }
  }

  #fail(error: Error): void {
    if (this.#failure) return;
    this.#failure = error;
    for (const queue of this.#replies.values()) for (const w of queue.splice(0)) w.reject(error);
    for (const entry of this.#notifications) entry.waiter.reject(error);
    this.#notifications.clear();
    this.#socket.destroy();
  }
}

async function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new FirefoxHarnessError('timeout', `no answer to ${what} within ${timeoutMs / 1000} s`)), timeoutMs);
  });
  try { return await Promise.race([promise, timeout]); } finally { clearTimeout(timer); }
}

// ---------------------------------------------------------------------------------------------
// What the tests ask Firefox

/** An add-on as `listAddons` describes it (the fields used here). */
export interface AddonDescriptor {
  id: string;
  actor: string;
  temporarilyInstalled: boolean;
  /** `moz-extension://<uuid>/manifest.json`: the uuid is random per profile. */
  manifestURL: string;
  /** 'RUNNING' or 'STOPPED' for an event page (Firefox 105+). */
  backgroundScriptStatus?: string;
  warnings: string[];
}

export async function findAddon(rdp: RdpConnection, id: string): Promise<AddonDescriptor | undefined> {
  const reply = await rdp.request('root', 'listAddons');
  const addons = (reply.addons ?? []) as AddonDescriptor[];
  return addons.find((a) => a.id === id);
}

interface TabDescriptor { actor: string; url: string }
interface FrameTarget { actor: string; url: string; consoleActor: string }

export interface ExtensionPage {
  url: string;
  /** The tab's descriptor actor: tells two tabs showing the same page apart. */
  tab: string;
  /** Evaluates an expression in the page; primitives only (serialise anything else to JSON). */
  evaluate(expression: string): Promise<unknown>;
  /** Awaits an expression in the page and returns its value through JSON; a rejection throws kind `evaluation`. */
  evaluateAsync(expression: string, timeoutMs?: number): Promise<unknown>;
  /** Polls `expression` until it yields a non-empty string, which it returns. */
  waitForText(expression: string, timeoutMs: number): Promise<string>;
}

/**
 * Navigates the selected tab to an extension page and returns a handle to evaluate code in it.
 * Going from about:blank to moz-extension switches processes, which destroys the tab's first target;
 * the page's own target is fetched again from the tab descriptor once the tab shows the new URL.
 */
export async function openExtensionPage(rdp: RdpConnection, addon: AddonDescriptor, path: string): Promise<ExtensionPage> {
  const url = new URL(path, addon.manifestURL).href;
  const tabs = async (): Promise<TabDescriptor[]> => (await rdp.request('root', 'listTabs')).tabs as TabDescriptor[];
  const [first] = await tabs();
  if (!first) throw new FirefoxHarnessError('protocol', 'Firefox reports no tab to open the page in');
  const blank = (await rdp.request(first.actor, 'getTarget')).frame as FrameTarget;
  await rdp.request(blank.actor, 'navigateTo', { url });

  let target: FrameTarget | undefined;
  let tabActor = first.actor;
  const deadline = Date.now() + 30_000;
  while (!target) {
    const tab = (await tabs()).find((t) => t.url === url);
    const frame = tab && (await rdp.request(tab.actor, 'getTarget')).frame as FrameTarget | undefined;
    if (frame?.url === url) { target = frame; tabActor = tab!.actor; }
    else if (Date.now() > deadline) throw new FirefoxHarnessError('timeout', `the tab did not show ${url} within 30 s`);
    else await new Promise((r) => setTimeout(r, 200));
  }
  return pageHandle(rdp, target, tabActor);
}

function pageHandle(rdp: RdpConnection, target: FrameTarget, tab: string): ExtensionPage {
  // One evaluation at a time: results arrive as notifications that only the order ties to a request.
  let queue: Promise<unknown> = Promise.resolve();
  const evaluateRaw = (text: string, awaitResult: boolean, timeoutMs: number): Promise<RdpPacket> => {
    const next = queue.then(async () => {
      const result = rdp.notification(target.consoleActor, 'evaluationResult', timeoutMs);
      await rdp.request(target.consoleActor, 'evaluateJSAsync', awaitResult ? { text, mapped: { await: true } } : { text });
      return result;
    });
    queue = next.catch(() => undefined);
    return next;
  };
  const evaluate = async (expression: string, timeoutMs = 15_000): Promise<unknown> => {
    const packet = await evaluateRaw(expression, false, timeoutMs);
    if (packet.hasException) throw new FirefoxHarnessError('evaluation', `${expression}: ${String(packet.exceptionMessage)}`);
    return fromGrip(rdp, packet.result);
  };
  return {
    url: target.url,
    tab,
    evaluate: (expression) => evaluate(expression),
    async evaluateAsync(expression, timeoutMs = 15_000) {
      // The console awaits a top-level promise when asked (`mapped.await`) but reports a rejection
      // without its reason, so the reason travels inside the JSON instead.
      const text = `(async () => { try { return JSON.stringify({ ok: true, value: await (${expression}) }); }
        catch (e) { return JSON.stringify({ ok: false, message: String(e && e.message || e) }); } })()`;
      const packet = await evaluateRaw(text, true, timeoutMs);
      const raw = await fromGrip(rdp, packet.result);
      if (typeof raw !== 'string') throw new FirefoxHarnessError('evaluation', `${expression}: no result (${String(packet.exceptionMessage ?? 'rejected')})`);
      const outcome = JSON.parse(raw) as { ok: true; value?: unknown } | { ok: false; message: string };
      if (!outcome.ok) throw new FirefoxHarnessError('evaluation', `${expression}: ${outcome.message}`);
      return outcome.value;
    },
    async waitForText(expression, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const value = await evaluate(expression);
        if (typeof value === 'string' && value !== '') return value;
        if (Date.now() > deadline) throw new FirefoxHarnessError('timeout', `${expression} stayed empty for ${timeoutMs / 1000} s (last: ${JSON.stringify(value)})`);
        await new Promise((r) => setTimeout(r, 200));
      }
    },
  };
}

/**
 * RDP sends primitives as they are and everything else as a "grip" object; a string longer than
 * the server's limit (10,000 characters) comes as a `longString` grip, read whole from its actor.
 */
async function fromGrip(rdp: RdpConnection, grip: unknown): Promise<unknown> {
  if (grip === null || typeof grip !== 'object') return grip;
  const type = (grip as { type?: unknown }).type;
  if (type === 'undefined') return undefined;
  if (type === 'null') return null;
  if (type === 'longString') {
    const { actor, length } = grip as { actor: string; length: number };
    const reply = await rdp.request(actor, 'substring', { start: 0, end: length }, 60_000);
    return reply.substring;
  }
  throw new FirefoxHarnessError('evaluation', `the page returned a ${String(type)} grip; return a string (JSON) instead`);
}

// ---------------------------------------------------------------------------------------------
// More tabs, and the event page's lifecycle

async function listTabs(rdp: RdpConnection): Promise<TabDescriptor[]> {
  return (await rdp.request('root', 'listTabs')).tabs as TabDescriptor[];
}

/** The tab descriptor actors of every open tab. */
export async function tabActors(rdp: RdpConnection): Promise<Set<string>> {
  return new Set((await listTabs(rdp)).map((t) => t.actor));
}

/**
 * A tab that was not among `before` and shows a page whose URL `matches`: what a link with
 * `target="_blank"` or `tabs.create` opened. Its page target is fetched once the frame shows that URL
 * (the tab may start on about:blank and switch processes).
 */
export async function waitForNewTab(rdp: RdpConnection, before: ReadonlySet<string>, matches: (url: string) => boolean, timeoutMs = 30_000): Promise<ExtensionPage> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    for (const tab of await listTabs(rdp)) {
      if (before.has(tab.actor) || !matches(tab.url)) continue;
      const frame = (await rdp.request(tab.actor, 'getTarget')).frame as FrameTarget | undefined;
      if (frame && matches(frame.url)) return pageHandle(rdp, frame, tab.actor);
    }
    if (Date.now() > deadline) throw new FirefoxHarnessError('timeout', `no new tab showed the page within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Opens another of the extension's pages in a new tab (`tabs.create`, asked by `opener`, an extension page). */
export async function openExtensionTab(rdp: RdpConnection, opener: ExtensionPage, path: string): Promise<ExtensionPage> {
  const url = new URL(path, opener.url).href;
  const before = await tabActors(rdp);
  await opener.evaluateAsync(`browser.tabs.create({ url: ${JSON.stringify(url)} }).then(() => null)`);
  return waitForNewTab(rdp, before, (u) => u === url);
}

/** Closes the page's tab (the page removes its own tab) and waits until Firefox no longer lists it. */
export async function closeTab(rdp: RdpConnection, page: ExtensionPage, timeoutMs = 10_000): Promise<void> {
  // Later, from a timer: the evaluation's result must leave the page before the page goes.
  await page.evaluate('setTimeout(() => void browser.tabs.getCurrent().then((t) => browser.tabs.remove(t.id)), 50), null');
  const deadline = Date.now() + timeoutMs;
  while ((await tabActors(rdp)).has(page.tab)) {
    if (Date.now() > deadline) throw new FirefoxHarnessError('timeout', `the tab of ${page.url} did not close within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Terminates the add-on's event page, as about:debugging's "Terminate background script" does
 * (the add-on descriptor actor's `terminateBackgroundScript`, Firefox 105+): Firefox's equivalent of
 * Chromium stopping an idle service worker. Resolves once `listAddons` reports it STOPPED, or once
 * `restarted` (when given) says a new instance is running: an alarm or message due at that moment
 * can start the page again between two polls, so STOPPED is never seen. The request is sent again
 * every 2 s while neither holds (Firefox ignores it while the page is still starting). The next
 * event the page listens to (a message, an alarm) starts it again.
 */
export async function terminateBackground(rdp: RdpConnection, addonId: string, opts: { timeoutMs?: number; restarted?: () => Promise<boolean> } = {}): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? 20_000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const addon = await findAddon(rdp, addonId);
    if (!addon) throw new FirefoxHarnessError('protocol', `Firefox lists no add-on ${addonId}`);
    await rdp.request(addon.actor, 'terminateBackgroundScript');
    const resend = Date.now() + 2_000;
    while (Date.now() < resend) {
      if ((await findAddon(rdp, addonId))?.backgroundScriptStatus === 'STOPPED') return;
      await new Promise((r) => setTimeout(r, 50));
    }
    if (opts.restarted && (await opts.restarted())) return;
    if (Date.now() > deadline) throw new FirefoxHarnessError('timeout', `the background of ${addonId} was not STOPPED within ${timeoutMs / 1000} s`);
  }
}

// ---------------------------------------------------------------------------------------------
// Web pages (the page API's sites)

/**
 * Opens a web page (any absolute URL) in a new tab, as `tabs.create` from the extension page
 * `opener` does, and returns a handle that evaluates code in the page's own world, as the page's
 * scripts would run it.
 */
export async function openWebTab(rdp: RdpConnection, opener: ExtensionPage, url: string, timeoutMs = 30_000): Promise<ExtensionPage> {
  const before = await tabActors(rdp);
  await opener.evaluateAsync(`browser.tabs.create({ url: ${JSON.stringify(url)} }).then(() => null)`);
  return waitForNewTab(rdp, before, (u) => u === url, timeoutMs);
}

/**
 * Reloads the page's tab (`location.reload()`, as a person pressing F5) and resolves once the new
 * document has loaded, with a handle to it. The old document is marked first, so the wait cannot be
 * satisfied by the page that is going away.
 */
export async function reloadTab(rdp: RdpConnection, page: ExtensionPage, timeoutMs = 30_000): Promise<ExtensionPage> {
  const mark = `__mkvReload${Date.now()}`;
  await page.evaluate(`window.${mark} = true, setTimeout(() => location.reload(), 50), null`);
  const deadline = Date.now() + timeoutMs;
  let fresh: ExtensionPage | undefined;
  for (;;) {
    await new Promise((r) => setTimeout(r, 200));
    // The tab's target follows its document within a process; a new one is fetched only after a failure.
    if (!fresh) {
      const frame = (await rdp.request(page.tab, 'getTarget')).frame as FrameTarget | undefined;
      if (frame) fresh = pageHandle(rdp, frame, page.tab);
    }
    if (fresh) {
      // A document torn down mid-evaluation throws; the next round asks the new one.
      const loaded = await fresh.evaluate(`window.${mark} === undefined && document.readyState === 'complete'`).catch(() => { fresh = undefined; return false; });
      if (loaded === true) return fresh!;
    }
    if (Date.now() > deadline) throw new FirefoxHarnessError('timeout', `the tab of ${page.url} did not reload within ${timeoutMs / 1000} s`);
  }
}
