/**
 * The core's public surface (DESIGN "The core's public surface"): protocol and crypto, no I/O.
 * Plain ES modules for browsers, workers and Node ≥ 20; WebCrypto is the one platform global.
 */
export { CoreError, isCoreError, type CoreErrorKind } from './errors.ts';
export { decodeBase64, encodeBase64, unpadBase64 } from './base64.ts';
export { decodeRecoveryKey, encodeRecoveryKey } from './recovery-key.ts';
export { derivePassphraseKey, MAX_ITERATIONS } from './passphrase.ts';
export { hasNativeX25519, type X25519Implementation } from './x25519.ts';
export {
  backupKeyMatches,
  backupPublicKey,
  BackupDecryptor,
  BackupEncryptor,
  createBackupDecryptor,
  encryptSessionData,
  DEFAULT_BATCH_SIZE,
  type BackupCipherOptions,
  type DecryptManyOptions,
  type DecryptResult,
} from './backup-cipher.ts';
export { type SymmetricImplementation } from './backup-symmetric.ts';
export {
  checkSecretStorageKey,
  createSecretStorageKeyCheck,
  decryptSecret,
  encryptSecret,
  type SecretOptions,
} from './secret-storage.ts';
export { backupKeyFromSecretStorage, secretStorageKeyFromPassphrase } from './secret-storage-chain.ts';
export { parseSessionKey } from './session-key.ts';
export { parseExportedSession } from './exported-session.ts';
export { DEFAULT_KEY_FILE_ROUNDS, KEY_FILE_PIECE_BYTES, decryptKeyFile, encryptKeyFile, openKeyFile, openKeyFileStream, type KeyFileOptions, type KeyFileText, type OpenedKeyFile } from './key-file.ts';
export { canonicalJson } from './canonical-json.ts';
export { verifyAuthDataSignature } from './auth-data.ts';
export {
  BACKUP_ALGORITHM,
  MEGOLM_ALGORITHM,
  MEGOLM_BACKUP_SECRET_NAME,
  SECRET_STORAGE_ALGORITHM,
  type BackedUpSessionData,
  type EncryptedSecret,
  type EncryptedSessionData,
  type ExportedSession,
  type SecretStorageAccountData,
  type SecretStorageKeyCheck,
  type SecretStorageKeyDescription,
  type SecretStoragePassphrase,
  type SessionKeyInfo,
} from './types.ts';
