/**
 * Encrypted history on a real Synapse, written by another device with Element's crypto, and the key
 * backup plus secret storage Element would have left behind. For `npm start`'s demo client, the
 * end-to-end tests of the page API and a benchmark.
 *
 * 1. The user logs in once more: that login is the *writer device*, and an `OlmMachine`
 *    (`@matrix-org/matrix-sdk-crypto-wasm`, what Element Web runs) is created for exactly that user
 *    and device id, so the events' `sender`, `device_id` and the sessions' keys belong together.
 * 2. A private room with `m.room.encryption` (`m.megolm.v1.aes-sha2`) from the start.
 * 3. Megolm sessions made by the machine: `invalidateGroupSession` + `shareRoomKey(room, [], …)`
 *    every `eventsPerSession` events (with no recipients: no other device of the user exists yet,
 *    so a device signed in later can only read the history through the backup). All events are
 *    encrypted first (≈ 0.2 ms each), then PUT through the client-server API
 *    (`PUT /rooms/{roomId}/send/m.room.encrypted/{txnId}`), `concurrency` requests in flight.
 * 4. A backup version (`m.megolm_backup.v1.curve25519-aes-sha2`) whose entries the same machine
 *    writes (`enableBackupV1` + `backupRoomKeys`, test/peer/backup.ts): exactly the room's sessions.
 * 5. Secret storage as Element sets it up (`writeElementSecretStorage`): a Security Key derived from
 *    a Security Phrase, holding the backup key.
 * 6. The writer device signs out (unless `keepWriterDevice`), as an old laptop that was retired.
 *
 * Events are sent in parallel, so the timeline's order is only roughly the order of `bodies`:
 * match events by `eventIds[i]` ↔ `bodies[i]`, never by position in the room.
 */
import {
  BACKUP_ALGORITHM, backupPublicKey, encodeRecoveryKey,
} from '../../src/core/index.ts';
import type { KeysBackup } from '../../src/core/wire.ts';
import { HomeserverClient } from '../../src/platform/homeserver.ts';
import { EncryptionSettings, type OlmMachine } from '@matrix-org/matrix-sdk-crypto-wasm';
import { closePeerMachine, createPeerMachine, peerBackupRequests } from '../peer/index.ts';
import { withRoomId } from '../peer/machine.ts';
import { writeElementSecretStorage } from './peer-backup.ts';
import { loginUser, type SynapseAddress } from './synapse.ts';

export const MEGOLM_V1 = 'm.megolm.v1.aes-sha2';

export interface DemoHistoryOptions {
  /** The account that gets the room (it must exist; it is logged in once more as the writer device). */
  localpart: string;
  password: string;
  /** Encrypted `m.room.message` events to write (≥ 1). */
  events: number;
  /** Events per megolm session (default 1: every event its own session). */
  eventsPerSession?: number;
  /** The room's name (default "Encrypted history"). */
  roomName?: string;
  /** The Security Phrase the Security Key is derived from (default "demo security phrase"). */
  passphrase?: string;
  /** PBKDF2 iterations of the phrase (default 500,000, as Element; tests may pass fewer). */
  passphraseIterations?: number;
  /** Event PUTs in flight at once (default 16). */
  concurrency?: number;
  /** The body of event `index` (0-based) of `total`; default "Message 12 of 200 from the old laptop". */
  body?: (index: number, total: number) => string;
  /** Leave the writer device signed in (default: it signs out at the end). */
  keepWriterDevice?: boolean;
  /** Display name of the writer device (default "Old laptop (Element)"). */
  writerDeviceName?: string;
}

export interface DemoHistory {
  userId: string;
  roomId: string;
  /** One per event, in the order written; `bodies[i]` and `eventSessionIds[i]` belong to `eventIds[i]`. */
  eventIds: string[];
  /** Each event's megolm session id. */
  eventSessionIds: string[];
  /** The distinct session ids, in the order the sessions were made (= what the backup holds). */
  sessionIds: string[];
  /** The plaintext `body` of each event. */
  bodies: string[];
  /** The Security Key (secret storage), as Element shows it: what a user types to unlock. */
  recoveryKey: string;
  /** The Security Phrase it was derived from. */
  passphrase: string;
  backupVersion: string;
  /** The backup's own recovery key (`encodeRecoveryKey` of the backup private key), for tests. */
  backupRecoveryKey: string;
  writerDeviceId: string;
  /** Milliseconds per step, for benchmarks. */
  timings: { encrypt: number; send: number; backup: number; secretStorage: number; total: number };
}

