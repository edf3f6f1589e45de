/**
 * The fixtures of test/harness/peer-backup.ts against the real Synapse: a backup Element's crypto
 * wrote, Element's secret storage, a legacy passphrase backup, and broken entries that fail the way
 * they say.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import {
  backupKeyFromSecretStorage, backupKeyMatches, checkSecretStorageKey, createBackupDecryptor, createSecretStorageKeyCheck,
  decodeBase64, decodeRecoveryKey, decryptSecret, derivePassphraseKey, MEGOLM_BACKUP_SECRET_NAME, parseSessionKey,
  secretStorageKeyFromPassphrase, type EncryptedSecret,
} from '../../src/core/index.ts';
import { HomeserverClient } from '../../src/platform/homeserver.ts';
import { peerBackupPublicKey } from '../peer/index.ts';
import {
  backupPlaintextOf, CORRUPTION_KINDS, corruptionOf, createPeerWrittenBackup, putCorruptEntries, readSecretStorage,
  WRONG_SESSION_ALGORITHM, writeElementSecretStorage, type PeerWrittenBackup,
} from '../harness/peer-backup.ts';
import { sharedSynapse } from '../harness/synapse-global.ts';
import { uniqueLocalpart } from '../harness/synapse.ts';

const synapse = sharedSynapse();
const SESSIONS = 5000;

async function freshUser(): Promise<{ client: HomeserverClient; userId: string }> {
  const user = await synapse.registerUser(uniqueLocalpart('peerfix'), 'peer fixture password');
  return { client: new HomeserverClient({ baseUrl: synapse.baseUrl, accessToken: user.accessToken }), userId: user.userId };
}

/** `iv`/`ciphertext`/`mac` as js-sdk writes them: padded base64. */
function isPaddedBase64(text: unknown, bytes: number): boolean {
  return typeof text === 'string' && text.length === 4 * Math.ceil(bytes / 3) && decodeBase64(text).length === bytes;
}

