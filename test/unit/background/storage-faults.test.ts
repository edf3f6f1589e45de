/**
 * Storage faults the browser cannot easily produce on demand, injected under fake-indexeddb: a full
 * disk (QuotaExceededError) during an import, during upload bookkeeping and during a restore, and a
 * database that fails to open. Each gives a clear message, loses nothing already stored, and the
 * work goes on once there is room again. (A real quota in Chromium: test/e2e/storage-quota.test.ts.)
 */
import 'fake-indexeddb/auto';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { backupPublicKey } from '../../../src/core/index.ts';
import { newRestore, type RestoreState } from '../../../src/core/restore/state.ts';
import { route } from '../../../src/background/router.ts';
import { createServices, type Services } from '../../../src/background/services.ts';
import { toWireError } from '../../../src/background/errors.ts';
import { memoryUnlockStore } from '../../../src/platform/unlock-store.ts';
import { Vault } from '../../../src/platform/vault.ts';
import { freshVault, peerSessions, randomKey } from '../../harness/upload-rig.ts';
import type { ExportedSessionData } from '../../peer/index.ts';
import { memorySitePlatform } from '../../harness/memory-sites.ts';

/**
 * While set, a put into the `sessions` or `packed` store fails the way a full disk does in a browser: the
 * request and its transaction error with QuotaExceededError, and the transaction is aborted, so
 * nothing of it is written.
 */
let diskFull = false;
const realPut = IDBObjectStore.prototype.put;
const failing = new WeakSet<IDBTransaction>();
IDBObjectStore.prototype.put = function put(this: IDBObjectStore, ...args: Parameters<IDBObjectStore['put']>) {
  const request = realPut.apply(this, args);
  if (diskFull && (this.name === 'sessions' || this.name === 'packed')) {
    const quota = new DOMException('The quota has been exceeded.', 'QuotaExceededError');
    // fake-indexeddb sets AbortError on both when aborting; a browser reports the quota.
    Object.defineProperty(request, 'error', { get: () => quota, set: () => {}, configurable: true });
    const tx = this.transaction;
    if (!failing.has(tx)) {
      failing.add(tx);
      Object.defineProperty(tx, 'error', { get: () => quota, set: () => {}, configurable: true });
      // Like a browser, after the requests already made in this task (a disk fills up on writing),
      // or when the transaction is committed (see below), whichever comes first.
      queueMicrotask(() => { if (!aborted.has(tx)) abort(tx); });
    }
  }
  return request;
} as IDBObjectStore['put'];
const aborted = new WeakSet<IDBTransaction>();
function abort(tx: IDBTransaction): void {
  aborted.add(tx);
  tx.abort();
}
// An explicit commit of such a transaction fails the same way: it is aborted instead.
const realCommit = IDBTransaction.prototype.commit;
IDBTransaction.prototype.commit = function commit(this: IDBTransaction) {
  if (failing.has(this)) abort(this);
  else realCommit.call(this);
};

afterEach(() => { diskFull = false; });

let sessions: ExportedSessionData[];
let publicKey: string;
beforeAll(async () => {
  sessions = await peerSessions(300, 3);
  publicKey = await backupPublicKey(randomKey());
});

function services(vault: Vault): Services {
  return createServices(vault, {
    sitePlatform: memorySitePlatform(),
    scheduleWake: async () => {}, scheduleRestoreWake: async () => {}, unlockStore: memoryUnlockStore(), keepAlive: async () => {},
    report: () => {}, worker: () => ({ product: 'Matrix Key Vault', version: 't', bootId: 'b', startedAt: 0 }),
  });
}

