/**
 * The vault's contract, written once and run against every IndexedDB it must work on: fake-indexeddb
 * in Node (test/unit/vault.test.ts) and Chromium's real IndexedDB (test/e2e/vault-chromium.test.ts).
 * Plain functions with their own asserts, so the same bundle runs in a browser page without vitest.
 */
import { openToken, sealToken } from '../../src/platform/token-box.ts';
import type { StoredSession, Vault } from '../../src/platform/vault.ts';
import { applyChunk, newRestore, type RestoreFailureKind, type RestoreState } from '../../src/core/restore/state.ts';

export interface ContractCase {
  name: string;
  run(open: () => Promise<Vault>): Promise<void>;
}

class ContractFailure extends Error {}

function check(condition: unknown, message: string): asserts condition {
  if (!condition) throw new ContractFailure(message);
}

function equal<T>(actual: T, expected: T, what: string): void {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  check(a === e, `${what}: expected ${e}, got ${a}`);
}

const KEY_A = 'hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo';
const KEY_B = 'ZRuVWcWlDuvOwZRygccUCD4Avtnt130800I+WQNwwRY';

let revisions = 0;
function row(roomId: string, sessionId: string, firstMessageIndex: number, publicKey = KEY_A): StoredSession {
  return {
    roomId, sessionId, firstMessageIndex, publicKey,
    forwardedCount: 1,
    senderKey: 'sender',
    sessionData: { ephemeral: `e${firstMessageIndex}`, ciphertext: 'c', mac: 'm' },
    uploadedEpoch: 0,
    revision: ++revisions,
    storedAt: 0,
  };
}

function restoreState(id: string, publicKey = KEY_A): RestoreState {
  return newRestore({ id, userId: '@u:x', version: '1', publicKey, serverCount: 3, now: 0 });
}


/** Unpadded base64 of `length` bytes made from `seed`: the canonical text a row stores as bytes. */
function b64(seed: number, length: number): string {
  let text = '';
  for (let i = 0; i < length; i++) text += String.fromCharCode((seed * 31 + i * 7) & 0xff);
  return btoa(text).replace(/=+$/, '');
}

/** A session as a restore stores it: canonical base64 throughout, so it goes into a page. */
function packable(roomId: string, n: number, firstMessageIndex = 2, publicKey = KEY_A): StoredSession {
  return {
    roomId, sessionId: b64(n, 32), firstMessageIndex, publicKey,
    forwardedCount: n % 3,
    senderKey: b64(n + 7, 32),
    sessionData: { ephemeral: b64(n + 1, 32), ciphertext: b64(n + 2, 144 + (n % 5) * 16), mac: b64(n + 3, 8) },
    uploadedEpoch: 1,
    revision: ++revisions,
    storedAt: 1000 + n,
  };
}

const byKey = (a: { roomId: string; sessionId: string }, b: { roomId: string; sessionId: string }): number =>
  (a.roomId !== b.roomId ? (a.roomId < b.roomId ? -1 : 1) : a.sessionId < b.sessionId ? -1 : a.sessionId > b.sessionId ? 1 : 0);

