import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeRecoveryKey, encodeRecoveryKey, type CoreErrorKind } from '../../../src/core/index.ts';
import { errorOf, hex, kindOf, toHex, vectors } from './helpers.ts';

interface RecoveryVectors {
  valid: Array<{ id: string; encoded: string; key_hex: string; decode_only?: boolean }>;
  invalid: Array<{ input: string; error: CoreErrorKind | 'any' }>;
}
const { valid, invalid } = vectors<RecoveryVectors>('recovery-keys.json');
const BASE58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';
const alice = valid.find((v) => v.id === 'alice')!;

describe('recovery keys: vectors (V1–V4)', () => {
  it.each(valid)('decodes $id', ({ encoded, key_hex }) => {
    expect(toHex(decodeRecoveryKey(encoded))).toBe(key_hex);
  });

  it.each(valid.filter((v) => !v.decode_only))('encodes $id exactly as displayed', ({ encoded, key_hex }) => {
    expect(encodeRecoveryKey(hex(key_hex))).toBe(encoded);
  });

  it.each(invalid)('refuses $input ($error)', async ({ input, error }) => {
    const kind = await kindOf(() => decodeRecoveryKey(input));
    if (error === 'any') expect(kind).not.toBe('no error');
    else expect(kind).toBe(error);
  });

  it('reports the js-sdk case-change vector as prefix (checks run base58 → length → prefix → parity)', async () => {
    expect(await kindOf(() => decodeRecoveryKey('EsSZ ykH7 LCZx 7Cae cmKD wcmY JRXi Ybtu 8iQ3 t8Ez nRwK pUY1'))).toBe('prefix');
  });
});

describe('recovery keys: properties', () => {
  it('any 32-byte key encodes to 12 groups of 4 starting EsS/EsT/EsU, and decodes back', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (key) => {
      const encoded = encodeRecoveryKey(key);
      expect(encoded).toMatch(/^Es[STU][1-9A-HJ-NP-Za-km-z]( ?[1-9A-HJ-NP-Za-km-z]){44}$/);
      expect(encoded.split(' ').map((g) => g.length)).toEqual(new Array(12).fill(4));
      expect(decodeRecoveryKey(encoded)).toEqual(key);
      expect(decodeRecoveryKey(encoded.replace(/ /g, ''))).toEqual(key);
    }));
  });

  // SPEC LIMITATION: the format's only check is one XOR parity byte. A single base58 character
  // changes the 35-byte number by d·58^k, which can flip several bytes at once, so about 1 change in
  // 256 still has a valid prefix and parity and decodes to ANOTHER key. Those cannot be refused
  // here; they fail later as "wrong key" (the 4S key check or the backup public-key comparison).
  it('refuses every single-character change of a valid key, except the ~1/256 the parity byte cannot see', async () => {
    const compact = alice.encoded.replace(/ /g, '');
    const original = toHex(decodeRecoveryKey(compact));
    let tried = 0;
    let undetected = 0;
    for (let i = 0; i < compact.length; i++) {
      for (const c of BASE58) {
        if (c === compact[i]) continue;
        const changed = compact.slice(0, i) + c + compact.slice(i + 1);
        tried++;
        let decoded: string | undefined;
        const kind = await kindOf(() => { decoded = toHex(decodeRecoveryKey(changed)); });
        if (kind === 'no error') {
          undetected++;
          expect(decoded, changed).not.toBe(original); // never silently the same key
        } else {
          expect(['length', 'prefix', 'parity'], changed).toContain(kind);
        }
      }
    }
    expect(tried).toBe(48 * 57);
    expect(undetected).toBeLessThan(tried / 100); // 1/256 expected; measured 0.36% over 20 keys
  });

  it('refuses a non-base58 character at any position with kind base58', async () => {
    const compact = alice.encoded.replace(/ /g, '');
    for (let i = 0; i < compact.length; i++) {
      for (const c of ['0', 'O', 'I', 'l', '+', '/', '=', 'é', '-']) {
        expect(await kindOf(() => decodeRecoveryKey(compact.slice(0, i) + c + compact.slice(i + 1)))).toBe('base58');
      }
    }
  });

  it('a random single-character change of a random key never decodes to the same key', async () => {
    await fc.assert(fc.asyncProperty(
      fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.nat(47), fc.constantFrom(...BASE58),
      async (key, position, c) => {
        const compact = encodeRecoveryKey(key).replace(/ /g, '');
        fc.pre(compact[position] !== c);
        const changed = compact.slice(0, position) + c + compact.slice(position + 1);
        let decoded: Uint8Array | undefined;
        const kind = await kindOf(() => { decoded = decodeRecoveryKey(changed); });
        if (kind === 'no error') expect(toHex(decoded!)).not.toBe(toHex(key));
        else expect(['length', 'prefix', 'parity']).toContain(kind);
      },
    ), { numRuns: 500 });
  });
});

