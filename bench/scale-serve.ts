/**
 * After bench/scale.ts's restore, with the vault holding the whole backup: how fast it serves and
 * how much disk it takes (issue 8's "Serve" and "Disk" targets).
 *
 * - Serve: a page on an allowed origin asks `vault_getRoomKeys` for ONE session at a time, as a web
 *   client opening a room asks for a missing key; sessions drawn at random from a few rooms' entries
 *   in Synapse's backup (so all are in the vault). Each request is timed in the page
 *   (`performance.now()` around `provider.request`), one after the other and paced below the site's
 *   request budget; every answer must hold the key (found, same ids, a session key). Every third is
 *   followed by a timed `vault_status`, the same trip without the key's lookup.
 * - Popup: a new tab at popup.html until `main[data-screen]` is past `loading` (status rendered),
 *   from the navigation's start (in the page) and from the tab's creation (Node); then the
 *   worker's `status.get` round trip from an extension page, as the popup polls it (refresh false)
 *   and as it asks when opened (refresh true: counts in the vault and the server's backup).
 * - Disk: `navigator.storage.estimate()` from an extension page (usage, usageDetails.indexedDB) and
 *   the bytes of the profile's IndexedDB directories, against the size of one entry's JSON as
 *   Synapse returns it (`GET /room_keys/keys/{roomId}`).
 *
 * Nothing secret is printed (no key, no token).
 */
