/**
 * Server-side state written the way Element writes it, on a real Synapse, for restore tests:
 *
 * - `createPeerWrittenBackup`: a backup version created through the API whose entries Element's
 *   crypto (test/peer: `enableBackupV1` + `backupRoomKeys`) encrypted, PUT in batches. Optionally a
 *   legacy (pre-4S) backup whose private key is PBKDF2 of a passphrase (reference §2.1, §4.2).
 * - `writeElementSecretStorage`: the 4S account data Element's `addKey` + `store` write (reference
 *   §5): key description with key check (and passphrase parameters), default key, and the
 *   `m.megolm_backup.v1` secret holding the backup key.
 * - `putCorruptEntries`: entries broken in each way a restore must report, each checked to be stored.
 * - `corruptionOf`: what the core's decryptor makes of one entry, to check the broken ones.
 *
 * Speed: the peer's sessions are made on machines of 200 (see test/peer/bulk.ts for why) and each
 * batch is PUT while the next machine works, so Synapse's inserts overlap Element's encryption.
 */
import { x25519 } from '@noble/curves/ed25519.js';
import { cbc } from '@noble/ciphers/aes.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import {
  BACKUP_ALGORITHM, backupPublicKey, createBackupDecryptor, decodeBase64, derivePassphraseKey, encodeBase64, encodeRecoveryKey,
  encryptSecret, encryptSessionData, isCoreError, MEGOLM_ALGORITHM, MEGOLM_BACKUP_SECRET_NAME, parseSessionKey,
  SECRET_STORAGE_ALGORITHM, type BackedUpSessionData, type BackupDecryptor, type EncryptedSecret, type EncryptedSessionData,
  type SecretStorageAccountData, type SecretStorageKeyDescription,
} from '../../src/core/index.ts';
import type { KeyBackupData, KeysBackup } from '../../src/core/wire.ts';
import type { HomeserverClient } from '../../src/platform/homeserver.ts';
import {
  closePeerMachine, createPeerMachine, createSessionsInRooms, exportSessions, peerBackupRequests, type ExportedSessionData,
} from '../peer/index.ts';

// ---------------------------------------------------------------------------------------------
// Small helpers

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** `length` random alphanumerics: Element's salts and key ids (js-sdk `secureRandomString(32)`). */
export function randomAlphanumeric(length = 32): string {
  const out: string[] = [];
  while (out.length < length) {
    for (const b of crypto.getRandomValues(new Uint8Array(length * 2))) {
      if (b < 248 && out.length < length) out.push(ALNUM[b % 62]!); // 248 = 4×62: no modulo bias
    }
  }
  return out.join('');
}

function randomTag(): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(4)), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** The backup plaintext of an exported session: the export minus `room_id`/`session_id` (reference §2.2). */
export function backupPlaintextOf(session: ExportedSessionData): BackedUpSessionData {
  const { room_id: _roomId, session_id: _sessionId, ...data } = session;
  return data as BackedUpSessionData;
}

/** Re-encodes base64 with `=` padding, as matrix-js-sdk's `encodeBase64` writes secret-storage fields. */
function padded(text: string): string {
  return encodeBase64(decodeBase64(text), true);
}

function sessionCount(body: KeysBackup): number {
  let n = 0;
  for (const room of Object.values(body.rooms)) n += Object.keys(room.sessions).length;
  return n;
}

// ---------------------------------------------------------------------------------------------
// 1. A backup written by Element's crypto

