/**
 * Unlock and restore as the worker does them, in Node against a real Synapse: a backup written by
 * Element's crypto, with secret storage written the way Element writes it. Every way of unlocking,
 * every bad input with its own message, a restore of every entry (corrupt ones counted by reason),
 * resumption after interrupted downloads without decrypting anything twice, and one session on demand.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { createBackupDecryptor, encodeRecoveryKey, parseExportedSession } from '../../src/core/index.ts';
import { signInWithPassword, requireClient } from '../../src/background/account.ts';
import { RestoreDriver, type RestoreServer } from '../../src/background/restore-driver.ts';
import { restoreServer } from '../../src/background/services.ts';
import { SessionFetcher } from '../../src/background/session-fetch.ts';
import { AttemptLimiter, unlockVault } from '../../src/background/unlock.ts';
import { exportBatch, moveEarlierSessions } from '../../src/background/keys-out.ts';
import { ingestSessions } from '../../src/background/ingest.ts';
import { vaultStatus } from '../../src/background/status.ts';
import { route } from '../../src/background/router.ts';
import { createServices } from '../../src/background/services.ts';
import type { HomeserverClient } from '../../src/platform/homeserver.ts';
import { memoryUnlockStore, type UnlockStore } from '../../src/platform/unlock-store.ts';
import type { Vault } from '../../src/platform/vault.ts';
import { createPeerWrittenBackup, putCorruptEntries, writeElementSecretStorage, type PeerWrittenBackup } from '../harness/peer-backup.ts';
import { sharedSynapse } from '../harness/synapse-global.ts';
import { uniqueLocalpart } from '../harness/synapse.ts';
import { freshVault, peerSessions, randomKey } from '../harness/upload-rig.ts';
import { memorySitePlatform } from '../harness/memory-sites.ts';

const synapse = sharedSynapse();
const password = 'correct horse battery';

async function signedIn() {
  const localpart = uniqueLocalpart('restore');
  await synapse.registerUser(localpart, password);
  const vault = await freshVault();
  await signInWithPassword(vault, synapse.serverName, localpart, password);
  const { client, userId } = await requireClient(vault);
  return { vault, client, userId, store: memoryUnlockStore(), limiter: new AttemptLimiter(() => 0) };
}

type Account = Awaited<ReturnType<typeof signedIn>> & { limiter: AttemptLimiter };

function unlock(a: Account, input: string) {
  return unlockVault({ vault: a.vault, client: a.client, userId: a.userId, store: a.store, limiter: a.limiter, now: Date.now }, input);
}

/** The driver as the worker wires it, with a clock the test moves instead of waiting for alarms. */
function driverFor(vault: Vault, store: UnlockStore, server: RestoreServer) {
  let skew = 0;
  const wakes: Array<number | null> = [];
  const driver = new RestoreDriver({
    vault, server: async () => server, unlocked: () => store.get(),
    scheduleWake: async (at) => { wakes.push(at); }, keepAlive: async () => {},
    now: () => Date.now() + skew, random: () => 0.5, newId: () => crypto.randomUUID(), chunkSize: 250, idleTimeoutMs: 10_000, byRoomFrom: Infinity, roomsAhead: 2,
  });
  return {
    driver,
    async runUntilSettled(max = 20) {
      for (let i = 0; i < max; i++) {
        const outcome = await driver.run();
        if (outcome !== 'waiting') return outcome;
        const state = await vault.getRestoreState();
        skew += Math.max(0, (state?.retryAt ?? 0) - (Date.now() + skew)) + 1;
      }
      throw new Error('the restore did not settle');
    },
  };
}

