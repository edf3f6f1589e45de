/** The vault contract (test/contract/vault-contract.ts) on Chromium's real IndexedDB, in an extension page. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchExtension, repoRoot, type ExtensionBrowser } from '../harness/browser.ts';
import { bundleForBrowser } from '../harness/bundle.ts';

describe('vault contract in Chromium', () => {
  let ext: ExtensionBrowser;
  let code: string;
  beforeAll(async () => {
    code = await bundleForBrowser(join(repoRoot, 'test/contract/vault-browser-entry.ts'), '__vaultContract');
    ext = await launchExtension();
  });
  afterAll(async () => { await ext?.close(); });

  it('holds on real IndexedDB', async () => {
    const page = await ext.openPage('popup.html');
    // Evaluated through the DevTools protocol, which the extension page's CSP does not govern.
    await page.evaluate(code);
    const caseCount = await page.evaluate(() => (globalThis as unknown as { __vaultContract: { caseCount: number } }).__vaultContract.caseCount);
    expect(caseCount).toBeGreaterThan(5);
    const failures = await page.evaluate(() => (globalThis as unknown as { __vaultContract: { run(): Promise<unknown[]> } }).__vaultContract.run());
    expect(failures).toEqual([]);
    await page.close();
  });

  it('upgrades a vault left by schema 2 in place: counts, keys, uploads and the disk layout', async () => {
    const fixture = JSON.parse(readFileSync(join(repoRoot, 'test/fixtures/vault-v2.json'), 'utf8')) as {
      expect: { sessions: number; pendingForCurrent: number; forEarlier: number };
    };
    const page = await ext.openPage('popup.html');
    await page.evaluate(code);
    const result = await page.evaluate((f) => (globalThis as unknown as { __vaultContract: { upgrade(f: unknown, name: string): Promise<unknown> } })
      .__vaultContract.upgrade(f, `upgrade-v2-${Date.now()}`), fixture);
    expect(result).toEqual({
      sessions: fixture.expect.sessions, pending: fixture.expect.pendingForCurrent, forEarlier: fixture.expect.forEarlier,
      decrypted: fixture.expect.sessions, marked: fixture.expect.pendingForCurrent, compact: fixture.expect.sessions,
    });
    await page.close();
  });
});
