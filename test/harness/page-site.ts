/**
 * A web site on 127.0.0.1 for the page-API tests: one HTML page (and an iframe page) that a test
 * drives with Playwright, and helpers that run discovery and requests in the page's own world, as a
 * web client's code would.
 */
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import type { Frame, Page } from 'playwright-core';
import type { ExtensionBrowser } from './browser.ts';

const PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>A web client</title></head>
<body><h1>A web client</h1><iframe id="inner" src="/frame.html"></iframe></body></html>`;
const FRAME = '<!doctype html><html><body>inner frame</body></html>';

export interface Site {
  origin: string;
  close(): Promise<void>;
}

export async function startSite(): Promise<Site> {
  const server: Server = createServer((req, res) => {
    const body = req.url?.startsWith('/frame.html') ? FRAME : PAGE;
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

/** Discovery as a page does it: listen for announcements, ask, wait. True when a provider came. */
export async function findsProvider(target: Page | Frame, timeoutMs = 1500): Promise<boolean> {
  return target.evaluate((ms) => new Promise<boolean>((resolve) => {
    const w = window as unknown as { __vault?: unknown };
    const done = (found: boolean) => { window.removeEventListener('matrix-key-vault:announce', on); resolve(found); };
    const on = (e: Event) => {
      const detail = (e as CustomEvent).detail as { provider?: unknown; info?: { name?: string } } | null;
      if (detail?.info?.name === 'Matrix Key Vault' && detail.provider) {
        w.__vault = detail.provider;
        done(true);
      }
    };
    window.addEventListener('matrix-key-vault:announce', on);
    window.dispatchEvent(new Event('matrix-key-vault:request'));
    setTimeout(() => done(false), ms);
  }), timeoutMs);
}

/** Calls the provider found by `findsProvider`; answers `{ result }` or `{ error: { code, message } }`. */
export async function callVault(page: Page, method: string, params?: unknown): Promise<{ result?: any; error?: { code: number; message: string } }> {
  return page.evaluate(async ([m, p]) => {
    const provider = (window as unknown as { __vault?: { request(a: unknown): Promise<unknown> } }).__vault;
    if (!provider) return { error: { code: -1, message: 'no provider found' } };
    try {
      return { result: await provider.request(p === undefined ? { method: m } : { method: m, params: p }) };
    } catch (e) {
      const err = e as { code?: number; message?: string };
      return { error: { code: err.code ?? -2, message: err.message ?? String(e) } };
    }
  }, [method, params] as const);
}

/** Records the provider's statusChanged events in the page, for `statusEvents`. */
export async function recordStatus(page: Page): Promise<void> {
  await page.evaluate(() => {
    const w = window as unknown as { __vault?: { on(e: string, l: (s: unknown) => void): void }; __status?: unknown[] };
    w.__status = [];
    w.__vault?.on('statusChanged', (s) => w.__status!.push(s));
  });
}

export async function statusEvents(page: Page): Promise<Array<{ state: string; scopes: string[] }>> {
  return page.evaluate(() => ((window as unknown as { __status?: unknown[] }).__status ?? []) as Array<{ state: string; scopes: string[] }>);
}

/**
 * Allows a site from the popup as a person does. The browser's permission prompt is a native dialog
 * no headless test can answer: `permissions.request` is answered by the test (the extension under
 * test has the loopback permission in its manifest, see `grantedCopy`).
 */
export async function allowSiteViaPopup(ext: ExtensionBrowser, origin: string, scopes: Array<'read' | 'backup'> = ['read', 'backup'], answer = true): Promise<Page> {
  const popup = await ext.openPage(`popup.html?site=${encodeURIComponent(origin)}`);
  await popup.evaluate((a) => { (chrome.permissions as { request: unknown }).request = async () => a; }, answer);
  const form = popup.getByTestId('allow-site');
  await form.waitFor({ timeout: 30_000 });
  for (const scope of ['read', 'backup'] as const) {
    const box = form.locator(`input[name=scope-${scope}]`);
    if ((await box.isChecked()) !== scopes.includes(scope)) await box.click();
  }
  await form.getByRole('button', { name: 'Allow this site to use your keys' }).click();
  if (answer) await popup.locator(`[data-testid=site][data-origin="${origin}"]`).waitFor({ timeout: 30_000 });
  else await popup.getByTestId('site-declined').waitFor({ timeout: 30_000 });
  return popup;
}

/**
 * A copy of the built extension whose manifest grants loopback outright, standing in for the user's
 * "Allow" in the browser's prompt (which headless Chromium cannot show). Only the worker's
 * `permissions.contains` sees the difference; grants, scripts and checks are the real ones.
 */
export function grantedCopy(source: string, dir: string): string {
  cpSync(source, dir, { recursive: true });
  const manifestPath = join(dir, 'manifest.json');
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as Record<string, unknown>;
  manifest.host_permissions = ['http://127.0.0.1/*'];
  writeFileSync(manifestPath, JSON.stringify(manifest));
  return dir;
}
