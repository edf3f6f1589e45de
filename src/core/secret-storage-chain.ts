/**
 * From what the user types to the backup private key (reference §5.4): Security Phrase → 4S key
 * (PBKDF2), key check, then the `m.megolm_backup.v1` secret → 32-byte Curve25519 private key.
 */
import { decodeBase64 } from './base64.ts';
import { isJsonObject } from './bytes.ts';
import { CoreError, isCoreError } from './errors.ts';
import { derivePassphraseKey } from './passphrase.ts';
import { checkSecretStorageKey, decryptSecret } from './secret-storage.ts';
import type { EncryptedSecret, SecretStorageAccountData, SecretStorageKeyDescription } from './types.ts';
import { MEGOLM_BACKUP_SECRET_NAME } from './types.ts';

const PBKDF2 = 'm.pbkdf2';

/** The 4S key for a Security Phrase, with the description's passphrase parameters (§4.2). */
export async function secretStorageKeyFromPassphrase(passphrase: string, description: SecretStorageKeyDescription): Promise<Uint8Array> {
  if (!isJsonObject(description)) throw new CoreError('field', 'the secret-storage key description must be a JSON object');
  const params: unknown = description.passphrase;
  if (params === undefined || params === null) {
    throw new CoreError('no-passphrase', 'this secret-storage key has no Security Phrase; enter the Security Key instead');
  }
  if (!isJsonObject(params)) throw new CoreError('field', 'the key description\'s "passphrase" must be a JSON object');
  if (params.algorithm !== PBKDF2) {
    throw new CoreError('algorithm', `unsupported passphrase algorithm ${JSON.stringify(params.algorithm)}`);
  }
  if (typeof params.salt !== 'string') throw new CoreError('field', 'the passphrase "salt" must be a string');
  if (typeof params.iterations !== 'number') throw new CoreError('iterations', 'the passphrase "iterations" must be a number');
  const bits = params.bits ?? 256;
  if (typeof bits !== 'number') throw new CoreError('length', 'the passphrase "bits" must be a number');
  return derivePassphraseKey(passphrase, params.salt, params.iterations, bits);
}

function lookupOwn<T>(record: unknown, key: string): T | undefined {
  return isJsonObject(record) && Object.hasOwn(record, key) ? (record[key] as T) : undefined;
}

/**
 * The backup private key from secret storage, given the 4S key (decoded Security Key or the
 * output of `secretStorageKeyFromPassphrase`). Kinds: `no-default-key`, `key-check` (wrong key),
 * `no-secret` (no backup key stored for this key), `base64`/`length` (a bad stored secret).
 */
export async function backupKeyFromSecretStorage(key: Uint8Array, accountData: SecretStorageAccountData): Promise<Uint8Array> {
  if (!isJsonObject(accountData)) throw new CoreError('field', 'the secret-storage account data must be an object');
  const keyId = accountData.defaultKeyId;
  // Spec: with no default key, "behave as if no key exists".
  if (typeof keyId !== 'string' || keyId === '') {
    throw new CoreError('no-default-key', 'this account has no default secret-storage key: secret storage is not set up');
  }
  const description = lookupOwn<SecretStorageKeyDescription>(accountData.keys, keyId);
  if (description === undefined) {
    throw new CoreError('no-default-key', `the description of the default secret-storage key ${keyId} is missing`);
  }
  const hasKeyCheck = isJsonObject(description) && (description.iv !== undefined || description.mac !== undefined);
  if (!(await checkSecretStorageKey(key, description))) {
    throw new CoreError('key-check', 'this is not the Security Key (or Phrase) of this account\'s secret storage');
  }
  const encrypted = lookupOwn<EncryptedSecret>(lookupOwn(accountData.megolmBackup, 'encrypted'), keyId);
  if (encrypted === undefined) {
    throw new CoreError('no-secret', `secret storage holds no backup key (${MEGOLM_BACKUP_SECRET_NAME}) for key ${keyId}`);
  }
  let secret: string;
  try {
    secret = await decryptSecret(key, MEGOLM_BACKUP_SECRET_NAME, encrypted);
  } catch (error) {
    // Without a key check (it is optional, §5.2), the secret's own MAC is the first place a wrong
    // key shows: report it as the wrong key, which is what the user needs to hear.
    if (!hasKeyCheck && isCoreError(error, 'mac')) {
      throw new CoreError('key-check', 'this is not the Security Key (or Phrase) of this account\'s secret storage', { cause: error });
    }
    throw error;
  }
  // "the key is base64-encoded before being encrypted"; both padded and unpadded occur (§0).
  const privateKey = decodeBase64(secret, `the stored ${MEGOLM_BACKUP_SECRET_NAME} secret`);
  if (privateKey.length !== 32) {
    throw new CoreError('length', `the stored backup key is ${privateKey.length} bytes instead of 32`);
  }
  return privateKey;
}
