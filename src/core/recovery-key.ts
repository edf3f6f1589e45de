/**
 * The cryptographic key representation ("recovery key", "Security Key"): spec appendix
 * "Cryptographic key representation", reference §4.1. Used for both the backup decryption key
 * and the secret-storage key; the string alone does not say which.
 */
import { base58 } from '@scure/base';
import { expectBytes } from './bytes.ts';
import { CoreError } from './errors.ts';

const PREFIX = [0x8b, 0x01] as const;
const KEY_LENGTH = 32;
const ENCODED_LENGTH = PREFIX.length + KEY_LENGTH + 1; // prefix || key || parity = 35 bytes

/** "EsTc LW2K …": 48 base58 characters in 12 groups of 4. */
export function encodeRecoveryKey(key: Uint8Array): string {
  expectBytes(key, 'recovery key', KEY_LENGTH);
  const bytes = new Uint8Array(ENCODED_LENGTH);
  bytes.set(PREFIX, 0);
  bytes.set(key, PREFIX.length);
  // "a parity byte … the result of XORing all the bytes so far", prefix included.
  let parity = 0;
  for (let i = 0; i < ENCODED_LENGTH - 1; i++) parity ^= bytes[i]!;
  bytes[ENCODED_LENGTH - 1] = parity;
  // Bitcoin-alphabet base58 with no checksum, then "a space after every 4th character".
  return base58.encode(bytes).replace(/(.{4})(?=.)/g, '$1 ');
}

/**
 * Decodes a recovery key. The spec says to "disregard whitespace", so ALL whitespace goes
 * (rust-sdk strips every kind; js-sdk only U+0020). Checks run base58 → length → prefix → parity.
 */
export function decodeRecoveryKey(text: string): Uint8Array {
  if (typeof text !== 'string') throw new CoreError('field', 'recovery key must be a string');
  let bytes: Uint8Array;
  try {
    bytes = base58.decode(text.replace(/\s+/g, ''));
  } catch (cause) {
    throw new CoreError('base58', 'not a recovery key: it contains characters that are not base58 (0, O, I and l are never used)', { cause });
  }
  if (bytes.length !== ENCODED_LENGTH) {
    throw new CoreError('length', `not a recovery key: it encodes ${bytes.length} bytes instead of ${ENCODED_LENGTH}; check that it is complete`);
  }
  if (bytes[0] !== PREFIX[0] || bytes[1] !== PREFIX[1]) {
    throw new CoreError('prefix', 'not a recovery key: a recovery key starts with "EsS", "EsT" or "EsU"');
  }
  let parity = 0;
  for (const b of bytes) parity ^= b;
  if (parity !== 0) throw new CoreError('parity', 'the recovery key has a typo: its check character does not match');
  return bytes.slice(PREFIX.length, PREFIX.length + KEY_LENGTH);
}