export interface PeerWrittenBackupOptions {
  sessions: number;
  /** Rooms the sessions are spread over, round-robin (default 10); ignored when `roomIds` is given. */
  rooms?: number;
  /** Real room ids to file the sessions under (e.g. rooms the user joined); default fake `!backup-…:peer.test`. */
  roomIds?: readonly string[];
  /** Makes a legacy backup: private key = PBKDF2-SHA-512(phrase, auth_data.private_key_salt, iterations). */
  legacyPassphrase?: string;
  /** PBKDF2 iterations of the legacy phrase (default 1000 for speed; Element wrote 500,000). */
  legacyIterations?: number;
  /** Sessions per Element machine (default 200: `backupRoomKeys` is O(n²) per machine, test/peer/bulk.ts). */
  sessionsPerMachine?: number;
  /** Sessions per `PUT /room_keys/keys` (default 1000, ≈1 MB). */
  sessionsPerPut?: number;
}

export interface PeerWrittenBackup {
  version: string;
  privateKey: Uint8Array;
  /** `encodeRecoveryKey(privateKey)`: what Element shows as the backup's recovery key. */
  recoveryKey: string;
  /** Unpadded base64, as in `auth_data.public_key`. */
  publicKey: string;
  /** What the peer's machines exported: the expected plaintext (plus ids) of every entry. */
  sessions: ExportedSessionData[];
  roomIds: string[];
  legacyPassphrase?: string;
  /** `auth_data` as created (legacy fields included). */
  authData: Record<string, unknown>;
}

export async function createPeerWrittenBackup(client: HomeserverClient, options: PeerWrittenBackupOptions): Promise<PeerWrittenBackup> {
  const { sessions: total, legacyPassphrase, legacyIterations = 1000, sessionsPerMachine = 200, sessionsPerPut = 1000 } = options;
  if (!Number.isSafeInteger(total) || total < 0) throw new Error(`createPeerWrittenBackup: sessions must be a whole number ≥ 0, got ${total}`);
  if (!Number.isSafeInteger(sessionsPerMachine) || sessionsPerMachine < 1) throw new Error('createPeerWrittenBackup: sessionsPerMachine must be ≥ 1');
  if (!Number.isSafeInteger(sessionsPerPut) || sessionsPerPut < 1) throw new Error('createPeerWrittenBackup: sessionsPerPut must be ≥ 1');
  const roomIds = options.roomIds !== undefined
    ? [...options.roomIds]
    : Array.from({ length: options.rooms ?? 10 }, (_, r) => `!backup-${randomTag()}-${r}:peer.test`);
  if (roomIds.length === 0) throw new Error('createPeerWrittenBackup: at least one room is needed');

  let privateKey: Uint8Array;
  const authData: Record<string, unknown> = {};
  if (legacyPassphrase !== undefined) {
    // Legacy js-sdk (`prepareKeyBackupVersion` with a passphrase): 32-char alphanumeric salt.
    const salt = randomAlphanumeric(32);
    privateKey = await derivePassphraseKey(legacyPassphrase, salt, legacyIterations);
    authData.private_key_salt = salt;
    authData.private_key_iterations = legacyIterations;
  } else {
    privateKey = crypto.getRandomValues(new Uint8Array(32));
  }
  const publicKey = await backupPublicKey(privateKey);
  const finalAuthData = { public_key: publicKey, ...authData };
  const version = await client.createBackupVersion({ algorithm: BACKUP_ALGORITHM, auth_data: finalAuthData });

  // PUTs run one after another (Synapse serialises a user's writes anyway) while the next machine
  // encrypts; a failed PUT fails the fixture at the end, and stops further PUTs.
  let uploads: Promise<number> = Promise.resolve(0);
  let failed: unknown;
  const put = (body: KeysBackup) => {
    uploads = uploads.then(async () => (await client.putBackupKeys(version, body)).count);
    uploads.catch((error: unknown) => { failed ??= error; });
  };
  let pending: KeysBackup = { rooms: {} };
  let pendingCount = 0;

  const exported: ExportedSessionData[] = [];
  for (let first = 0; first < total && failed === undefined; first += sessionsPerMachine) {
    const plan = new Map<string, number>();
    for (let k = first; k < Math.min(total, first + sessionsPerMachine); k++) {
      const roomId = roomIds[k % roomIds.length]!;
      plan.set(roomId, (plan.get(roomId) ?? 0) + 1);
    }
    const machine = await createPeerMachine();
    try {
      await createSessionsInRooms(machine, plan, 0);
      exported.push(...await exportSessions(machine));
      for (const request of await peerBackupRequests(machine, publicKey, version)) {
        for (const [roomId, room] of Object.entries(request.body.rooms)) {
          const target = (pending.rooms[roomId] ??= { sessions: {} });
          Object.assign(target.sessions, room.sessions);
        }
        pendingCount += sessionCount(request.body);
        if (pendingCount >= sessionsPerPut) {
          put(pending);
          pending = { rooms: {} };
          pendingCount = 0;
        }
      }
    } finally {
      closePeerMachine(machine);
    }
  }
  if (pendingCount > 0) put(pending);
  const count = await uploads; // rejects with the first failure

  if (exported.length !== total) throw new Error(`createPeerWrittenBackup: the peer exported ${exported.length} sessions, expected ${total}`);
  if (total > 0 && count !== total) throw new Error(`createPeerWrittenBackup: the server counts ${count} keys after the upload, expected ${total}`);
  return {
    version,
    privateKey,
    recoveryKey: encodeRecoveryKey(privateKey),
    publicKey,
    sessions: exported,
    roomIds,
    ...(legacyPassphrase !== undefined ? { legacyPassphrase } : {}),
    authData: finalAuthData,
  };
}

