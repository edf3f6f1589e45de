/**
 * The whole story in real Chromium against a real Synapse, as a person would go through it: an
 * account whose encrypted room holds history another device wrote (Element's crypto) with its backup
 * and secret storage; the extension unlocked with the Security Key and restored through the popup;
 * the demo web client (matrix-js-sdk 43, Rust crypto) signed in as a new device, unable to read its
 * history until the user allows its site and it attaches the vault through the client kit. Then its
 * own new session reaches the server backup through the vault, another origin finds nothing, and a
 * revoke shuts it out.
 *
 * The second half runs the demo in Element mode (`?mode=element`: it exposes its client as
 * `window.mxMatrixClientPeg` as Element Web does, and does not use the kit itself): the user turns
 * "Connect to the Matrix client on this site" on, and the extension's own adapter does the work.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HomeserverClient } from '../../src/platform/homeserver.ts';
import { ErrorCode } from '../../src/shared/page-api.ts';
import { chromeDist, launchExtension, repoRoot, type ExtensionBrowser } from '../harness/browser.ts';
import { signInViaPopup } from '../harness/extension-ui.ts';
import { createDemoHistory, type DemoHistory } from '../harness/demo-history.ts';
import { allowSiteViaPopup, callVault, findsProvider, grantedCopy, startSite, type Site } from '../harness/page-site.ts';
import { restoreViaPopup, unlockViaPopup } from '../harness/restore-ui.ts';
import { serveDirectory, type StaticServer } from '../harness/static-server.ts';
import { sharedSynapse } from '../harness/synapse-global.ts';
import { uniqueLocalpart, type SynapseUser } from '../harness/synapse.ts';

const password = 'demo client test password';
const EVENTS = 60;

describe('a web client decrypts its history through the vault', () => {
  const synapse = sharedSynapse();
  let tmp: string;
  let ext: ExtensionBrowser;
  let demo: StaticServer;
  let elementDemo: StaticServer;
  let other: Site;
  let user: SynapseUser;
  let history: DemoHistory;
  let popup: Page;

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'mkv-demo-client-'));
    ext = await launchExtension({ extensionPath: grantedCopy(chromeDist, join(tmp, 'ext')) });
    [demo, elementDemo, other] = await Promise.all([serveDirectory(join(repoRoot, 'dist/demo')), serveDirectory(join(repoRoot, 'dist/demo')), startSite()]);
  });
  afterAll(async () => {
    await ext?.close();
    await Promise.all([demo?.close(), elementDemo?.close(), other?.close()]);
    rmSync(tmp, { recursive: true, force: true });
  });

  const demoUrl = (server: StaticServer, extra = '') =>
    `${server.url}/?hs=${encodeURIComponent(synapse.baseUrl)}&user=${encodeURIComponent(user.userId)}&password=${encodeURIComponent(password)}&autologin=1${extra}`;

  async function openDemo(url: string): Promise<Page> {
    const page = await ext.context.newPage();
    await page.goto(url);
    // The history, plus the messages earlier steps sent.
    await expect.poll(() => page.getByTestId('event').count(), { timeout: 120_000, interval: 500 }).toBeGreaterThanOrEqual(EVENTS);
    return page;
  }

  const decrypted = (page: Page) => page.locator('[data-testid=event][data-state=decrypted]').count();
  const events = (page: Page) => page.getByTestId('event').count();

  it('sets up the account as Element leaves it, then unlocks and restores in the popup', async () => {
    const localpart = uniqueLocalpart('demo-client');
    user = await synapse.registerUser(localpart, password);
    history = await createDemoHistory(synapse, { localpart, password, events: EVENTS, eventsPerSession: 3, passphraseIterations: 1000 });
    popup = await signInViaPopup(ext, synapse.baseUrl, localpart, password);
    await unlockViaPopup(popup, history.recoveryKey, 'security-key');
    const restore = await restoreViaPopup(popup);
    expect(restore).toMatchObject({ restored: history.sessionIds.length, failed: 0 });
  });

  it('the demo cannot read its history until its site is allowed and the vault attached', async () => {
    const page = await openDemo(demoUrl(demo));
    // A new device reading history from before it existed: nothing decrypts.
    await page.waitForTimeout(1500);
    expect(await decrypted(page)).toBe(0);
    expect(await page.getByTestId('vault-status').textContent()).toMatch(/not found/i);

    await (await allowSiteViaPopup(ext, demo.url, ['read', 'backup'])).close();
    await expect.poll(() => page.getByTestId('vault-attach').isEnabled(), { timeout: 30_000 }).toBe(true);
    await page.getByTestId('vault-attach').click();
    await expect.poll(() => decrypted(page), { timeout: 60_000, interval: 250 }).toBe(EVENTS);
    const bodies = await page.locator('[data-testid=event]').evaluateAll((els) => els.map((e) => e.textContent ?? ''));
    for (const body of history.bodies) expect(bodies.some((b) => b.includes(body)), body).toBe(true);
    expect(Number(await page.getByTestId('stat-keys-imported').textContent())).toBe(history.sessionIds.length);
    await page.screenshot({ path: join(repoRoot, 'test-results', 'demo-decrypted.png'), fullPage: false });

    // Its own new session reaches the server backup through the vault.
    const direct = new HomeserverClient({ baseUrl: synapse.baseUrl, accessToken: user.accessToken });
    const before = new Set(history.sessionIds);
    await page.getByTestId('message-input').fill('a message from the demo client');
    await page.getByTestId('send-button').click();
    await expect.poll(async () => {
      const keys = await direct.getBackupRoomKeys(history.backupVersion, history.roomId).catch(() => ({ sessions: {} }));
      return Object.keys(keys.sessions).filter((id) => !before.has(id)).length;
    }, { timeout: 60_000, interval: 500 }).toBe(1);
    expect(Number(await page.getByTestId('stat-sessions-handed-over').textContent())).toBeGreaterThanOrEqual(1);

    // Another origin, no grant: no provider at all.
    const otherPage = await ext.context.newPage();
    await otherPage.goto(other.origin);
    expect(await findsProvider(otherPage)).toBe(false);
    await otherPage.close();

    // Revoked in the popup: refused in the open tab at once, and nothing after a reload.
    expect(await findsProvider(page)).toBe(true);
    const sites = await ext.openPage(`popup.html?site=${encodeURIComponent(demo.url)}`);
    await sites.locator(`[data-testid=site][data-origin="${demo.url}"]`).getByRole('button', { name: 'Stop allowing' }).click();
    await sites.getByTestId('allow-site').waitFor();
    expect((await callVault(page, 'vault_status')).error?.code).toBe(ErrorCode.disconnected);
    await page.reload();
    expect(await findsProvider(page)).toBe(false);
    await sites.close();
    await page.close();
  });

  it('Element mode: with "Connect to the Matrix client on this site" the extension attaches to mxMatrixClientPeg', async () => {
    const page = await openDemo(demoUrl(elementDemo, '&mode=element'));
    expect(await page.evaluate(() => typeof (window as unknown as { mxMatrixClientPeg?: { get(): unknown } }).mxMatrixClientPeg?.get())).toBe('object');
    await page.waitForTimeout(1000);
    expect(await decrypted(page)).toBe(0);

    const sites = await allowSiteViaPopup(ext, elementDemo.url, ['read', 'backup']);
    const row = sites.locator(`[data-testid=site][data-origin="${elementDemo.url}"]`);
    // Off by default: allowing the site alone attaches nothing.
    expect(await row.locator('input[name=connect-client]').isChecked()).toBe(false);
    await page.waitForTimeout(1500);
    expect(await decrypted(page)).toBe(0);

    await row.locator('input[name=connect-client]').click();
    // Every event, the first demo's message included (its session reached the backup through the vault).
    const total = await events(page);
    expect(total).toBe(EVENTS + 1);
    await expect.poll(() => decrypted(page), { timeout: 60_000, interval: 250 }).toBe(total);
    const status = row.getByTestId('client-status');
    await expect.poll(() => status.getAttribute('data-state'), { timeout: 30_000 }).toBe('attached');
    await expect.poll(async () => Number(await status.getAttribute('data-fetched')), { timeout: 30_000 }).toBe(history.sessionIds.length + 1);
    expect(await status.textContent()).toContain(user.userId);

    // A new session of Element's client is handed over and reaches the server backup.
    const direct = new HomeserverClient({ baseUrl: synapse.baseUrl, accessToken: user.accessToken });
    const known = new Set(Object.keys((await direct.getBackupRoomKeys(history.backupVersion, history.roomId)).sessions));
    await page.getByTestId('message-input').fill('a message from Element mode');
    await page.getByTestId('send-button').click();
    await expect.poll(async () => {
      const keys = await direct.getBackupRoomKeys(history.backupVersion, history.roomId);
      return Object.keys(keys.sessions).filter((id) => !known.has(id)).length;
    }, { timeout: 60_000, interval: 500 }).toBe(1);
    await expect.poll(async () => Number(await status.getAttribute('data-handed-over')), { timeout: 30_000 }).toBeGreaterThanOrEqual(1);
    await sites.screenshot({ path: join(repoRoot, 'test-results', 'popup-client-attached.png'), fullPage: true });
    await sites.close();
    await page.close();
  });

  it('Element mode: a client of another account is left alone, and the popup says so', async () => {
    const otherLocalpart = uniqueLocalpart('demo-other');
    const otherUser = await synapse.registerUser(otherLocalpart, password);
    const page = await ext.context.newPage();
    await page.goto(`${elementDemo.url}/?hs=${encodeURIComponent(synapse.baseUrl)}&user=${encodeURIComponent(otherUser.userId)}&password=${encodeURIComponent(password)}&autologin=1&mode=element`);
    const sites = await ext.openPage(`popup.html?site=${encodeURIComponent(elementDemo.url)}`);
    const status = sites.locator(`[data-testid=site][data-origin="${elementDemo.url}"]`).getByTestId('client-status');
    await expect.poll(() => status.getAttribute('data-state'), { timeout: 60_000, interval: 500 }).toBe('other-account');
    expect(await status.textContent()).toContain(otherUser.userId);
    await sites.close();
    await page.close();
  });

  it('a client missing a part the kit needs stays untouched, and the popup names the part', async () => {
    await (await allowSiteViaPopup(ext, other.origin, ['read'])).close();
    const sites = await ext.openPage(`popup.html?site=${encodeURIComponent(other.origin)}`);
    const row = sites.locator(`[data-testid=site][data-origin="${other.origin}"]`);
    await row.locator('input[name=connect-client]').click();
    const page = await ext.context.newPage();
    await page.goto(other.origin);
    // Element's peg, with a started client of the right account but no crypto at all.
    await page.evaluate((userId) => {
      (window as unknown as { mxMatrixClientPeg: unknown }).mxMatrixClientPeg = {
        get: () => ({ getUserId: () => userId, isInitialSyncComplete: () => true, on() {}, off() {}, getRooms: () => [], getCrypto: () => undefined }),
      };
    }, user.userId);
    const status = row.getByTestId('client-status');
    await expect.poll(() => status.getAttribute('data-state'), { timeout: 30_000, interval: 500 }).toBe('unusable');
    expect(await status.textContent()).toMatch(/crypto/i);
    await sites.close();
    await page.close();
  });
});
