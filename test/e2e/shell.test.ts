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
    expect(status).toMatchObject({ ok: true, value: { worker: { product: 'Matrix Key Vault', version: '0.1.0' } } });
    await page.close();
  });

  it('answers a request it does not know with a typed refusal', async () => {
    const page = await ext.openPage('popup.html');
    for (const message of [{ type: 'vault.dump' }, 'status.get', null, { type: 'status.get\u0000' }]) {
      const answer = await page.evaluate((m) => chrome.runtime.sendMessage(m), message);
      expect(answer, JSON.stringify(message)).toEqual({ ok: false, error: { kind: 'bad-request', message: 'Unknown request.' } });
    }
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
    expect(typeof before.value.worker.bootId).toBe('string');
    expect(after.value.worker.bootId).not.toBe(before.value.worker.bootId);
    await page.close();
  });
});
