/**
 * Secret storage, algorithm `m.secret_storage.v1.aes-hmac-sha2` (spec "Secrets", reference §5):
 * HKDF-SHA-256(4S key, info = secret name) → AES-256-CTR key ‖ HMAC-SHA-256 key; the key check is
 * the same construction over 32 zero bytes with the empty name.
 */
import { hkdf } from '@noble/hashes/hkdf.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { aesCtr64, randomCtrIv } from './aes-ctr.ts';
import { decodeBase64, encodeBase64 } from './base64.ts';
import { equalBytes, expectBytes, isJsonObject, utf8Decode, utf8Encode } from './bytes.ts';
import { CoreError } from './errors.ts';
import type { EncryptedSecret, SecretStorageKeyCheck, SecretStorageKeyDescription } from './types.ts';
import { SECRET_STORAGE_ALGORITHM } from './types.ts';

const HKDF_SALT = new Uint8Array(32);
const IV_LENGTH = 16;
const MAC_LENGTH = 32;

export interface SecretOptions {
  /** Pins the IV (tests only); default: random with bit 63 cleared. */
  iv?: Uint8Array;
}

function expectKey(key: Uint8Array): Uint8Array {
  expectBytes(key, 'secret-storage key');
  // MSC2472: a 4S key "may be any size (though 256 bits is recommended)" — but not empty.
  if (key.length === 0) throw new CoreError('length', 'the secret-storage key is empty');
  return key;
}

/** §5.3 step 1: HKDF-SHA-256(key, salt = 32 zero bytes, info = UTF-8(name), L = 64). */
function deriveSecretKeys(key: Uint8Array, name: string): { aesKey: Uint8Array; macKey: Uint8Array } {
  const okm = hkdf(sha256, key, HKDF_SALT, utf8Encode(name), 64);
  return { aesKey: okm.subarray(0, 32), macKey: okm.subarray(32, 64) };
}

/** §5.3 steps 3–4: AES-CTR, then HMAC over the ciphertext only. */
async function seal(key: Uint8Array, name: string, plaintext: Uint8Array, iv: Uint8Array): Promise<{ ciphertext: Uint8Array; mac: Uint8Array }> {
  const { aesKey, macKey } = deriveSecretKeys(key, name);
  const ciphertext = await aesCtr64(aesKey, iv, plaintext);
  return { ciphertext, mac: hmac(sha256, macKey, ciphertext) };
}

function chooseIv(options: SecretOptions): Uint8Array {
  return options.iv === undefined ? randomCtrIv() : expectBytes(options.iv, 'iv', IV_LENGTH);
}

function decodeSized(value: unknown, name: string, length: number): Uint8Array {
  if (typeof value !== 'string') throw new CoreError('field', `${name} must be a base64 string`);
  const bytes = decodeBase64(value, name);
  if (bytes.length !== length) throw new CoreError('length', `${name} must be ${length} bytes, got ${bytes.length}`);
  return bytes;
}

/** The `iv`/`mac` pair a key description stores so clients can recognise the key (§5.2). */
export async function createSecretStorageKeyCheck(key: Uint8Array, options: SecretOptions = {}): Promise<SecretStorageKeyCheck> {
  const iv = chooseIv(options);
  const { mac } = await seal(expectKey(key), '', new Uint8Array(32), iv);
  return { iv: encodeBase64(iv), mac: encodeBase64(mac) };
}

/**
 * Whether `key` is the key `description` describes (§5.2). Without `iv` and `mac` the spec says
 * "clients must assume that the key is valid", so that is `true`. A description this code cannot
 * read — another algorithm, a wrong IV or MAC length, only one of the two — throws.
 */
export async function checkSecretStorageKey(key: Uint8Array, description: SecretStorageKeyDescription): Promise<boolean> {
  expectKey(key);
  if (!isJsonObject(description)) throw new CoreError('field', 'the secret-storage key description must be a JSON object');
  if (description.algorithm !== SECRET_STORAGE_ALGORITHM) {
    throw new CoreError('algorithm', `unsupported secret-storage algorithm ${JSON.stringify(description.algorithm)}`);
  }
  if (description.iv === undefined && description.mac === undefined) return true;
  if (description.iv === undefined || description.mac === undefined) {
    throw new CoreError('field', 'the secret-storage key description has only one of "iv" and "mac"');
  }
  const iv = decodeSized(description.iv, 'the key description\'s iv', IV_LENGTH);
  const expected = decodeSized(description.mac, 'the key description\'s mac', MAC_LENGTH);
  const { mac } = await seal(key, '', new Uint8Array(32), iv);
  return equalBytes(mac, expected);
}

/** Encrypts one secret under `name` (the account-data type, e.g. `m.megolm_backup.v1`). */
export async function encryptSecret(key: Uint8Array, name: string, secret: string, options: SecretOptions = {}): Promise<EncryptedSecret> {
  expectKey(key);
  if (typeof name !== 'string') throw new CoreError('field', 'the secret name must be a string');
  if (typeof secret !== 'string') throw new CoreError('field', 'the secret must be a string');
  const iv = chooseIv(options);
  const { ciphertext, mac } = await seal(key, name, utf8Encode(secret), iv);
  return { iv: encodeBase64(iv), ciphertext: encodeBase64(ciphertext), mac: encodeBase64(mac) };
}

/** Decrypts one secret: the HMAC is verified first (§5.3), then AES-CTR. */
export async function decryptSecret(key: Uint8Array, name: string, encrypted: EncryptedSecret): Promise<string> {
  expectKey(key);
  if (typeof name !== 'string') throw new CoreError('field', 'the secret name must be a string');
  if (!isJsonObject(encrypted)) throw new CoreError('field', 'the encrypted secret must be a JSON object');
  const iv = decodeSized(encrypted.iv, 'the secret\'s iv', IV_LENGTH);
  const expected = decodeSized(encrypted.mac, 'the secret\'s mac', MAC_LENGTH);
  if (typeof encrypted.ciphertext !== 'string') throw new CoreError('field', 'the secret\'s ciphertext must be a base64 string');
  const ciphertext = decodeBase64(encrypted.ciphertext, 'the secret\'s ciphertext');
  const { aesKey, macKey } = deriveSecretKeys(key, name);
  if (!equalBytes(hmac(sha256, macKey, ciphertext), expected)) {
    throw new CoreError('mac', `the MAC of secret ${name} does not match: wrong key, or the secret was changed`);
  }
  return utf8Decode(await aesCtr64(aesKey, iv, ciphertext), `secret ${name}`);
}