/** A server whose downloads break off after `cutAfterBytes` (once per entry in the list). */
function interrupting(client: HomeserverClient, cuts: number[]): RestoreServer & { downloads: number } {
  const base = restoreServer(client);
  const wrapped = {
    downloads: 0,
    currentBackup: base.currentBackup,
    async streamKeys(version: string) {
      wrapped.downloads++;
      const stream = await base.streamKeys(version);
      const cut = cuts.shift();
      if (cut === undefined) return stream;
      let seen = 0;
      return stream.pipeThrough(new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          if (seen + chunk.length > cut) {
            controller.enqueue(chunk.subarray(0, Math.max(0, cut - seen)));
            controller.error(new TypeError('network error'));
            return;
          }
          seen += chunk.length;
          controller.enqueue(chunk);
        },
      }));
    },
  };
  return wrapped;
}

describe('unlock', () => {
  let a: Account;
  let backup: PeerWrittenBackup;
  let securityKey: string;
  const phrase = 'my cat eats green bananas every day';

  beforeAll(async () => {
    a = await signedIn();
    backup = await createPeerWrittenBackup(a.client, { sessions: 20 });
    ({ securityKey } = await writeElementSecretStorage(a.client, a.userId, backup.privateKey, { passphrase: phrase }));
  });

  it('takes a Security Key, a Security Phrase and the raw backup key; pins the proved key and keeps the private key in session storage only', async () => {
    expect(await a.vault.getPin()).toBeUndefined();
    await expect(unlock(a, securityKey)).resolves.toMatchObject({ version: backup.version, via: 'security-key', publicKey: backup.publicKey });
    const pin = await a.vault.getPin();
    expect(pin).toMatchObject({ version: backup.version, publicKey: backup.publicKey, source: 'proved' });
    expect((await a.store.get())?.privateKey).toBeTruthy();
    await expect(unlock(a, phrase)).resolves.toMatchObject({ via: 'security-phrase' });
    await expect(unlock(a, backup.recoveryKey)).resolves.toMatchObject({ via: 'recovery-key' });
    expect((await a.vault.getPin())?.epoch, 'proving the same key again re-sends nothing').toBe(pin!.epoch);
  });

  it('gives each bad input its own message and keeps nothing', async () => {
    const b = await signedIn();
    const own = await createPeerWrittenBackup(b.client, { sessions: 2 });
    const other = encodeRecoveryKey(randomKey());
    const cases: Array<[string, string, RegExp]> = [
      ['', 'empty-input', /Enter your Security Key/],
      ['   \n ', 'empty-input', /Enter/],
      ['x'.repeat(1_000_000), 'not-a-key', /1,000,000 characters/],
      ['1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2', 'not-a-key', /too short or too long/],
      ['EsTc LW2K 0OIl', 'not-a-key', /0, O, I and l/],
      [other, 'wrong-key', /belongs neither to your secret storage nor to your backup/],
      ['a phrase on an account without secret storage', 'no-secret-storage', /no secret storage, so a Security Phrase cannot work/],
    ];
    for (const [input, kind, message] of cases) {
      const limiter = new AttemptLimiter(); // each input on its own: the limiter is tested below
      await expect(unlockVault({ vault: b.vault, client: b.client, userId: b.userId, store: b.store, limiter, now: Date.now }, input), JSON.stringify(input.slice(0, 40)))
        .rejects.toMatchObject({ kind, message: expect.stringMatching(message) });
    }
    expect(await b.vault.getPin()).toBeUndefined();
    expect(await b.store.get()).toBeNull();

    // The key of an older backup: a new version with another key replaced it.
    const newer = await b.client.createBackupVersion({ algorithm: 'm.megolm_backup.v1.curve25519-aes-sha2', auth_data: { public_key: (await createBackupDecryptor(randomKey())).publicKey } });
    await expect(unlockVault({ vault: b.vault, client: b.client, userId: b.userId, store: b.store, limiter: new AttemptLimiter(), now: Date.now }, own.recoveryKey))
      .rejects.toMatchObject({ kind: 'older-backup-key', message: expect.stringContaining(`older backup (version ${own.version})`) });
    expect(newer).not.toBe(own.version);

    // A phrase with secret storage, but the wrong one.
    await writeElementSecretStorage(a.client, a.userId, backup.privateKey, { passphrase: phrase });
    a.limiter = new AttemptLimiter();
    await expect(unlock(a, 'not the phrase at all')).rejects.toMatchObject({ kind: 'wrong-phrase' });
  });

  it('treats a padded auth_data public key as the same key: unlocking twice re-sends nothing', async () => {
    const c = await signedIn();
    const key = randomKey();
    const publicKey = (await createBackupDecryptor(key)).publicKey;
    const version = await c.client.createBackupVersion({ algorithm: 'm.megolm_backup.v1.curve25519-aes-sha2', auth_data: { public_key: `${publicKey}=` } });
    await unlock(c, encodeRecoveryKey(key));
    const pin = (await c.vault.getPin())!;
    expect(pin).toMatchObject({ version, publicKey });
    expect(await ingestSessions(c.vault, await peerSessions(3, 1))).toMatchObject({ stored: 3 });
    await unlock(c, encodeRecoveryKey(key));
    expect((await c.vault.getPin())!.epoch).toBe(pin.epoch);
    expect(await c.vault.countPending(publicKey, pin.epoch), 'the sessions stored under the key stay pending for it').toBe(3);
  });

  it('takes the legacy passphrase of an old backup (auth_data.private_key_salt)', async () => {
    const c = await signedIn();
    const legacy = await createPeerWrittenBackup(c.client, { sessions: 3, legacyPassphrase: 'an old backup passphrase' });
    await expect(unlock(c, 'an old backup passphrase')).resolves.toMatchObject({ via: 'legacy-phrase', version: legacy.version });
    await expect(unlock(c, 'another passphrase')).rejects.toMatchObject({ kind: 'wrong-phrase' });
  });

  it('slows down repeated failures, so a wrong key typed again and again is no storm of requests', async () => {
    let t = 0;
    const limiter = new AttemptLimiter(() => t);
    const d = await signedIn();
    await createPeerWrittenBackup(d.client, { sessions: 1 });
    const attempt = () => unlockVault({ vault: d.vault, client: d.client, userId: d.userId, store: d.store, limiter, now: () => t }, encodeRecoveryKey(randomKey()));
    for (let i = 0; i < 3; i++) await expect(attempt()).rejects.toMatchObject({ kind: 'wrong-key' });
    await expect(attempt()).rejects.toMatchObject({ kind: 'rate-limited' });
    t += 1000;
    await expect(attempt()).rejects.toMatchObject({ kind: 'wrong-key' });
    await expect(attempt()).rejects.toMatchObject({ kind: 'rate-limited', message: expect.stringMatching(/Wait 2 s/) });
    t += 60_000;
    // Two attempts at once: the second is refused rather than slipping past the limit.
    const both = await Promise.allSettled([attempt(), attempt()]);
    expect(both.map((r) => (r.status === 'rejected' ? (r.reason as { kind: string }).kind : 'ok')).sort()).toEqual(['rate-limited', 'wrong-key']);
  });
});

