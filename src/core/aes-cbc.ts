/**
 * AES-256-CBC with PKCS#7 padding, as the backup algorithm uses it (reference §2.4 step 4, §2.5
 * step 4), in two implementations with one contract: synchronous JS (@noble/ciphers) and WebCrypto.
 * backup-symmetric.ts says which one runs where, and why.
 */
import { cbc } from '@noble/ciphers/aes.js';
import { expectBytes, toBufferSource } from './bytes.ts';
import { CoreError } from './errors.ts';

const BLOCK = 16;

function checkKeyAndIv(key: Uint8Array, iv: Uint8Array): void {
  expectBytes(key, 'AES-256-CBC key', 32);
  expectBytes(iv, 'AES-CBC IV', BLOCK);
}

function checkCiphertext(ciphertext: Uint8Array, what: string): void {
  expectBytes(ciphertext, what);
  if (ciphertext.length === 0 || ciphertext.length % BLOCK !== 0) {
    throw new CoreError('length', `${what} must be whole 16-byte AES blocks, got ${ciphertext.length} bytes`);
  }
}

function badPadding(what: string, cause: unknown): CoreError {
  return new CoreError('padding', `${what} has bad padding: it is corrupted or was encrypted for another key`, { cause });
}

/** Pads with PKCS#7 (RFC 5652 §6.3: always 1–16 bytes) and encrypts. */
export function aesCbcEncrypt(key: Uint8Array, iv: Uint8Array, plaintext: Uint8Array): Uint8Array {
  checkKeyAndIv(key, iv);
  expectBytes(plaintext, 'AES-CBC plaintext');
  return cbc(key, iv).encrypt(plaintext);
}

/**
 * Decrypts and removes the PKCS#7 padding. Throws kind `length` for a ciphertext that is not whole,
 * non-empty blocks and kind `padding` when the padding is wrong: a wrong key, or corrupted data.
 * `what` names the ciphertext in error messages.
 */
export function aesCbcDecrypt(key: Uint8Array, iv: Uint8Array, ciphertext: Uint8Array, what = 'the AES-CBC ciphertext'): Uint8Array {
  checkKeyAndIv(key, iv);
  checkCiphertext(ciphertext, what);
  try {
    // noble checks all 16 tail bytes whatever the pad length (constant shape), so the time taken
    // does not tell where the padding went wrong.
    return cbc(key, iv).decrypt(ciphertext);
  } catch (cause) {
    // Key, IV and length were checked above: the padding check is the only failure left.
    throw badPadding(what, cause);
  }
}

/** `aesCbcEncrypt` in WebCrypto (which pads with PKCS#7 itself). */
export async function webAesCbcEncrypt(key: Uint8Array, iv: Uint8Array, plaintext: Uint8Array): Promise<Uint8Array> {
  checkKeyAndIv(key, iv);
  expectBytes(plaintext, 'AES-CBC plaintext');
  const aesKey = await crypto.subtle.importKey('raw', toBufferSource(key), 'AES-CBC', false, ['encrypt']);
  return new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-CBC', iv: toBufferSource(iv) }, aesKey, toBufferSource(plaintext)));
}

/** `aesCbcDecrypt` in WebCrypto, with the same checks and error kinds. */
export async function webAesCbcDecrypt(key: Uint8Array, iv: Uint8Array, ciphertext: Uint8Array, what = 'the AES-CBC ciphertext'): Promise<Uint8Array> {
  checkKeyAndIv(key, iv);
  checkCiphertext(ciphertext, what);
  const aesKey = await crypto.subtle.importKey('raw', toBufferSource(key), 'AES-CBC', false, ['decrypt']);
  try {
    return new Uint8Array(await crypto.subtle.decrypt({ name: 'AES-CBC', iv: toBufferSource(iv) }, aesKey, toBufferSource(ciphertext)));
  } catch (cause) {
    // WebCrypto checks and removes the padding; with the length checked, an OperationError here
    // is bad padding.
    throw badPadding(what, cause);
  }
}
