/**
 * A real full disk under Chromium: the browser profile lives on a small tmpfs, which the test fills
 * while a key file is imported. (A storage quota cannot stand in: the extension holds
 * `unlimitedStorage`, and Chromium lets it write past an overridden quota — measured.) The import
 * page must say what happened in words, nothing stored before may be lost, and once there is room
 * the same import goes through and uploading goes on.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchExtension, type ExtensionBrowser } from '../harness/browser.ts';
import { createBackupViaPage, signInViaPopup, workerStatus } from '../harness/extension-ui.ts';
import { sharedSynapse } from '../harness/synapse-global.ts';
import { uniqueLocalpart } from '../harness/synapse.ts';
import { peerSessions } from '../harness/upload-rig.ts';
import { keyFileFromPeer } from '../peer/index.ts';

const SESSIONS = 3000;
const password = 'a long and unguessable password';
const passphrase = 'storage test passphrase';
const root = process.getuid?.() === 0;

function freeBytes(dir: string): number {
  const out = execFileSync('df', ['--output=avail', '-B1', dir], { encoding: 'utf8' });
  return Number(out.trim().split('\n').at(-1));
}

/** Fills the disk of `dir` until about `leave` bytes are free. */
function fillDisk(dir: string, leave: number): string {
  const filler = join(dir, 'filler.bin');
  const size = Math.max(0, freeBytes(dir) - leave);
  execFileSync('fallocate', ['-l', String(size), filler]);
  return filler;
}

describe.runIf(root)('a full disk under the browser profile (tmpfs; needs root to mount)', () => {
  const synapse = sharedSynapse();
  let mountDir: string;
  let ext: ExtensionBrowser;
  let tmp: string;
  let keyFile: string;

  beforeAll(async () => {
    mountDir = mkdtempSync(join(tmpdir(), 'mkv-tinydisk-'));
    // 160 MB: room for a fresh Chromium profile (≈ 20–40 MB), the filler takes the rest.
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=160m', 'tmpfs', mountDir]);
    mkdirSync(join(mountDir, 'profile'));
    tmp = mkdtempSync(join(tmpdir(), 'mkv-storage-'));
    keyFile = join(tmp, 'keys.txt');
    writeFileSync(keyFile, await keyFileFromPeer(await peerSessions(SESSIONS, 10), passphrase, 1000));
    ext = await launchExtension({ userDataDir: join(mountDir, 'profile') });
  });

  afterAll(async () => {
    await ext?.close();
    if (mountDir) {
      try { execFileSync('umount', ['-l', mountDir]); } catch { /* already gone */ }
      rmSync(mountDir, { recursive: true, force: true });
    }
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('says the disk is full, keeps what was stored, and imports everything once there is room', async () => {
    const localpart = uniqueLocalpart('disk');
    await synapse.registerUser(localpart, password);
    const popup = await signInViaPopup(ext, synapse.baseUrl, localpart, password);
    await createBackupViaPage(ext, popup);

    const filler = fillDisk(mountDir, 256 * 1024);
    const page = await ext.openPage('import.html');
    await page.getByTestId('file').setInputFiles(keyFile);
    await page.getByTestId('passphrase').fill(passphrase);
    await page.getByTestId('import').click();
    const alert = page.getByRole('alert').locator('[data-kind]');
    await alert.waitFor({ timeout: 120_000 });
    const kind = await alert.getAttribute('data-kind');
    const text = await alert.textContent();
    expect(['storage-full', 'storage-unavailable'], `${kind}: ${text}`).toContain(kind);
    expect(text).not.toMatch(/DOMException|Internal error|backing store/i);

    rmSync(filler);
    const stored = (await workerStatus(page)).upload.stored;
    expect(stored).toBeLessThan(SESSIONS);
    console.log(`storage e2e: with the disk full the import page said ${kind}: "${text}"; ${stored} of ${SESSIONS} were stored before`);
    await page.getByTestId('import').click();
    const result = page.getByTestId('result');
    await result.waitFor({ timeout: 120_000 });
    expect(Number(await result.getAttribute('data-stored')) + Number(await result.getAttribute('data-unchanged'))).toBe(SESSIONS);
    expect(Number(await result.getAttribute('data-unchanged')), 'what was stored before the disk filled is still there').toBe(stored);
    await expect.poll(async () => (await workerStatus(page)).upload.pending, { timeout: 120_000 }).toBe(0);
    expect((await workerStatus(page)).upload).toMatchObject({ stored: SESSIONS, serverCount: SESSIONS });
  });
});
