/**
 * The encrypted-history fixture (test/harness/demo-history.ts) against the real Synapse: the events
 * are in the room, every one's session is in the backup and nothing else is, the Security Key and
 * Security Phrase open secret storage to the backup key, and the backup, decrypted by the core's
 * `createBackupDecryptor`, gives sessions with which a fresh Element machine decrypts every event.
 */
import type { OlmMachine } from '@matrix-org/matrix-sdk-crypto-wasm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  backupKeyFromSecretStorage, createBackupDecryptor, decodeRecoveryKey, encodeRecoveryKey, secretStorageKeyFromPassphrase,
} from '../../src/core/index.ts';
import { HomeserverClient } from '../../src/platform/homeserver.ts';
import { createDemoHistory, MEGOLM_V1, type DemoHistory } from '../harness/demo-history.ts';
import { readSecretStorage } from '../harness/peer-backup.ts';
import { sharedSynapse } from '../harness/synapse-global.ts';
import { uniqueLocalpart } from '../harness/synapse.ts';
import { closePeerMachine, createPeerMachine, decryptEvent, groupByRoom, importBackupIntoFreshMachine, PeerError } from '../peer/index.ts';
import type { BackedUpSessionData } from '../peer/index.ts';

const synapse = sharedSynapse();
const PASSWORD = 'demo history password';

interface RoomEvent { type: string; event_id: string; sender: string; room_id: string; content: Record<string, unknown>; origin_server_ts: number }

/** Every event of the room, oldest first, read as a client reads it (`/messages` backwards to the start). */
async function roomEvents(accessToken: string, roomId: string): Promise<RoomEvent[]> {
  const out: RoomEvent[] = [];
  let from: string | undefined;
  for (;;) {
    const query = new URLSearchParams({ dir: 'b', limit: '500', ...(from !== undefined ? { from } : {}) });
    const res = await fetch(`${synapse.baseUrl}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?${query}`, { headers: { authorization: `Bearer ${accessToken}` } });
    expect(res.status).toBe(200);
    const page = (await res.json()) as { chunk: RoomEvent[]; end?: string };
    out.push(...page.chunk);
    if (page.end === undefined || page.chunk.length === 0) break;
    from = page.end;
  }
  return out.reverse();
}