describe('restore', () => {
  const SESSIONS = 1500;
  let a: Account;
  let backup: PeerWrittenBackup;
  let corrupt: Awaited<ReturnType<typeof putCorruptEntries>>;

  beforeAll(async () => {
    a = await signedIn();
    backup = await createPeerWrittenBackup(a.client, { sessions: SESSIONS, rooms: 7 });
    corrupt = await putCorruptEntries(a.client, backup.version, backup.publicKey);
    await unlock(a, backup.recoveryKey);
  });

  it('restores every entry through interrupted downloads, decrypting nothing twice, and counts corrupt entries by reason', async () => {
    // Two downloads break off part-way: the restore pauses, resumes, and skips what it stored.
    const server = interrupting(a.client, [200_000, 600_000]);
    const { driver, runUntilSettled } = driverFor(a.vault, a.store, server);
    await driver.start();
    expect(await runUntilSettled()).toBe('done');
    expect(server.downloads).toBe(3);

    const state = (await a.vault.getRestoreState())!;
    expect(state).toMatchObject({ phase: 'done', restored: SESSIONS, alreadyPresent: 0, failed: corrupt.length, serverCount: SESSIONS + corrupt.length });
    for (const entry of corrupt) expect(state.failuresByKind[entry.kind as 'mac'], entry.kind).toBeGreaterThanOrEqual(1);
    expect(Object.values(state.failuresByKind).reduce((x, y) => x + (y ?? 0), 0)).toBe(corrupt.length);
    const failures = await a.vault.restoreFailures(100);
    expect(failures.map((f) => `${f.sessionId}:${f.kind}`).sort()).toEqual(corrupt.map((c) => `${c.sessionId}:${c.kind}`).sort());

    // The vault holds exactly the backed-up sessions, as the server's ciphertext, marked uploaded.
    expect(await a.vault.countSessions()).toBe(SESSIONS);
    const pin = (await a.vault.getPin())!;
    expect(await a.vault.countPending(pin.publicKey, pin.epoch)).toBe(0);
    const decryptor = await createBackupDecryptor(backup.privateKey);
    const rows = await a.vault.sessionsAfter(null, SESSIONS + 1);
    const byId = new Map(backup.sessions.map((s) => [s.session_id, s]));
    for (const row of rows) {
      const plain = await decryptor.decrypt(row.sessionData);
      expect(plain.session_key).toBe(byId.get(row.sessionId)?.session_key);
      expect(row.uploadedEpoch).toBe(pin.epoch);
    }
  });

  it('a second restore finds everything already present and decrypts nothing', async () => {
    const { driver, runUntilSettled } = driverFor(a.vault, a.store, restoreServer(a.client));
    await driver.start();
    expect(await runUntilSettled()).toBe('done');
    expect(await a.vault.getRestoreState()).toMatchObject({ restored: 0, alreadyPresent: SESSIONS, failed: corrupt.length });
  });

  it('waits while locked and resumes once unlocked; cancel stops it', async () => {
    const b = await signedIn();
    const own = await createPeerWrittenBackup(b.client, { sessions: 1000 });
    await unlock(b, own.recoveryKey);
    const { driver, runUntilSettled } = driverFor(b.vault, b.store, interrupting(b.client, [300_000]));
    await driver.start();
    expect(await driver.run()).toBe('waiting'); // the download broke off
    await b.store.clear(); // a browser restart forgets the key
    const partial = (await b.vault.getRestoreState())!;
    expect(partial.restored).toBeGreaterThan(0);
    expect(partial.restored).toBeLessThan(1000);
    expect(await runUntilSettled()).toBe('locked');
    await unlock(b, own.recoveryKey);
    expect(await runUntilSettled()).toBe('done');
    expect(await b.vault.getRestoreState()).toMatchObject({ restored: 1000, alreadyPresent: 0, failed: 0 });

    const c = driverFor(b.vault, b.store, restoreServer(b.client));
    await c.driver.start();
    expect((await c.driver.cancel())?.phase).toBe('cancelled');
    expect(await c.driver.run()).toBe('idle');
  });

  it('fetches one session on demand, remembers misses, and coalesces concurrent asks', async () => {
    const b = await signedIn();
    const own = await createPeerWrittenBackup(b.client, { sessions: 5 });
    await unlock(b, own.recoveryKey);
    let gets = 0;
    let t = 0;
    const fetcher = new SessionFetcher({
      vault: b.vault, unlocked: () => b.store.get(), now: () => t,
      getBackupSession: (version, roomId, sessionId) => { gets++; return b.client.getBackupSessionKey(version, roomId, sessionId); },
    });
    const wanted = own.sessions[0]!;
    const [x, y] = await Promise.all([fetcher.get(wanted.room_id, wanted.session_id), fetcher.get(wanted.room_id, wanted.session_id)]);
    expect(gets).toBe(1);
    expect(x).toEqual(y);
    expect(x).toMatchObject({ room_id: wanted.room_id, session_id: wanted.session_id, session_key: wanted.session_key, algorithm: 'm.megolm.v1.aes-sha2' });
    expect(parseExportedSession(x).sessionId).toBe(wanted.session_id);
    await fetcher.get(wanted.room_id, wanted.session_id);
    expect(gets, 'kept in the vault: no second request').toBe(1);

    expect(await fetcher.get(wanted.room_id, 'no-such-session')).toBeNull();
    expect(await fetcher.get(wanted.room_id, 'no-such-session')).toBeNull();
    expect(gets, 'a miss is not asked again at once').toBe(2);
    t += 61_000;
    expect(await fetcher.get(wanted.room_id, 'no-such-session')).toBeNull();
    expect(gets).toBe(3);
    t += 61_000;
    expect(await fetcher.get(wanted.room_id, 'no-such-session')).toBeNull();
    expect(gets, 'the second miss waits twice as long').toBe(3);

    await b.store.clear();
    await expect(fetcher.get(wanted.room_id, wanted.session_id)).rejects.toMatchObject({ kind: 'locked' });
  });

  it('exports what it holds in key-export form, algorithm included', async () => {
    const key = (await a.store.get())!;
    const first = await exportBatch(a.vault, key, null, 1000);
    expect(first.sessions).toHaveLength(1000);
    const second = await exportBatch(a.vault, key, first.next, 1000);
    expect(second.next).toBeNull();
    const all = [...first.sessions, ...second.sessions] as Array<{ session_id: string; session_key: string; algorithm: string }>;
    expect(all).toHaveLength(SESSIONS);
    const byId = new Map(backup.sessions.map((s) => [s.session_id, s.session_key]));
    for (const s of all) {
      expect(s.algorithm).toBe('m.megolm.v1.aes-sha2');
      expect(s.session_key).toBe(byId.get(s.session_id));
    }
  });

  it('moves sessions stored under an earlier key to the current backup once that key is proved', async () => {
    const b = await signedIn();
    const first = await createPeerWrittenBackup(b.client, { sessions: 1 });
    await unlock(b, first.recoveryKey);
    expect((await ingestSessions(b.vault, await peerSessions(30, 3))).stored).toBe(30); // pending under the first key
    const second = await createPeerWrittenBackup(b.client, { sessions: 1 }); // a new version with another key
    await unlock(b, second.recoveryKey);
    const status = () => vaultStatus(b.vault, b.store, { product: 'Matrix Key Vault', version: 't', bootId: 'b', startedAt: 0 }, false, true);
    expect((await status()).earlier).toEqual([{ publicKey: first.publicKey, version: first.version, count: 30 }]);
    const pin = (await b.vault.getPin())!;
    expect(await b.vault.countPending(pin.publicKey, pin.epoch)).toBe(0);

    await expect(moveEarlierSessions(b.vault, b.client, b.userId, second.recoveryKey, first.publicKey)).rejects.toMatchObject({ kind: 'wrong-key' });
    // Through the worker's router, wrong keys are rate-limited as unlocking is.
    const services = createServices(b.vault, {
      sitePlatform: memorySitePlatform(),
      scheduleWake: async () => {}, scheduleRestoreWake: async () => {}, unlockStore: b.store, keepAlive: async () => {}, report: () => {},
      worker: () => ({ product: 'Matrix Key Vault', version: 't', bootId: 'b', startedAt: 0 }),
    });
    const wrong = () => route(services, { type: 'earlier.unlock', input: second.recoveryKey, publicKey: first.publicKey });
    for (let i = 0; i < 3; i++) expect(await wrong()).toMatchObject({ ok: false, error: { kind: 'wrong-key' } });
    expect(await wrong()).toMatchObject({ ok: false, error: { kind: 'rate-limited' } });
    expect(await moveEarlierSessions(b.vault, b.client, b.userId, first.recoveryKey, first.publicKey)).toEqual({ moved: 30, failed: 0 });
    expect(await b.vault.countPending(pin.publicKey, pin.epoch)).toBe(30);
    expect((await status()).earlier).toEqual([]);
  });
});

