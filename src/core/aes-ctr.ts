/**
 * AES-256-CTR as Element uses it for secrets and key files: WebCrypto with a 64-bit counter
 * (`length: 64`), i.e. the low 64 bits of the IV count and wrap modulo 2^64 (reference §5.3).
 * rust-sdk uses a 128-bit counter; the two agree unless the low half overflows, which is why
 * writers clear bit 63 of the IV. Element's key-export vector with an all-ff IV (V14) decrypts
 * correctly only with the 64-bit counter.
 */
import { randomBytes } from '@noble/hashes/utils.js';
import { expectBytes, toBufferSource } from './bytes.ts';

/** Encrypts or decrypts (the same operation in CTR mode). */
export async function aesCtr64(key: Uint8Array, iv: Uint8Array, data: Uint8Array): Promise<Uint8Array> {
  expectBytes(key, 'AES key', 32);
  expectBytes(iv, 'AES-CTR counter block', 16);
  const aesKey = await crypto.subtle.importKey('raw', toBufferSource(key), 'AES-CTR', false, ['encrypt']);
  return new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-CTR', counter: toBufferSource(iv), length: 64 }, aesKey, toBufferSource(data)));
}

/** A random IV with bit 63 cleared (`iv[8] &= 0x7f`), so the 64-bit counter never wraps. */
export function randomCtrIv(): Uint8Array {
  const iv = randomBytes(16);
  iv[8] = iv[8]! & 0x7f;
  return iv;
}
