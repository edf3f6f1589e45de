/**
 * Keys from passphrases: PBKDF2 with HMAC-SHA-512 (reference §4.2, spec "Deriving keys from
 * passphrases"; also the key-file KDF, §6.2). WebCrypto runs it natively, off the main thread.
 */
import { expectBytes, toBufferSource, utf8Encode } from './bytes.ts';
import { CoreError } from './errors.ts';

/**
 * A hostile homeserver chooses `iterations` (secret-storage passphrase parameters, legacy
 * `auth_data.private_key_iterations`) and a key file carries its own round count. Ten million
 * is 20× what Element writes and still finishes in seconds; beyond that we refuse rather than hang.
 */
export const MAX_ITERATIONS = 10_000_000;
/** Far above any real key size (256 is the default); bounds the work a hostile `bits` can ask for. */
export const MAX_BITS = 4096;

export function checkIterations(iterations: number, what: string): void {
  if (!Number.isSafeInteger(iterations) || iterations < 1) {
    throw new CoreError('iterations', `${what} must be a whole number of at least 1, got ${String(iterations)}`);
  }
  if (iterations > MAX_ITERATIONS) {
    throw new CoreError('iterations', `${what} is ${iterations}, more than the ${MAX_ITERATIONS} this extension accepts`);
  }
}

/** PBKDF2-HMAC-SHA-512 over raw bytes; `bits` must be a positive multiple of 8. */
export async function pbkdf2Sha512(password: Uint8Array, salt: Uint8Array, iterations: number, bits: number): Promise<Uint8Array> {
  expectBytes(password, 'password');
  expectBytes(salt, 'salt');
  checkIterations(iterations, 'the PBKDF2 iteration count');
  if (!Number.isSafeInteger(bits) || bits <= 0 || bits % 8 !== 0 || bits > MAX_BITS) {
    throw new CoreError('length', `the key size must be a positive multiple of 8 bits up to ${MAX_BITS}, got ${String(bits)}`);
  }
  const baseKey = await crypto.subtle.importKey('raw', toBufferSource(password), 'PBKDF2', false, ['deriveBits']);
  const derived = await crypto.subtle.deriveBits(
    { name: 'PBKDF2', hash: 'SHA-512', salt: toBufferSource(salt), iterations },
    baseKey,
    bits,
  );
  return new Uint8Array(derived);
}

/**
 * The secret-storage (or legacy backup) key for a passphrase. The salt is used as the UTF-8 bytes
 * of the string, NOT base64-decoded (js-sdk, rust-sdk and hydrogen all agree; reference §4.2).
 */
export async function derivePassphraseKey(passphrase: string, salt: string, iterations: number, bits = 256): Promise<Uint8Array> {
  if (typeof passphrase !== 'string') throw new CoreError('field', 'passphrase must be a string');
  if (typeof salt !== 'string') throw new CoreError('field', 'salt must be a string');
  return pbkdf2Sha512(utf8Encode(passphrase), utf8Encode(salt), iterations, bits);
}
