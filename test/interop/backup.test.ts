/**
 * Backup entries (`m.megolm_backup.v1.curve25519-aes-sha2`) both ways between the core and
 * Element's crypto (matrix-sdk-crypto-wasm), on sessions an OlmMachine made.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  backupPublicKey, createBackupDecryptor, encryptSessionData, parseExportedSession, parseSessionKey,
} from '../../src/core/index.ts';
import {
  backupEntries, closePeerMachine, createPeerMachine, decryptEvent, groupByRoom, importBackupIntoFreshMachine,
  peerBackupDecryptor, peerBackupPublicKey, peerBackupRequests, type PeerBackupEntry,
} from '../peer/index.ts';
import type { BackedUpSessionData, EncryptedSessionData } from '../peer/index.ts';
import { createPeerFixture, randomPrivateKey, type PeerFixture } from './fixture.ts';

const implementations = ['native', 'noble'] as const;

let peer: PeerFixture;
beforeAll(async () => { peer = await createPeerFixture(); });
afterAll(() => peer.close());

describe('Element writes a backup, the core reads it', () => {
  let privateKey: Uint8Array;
  let entries: PeerBackupEntry[];

  beforeAll(async () => {
    privateKey = randomPrivateKey();
    entries = backupEntries(await peerBackupRequests(peer.machine, peerBackupPublicKey(privateKey), '1'));
  });

  it('the peer backed up every session it made, once', () => {
    expect(entries.map((e) => `${e.roomId} ${e.sessionId}`).sort())
      .toEqual(peer.sessions.map((s) => `${s.roomId} ${s.sessionId}`).sort());
  });

  for (const x25519 of implementations) {
    it(`every entry decrypts (${x25519} X25519) to exactly what exportRoomKeys reports`, async () => {
      const decryptor = await createBackupDecryptor(privateKey, { x25519 });
      expect(decryptor.publicKey).toBe(peerBackupPublicKey(privateKey));
      for (const { sessionId, keyBackupData } of entries) {
        const data = await decryptor.decrypt(keyBackupData.session_data);
        const expected = peer.expectedBackupData.get(sessionId)!;
        // Field by field first, for a readable failure; then the whole object, unknown members included.
        expect(data.algorithm).toBe(expected.algorithm);
        expect(data.sender_key).toBe(expected.sender_key);
        expect(data.sender_claimed_keys).toEqual(expected.sender_claimed_keys);
        expect(data.session_key).toBe(expected.session_key);
        expect(data.forwarding_curve25519_key_chain).toEqual(expected.forwarding_curve25519_key_chain);
        expect(data).toEqual(expected);
        const sessionKey = parseSessionKey(data.session_key);
        expect(sessionKey).toEqual({ version: 1, firstMessageIndex: keyBackupData.first_message_index, sessionId });
      }
    });
  }

  it('decryptMany (what benchmarks use) gives the same results in the same order', async () => {
    const decryptor = await createBackupDecryptor(privateKey);
    const results = await decryptor.decryptMany(entries.map((e) => e.keyBackupData.session_data));
    expect(results.map((r) => (r.ok ? r.value : r.error))).toEqual(entries.map((e) => peer.expectedBackupData.get(e.sessionId)));
  });

  it('the entry metadata is what rust-sdk writes for its own sessions', () => {
    for (const { keyBackupData } of entries) {
      expect(keyBackupData).toMatchObject({ first_message_index: 0, forwarded_count: 0, is_verified: false });
    }
  });

  it('another private key is refused with kind mac, on both X25519 paths', async () => {
    const entry = entries[0]!.keyBackupData.session_data;
    for (const x25519 of implementations) {
      const stranger = await createBackupDecryptor(randomPrivateKey(), { x25519 });
      await expect(stranger.decrypt(entry)).rejects.toMatchObject({ kind: 'mac' });
    }
  });
});

describe('the core writes a backup, Element reads and restores it', () => {
  const backupVersion = '3';

  /** Encrypt every session of the fixture with the core, as the upload path will. */
  async function coreBackup(publicKey: string, x25519: 'native' | 'noble'): Promise<Array<{ roomId: string; sessionId: string; sessionData: EncryptedSessionData; data: BackedUpSessionData }>> {
    return Promise.all(peer.exported.map(async (key) => {
      // The extension's own path from an exported key to a backup plaintext.
      const { roomId, sessionId, data } = parseExportedSession(key);
      return { roomId, sessionId, data, sessionData: await encryptSessionData(publicKey, data, { x25519 }) };
    }));
  }

  for (const x25519 of implementations) {
    it(`BackupDecryptionKey.decryptV1 reads what encryptSessionData wrote (${x25519} X25519)`, async () => {
      const privateKey = randomPrivateKey();
      const publicKey = await backupPublicKey(privateKey, { x25519 });
      const written = await coreBackup(publicKey, x25519);
      const element = peerBackupDecryptor(privateKey);
      try {
        for (const { sessionId, sessionData } of written) {
          expect(element.decrypt(sessionData)).toEqual(peer.expectedBackupData.get(sessionId));
        }
      } finally {
        element.free();
      }
    });
  }

  it('a fresh OlmMachine imports the entries and decrypts the original room events', async () => {
    const privateKey = randomPrivateKey();
    const written = await coreBackup(await backupPublicKey(privateKey), 'native');
    const element = peerBackupDecryptor(privateKey);
    const decrypted = written.map(({ roomId, sessionId, sessionData }) => ({ roomId, sessionId, data: element.decrypt(sessionData) }));
    element.free();

    // Control: without the import, the events do not decrypt, so success below means the import worked.
    const stranger = await createPeerMachine();
    await expect(decryptEvent(stranger, peer.events[0]!.encrypted, peer.events[0]!.roomId)).rejects.toMatchObject({ kind: 'event-decrypt' });
    closePeerMachine(stranger);

    const restored = await importBackupIntoFreshMachine(groupByRoom(decrypted), backupVersion);
    try {
      expect({ imported: restored.importedCount, total: restored.totalCount }).toEqual({ imported: peer.sessions.length, total: peer.sessions.length });
      for (const event of peer.events) {
        const result = await decryptEvent(restored.machine, event.encrypted, event.roomId);
        expect({ type: result.type, content: result.content }).toEqual(event.plaintext);
        expect(result.senderCurve25519Key).toBe(peer.expectedBackupData.get(event.sessionId)!.sender_key);
      }
    } finally {
      closePeerMachine(restored.machine);
    }
  });

  it('a pinned ephemeral key gives the same entry twice, and Element reads it', async () => {
    const privateKey = randomPrivateKey();
    const publicKey = await backupPublicKey(privateKey);
    const data = peer.expectedBackupData.get(peer.sessions[0]!.sessionId)!;
    const ephemeralPrivateKey = randomPrivateKey();
    const first = await encryptSessionData(publicKey, data, { ephemeralPrivateKey, x25519: 'native' });
    const second = await encryptSessionData(publicKey, data, { ephemeralPrivateKey, x25519: 'noble' });
    expect(second).toEqual(first);
    expect(first.ephemeral).toBe(peerBackupPublicKey(ephemeralPrivateKey));
    const element = peerBackupDecryptor(privateKey);
    try {
      expect(element.decrypt(first)).toEqual(data);
    } finally {
      element.free();
    }
  });

  it('Element refuses the core\'s entries under the wrong private key', async () => {
    const publicKey = await backupPublicKey(randomPrivateKey());
    const sessionData = await encryptSessionData(publicKey, peer.expectedBackupData.get(peer.sessions[0]!.sessionId)!);
    const wrong = peerBackupDecryptor(randomPrivateKey());
    try {
      expect(() => wrong.decrypt(sessionData)).toThrow(expect.objectContaining({ kind: 'backup-decrypt', message: expect.stringMatching(/MAC/) }));
    } finally {
      wrong.free();
    }
  });
});
