/**
 * Wire-independent data shapes the core reads and writes (spec names, reference §2.2, §2.3, §5).
 * The HTTP envelopes around them live in wire.ts.
 */

/** The backup algorithm this extension implements (reference §2). */
export const BACKUP_ALGORITHM = 'm.megolm_backup.v1.curve25519-aes-sha2';
/** The only room-key algorithm a backup entry may hold. */
export const MEGOLM_ALGORITHM = 'm.megolm.v1.aes-sha2';
/** The only secret-storage key algorithm (reference §5.2). */
export const SECRET_STORAGE_ALGORITHM = 'm.secret_storage.v1.aes-hmac-sha2';
/** The account-data type (and secret name) that holds the backup private key (reference §5.4). */
export const MEGOLM_BACKUP_SECRET_NAME = 'm.megolm_backup.v1';

/**
 * The plaintext of one backup entry (spec `BackedUpSessionData`). Unknown members are kept as they
 * were: `m.shared_history`, `room_id`, the legacy `forwardingCurve25519KeyChain` (reference §2.2).
 */
export interface BackedUpSessionData {
  algorithm: string;
  sender_key: string;
  sender_claimed_keys: Record<string, string>;
  /** Required by the spec, absent in old libolm-era entries (rust-sdk defaults it to []). */
  forwarding_curve25519_key_chain?: string[];
  /** Unpadded base64 Megolm session key in the export format (0x01, 165 bytes). */
  session_key: string;
  [member: string]: unknown;
}

/** The ciphertext envelope of one backup entry (`session_data`, reference §2.3). */
export interface EncryptedSessionData {
  /** Unpadded base64 of the 32-byte ephemeral X25519 public key. */
  ephemeral: string;
  /** Unpadded base64 of the AES-256-CBC ciphertext. */
  ciphertext: string;
  /** Unpadded base64 of 8 bytes: HMAC-SHA-256(mac_key, "")[0..8] (see backup-cipher.ts). */
  mac: string;
}

/** `m.secret_storage.key.<id>.passphrase` (reference §4.2). */
export interface SecretStoragePassphrase {
  algorithm: string;
  salt: string;
  iterations: number;
  bits?: number;
}

/** `m.secret_storage.key.<id>` (`AesHmacSha2KeyDescription`, reference §5.2). */
export interface SecretStorageKeyDescription {
  name?: string | null;
  algorithm: string;
  passphrase?: SecretStoragePassphrase;
  /** Base64, 16 bytes; optional together with `mac`. */
  iv?: string;
  /** Base64, 32 bytes. */
  mac?: string;
  [member: string]: unknown;
}

/** One encrypted secret (`AesHmacSha2EncryptedData`, reference §5.3). */
export interface EncryptedSecret {
  iv: string;
  ciphertext: string;
  mac: string;
}

/** A key-check pair to store in a key description (reference §5.2). */
export interface SecretStorageKeyCheck {
  iv: string;
  mac: string;
}

/** What secret storage holds for the backup: the account data the chain needs (reference §5.4). */
export interface SecretStorageAccountData {
  /** `m.secret_storage.default_key` → `key`. */
  defaultKeyId?: string;
  /** `m.secret_storage.key.<id>` contents, by key id. */
  keys: Record<string, SecretStorageKeyDescription>;
  /** The `m.megolm_backup.v1` account-data content, as the server sent it. */
  megolmBackup?: unknown;
}

/** A validated element of a key export (or backup plaintext with its room and session ids). */
export interface ExportedSession {
  roomId: string;
  sessionId: string;
  /** The ratchet index embedded in the session key (reference §6.1). */
  firstMessageIndex: number;
  senderKey: string;
  forwardingChainLength: number;
  /** What to encrypt into the backup: the export minus `room_id`/`session_id`, unknown members kept. */
  data: BackedUpSessionData;
}

/** What `parseSessionKey` reads out of a Megolm session key. */
export interface SessionKeyInfo {
  /** 1 = export format (backups, key files); 2 = sharing format (`m.room_key`). */
  version: 1 | 2;
  firstMessageIndex: number;
  /** Unpadded base64 of the embedded Ed25519 key, which is the session id. */
  sessionId: string;
}
