/**
 * Two accounts one after another on one browser profile: the first account's keys are neither
 * uploaded to the second's backup nor served to it; the popup says whose they are and erases them
 * only after the user confirms; the first account's server backup is untouched.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HomeserverClient } from '../../src/platform/homeserver.ts';
import { launchExtension, type ExtensionBrowser } from '../harness/browser.ts';
import { createBackupViaPage, importKeyFileViaPage, signInViaPopup, workerStatus } from '../harness/extension-ui.ts';
import { exportAll, unlockViaPopup } from '../harness/restore-ui.ts';
import { sharedSynapse } from '../harness/synapse-global.ts';
import { uniqueLocalpart } from '../harness/synapse.ts';
import { peerSessions } from '../harness/upload-rig.ts';
import { keyFileFromPeer, type ExportedSessionData } from '../peer/index.ts';

const password = 'a long and unguessable password';
const passphrase = 'accounts test passphrase';

describe('two accounts, one after another, on one profile', () => {
  const synapse = sharedSynapse();
  let ext: ExtensionBrowser;
  let tmp: string;
  let first: ExportedSessionData[];
  let second: ExportedSessionData[];

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'mkv-accounts-'));
    [first, second] = [await peerSessions(120, 3), await peerSessions(50, 2)];
    writeFileSync(join(tmp, 'first.txt'), await keyFileFromPeer(first, passphrase, 1000));
    writeFileSync(join(tmp, 'second.txt'), await keyFileFromPeer(second, passphrase, 1000));
    ext = await launchExtension();
  });

  afterAll(async () => {
    await ext?.close();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('keeps each account\'s keys to itself, and erases the other\'s only when confirmed', async () => {
    const a = uniqueLocalpart('acct-a');
    const b = uniqueLocalpart('acct-b');
    const userA = await synapse.registerUser(a, password);
    const userB = await synapse.registerUser(b, password);
    const directA = new HomeserverClient({ baseUrl: synapse.baseUrl, accessToken: userA.accessToken });
    const directB = new HomeserverClient({ baseUrl: synapse.baseUrl, accessToken: userB.accessToken });

    // The first account: a backup, its keys uploaded.
    let popup = await signInViaPopup(ext, synapse.baseUrl, userA.userId, password);
    await createBackupViaPage(ext, popup);
    expect((await importKeyFileViaPage(ext, join(tmp, 'first.txt'), passphrase)).summary.stored).toBe(120);
    await expect.poll(async () => (await directA.getLatestBackupVersion())?.count, { timeout: 60_000 }).toBe(120);
    await popup.getByRole('button', { name: 'Sign out' }).click();
    await popup.getByTestId('sign-in').waitFor();
    await popup.close();

    // The second account on the same profile: its own backup and keys.
    popup = await signInViaPopup(ext, synapse.baseUrl, userB.userId, password);
    const recoveryKeyB = await createBackupViaPage(ext, popup);
    expect((await importKeyFileViaPage(ext, join(tmp, 'second.txt'), passphrase)).summary.stored).toBe(50);
    await expect.poll(async () => (await directB.getLatestBackupVersion())?.count, { timeout: 60_000 }).toBe(50);
    const status = await workerStatus(popup, true);
    expect(status.upload.pending, 'the first account\'s keys are not waiting to go to the second\'s backup').toBe(0);
    expect(status.otherAccounts).toEqual([{ userId: userA.userId, count: 120 }]);
    expect(status.earlier, 'not offered as an earlier key of this account').toEqual([]);

    // Served: only the second account's keys.
    await popup.reload();
    await unlockViaPopup(popup, recoveryKeyB, 'recovery-key');
    const served = await exportAll(popup);
    expect(served.sessions.map((s) => s.session_id).sort()).toEqual(second.map((s) => s.session_id).sort());

    // The popup says whose the other keys are; erasing asks first, and "Keep" keeps them.
    const other = popup.getByTestId('other-account');
    await other.waitFor();
    expect(await other.getAttribute('data-user')).toBe(userA.userId);
    expect(await other.textContent()).toContain(`120 keys of ${userA.userId}`);
    await other.getByRole('button', { name: 'Erase…' }).click();
    await other.getByRole('button', { name: 'Keep' }).click();
    expect((await workerStatus(popup, true)).upload.stored).toBe(170);
    await other.getByRole('button', { name: 'Erase…' }).click();
    expect(await other.getByTestId('erase-confirm').textContent()).toMatch(/cannot be undone/);
    await other.getByRole('button', { name: 'Erase them' }).click();
    await popup.getByTestId('other-account').waitFor({ state: 'detached' });
    const after = await workerStatus(popup, true);
    expect(after.upload.stored).toBe(50);
    expect(after.otherAccounts).toEqual([]);
    expect((await directA.getLatestBackupVersion())?.count, 'the first account\'s server backup is untouched').toBe(120);
    expect((await directB.getLatestBackupVersion())?.count).toBe(50);
  });
});
