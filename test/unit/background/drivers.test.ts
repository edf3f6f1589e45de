/**
 * Both drivers against an in-memory homeserver (the vault on fake-indexeddb): what the upload driver
 * puts, the restore driver gets back, through scripted failures and "kills" (a run that hangs for
 * ever, as a stopped worker's does, while a new driver takes over the same vault). Real Synapse runs
 * the same paths in test/integration; this one can pin every failure to a chunk.
 */
import 'fake-indexeddb/auto';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { backupPublicKey, BackupDecryptor, createBackupDecryptor, decodeBase64, encodeBase64 } from '../../../src/core/index.ts';
import { openEntries } from '../../../src/core/restore/open-entries.ts';
import type { RoomKeysBody } from '../../../src/core/upload/request.ts';
import { parseBackupVersionInfo, type BackupVersionInfo, type KeyBackupData } from '../../../src/core/wire.ts';
import { ingestSessions } from '../../../src/background/ingest.ts';
import { RestoreDriver, type EntryHelper, type RestoreDriverDeps, type RestoreServer } from '../../../src/background/restore-driver.ts';
import { UploadDriver, type BackupServer } from '../../../src/background/upload-driver.ts';
import { ConnectionError, HomeserverError } from '../../../src/platform/homeserver.ts';
import { memoryUnlockStore } from '../../../src/platform/unlock-store.ts';
import type { Vault } from '../../../src/platform/vault.ts';
import { freshVault, peerSessions, randomKey } from '../../harness/upload-rig.ts';
import type { ExportedSessionData } from '../../peer/index.ts';

type Fault = 'none' | '429' | '500' | 'drop' | 'cut';

/** One user's backup in memory, speaking the two drivers' interfaces; faults are scripted per call. */
class MemoryHomeserver {
  readonly rooms = new Map<string, Map<string, KeyBackupData>>();
  readonly faults: Fault[] = [];
  streams = 0;
  /** Whether each download asked to wait longer for the first byte. */
  readonly patience: boolean[] = [];
  /** The whole download's first byte never comes in time (Synapse at 10⁶ keys): a header timeout. */
  wholeTimesOut = false;
  /** What `/joined_rooms` lists; null: every room of the backup. */
  joined: string[] | null = null;
  /** Faults of the per-room downloads, one per GET in order. */
  readonly roomFaults: Fault[] = [];
  /** Every per-room GET, in order. */
  readonly roomGets: string[] = [];
  constructor(readonly version: string, readonly publicKey: string) {}

  get count(): number {
    let n = 0;
    for (const room of this.rooms.values()) n += room.size;
    return n;
  }

  info(): BackupVersionInfo {
    return parseBackupVersionInfo({ version: this.version, algorithm: 'm.megolm_backup.v1.curve25519-aes-sha2', auth_data: { public_key: this.publicKey }, count: this.count, etag: String(this.count) });
  }

