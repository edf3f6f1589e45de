/**
 * Drives the built extension in Debian's Chromium through playwright-core. Playwright cannot
 * download its own browsers here, so the binary comes from apt (`chromium`).
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium, type BrowserContext, type Page, type Worker } from 'playwright-core';

export const repoRoot = resolve(import.meta.dirname, '../..');
export const chromeDist = join(repoRoot, 'dist/chrome');

/** The real binary, skipping Debian's wrapper script (which adds flags of its own). */
export function chromiumPath(): string {
  const candidates = [process.env.CHROMIUM_PATH, '/usr/lib/chromium/chromium', '/usr/bin/chromium'];
  const found = candidates.find((p): p is string => !!p && existsSync(p));
  if (!found) throw new Error('Chromium not found: install it with `apt-get install chromium` (or set CHROMIUM_PATH)');
  return found;
}

export interface ExtensionBrowser {
  context: BrowserContext;
  extensionId: string;
  worker: Worker;
  userDataDir: string;
  openPage(path: string): Promise<Page>;
  /** Stops every service worker (CDP), as the browser does when a worker idles out. */
  stopWorker(): Promise<void>;
  close(): Promise<void>;
}

export async function launchExtension(options: { headless?: boolean; extensionPath?: string; userDataDir?: string } = {}): Promise<ExtensionBrowser> {
  const extensionPath = options.extensionPath ?? chromeDist;
  if (!existsSync(join(extensionPath, 'manifest.json'))) throw new Error(`no built extension at ${extensionPath}: run \`npm run build\``);
  const userDataDir = options.userDataDir ?? mkdtempSync(join(tmpdir(), 'mkv-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: chromiumPath(),
    headless: options.headless ?? true,
    args: [
      `--disable-extensions-except=${extensionPath}`,
      `--load-extension=${extensionPath}`,
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  const worker = context.serviceWorkers()[0] ?? await context.waitForEvent('serviceworker', { timeout: 30_000 });
  const extensionId = new URL(worker.url()).host;
  let cdpPage: Page | undefined;
  async function openPage(path: string): Promise<Page> {
    const page = await context.newPage();
    await page.goto(`chrome-extension://${extensionId}/${path}`);
    return page;
  }
  return {
    context,
    extensionId,
    worker,
    userDataDir,
    openPage,
    async stopWorker() {
      cdpPage ??= await openPage('popup.html');
      const cdp = await context.newCDPSession(cdpPage);
      await cdp.send('ServiceWorker.enable');
      await cdp.send('ServiceWorker.stopAllWorkers');
      await cdp.detach();
    },
    async close() {
      await context.close();
      if (!options.userDataDir) rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}
