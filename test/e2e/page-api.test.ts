/**
 * The page API in real Chromium, through the real content scripts, against a real Synapse: a site
 * gets nothing until the user allows it in the popup; then it finds the vault, reads keys only when
 * unlocked, hands over keys that reach the server backup, hears lock and unlock, asks for more in
 * an approval window; another port, an iframe and a revoked site get nothing.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HomeserverClient } from '../../src/platform/homeserver.ts';
import { ErrorCode } from '../../src/shared/page-api.ts';
import { APPROVAL_COOLDOWN_MS } from '../../src/background/sites.ts';
import { chromeDist, launchExtension, type ExtensionBrowser } from '../harness/browser.ts';
import { createBackupViaPage, signInViaPopup, workerStatus } from '../harness/extension-ui.ts';
import { allowSiteViaPopup, callVault, findsProvider, grantedCopy, recordStatus, startSite, statusEvents, type Site } from '../harness/page-site.ts';
import { sharedSynapse } from '../harness/synapse-global.ts';
import { uniqueLocalpart, type SynapseUser } from '../harness/synapse.ts';
import { peerSessions } from '../harness/upload-rig.ts';

const password = 'a long and unguessable password';

describe('page API on allowed sites', () => {
  const synapse = sharedSynapse();
  let tmp: string;
  let ext: ExtensionBrowser;
  let site: Site;
  let otherPort: Site;
  let user: SynapseUser;
  let recoveryKey: string;
  let popup: Page;

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'mkv-page-api-'));
    ext = await launchExtension({ extensionPath: grantedCopy(chromeDist, join(tmp, 'ext')) });
    [site, otherPort] = await Promise.all([startSite(), startSite()]);
  });
  afterAll(async () => {
    await ext?.close();
    await site?.close();
    await otherPort?.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('signs in and sets up a backup (what the sites below hand keys to)', async () => {
    const localpart = uniqueLocalpart('page-api');
    user = await synapse.registerUser(localpart, password);
    popup = await signInViaPopup(ext, synapse.baseUrl, localpart, password);
    recoveryKey = await createBackupViaPage(ext, popup);
  });

  it('a site nobody allowed gets no script and no answer', async () => {
    const page = await ext.context.newPage();
    await page.goto(site.origin);
    // Everything the page can see: any message posted on its window while it asks for vaults.
    await page.evaluate(() => {
      const w = window as unknown as { __seen: unknown[] };
      w.__seen = [];
      window.addEventListener('message', (e) => w.__seen.push(e.data));
    });
    expect(await findsProvider(page)).toBe(false);
    expect(await page.evaluate(() => (window as unknown as { __seen: unknown[] }).__seen)).toEqual([]);
    await page.close();
  });

  it('after "Allow" in the popup, the open tab finds the vault at once; other ports and frames do not', async () => {
    const page = await ext.context.newPage();
    await page.goto(site.origin);
    const other = await ext.context.newPage();
    await other.goto(otherPort.origin);

    const allowPopup = await allowSiteViaPopup(ext, site.origin, ['read']);
    expect(await allowPopup.getByTestId('site-note').textContent()).toMatch(/open tab was connected/);
    await allowPopup.close();

    expect(await findsProvider(page)).toBe(true);
    const status = await callVault(page, 'vault_status');
    // Creating a backup pins its key but does not unlock the vault.
    expect(status.result).toEqual({ state: 'locked', scopes: ['read'], userId: user.userId, backup: true });

    expect(await findsProvider(other)).toBe(false);
    await other.reload();
    expect(await findsProvider(other)).toBe(false);
    // Not even a trace on its window: the page-world script goes only into a confirmed origin.
    expect(await other.evaluate(() => (window as unknown as Record<symbol, unknown>)[Symbol.for('matrix-key-vault.page')])).toBeUndefined();
    expect(await page.evaluate(() => (window as unknown as Record<symbol, unknown>)[Symbol.for('matrix-key-vault.page')])).toBe(true);
    const frame = page.frame({ url: /frame\.html/ })!;
    expect(await findsProvider(frame)).toBe(false);

    // A new load of the allowed site gets the registered scripts; its iframe still nothing.
    await page.reload();
    expect(await findsProvider(page)).toBe(true);
    expect(await findsProvider(page.frame({ url: /frame\.html/ })!)).toBe(false);
    await other.close();
    await page.close();
  });

  it('asks beyond its scopes: 4100 and nothing learnt; an approval window grants more', async () => {
    const page = await ext.context.newPage();
    await page.goto(site.origin);
    expect(await findsProvider(page)).toBe(true);
    const sessions = await peerSessions(5, 2);
    const refused = await callVault(page, 'vault_backupRoomKeys', { sessions });
    expect(refused.error?.code).toBe(ErrorCode.unauthorized);

    // Denied in the window: 4001.
    const [denyWindow] = await Promise.all([
      ext.context.waitForEvent('page', { predicate: (p) => p.url().includes('approve.html') }),
      page.evaluate(() => { (window as unknown as { __ask: Promise<unknown> }).__ask = (window as any).__vault.request({ method: 'vault_requestScopes', params: { scopes: ['read', 'backup'] } }).then((r: unknown) => ({ r }), (e: { code: number }) => ({ code: e.code })); }),
    ]);
    await denyWindow.getByTestId('approval-origin').waitFor();
    expect(await denyWindow.getByTestId('approval-origin').textContent()).toBe(site.origin);
    expect(await denyWindow.locator('[data-scope]').evaluateAll((els) => els.map((e) => e.getAttribute('data-scope')))).toEqual(['backup']);
    await answerApproval(denyWindow, 'Deny');
    expect(await page.evaluate(() => (window as unknown as { __ask: Promise<unknown> }).__ask)).toEqual({ code: ErrorCode.userRejected });
    // Right after a "no" the page may not bring the window back; a few seconds later it may.
    expect((await callVault(page, 'vault_requestScopes', { scopes: ['backup'] })).error?.code).toBe(ErrorCode.limitExceeded);
    await page.waitForTimeout(APPROVAL_COOLDOWN_MS + 200);

    // Allowed: the promise resolves with both scopes, and the page hears the change.
    await recordStatus(page);
    const [allowWindow] = await Promise.all([
      ext.context.waitForEvent('page', { predicate: (p) => p.url().includes('approve.html') }),
      page.evaluate(() => { (window as unknown as { __ask: Promise<unknown> }).__ask = (window as any).__vault.request({ method: 'vault_requestScopes', params: { scopes: ['backup'] } }); }),
    ]);
    await answerApproval(allowWindow, 'Allow');
    expect(await page.evaluate(() => (window as unknown as { __ask: Promise<unknown> }).__ask)).toEqual({ scopes: ['read', 'backup'] });
    await expect.poll(async () => (await statusEvents(page)).at(-1)?.scopes).toEqual(['read', 'backup']);
    await page.close();
  });

  it('hands over keys that reach the server backup, and reads keys only while unlocked', async () => {
    const page = await ext.context.newPage();
    await page.goto(site.origin);
    expect(await findsProvider(page)).toBe(true);
    await recordStatus(page);
    const sessions = await peerSessions(20, 3);
    const handed = await callVault(page, 'vault_backupRoomKeys', { sessions: [...sessions, { room_id: '!bad:x', session_id: 'nope' }] });
    expect(handed.result.results.filter((r: { accepted: boolean }) => r.accepted)).toHaveLength(20);
    expect(handed.result.results[20]).toMatchObject({ accepted: false, reason: expect.any(String) });

    const direct = new HomeserverClient({ baseUrl: synapse.baseUrl, accessToken: user.accessToken });
    const version = (await workerStatus(popup)).backup!.version;
    await expect.poll(async () => {
      const found = await Promise.all(sessions.map((s) => direct.getBackupSessionKey(version, s.room_id, s.session_id).then(() => 1, () => 0)));
      return found.reduce<number>((a, b) => a + b, 0);
    }, { timeout: 60_000, interval: 500 }).toBe(20);

    const refs = sessions.slice(0, 3).map((s) => ({ roomId: s.room_id, sessionId: s.session_id }));
    // Locked (a backup was created, nothing unlocked yet): 4300, and nothing about the keys.
    expect((await callVault(page, 'vault_getRoomKeys', { sessions: refs })).error?.code).toBe(ErrorCode.vaultLocked);

    // Unlocked in the popup: the page hears it, and reads; an unknown session is "not found".
    const unlocked = await popup.evaluate((input) => chrome.runtime.sendMessage({ type: 'vault.unlock', input }), recoveryKey);
    expect(unlocked.ok).toBe(true);
    await expect.poll(async () => (await statusEvents(page)).at(-1)?.state).toBe('unlocked');
    const unknown = { roomId: sessions[0]!.room_id, sessionId: 'AAAAunknownSessionIdAAAAAAAAAAAAAAAAAAAAAA' };
    const read = await callVault(page, 'vault_getRoomKeys', { sessions: [...refs, unknown] });
    expect(read.result.keys.slice(0, 3).map((k: { found: boolean; key: { session_key: string; algorithm: string } }) => [k.found, k.key.session_key, k.key.algorithm]))
      .toEqual(sessions.slice(0, 3).map((s) => [true, s.session_key, 'm.megolm.v1.aes-sha2']));
    expect(read.result.keys[3]).toMatchObject({ found: false });

    // Locked again: the page hears it and is refused; handing over still works (the public key is enough).
    await popup.evaluate(() => chrome.runtime.sendMessage({ type: 'vault.lock' }));
    await expect.poll(async () => (await statusEvents(page)).at(-1)?.state).toBe('locked');
    expect((await callVault(page, 'vault_getRoomKeys', { sessions: refs })).error?.code).toBe(ErrorCode.vaultLocked);
    expect((await callVault(page, 'vault_backupRoomKeys', { sessions: sessions.slice(0, 2) })).result.results.every((r: { accepted: boolean }) => r.accepted)).toBe(true);
    await page.close();
  });

  it('"Stop allowing" takes effect at once in the open tab, and after a reload there is nothing', async () => {
    const page = await ext.context.newPage();
    await page.goto(site.origin);
    expect(await findsProvider(page)).toBe(true);
    const sitesPopup = await ext.openPage(`popup.html?site=${encodeURIComponent(site.origin)}`);
    const row = sitesPopup.locator(`[data-testid=site][data-origin="${site.origin}"]`);
    await row.getByRole('button', { name: 'Stop allowing' }).click();
    await sitesPopup.getByTestId('allow-site').waitFor();
    const after = await callVault(page, 'vault_status');
    expect(after.error?.code).toBe(ErrorCode.disconnected);
    // Allowed again: the same open tab (its bridge was told "revoked") is connected again at once.
    await (await allowSiteViaPopup(ext, site.origin, ['read'])).close();
    expect(await findsProvider(page)).toBe(true);
    expect((await callVault(page, 'vault_status')).result).toMatchObject({ scopes: ['read'] });
    // Stopped again, then a reload: nothing at all.
    await sitesPopup.reload();
    await sitesPopup.locator(`[data-testid=site][data-origin="${site.origin}"]`).getByRole('button', { name: 'Stop allowing' }).click();
    await sitesPopup.getByTestId('allow-site').waitFor();
    await page.reload();
    expect(await findsProvider(page)).toBe(false);
    expect(await ext.worker.evaluate(() => chrome.scripting.getRegisteredContentScripts())).toEqual([]);
    await sitesPopup.close();
    await page.close();
  });

  it('a refusal in the browser\'s prompt allows nothing', async () => {
    const declined = await allowSiteViaPopup(ext, otherPort.origin, ['read'], false);
    expect(await declined.locator('[data-testid=site]').count()).toBe(0);
    await declined.close();
    const page = await ext.context.newPage();
    await page.goto(otherPort.origin);
    expect(await findsProvider(page)).toBe(false);
    await page.close();
  });
});

/** Clicks a button of the approval window, which closes itself once the answer is in. */
async function answerApproval(window: Page, button: 'Allow' | 'Deny'): Promise<void> {
  const closed = window.waitForEvent('close');
  await window.getByRole('button', { name: button }).click().catch((e: Error) => {
    if (!/closed/.test(e.message)) throw e; // the window went away while the click settled: expected
  });
  await closed;
}