describe('a backup written by Element\'s crypto', () => {
  let client: HomeserverClient;
  let userId: string;
  let backup: PeerWrittenBackup;
  let ms = 0;

  beforeAll(async () => {
    ({ client, userId } = await freshUser());
    const started = performance.now();
    backup = await createPeerWrittenBackup(client, { sessions: SESSIONS, rooms: 7 });
    ms = performance.now() - started;
    console.log(`createPeerWrittenBackup: ${SESSIONS} sessions in ${(ms / 1000).toFixed(1)} s`);
  });

  it(`holds all ${SESSIONS} sessions, under the version's public key`, async () => {
    expect(ms).toBeLessThan(30_000);
    const info = await client.getBackupVersion(backup.version);
    expect(info).toMatchObject({ state: 'supported', count: SESSIONS, auth_data: { public_key: backup.publicKey } });
    expect(info.auth_data).not.toHaveProperty('private_key_salt');
    expect(await client.getLatestBackupVersion()).toMatchObject({ version: backup.version });
    expect(peerBackupPublicKey(backup.privateKey)).toBe(backup.publicKey);
    expect(decodeRecoveryKey(backup.recoveryKey)).toEqual(backup.privateKey);
    expect(new Set(backup.sessions.map((s) => s.session_id)).size).toBe(SESSIONS);

    // Every exported session is stored under its room (read per room: the sessions are in these rooms only).
    expect(new Set(backup.sessions.map((s) => s.room_id))).toEqual(new Set(backup.roomIds));
    const stored: string[] = [];
    for (const roomId of backup.roomIds) {
      const room = await client.getBackupRoomKeys(backup.version, roomId);
      expect(room.invalid).toEqual([]);
      stored.push(...Object.keys(room.sessions).map((id) => `${roomId} ${id}`));
    }
    expect(stored.sort()).toEqual(backup.sessions.map((s) => `${s.room_id} ${s.session_id}`).sort());
  });

  it('decrypts sampled entries with the private key to what the peer exported', async () => {
    const decryptor = await createBackupDecryptor(backup.privateKey);
    const step = Math.floor(SESSIONS / 25);
    for (let i = 0; i < SESSIONS; i += step) {
      const session = backup.sessions[i]!;
      const entry = await client.getBackupSessionKey(backup.version, session.room_id, session.session_id);
      expect(entry.first_message_index).toBe(parseSessionKey(session.session_key).firstMessageIndex);
      expect(await decryptor.decrypt(entry.session_data)).toEqual(backupPlaintextOf(session));
      expect(await corruptionOf(decryptor, session.session_id, entry)).toBeNull();
    }
  });

  it('recovers the backup key from Element\'s secret storage with the Security Key', async () => {
    const written = await writeElementSecretStorage(client, userId, backup.privateKey, {});
    expect(written.keyId).toMatch(/^[A-Za-z0-9]{32}$/);
    expect(written.securityPhrase).toBeUndefined();

    // The account data has Element's shape.
    expect(await client.getAccountData(userId, 'm.secret_storage.default_key')).toEqual({ key: written.keyId });
    const description = await client.getAccountData(userId, `m.secret_storage.key.${written.keyId}`);
    expect(Object.keys(description ?? {}).sort()).toEqual(['algorithm', 'iv', 'mac']);
    expect(isPaddedBase64(description?.iv, 16) && isPaddedBase64(description?.mac, 32)).toBe(true);
    // The key check is js-sdk's calculateKeyCheck: the core computes the same MAC for that IV.
    const key = decodeRecoveryKey(written.securityKey);
    const recomputed = await createSecretStorageKeyCheck(key, { iv: decodeBase64(description?.iv as string) });
    expect(decodeBase64(recomputed.mac)).toEqual(decodeBase64(description?.mac as string));
    const secret = await client.getAccountData(userId, MEGOLM_BACKUP_SECRET_NAME);
    const encrypted = (secret?.encrypted as Record<string, EncryptedSecret>)[written.keyId]!;
    expect(isPaddedBase64(encrypted.iv, 16) && isPaddedBase64(encrypted.mac, 32)).toBe(true);
    const stored = await decryptSecret(key, MEGOLM_BACKUP_SECRET_NAME, encrypted);
    expect(stored).toMatch(/^[A-Za-z0-9+/]{43}$/); // unpadded, as rust's BackupDecryptionKey.toBase64()

    const accountData = await readSecretStorage(client, userId);
    expect(await checkSecretStorageKey(key, accountData.keys[written.keyId]!)).toBe(true);
    const recovered = await backupKeyFromSecretStorage(key, accountData);
    expect(recovered).toEqual(backup.privateKey);
    expect(await backupKeyMatches(recovered, backup.publicKey)).toBe(true);
    await expect(backupKeyFromSecretStorage(crypto.getRandomValues(new Uint8Array(32)), accountData)).rejects.toMatchObject({ kind: 'key-check' });
  });

  it('recovers it with the Security Phrase, and with the Security Key derived from it', async () => {
    const written = await writeElementSecretStorage(client, userId, backup.privateKey, { passphrase: 'correct horse battery staple', iterations: 1000 });
    expect(written.securityPhrase).toBe('correct horse battery staple');
    const accountData = await readSecretStorage(client, userId);
    const description = accountData.keys[written.keyId]!;
    expect(description.passphrase).toEqual({ algorithm: 'm.pbkdf2', salt: expect.stringMatching(/^[A-Za-z0-9]{32}$/), iterations: 1000, bits: 256 });

    const fromPhrase = await secretStorageKeyFromPassphrase('correct horse battery staple', description);
    expect(fromPhrase).toEqual(decodeRecoveryKey(written.securityKey));
    expect(await backupKeyFromSecretStorage(fromPhrase, accountData)).toEqual(backup.privateKey);
    expect(await backupKeyFromSecretStorage(decodeRecoveryKey(written.securityKey), accountData)).toEqual(backup.privateKey);
    const wrong = await secretStorageKeyFromPassphrase('wrong phrase', description);
    await expect(backupKeyFromSecretStorage(wrong, accountData)).rejects.toMatchObject({ kind: 'key-check' });
  });

  it('writes secret storage without a key check, and as Element\'s phrase shape without "bits"', async () => {
    const written = await writeElementSecretStorage(client, userId, backup.privateKey, { passphrase: 'p', withKeyCheck: false, passphraseBits: null });
    const accountData = await readSecretStorage(client, userId);
    const description = accountData.keys[written.keyId]!;
    expect(description).not.toHaveProperty('iv');
    expect(description).not.toHaveProperty('mac');
    expect(description.passphrase).not.toHaveProperty('bits');
    expect(await backupKeyFromSecretStorage(await secretStorageKeyFromPassphrase('p', description), accountData)).toEqual(backup.privateKey);
    // No key check: the secret's own MAC shows a wrong key.
    await expect(backupKeyFromSecretStorage(crypto.getRandomValues(new Uint8Array(32)), accountData)).rejects.toMatchObject({ kind: 'key-check' });
  });
});