// ---------------------------------------------------------------------------------------------
// 2. Secret storage as Element writes it

export interface ElementSecretStorageOptions {
  /** A Security Phrase: the 4S key is then PBKDF2 of it and the description carries `passphrase`. */
  passphrase?: string;
  /** PBKDF2 iterations for the phrase (default 1000 for speed; Element uses 500,000). */
  iterations?: number;
  /** Write the description's `iv`/`mac` key check (default true, as Element does). */
  withKeyCheck?: boolean;
  /** Default: 32 random alphanumerics, as js-sdk `addKey` picks. */
  keyId?: string;
  /**
   * `passphrase.bits` (default 256). Element's `createRecoveryKeyFromPassphrase` omits the member
   * (readers default it to 256): pass `null` for that exact shape.
   */
  passphraseBits?: number | null;
  /** Write `iv`/`ciphertext`/`mac` with `=` padding, as js-sdk's `encodeBase64` does (default true). */
  paddedBase64?: boolean;
}

export interface ElementSecretStorage {
  keyId: string;
  /** `encodeRecoveryKey` of the 4S key (also what Element shows when the key came from a phrase). */
  securityKey: string;
  securityPhrase?: string;
  /** The raw 4S key. */
  secretStorageKey: Uint8Array;
  /** What was written to `m.secret_storage.key.<keyId>`. */
  description: SecretStorageKeyDescription;
}

/** Element's key check: `encryptAES("\0" × 32, key, name "")`, keeping only `iv` and `mac` (js-sdk `calculateKeyCheck`). */
const ZERO_STR = '\0'.repeat(32);

