/**
 * What a person does in the extension, as Playwright steps: sign in from the popup, create a backup
 * in its page, import a key file in its page. Tests build on these rather than on worker internals.
 */
import { expect } from 'vitest';
import type { Page } from 'playwright-core';
import type { ImportSummary, VaultStatus } from '../../src/shared/messages.ts';
import { join } from 'node:path';
import { repoRoot, type ExtensionBrowser } from './browser.ts';

export async function workerStatus(page: Page, refresh = false): Promise<VaultStatus> {
  const result = await page.evaluate((r) => chrome.runtime.sendMessage({ type: 'status.get', refresh: r }), refresh);
  if (!result?.ok) throw new Error(`status.get failed: ${JSON.stringify(result)}`);
  return result.value as VaultStatus;
}

export async function signInViaPopup(ext: ExtensionBrowser, homeserver: string, user: string, password: string): Promise<Page> {
  const popup = await ext.openPage('popup.html');
  const form = popup.getByTestId('sign-in');
  await form.locator('input[name=homeserver]').fill(homeserver);
  await form.locator('input[name=user]').fill(user);
  await form.locator('input[name=secret]').fill(password);
  await form.getByRole('button', { name: 'Sign in' }).click();
  await popup.getByTestId('user-id').waitFor({ timeout: 30_000 });
  return popup;
}

/** Creates a backup through its page, as a new user would; returns the recovery key it showed. */
export async function createBackupViaPage(ext: ExtensionBrowser, popup: Page): Promise<string> {
  const [page] = await Promise.all([ext.context.waitForEvent('page'), popup.getByTestId('open-create').click()]);
  await page.getByTestId('generate').click();
  const recoveryKey = (await page.getByTestId('recovery-key').textContent())!.trim();
  expect(recoveryKey).toMatch(/^Es[STU][1-9A-HJ-NP-Za-km-z]( ?[1-9A-HJ-NP-Za-km-z]){44}/);
  await expect.poll(() => page.getByTestId('create').isDisabled()).toBe(true); // not before "I have saved it"
  await page.screenshot({ path: join(repoRoot, 'test-results', 'create-backup.png'), fullPage: true });
  await page.getByTestId('saved').check();
  await page.getByTestId('create').click();
  await page.getByTestId('created').waitFor({ timeout: 30_000 });
  await page.close();
  return recoveryKey;
}

export async function importKeyFileViaPage(ext: ExtensionBrowser, filePath: string, passphrase: string): Promise<{ page: Page; summary: ImportSummary & { total: number } }> {
  const page = await ext.openPage('import.html');
  await page.getByTestId('file').setInputFiles(filePath);
  await page.getByTestId('passphrase').fill(passphrase);
  await page.getByTestId('import').click();
  const result = page.getByTestId('result');
  await result.waitFor({ timeout: 120_000 });
  const stored = Number(await result.getAttribute('data-stored'));
  const unchanged = Number(await result.getAttribute('data-unchanged'));
  const rejected = Number(await result.getAttribute('data-rejected'));
  return { page, summary: { stored, unchanged, rejected: new Array(rejected).fill(null), total: stored + unchanged + rejected } };
}