describe('a legacy passphrase backup with broken entries', () => {
  let client: HomeserverClient;
  let backup: PeerWrittenBackup;

  beforeAll(async () => {
    ({ client } = await freshUser());
    backup = await createPeerWrittenBackup(client, { sessions: 30, rooms: 3, legacyPassphrase: 'an old backup passphrase' });
  });

  it('derives the backup key from the passphrase and auth_data', async () => {
    const info = await client.getBackupVersion(backup.version);
    expect(info.count).toBe(30);
    const authData = info.auth_data as { public_key: string; private_key_salt: string; private_key_iterations: number };
    expect(authData.private_key_salt).toMatch(/^[A-Za-z0-9]{32}$/);
    expect(authData.private_key_iterations).toBe(1000);
    expect(backup.legacyPassphrase).toBe('an old backup passphrase');
    const derived = await derivePassphraseKey('an old backup passphrase', authData.private_key_salt, authData.private_key_iterations);
    expect(derived).toEqual(backup.privateKey);
    expect(await backupKeyMatches(derived, authData.public_key)).toBe(true);
    const session = backup.sessions[0]!;
    const entry = await client.getBackupSessionKey(backup.version, session.room_id, session.session_id);
    expect(await (await createBackupDecryptor(derived)).decrypt(entry.session_data)).toEqual(backupPlaintextOf(session));
  });

  it('stores one entry broken in each way, each failing as it says', async () => {
    const corrupt = await putCorruptEntries(client, backup.version, backup.publicKey);
    expect(corrupt.map((c) => c.kind)).toEqual([...CORRUPTION_KINDS]);
    expect((await client.getBackupVersion(backup.version)).count).toBe(30 + CORRUPTION_KINDS.length);

    const decryptor = await createBackupDecryptor(backup.privateKey);
    for (const entry of corrupt) {
      const stored = await client.getBackupSessionKey(backup.version, entry.roomId, entry.sessionId);
      expect(stored).toEqual(entry.keyBackupData);
      expect({ kind: entry.kind, observed: await corruptionOf(decryptor, entry.sessionId, stored) }).toEqual({ kind: entry.kind, observed: entry.kind });

      const { session_data: sessionData } = stored;
      switch (entry.kind) {
        case 'base64':
        case 'padding':
        case 'mac':
        case 'json':
          await expect(decryptor.decrypt(sessionData)).rejects.toMatchObject({ name: 'CoreError', kind: entry.kind });
          break;
        case 'algorithm': {
          const plaintext = await decryptor.decrypt(sessionData);
          expect(plaintext.algorithm).toBe(WRONG_SESSION_ALGORITHM);
          expect(parseSessionKey(plaintext.session_key).sessionId).toBe(entry.sessionId); // only the algorithm is wrong
          break;
        }
        case 'session-id': {
          const plaintext = await decryptor.decrypt(sessionData);
          expect(plaintext.algorithm).toBe('m.megolm.v1.aes-sha2');
          const actual = parseSessionKey(plaintext.session_key).sessionId;
          expect(actual).toBe(entry.actualSessionId);
          expect(actual).not.toBe(entry.sessionId);
          break;
        }
      }
    }
    // The padding entry is real AES-CBC under the right keys: only its padding is wrong (the MAC passed).
    const padding = corrupt.find((c) => c.kind === 'padding')!;
    expect(decodeBase64(padding.keyBackupData.session_data.ciphertext).length % 16).toBe(0);
  });
});