  #fault(endpoint: string): Fault {
    const fault = this.faults.shift() ?? 'none';
    if (fault === '429') throw new HomeserverError({ status: 429, endpoint, message: 'limited', errcode: 'M_LIMIT_EXCEEDED', retryAfterMs: 3000 });
    if (fault === '500') throw new HomeserverError({ status: 500, endpoint, message: 'server error' });
    if (fault === 'drop') throw new ConnectionError('network', endpoint, 'dropped');
    return fault;
  }

  upload(): BackupServer {
    return {
      putRoomKeys: async (version, body: RoomKeysBody) => {
        this.#fault('PUT /room_keys/keys');
        expect(version).toBe(this.version);
        for (const [roomId, room] of Object.entries(body.rooms)) {
          const stored = this.rooms.get(roomId) ?? new Map<string, KeyBackupData>();
          for (const [sessionId, data] of Object.entries(room.sessions)) stored.set(sessionId, data);
          this.rooms.set(roomId, stored);
        }
        return { etag: String(this.count), count: this.count };
      },
      currentBackup: async () => ({ version: this.version, algorithm: 'm.megolm_backup.v1.curve25519-aes-sha2', publicKey: this.publicKey, count: this.count, etag: '' }),
    };
  }

  restore(): RestoreServer {
    return {
      currentBackup: async () => this.info(),
      streamKeys: async (_version, _signal, patient) => {
        this.patience.push(patient === true);
        if (this.wholeTimesOut) throw new ConnectionError('timeout', 'GET /room_keys/keys', 'GET /room_keys/keys: the homeserver did not answer within 25 s');
        const fault = this.#fault('GET /room_keys/keys');
        this.streams++;
        const rooms: Record<string, { sessions: Record<string, KeyBackupData> }> = {};
        for (const [roomId, room] of this.rooms) rooms[roomId] = { sessions: Object.fromEntries(room) };
        return streamOf(JSON.stringify({ rooms }), fault);
      },
      joinedRooms: async () => [...(this.joined ?? this.rooms.keys())],
      streamRoomKeys: async (version, roomId) => {
        expect(version).toBe(this.version);
        this.roomGets.push(roomId);
        const fault = this.roomFaults.shift() ?? 'none';
        if (fault === '500') throw new HomeserverError({ status: 500, endpoint: 'GET /room_keys/keys/{roomId}', message: 'server error' });
        if (fault === 'drop') throw new ConnectionError('network', 'GET /room_keys/keys/{roomId}', 'dropped');
        // Synapse answers a room without keys with an empty map.
        return streamOf(JSON.stringify({ sessions: Object.fromEntries(this.rooms.get(roomId) ?? []) }), fault);
      },
    };
  }
}

/** A body sent 8 KiB at a time; 'cut' breaks it off half-way. */
function streamOf(body: string, fault: Fault): ReadableStream<Uint8Array> {
  const bytes = new TextEncoder().encode(body);
  const cutAt = fault === 'cut' ? Math.floor(bytes.length / 2) : bytes.length;
  let at = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (at >= cutAt) {
        if (cutAt < bytes.length) controller.error(new TypeError('connection reset'));
        else controller.close();
        return;
      }
      controller.enqueue(bytes.slice(at, Math.min(at + 8192, cutAt)));
      at += 8192;
    },
  });
}

const SESSIONS = 600;
let sessions: ExportedSessionData[];
let privateKey: Uint8Array;
let publicKey: string;

beforeAll(async () => {
  sessions = await peerSessions(SESSIONS, 6);
  privateKey = randomKey();
  publicKey = await backupPublicKey(privateKey);
});

afterEach(() => vi.restoreAllMocks());

function clock() {
  let skew = 0;
  return { now: () => Date.now() + skew, advance: (ms: number) => { skew += ms; } };
}

async function uploadAll(server: MemoryHomeserver): Promise<void> {
  const vault = await freshVault();
  await vault.setPin({ userId: '@u:x', version: server.version, publicKey, epoch: 1, source: 'created', pinnedAt: 0 });
  expect((await ingestSessions(vault, sessions)).stored).toBe(SESSIONS);
  const time = clock();
  const driver = new UploadDriver({
    vault, server: async () => server.upload(), scheduleWake: async () => {}, keepAlive: async () => {},
    now: time.now, random: () => 0.5, batchSize: 100,
  });
  for (let i = 0; i < 50; i++) {
    const outcome = await driver.run();
    if (outcome === 'idle') break;
    expect(outcome).toBe('waiting');
    time.advance(11 * 60_000);
  }
  expect(await vault.countPending(publicKey, 1)).toBe(0);
  vault.close();
}

async function restoringVault(server: MemoryHomeserver) {
  const vault = await freshVault();
  await vault.setPin({ userId: '@u:x', version: server.version, publicKey, epoch: 1, source: 'proved', pinnedAt: 0 });
  const store = memoryUnlockStore();
  await store.set({ userId: '@u:x', version: server.version, publicKey, privateKey: encodeBase64(privateKey), via: 'recovery-key', at: 0 });
  return { vault, store };
}

