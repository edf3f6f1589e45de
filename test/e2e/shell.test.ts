/** The built extension loads in Chromium, its worker answers, and the popup renders. */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchExtension, repoRoot, type ExtensionBrowser } from '../harness/browser.ts';

const artifacts = join(repoRoot, 'test-results');

describe('extension shell in Chromium', () => {
  let ext: ExtensionBrowser;
  beforeAll(async () => { ext = await launchExtension(); });
  afterAll(async () => { await ext?.close(); });

  it('loads the worker from the built manifest', () => {
    expect(ext.extensionId).toMatch(/^[a-p]{32}$/);
    expect(ext.worker.url()).toBe(`chrome-extension://${ext.extensionId}/background.js`);
  });

  it('answers a status request from an extension page', async () => {
    const page = await ext.openPage('popup.html');
    const status = await page.evaluate(() => chrome.runtime.sendMessage({ type: 'status.get' }));
    expect(status).toMatchObject({ ok: true, value: { product: 'Matrix Key Vault', version: '0.1.0' } });
    await page.close();
  });

  it('ignores messages it does not know', async () => {
    const page = await ext.openPage('popup.html');
    const answer = await page.evaluate(async () => {
      try { return await chrome.runtime.sendMessage({ type: 'vault.dump' }); } catch (e) { return `threw: ${String(e)}`; }
    });
    expect(answer === undefined || String(answer).startsWith('threw')).toBe(true);
    await page.close();
  });

  it('renders the popup with the worker status', async () => {
    const page = await ext.openPage('popup.html');
    await expect.poll(() => page.getByTestId('worker-status').textContent()).toContain('Background worker running');
    expect(await page.locator('h1').textContent()).toBe('Matrix Key Vault');
    mkdirSync(artifacts, { recursive: true });
    await page.screenshot({ path: join(artifacts, 'popup.png') });
    await page.close();
  });

  it('restarts a stopped worker on the next message, with a new boot id', async () => {
    const page = await ext.openPage('popup.html');
    const before = await page.evaluate(() => chrome.runtime.sendMessage({ type: 'status.get' }));
    await ext.stopWorker();
    const after = await page.evaluate(() => chrome.runtime.sendMessage({ type: 'status.get' }));
    expect(after.value.bootId).not.toBe(before.value.bootId);
    await page.close();
  });
});
