/**
 * A worker stopped while it answers a page does not break the page: the import page sends its key
 * file's sessions in chunks, the service worker is stopped again and again while it stores them,
 * and the import still finishes with every session stored once, without the browser's raw "message
 * channel closed" or "Receiving end does not exist" on the page (src/platform/messaging.ts sends
 * the chunk again; storing a session twice is harmless).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchExtension, type ExtensionBrowser } from '../harness/browser.ts';
import { createBackupViaPage, signInViaPopup, workerStatus } from '../harness/extension-ui.ts';
import { sharedSynapse } from '../harness/synapse-global.ts';
import { uniqueLocalpart, type SynapseUser } from '../harness/synapse.ts';
import { peerSessions } from '../harness/upload-rig.ts';
import { keyFileFromPeer } from '../peer/index.ts';

const SESSIONS = 4000; // 8 chunks of 500
const MAX_KILLS = 6;
const password = 'a long and unguessable password';
const passphrase = 'import kill passphrase';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const RAW_BROWSER_ERROR = /listener indicated|message channel|Receiving end|Could not establish|message port/i;

describe('a worker stopped while it stores an import chunk', () => {
  const synapse = sharedSynapse();
  let tmp: string;
  let keyFile: string;
  let ext: ExtensionBrowser;
  let user: SynapseUser;

  beforeAll(async () => {
    user = await synapse.registerUser(uniqueLocalpart('import-kill'), password);
    tmp = mkdtempSync(join(tmpdir(), 'mkv-import-kill-'));
    keyFile = join(tmp, 'keys.txt');
    writeFileSync(keyFile, await keyFileFromPeer(await peerSessions(SESSIONS, 20), passphrase, 10_000));
    ext = await launchExtension();
  });

  afterAll(async () => {
    await ext?.close();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('signs in and creates a backup', async () => {
    const popup = await signInViaPopup(ext, synapse.baseUrl, user.userId, password);
    await createBackupViaPage(ext, popup);
    await popup.close();
  });

  it('the import goes on and stores every session once; the page shows no browser error', async () => {
    const probe = await ext.openPage('popup.html');
    const bootIds = new Set([(await workerStatus(probe)).worker.bootId]);
    const page = await ext.openPage('import.html');
    await page.getByTestId('file').setInputFiles(keyFile);
    await page.getByTestId('passphrase').fill(passphrase);
    // Count the answers the browser lost (the page's own sends are wrapped): proof a stop hit a request in flight.
    await page.evaluate(() => {
      const w = globalThis as unknown as { __lost: number; browser: { runtime: { sendMessage: (m: unknown) => Promise<unknown> } } };
      const send = w.browser.runtime.sendMessage.bind(w.browser.runtime);
      w.__lost = 0;
      w.browser.runtime.sendMessage = (m: unknown) => send(m).catch((e: unknown) => { w.__lost++; throw e; });
    });
    await page.getByTestId('import').click();

    // Stop the worker while chunks are being stored, with time between stops for a chunk to get through.
    const result = page.getByTestId('result');
    const alert = page.locator('[role=alert]');
    let kills = 0;
    const deadline = Date.now() + 180_000;
    while (!(await result.isVisible()) && !(await alert.isVisible())) {
      if (Date.now() > deadline) throw new Error(`the import did not finish: ${await page.locator('main').innerText()}`);
      const progress = (await page.getByTestId('progress').textContent().catch(() => null)) ?? '';
      if (kills < MAX_KILLS && progress.startsWith('Storing keys')) {
        await ext.stopWorker();
        kills++;
        await sleep(700 + Math.random() * 500);
      } else {
        await sleep(50);
      }
    }

    const text = await page.locator('main').innerText();
    expect(text).not.toMatch(RAW_BROWSER_ERROR);
    expect(await alert.count(), `no error on the page: ${text}`).toBe(0);
    expect(kills, 'the worker was stopped while the import ran').toBeGreaterThanOrEqual(3);
    expect(await page.evaluate(() => (globalThis as unknown as { __lost: number }).__lost), 'answers lost to a stop').toBeGreaterThan(0);

    const stored = Number(await result.getAttribute('data-stored'));
    const unchanged = Number(await result.getAttribute('data-unchanged'));
    expect(Number(await result.getAttribute('data-rejected'))).toBe(0);
    // A chunk stored before its answer was lost counts as "already held" the second time.
    expect(stored + unchanged).toBe(SESSIONS);

    const status = await workerStatus(probe);
    bootIds.add(status.worker.bootId);
    expect(bootIds.size, 'a new worker answers after the stops').toBeGreaterThan(1);
    expect(status.upload.stored, 'every session is in the vault once').toBe(SESSIONS);
  });
});
