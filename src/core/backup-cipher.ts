/**
 * The backup algorithm `m.megolm_backup.v1.curve25519-aes-sha2` (reference §2.4–2.7): X25519 with
 * an ephemeral key, HKDF-SHA-256 → AES-256-CBC key, MAC key and IV, and an 8-byte "MAC".
 *
 * Split for speed (DESIGN "Performance model"): X25519 and AES-CBC go to WebCrypto (native code,
 * off the JS thread), HKDF and the tiny HMAC run synchronously in @noble/hashes, which is cheaper
 * than two more WebCrypto round trips. The private key is imported once per decryptor.
 */
import { hkdf } from '@noble/hashes/hkdf.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { decodeBase64, encodeBase64 } from './base64.ts';
import { equalBytes, expectBytes, isJsonObject, toBufferSource, utf8Decode, utf8Encode } from './bytes.ts';
import { CoreError, isCoreError } from './errors.ts';
import type { BackedUpSessionData, EncryptedSessionData } from './types.ts';
import { BACKUP_ALGORITHM } from './types.ts';
import {
  chooseX25519,
  generateX25519Secret,
  importX25519Secret,
  type X25519Implementation,
  type X25519Secret,
} from './x25519.ts';

export interface BackupCipherOptions {
  /** Which X25519 to use; default: native when the platform has it, else noble. */
  x25519?: X25519Implementation;
  /** Pins the ephemeral private key (tests, vector V17); never set it in production. */
  ephemeralPrivateKey?: Uint8Array;
}

/** One entry's outcome in `decryptMany`: failures are data, never fatal (DESIGN flow 3). */
export type DecryptResult =
  | { ok: true; value: BackedUpSessionData }
  | { ok: false; error: CoreError };

const MAC_LENGTH = 8;
const AES_BLOCK = 16;
// Spec: salt = 32 zero bytes, info = "". (HMAC zero-pads short keys, so libolm's empty salt and
// vodozemac's one-byte salt give the same output — reference §2.4 step 3.)
const HKDF_SALT = new Uint8Array(32);
const EMPTY = new Uint8Array(0);

interface EntryKeys {
  aesKey: Uint8Array;
  macKey: Uint8Array;
  iv: Uint8Array;
}

/** HKDF-SHA-256(shared secret) → 80 bytes: AES key ‖ MAC key ‖ IV (reference §2.4 step 3). */
function deriveEntryKeys(sharedSecret: Uint8Array): EntryKeys {
  const okm = hkdf(sha256, sharedSecret, HKDF_SALT, EMPTY, 80);
  return { aesKey: okm.subarray(0, 32), macKey: okm.subarray(32, 64), iv: okm.subarray(64, 80) };
}

/**
 * SPEC BUG (libolm): the MAC covers the EMPTY string, not the ciphertext. libolm's
 * `olm_pk_encrypt` handed its 8-byte MAC buffer to the generic cipher as "the output", which then
 * MACs `output[0 .. len - 8]` = nothing; every implementation has copied it since (spec v1.10+
 * warning box, MSC4048, reference §2.6). So this tag only confirms the key, it authenticates nothing.
 */
function entryMac(macKey: Uint8Array): Uint8Array {
  return hmac(sha256, macKey, EMPTY).subarray(0, MAC_LENGTH);
}

function decodeField(value: unknown, name: string): Uint8Array {
  if (typeof value !== 'string') throw new CoreError('field', `session_data.${name} must be a string`);
  return decodeBase64(value, `session_data.${name}`);
}

/** Checks the envelope: base64 everywhere, a 32-byte key, an 8-byte MAC, whole AES blocks. */
function readEnvelope(sessionData: unknown): { ephemeral: Uint8Array; ciphertext: Uint8Array; mac: Uint8Array } {
  if (!isJsonObject(sessionData)) throw new CoreError('field', 'session_data must be a JSON object');
  const ephemeral = decodeField(sessionData.ephemeral, 'ephemeral');
  const ciphertext = decodeField(sessionData.ciphertext, 'ciphertext');
  const mac = decodeField(sessionData.mac, 'mac');
  if (ephemeral.length !== 32) {
    throw new CoreError('length', `session_data.ephemeral must be a 32-byte X25519 key, got ${ephemeral.length} bytes`);
  }
  if (mac.length !== MAC_LENGTH) {
    throw new CoreError('length', `session_data.mac must be ${MAC_LENGTH} bytes, got ${mac.length}`);
  }
  if (ciphertext.length === 0 || ciphertext.length % AES_BLOCK !== 0) {
    throw new CoreError('length', `session_data.ciphertext must be whole 16-byte AES blocks, got ${ciphertext.length} bytes`);
  }
  return { ephemeral, ciphertext, mac };
}