export async function writeElementSecretStorage(
  client: HomeserverClient,
  userId: string,
  backupPrivateKey: Uint8Array,
  options: ElementSecretStorageOptions = {},
): Promise<ElementSecretStorage> {
  const { passphrase, iterations = 1000, withKeyCheck = true, keyId = randomAlphanumeric(32), passphraseBits = 256, paddedBase64 = true } = options;
  if (backupPrivateKey.length !== 32) throw new Error(`writeElementSecretStorage: the backup private key must be 32 bytes, got ${backupPrivateKey.length}`);
  const encode = paddedBase64 ? padded : (text: string) => text;

  // js-sdk `addKey`: { algorithm, name?, passphrase?, iv, mac }, in that order.
  const description: SecretStorageKeyDescription = { algorithm: SECRET_STORAGE_ALGORITHM };
  let key: Uint8Array;
  if (passphrase !== undefined) {
    const salt = randomAlphanumeric(32);
    key = await derivePassphraseKey(passphrase, salt, iterations, passphraseBits ?? 256);
    description.passphrase = { algorithm: 'm.pbkdf2', salt, iterations, ...(passphraseBits === null ? {} : { bits: passphraseBits }) };
  } else {
    key = crypto.getRandomValues(new Uint8Array(32));
  }
  if (withKeyCheck) {
    const check = await encryptSecret(key, '', ZERO_STR);
    description.iv = encode(check.iv);
    description.mac = encode(check.mac);
  }
  // The backup key is stored as rust's `BackupDecryptionKey.toBase64()`: unpadded.
  const secret = await encryptSecret(key, MEGOLM_BACKUP_SECRET_NAME, encodeBase64(backupPrivateKey));
  const encrypted: EncryptedSecret = { iv: encode(secret.iv), ciphertext: encode(secret.ciphertext), mac: encode(secret.mac) };

  // Element's order: the key, then the default key, then the secret.
  await client.putAccountData(userId, `m.secret_storage.key.${keyId}`, description);
  await client.putAccountData(userId, 'm.secret_storage.default_key', { key: keyId });
  await client.putAccountData(userId, MEGOLM_BACKUP_SECRET_NAME, { encrypted: { [keyId]: encrypted } });
  return {
    keyId,
    securityKey: encodeRecoveryKey(key),
    ...(passphrase !== undefined ? { securityPhrase: passphrase } : {}),
    secretStorageKey: key,
    description,
  };
}

/** Reads the account data `backupKeyFromSecretStorage` needs, for the default key only. */
export async function readSecretStorage(client: HomeserverClient, userId: string): Promise<SecretStorageAccountData> {
  const defaultKey = await client.getAccountData(userId, 'm.secret_storage.default_key');
  const keyId = typeof defaultKey?.key === 'string' ? defaultKey.key : undefined;
  const keys: Record<string, SecretStorageKeyDescription> = {};
  if (keyId !== undefined) {
    const description = await client.getAccountData(userId, `m.secret_storage.key.${keyId}`);
    if (description !== null) keys[keyId] = description as SecretStorageKeyDescription;
  }
  const megolmBackup = await client.getAccountData(userId, MEGOLM_BACKUP_SECRET_NAME);
  return { ...(keyId !== undefined ? { defaultKeyId: keyId } : {}), keys, ...(megolmBackup !== null ? { megolmBackup } : {}) };
}

// ---------------------------------------------------------------------------------------------
// 3. Broken entries

export type CorruptionKind = 'base64' | 'padding' | 'mac' | 'json' | 'algorithm' | 'session-id';

export const CORRUPTION_KINDS: readonly CorruptionKind[] = ['base64', 'padding', 'mac', 'json', 'algorithm', 'session-id'];

export interface CorruptEntry {
  roomId: string;
  sessionId: string;
  /** What a restore must report for this entry. */
  kind: CorruptionKind;
  /** Exactly what was PUT (and read back). */
  keyBackupData: KeyBackupData;
  /** For `session-id`: the session the filed `session_key` really belongs to. */
  actualSessionId?: string;
  /** For `algorithm`: the algorithm in the plaintext. */
  algorithm?: string;
}

export interface CorruptEntriesOptions {
  /** Default: one fresh `!corrupt-…:peer.test` room for all of them. */
  roomId?: string;
  /** Real sessions to take keys and ids from (at least 7, none of them already in the backup); default: a fresh peer makes them. */
  sessions?: readonly ExportedSessionData[];
}

/** The algorithm written into the `algorithm` entry's plaintext (a real MSC name, not this backup's). */
export const WRONG_SESSION_ALGORITHM = 'm.megolm.v2.aes-sha2';

