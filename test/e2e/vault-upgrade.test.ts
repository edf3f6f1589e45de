/**
 * An extension update that finds a large vault of the previous schema: the worker upgrades it when
 * it starts (migration 3 rewrites every row, 42–48 s for 10⁵ here), longer than the 30 s a worker
 * may idle, and answers the message that woke it once it is done, with every row there. (That
 * pending message held the worker here even without the worker's own keep-alive while the vault
 * opens, so this does not test that keep-alive.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchExtension, type ExtensionBrowser } from '../harness/browser.ts';

const ROWS = 100_000;

describe('a schema-2 vault of 100,000 sessions, found by the worker at start', () => {
  let ext: ExtensionBrowser;
  beforeAll(async () => { ext = await launchExtension(); });
  afterAll(async () => { await ext?.close(); });

  it('is upgraded by one worker, which lives through it, and everything is counted', async () => {
    // A page of the extension's origin that runs no script of its own (so nothing wakes the worker).
    const page = await ext.context.newPage();
    await page.goto(`chrome-extension://${ext.extensionId}/manifest.json`);
    const cdp = await ext.context.newCDPSession(page);
    await cdp.send('ServiceWorker.enable');
    // The vault the worker made at its start goes, once no worker holds it open: a worker woken
    // again meanwhile (by anything) is stopped again, at most a few times.
    for (let attempt = 1; ; attempt++) {
      await cdp.send('ServiceWorker.stopAllWorkers');
      const deleted = await page.evaluate(() => new Promise<string>((ok) => {
        const deleting = indexedDB.deleteDatabase('matrix-key-vault');
        const timer = setTimeout(() => ok('blocked'), 5_000);
        deleting.onsuccess = () => { clearTimeout(timer); ok('deleted'); };
        deleting.onerror = () => { clearTimeout(timer); ok(`failed: ${String(deleting.error)}`); };
      }));
      if (deleted === 'deleted') break;
      console.log(`vault upgrade: deleting the worker's vault, attempt ${attempt}: ${deleted}`);
      if (attempt >= 5) throw new Error(`the worker's vault could not be deleted: ${deleted}`);
    }
    await cdp.detach();
    const fillStarted = Date.now();
    const filled = await page.evaluate(async (n) => {
      const req = <T>(r: IDBRequest<T>) => new Promise<T>((ok, fail) => { r.onsuccess = () => ok(r.result); r.onerror = () => fail(r.error); });
      // Schema 2 as release 0.1.0 made it (src/platform/vault.ts, migrations 1 and 2).
      const open = indexedDB.open('matrix-key-vault', 2);
      open.onupgradeneeded = () => {
        const db = open.result;
        db.createObjectStore('sessions', { keyPath: ['roomId', 'sessionId'] }).createIndex('pending', ['publicKey', 'uploadedEpoch']);
        db.createObjectStore('kv');
        db.createObjectStore('restoreFailures', { keyPath: ['roomId', 'sessionId'] });
      };
      const db = await req(open);
      const b64 = (len: number): string => btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(len)))).replace(/=+$/, '');
      const publicKey = b64(32);
      for (let i = 0; i < n; i += 2000) {
        const tx = db.transaction(['sessions', 'kv'], 'readwrite');
        for (let j = i; j < Math.min(n, i + 2000); j++) {
          tx.objectStore('sessions').put({
            roomId: `!room${j % 100}:localhost`, sessionId: b64(32), firstMessageIndex: 0, forwardedCount: 1, senderKey: b64(32), publicKey,
            sessionData: { ephemeral: b64(32), ciphertext: b64(480), mac: b64(8) }, uploadedEpoch: j % 4 === 0 ? 0 : 1, revision: crypto.randomUUID(), storedAt: 0,
          });
        }
        if (i === 0) tx.objectStore('kv').put({ userId: '@u:localhost', version: '1', publicKey, epoch: 1, source: 'proved', pinnedAt: 0 }, 'pin');
        await new Promise((ok, fail) => { tx.oncomplete = ok; tx.onerror = () => fail(tx.error); });
      }
      db.close();
      return n;
    }, ROWS);
    expect(filled).toBe(ROWS);
    console.log(`vault upgrade: ${ROWS} rows of schema 2 written in ${((Date.now() - fillStarted) / 1000).toFixed(1)} s`);

    // One message wakes the worker; its answer waits for the vault. Nothing else is sent meanwhile.
    const started = Date.now();
    const answer = await page.evaluate(() => chrome.runtime.sendMessage({ type: 'status.get' })) as
      { ok: boolean; value: { worker: { bootId: string }; upload: { stored: number; pending: number } } };
    const seconds = (Date.now() - started) / 1000;
    console.log(`vault upgrade: ${ROWS} rows of schema 2 opened in ${seconds.toFixed(1)} s`);
    expect(answer.ok).toBe(true);
    expect(answer.value.upload).toMatchObject({ stored: ROWS, pending: ROWS / 4 });
    // The same worker answers again at once: it was not ended and started over during the upgrade.
    const again = await page.evaluate(() => chrome.runtime.sendMessage({ type: 'status.get' })) as { value: { worker: { bootId: string } } };
    expect(again.value.worker.bootId).toBe(answer.value.worker.bootId);
  }, 300_000);
});
