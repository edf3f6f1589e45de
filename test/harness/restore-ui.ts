/**
 * What a person does on the recovery screens, as Playwright steps: type into the one "Recovery key"
 * field and press Unlock, press Restore and watch it finish, read the failure list; plus what a test
 * needs around it: the vault's keys decrypted through `vault.exportBatch`, a screenshot with an axe
 * check, and the extension's storage areas read one by one (to tell storage.session apart).
 */
import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import AxeBuilder from '@axe-core/playwright';
import type { Locator, Page } from 'playwright-core';
import { expect } from 'vitest';
import type { ExportBatch, RestoreSummary } from '../../src/shared/messages.ts';
import { repoRoot } from './browser.ts';
import { workerStatus } from './extension-ui.ts';
import type { Haystack } from './secret-scan.ts';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export const recoveryField = (page: Page): Locator => page.getByLabel('Recovery key', { exact: true });
export const unlockButton = (page: Page): Locator => page.getByTestId('join').getByRole('button', { name: 'Unlock', exact: true });

/** The error shown in the unlock form: its kind (data-kind) and text, or null when there is none. */
export async function unlockAlert(page: Page): Promise<{ kind: string; text: string } | null> {
  const alert = page.getByTestId('join').getByRole('alert');
  if (await alert.count() === 0) return null;
  const kind = await alert.locator('[data-kind]').getAttribute('data-kind');
  return { kind: kind ?? '', text: (await alert.textContent()) ?? '' };
}

/**
 * Types `input` and presses Unlock, as a person does; resolves with the error the form shows, or
 * null once the vault is unlocked. `waitOutRateLimit`: when the answer is "too many attempts", wait
 * the time it names and press Unlock again (as a patient person would).
 */
export async function attemptUnlock(page: Page, input: string, options: { waitOutRateLimit?: boolean } = {}): Promise<{ kind: string; text: string } | null> {
  await recoveryField(page).fill(input);
  for (;;) {
    await unlockButton(page).click();
    // Clicking clears the previous error at once (the reducer's `started`), so what shows next is this attempt's.
    let outcome: { kind: string; text: string } | null | undefined;
    await expect.poll(async () => {
      if (await page.getByTestId('unlocked').count() > 0) { outcome = null; return true; }
      const alert = await unlockAlert(page);
      if (alert && await unlockButton(page).isEnabled()) { outcome = alert; return true; }
      return false;
    }, { timeout: 60_000, interval: 100 }).toBe(true);
    if (outcome && outcome.kind === 'rate-limited' && options.waitOutRateLimit) {
      const seconds = Number(/Wait (\d+) s/.exec(outcome.text)?.[1] ?? '1');
      await sleep(seconds * 1000 + 300);
      continue;
    }
    return outcome ?? null;
  }
}

/** Unlocks with `input` (waiting out a rate limit) and expects it to work, by the method named. */
export async function unlockViaPopup(page: Page, input: string, via: string): Promise<void> {
  const failure = await attemptUnlock(page, input, { waitOutRateLimit: true });
  expect(failure, 'unlock failed').toBeNull();
  expect(await page.getByTestId('unlocked').getAttribute('data-via')).toBe(via);
  expect(await recoveryField(page).count(), 'the field is gone once unlocked').toBe(0);
}

/** Presses Restore and waits until the popup shows it finished; returns the worker's summary. */
export async function restoreViaPopup(page: Page, timeoutMs = 120_000): Promise<RestoreSummary> {
  await page.getByRole('button', { name: 'Restore', exact: true }).click();
  await expect.poll(() => page.getByTestId('restore').getAttribute('data-phase'), { timeout: timeoutMs, interval: 250 }).toBe('done');
  const status = await workerStatus(page);
  return status.restore!;
}

/** Every session the vault decrypts with the unlocked key, in key-export form, through `vault.exportBatch`. */
export async function exportAll(page: Page): Promise<{ sessions: Array<Record<string, unknown>>; skipped: number; total: number }> {
  return page.evaluate(async () => {
    const sessions: Array<Record<string, unknown>> = [];
    let skipped = 0;
    let total = 0;
    let after: [string, string] | null = null;
    for (let i = 0; i < 1000; i++) {
      const result = await chrome.runtime.sendMessage({ type: 'vault.exportBatch', after, limit: 2000 });
      if (!result?.ok) throw new Error(`vault.exportBatch failed: ${JSON.stringify(result)}`);
      const batch = result.value as ExportBatch;
      sessions.push(...(batch.sessions as Array<Record<string, unknown>>));
      skipped += batch.skipped;
      total = batch.total;
      if (batch.next === null) return { sessions, skipped, total };
      after = batch.next;
    }
    throw new Error('vault.exportBatch never ended');
  });
}

/** A screenshot under test-results/, and axe on the page as it is: no violations allowed. */
export async function screenshotAndAxe(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(repoRoot, 'test-results', `${name}.png`), fullPage: true });
  const results = await new AxeBuilder({ page }).analyze();
  const summary = results.violations.map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  expect(summary, `axe violations on ${name}`).toEqual([]);
  expect(results.passes.length, `axe ran on ${name}`).toBeGreaterThan(0);
}

/**
 * The extension's IndexedDB, storage.local and storage.session as separate haystacks (text and
 * binary values each), so a scan can say "nothing outside storage.session".
 */
