/**
 * What a person sees when things go wrong, in the built extension against a real Synapse: a wrong
 * password, an insecure homeserver address, text that is not a recovery key, a key of another
 * backup, a key file before any backup exists, a wrong passphrase, a file that is not a key export,
 * and a key file with damaged sessions among good ones.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeRecoveryKey, encryptKeyFile } from '../../src/core/index.ts';
import { HomeserverClient } from '../../src/platform/homeserver.ts';
import { launchExtension, repoRoot, type ExtensionBrowser } from '../harness/browser.ts';
import { signInViaPopup, workerStatus } from '../harness/extension-ui.ts';
import { sharedSynapse } from '../harness/synapse-global.ts';
import { uniqueLocalpart, type SynapseUser } from '../harness/synapse.ts';
import { createServerBackup, peerSessions, randomKey } from '../harness/upload-rig.ts';
import type { ExportedSessionData } from '../peer/index.ts';

const password = 'popup flows password';
const passphrase = 'file passphrase';

describe('popup and pages when things go wrong', () => {
  const synapse = sharedSynapse();
  let ext: ExtensionBrowser;
  let user: SynapseUser;
  let direct: HomeserverClient;
  let tmp: string;
  let sessions: ExportedSessionData[];
  let goodFile: string;
  let popup: Page;

  beforeAll(async () => {
    user = await synapse.registerUser(uniqueLocalpart('popup'), password);
    direct = new HomeserverClient({ baseUrl: synapse.baseUrl, accessToken: user.accessToken });
    tmp = mkdtempSync(join(tmpdir(), 'mkv-popup-'));
    sessions = await peerSessions(30, 3);
    goodFile = join(tmp, 'keys.txt');
    writeFileSync(goodFile, await encryptKeyFile(JSON.stringify(sessions), passphrase, 1000));
    ext = await launchExtension();
  });
  afterAll(async () => {
    await ext?.close();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  async function trySignIn(homeserver: string, name: string, secret: string): Promise<Page> {
    const page = await ext.openPage('popup.html');
    const form = page.getByTestId('sign-in');
    await form.locator('input[name=homeserver]').fill(homeserver);
    await form.locator('input[name=user]').fill(name);
    await form.locator('input[name=secret]').fill(secret);
    await form.getByRole('button', { name: 'Sign in' }).click();
    return page;
  }

  it('shows the homeserver\'s refusal of a wrong password', async () => {
    const page = await trySignIn(synapse.serverName, user.userId, 'wrong password');
    const alert = page.getByRole('alert');
    await alert.waitFor();
    expect(await alert.locator('[data-kind]').getAttribute('data-kind')).toBe('homeserver');
    expect(await alert.textContent()).toMatch(/403|Invalid|password/i);
    expect((await workerStatus(page)).account).toBeNull();
    await page.close();
  });

  it('refuses plain http to a host that is not this computer', async () => {
    const page = await trySignIn('http://matrix.example.org', 'alice', 'x');
    const alert = page.getByRole('alert');
    await alert.waitFor();
    expect(await alert.locator('[data-kind]').getAttribute('data-kind')).toBe('discovery');
    expect(await alert.textContent()).toMatch(/https/);
    await page.close();
  });

  it('refuses a key file while no backup key is set up, and says what to do', async () => {
    popup = await signInViaPopup(ext, synapse.serverName, user.userId, password);
    const page = await ext.openPage('import.html');
    expect(await page.getByTestId('blocked').textContent()).toMatch(/No backup key is set up yet/);
    await page.getByTestId('file').setInputFiles(goodFile);
    await page.getByTestId('passphrase').fill(passphrase);
    await page.getByTestId('import').click();
    const alert = page.getByRole('alert');
    await alert.waitFor();
    expect(await alert.locator('[data-kind]').getAttribute('data-kind')).toBe('no-backup');
    expect((await workerStatus(page)).upload.stored).toBe(0);
    await page.close();
  });

  it('tells "not a recovery key" from "the key of another backup" when unlocking', async () => {
    const key = randomKey();
    const server = await createServerBackup(direct, key); // as Element would have created it
    await popup.reload();
    const joinForm = popup.getByTestId('join');
    await joinForm.waitFor();
    expect(await joinForm.textContent()).toContain(`version ${server.version}`);

    const input = joinForm.getByLabel('Recovery key', { exact: true });
    const unlock = joinForm.getByRole('button', { name: 'Unlock', exact: true });
    expect(await input.getAttribute('type')).toBe('password');
    await input.fill('EsTc LW2K PGiF wKEA 3As5 g5c4 BXwk qeeJ ZJV8 Q9fu gUMN UE4e');
    expect(await joinForm.getByTestId('recovery-format').getAttribute('data-format')).toBe('bad-key'); // said while typing
    await unlock.click();
    await expect.poll(() => joinForm.locator('[data-kind]').getAttribute('data-kind')).toBe('not-a-key');
    expect(await joinForm.getByRole('alert').textContent()).toMatch(/check digit/);

    await input.fill(encodeRecoveryKey(randomKey()));
    expect(await joinForm.getByTestId('recovery-format').getAttribute('data-format')).toBe('key');
    await unlock.click();
    await expect.poll(() => joinForm.locator('[data-kind]').getAttribute('data-kind')).toBe('wrong-key');
    expect(await joinForm.getByRole('alert').textContent()).toMatch(`belongs neither to your secret storage nor to your backup (version ${server.version})`);
    expect((await workerStatus(popup)).backup).toBeNull();

    await input.fill(encodeRecoveryKey(key));
    await unlock.click();
    await popup.getByRole('heading', { name: `Backup version ${server.version}` }).waitFor();
    await popup.getByTestId('unlocked').waitFor();
    expect(await popup.getByTestId('unlocked').getAttribute('data-via')).toBe('recovery-key');
    expect((await workerStatus(popup)).backup).toMatchObject({ version: server.version, publicKey: server.publicKey, source: 'proved' });
    await popup.setViewportSize({ width: 400, height: 600 });
    await popup.screenshot({ path: join(repoRoot, 'test-results', 'popup-joined.png') });
  });

  it('says when the passphrase is wrong, or the file is not a key export', async () => {
    const page = await ext.openPage('import.html');
    await page.getByTestId('file').setInputFiles(goodFile);
    await page.getByTestId('passphrase').fill('not the passphrase');
    await page.getByTestId('import').click();
    await expect.poll(async () => (await page.getByRole('alert').textContent().catch(() => '')) ?? '').toMatch(/passphrase does not match/);
    expect(await page.getByRole('alert').locator('[data-kind]').getAttribute('data-kind')).toBe('wrong-passphrase');

    const notAKeyFile = join(tmp, 'notes.txt');
    writeFileSync(notAKeyFile, 'shopping list: milk, eggs\n');
    await page.getByTestId('file').setInputFiles(notAKeyFile);
    await page.getByTestId('passphrase').fill(passphrase);
    await page.getByTestId('import').click();
    await expect.poll(async () => (await page.getByRole('alert').textContent().catch(() => '')) ?? '').toMatch(/not a Matrix key export file/);
    expect(await page.getByRole('alert').locator('[data-kind]').getAttribute('data-kind')).toBe('not-a-key-file');

    const notAList = join(tmp, 'object.txt');
    writeFileSync(notAList, await encryptKeyFile('{"room_id":"!x:y"}', passphrase, 1000));
    await page.getByTestId('file').setInputFiles(notAList);
    await page.getByTestId('import').click();
    await expect.poll(async () => (await page.getByRole('alert').textContent().catch(() => '')) ?? '').toMatch(/does not contain a list of keys/);
    expect(await page.getByRole('alert').locator('[data-kind]').getAttribute('data-kind')).toBe('not-a-key-list');
    expect((await workerStatus(page)).upload.stored).toBe(0);
    await page.close();
  });

  it('imports the good sessions of a damaged file and lists why the others were refused', async () => {
    const damaged = [
      ...sessions.slice(0, 20),
      { ...sessions[20], session_id: sessions[21]!.session_id },
      { ...sessions[22], session_key: 'AQAAAA' },
      { ...sessions[23], algorithm: 'm.olm.v1' },
      'garbage',
    ];
    const file = join(tmp, 'damaged.txt');
    writeFileSync(file, await encryptKeyFile(JSON.stringify(damaged), passphrase, 1000));
    const page = await ext.openPage('import.html');
    await page.getByTestId('file').setInputFiles(file);
    await page.getByTestId('passphrase').fill(passphrase);
    await page.getByTestId('import').click();
    const result = page.getByTestId('result');
    await result.waitFor();
    expect(await result.getAttribute('data-stored')).toBe('20');
    expect(await result.getAttribute('data-rejected')).toBe('4');
    const rows = await page.locator('table.rejected tbody tr').allTextContents();
    expect(rows).toHaveLength(4);
    expect(rows[0]).toMatch(/session_id/);
    expect(rows[2]).toMatch(/algorithm/);
    await page.screenshot({ path: join(repoRoot, 'test-results', 'import-rejected.png'), fullPage: true });
    await expect.poll(async () => (await workerStatus(page)).upload.pending, { timeout: 30_000 }).toBe(0);
    expect((await direct.getLatestBackupVersion())!.count).toBe(20);
    await page.close();
  });

  it('a file whose JSON breaks off part-way: the keys before that point are imported, and the page says how many', async () => {
    // The HMAC is good (the file was written so); only its decrypted contents stop being JSON.
    const cut = `${JSON.stringify(sessions).slice(0, -1)},{"room_id":`;
    const file = join(tmp, 'cut.txt');
    writeFileSync(file, await encryptKeyFile(cut, passphrase, 1000));
    const page = await ext.openPage('import.html');
    await page.getByTestId('file').setInputFiles(file);
    await page.getByTestId('passphrase').fill(passphrase);
    await page.getByTestId('import').click();
    await expect.poll(async () => (await page.getByRole('alert').textContent().catch(() => '')) ?? '').toMatch(/not JSON.*The 30 keys before that point were imported: 10 added, 20 already held, 0 rejected/);
    expect(await page.getByRole('alert').locator('[data-kind]').getAttribute('data-kind')).toBe('not-a-key-list');
    await expect.poll(async () => (await workerStatus(page)).upload.stored, { timeout: 30_000 }).toBe(30);
    await page.close();
  });
});