function restoreDriver(vault: Vault, store: ReturnType<typeof memoryUnlockStore>, server: MemoryHomeserver, time = clock(), keepAlive: () => Promise<void> = async () => {}, overrides: Partial<RestoreDriverDeps> = {}) {
  return new RestoreDriver({
    vault, server: async () => server.restore(), unlocked: () => store.get(), scheduleWake: async () => {}, keepAlive,
    now: time.now, random: () => 0.5, newId: () => crypto.randomUUID(), chunkSize: 100, idleTimeoutMs: 5000, byRoomFrom: Infinity, roomsAhead: 2,
    ...overrides,
  });
}

describe('the upload and restore drivers, against a homeserver in memory', () => {
  it('what the upload driver puts through faults, the restore driver gets back through faults', async () => {
    const server = new MemoryHomeserver('1', publicKey);
    server.faults.push('429', 'none', '500', 'drop');
    await uploadAll(server);
    expect(server.count).toBe(SESSIONS);

    const { vault, store } = await restoringVault(server);
    const time = clock();
    const driver = restoreDriver(vault, store, server, time);
    const decrypted = vi.spyOn(BackupDecryptor.prototype, 'decryptMany');
    await driver.start();
    server.faults.push('429', 'cut', '500', 'drop', 'cut');
    let outcome = await driver.run();
    for (let i = 0; outcome === 'waiting' && i < 20; i++) {
      time.advance(11 * 60_000);
      outcome = await driver.run();
    }
    expect(outcome).toBe('done');
    expect(await vault.getRestoreState()).toMatchObject({ phase: 'done', restored: SESSIONS, alreadyPresent: 0, failed: 0, rooms: 6 });
    const opened = decrypted.mock.calls.reduce((n, [list]) => n + list.length, 0);
    expect(opened, 'no entry decrypted twice, through two cut downloads').toBe(SESSIONS);
    expect(server.patience[0], 'the first download gives up before Chrome\'s 30 s fetch limit').toBe(false);
    expect(server.patience.slice(1).every(Boolean), 'downloads after a failure wait longer for the first byte').toBe(true);
    expect(await vault.countSessions()).toBe(SESSIONS);
    expect(await vault.countPending(publicKey, 1), 'restored rows are never uploaded again').toBe(0);
  });

  it('a run killed mid-download is taken over by a new driver, and finishes with exact counts', async () => {
    const server = new MemoryHomeserver('2', publicKey);
    await uploadAll(server);
    const { vault, store } = await restoringVault(server);
    let chunks = 0;
    // The first driver's worker "dies" after three chunks: its run never returns. What it had
    // decrypted but not written yet is lost with it; what it wrote is never opened again.
    const dying = restoreDriver(vault, store, server, clock(), () => (++chunks >= 3 ? new Promise<void>(() => {}) : Promise.resolve()));
    await dying.start();
    void dying.run();
    await vi.waitFor(async () => expect(chunks).toBe(3));
    const before = (await vault.getRestoreState())!.restored;
    expect(before).toBeGreaterThan(0);
    const decrypted = vi.spyOn(BackupDecryptor.prototype, 'decryptMany');
    const next = restoreDriver(vault, store, server);
    expect(await next.run()).toBe('done');
    expect(await vault.getRestoreState()).toMatchObject({ phase: 'done', restored: SESSIONS, alreadyPresent: 0, failed: 0 });
    expect(decrypted.mock.calls.reduce((n, [list]) => n + list.length, 0), 'only what the dead run had not stored').toBe(SESSIONS - before);
  });

  it('locked after a "browser restart", it waits; unlocked, it resumes; a deleted version ends it, keeping what it stored', async () => {
    const server = new MemoryHomeserver('3', publicKey);
    await uploadAll(server);
    const { vault, store } = await restoringVault(server);
    const driver = restoreDriver(vault, store, server);
    await driver.start();
    const key = (await store.get())!;
    await store.clear();
    expect(await driver.run()).toBe('locked');
    await store.set(key);
    server.faults.push('cut');
    expect(await driver.run()).toBe('waiting');
    const stored = (await vault.getRestoreState())!.restored;
    expect(stored).toBeGreaterThan(0);
    server.rooms.clear();
    const gone = { ...server.restore(), currentBackup: async () => null };
    const ending = new RestoreDriver({
      vault, server: async () => gone, unlocked: () => store.get(), scheduleWake: async () => {}, keepAlive: async () => {},
      now: () => Date.now() + 3_600_000, random: () => 0.5, newId: () => crypto.randomUUID(), chunkSize: 100, idleTimeoutMs: 5000, byRoomFrom: Infinity, roomsAhead: 2,
    });
    expect(await ending.run()).toBe('failed');
    expect(await vault.getRestoreState()).toMatchObject({ phase: 'failed', restored: stored, lastError: { kind: 'backup-changed' } });
    expect(await vault.countSessions()).toBe(stored);
  });

  it('a body that is not a backup is a typed, retried failure; a room of the wrong shape is counted as malformed entries', async () => {
    const server = new MemoryHomeserver('4', publicKey);
    await uploadAll(server);
    const { vault, store } = await restoringVault(server);
    const driverWith = (body: string) => new RestoreDriver({
      vault, server: async () => ({ currentBackup: async () => server.info(), streamKeys: async () => new Response(body).body! }),
      unlocked: () => store.get(), scheduleWake: async () => {}, keepAlive: async () => {},
      now: () => Date.now() + 3_600_000 * driverCount++, random: () => 0.5, newId: () => crypto.randomUUID(), chunkSize: 100, idleTimeoutMs: 5000, byRoomFrom: Infinity, roomsAhead: 2,
    });
    let driverCount = 0;
    const notJson = driverWith('<html>502 Bad Gateway</html>');
    await notJson.start();
    expect(await notJson.run()).toBe('waiting');
    expect((await vault.getRestoreState())?.lastError).toMatchObject({ kind: 'homeserver', message: expect.stringMatching(/does not match the spec: the body is not JSON/) });
    await notJson.cancel();

    const listRoom = driverWith('{"rooms": {"!r:x": {"sessions": [1, 2]}}}');
    await listRoom.start();
    expect(await listRoom.run()).toBe('done');
    expect(await vault.getRestoreState()).toMatchObject({ phase: 'done', failed: 2, failuresByKind: { malformed: 2 }, lastError: { kind: 'incomplete' } });
  });

  it('Cancel then Restore hands the run over to the new restore; Lock stops a running one, unlocking resumes it; a key for another version ends it', async () => {
    const server = new MemoryHomeserver('5', publicKey);
    await uploadAll(server);
    const { vault, store } = await restoringVault(server);
    let chunks = 0;
    let onChunk: (n: number) => Promise<void> = async () => {};
    const driver = restoreDriver(vault, store, server, clock(), () => onChunk(++chunks));

    onChunk = async (n) => {
      if (n !== 2) return;
      await driver.cancel();
      await driver.start(); // the user pressed Cancel, then Restore, while the first one ran
    };
    const first = await driver.start();
    expect(await driver.run()).toBe('done');
    const second = (await vault.getRestoreState())!;
    expect(second.id).not.toBe(first.id);
    expect(second).toMatchObject({ phase: 'done', failed: 0 });
    expect(second.restored + second.alreadyPresent).toBe(SESSIONS);

    const { vault: v2, store: s2 } = await restoringVault(server);
    const key = (await s2.get())!;
    chunks = 0;
    const locking = restoreDriver(v2, s2, server, clock(), () => onChunk(++chunks));
    onChunk = async (n) => { if (n === 2) await s2.clear(); };
    await locking.start();
    expect(await locking.run()).toBe('locked');
    const partial = (await v2.getRestoreState())!;
    expect(partial.phase).toBe('running');
    expect(partial.restored).toBeLessThan(SESSIONS);
    onChunk = async () => {};
    await s2.set(key);
    expect(await locking.run()).toBe('done');
    expect(await v2.getRestoreState()).toMatchObject({ restored: SESSIONS, alreadyPresent: 0, failed: 0 });

    await locking.start();
    await s2.set({ ...key, version: '6' });
    expect(await locking.run()).toBe('failed');
    expect((await v2.getRestoreState())?.lastError).toMatchObject({ kind: 'backup-changed' });
  });
});