/**
 * Reference §2.4 done by hand, so that the bytes under AES-CBC can be anything: ephemeral X25519,
 * HKDF-SHA-256 (32 zero salt, empty info) → AES key ‖ MAC key ‖ IV, AES-256-CBC with NO automatic
 * padding (`blocks` must be whole 16-byte blocks), and the MAC quirk: HMAC over the EMPTY string.
 */
function sealBlocks(publicKey: string, blocks: Uint8Array): EncryptedSessionData {
  if (blocks.length === 0 || blocks.length % 16 !== 0) throw new Error('sealBlocks: whole 16-byte blocks only');
  const ephemeralSecret = x25519.utils.randomSecretKey();
  const shared = x25519.getSharedSecret(ephemeralSecret, decodeBase64(publicKey));
  const okm = hkdf(sha256, shared, new Uint8Array(32), new Uint8Array(0), 80);
  const aesKey = okm.subarray(0, 32), macKey = okm.subarray(32, 64), iv = okm.subarray(64, 80);
  const ciphertext = cbc(aesKey, iv, { disablePadding: true }).encrypt(blocks);
  const mac = hmac(sha256, macKey, new Uint8Array(0)).subarray(0, 8);
  return { ephemeral: encodeBase64(x25519.getPublicKey(ephemeralSecret)), ciphertext: encodeBase64(ciphertext), mac: encodeBase64(mac) };
}

/** PKCS#7 (RFC 5652 §6.3): 1–16 bytes, each the pad length. */
function pkcs7(plaintext: Uint8Array): Uint8Array {
  const n = 16 - (plaintext.length % 16);
  const out = new Uint8Array(plaintext.length + n);
  out.set(plaintext);
  out.fill(n, plaintext.length);
  return out;
}

/** Zero padding instead of PKCS#7 (at least one zero byte): a last byte of 0 is never valid PKCS#7. */
function zeroPadded(plaintext: Uint8Array): Uint8Array {
  const n = 16 - (plaintext.length % 16);
  const out = new Uint8Array(plaintext.length + n);
  out.set(plaintext);
  return out;
}

/**
 * PUTs one entry broken in each way of `CORRUPTION_KINDS` (and filed under a real session id), reads
 * each back to check Synapse stored it as sent, and returns them. Synapse only checks the shape of
 * `KeyBackupData` (reference §1.3), so every one of these is accepted.
 */