describe('restore room by room', () => {
  it('when the whole download\'s first byte does not come in time, restores every joined room\'s keys with exact counts; a left room\'s keys are a note', async () => {
    const localpart = uniqueLocalpart('byroom');
    const user = await synapse.registerUser(localpart, password);
    const vault = await freshVault();
    await signInWithPassword(vault, synapse.serverName, localpart, password);
    const { client, userId } = await requireClient(vault);
    const b: Account = { vault, client, userId, store: memoryUnlockStore(), limiter: new AttemptLimiter(() => 0) };
    // Real rooms the user is in (created with another login of the same user): the backup's keys are
    // in the first five, the fifth is left later, and the sixth has no keys.
    const roomIds: string[] = [];
    for (let i = 0; i < 6; i++) {
      const response = await fetch(`${synapse.baseUrl}/_matrix/client/v3/createRoom`, {
        method: 'POST', headers: { authorization: `Bearer ${user.accessToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ preset: 'private_chat', name: `by room ${i}` }),
      });
      expect(response.status).toBe(200);
      roomIds.push(((await response.json()) as { room_id: string }).room_id);
    }
    const SESSIONS = 2500;
    const own = await createPeerWrittenBackup(b.client, { sessions: SESSIONS, roomIds: roomIds.slice(0, 5) });
    const left = roomIds[4]!;
    const inLeft = own.sessions.filter((x) => x.room_id === left).length;
    expect(inLeft).toBeGreaterThan(0);
    const leave = await fetch(`${synapse.baseUrl}/_matrix/client/v3/rooms/${encodeURIComponent(left)}/leave`, {
      method: 'POST', headers: { authorization: `Bearer ${user.accessToken}`, 'content-type': 'application/json' }, body: '{}',
    });
    expect(leave.status).toBe(200);
    await unlock(b, own.recoveryKey);

    // A first-byte wait no server meets: the whole download times out, as Synapse's does at 10⁶ keys.
    const base = restoreServer(b.client, { headersMs: 1 });
    const asked = { whole: 0, rooms: [] as string[] };
    const server: RestoreServer = {
      ...base,
      streamKeys: (...args) => { asked.whole++; return base.streamKeys(...args); },
      streamRoomKeys: (version, roomId, signal) => { asked.rooms.push(roomId); return base.streamRoomKeys!(version, roomId, signal); },
    };
    const { driver, runUntilSettled } = driverFor(b.vault, b.store, server);
    await driver.start();
    const started = performance.now();
    expect(await runUntilSettled()).toBe('done');
    const ms = performance.now() - started;
    const state = (await b.vault.getRestoreState())!;
    expect(state).toMatchObject({
      phase: 'done', source: 'rooms', restored: SESSIONS - inLeft, alreadyPresent: 0, failed: 0, serverCount: SESSIONS, rooms: 4, roomsListed: 5, roomsDone: 5,
      lastError: { kind: 'unlisted-rooms', message: expect.stringContaining(`${inLeft.toLocaleString('en')} keys are in rooms this account no longer lists`) },
    });
    expect(asked.whole, 'one whole download asked, then room by room').toBe(1);
    expect([...asked.rooms].sort(), 'the joined rooms, the one without keys too').toEqual([...roomIds.slice(0, 4), roomIds[5]!].sort());
    expect(await b.vault.countSessions()).toBe(SESSIONS - inLeft);
    const pin = (await b.vault.getPin())!;
    expect(await b.vault.countPending(pin.publicKey, pin.epoch)).toBe(0);
    const decryptor = await createBackupDecryptor(own.privateKey);
    const byId = new Map(own.sessions.map((x) => [x.session_id, x]));
    for (const row of await b.vault.sessionsAfter(null, SESSIONS)) {
      expect(row.roomId).not.toBe(left);
      expect((await decryptor.decrypt(row.sessionData)).session_key).toBe(byId.get(row.sessionId)?.session_key);
    }
    console.log(`room by room: ${SESSIONS - inLeft} keys over 4 rooms in ${(ms / 1000).toFixed(2)} s (${inLeft} in the left room noted)`);
  });
});