describe.each([
  { events: 60, eventsPerSession: 1 },
  { events: 61, eventsPerSession: 5 },
])('createDemoHistory: $events events, $eventsPerSession per session', ({ events, eventsPerSession }) => {
  let history: DemoHistory;
  let reader: { accessToken: string; userId: string };
  let client: HomeserverClient;
  let machine: OlmMachine | undefined;

  beforeAll(async () => {
    const localpart = uniqueLocalpart('history');
    await synapse.registerUser(localpart, PASSWORD);
    history = await createDemoHistory(synapse, { localpart, password: PASSWORD, events, eventsPerSession, passphraseIterations: 1000, passphrase: 'a history phrase' });
    // A device of the same user signed in afterwards, as the demo page is.
    reader = await synapse.login(localpart, PASSWORD);
    client = new HomeserverClient({ baseUrl: synapse.baseUrl, accessToken: reader.accessToken });
  });
  afterAll(() => { if (machine) closePeerMachine(machine); });

  it('writes the events to an encrypted room, one megolm session per rotation', async () => {
    const sessions = Math.ceil(events / eventsPerSession);
    expect(history.eventIds).toHaveLength(events);
    expect(history.bodies).toHaveLength(events);
    expect(new Set(history.eventIds).size).toBe(events);
    expect(history.sessionIds).toHaveLength(sessions);
    for (let i = 0; i < events; i++) expect(history.eventSessionIds[i]).toBe(history.sessionIds[Math.floor(i / eventsPerSession)]);

    const all = await roomEvents(reader.accessToken, history.roomId);
    const encryption = all.find((e) => e.type === 'm.room.encryption');
    expect(encryption?.content).toEqual({ algorithm: MEGOLM_V1 });
    const encrypted = all.filter((e) => e.type === 'm.room.encrypted');
    expect(new Set(encrypted.map((e) => e.event_id))).toEqual(new Set(history.eventIds));
    const byId = new Map(encrypted.map((e) => [e.event_id, e]));
    history.eventIds.forEach((id, i) => {
      const event = byId.get(id)!;
      expect(event.sender).toBe(history.userId);
      expect(event.content).toMatchObject({ algorithm: MEGOLM_V1, session_id: history.eventSessionIds[i] });
      expect(JSON.stringify(event.content)).not.toContain(history.bodies[i]);
    });
    // The writer device signed out: the history can only be read with the backup.
    const devices = await (await fetch(`${synapse.baseUrl}/_matrix/client/v3/devices`, { headers: { authorization: `Bearer ${reader.accessToken}` } })).json() as { devices: { device_id: string }[] };
    expect(devices.devices.map((d) => d.device_id)).not.toContain(history.writerDeviceId);
  });

  it('backs up exactly the room\'s sessions, under a key the Security Key and the phrase both reach', async () => {
    const info = await client.getLatestBackupVersion();
    expect(info).toMatchObject({ version: history.backupVersion, count: history.sessionIds.length });

    const res = await fetch(`${synapse.baseUrl}/_matrix/client/v3/room_keys/keys?version=${history.backupVersion}`, { headers: { authorization: `Bearer ${reader.accessToken}` } });
    const whole = (await res.json()) as { rooms: Record<string, { sessions: Record<string, unknown> }> };
    expect(Object.keys(whole.rooms)).toEqual([history.roomId]);
    expect(Object.keys(whole.rooms[history.roomId]!.sessions).sort()).toEqual([...history.sessionIds].sort());

    const storage = await readSecretStorage(client, history.userId);
    const fromKey = await backupKeyFromSecretStorage(decodeRecoveryKey(history.recoveryKey), storage);
    const description = storage.keys[storage.defaultKeyId!]!;
    const fromPhrase = await backupKeyFromSecretStorage(await secretStorageKeyFromPassphrase(history.passphrase, description), storage);
    expect(fromPhrase).toEqual(fromKey);
    expect(encodeRecoveryKey(fromKey)).toBe(history.backupRecoveryKey);
  });

  it('decrypts (core decryptor) to sessions with which a fresh Element machine reads every event', async () => {
    const storage = await readSecretStorage(client, history.userId);
    const privateKey = await backupKeyFromSecretStorage(decodeRecoveryKey(history.recoveryKey), storage);
    const decryptor = await createBackupDecryptor(privateKey);
    const room = await client.getBackupRoomKeys(history.backupVersion, history.roomId);
    expect(room.invalid).toEqual([]);
    const entries: { roomId: string; sessionId: string; data: BackedUpSessionData }[] = [];
    for (const [sessionId, data] of Object.entries(room.sessions)) {
      entries.push({ roomId: history.roomId, sessionId, data: (await decryptor.decrypt(data.session_data)) as BackedUpSessionData });
    }

    const all = (await roomEvents(reader.accessToken, history.roomId)).filter((e) => e.type === 'm.room.encrypted');
    const byId = new Map(all.map((e) => [e.event_id, e]));

    // Without the backup a new device reads nothing.
    const bare = await createPeerMachine(history.userId);
    try {
      await expect(decryptEvent(bare, JSON.stringify(byId.get(history.eventIds[0]!)), history.roomId)).rejects.toBeInstanceOf(PeerError);
    } finally {
      closePeerMachine(bare);
    }

    const restored = await importBackupIntoFreshMachine(groupByRoom(entries), history.backupVersion);
    machine = restored.machine;
    expect(restored.importedCount).toBe(history.sessionIds.length);
    for (let i = 0; i < history.eventIds.length; i++) {
      const decrypted = await decryptEvent(machine, JSON.stringify(byId.get(history.eventIds[i]!)), history.roomId);
      expect(decrypted).toMatchObject({ type: 'm.room.message', content: { msgtype: 'm.text', body: history.bodies[i] } });
    }
  });
});