export const vaultContract: ContractCase[] = [
  {
    name: 'counts kept by the writes match a fresh count, for totals and pending',
    async run(open) {
      const v = await open();
      await v.setPin({ userId: '@u:x', version: '1', publicKey: KEY_A, epoch: 1, source: 'proved', pinnedAt: 0 });
      equal([await v.countSessions(), await v.countPending(KEY_A, 1)], [0, 0], 'empty');
      await v.putSessions([row('!r:x', 'c1', 3), row('!r:x', 'c2', 0), row('!r:x', 'c3', 0, KEY_B)]);
      equal([await v.countSessions(), await v.countPending(KEY_A, 1)], [3, 2], 'after a put');
      await v.putSessions([row('!r:x', 'c1', 1)]); // a better copy replaces: same total, still pending
      const batch = await v.pendingBatch(KEY_A, 1, 10);
      await v.markUploaded(batch.slice(0, 1), 1);
      equal([await v.countSessions(), await v.countPending(KEY_A, 1)], [3, 1], 'after marking one uploaded');
      v.close();
      const fresh = await open(); // counts from scratch
      equal([await fresh.countSessions(), await fresh.countPending(KEY_A, 1)], [3, 1], 'a fresh count agrees');
      equal(await fresh.countForKey(KEY_B), 1, 'rows for an earlier key');
      fresh.close();
    },
  },
  {
    name: 'counts stay right when another connection writes (a killed worker\'s last write landing late)',
    async run(open) {
      const old = await open();
      const next = await open();
      await next.setPin({ userId: '@u:x', version: '1', publicKey: KEY_A, epoch: 1, source: 'proved', pinnedAt: 0 });
      equal([await next.countSessions(), await next.countPending(KEY_A, 1)], [0, 0], 'counted by the new worker');
      await old.putSessions([row('!r:x', 'late1', 0), row('!r:x', 'late2', 0)]);
      equal([await next.countSessions(), await next.countPending(KEY_A, 1)], [2, 2], 'the late write is counted');
      old.close();
      next.close();
    },
  },
  {
    name: 'a restore chunk stores, marks, fails and counts in one transaction, and not once cancelled',
    async run(open) {
      const v = await open();
      await v.setPin({ userId: '@u:x', version: '1', publicKey: KEY_A, epoch: 1, source: 'proved', pinnedAt: 0 });
      await v.putSessions([row('!r:x', 'held', 0)]);
      await v.startRestore(restoreState('R1'));
      const apply = (s: RestoreState, o: { restored: number; alreadyPresent: number; failures: RestoreFailureKind[]; rooms: number }) => applyChunk(s, o, 1);
      const written = await v.commitRestoreChunk('R1', {
        rows: [{ ...row('!r:x', 'new', 0), uploadedEpoch: 1 }], present: [{ roomId: '!r:x', sessionId: 'held', serverFirstMessageIndex: 0 }],
        failures: [{ roomId: '!r:x', sessionId: 'bad', restoreId: 'R1', kind: 'mac', reason: 'MAC' }], rooms: 1,
      }, apply);
      equal([written?.restored, written?.alreadyPresent, written?.failed, written?.failuresByKind.mac], [1, 1, 1, 1], 'counts');
      const lookup = await v.restoreLookup([['!r:x', 'new'], ['!r:x', 'held'], ['!r:x', 'bad'], ['!r:x', 'none']]);
      equal(lookup.map((l) => l.row?.restoreId ?? l.failedBy ?? null), ['R1', 'R1', 'R1', null], 'handled entries are marked');
      equal(await v.countPending(KEY_A, 1), 0, 'restored rows are not pending, nor is a held copy equal to the server\'s');
      const again = await v.commitRestoreChunk('R1', {
        rows: [{ ...row('!r:x', 'new', 0), uploadedEpoch: 1 }], present: [{ roomId: '!r:x', sessionId: 'held', serverFirstMessageIndex: 0 }],
        failures: [{ roomId: '!r:x', sessionId: 'bad', restoreId: 'R1', kind: 'mac', reason: 'MAC' }], rooms: 1,
      }, apply);
      equal([again?.restored, again?.alreadyPresent, again?.failed], [1, 1, 1], 'the same chunk written twice (a killed worker\'s late write) counts once');
      await v.updateRestore('R1', (s) => ({ ...s, phase: 'cancelled' }));
      equal(await v.commitRestoreChunk('R1', { rows: [row('!r:x', 'late', 0)], present: [], failures: [], rooms: 1 }, apply), null, 'nothing after cancel');
      equal(await v.countSessions(), 2, 'the late row was not stored');
      await v.startRestore(restoreState('R2'));
      equal((await v.restoreFailures(10)).length, 0, 'a new restore starts with no failures');
      v.close();
    },
  },
  {
    name: 'restored sessions (packed in pages) read, replace, upload again, count, export and erase like rows',
    async run(open) {
      const v = await open();
      const apply = (s: RestoreState, o: { restored: number; alreadyPresent: number; failures: RestoreFailureKind[]; rooms: number }) => applyChunk(s, o, 1);
      await v.setPin({ userId: '@old:x', version: '1', publicKey: KEY_A, epoch: 1, source: 'proved', pinnedAt: 0 });
      const held = { ...packable('!p:x', 500, 5), uploadedEpoch: 0 };
      await v.putSessions([held, row('!p:x', 'text-row', 0)]);
      await v.startRestore(restoreState('R1'));
      const chunk = [...Array.from({ length: 120 }, (_, n) => packable('!p:x', n)), ...Array.from({ length: 3 }, (_, n) => packable('!q:x', 200 + n)),
        { ...packable('!p:x', 500, 1) }]; // a better copy of the held row
      const written = await v.commitRestoreChunk('R1', { rows: chunk, present: [], failures: [], rooms: 2 }, apply);
      equal([written?.restored, written?.alreadyPresent], [124, 0], 'restored, one of them replacing a held row');
      const again = await v.commitRestoreChunk('R1', { rows: chunk, present: [], failures: [], rooms: 2 }, apply);
      equal([again?.restored, again?.alreadyPresent], [124, 0], 'the same chunk written twice counts once');
      const total = 125; // 124 restored and the text row
      equal([await v.countSessions(), await v.countPending(KEY_A, 1)], [total, 1], 'counts (only the text row is pending)');
      const stored = await v.getSessions(chunk.map((s) => [s.roomId, s.sessionId] as const));
      const fields = (s: StoredSession | undefined) => s && [s.roomId, s.sessionId, s.firstMessageIndex, s.forwardedCount, s.senderKey, s.publicKey,
        s.sessionData.ephemeral, s.sessionData.ciphertext, s.sessionData.mac, s.uploadedEpoch, s.revision, s.storedAt];
      const mismatch = chunk.findIndex((s, i) => JSON.stringify(fields(stored[i])) !== JSON.stringify(fields(s)));
      check(mismatch < 0, `restored session ${mismatch} reads back as given: ${JSON.stringify(fields(stored[mismatch]))}`);
      check(stored.every((s) => s?.restoreId === 'R1'), 'each marked as handled by the restore');
      equal((await v.restoreLookup([['!p:x', chunk[7]!.sessionId], ['!q:x', chunk[121]!.sessionId]])).map((l) => [l.row?.restoreId, l.row?.firstMessageIndex]), [['R1', 2], ['R1', 2]], 'the restore finds them');
      const copies = await v.storedCopies([['!p:x', chunk[3]!.sessionId]]);
      equal([...copies.values()], [{ firstMessageIndex: 2, publicKey: KEY_A }], 'stored copies');

      // The export walks every session once, in key order, however small its steps.
      const walked: string[] = [];
      let after: [string, string] | null = null;
      for (;;) {
        const batch = await v.sessionsAfter(after, 7);
        walked.push(...batch.map((s) => `${s.roomId} ${s.sessionId}`));
        if (batch.length < 7) break;
        after = [batch.at(-1)!.roomId, batch.at(-1)!.sessionId];
      }
      const expected = [...chunk, row('!p:x', 'text-row', 0)].sort(byKey).map((s) => `${s.roomId} ${s.sessionId}`);
      equal(walked, expected, 'the export walk');
      equal((await v.roomsHeldFor(KEY_A)).sort(), ['!p:x', '!q:x'], 'rooms held');

      // A better copy of a packed session replaces it; a worse one is kept out.
      const better = { ...packable('!p:x', 9, 0), uploadedEpoch: 0 };
      equal(await v.putSessions([better, { ...packable('!p:x', 10, 4), uploadedEpoch: 0 }]), ['stored', 'kept'], 'better stored, worse kept');
      equal((await v.getSession('!p:x', better.sessionId))?.firstMessageIndex, 0, 'the better copy is the one read');
      equal([await v.countSessions(), await v.countPending(KEY_A, 1)], [total, 2], 'counts after replacing');

      // A new backup version: every restored session is pending again, and uploads one batch at a time.
      await v.setPin({ userId: '@old:x', version: '2', publicKey: KEY_A, epoch: 2, source: 'proved', pinnedAt: 0 });
      equal(await v.countPending(KEY_A, 2), total, 'all pending for the new epoch');
      const batch = await v.pendingBatch(KEY_A, 2, 60);
      equal(batch.length, 60, 'a batch of 60');
      equal(new Set(batch.map((s) => `${s.roomId} ${s.sessionId}`)).size, 60, 'distinct');
      equal(await v.markUploaded(batch, 2), 60, 'marked');
      equal(await v.countPending(KEY_A, 2), total - 60, 'pending after one batch');
      let rest = 0;
      for (;;) {
        const next = await v.pendingBatch(KEY_A, 2, 25);
        if (next.length === 0) break;
        rest += await v.markUploaded(next, 2);
      }
      equal(rest, total - 60, 'the rest, batch by batch, each once');
      v.close();
      const fresh = await open(); // counted from scratch: no session is in two places
      equal([await fresh.countSessions(), await fresh.countPending(KEY_A, 2), await fresh.countForKey(KEY_A)], [total, 0, total], 'a fresh count agrees');
      equal((await fresh.keysForPublicKey(KEY_A)).length, total, 'keys for the public key');
      equal((await fresh.getSession('!p:x', chunk[50]!.sessionId))?.uploadedEpoch, 2, 'uploaded at the new epoch');

      // Another account's keys: erased, pages and rows.
      await fresh.setPinAndUploadState({ userId: '@new:x', version: '3', publicKey: KEY_B, epoch: 3, source: 'proved', pinnedAt: 0 }, await fresh.getUploadState());
      await fresh.startRestore(restoreState('R2', KEY_B));
      await fresh.commitRestoreChunk('R2', { rows: [packable('!z:x', 900, 0, KEY_B)], present: [], failures: [], rooms: 1 }, apply);
      await fresh.startRestore(restoreState('R3'));
      equal(await fresh.eraseKeysOf('@old:x', 40), total, 'erased');
      equal([await fresh.countSessions(), await fresh.countForKey(KEY_A)], [1, 0], 'only the other key\'s session is left');
      fresh.close();
    },
  },
  {
    name: 'a new vault is empty',
    async run(open) {
      const v = await open();
      check((await v.getAccount()) === undefined, 'no account');
      check((await v.getPin()) === undefined, 'no pin');
      equal((await v.getUploadState()).attempt, 0, 'upload attempt');
      equal(await v.countSessions(), 0, 'sessions');
      v.close();
    },
  },
  {
    name: 'keeps the best copy of each session and says what it did',
    async run(open) {
      const v = await open();
      equal(await v.putSessions([row('!r:x', 's1', 5), row('!r:x', 's2', 0)]), ['stored', 'stored'], 'first put');
      equal(await v.putSessions([row('!r:x', 's1', 5)]), ['kept'], 'same copy again');
      equal(await v.putSessions([row('!r:x', 's1', 9)]), ['kept'], 'worse copy');
      equal(await v.putSessions([row('!r:x', 's1', 2)]), ['stored'], 'better copy');
      equal(await v.putSessions([row('!r:x', 's3', 4), row('!r:x', 's3', 1), row('!r:x', 's3', 3)]), ['stored', 'stored', 'kept'], 'duplicates in one call');
      const copies = await v.storedCopies([['!r:x', 's1'], ['!r:x', 's3'], ['!r:x', 'missing']]);
      equal([...copies.values()].map((c) => c.firstMessageIndex), [2, 1], 'stored indexes');
      equal(await v.countSessions(), 3, 'sessions');
      v.close();
    },
  },
  {
    name: 'a copy for another key replaces one it cannot upload',
    async run(open) {
      const v = await open();
      await v.putSessions([row('!r:x', 's1', 0, KEY_B)]);
      equal(await v.putSessions([row('!r:x', 's1', 3, KEY_A)]), ['stored'], 'copy for the current key');
      equal(await v.countPending(KEY_A, 1), 1, 'pending for A');
      equal(await v.countPending(KEY_B, 1), 0, 'nothing left for B');
      v.close();
    },
  },
  {
    name: 'pending batches come room by room, limited, for one key only',
    async run(open) {
      const v = await open();
      const rows = [];
      for (let i = 0; i < 30; i++) rows.push(row(`!room${i % 3}:x`, `s${String(i).padStart(2, '0')}`, 0));
      rows.push(row('!other:x', 'b1', 0, KEY_B));
      await v.putSessions(rows);
      const batch = await v.pendingBatch(KEY_A, 1, 12);
      equal(batch.length, 12, 'batch size');
      check(batch.every((s) => s.publicKey === KEY_A), 'only sessions for the key');
      const rooms = batch.map((s) => s.roomId);
      equal(rooms, [...rooms].sort(), 'ordered by room');
      equal(await v.countPending(KEY_A, 1), 30, 'pending count');
      v.close();
    },
  },
  {
    name: 'marking uploaded skips rows replaced meanwhile',
    async run(open) {
      const v = await open();
      await v.putSessions([row('!r:x', 'a', 4), row('!r:x', 'b', 4)]);
      const batch = await v.pendingBatch(KEY_A, 1, 10);
      await v.putSessions([row('!r:x', 'b', 0)]); // a better copy arrives while the batch is in flight
      equal(await v.markUploaded(batch, 1), 1, 'marked');
      const left = await v.pendingBatch(KEY_A, 1, 10);
      equal(left.map((s) => [s.sessionId, s.firstMessageIndex]), [['b', 0]], 'still pending');
      equal(await v.markUploaded(batch, 1), 0, 'marking twice changes nothing');
      v.close();
    },
  },
  {
    name: 'a connection that has not seen a public key numbered yet reads, marks and counts rows under it',
    async run(open) {
      const writer = await open();
      const other = await open(); // opened before the keys were numbered: its list is empty
      await writer.putSessions([row('!r:x', 'a', 0), row('!r:x', 'b', 0, KEY_B)]);
      const batch = await writer.pendingBatch(KEY_A, 1, 10);
      equal(await other.markUploaded(batch, 1), 1, 'marked through the other connection');
      equal((await other.getSessions([['!r:x', 'a'], ['!r:x', 'b']])).map((s) => s?.publicKey), [KEY_A, KEY_B], 'keys named');
      equal([await other.countPending(KEY_A, 1), await other.countForKey(KEY_B)], [0, 1], 'counts');
      const copies = await writer.storedCopies([['!r:x', 'b']]);
      equal([...copies.values()].map((c) => c.publicKey), [KEY_B], 'stored copies');
      writer.close();
      other.close();
    },
  },
  {
    name: 'a new epoch makes every session pending without rewriting rows',
    async run(open) {
      const v = await open();
      await v.putSessions([row('!r:x', 'a', 0), row('!r:x', 'b', 0)]);
      await v.markUploaded(await v.pendingBatch(KEY_A, 1, 10), 1);
      equal(await v.countPending(KEY_A, 1), 0, 'none pending at epoch 1');
      equal(await v.countPending(KEY_A, 2), 2, 'all pending at epoch 2');
      await v.markUploaded(await v.pendingBatch(KEY_A, 2, 10), 2);
      equal(await v.countPending(KEY_A, 2), 0, 'none pending after upload at epoch 2');
      v.close();
    },
  },
  {
    name: 'pin and upload state round-trip, together',
    async run(open) {
      const v = await open();
      const pin = { userId: '@a:x', version: '1', publicKey: KEY_A, epoch: 1, source: 'proved' as const, pinnedAt: 5 };
      await v.setPinAndUploadState(pin, { ...(await v.getUploadState()), attempt: 3, retryAt: 42 });
      equal(await v.getPin(), pin, 'pin');
      const state = await v.getUploadState();
      equal([state.attempt, state.retryAt], [3, 42], 'upload state');
      v.close();
    },
  },
  {
    name: 'data survives closing and reopening',
    async run(open) {
      const v = await open();
      await v.putSessions([row('!r:x', 'kept', 0)]);
      v.close();
      const again = await open();
      equal(await again.countSessions(), 1, 'sessions after reopen');
      again.close();
    },
  },
  {
    name: 'the access token is sealed with a non-extractable key and opens again',
    async run(open) {
      const v = await open();
      const token = 'syt_dGVzdA_secret_token_value_1234';
      const sealed = await sealToken(v, token);
      const text = new TextDecoder('latin1').decode(sealed.ciphertext);
      check(!text.includes('secret_token'), 'ciphertext hides the token');
      const key = await v.tokenKey();
      check(key.extractable === false, 'token key is not extractable');
      equal(await openToken(v, sealed), token, 'opened token');
      v.close();
      const again = await open();
      equal(await openToken(again, sealed), token, 'opened with the stored key after reopening');
      again.close();
    },
  },
  {
    name: 'stores ten thousand sessions in one call',
    async run(open) {
      const v = await open();
      const rows = [];
      for (let i = 0; i < 10_000; i++) rows.push(row(`!room${i % 50}:x`, `session-${i}`, i % 7));
      const outcomes = await v.putSessions(rows);
      equal(outcomes.filter((o) => o === 'stored').length, 10_000, 'stored');
      equal(await v.countPending(KEY_A, 1), 10_000, 'pending');
      v.close();
    },
  },
];

/** Runs every case on fresh databases; returns the failures (empty when the contract holds). */
export async function runVaultContract(openNamed: (name: string) => Promise<Vault>): Promise<Array<{ name: string; error: string }>> {
  const failures: Array<{ name: string; error: string }> = [];
  let n = 0;
  for (const c of vaultContract) {
    const dbName = `vault-contract-${Date.now()}-${n++}`;
    try {
      await c.run(() => openNamed(dbName));
    } catch (e) {
      failures.push({ name: c.name, error: e instanceof Error ? e.message : String(e) });
    }
  }
  return failures;
}
