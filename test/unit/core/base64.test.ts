import { base64 as scureBase64, base64nopad } from '@scure/base';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeBase64, encodeBase64, unpadBase64 } from '../../../src/core/index.ts';
import { kindOf, toHex } from './helpers.ts';

describe('base64', () => {
  it('matches RFC 4648 §10 test vectors, padded and unpadded', () => {
    const cases: Array<[string, string]> = [['', ''], ['f', 'Zg=='], ['fo', 'Zm8='], ['foo', 'Zm9v'], ['foob', 'Zm9vYg=='], ['fooba', 'Zm9vYmE='], ['foobar', 'Zm9vYmFy']];
    for (const [plain, padded] of cases) {
      const bytes = new TextEncoder().encode(plain);
      expect(encodeBase64(bytes, true)).toBe(padded);
      expect(encodeBase64(bytes)).toBe(padded.replace(/=+$/, ''));
      expect(toHex(decodeBase64(padded))).toBe(toHex(bytes));
      expect(toHex(decodeBase64(padded.replace(/=+$/, '')))).toBe(toHex(bytes));
    }
  });

  it('uses the standard alphabet (+ and /), all 64 characters', () => {
    const allChars = new Uint8Array([0x00, 0x10, 0x83, 0x10, 0x51, 0x87, 0x20, 0x92, 0x8b, 0x30, 0xd3, 0x8f, 0x41, 0x14, 0x93, 0x51, 0x55, 0x97, 0x61, 0x96, 0x9b, 0x71, 0xd7, 0x9f, 0x82, 0x18, 0xa3, 0x92, 0x59, 0xa7, 0xa2, 0x9a, 0xab, 0xb2, 0xdb, 0xaf, 0xc3, 0x1c, 0xb3, 0xd3, 0x5d, 0xb7, 0xe3, 0x9e, 0xbb, 0xf3, 0xdf, 0xbf]);
    expect(encodeBase64(allChars)).toBe('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/');
    expect(decodeBase64('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/')).toEqual(allChars);
  });

  it('round-trips any bytes and agrees with @scure/base both ways', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
      const unpadded = encodeBase64(bytes);
      expect(unpadded).toBe(base64nopad.encode(bytes));
      expect(encodeBase64(bytes, true)).toBe(scureBase64.encode(bytes));
      expect(decodeBase64(unpadded)).toEqual(bytes);
      expect(decodeBase64(scureBase64.encode(bytes))).toEqual(bytes);
      expect(unpadBase64(scureBase64.encode(bytes))).toBe(unpadded);
    }));
  });

  it('refuses exactly what a strict standard decoder refuses', () => {
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ .\n';
    fc.assert(fc.property(fc.string({ unit: fc.constantFrom(...alphabet), maxLength: 12 }), (text) => {
      let reference: string;
      try {
        reference = toHex(text.endsWith('=') ? scureBase64.decode(text) : base64nopad.decode(text));
      } catch {
        reference = 'refused';
      }
      let ours: string;
      try {
        ours = toHex(decodeBase64(text));
      } catch (error) {
        expect((error as { kind?: string }).kind).toBe('base64');
        ours = 'refused';
      }
      expect(ours).toBe(reference);
    }), { numRuns: 3000 });
  });

  it.each([
    ['URL-safe alphabet', 'ab-_'],
    ['a space', 'Zm9v YmFy'],
    ['a newline', 'Zm9v\nYmFy'],
    ['a non-ASCII letter', 'Zm9vé'],
    ['a character above U+00FF', 'Zm9\u0100'],
    ['impossible length (4n+1)', 'Zm9vY'],
    ['padding that does not complete a group', 'Zg='],
    ['three padding characters', 'Z==='],
    ['padding in the middle', 'Zg==Zm9v'],
    ['only padding', '===='],
    ['non-zero unused bits (2 chars)', 'Zh'],
    ['non-zero unused bits (3 chars)', 'ZmB'],
    ['non-zero unused bits, padded', 'Zh=='],
  ])('refuses %s with kind base64', async (_label, text) => {
    expect(await kindOf(() => decodeBase64(text))).toBe('base64');
  });

  it('names the value in its message', async () => {
    expect(() => decodeBase64('!!!!', 'session_data.mac')).toThrow(/session_data\.mac is not valid base64/);
  });

  it('refuses a non-string with kind field', async () => {
    expect(await kindOf(() => decodeBase64(42 as unknown as string))).toBe('field');
  });
});
