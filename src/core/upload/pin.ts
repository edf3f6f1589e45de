/**
 * The pinned backup: the one version, and the one public key, the extension uploads to. A key is
 * pinned only after the extension derived it from a private key (one it generated, or one the user
 * proved); the server's word is never enough (spec: "clients must only store keys in backups after
 * they have ensured that the auth_data is trusted"; reference §7).
 */

import { unpadBase64 } from '../base64.ts';
import { BACKUP_ALGORITHM } from '../types.ts';

export { BACKUP_ALGORITHM };

export interface BackupPin {
  /** The account whose backup this is; another account never inherits a pin. */
  userId: string;
  version: string;
  /** Unpadded base64 X25519 public key every stored session is encrypted to. */
  publicKey: string;
  /**
   * Bumped whenever the version changes. A session is pending while its uploadedEpoch is lower, so
   * a new version with the same key makes every session pending without rewriting a single row.
   */
  epoch: number;
  source: 'created' | 'proved';
  pinnedAt: number;
}

/** What the server says its current backup is, already parsed at the edge. */
export interface ServerBackupInfo {
  version: string;
  algorithm: string;
  publicKey: string | null;
  count: number;
  etag: string;
}

/** Public keys compare as decoded bytes; unpadded and padded base64 of one key are the same key. */
export function samePublicKey(a: string, b: string): boolean {
  return unpadBase64(a) === unpadBase64(b);
}

export function backupUsesKey(info: ServerBackupInfo, publicKey: string): boolean {
  return info.algorithm === BACKUP_ALGORITHM && info.publicKey !== null && samePublicKey(info.publicKey, publicKey);
}

export type VersionCheck =
  /** The server's current backup uses our key under another version: follow it (and say so). */
  | { outcome: 'follow'; pin: BackupPin; notice: string }
  /** Same version as pinned: the refusal was transient (or a race); retry normally. */
  | { outcome: 'unchanged' }
  /** Gone, or a key we were never given: upload nothing until the user proves the new key. */
  | { outcome: 'stop'; currentVersion: string | null };

export function checkServerBackup(pin: BackupPin, current: ServerBackupInfo | null, now: number): VersionCheck {
  if (current === null) return { outcome: 'stop', currentVersion: null };
  if (current.version === pin.version) {
    return backupUsesKey(current, pin.publicKey) ? { outcome: 'unchanged' } : { outcome: 'stop', currentVersion: current.version };
  }
  if (!backupUsesKey(current, pin.publicKey)) return { outcome: 'stop', currentVersion: current.version };
  return {
    outcome: 'follow',
    pin: { ...pin, version: current.version, epoch: pin.epoch + 1, pinnedAt: now },
    notice: `The backup on the server changed from version ${pin.version} to ${current.version}; it uses the same key, so uploading continues to the new version.`,
  };
}