describe('room by room, when the whole download\'s first byte does not come in time', () => {
  const opened = (spy: { mock: { calls: ReadonlyArray<readonly unknown[]> } }) => spy.mock.calls.reduce((n, call) => n + (call[0] as unknown[]).length, 0);

  it('restores every room with exact counts, and keeps going room by room', async () => {
    const server = new MemoryHomeserver('r1', publicKey);
    await uploadAll(server);
    server.wholeTimesOut = true;
    server.joined = [...server.rooms.keys(), '!empty:x']; // a joined room without keys
    const { vault, store } = await restoringVault(server);
    const driver = restoreDriver(vault, store, server);
    const decrypted = vi.spyOn(BackupDecryptor.prototype, 'decryptMany');
    await driver.start();
    expect(await driver.run()).toBe('done');
    expect(await vault.getRestoreState()).toMatchObject({
      phase: 'done', source: 'rooms', restored: SESSIONS, alreadyPresent: 0, failed: 0, rooms: 6, roomsListed: 7, roomsDone: 7, lastError: null,
    });
    expect(server.patience, 'one whole download asked, then none').toEqual([false]);
    expect(server.roomGets).toHaveLength(7);
    expect(opened(decrypted)).toBe(SESSIONS);
    expect(await vault.countSessions()).toBe(SESSIONS);
    expect(await vault.countPending(publicKey, 1), 'restored rows are never uploaded again').toBe(0);
  });

  it('a run killed mid-way is resumed by a new driver room by room, skipping the rooms done, with exact counts', async () => {
    const server = new MemoryHomeserver('r2', publicKey);
    await uploadAll(server);
    server.wholeTimesOut = true;
    const { vault, store } = await restoringVault(server);
    let chunks = 0;
    const dying = restoreDriver(vault, store, server, clock(), () => (++chunks >= 4 ? new Promise<void>(() => {}) : Promise.resolve()));
    await dying.start();
    void dying.run();
    await vi.waitFor(async () => expect(chunks).toBe(4));
    const killed = (await vault.getRestoreState())!;
    expect(killed).toMatchObject({ source: 'rooms', roomsListed: 6 });
    expect(killed.roomsDone).toBeGreaterThan(0);
    expect(killed.restored).toBeGreaterThan(0);
    const listed = (await vault.getRestoreRooms(killed.id))!;
    const asksBefore = server.patience.length;
    server.roomGets.length = 0;
    const decrypted = vi.spyOn(BackupDecryptor.prototype, 'decryptMany');
    const next = restoreDriver(vault, store, server);
    expect(await next.run()).toBe('done');
    expect(server.patience.length, 'no whole download asked again').toBe(asksBefore);
    expect(server.roomGets, 'the rooms done before the kill are not asked again').toEqual(listed.slice(killed.roomsDone));
    expect(await vault.getRestoreState()).toMatchObject({ phase: 'done', restored: SESSIONS, alreadyPresent: 0, failed: 0, rooms: 6, roomsDone: 6, lastError: null });
    expect(opened(decrypted), 'only what the dead run had not stored').toBe(SESSIONS - killed.restored);
  });

  it('a room GET that fails with 5xx or drops pauses with backoff, and the resumed pass goes on from the checkpoint', async () => {
    const server = new MemoryHomeserver('r3', publicKey);
    await uploadAll(server);
    server.wholeTimesOut = true;
    const { vault, store } = await restoringVault(server);
    const time = clock();
    const driver = restoreDriver(vault, store, server, time);
    const decrypted = vi.spyOn(BackupDecryptor.prototype, 'decryptMany');
    await driver.start();
    server.roomFaults.push('none', 'none', '500');
    expect(await driver.run()).toBe('waiting');
    const waiting = (await vault.getRestoreState())!;
    expect(waiting).toMatchObject({ phase: 'waiting', source: 'rooms', attempt: 1, lastError: { kind: 'homeserver', message: 'server error' } });
    expect(waiting.retryAt).toBeGreaterThan(time.now());
    expect(await driver.run(), 'not before the backoff time').toBe('waiting');
    const done = waiting.roomsDone!;
    expect(done).toBeGreaterThan(0);
    server.roomGets.length = 0;
    server.roomFaults.push('none', 'cut');
    time.advance(11 * 60_000);
    expect(await driver.run()).toBe('waiting');
    time.advance(11 * 60_000);
    expect(await driver.run()).toBe('done');
    const listed = (await vault.getRestoreRooms(waiting.id))!;
    expect(server.roomGets[0], 'the resumed pass starts at the checkpoint').toBe(listed[done]);
    for (const room of listed.slice(0, done)) expect(server.roomGets, 'a room done is not asked again').not.toContain(room);
    expect(await vault.getRestoreState()).toMatchObject({ phase: 'done', source: 'rooms', restored: SESSIONS, alreadyPresent: 0, failed: 0, roomsDone: listed.length });
    expect(opened(decrypted), 'no entry decrypted twice').toBe(SESSIONS);
  });

  it('a backup counting byRoomFrom entries or more goes room by room at once, asking rooms ahead in list order', async () => {
    const server = new MemoryHomeserver('r5', publicKey);
    await uploadAll(server);
    const { vault, store } = await restoringVault(server);
    // Each room's answer waits until the test lets it go: what is asked ahead shows as in flight.
    const base = server.restore();
    let inFlight = 0;
    let most = 0;
    const gates: Array<() => void> = [];
    const gated = {
      ...base,
      streamRoomKeys: async (version: string, roomId: string, signal?: AbortSignal) => {
        inFlight++;
        most = Math.max(most, inFlight);
        await new Promise<void>((resolve) => gates.push(resolve));
        inFlight--;
        return base.streamRoomKeys!(version, roomId, signal);
      },
    };
    const driver = restoreDriver(vault, store, server, clock(), async () => {}, { server: async () => gated, byRoomFrom: SESSIONS, roomsAhead: 2 });
    const decrypted = vi.spyOn(BackupDecryptor.prototype, 'decryptMany');
    await driver.start();
    const running = driver.run();
    // Open the gates one at a time, in the order asked, until the restore is done.
    let outcome: string | undefined;
    void running.then((o) => { outcome = o; });
    while (outcome === undefined) {
      await new Promise((r) => setTimeout(r, 5));
      gates.shift()?.();
    }
    expect(outcome).toBe('done');
    expect(server.patience, 'the whole download is never asked').toEqual([]);
    expect(most, 'the room being read and two asked ahead').toBe(3);
    expect(server.roomGets, 'each room asked once, in list order').toEqual(await vault.getRestoreRooms((await vault.getRestoreState())!.id));
    expect(await vault.getRestoreState()).toMatchObject({ phase: 'done', source: 'rooms', restored: SESSIONS, alreadyPresent: 0, failed: 0, rooms: 6, lastError: null });
    expect(opened(decrypted)).toBe(SESSIONS);
    expect(await vault.countSessions()).toBe(SESSIONS);
  });

  it('below byRoomFrom the whole download is asked; a cancel mid-way cancels the room answers asked ahead', async () => {
    const whole = new MemoryHomeserver('r6', publicKey);
    await uploadAll(whole);
    const a = await restoringVault(whole);
    const first = restoreDriver(a.vault, a.store, whole, clock(), async () => {}, { byRoomFrom: SESSIONS + 1 });
    await first.start();
    expect(await first.run()).toBe('done');
    expect(whole.patience).toEqual([false]);
    expect(whole.roomGets).toEqual([]);

    const server = new MemoryHomeserver('r7', publicKey);
    await uploadAll(server);
    const { vault, store } = await restoringVault(server);
    const base = server.restore();
    const cancelled: string[] = [];
    const watched = {
      ...base,
      streamRoomKeys: async (version: string, roomId: string, signal?: AbortSignal) => {
        const stream = await base.streamRoomKeys!(version, roomId, signal);
        const reader = stream.getReader();
        return new ReadableStream<Uint8Array>({
          pull: async (controller) => {
            const { done, value } = await reader.read();
            if (done) controller.close();
            else controller.enqueue(value);
          },
          cancel: (reason) => { cancelled.push(roomId); return reader.cancel(reason); },
        });
      },
    };
    let chunks = 0;
    let driver!: RestoreDriver;
    driver = restoreDriver(vault, store, server, clock(), async () => { if (++chunks === 2) await driver.cancel(); }, { server: async () => watched, byRoomFrom: 1, roomsAhead: 3 });
    await driver.start();
    expect(await driver.run()).toBe('cancelled');
    expect(server.patience).toEqual([]);
    const listed = (await vault.getRestoreRooms((await vault.getRestoreState())!.id))!;
    const read = listed.indexOf(server.roomGets.at(-1)!) - 3;
    expect(read).toBeGreaterThan(0);
    await vi.waitFor(() => expect(cancelled.length, 'every room asked ahead and not read is cancelled').toBeGreaterThan(0));
    expect(server.roomGets.slice(-cancelled.length).sort(), 'only rooms asked ahead are cancelled').toEqual([...cancelled].sort());
  });

  it('keys in a room the account no longer lists end the restore with a note; rooms the vault holds keys of are listed too', async () => {
    const server = new MemoryHomeserver('r4', publicKey);
    await uploadAll(server);
    server.wholeTimesOut = true;
    const [left, held, ...joined] = [...server.rooms.keys()];
    server.joined = joined;
    const { vault, store } = await restoringVault(server);
    // One session of `held` is in the vault already (imported from a key file): its room is asked for.
    const heldSession = sessions.find((x) => x.room_id === held)!;
    expect((await ingestSessions(vault, [heldSession])).stored).toBe(1);
    const driver = restoreDriver(vault, store, server);
    await driver.start();
    expect(await driver.run()).toBe('done');
    const missing = server.rooms.get(left!)!.size;
    const state = (await vault.getRestoreState())!;
    expect(state).toMatchObject({
      phase: 'done', source: 'rooms', restored: SESSIONS - missing - 1, alreadyPresent: 1, failed: 0, roomsListed: 5, rooms: 5,
      lastError: { kind: 'unlisted-rooms', message: expect.stringContaining(`${missing} keys are in rooms this account no longer lists`) },
    });
    expect(server.roomGets).not.toContain(left);
    expect(server.roomGets).toContain(held);
    expect(await vault.countSessions()).toBe(SESSIONS - missing);
  });
});