describe('a full disk', () => {
  it('refuses an import chunk with a message to act on, keeps what was stored, and takes the chunk once there is room', async () => {
    const vault = await freshVault();
    await vault.setPin({ userId: '@u:x', version: '1', publicKey, epoch: 1, source: 'created', pinnedAt: 0 });
    const s = services(vault);
    expect(await route(s, { type: 'sessions.import', sessions: sessions.slice(0, 100) })).toMatchObject({ ok: true, value: { stored: 100 } });
    diskFull = true;
    const refused = await route(s, { type: 'sessions.import', sessions: sessions.slice(100, 200) });
    expect(refused).toMatchObject({ ok: false, error: { kind: 'storage-full', message: expect.stringMatching(/no more room.*Nothing stored so far was lost/s) } });
    expect(await vault.countSessions()).toBe(100);
    expect(await vault.countPending(publicKey, 1)).toBe(100);
    diskFull = false;
    expect(await route(s, { type: 'sessions.import', sessions: sessions.slice(100, 200) })).toMatchObject({ ok: true, value: { stored: 100 } });
    expect(await vault.countSessions()).toBe(200);
    expect(await vault.countPending(publicKey, 1)).toBe(200);
  });

  it('stops upload bookkeeping without losing the pending sessions, says so in the status, and resumes', async () => {
    const vault = await freshVault();
    await vault.setPin({ userId: '@u:x', version: '1', publicKey, epoch: 1, source: 'created', pinnedAt: 0 });
    await route(services(vault), { type: 'sessions.import', sessions: sessions.slice(0, 50) });
    const batch = await vault.pendingBatch(publicKey, 1, 50);
    diskFull = true;
    expect(toWireError(await vault.markUploaded(batch, 1).catch((e: unknown) => e))).toMatchObject({ kind: 'storage-full' });
    diskFull = false;
    expect(await vault.countPending(publicKey, 1), 'still pending: uploaded again later, which is harmless').toBe(50);
    expect(await vault.markUploaded(batch, 1)).toBe(50);
    expect(await vault.countPending(publicKey, 1)).toBe(0);
  });

  it('writes a restore chunk and its counts together or not at all, and takes it once there is room', async () => {
    const vault = await freshVault();
    const pk = await backupPublicKey(randomKey());
    await vault.setPin({ userId: '@u:x', version: '1', publicKey: pk, epoch: 1, source: 'proved', pinnedAt: 0 });
    await vault.startRestore(newRestore({ id: 'r', userId: '@u:x', version: '1', publicKey: pk, serverCount: 1, now: 0 }));
    const row = {
      roomId: '!r:x', sessionId: 's', firstMessageIndex: 0, forwardedCount: 1, senderKey: 'k', publicKey: pk,
      sessionData: { ephemeral: 'e', ciphertext: 'c', mac: 'm' }, uploadedEpoch: 1, revision: 1, storedAt: 0,
    };
    const chunk = { rows: [row], present: [], failures: [], rooms: 1 };
    const count = (st: RestoreState, o: { restored: number }) => ({ ...st, restored: st.restored + o.restored });
    diskFull = true;
    const refused = await vault.commitRestoreChunk('r', chunk, count).catch((e: unknown) => e);
    expect(toWireError(refused)).toMatchObject({ kind: 'storage-full' });
    expect(await vault.countSessions()).toBe(0);
    expect((await vault.getRestoreState())?.restored, 'the chunk and its counts went together: neither').toBe(0);
    diskFull = false;
    expect(await vault.commitRestoreChunk('r', chunk, count)).toMatchObject({ restored: 1 });
    expect(await vault.countSessions()).toBe(1);
  });

  it('keeps the storage problem of a background run for the status, and clears it when a run gets through', async () => {
    const vault = await freshVault();
    await vault.setPin({ userId: '@u:x', version: '1', publicKey, epoch: 1, source: 'created', pinnedAt: 0 });
    await route(services(vault), { type: 'sessions.import', sessions: sessions.slice(0, 20) });
    const s = createServices(vault, {
      sitePlatform: memorySitePlatform(),
      scheduleWake: async () => {}, scheduleRestoreWake: async () => {}, unlockStore: memoryUnlockStore(), keepAlive: async () => {},
      report: () => {}, worker: () => ({ product: 'Matrix Key Vault', version: 't', bootId: 'b', startedAt: 0 }),
    });
    // No account: the upload driver stops at "signed out" without writing; make a write fail instead.
    s.driver.run = async () => { throw new DOMException('The quota has been exceeded.', 'QuotaExceededError'); };
    s.kickUpload();
    await new Promise((r) => setTimeout(r, 10));
    expect(s.storageProblem()).toMatchObject({ kind: 'storage-full' });
    const status = await route(s, { type: 'status.get' });
    expect(status).toMatchObject({ ok: true, value: { storage: { kind: 'storage-full' } } });
    s.driver.run = async () => 'idle';
    s.kickUpload();
    await new Promise((r) => setTimeout(r, 10));
    expect(s.storageProblem()).toBeNull();
  });
});

describe('a database that cannot be used', () => {
  it('names the failure instead of passing on a raw DOMException', () => {
    expect(toWireError(new DOMException('Internal error opening backing store for indexedDB.open.', 'UnknownError')))
      .toMatchObject({ kind: 'storage-unavailable', message: expect.stringMatching(/could not read or write this extension's data just now.*Nothing stored so far was lost/) });
    expect(toWireError(new DOMException('Internal error opening backing store for indexedDB.open.', 'UnknownError')).message).not.toMatch(/backing store/);
    expect(toWireError(new DOMException('The transaction was aborted.', 'AbortError'))).toMatchObject({ kind: 'storage-unavailable' });
    expect(toWireError(new TypeError('a bug'))).toMatchObject({ kind: 'internal' });
  });
});
