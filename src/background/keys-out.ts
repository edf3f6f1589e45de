/**
 * Keys leaving their encryption: the export to a key file (decrypted for an extension page, which
 * encrypts the file with the user's passphrase), and sessions stored under an earlier pinned key,
 * re-encrypted to the current one once the user proves that earlier key.
 */
import { backupPublicKey, createBackupDecryptor, decodeBase64, encryptSessionData, secretStorageKeyFromPassphrase } from '../core/index.ts';
import { classifyRecoveryInput, describeKeyFormatError } from '../core/recovery-input.ts';
import { samePublicKey } from '../core/upload/pin.ts';
import type { HomeserverClient } from '../platform/homeserver.ts';
import type { UnlockedKey } from '../platform/unlock-store.ts';
import { newRevision, type StoredSession, type Vault } from '../platform/vault.ts';
import type { ExportBatch } from '../shared/messages.ts';
import { AppError, noBackupMessage } from './errors.ts';
import { toExported } from './session-fetch.ts';
import { backupKeyVia, readSecretStorage } from './unlock.ts';

export const MAX_EXPORT_BATCH = 2000;

/** The next `limit` sessions after `after`, decrypted with the unlocked key; others are skipped. */
export async function exportBatch(vault: Vault, key: UnlockedKey, after: [string, string] | null, limit: number): Promise<ExportBatch> {
  const rows = await vault.sessionsAfter(after, limit);
  const ours = rows.filter((r) => r.publicKey === key.publicKey);
  const bytes = decodeBase64(key.privateKey, 'the unlocked key');
  const decryptor = await createBackupDecryptor(bytes).finally(() => bytes.fill(0));
  const opened = await decryptor.decryptMany(ours.map((r) => r.sessionData));
  const sessions: unknown[] = [];
  opened.forEach((result, i) => {
    if (result.ok) sessions.push(toExported(ours[i]!.roomId, ours[i]!.sessionId, result.value));
  });
  const last = rows.at(-1);
  return {
    sessions,
    next: rows.length === limit && last ? [last.roomId, last.sessionId] : null,
    skipped: rows.length - sessions.length,
    total: await vault.countSessions(),
  };
}

/** Private keys the input may stand for: the key itself, and what secret storage holds for it. */
async function candidateKeys(client: HomeserverClient, userId: string, input: string): Promise<Uint8Array[]> {
  const classified = classifyRecoveryInput(input);
  if (classified.shape === 'empty') throw new AppError('empty-input', 'Enter the recovery key of that backup.');
  if (classified.shape === 'too-long') throw new AppError('not-a-key', 'This is not a recovery key or a phrase: it is far too long.');
  const storage = await readSecretStorage(client, userId);
  const viaStorage = async (ssssKey: Uint8Array): Promise<Uint8Array[]> => {
    const via = storage ? await backupKeyVia(storage, ssssKey) : null;
    return via && 'key' in via ? [via.key] : [];
  };
  if (classified.shape === 'key') return [classified.key, ...(await viaStorage(classified.key))];
  if (!storage?.hasPassphrase) {
    if (classified.shape === 'bad-key') throw new AppError('not-a-key', `This is not a recovery key: ${describeKeyFormatError(classified.error)}.`);
    throw new AppError('no-secret-storage', 'A phrase can only unlock secret storage, and this account has none with a phrase. Enter the backup\'s recovery key.');
  }
  const ssssKey = await secretStorageKeyFromPassphrase(classified.phrase, storage.description);
  try {
    return await viaStorage(ssssKey);
  } finally {
    ssssKey.fill(0);
  }
}

const MOVE_CHUNK = 200;

/**
 * Proves the key of an earlier pin (`publicKey`) and moves its sessions to the current backup:
 * decrypted with it, encrypted to the pinned key, stored pending upload.
 */
export async function moveEarlierSessions(vault: Vault, client: HomeserverClient, userId: string, input: string, publicKey: string): Promise<{ moved: number; failed: number }> {
  const pin = await vault.getPin();
  if (!pin) throw new AppError('no-backup', noBackupMessage);
  const earlier = (await vault.getEarlierPins()).find((e) => samePublicKey(e.publicKey, publicKey));
  if (!earlier) throw new AppError('bad-request', 'No sessions wait for that key.');
  const candidates = await candidateKeys(client, userId, input);
  let privateKey: Uint8Array | undefined;
  try {
    for (const candidate of candidates) {
      if (!privateKey && samePublicKey(await backupPublicKey(candidate), earlier.publicKey)) privateKey = candidate.slice();
    }
  } finally {
    for (const candidate of candidates) candidate.fill(0); // also when a derivation throws midway
  }
  if (!privateKey) throw new AppError('wrong-key', `This is not the key of backup version ${earlier.version}.`);
  const decryptor = await createBackupDecryptor(privateKey).finally(() => privateKey.fill(0));

  const keys = await vault.keysForPublicKey(earlier.publicKey);
  let moved = 0;
  let failed = 0;
  for (let i = 0; i < keys.length; i += MOVE_CHUNK) {
    const rows = (await vault.getSessions(keys.slice(i, i + MOVE_CHUNK))).filter((r): r is StoredSession => !!r && r.publicKey === earlier.publicKey);
    const opened = await decryptor.decryptMany(rows.map((r) => r.sessionData));
    const next: StoredSession[] = [];
    for (let j = 0; j < rows.length; j++) {
      const result = opened[j]!;
      if (!result.ok) { failed++; continue; }
      next.push({ ...rows[j]!, publicKey: pin.publicKey, sessionData: await encryptSessionData(pin.publicKey, result.value), uploadedEpoch: 0, revision: newRevision(), storedAt: Date.now() });
    }
    moved += (await vault.putSessions(next)).filter((o) => o === 'stored').length;
  }
  return { moved, failed };
}
