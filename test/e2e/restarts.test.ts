/**
 * The browser closed in the middle of things, and a new version of the extension installed over the
 * old one, with the same profile: an upload resumes by itself, a restore resumes once the user
 * unlocks again (the key lived in memory only), and nothing is lost or done twice.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HomeserverClient } from '../../src/platform/homeserver.ts';
import { chromeDist, launchExtension, type ExtensionBrowser } from '../harness/browser.ts';
import { createBackupViaPage, importKeyFileViaPage, signInViaPopup, workerStatus } from '../harness/extension-ui.ts';
import { startFaultProxy, type FaultProxy } from '../harness/fault-proxy.ts';
import { createPeerWrittenBackup } from '../harness/peer-backup.ts';
import { startThrottleProxy, unlockViaPopup, type ThrottleProxy } from '../harness/restore-ui.ts';
import { sharedSynapse } from '../harness/synapse-global.ts';
import { uniqueLocalpart } from '../harness/synapse.ts';
import { peerSessions } from '../harness/upload-rig.ts';
import { keyFileFromPeer } from '../peer/index.ts';

const password = 'a long and unguessable password';
const passphrase = 'restart test passphrase';

describe('closing the browser, and updating the extension, in the middle of things', () => {
  const synapse = sharedSynapse();
  let tmp: string;
  let ext: ExtensionBrowser | undefined;

  beforeAll(() => { tmp = mkdtempSync(join(tmpdir(), 'mkv-restarts-')); });
  afterAll(async () => {
    await ext?.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('an upload cut short by closing the browser, and by an update to a new version, resumes by itself', async () => {
    const SESSIONS = 600;
    const localpart = uniqueLocalpart('restart-up');
    const user = await synapse.registerUser(localpart, password);
    const direct = new HomeserverClient({ baseUrl: synapse.baseUrl, accessToken: user.accessToken });
    const keyFile = join(tmp, 'keys.txt');
    writeFileSync(keyFile, await keyFileFromPeer(await peerSessions(SESSIONS, 5), passphrase, 1000));
    // The extension runs from its own copy, so an "update" can replace the files at the same path
    // (an unpacked extension's id comes from its path: same path, same extension, same storage).
    const extensionPath = join(tmp, 'extension');
    cpSync(chromeDist, extensionPath, { recursive: true });
    const profile = join(tmp, 'profile-upload');
    const proxy: FaultProxy = await startFaultProxy(synapse.baseUrl, {}, { hideWellKnown: true });
    try {
      ext = await launchExtension({ extensionPath, userDataDir: profile });
      const popup = await signInViaPopup(ext, proxy.baseUrl, user.userId, password);
      await createBackupViaPage(ext, popup);
      // Every upload fails for now: the sessions wait in the vault when the browser closes.
      proxy.setPlan({ match: { method: 'PUT', path: /\/room_keys\/keys/ }, script: Array<'status-503'>(1000).fill('status-503'), maxFaults: 1000, retryAfterMs: 60_000 });
      const { page, summary } = await importKeyFileViaPage(ext, keyFile, passphrase);
      expect(summary.stored).toBe(SESSIONS);
      await expect.poll(async () => (await workerStatus(page)).upload.lastError?.status, { timeout: 30_000 }).toBe(503);
      const before = await workerStatus(page);
      expect(before.upload.pending).toBe(SESSIONS);
      await ext.close();
      ext = undefined;

      // 1. The browser starts again with the same profile: nobody opens the popup; it uploads.
      proxy.setPlan({});
      ext = await launchExtension({ extensionPath, userDataDir: profile });
      await expect.poll(async () => (await direct.getLatestBackupVersion())?.count, { timeout: 90_000, interval: 1000 }).toBe(SESSIONS);
      const probe = await ext.openPage('popup.html');
      await expect.poll(async () => (await workerStatus(probe)).upload.pending, { timeout: 30_000 }).toBe(0);
      expect((await workerStatus(probe)).upload.stored, 'nothing lost, nothing twice').toBe(SESSIONS);

      // 2. More sessions wait when a new version is installed over this one.
      proxy.setPlan({ match: { method: 'PUT', path: /\/room_keys\/keys/ }, script: Array<'status-503'>(1000).fill('status-503'), maxFaults: 1000, retryAfterMs: 60_000 });
      const more = join(tmp, 'more.txt');
      writeFileSync(more, await keyFileFromPeer(await peerSessions(200, 2), passphrase, 1000));
      expect((await importKeyFileViaPage(ext, more, passphrase)).summary.stored).toBe(200);
      const oldVersion = (await workerStatus(probe)).worker.version;
      await ext.close();
      ext = undefined;
      const manifestPath = join(extensionPath, 'manifest.json');
      const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as { version: string };
      manifest.version = `${manifest.version}.1`;
      writeFileSync(manifestPath, JSON.stringify(manifest));
      proxy.setPlan({});
      ext = await launchExtension({ extensionPath, userDataDir: profile });
      const updated = await ext.openPage('popup.html');
      const status = await workerStatus(updated);
      expect(status.worker.version).toBe(manifest.version);
      expect(status.worker.version).not.toBe(oldVersion);
      expect(status.account?.userId, 'still signed in after the update').toBe(user.userId);
      await expect.poll(async () => (await direct.getLatestBackupVersion())?.count, { timeout: 90_000, interval: 1000 }).toBe(SESSIONS + 200);
      await expect.poll(async () => (await workerStatus(updated)).upload.pending, { timeout: 30_000 }).toBe(0);
      expect((await workerStatus(updated)).upload.stored).toBe(SESSIONS + 200);
    } finally {
      await ext?.close();
      ext = undefined;
      await proxy.stop();
    }
  });

  it('a restore cut short by closing the browser resumes once the user unlocks again, counting nothing twice', async () => {
    const SESSIONS = 2000;
    const localpart = uniqueLocalpart('restart-re');
    const user = await synapse.registerUser(localpart, password);
    const direct = new HomeserverClient({ baseUrl: synapse.baseUrl, accessToken: user.accessToken });
    const backup = await createPeerWrittenBackup(direct, { sessions: SESSIONS, rooms: 6 });
    // A slow link, so the browser closes while the download is under way.
    const slow: ThrottleProxy = await startThrottleProxy(synapse.baseUrl, { bytesPerSecond: 120_000, match: /\/room_keys\/keys\?/ });
    const profile = join(tmp, 'profile-restore');
    try {
      ext = await launchExtension({ userDataDir: profile });
      const popup = await signInViaPopup(ext, slow.baseUrl, user.userId, password);
      await unlockViaPopup(popup, backup.recoveryKey, 'recovery-key');
      // The whole download's size, so the link can all but stop after 60 % of it: the restore then
      // cannot finish before the browser closes, however slow or fast this machine is.
      const whole = await fetch(`${synapse.baseUrl}/_matrix/client/v3/room_keys/keys?version=${backup.version}`, { headers: { authorization: `Bearer ${user.accessToken}` } });
      const total = (await whole.arrayBuffer()).byteLength;
      let slowed = false;
      const slowing = (async () => {
        while (slow.throttledBytes() < total * 0.6) await new Promise((r) => setTimeout(r, 10));
        slow.setBytesPerSecond(100);
        slowed = true;
      })();
      await popup.getByRole('button', { name: 'Restore', exact: true }).click();
      await slowing;
      await expect.poll(async () => (await workerStatus(popup)).restore?.restored ?? 0, { timeout: 60_000 }).toBeGreaterThan(0);
      const cut = (await workerStatus(popup)).restore!;
      expect(slowed).toBe(true);
      expect(cut.restored).toBeLessThan(SESSIONS);
      await ext.close();
      ext = undefined;
      slow.setBytesPerSecond(400_000);

      ext = await launchExtension({ userDataDir: profile });
      const again = await ext.openPage('popup.html');
      const locked = await workerStatus(again);
      expect(locked.unlocked, 'the key lived in memory only').toBeNull();
      expect(locked.restore).toMatchObject({ phase: 'locked', id: cut.id });
      await again.getByTestId('restore').waitFor();
      expect(await again.getByTestId('restore').getAttribute('data-phase')).toBe('locked');
      await unlockViaPopup(again, backup.recoveryKey, 'recovery-key');
      await expect.poll(async () => (await workerStatus(again)).restore?.phase, { timeout: 120_000, interval: 500 }).toBe('done');
      const done = (await workerStatus(again)).restore!;
      expect(done).toMatchObject({ id: cut.id, restored: SESSIONS, alreadyPresent: 0, failed: 0 });
      expect((await workerStatus(again)).upload).toMatchObject({ stored: SESSIONS, pending: 0 });
    } finally {
      await ext?.close();
      ext = undefined;
      await slow.stop();
    }
  });
});
