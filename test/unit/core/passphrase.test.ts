import { pbkdf2 } from '@noble/hashes/pbkdf2.js';
import { sha512 } from '@noble/hashes/sha2.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { derivePassphraseKey, MAX_ITERATIONS } from '../../../src/core/index.ts';
import { kindOf, toHex, vectors } from './helpers.ts';

const secretStorage = vectors('secret-storage.json');
const rustPassphrase = secretStorage.key_check.find((v: { id: string }) => v.id === 'rust-passphrase');
const chain = secretStorage.chain;

describe('derivePassphraseKey (PBKDF2-HMAC-SHA-512, reference §4.2)', () => {
  it('reproduces the rust-sdk passphrase vector (V7)', async () => {
    const { salt, iterations } = rustPassphrase.description.passphrase;
    expect(toHex(await derivePassphraseKey(rustPassphrase.passphrase, salt, iterations))).toBe(rustPassphrase.derived_key_hex);
  });

  it('reproduces the chain vector\'s secret-storage key (V9, 1 iteration)', async () => {
    const { salt, iterations } = chain.account_data['m.secret_storage.key.yJWwBm2Ts8jHygTBslKpABFyykavhhfA'].passphrase;
    expect(toHex(await derivePassphraseKey(chain.security_phrase, salt, iterations))).toBe(chain.secret_storage_key_hex);
  });

  it('uses the salt string\'s UTF-8 bytes and the passphrase\'s UTF-8 bytes (matches noble pbkdf2)', async () => {
    await fc.assert(fc.asyncProperty(fc.string({ maxLength: 20 }), fc.string({ maxLength: 20 }), fc.integer({ min: 1, max: 5 }), async (passphrase, salt, iterations) => {
      const expected = pbkdf2(sha512, new TextEncoder().encode(passphrase), new TextEncoder().encode(salt), { c: iterations, dkLen: 32 });
      expect(toHex(await derivePassphraseKey(passphrase, salt, iterations))).toBe(toHex(expected));
    }), { numRuns: 30 });
  });

  it('honours bits: 512 bits begin with the 256-bit key, 128 bits are its prefix', async () => {
    const k256 = await derivePassphraseKey('pass', 'salt', 3);
    const k512 = await derivePassphraseKey('pass', 'salt', 3, 512);
    const k128 = await derivePassphraseKey('pass', 'salt', 3, 128);
    expect(k256.length).toBe(32);
    expect(k512.length).toBe(64);
    expect(toHex(k512.subarray(0, 32))).toBe(toHex(k256));
    expect(toHex(k128)).toBe(toHex(k256.subarray(0, 16)));
  });

  it.each([
    ['zero iterations', 0],
    ['negative iterations', -1],
    ['fractional iterations', 1.5],
    ['NaN iterations', Number.NaN],
    ['infinite iterations', Number.POSITIVE_INFINITY],
    ['absurd iterations from a hostile server', MAX_ITERATIONS + 1],
    ['2^32 iterations', 2 ** 32],
    ['iterations as a string', '10' as unknown as number],
  ])('refuses %s with kind iterations', async (_label, iterations) => {
    expect(await kindOf(() => derivePassphraseKey('p', 's', iterations))).toBe('iterations');
  });

  it.each([0, -8, 7, 100, 4104, 1.5 * 8 + 0.5])('refuses %s bits with kind length', async (bits) => {
    expect(await kindOf(() => derivePassphraseKey('p', 's', 1, bits))).toBe('length');
  });

  it('refuses a passphrase or salt that is not a string', async () => {
    expect(await kindOf(() => derivePassphraseKey(undefined as unknown as string, 's', 1))).toBe('field');
    expect(await kindOf(() => derivePassphraseKey('p', 42 as unknown as string, 1))).toBe('field');
  });
});