describe('recovery keys: bad inputs', () => {
  const compact = alice.encoded.replace(/ /g, '');
  const ok: Array<[string, string]> = [
    ['no spaces', compact],
    ['tabs and newlines', alice.encoded.replace(/ /g, '\t').replace(/\t(?=\S{4}$)/, '\n')],
    ['leading and trailing whitespace', `  \n${alice.encoded}\r\n `],
    ['non-breaking and ideographic spaces', alice.encoded.replace(' ', '\u00a0').replace(' ', '\u3000')],
    ['irregular grouping', compact.slice(0, 3) + '   ' + compact.slice(3, 20) + ' ' + compact.slice(20)],
  ];
  it.each(ok)('accepts %s', (_label, text) => {
    expect(toHex(decodeRecoveryKey(text))).toBe(alice.key_hex);
  });

  const bad: Array<[string, string, CoreErrorKind]> = [
    ['empty', '', 'length'],
    ['only whitespace', ' \n\t ', 'length'],
    // Case matters in base58; this key's letters include ones that do not exist in the other case.
    ['upper-cased', alice.encoded.toUpperCase(), 'base58'],
    ['lower-cased', alice.encoded.toLowerCase(), 'base58'],
    ['one group missing', alice.encoded.slice(0, -5), 'length'],
    // One character fewer divides the number by ~58: still 35 bytes, but no longer 8B 01 ….
    ['one character missing', compact.slice(0, -1), 'prefix'],
    ['one character extra', compact + 'z', 'length'],
    ['two keys pasted', `${alice.encoded} ${alice.encoded}`, 'length'],
    ['a leading 1 (zero byte)', '1' + compact, 'length'],
    ['base64 instead of base58', 'dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=', 'base58'],
    ['a Security Phrase', 'correct horse battery staple', 'base58'],
    ['last two characters swapped', compact.slice(0, -2) + compact.slice(-1) + compact.slice(-2, -1), 'parity'],
    ['first character changed case', 'e' + compact.slice(1), 'length'], // 'e' > 'E': a 36th byte
  ];
  it.each(bad)('refuses %s', async (_label, text, kind) => {
    expect(await kindOf(() => decodeRecoveryKey(text))).toBe(kind);
  });

  it('never echoes the typed key in its error message', async () => {
    const almost = compact.slice(0, -1) + (compact.endsWith('d') ? 'e' : 'd');
    const error = await errorOf(() => decodeRecoveryKey(almost));
    expect(error.message).not.toContain(compact.slice(4, 20));
  });

  it('refuses to encode a key that is not 32 bytes', async () => {
    expect(await kindOf(() => encodeRecoveryKey(new Uint8Array(31)))).toBe('length');
    expect(await kindOf(() => encodeRecoveryKey(new Uint8Array(33)))).toBe('length');
    expect(await kindOf(() => encodeRecoveryKey('EsTc' as unknown as Uint8Array))).toBe('field');
    expect(await kindOf(() => decodeRecoveryKey(null as unknown as string))).toBe('field');
  });
});
