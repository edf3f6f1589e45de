/**
 * Creating a backup, joining an existing one, and reading the server's: the only places a key is
 * pinned. A key is pinned only after the extension derived its public half from a private key it
 * generated or the user proved (DESIGN security model "Trust before upload").
 */
import {
  backupKeyFromSecretStorage, backupKeyMatches, backupPublicKey, BACKUP_ALGORITHM, decodeRecoveryKey, isCoreError,
  MEGOLM_BACKUP_SECRET_NAME, type SecretStorageKeyDescription,
} from '../core/index.ts';
import { backupUsesKey, type BackupPin, type ServerBackupInfo } from '../core/upload/pin.ts';
import { initialUploadState } from '../core/upload/state.ts';
import type { BackupVersionInfo } from '../core/wire.ts';
import type { HomeserverClient } from '../platform/homeserver.ts';
import type { Vault } from '../platform/vault.ts';
import type { PinSummary, ServerBackupSummary } from '../shared/messages.ts';
import { AppError, toWireError } from './errors.ts';

export function pinSummary(pin: BackupPin): PinSummary {
  return { version: pin.version, publicKey: pin.publicKey, source: pin.source, pinnedAt: pin.pinnedAt };
}

export function toServerBackupInfo(info: BackupVersionInfo): ServerBackupInfo {
  return {
    version: info.version,
    algorithm: info.algorithm,
    publicKey: info.state === 'supported' ? info.auth_data.public_key : null,
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

/** The text is not a recovery key at all: say which check failed, in words. */
function notAKey(e: unknown): AppError {
  const kind = (e as { kind?: string }).kind;
  const why: Record<string, string> = {
    base58: 'it contains characters a recovery key never has (0, O, I and l are not used)',
    length: 'it is too short or too long',
    prefix: 'it does not start like a recovery key (they start with “Es”)',
    parity: 'its check digit does not match: a character is probably mistyped',
  };
  return new AppError('not-a-key', `This is not a recovery key: ${why[kind ?? ''] ?? 'it could not be read'}.`);
}

function decodeKeyText(text: string): Uint8Array {
  try {
    return decodeRecoveryKey(text);
  } catch (e) {
    throw notAKey(e);
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
 * Joins the server's current backup. The input is tried as a Security Key (secret storage: key
 * check, then the backup key it protects) and then as the backup key itself; either way the derived
 * public key must equal the backup's `auth_data.public_key` before anything is pinned (reference §7.3).
 */
export async function joinBackup(vault: Vault, client: HomeserverClient, userId: string, recoveryKey: string): Promise<BackupPin> {
  const key = decodeKeyText(recoveryKey);
  const candidates: Uint8Array[] = [key];
  try {
    const info = await client.getLatestBackupVersion();
    if (!info) throw new AppError('no-server-backup', 'Your account has no backup on the server. Create one from the popup instead.');
    if (info.state !== 'supported') {
      throw new AppError('unsupported-algorithm', `The backup on the server (version ${info.version}) uses ${info.algorithm}, which this extension does not support.`);
    }
    const publicKey = info.auth_data.public_key;

    const fromSecretStorage = await backupKeyViaSecretStorage(client, userId, key);
    if (fromSecretStorage.key) {
      candidates.push(fromSecretStorage.key);
      if (await backupKeyMatches(fromSecretStorage.key, publicKey)) return await pinKey(vault, userId, info.version, publicKey, 'proved');
    }
    if (await backupKeyMatches(key, publicKey)) return await pinKey(vault, userId, info.version, publicKey, 'proved');

    throw new AppError('wrong-key', fromSecretStorage.key
      ? `This Security Key unlocks your secret storage, but the backup key stored there belongs to an older backup, not version ${info.version}. ` +
        'Enter the recovery key of the current backup.'
      : fromSecretStorage.note ?? `This recovery key is valid, but it does not belong to your backup (version ${info.version}).`);
  } finally {
    for (const c of candidates) c.fill(0);
  }
}

/**
 * The backup key protected by secret storage, if `key` is this account's Security Key. A key that is
 * not (key check fails) or an account without secret storage yields no key, and the input is then
 * tried as the backup key itself.
 */
async function backupKeyViaSecretStorage(client: HomeserverClient, userId: string, key: Uint8Array): Promise<{ key?: Uint8Array; note?: string }> {
  const defaultKey = await client.getAccountData(userId, 'm.secret_storage.default_key');
  const keyId = typeof defaultKey?.key === 'string' ? defaultKey.key : undefined;
  if (!keyId) return {};
  const [description, megolmBackup] = await Promise.all([
    client.getAccountData(userId, `m.secret_storage.key.${keyId}`),
    client.getAccountData(userId, MEGOLM_BACKUP_SECRET_NAME),
  ]);
  if (!description) return {};
  try {
    return {
      key: await backupKeyFromSecretStorage(key, {
        defaultKeyId: keyId,
        keys: { [keyId]: description as unknown as SecretStorageKeyDescription },
        megolmBackup: megolmBackup ?? undefined,
      }),
    };
  } catch (e) {
    // Not this account's Security Key (a description without a key check fails at the secret's MAC).
    if (isCoreError(e, 'key-check') || isCoreError(e, 'mac')) return {};
    if (isCoreError(e, 'no-secret')) {
      return { note: 'This is your Security Key, but your secret storage holds no backup key, and it is not the backup\'s own recovery key either.' };
    }
    // A damaged secret or description: say so rather than claim the key is wrong. Anything that is
    // not a CoreError is a bug, and is not dressed up as a message about the user's key.
    if (!isCoreError(e)) throw e;
    return { note: `Your secret storage could not be read with this key: ${e.message}` };
  }
}