const defaultBody = (index: number, total: number): string => `Message ${index + 1} of ${total} from the old laptop`;

/** A client-server API call with the writer's token (which never appears in an error). */
async function api<T>(baseUrl: string, accessToken: string, method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(`${baseUrl}/_matrix/client/v3${path}`, {
    method,
    headers: { authorization: `Bearer ${accessToken}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`demo history: ${method} ${path.replace(/\?.*/, '')} failed: HTTP ${res.status} ${text.slice(0, 300)}`);
  return JSON.parse(text) as T;
}

/** Runs `task(i)` for i in [0, count) with at most `limit` running at once; rejects with the first failure. */
async function pool(count: number, limit: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed && next < count) {
      const i = next++;
      try { await task(i); } catch (e) { failed = true; throw e; }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker));
}

function checkWhole(name: string, value: number, min: number): void {
  if (!Number.isSafeInteger(value) || value < min) throw new Error(`createDemoHistory: ${name} must be a whole number ≥ ${min}, got ${value}`);
}

interface Encrypted { content: Record<string, unknown>; sessionId: string }

/** Encrypts the events, a new session every `perSession` (the machine's own rotation pushed out of the way). */
async function encryptHistory(machine: OlmMachine, roomId: string, bodies: readonly string[], perSession: number): Promise<Encrypted[]> {
  const settings = new EncryptionSettings();
  // Rotation is ours to decide: the machine's default (100 messages, one week) must never cut in.
  settings.rotationPeriodMessages = BigInt(perSession + 1);
  const out: Encrypted[] = [];
  try {
    await withRoomId(roomId, async (room) => {
      for (let i = 0; i < bodies.length; i++) {
        if (i % perSession === 0) {
          await machine.invalidateGroupSession(room);
          await machine.shareRoomKey(room, [], settings);
        }
        const content = JSON.parse(await machine.encryptRoomEvent(room, 'm.room.message', JSON.stringify({ msgtype: 'm.text', body: bodies[i] }))) as Record<string, unknown>;
        if (content.algorithm !== MEGOLM_V1 || typeof content.session_id !== 'string') throw new Error('createDemoHistory: encryptRoomEvent returned content without a megolm session id');
        out.push({ content, sessionId: content.session_id });
      }
    });
  } finally {
    settings.free();
  }
  return out;
}

export async function createDemoHistory(synapse: SynapseAddress, options: DemoHistoryOptions): Promise<DemoHistory> {
  const {
    localpart, password, events: total, eventsPerSession = 1, roomName = 'Encrypted history', passphrase = 'demo security phrase',
    passphraseIterations = 500_000, concurrency = 16, body = defaultBody, keepWriterDevice = false, writerDeviceName = 'Old laptop (Element)',
  } = options;
  checkWhole('events', total, 1);
  checkWhole('eventsPerSession', eventsPerSession, 1);
  checkWhole('concurrency', concurrency, 1);
  const started = performance.now();
  const timings = { encrypt: 0, send: 0, backup: 0, secretStorage: 0, total: 0 };

  const writer = await loginUser(synapse, localpart, password);
  const { baseUrl } = synapse;
  const call = <T>(method: string, path: string, json?: unknown) => api<T>(baseUrl, writer.accessToken, method, path, json);
  const client = new HomeserverClient({ baseUrl, accessToken: writer.accessToken });
  let machine: OlmMachine | undefined;
  try {
    await call('PUT', `/devices/${encodeURIComponent(writer.deviceId)}`, { display_name: writerDeviceName });
    const { room_id: roomId } = await call<{ room_id: string }>('POST', '/createRoom', {
      preset: 'private_chat',
      name: roomName,
      topic: 'Written by another device with Element\'s crypto; readable here only with its keys.',
      initial_state: [{ type: 'm.room.encryption', state_key: '', content: { algorithm: MEGOLM_V1 } }],
    });

    machine = await createPeerMachine(writer.userId, writer.deviceId);
    const bodies = Array.from({ length: total }, (_, i) => body(i, total));
    let t = performance.now();
    const encrypted = await encryptHistory(machine, roomId, bodies, eventsPerSession);
    timings.encrypt = performance.now() - t;

    t = performance.now();
    const eventIds: string[] = new Array<string>(total);
    const txnBase = `demo-${Date.now().toString(36)}`;
    const roomPath = `/rooms/${encodeURIComponent(roomId)}/send/m.room.encrypted`;
    await pool(total, concurrency, async (i) => {
      const { event_id: eventId } = await call<{ event_id: string }>('PUT', `${roomPath}/${txnBase}-${i}`, encrypted[i]!.content);
      eventIds[i] = eventId;
    });
    timings.send = performance.now() - t;

    const eventSessionIds = encrypted.map((e) => e.sessionId);
    const sessionIds = [...new Set(eventSessionIds)];
    const expectedSessions = Math.ceil(total / eventsPerSession);
    if (sessionIds.length !== expectedSessions) throw new Error(`createDemoHistory: ${sessionIds.length} sessions for ${total} events, expected ${expectedSessions}`);

    // The backup: the writer's machine holds this room's sessions and nothing else.
    t = performance.now();
    const privateKey = crypto.getRandomValues(new Uint8Array(32));
    const publicKey = await backupPublicKey(privateKey);
    const backupVersion = await client.createBackupVersion({ algorithm: BACKUP_ALGORITHM, auth_data: { public_key: publicKey } });
    const backupBody: KeysBackup = { rooms: {} };
    for (const request of await peerBackupRequests(machine, publicKey, backupVersion)) {
      for (const [room, sessions] of Object.entries(request.body.rooms)) Object.assign((backupBody.rooms[room] ??= { sessions: {} }).sessions, sessions.sessions);
    }
    const backedUp = Object.entries(backupBody.rooms).flatMap(([room, r]) => Object.keys(r.sessions).map((id) => `${room} ${id}`)).sort();
    const wanted = sessionIds.map((id) => `${roomId} ${id}`).sort();
    if (JSON.stringify(backedUp) !== JSON.stringify(wanted)) throw new Error(`createDemoHistory: the machine backed up ${backedUp.length} sessions, not exactly the room's ${wanted.length}`);
    // ≈ 1 KB per session: one PUT per 1,000 keeps each request far below Synapse's body limit.
    let count = 0;
    const rooms = Object.entries(backupBody.rooms[roomId]!.sessions);
    for (let first = 0; first < rooms.length; first += 1000) {
      count = (await client.putBackupKeys(backupVersion, { rooms: { [roomId]: { sessions: Object.fromEntries(rooms.slice(first, first + 1000)) } } })).count;
    }
    if (count !== sessionIds.length) throw new Error(`createDemoHistory: the server counts ${count} keys in backup ${backupVersion}, expected ${sessionIds.length}`);
    timings.backup = performance.now() - t;

    t = performance.now();
    const storage = await writeElementSecretStorage(client, writer.userId, privateKey, { passphrase, iterations: passphraseIterations });
    timings.secretStorage = performance.now() - t;
    const backupRecoveryKey = encodeRecoveryKey(privateKey);
    privateKey.fill(0);
    storage.secretStorageKey.fill(0);

    timings.total = performance.now() - started;
    return {
      userId: writer.userId, roomId, eventIds, eventSessionIds, sessionIds, bodies,
      recoveryKey: storage.securityKey, passphrase, backupVersion, backupRecoveryKey, writerDeviceId: writer.deviceId, timings,
    };
  } finally {
    if (machine) closePeerMachine(machine);
    if (!keepWriterDevice) await call('POST', '/logout', {}).catch(() => undefined);
  }
}