describe('the decryption helper (a second thread opening a share of each chunk)', () => {
  /** A helper in this process, on the page's own code path: a decryptor built for each request. */
  function inProcessHelper(failOnCall?: number, misorderOnCall?: number) {
    const calls: number[] = [];
    const helper: EntryHelper = {
      async open(key, entries) {
        calls.push(entries.length);
        if (calls.length === failOnCall) throw new Error('the helper page went away');
        const opened = await openEntries(await createBackupDecryptor(decodeBase64(key)), entries);
        return calls.length === misorderOnCall ? opened.reverse() : opened;
      },
      close: vi.fn(async () => {}),
    };
    return { helper, calls };
  }

  /** Spoils the MAC of the first `n` entries of the first room: each must fail as 'mac', whoever opens it. */
  function spoil(server: MemoryHomeserver, n: number): void {
    const room = [...server.rooms.values()][0]!;
    for (const [sessionId, entry] of [...room].slice(0, n)) {
      room.set(sessionId, { ...entry, session_data: { ...entry.session_data, mac: entry.session_data.mac === 'AAAAAAAAAAA' ? 'AQAAAAAAAAA' : 'AAAAAAAAAAA' } });
    }
  }

  it('opens a share of each chunk on the helper; every entry is counted once, failures by kind, and the helper is closed after the run', async () => {
    const server = new MemoryHomeserver('h1', publicKey);
    await uploadAll(server);
    spoil(server, 3);
    const { vault, store } = await restoringVault(server);
    const { helper, calls } = inProcessHelper();
    const driver = restoreDriver(vault, store, server, clock(), async () => {}, { helper });
    await driver.start();
    expect(await driver.run()).toBe('done');
    const state = await vault.getRestoreState();
    expect(state).toMatchObject({ phase: 'done', restored: SESSIONS - 3, failed: 3, failuresByKind: { mac: 3 } });
    expect(calls.length, 'the helper had a share of every chunk').toBe(SESSIONS / 100);
    expect(state?.timings.helped).toBe(calls.reduce((a, b) => a + b, 0));
    expect(calls.every((n) => n >= 10 && n <= 90), `shares between 10% and 90%: ${calls.join(', ')}`).toBe(true);
    expect(helper.close).toHaveBeenCalled();
    const stored = await vault.sessionsAfter(null, SESSIONS);
    expect(stored).toHaveLength(SESSIONS - 3);
    const byId = new Map(sessions.map((s) => [s.session_id, s]));
    expect(stored.every((s) => byId.get(s.sessionId)?.sender_key === s.senderKey), 'each stored with its own sender key').toBe(true);
  });

  it('a helper that fails is reported, its entries are opened in the worker, and the rest of the run goes without it', async () => {
    const server = new MemoryHomeserver('h2', publicKey);
    await uploadAll(server);
    const { vault, store } = await restoringVault(server);
    const { helper, calls } = inProcessHelper(2);
    const report = vi.fn();
    const driver = restoreDriver(vault, store, server, clock(), async () => {}, { helper, report });
    await driver.start();
    expect(await driver.run()).toBe('done');
    expect(await vault.getRestoreState()).toMatchObject({ phase: 'done', restored: SESSIONS, failed: 0 });
    expect(report).toHaveBeenCalledTimes(1);
    expect(String(report.mock.calls[0]![0])).toContain('the helper page went away');
    expect(calls, 'asked twice: once answered, once failed; never again in this run').toHaveLength(2);
    expect((await vault.getRestoreState())?.timings.helped).toBe(calls[0]);
  });

  it('answers out of order are refused: no session is stored under another\'s id', async () => {
    const server = new MemoryHomeserver('h3', publicKey);
    await uploadAll(server);
    const { vault, store } = await restoringVault(server);
    const { helper, calls } = inProcessHelper(undefined, 1);
    const report = vi.fn();
    const driver = restoreDriver(vault, store, server, clock(), async () => {}, { helper, report });
    await driver.start();
    expect(await driver.run()).toBe('done');
    expect(await vault.getRestoreState()).toMatchObject({ phase: 'done', restored: SESSIONS, failed: 0 });
    expect(String(report.mock.calls[0]![0])).toMatch(/answered entry \d+ with another session/);
    expect(calls).toHaveLength(1);
    const decryptor = await createBackupDecryptor(privateKey);
    for (const s of await vault.sessionsAfter(null, SESSIONS)) {
      const plain = await decryptor.decrypt(s.sessionData);
      expect(plain.sender_key, `${s.sessionId} holds its own data`).toBe(s.senderKey);
    }
  });
});
