/**
 * Creating a backup, joining an existing one, and reading the server's: the only places a key is
 * pinned. A key is pinned only after the extension derived its public half from a private key it
 * generated or the user proved (DESIGN security model "Trust before upload").
 */
import { backupPublicKey, BACKUP_ALGORITHM, decodeRecoveryKey, isCoreError } from '../core/index.ts';
import { describeKeyFormatError } from '../core/recovery-input.ts';
import { backupUsesKey, type BackupPin, type ServerBackupInfo } from '../core/upload/pin.ts';
import { initialUploadState } from '../core/upload/state.ts';
import type { BackupVersionInfo } from '../core/wire.ts';
import type { HomeserverClient } from '../platform/homeserver.ts';
import type { Vault } from '../platform/vault.ts';
import type { PinSummary, ServerBackupSummary } from '../shared/messages.ts';
import { AppError, toWireError } from './errors.ts';
import { proveRecoveryInput } from './unlock.ts';

export function pinSummary(pin: BackupPin): PinSummary {
  return { version: pin.version, publicKey: pin.publicKey, source: pin.source, pinnedAt: pin.pinnedAt };
}

export function toServerBackupInfo(info: BackupVersionInfo): ServerBackupInfo {
  return {
    version: info.version,
    algorithm: info.algorithm,
    publicKey: info.state === 'supported' ? info.publicKey : null,
    count: info.count,
    etag: info.etag,
  };
}

export async function inspectServerBackup(client: HomeserverClient, pin: BackupPin | undefined): Promise<ServerBackupSummary> {
  try {
    const info = await client.getLatestBackupVersion({ timeoutMs: 15_000 });
    if (!info) return { state: 'none' };
    return {
      state: 'present',
      version: info.version,
      algorithm: info.algorithm,
      count: info.count,
      supported: info.state === 'supported',
      usesPinnedKey: !!pin && backupUsesKey(toServerBackupInfo(info), pin.publicKey),
    };
  } catch (e) {
    return { state: 'unreachable', error: toWireError(e) };
  }
}

function decodeKeyText(text: string): Uint8Array {
  try {
    return decodeRecoveryKey(text);
  } catch (e) {
    if (!isCoreError(e)) throw e;
    throw new AppError('not-a-key', `This is not a recovery key: ${describeKeyFormatError(e)}.`);
  }
}

async function pinKey(vault: Vault, userId: string, version: string, publicKey: string, source: BackupPin['source']): Promise<BackupPin> {
  const previous = await vault.getPin();
  const unchanged = previous && previous.userId === userId && previous.version === version && previous.publicKey === publicKey;
  const pin: BackupPin = {
    userId, version, publicKey, source,
    // Same version and key: nothing to re-send. Anything else: every session is pending again.
    epoch: unchanged ? previous.epoch : (previous?.epoch ?? 0) + 1,
    pinnedAt: Date.now(),
  };
  const state = await vault.getUploadState();
  await vault.setPinAndUploadState(pin, { ...initialUploadState, lastSuccessAt: state.lastSuccessAt });
  return pin;
}

/** Creates a backup from a key the page generated; refused when the account already has one. */
export async function createBackup(vault: Vault, client: HomeserverClient, userId: string, recoveryKey: string): Promise<BackupPin> {
  const privateKey = decodeKeyText(recoveryKey);
  try {
    const existing = await client.getLatestBackupVersion();
    if (existing) {
      throw new AppError('backup-exists', `Your account already has a backup (version ${existing.version}). ` +
        'Enter its recovery key in the popup to use it; creating another would replace it for every client.');
    }
    const publicKey = await backupPublicKey(privateKey);
    const version = await client.createBackupVersion({ algorithm: BACKUP_ALGORITHM, auth_data: { public_key: publicKey } });
    return await pinKey(vault, userId, version, publicKey, 'created');
  } finally {
    privateKey.fill(0);
  }
}

/**
 * Joins the server's current backup: the input is proved as unlock proves it (Security Key, backup
 * key, Security Phrase, legacy phrase), and the key pinned; the private key is not kept.
 */
export async function joinBackup(vault: Vault, client: HomeserverClient, userId: string, recoveryKey: string): Promise<BackupPin> {
  const info = await client.getLatestBackupVersion();
  if (!info) throw new AppError('no-server-backup', 'Your account has no backup on the server. Create one from the popup instead.');
  if (info.state !== 'supported') {
    throw new AppError('unsupported-algorithm', `The backup on the server (version ${info.version}) uses ${info.algorithm}, which this extension does not support.`);
  }
  const proved = await proveRecoveryInput(client, vault, userId, info, recoveryKey);
  proved.privateKey.fill(0);
  return pinProvedKey(vault, userId, info.version, info.publicKey);
}

/**
 * Pins a key the user just proved for `version`. The same version and key keep their pin (and
 * epoch: nothing is re-sent); anything else becomes the new pin.
 */
export async function pinProvedKey(vault: Vault, userId: string, version: string, publicKey: string): Promise<BackupPin> {
  const previous = await vault.getPin();
  if (previous && previous.userId === userId && previous.version === version && previous.publicKey === publicKey) return previous;
  return pinKey(vault, userId, version, publicKey, 'proved');
}