/**
 * The plaintext must be a JSON object with the spec's required members; it is returned as it was,
 * unknown members included. `forwarding_curve25519_key_chain` may be missing (reference §2.2).
 */
function parsePlaintext(plaintext: Uint8Array): BackedUpSessionData {
  let value: unknown;
  try {
    value = JSON.parse(utf8Decode(plaintext, 'the decrypted session'));
  } catch (cause) {
    throw new CoreError('json', 'the decrypted session is not JSON text', { cause });
  }
  if (!isJsonObject(value)) throw new CoreError('json', 'the decrypted session is not a JSON object');
  for (const member of ['algorithm', 'sender_key', 'session_key'] as const) {
    if (typeof value[member] !== 'string') throw new CoreError('field', `the decrypted session has no string "${member}"`);
  }
  if (!isJsonObject(value.sender_claimed_keys)) {
    throw new CoreError('field', 'the decrypted session has no "sender_claimed_keys" object');
  }
  return value as BackedUpSessionData;
}

async function aesCbcDecrypt(keys: EntryKeys, ciphertext: Uint8Array): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey('raw', toBufferSource(keys.aesKey), 'AES-CBC', false, ['decrypt']);
  try {
    // WebCrypto checks and removes the PKCS#7 padding; the length was checked, so a failure here
    // is bad padding: a wrong key that still passed the MAC, or a corrupted ciphertext.
    return new Uint8Array(await crypto.subtle.decrypt({ name: 'AES-CBC', iv: toBufferSource(keys.iv) }, key, toBufferSource(ciphertext)));
  } catch (cause) {
    throw new CoreError('padding', 'the session ciphertext has bad padding: it is corrupted or was encrypted for another key', { cause });
  }
}

async function aesCbcEncrypt(keys: EntryKeys, plaintext: Uint8Array): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey('raw', toBufferSource(keys.aesKey), 'AES-CBC', false, ['encrypt']);
  return new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-CBC', iv: toBufferSource(keys.iv) }, key, toBufferSource(plaintext)));
}

/** Reference §2.5: agree, derive, check the MAC (constant time), decrypt, parse. */
async function decryptEntry(secret: X25519Secret, sessionData: EncryptedSessionData): Promise<BackedUpSessionData> {
  const envelope = readEnvelope(sessionData);
  const keys = deriveEntryKeys(await secret.sharedSecret(envelope.ephemeral));
  if (!equalBytes(entryMac(keys.macKey), envelope.mac)) {
    throw new CoreError('mac', 'the session MAC does not match: it was encrypted for a different backup key, or corrupted');
  }
  return parsePlaintext(await aesCbcDecrypt(keys, envelope.ciphertext));
}

/**
 * Encrypts raw plaintext bytes to a backup public key (reference §2.4). Exported for tests that
 * need envelopes a JSON encoder cannot make (bad padding, non-JSON plaintext); not in index.ts.
 */
export async function sealSessionBytes(publicKey: Uint8Array, plaintext: Uint8Array, options: BackupCipherOptions = {}): Promise<EncryptedSessionData> {
  expectBytes(publicKey, 'backup public key', 32);
  const implementation = await chooseX25519(options.x25519);
  const ephemeral = options.ephemeralPrivateKey === undefined
    ? await generateX25519Secret(implementation)
    : await importX25519Secret(expectBytes(options.ephemeralPrivateKey, 'ephemeralPrivateKey', 32), implementation);
  const keys = deriveEntryKeys(await ephemeral.sharedSecret(publicKey));
  const ciphertext = await aesCbcEncrypt(keys, plaintext);
  return {
    ephemeral: encodeBase64(ephemeral.publicKey),
    ciphertext: encodeBase64(ciphertext),
    mac: encodeBase64(entryMac(keys.macKey)),
  };
}

function decodeBackupPublicKey(publicKey: string): Uint8Array {
  if (typeof publicKey !== 'string') throw new CoreError('field', 'the backup public key must be a base64 string');
  const bytes = decodeBase64(publicKey, 'the backup public key');
  if (bytes.length !== 32) throw new CoreError('length', `the backup public key must be 32 bytes, got ${bytes.length}`);
  return bytes;
}

function serialize(data: BackedUpSessionData): Uint8Array {
  if (!isJsonObject(data)) throw new CoreError('field', 'the session to back up must be a JSON object');
  try {
    return utf8Encode(JSON.stringify(data));
  } catch (cause) {
    throw new CoreError('json', 'the session to back up cannot be written as JSON', { cause });
  }
}