import { cpSync, lstatSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { Page } from 'playwright-core';
import type { BrowserContext } from 'playwright-core';
import { PAGE_RATE_PER_SECOND, SESSIONS_PER_TOKEN } from '../src/background/page-api.ts';
import type { SessionRef } from '../src/shared/page-api.ts';
import { VAULT_DB_NAME } from '../src/platform/vault.ts';
import type { Synapse } from '../test/harness/synapse.ts';
import { synapseApi as api } from './common.ts';

export class ScaleServeError extends Error {
  override readonly name = 'ScaleServeError';
  constructor(readonly kind: 'serve' | 'popup' | 'disk' | 'synapse', message: string) {
    super(message);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Nearest-rank percentile of an ascending list. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export interface Spread { n: number; p50: number; p95: number; p99: number; max: number; min: number; mean: number }

export function spread(values: readonly number[]): Spread {
  const sorted = [...values].sort((a, b) => a - b);
  return {
    n: sorted.length, p50: percentile(sorted, 50), p95: percentile(sorted, 95), p99: percentile(sorted, 99),
    max: sorted.at(-1) ?? NaN, min: sorted[0] ?? NaN, mean: sorted.reduce((a, b) => a + b, 0) / Math.max(1, sorted.length),
  };
}

// ---------------------------------------------------------------------------------------------
// The extension, with the host permission for `localhost` granted

/**
 * A copy of the built extension whose manifest grants `http://localhost/*` outright, standing in for
 * the user's "Allow" in the browser's prompt (headless Chromium cannot show it), as
 * test/harness/page-site.ts's `grantedCopy` does for 127.0.0.1. localhost and not 127.0.0.1: the
 * scale Synapse is on 127.0.0.1, and a host permission for it would let the worker skip CORS for the
 * homeserver and change the restore being measured; a permission pattern has no port, so the site
 * goes on the other loopback name.
 */
export function localhostGrantedCopy(source: string, dir: string): string {
  cpSync(source, dir, { recursive: true });
  const manifestPath = join(dir, 'manifest.json');
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as Record<string, unknown>;
  manifest.host_permissions = ['http://localhost/*'];
  writeFileSync(manifestPath, JSON.stringify(manifest));
  return dir;
}

// ---------------------------------------------------------------------------------------------
// Synapse's side: session ids to ask for, and the size of one entry

export interface ServerSample {
  rooms: number;
  entries: number;
  /** Bytes of each entry's JSON (`{"first_message_index":…,…,"session_data":{…}}`). */
  entryBytes: number[];
  /** Bytes of the room answers, over their entries: the entry plus its session id key and commas. */
  answerBytesPerEntry: number;
  refs: SessionRef[];
}

/**
 * `GET /room_keys/keys/{roomId}?version=` for `rooms` rooms picked at random (a new device, logged
 * out afterwards). Synapse encodes its answers compactly, so each entry's `JSON.stringify` is the
 * length it sent; checked against the answer's own length.
 */
export async function sampleServerEntries(synapse: Synapse, user: { localpart: string; password: string }, version: string, roomIds: readonly string[], rooms: number): Promise<ServerSample> {
  const { accessToken } = await synapse.login(user.localpart, user.password);
  try {
    const picked = shuffled(roomIds).slice(0, rooms);
    const sample: ServerSample = { rooms: picked.length, entries: 0, entryBytes: [], answerBytesPerEntry: 0, refs: [] };
    let answerBytes = 0;
    for (const roomId of picked) {
      const response = await fetch(`${synapse.baseUrl}/_matrix/client/v3/room_keys/keys/${encodeURIComponent(roomId)}?version=${encodeURIComponent(version)}`, {
        headers: { authorization: `Bearer ${accessToken}` }, signal: AbortSignal.timeout(120_000),
      });
      const text = await response.text();
      if (!response.ok) throw new ScaleServeError('synapse', `GET /room_keys/keys/{roomId} answered HTTP ${response.status}: ${text.slice(0, 200)}`);
      const sessions = (JSON.parse(text) as { sessions?: Record<string, unknown> }).sessions ?? {};
      const ids = Object.keys(sessions);
      let sum = 0;
      for (const id of ids) {
        const bytes = Buffer.byteLength(JSON.stringify(sessions[id]));
        sample.entryBytes.push(bytes);
        sum += bytes + Buffer.byteLength(JSON.stringify(id)) + 2; // "id": and a comma
        sample.refs.push({ roomId, sessionId: id });
      }
      // `{"sessions":{…}}` around them; anything else means the answer was not compact JSON.
      const wrapper = Buffer.byteLength(text) - sum + 1;
      if (ids.length > 0 && (wrapper < 0 || wrapper > 64)) {
        throw new ScaleServeError('synapse', `a room's answer is ${Buffer.byteLength(text)} bytes but its ${ids.length} entries' compact JSON adds up to ${sum}: not compact JSON as assumed`);
      }
      answerBytes += Buffer.byteLength(text);
      sample.entries += ids.length;
    }
    sample.answerBytesPerEntry = answerBytes / Math.max(1, sample.entries);
    return sample;
  } finally {
    await api(synapse.baseUrl, accessToken, 'POST', '/logout', {});
  }
}

/** A copy in random order (Fisher–Yates). */
function shuffled<T>(items: readonly T[]): T[] {
  const pool = [...items];
  for (let i = pool.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [pool[i], pool[j]] = [pool[j]!, pool[i]!];
  }
  return pool;
}

/** `count` refs drawn at random without repeats (all of them when there are fewer). */
export function drawRefs(refs: readonly SessionRef[], count: number): SessionRef[] {
  return shuffled(refs).slice(0, count);
}

// ---------------------------------------------------------------------------------------------
// Serve: one session per request, from the allowed page

/**
 * Discovery as a page does it (test/harness/page-site.ts `findsProvider`), given as text: under tsx
 * (`npm run bench:scale`) named functions in page code are wrapped in a `__name` helper the page does
 * not have. The provider found is left in `window.__vault`, for page-site.ts's `callVault`.
 */
export function findsVault(page: Page, timeoutMs: number): Promise<boolean> {
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

/**
 * After every CONTROL_EVERY-th key request, a `vault_status` is timed too: the same way through the
 * page script, the bridge and the worker (and the vault's small `kv` reads) without the key's lookup
 * and decryption, so a slow key request can be told from a slow trip.
 */
export const CONTROL_EVERY = 3;

/**
 * Time between the starts of two key requests: one costs 1 + ⌈1/50⌉ = 2 of the site's tokens, a
 * `vault_status` 1 (PAGE_RATE_PER_SECOND tokens a second); 20% slower than the budget allows for
 * ever, so no request is refused.
 */
export const SERVE_GAP_MS = Math.ceil(((1 + Math.ceil(1 / SESSIONS_PER_TOKEN) + 1 / CONTROL_EVERY) * 1000 / PAGE_RATE_PER_SECOND) * 1.2);

export interface ServeRun {
  warmup: number;
  /** Each counted request's time, in order. */
  times: number[];
  /** The `vault_status` controls' times (after the warm-up). */
  controls: number[];
  /** When each counted request started, ms after the first request (warm-up included). */
  startedAt: number[];
  totalMs: number;
}

/**
 * On a page that found the vault (`findsProvider` put it in `window.__vault`): each ref in its own
 * `vault_getRoomKeys`, one after the other, `gapMs` between starts; the first `warmup` are not
 * counted. Any error or an answer without the key fails the run.
 */
export async function serveOneByOne(page: Page, refs: readonly SessionRef[], warmup: number, gapMs: number): Promise<ServeRun> {
  const started = performance.now();
  const run = await page.evaluate(async ({ refs: list, gap, every, skip }) => {
    type Answer = { keys?: Array<{ roomId?: string; sessionId?: string; found?: boolean; key?: { room_id?: string; session_id?: string; session_key?: unknown } }> };
    const provider = (window as unknown as { __vault?: { request(a: unknown): Promise<unknown> } }).__vault;
    if (!provider) return { error: 'no provider found on the page' };
    const times: number[] = [];
    const starts: number[] = [];
    const controls: number[] = [];
    for (const [i, ref] of list.entries()) {
      const t = performance.now();
      starts.push(t);
      let answer: Answer;
      try {
        answer = await provider.request({ method: 'vault_getRoomKeys', params: { sessions: [ref] } }) as Answer;
      } catch (e) {
        const err = e as { code?: number; message?: string };
        return { error: `request ${i + 1} of ${list.length} failed: ${err.code ?? '?'} ${err.message ?? String(e)}` };
      }
      const ms = performance.now() - t;
      const got = answer.keys?.[0];
      if (answer.keys?.length !== 1 || !got || got.found !== true || got.roomId !== ref.roomId || got.sessionId !== ref.sessionId
        || got.key?.room_id !== ref.roomId || got.key.session_id !== ref.sessionId || typeof got.key.session_key !== 'string' || got.key.session_key.length < 100) {
        // Says what came back, never the key itself.
        const shape = got ? `found ${String(got.found)}, ids ${got.roomId === ref.roomId && got.sessionId === ref.sessionId ? 'match' : 'differ'}, key ${got.key ? 'present' : 'absent'}` : `${answer.keys?.length ?? 'no'} answers`;
        return { error: `request ${i + 1} of ${list.length}: the answer does not hold the key (${shape})` };
      }
      times.push(ms);
      if (i % every === every - 1) {
        const c = performance.now();
        let status: { state?: string };
        try {
          status = await provider.request({ method: 'vault_status' }) as { state?: string };
        } catch (e) {
          const err = e as { code?: number; message?: string };
          return { error: `vault_status after request ${i + 1} failed: ${err.code ?? '?'} ${err.message ?? String(e)}` };
        }
        if (status.state !== 'unlocked') return { error: `vault_status after request ${i + 1} says ${String(status.state)}` };
        if (i >= skip) controls.push(performance.now() - c);
      }
      const wait = gap - (performance.now() - t);
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    return { times, starts, controls };
  }, { refs: refs as SessionRef[], gap: gapMs, every: CONTROL_EVERY, skip: warmup });
  if ('error' in run) throw new ScaleServeError('serve', `vault_getRoomKeys: ${run.error}`);
  const first = run.starts[0] ?? 0;
  return { warmup, times: run.times.slice(warmup), controls: run.controls, startedAt: run.starts.slice(warmup).map((t) => t - first), totalMs: performance.now() - started };
}

// ---------------------------------------------------------------------------------------------
// The popup and status.get

const RENDERED = 'main[data-screen]:not([data-screen=loading])';

export interface PopupRun {
  /** From the navigation's start to the status rendered. */
  inPageMs: number[];
  /** From the navigation's start to the app's first render (the `loading` screen, before any answer). */
  mountedMs: number[];
  /** From the navigation's start to the first byte of popup.html (a renderer for it, the file read). */
  responseMs: number[];
  /** From Node's newPage to Playwright seeing the status rendered. */
  fromTabMs: number[];
  screens: string[];
}

/**
 * Opens popup.html in a new tab `opens` times, each until the status is rendered: the in-page time is
 * `performance.now()` (from the navigation's start) when a MutationObserver, set before the page's
 * own script runs, first sees `main[data-screen]` past `loading`; the tab time is Node's, from
 * `newPage` to Playwright seeing it. An `error` screen fails the run.
 */
export async function openPopups(context: BrowserContext, extensionId: string, opens: number): Promise<PopupRun> {
  const run: PopupRun = { inPageMs: [], mountedMs: [], responseMs: [], fromTabMs: [], screens: [] };
  for (let i = 0; i < opens; i++) {
    const t = performance.now();
    const page = await context.newPage();
    try {
      await page.addInitScript((selector) => {
        const w = window as unknown as { __renderedAt?: number; __mountedAt?: number };
        const observer = new MutationObserver(() => {
          if (w.__mountedAt === undefined && document.querySelector('main[data-screen]')) w.__mountedAt = performance.now();
          if (w.__renderedAt === undefined && document.querySelector(selector)) {
            w.__renderedAt = performance.now();
            observer.disconnect();
          }
        });
        observer.observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-screen'] });
      }, RENDERED);
      await page.goto(`chrome-extension://${extensionId}/popup.html`);
      await page.locator(RENDERED).waitFor({ timeout: 30_000 });
      run.fromTabMs.push(performance.now() - t);
      const seen = await page.evaluate(() => ({
        at: (window as unknown as { __renderedAt?: number }).__renderedAt ?? null,
        mounted: (window as unknown as { __mountedAt?: number }).__mountedAt ?? null,
        response: (performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming | undefined)?.responseStart ?? null,
        screen: document.querySelector('main[data-screen]')?.getAttribute('data-screen') ?? '',
      }));
      if (seen.at === null) throw new ScaleServeError('popup', 'the popup rendered its status but the observer set before its script saw nothing');
      if (seen.screen === 'error' || seen.screen === 'signed-out') throw new ScaleServeError('popup', `the popup rendered the ${seen.screen} screen`);
      run.inPageMs.push(seen.at);
      run.mountedMs.push(seen.mounted ?? seen.at);
      run.responseMs.push(seen.response ?? 0);
      run.screens.push(seen.screen);
    } finally {
      await page.close();
    }
    await sleep(200);
  }
  return run;
}

/** `status.get` round trips from an extension page (timed in it), one after the other. */
export async function statusRoundTrips(page: Page, calls: number, refresh: boolean): Promise<number[]> {
  const run = await page.evaluate(async ({ n, fromServer }) => {
    const times: number[] = [];
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      const answer = await chrome.runtime.sendMessage({ type: 'status.get', refresh: fromServer }) as { ok?: boolean; error?: { kind?: string; message?: string } } | undefined;
      times.push(performance.now() - t);
      if (!answer?.ok) return { error: answer?.error ? `${answer.error.kind ?? '?'}: ${answer.error.message ?? ''}` : 'no answer' };
    }
    return { times };
  }, { n: calls, fromServer: refresh });
  if ('error' in run) throw new ScaleServeError('popup', `status.get failed: ${run.error}`);
  return run.times;
}

// ---------------------------------------------------------------------------------------------
// Disk

export interface DiskReading {
  /** `navigator.storage.estimate()` from an extension page. */
  usage: number;
  indexedDB: number | null;
  /** Bytes of the files under the profile's IndexedDB directories (apparent size, and allocated). */
  dirBytes: number;
  dirAllocated: number;
  dirs: string[];
}

/** Every directory named `IndexedDB` under the profile (Default/IndexedDB, storage buckets' too). */
function indexedDbDirs(root: string): string[] {
  const found: string[] = [];
  const walk = (dir: string, depth: number): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      const path = join(dir, entry.name);
      if (entry.name === 'IndexedDB') found.push(path);
      else if (depth < 4) walk(path, depth + 1);
    }
  };
  walk(root, 0);
  return found;
}

function treeBytes(path: string): { bytes: number; allocated: number; files: number } {
  let bytes = 0;
  let allocated = 0;
  let files = 0;
  const walk = (p: string): void => {
    let st;
    try {
      st = lstatSync(p);
    } catch (e) {
      // LevelDB deletes files as it compacts: one gone while we walk is simply not counted.
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
    if (st.isDirectory()) {
      let names: string[];
      try {
        names = readdirSync(p);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw e;
      }
      for (const name of names) walk(join(p, name));
    } else if (st.isFile()) {
      bytes += st.size;
      allocated += st.blocks * 512;
      files++;
    }
  };
  walk(path);
  return { bytes, allocated, files };
}

export async function readDisk(page: Page, userDataDir: string): Promise<DiskReading> {
  const estimate = await page.evaluate(async () => {
    const e = await navigator.storage.estimate() as StorageEstimate & { usageDetails?: { indexedDB?: number } };
    return { usage: e.usage ?? null, indexedDB: e.usageDetails?.indexedDB ?? null };
  });
  if (estimate.usage === null) throw new ScaleServeError('disk', 'navigator.storage.estimate() gave no usage');
  const dirs = indexedDbDirs(userDataDir);
  let dirBytes = 0;
  let dirAllocated = 0;
  for (const dir of dirs) {
    const t = treeBytes(dir);
    dirBytes += t.bytes;
    dirAllocated += t.allocated;
  }
  return { usage: estimate.usage, indexedDB: estimate.indexedDB, dirBytes, dirAllocated, dirs: dirs.map((d) => relative(userDataDir, d)) };
}

export interface RowSample {
  rows: number;
  /** Mean `JSON.stringify` bytes of a `sessions` row, of its `sessionData`, and characters of its key ([roomId, sessionId]). */
  /** A row's own bytes: strings by their length, bytes by theirs, numbers as 8. */
  rowBytes: number;
  /** Of which the session's envelope (`d`: ephemeral, MAC and ciphertext). */
  envelopeBytes: number;
  keyChars: number;
  fields: string[];
}

/**
 * The first `count` rows of the vault's `sessions` store, read from an extension page (the same
 * origin as the worker; a read-only transaction beside it): how large a row is as JSON, to set the
 * disk's bytes per key against (the layout is src/platform/vault-rows.ts's). Only sizes and field names
 * leave the page.
 */
export async function sampleVaultRows(page: Page, count: number): Promise<RowSample> {
  const sample = await page.evaluate(async ({ name, n }) => {
    const db = await new Promise<IDBDatabase>((resolve, reject) => {
      const open = indexedDB.open(name);
      open.onsuccess = () => resolve(open.result);
      open.onerror = () => reject(open.error);
      open.onupgradeneeded = () => { open.transaction?.abort(); reject(new Error(`no database ${name}`)); };
    });
    try {
      const tx = db.transaction(['sessions', 'packed'], 'readonly');
      const [rows, pages] = await Promise.all(['sessions', 'packed'].map((store) => new Promise<Array<Record<string, unknown>>>((resolve, reject) => {
        // Pages hold up to 50 sessions each (src/platform/vault-pages.ts).
        const request = tx.objectStore(store).getAll(null, store === 'packed' ? Math.ceil(n / 50) : n);
        request.onsuccess = () => resolve(request.result as Array<Record<string, unknown>>);
        request.onerror = () => reject(request.error);
      })));
      // (No named helper: tsx would wrap it in a __name() the page does not have.)
      let sessions = 0;
      let rowBytes = 0;
      let envelopeBytes = 0;
      let keyChars = 0;
      for (const record of [...rows!, ...pages!]) {
        const count = typeof record.c === 'number' ? record.c : 1;
        sessions += count;
        for (const [member, value] of Object.entries(record)) {
          let bytes = 0;
          if (typeof value === 'string') bytes = value.length;
          else if (typeof value === 'number') bytes = 8;
          else if (value instanceof Uint8Array) bytes = value.byteLength;
          else if (Array.isArray(value)) for (const v of value) bytes += Array.isArray(v) ? v.join('').length : typeof v === 'number' ? 8 : String(v).length;
          else if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) bytes += k.length + String(v).length;
          rowBytes += member.length + bytes;
          if (member === 'd') envelopeBytes += bytes;
        }
        keyChars += count * (String(record.roomId).length + 44);
      }
      const d = Math.max(1, sessions);
      return { rows: sessions, rowBytes: rowBytes / d, envelopeBytes: envelopeBytes / d, keyChars: keyChars / d, fields: Object.keys(pages![0] ?? rows![0] ?? {}) };
    } finally {
      db.close();
    }
  }, { name: VAULT_DB_NAME, n: count });
  if (sample.rows === 0) throw new ScaleServeError('disk', 'the vault holds no session');
  return sample;
}

export interface DirSample { t: number; bytes: number; files: number }

/**
 * The profile's IndexedDB directories every `everyMs` (size and file count), to see LevelDB's
 * compactions (files replaced, the size falling) beside a measurement; `t` from this call.
 */
export function watchIndexedDb(userDataDir: string, everyMs: number): { stop(): DirSample[] } {
  const dirs = indexedDbDirs(userDataDir);
  const started = performance.now();
  const samples: DirSample[] = [];
  const read = (): void => {
    let bytes = 0;
    let files = 0;
    for (const dir of dirs) {
      const tree = treeBytes(dir);
      bytes += tree.bytes;
      files += tree.files;
    }
    samples.push({ t: performance.now() - started, bytes, files });
  };
  read();
  const timer = setInterval(read, everyMs);
  return { stop() { clearInterval(timer); read(); return samples; } };
}
