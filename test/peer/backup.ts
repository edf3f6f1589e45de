/**
 * Server-side key backup (`m.megolm_backup.v1.curve25519-aes-sha2`) as Element's crypto does it:
 * writing entries (`enableBackupV1` + `backupRoomKeys`), reading them (`BackupDecryptionKey.decryptV1`)
 * and restoring them into a machine (`importBackedUpRoomKeys`).
 */
import type { OlmMachine } from '@matrix-org/matrix-sdk-crypto-wasm';
import { BackupDecryptionKey, RequestType, RoomId } from '@matrix-org/matrix-sdk-crypto-wasm';
import { PeerError, describeWasmError } from './errors.ts';
import { closePeerMachine, createPeerMachine } from './machine.ts';
import type { BackedUpSessionData, EncryptedSessionData, KeyBackupData, KeysBackupBody } from './types.ts';
import { assertPeerReady, initPeer } from './wasm.ts';

/** One `PUT /room_keys/keys?version=…` the peer would send. */
export interface PeerBackupRequest {
  version: string;
  body: KeysBackupBody;
}

/** One entry of a backup, flattened out of its request body. */
export interface PeerBackupEntry {
  roomId: string;
  sessionId: string;
  keyBackupData: KeyBackupData;
}

/**
 * Enable backup v1 to `backupPublicKey` and collect every request the machine makes until it has
 * backed up all the sessions it holds (the rust SDK sends at most 100 sessions per request).
 *
 * Each request must be marked as sent, or the machine hands out the same request again forever
 * (it is a state machine waiting to hear that its request went out). A fake but well-formed
 * `RoomKeysUpdateResponse` (`{etag, count}`) is enough; the machine does not look at it.
 */
export async function peerBackupRequests(machine: OlmMachine, backupPublicKey: string, backupVersion: string): Promise<PeerBackupRequest[]> {
  await initPeer();
  await machine.enableBackupV1(backupPublicKey, backupVersion);
  const counts = await machine.roomKeyCounts();
  const sessionsToSend = counts.total - counts.backedUp;
  counts.free();

  const requests: PeerBackupRequest[] = [];
  const seenIds = new Set<string>();
  let sent = 0;
  for (;;) {
    const request = await machine.backupRoomKeys();
    if (request === undefined) break;
    const { id, version } = request;
    const body = JSON.parse(request.body) as KeysBackupBody;
    request.free();
    // Every request carries at least one session, so more requests than sessions means a loop.
    if (seenIds.has(id) || requests.length >= sessionsToSend) {
      throw new PeerError('backup-loop', `backupRoomKeys keeps returning requests (${requests.length} so far for ${sessionsToSend} sessions)`);
    }
    seenIds.add(id);
    requests.push({ version, body });
    sent += backupEntries([{ version, body }]).length;
    await machine.markRequestAsSent(id, RequestType.KeysBackup, JSON.stringify({ etag: String(requests.length), count: sent }));
  }
  return requests;
}

/** Every entry of these requests, in order (a later copy of a session would come later). */
export function backupEntries(requests: readonly PeerBackupRequest[]): PeerBackupEntry[] {
  return requests.flatMap(({ body }) => Object.entries(body.rooms).flatMap(([roomId, room]) =>
    Object.entries(room.sessions).map(([sessionId, keyBackupData]) => ({ roomId, sessionId, keyBackupData }))));
}

/** Element's reader for one backup private key; `free()` it when done. Shows only the public key. */
export interface PeerBackupDecryptor {
  readonly publicKey: string;
  decrypt(sessionData: EncryptedSessionData): BackedUpSessionData;
  free(): void;
}

export function peerBackupDecryptor(privateKey: Uint8Array): PeerBackupDecryptor {
  assertPeerReady();
  if (privateKey.length !== 32) throw new PeerError('argument', `a backup private key is 32 bytes, got ${privateKey.length}`);
  const key = BackupDecryptionKey.fromBase64(toBase64(privateKey));
  const publicKeyObject = key.megolmV1PublicKey;
  const publicKey = publicKeyObject.publicKeyBase64;
  publicKeyObject.free();
  return {
    publicKey,
    decrypt(sessionData) {
      let plaintext: string;
      try {
        plaintext = key.decryptV1(sessionData.ephemeral, sessionData.mac, sessionData.ciphertext);
      } catch (error) {
        throw new PeerError('backup-decrypt', `Element's crypto could not decrypt the backup entry: ${describeWasmError(error)}`, { cause: error });
      }
      return JSON.parse(plaintext) as BackedUpSessionData;
    },
    free: () => key.free(),
    toJSON: () => ({ publicKey }),
    toString: () => `PeerBackupDecryptor(${publicKey})`,
  } as PeerBackupDecryptor;
}

/** Decrypt one `session_data` with `BackupDecryptionKey.decryptV1`. For many entries use peerBackupDecryptor. */
export function peerDecryptBackupEntry(privateKey: Uint8Array, sessionData: EncryptedSessionData): BackedUpSessionData {
  const decryptor = peerBackupDecryptor(privateKey);
  try {
    return decryptor.decrypt(sessionData);
  } finally {
    decryptor.free();
  }
}

/** The backup public key (unpadded base64) Element's crypto derives from a private key. */
export function peerBackupPublicKey(privateKey: Uint8Array): string {
  const decryptor = peerBackupDecryptor(privateKey);
  decryptor.free();
  return decryptor.publicKey;
}

/** room id → session id → decrypted `BackedUpSessionData`. */
export type DecryptedBackup = ReadonlyMap<string, ReadonlyMap<string, BackedUpSessionData>>;

export interface BackupImportResult {
  machine: OlmMachine;
  importedCount: number;
  totalCount: number;
}

/**
 * A fresh machine that restores decrypted backup entries with `importBackedUpRoomKeys`, as Element
 * does after downloading a backup. Keys from a backup carry no sender trust, so decrypt events with
 * `TrustRequirement.Untrusted` (see events.ts). The caller closes the machine (`closePeerMachine`).
 */
export async function importBackupIntoFreshMachine(entriesByRoom: DecryptedBackup, backupVersion: string): Promise<BackupImportResult> {
  const machine = await createPeerMachine('@restorer:peer.test');
  try {
    // importBackedUpRoomKeys takes ownership of the RoomId keys: freeing them afterwards throws
    // "null pointer passed to rust". (If it throws first, wasm-bindgen's finalizer frees them.)
    const byRoom = new Map<RoomId, Map<string, BackedUpSessionData>>();
    for (const [roomId, sessions] of entriesByRoom) byRoom.set(new RoomId(roomId), new Map(sessions));
    const result = await machine.importBackedUpRoomKeys(byRoom, () => {}, backupVersion);
    const counts = { importedCount: result.importedCount, totalCount: result.totalCount };
    result.free();
    return { machine, ...counts };
  } catch (error) {
    closePeerMachine(machine);
    throw error;
  }
}

/** Group decrypted entries by room and session, the shape importBackupIntoFreshMachine takes. */
export function groupByRoom(entries: Iterable<{ roomId: string; sessionId: string; data: BackedUpSessionData }>): Map<string, Map<string, BackedUpSessionData>> {
  const byRoom = new Map<string, Map<string, BackedUpSessionData>>();
  for (const { roomId, sessionId, data } of entries) {
    let sessions = byRoom.get(roomId);
    if (sessions === undefined) byRoom.set(roomId, (sessions = new Map()));
    sessions.set(sessionId, data);
  }
  return byRoom;
}

function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64').replace(/=+$/, '');
}