export async function dumpStorageAreas(page: Page): Promise<Record<'indexedDB' | 'local' | 'session', Haystack[]>> {
  const dump = await page.evaluate(async () => {
    const toB64 = (u: Uint8Array) => { let s = ''; for (const b of u) s += String.fromCharCode(b); return btoa(s); };
    const collect = () => {
      const strings: string[] = [];
      const bytes: string[] = [];
      const walk = (v: unknown): void => {
        if (typeof v === 'string') strings.push(v);
        else if (v === null || typeof v !== 'object') strings.push(String(v));
        else if (v instanceof ArrayBuffer) bytes.push(toB64(new Uint8Array(v)));
        else if (ArrayBuffer.isView(v)) bytes.push(toB64(new Uint8Array(v.buffer, v.byteOffset, v.byteLength)));
        else if (v instanceof CryptoKey) strings.push(`CryptoKey(${v.algorithm.name}, extractable=${v.extractable})`);
        else if (Array.isArray(v)) v.forEach(walk);
        else for (const [k, x] of Object.entries(v)) { strings.push(k); walk(x); }
      };
      return { strings, bytes, walk };
    };
    const read = <T>(r: IDBRequest<T>) => new Promise<T>((ok, fail) => { r.onsuccess = () => ok(r.result); r.onerror = () => fail(r.error); });
    const idb = collect();
    for (const info of await indexedDB.databases()) {
      if (!info.name) continue;
      const db = await read(indexedDB.open(info.name));
      for (const store of Array.from(db.objectStoreNames)) {
        const tx = db.transaction(store, 'readonly');
        idb.walk(await read(tx.objectStore(store).getAllKeys()));
        idb.walk(await read(tx.objectStore(store).getAll()));
      }
      db.close();
    }
    const local = collect();
    local.walk(await chrome.storage.local.get(null));
    const session = collect();
    session.walk(await chrome.storage.session.get(null));
    const out = (c: { strings: string[]; bytes: string[] }) => ({ strings: c.strings, bytes: c.bytes });
    return { indexedDB: out(idb), local: out(local), session: out(session) };
  });
  const haystacks = (name: string, d: { strings: string[]; bytes: string[] }): Haystack[] => [
    { where: `${name}: values`, data: Buffer.from(d.strings.join('\n'), 'utf8') },
    { where: `${name}: binary values`, data: Buffer.concat(d.bytes.map((b) => Buffer.from(b, 'base64'))) },
  ];
  return {
    indexedDB: haystacks('IndexedDB', dump.indexedDB),
    local: haystacks('storage.local', dump.local),
    session: haystacks('storage.session', dump.session),
  };
}

/**
 * Every file of a Chromium profile (the whole user data dir, not only the extension's storage), for a
 * scan that also covers caches, session restore, preferences and logs. Files over `maxBytes` are skipped.
 */
export function wholeProfileFiles(userDataDir: string, maxBytes = 64 * 1024 * 1024): Haystack[] {
  const out: Haystack[] = [];
  const visit = (path: string) => {
    let st;
    try { st = lstatSync(path); } catch { return; }
    if (st.isSymbolicLink()) return; // SingletonLock and friends point outside the profile
    if (st.isDirectory()) { for (const e of readdirSync(path)) visit(join(path, e)); return; }
    if (!st.isFile() || st.size > maxBytes) return;
    try { out.push({ where: path.slice(userDataDir.length + 1), data: readFileSync(path) }); } catch { /* gone meanwhile */ }
  };
  visit(userDataDir);
  return out;
}

export interface ThrottleProxy {
  baseUrl: string;
  /** Bytes sent to the browser in throttled responses so far. */
  throttledBytes(): number;
  /** Changes the rate from the next piece on. */
  setBytesPerSecond(rate: number): void;
  stop(): Promise<void>;
}

/**
 * A pass-through proxy in front of Synapse that sends the bodies of matching responses at
 * `bytesPerSecond` (a slow link), so a download of a large backup takes seconds and a worker killed
 * during it is killed mid-stream, between chunks, rather than before or after. Everything else passes
 * as it is; `/.well-known/matrix/client` is answered 404 so a client that discovers it stays on it.
 */
export async function startThrottleProxy(upstreamBaseUrl: string, options: { bytesPerSecond: number; match: RegExp }): Promise<ThrottleProxy> {
  const upstream = new URL(upstreamBaseUrl);
  const sockets = new Set<Socket>();
  let throttled = 0;
  let rate = options.bytesPerSecond;
  const piece = 16 * 1024;
  const server = createServer((req, res) => {
    if (req.url?.startsWith('/.well-known/matrix/client')) {
      res.writeHead(404, { 'content-type': 'application/json', 'access-control-allow-origin': '*' });
      res.end(JSON.stringify({ errcode: 'M_NOT_FOUND', error: 'No .well-known here (throttle proxy)' }));
      return;
    }
    const headers = { ...req.headers, host: upstream.host };
    delete headers.connection;
    const up = httpRequest({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers, agent: false }, (upRes) => {
      const out: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(upRes.headers)) if (v !== undefined && k !== 'connection' && k !== 'transfer-encoding' && k !== 'content-length') out[k] = v;
      res.writeHead(upRes.statusCode ?? 502, out);
      if (!options.match.test(req.url ?? '')) { upRes.pipe(res); return; }
      // Read the upstream body as it comes, send it on in pieces at the set rate.
      upRes.pause();
      void (async () => {
        try {
          for await (const chunk of upRes as AsyncIterable<Buffer>) {
            for (let i = 0; i < chunk.length; i += piece) {
              if (res.destroyed) return;
              const part = chunk.subarray(i, i + piece);
              res.write(part);
              throttled += part.length;
              await sleep((part.length / rate) * 1000);
            }
          }
          res.end();
        } catch {
          res.destroy();
        }
      })();
    });
    up.on('error', () => res.destroy());
    res.on('close', () => up.destroy());
    req.pipe(up);
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => ok());
  });
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    throttledBytes: () => throttled,
    setBytesPerSecond: (next) => { rate = next; },
    async stop() {
      const closed = new Promise<void>((r) => server.close(() => r()));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}