export async function putCorruptEntries(client: HomeserverClient, version: string, publicKey: string, options: CorruptEntriesOptions = {}): Promise<CorruptEntry[]> {
  const roomId = options.roomId ?? `!corrupt-${randomTag()}:peer.test`;
  let sessions = options.sessions;
  if (sessions === undefined) {
    const machine = await createPeerMachine();
    try {
      await createSessionsInRooms(machine, new Map([[roomId, 7]]), 0);
      sessions = await exportSessions(machine);
    } finally {
      closePeerMachine(machine);
    }
  }
  if (sessions.length < 7) throw new Error(`putCorruptEntries: needs 7 real sessions, got ${sessions.length}`);
  const real = sessions;
  const pick = (i: number): ExportedSessionData => real[i]!;
  const sBase64 = pick(0), sPadding = pick(1), sMac = pick(2), sJson = pick(3), sAlgorithm = pick(4), sFiledUnder = pick(5), sActual = pick(6);

  const utf8 = (text: string) => new TextEncoder().encode(text);
  const entry = (session: ExportedSessionData, sessionData: EncryptedSessionData): KeyBackupData => ({
    // What Element's crypto writes for its own sessions (first index from the key itself).
    first_message_index: parseSessionKey(session.session_key).firstMessageIndex,
    forwarded_count: 0,
    is_verified: false,
    session_data: sessionData,
  });

  const entries: CorruptEntry[] = [];
  // base64: a valid entry whose ciphertext has one character outside the alphabet.
  {
    const good = await encryptSessionData(publicKey, backupPlaintextOf(sBase64));
    const ciphertext = `${good.ciphertext.slice(0, 20)}*${good.ciphertext.slice(21)}`;
    entries.push({ roomId, sessionId: sBase64.session_id, kind: 'base64', keyBackupData: entry(sBase64, { ...good, ciphertext }) });
  }
  // padding: the real plaintext, zero-padded instead of PKCS#7, under real AES-CBC and a valid MAC.
  entries.push({
    roomId, sessionId: sPadding.session_id, kind: 'padding',
    keyBackupData: entry(sPadding, sealBlocks(publicKey, zeroPadded(utf8(JSON.stringify(backupPlaintextOf(sPadding)))))),
  });
  // mac: a valid entry with one bit of its 8-byte MAC flipped.
  {
    const good = await encryptSessionData(publicKey, backupPlaintextOf(sMac));
    const mac = decodeBase64(good.mac);
    mac[0]! ^= 0x01;
    entries.push({ roomId, sessionId: sMac.session_id, kind: 'mac', keyBackupData: entry(sMac, { ...good, mac: encodeBase64(mac) }) });
  }
  // json: valid encryption (PKCS#7, right MAC) of the session's JSON cut short.
  {
    const text = JSON.stringify(backupPlaintextOf(sJson));
    entries.push({ roomId, sessionId: sJson.session_id, kind: 'json', keyBackupData: entry(sJson, sealBlocks(publicKey, pkcs7(utf8(text.slice(0, text.length - 40))))) });
  }
  // algorithm: a real session whose plaintext names another room-key algorithm.
  entries.push({
    roomId, sessionId: sAlgorithm.session_id, kind: 'algorithm', algorithm: WRONG_SESSION_ALGORITHM,
    keyBackupData: entry(sAlgorithm, await encryptSessionData(publicKey, { ...backupPlaintextOf(sAlgorithm), algorithm: WRONG_SESSION_ALGORITHM })),
  });
  // session-id: session sActual's key filed under sFiledUnder's id.
  entries.push({
    roomId, sessionId: sFiledUnder.session_id, kind: 'session-id', actualSessionId: sActual.session_id,
    keyBackupData: entry(sActual, await encryptSessionData(publicKey, backupPlaintextOf(sActual))),
  });

  const body: KeysBackup = { rooms: {} };
  for (const e of entries) (body.rooms[e.roomId] ??= { sessions: {} }).sessions[e.sessionId] = e.keyBackupData;
  await client.putBackupKeys(version, body);
  for (const e of entries) {
    const stored = await client.getBackupSessionKey(version, e.roomId, e.sessionId);
    if (JSON.stringify(stored) !== JSON.stringify(e.keyBackupData)) {
      throw new Error(`putCorruptEntries: the ${e.kind} entry (${e.roomId} ${e.sessionId}) was not stored as sent: ${JSON.stringify(stored)}`);
    }
  }
  return entries;
}

/**
 * What is wrong with one stored entry, as the core's decryptor sees it: the CoreError kind for a
 * ciphertext failure, `algorithm` / `session-id` for a plaintext that decrypts but is not a megolm
 * session filed under its own id, or `null` for a good entry.
 */
export async function corruptionOf(decryptor: BackupDecryptor, sessionId: string, data: KeyBackupData): Promise<string | null> {
  let plaintext: BackedUpSessionData;
  try {
    plaintext = await decryptor.decrypt(data.session_data);
  } catch (error) {
    if (isCoreError(error)) return error.kind;
    throw error;
  }
  if (plaintext.algorithm !== MEGOLM_ALGORITHM) return 'algorithm';
  if (parseSessionKey(plaintext.session_key).sessionId !== sessionId) return 'session-id';
  return null;
}

/** `corruptionOf` with a decryptor made for this one call. */
export async function corruptionWithKey(privateKey: Uint8Array, sessionId: string, data: KeyBackupData): Promise<string | null> {
  return corruptionOf(await createBackupDecryptor(privateKey), sessionId, data);
}