/** Encrypts one session's data to the backup public key (unpadded base64). */
export async function encryptSessionData(publicKey: string, data: BackedUpSessionData, options: BackupCipherOptions = {}): Promise<EncryptedSessionData> {
  return sealSessionBytes(decodeBackupPublicKey(publicKey), serialize(data), options);
}

/** The backup public key (unpadded base64) for a backup private key. */
export async function backupPublicKey(privateKey: Uint8Array, options: BackupCipherOptions = {}): Promise<string> {
  const secret = await importX25519Secret(expectBytes(privateKey, 'backup private key', 32), await chooseX25519(options.x25519));
  return encodeBase64(secret.publicKey);
}

/**
 * Whether a private key belongs to a backup's `auth_data.public_key` (compared as bytes, so
 * padded and unpadded spellings agree — reference §0). The trust rule of DESIGN "Security model".
 */
export async function backupKeyMatches(privateKey: Uint8Array, publicKey: string, options: BackupCipherOptions = {}): Promise<boolean> {
  const expected = decodeBackupPublicKey(publicKey);
  const secret = await importX25519Secret(expectBytes(privateKey, 'backup private key', 32), await chooseX25519(options.x25519));
  return equalBytes(secret.publicKey, expected);
}

/**
 * How many entries `decryptMany` keeps in flight: enough to keep WebCrypto's worker threads busy
 * while JS does the synchronous parts (bench/decrypt.ts measures the effect).
 */
const IN_FLIGHT = 16;

/** Decrypts backup entries for one private key. Shows only its public key when printed. */
export class BackupDecryptor {
  readonly algorithm = BACKUP_ALGORITHM;
  readonly publicKey: string;
  readonly implementation: X25519Implementation;
  readonly #secret: X25519Secret;

  private constructor(secret: X25519Secret) {
    this.#secret = secret;
    this.publicKey = encodeBase64(secret.publicKey);
    this.implementation = secret.implementation;
  }

  /** Imports the private key once; every decrypt reuses it. */
  static async create(privateKey: Uint8Array, options: BackupCipherOptions = {}): Promise<BackupDecryptor> {
    const implementation = await chooseX25519(options.x25519);
    return new BackupDecryptor(await importX25519Secret(expectBytes(privateKey, 'backup private key', 32), implementation));
  }

  /** Decrypts one `session_data`; throws CoreError kinds field/base64/length/non-contributory/mac/padding/json/utf8. */
  decrypt(sessionData: EncryptedSessionData): Promise<BackedUpSessionData> {
    return decryptEntry(this.#secret, sessionData);
  }

  /** Decrypts many entries with several in flight; results are in input order, failures included. */
  async decryptMany(list: readonly EncryptedSessionData[]): Promise<DecryptResult[]> {
    const results = new Array<DecryptResult>(list.length);
    let next = 0;
    const lane = async (): Promise<void> => {
      while (next < list.length) {
        const index = next++;
        try {
          results[index] = { ok: true, value: await decryptEntry(this.#secret, list[index]!) };
        } catch (error) {
          if (!isCoreError(error)) throw error; // a bug, not a bad entry: let it surface
          results[index] = { ok: false, error };
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, list.length) }, lane));
    return results;
  }

  toJSON(): { algorithm: string; publicKey: string } {
    return { algorithm: this.algorithm, publicKey: this.publicKey };
  }

  toString(): string {
    return `BackupDecryptor(${this.publicKey})`;
  }
}

/** A decryptor for a backup private key (32 bytes), imported once. */
export function createBackupDecryptor(privateKey: Uint8Array, options: BackupCipherOptions = {}): Promise<BackupDecryptor> {
  return BackupDecryptor.create(privateKey, options);
}

/** Encrypts many sessions to one backup public key, decoded once (the upload path). */
export class BackupEncryptor {
  readonly algorithm = BACKUP_ALGORITHM;
  readonly publicKey: string;
  readonly #publicKey: Uint8Array;
  readonly #options: BackupCipherOptions;

  constructor(publicKey: string, options: BackupCipherOptions = {}) {
    this.#publicKey = decodeBackupPublicKey(publicKey);
    this.publicKey = encodeBase64(this.#publicKey);
    this.#options = { ...options };
  }

  encrypt(data: BackedUpSessionData): Promise<EncryptedSessionData> {
    return sealSessionBytes(this.#publicKey, serialize(data), this.#options);
  }
}
