/**
 * The Element-crypto peer itself: it must make real sessions and real backups, or every interop
 * test built on it proves nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackupDecryptionKey, DecryptionErrorCode, TrustRequirement } from '@matrix-org/matrix-sdk-crypto-wasm';
import type { OlmMachine } from '@matrix-org/matrix-sdk-crypto-wasm';
import {
  PeerError, backupEntries, closePeerMachine, createPeerBackup, createPeerMachine, createSessions, decryptEvent,
  exportSessions, groupByRoom, importBackupIntoFreshMachine, initPeer, keyFileFromPeer, readKeyFileWithPeer, peerBackupDecryptor, peerBackupPublicKey, peerBackupRequests, referenceRecoveryKey,
  type CreatedSessions,
} from '../peer/index.ts';
import recoveryKeyVectors from '../vectors/recovery-keys.json' with { type: 'json' };

let machine: OlmMachine;
let created: CreatedSessions;

beforeAll(async () => {
  await initPeer();
  machine = await createPeerMachine();
  created = await createSessions(machine, { rooms: 3, sessionsPerRoom: 4, eventsPerSession: 2 });
});
afterAll(() => closePeerMachine(machine));

describe('createSessions', () => {
  it('makes distinct megolm sessions, each with its own events', async () => {
    expect(created.sessions).toHaveLength(12);
    expect(new Set(created.sessions.map((s) => s.sessionId)).size).toBe(12);
    expect(new Set(created.sessions.map((s) => s.roomId)).size).toBe(3);
    expect(created.events).toHaveLength(24);
    for (const session of created.sessions) {
      expect(session.events.map((e) => e.sessionId)).toEqual([session.sessionId, session.sessionId]);
    }
    const exported = await exportSessions(machine);
    expect(exported.map((k) => k.session_id).sort()).toEqual(created.sessions.map((s) => s.sessionId).sort());
  });

  it('makes events the creating machine decrypts to their plaintext', async () => {
    for (const event of created.events.slice(0, 4)) {
      const decrypted = await decryptEvent(machine, event.encrypted, event.roomId);
      expect({ type: decrypted.type, content: decrypted.content }).toEqual(event.plaintext);
    }
  });

  it('returns only the sessions made by this call', async () => {
    const more = await createSessions(machine, { rooms: 1, sessionsPerRoom: 2, eventsPerSession: 0 });
    expect(more.sessions).toHaveLength(2);
    expect(more.events).toEqual([]);
    const earlier = new Set(created.sessions.map((s) => s.sessionId));
    expect(more.sessions.some((s) => earlier.has(s.sessionId))).toBe(false);
  });

  it('refuses impossible counts with kind argument', async () => {
    await expect(createSessions(machine, { rooms: -1, sessionsPerRoom: 1 })).rejects.toMatchObject({ kind: 'argument' });
    await expect(createSessions(machine, { rooms: 1, sessionsPerRoom: 1.5 })).rejects.toMatchObject({ kind: 'argument' });
  });
});

describe('key files', () => {
  it('keyFileFromPeer refuses round counts a file cannot hold with kind argument', async () => {
    await expect(keyFileFromPeer([], 'p', -1)).rejects.toMatchObject({ kind: 'argument' });
    await expect(keyFileFromPeer([], 'p', 2 ** 32)).rejects.toMatchObject({ kind: 'argument' });
  });

  it('readKeyFileWithPeer refuses what is not a key file with kind key-file', () => {
    expect(() => readKeyFileWithPeer('not a key file', 'p')).toThrow(expect.objectContaining({ kind: 'key-file' }));
  });
});

describe('decryptEvent', () => {
  it('fails with kind event-decrypt and MissingRoomKey on a machine without the key', async () => {
    const stranger = await createPeerMachine();
    try {
      const event = created.events[0]!;
      const failure = await decryptEvent(stranger, event.encrypted, event.roomId).catch((e: unknown) => e);
      expect(failure).toBeInstanceOf(PeerError);
      expect(failure).toMatchObject({ kind: 'event-decrypt', code: DecryptionErrorCode.MissingRoomKey });
    } finally {
      closePeerMachine(stranger);
    }
  });
});

describe('peerBackupRequests', () => {
  it('backs up every session once, then stops', async () => {
    const fresh = await createPeerMachine();
    try {
      const mine = await createSessions(fresh, { rooms: 2, sessionsPerRoom: 3, eventsPerSession: 0 });
      const publicKey = peerBackupPublicKey(crypto.getRandomValues(new Uint8Array(32)));
      const requests = await peerBackupRequests(fresh, publicKey, '7');
      expect(requests.every((r) => r.version === '7')).toBe(true);
      const entries = backupEntries(requests);
      expect(entries.map((e) => e.sessionId).sort()).toEqual(mine.sessions.map((s) => s.sessionId).sort());
      // Everything is marked as sent: a second round has nothing left to do.
      expect(await peerBackupRequests(fresh, publicKey, '7')).toEqual([]);
    } finally {
      closePeerMachine(fresh);
    }
  });

  it('stops with kind backup-loop when requests are never marked as sent', async () => {
    const fresh = await createPeerMachine();
    try {
      await createSessions(fresh, { rooms: 1, sessionsPerRoom: 2, eventsPerSession: 0 });
      // The real machine, with markRequestAsSent swallowed: it then hands out the same request forever.
      const forgetful = new Proxy(fresh, {
        get: (target, property) => (property === 'markRequestAsSent' ? async () => true : Reflect.get(target, property, target)),
      });
      const publicKey = peerBackupPublicKey(crypto.getRandomValues(new Uint8Array(32)));
      await expect(peerBackupRequests(forgetful, publicKey, '1')).rejects.toMatchObject({ kind: 'backup-loop' });
    } finally {
      closePeerMachine(fresh);
    }
  });

  it('createPeerBackup refuses impossible options with kind argument', async () => {
    const publicKey = peerBackupPublicKey(crypto.getRandomValues(new Uint8Array(32)));
    await expect(createPeerBackup({ sessions: -1 }, publicKey, '1')).rejects.toMatchObject({ kind: 'argument' });
    await expect(createPeerBackup({ sessions: 1, rooms: 0 }, publicKey, '1')).rejects.toMatchObject({ kind: 'argument' });
    await expect(createPeerBackup({ sessions: 1, sessionsPerMachine: 0 }, publicKey, '1')).rejects.toMatchObject({ kind: 'argument' });
  });

  it('createPeerBackup spreads sessions over machines and rooms, and backs up each', async () => {
    const privateKey = crypto.getRandomValues(new Uint8Array(32));
    const backup = await createPeerBackup({ sessions: 7, rooms: 3, sessionsPerMachine: 3, eventsPerSession: 1 }, peerBackupPublicKey(privateKey), '1');
    expect(backup.sessions).toHaveLength(7);
    expect(backup.events).toHaveLength(7);
    expect(new Set(backup.exported.map((k) => k.sender_key)).size).toBe(3); // three machines
    expect(new Set(backup.exported.map((k) => k.room_id)).size).toBe(3);
    const entries = backupEntries(backup.requests);
    expect(entries.map((e) => e.sessionId).sort()).toEqual(backup.exported.map((k) => k.session_id).sort());
    const decryptor = peerBackupDecryptor(privateKey);
    try {
      for (const entry of entries) expect(decryptor.decrypt(entry.keyBackupData.session_data).algorithm).toBe('m.megolm.v1.aes-sha2');
    } finally {
      decryptor.free();
    }
  });
});

describe('peerBackupDecryptor', () => {
  it('derives the same public key as the wasm key object', () => {
    const key = BackupDecryptionKey.createRandomKey();
    const publicKey = key.megolmV1PublicKey.publicKeyBase64;
    const privateKey = Buffer.from(key.toBase64(), 'base64');
    key.free();
    expect(peerBackupPublicKey(privateKey)).toBe(publicKey);
  });

  it('shows only the public key when printed', () => {
    const privateKey = crypto.getRandomValues(new Uint8Array(32));
    const decryptor = peerBackupDecryptor(privateKey);
    try {
      const printed = JSON.stringify(decryptor) + String(decryptor);
      expect(printed).toContain(decryptor.publicKey);
      expect(printed).not.toContain(Buffer.from(privateKey).toString('base64').replace(/=+$/, ''));
    } finally {
      decryptor.free();
    }
  });

  it('refuses a private key that is not 32 bytes with kind argument', () => {
    expect(() => peerBackupDecryptor(new Uint8Array(31))).toThrow(expect.objectContaining({ kind: 'argument' }));
  });
});

describe('referenceRecoveryKey', () => {
  it('reproduces the published recovery keys', () => {
    const valid = recoveryKeyVectors.valid.filter((v) => /^[0-9a-f]{64}$/.test(v.key_hex) && /^(\S{4} ){11}\S{4}$/.test(v.encoded));
    expect(valid.length).toBeGreaterThanOrEqual(2);
    for (const vector of valid) expect(referenceRecoveryKey(Buffer.from(vector.key_hex, 'hex'))).toBe(vector.encoded);
  });
});

describe('trust of restored keys', () => {
  it('keys imported from a backup are refused under CrossSigned and accepted under Untrusted', async () => {
    // Why decryptEvent defaults to TrustRequirement.Untrusted: backup keys carry no sender proof.
    // (wasm 18.9 also accepts them under CrossSignedOrLegacy, which lets unknown devices through.)
    const privateKey = crypto.getRandomValues(new Uint8Array(32));
    const decryptor = peerBackupDecryptor(privateKey);
    const fresh = await createPeerMachine();
    let restorer: OlmMachine | undefined;
    try {
      const mine = await createSessions(fresh, { rooms: 1, sessionsPerRoom: 1, eventsPerSession: 1 });
      const [entry] = backupEntries(await peerBackupRequests(fresh, decryptor.publicKey, '1'));
      const data = decryptor.decrypt(entry!.keyBackupData.session_data);
      const restored = await importBackupIntoFreshMachine(groupByRoom([{ ...entry!, data }]), '1');
      restorer = restored.machine;
      expect(restored.importedCount).toBe(1);
      const event = mine.events[0]!;
      await expect(decryptEvent(restorer, event.encrypted, event.roomId, TrustRequirement.CrossSigned)).rejects.toMatchObject({ kind: 'event-decrypt', code: DecryptionErrorCode.UnknownSenderDevice });
      expect((await decryptEvent(restorer, event.encrypted, event.roomId)).content).toEqual(event.plaintext.content);
    } finally {
      decryptor.free();
      closePeerMachine(fresh);
      if (restorer) closePeerMachine(restorer);
    }
  });
});
