import { ed25519 } from '@noble/curves/ed25519.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalJson, encodeBase64, verifyAuthDataSignature } from '../../../src/core/index.ts';
import { kindOf, vectors } from './helpers.ts';

interface SignatureCase { user_id: string; key_id: string; device_ed25519: string; auth_data: Record<string, any>; signed_bytes?: string; valid: boolean }
const cases = vectors<{ cases: SignatureCase[] }>('auth-data-signatures.json').cases;
const first = cases[0]!;

describe('canonicalJson (spec appendix "Canonical JSON")', () => {
  it.each([
    [{ one: 1, two: 'Two' }, '{"one":1,"two":"Two"}'],
    [{ b: '2', a: '1' }, '{"a":"1","b":"2"}'],
    [
      { auth: { success: true, mxid: '@john.doe:example.com', profile: { display_name: 'John Doe', three_pids: [{ medium: 'email', address: 'john.doe@example.org' }, { medium: 'msisdn', address: '123456789' }] } } },
      '{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe","three_pids":[{"address":"john.doe@example.org","medium":"email"},{"address":"123456789","medium":"msisdn"}]},"success":true}}',
    ],
    [{ a: '日本語' }, '{"a":"日本語"}'],
    [{ 本: 2, 日: 1 }, '{"日":1,"本":2}'],
    [{ a: '\u65E5' }, '{"a":"日"}'],
    [{ a: null }, '{"a":null}'],
    [{ a: -0, b: 1e10 }, '{"a":0,"b":10000000000}'],
  ])('matches the spec example %#', (value, expected) => {
    expect(canonicalJson(value)).toBe(expected);
  });

  it('sorts keys by code point, not by UTF-16 unit (U+E000 before U+1F600)', () => {
    expect(canonicalJson({ '\u{1F600}': 1, '\uE000': 2 })).toBe('{"\uE000":2,"\u{1F600}":1}');
    expect(canonicalJson({ B: 1, a: 2, A: 3, '': 4, aa: 5 })).toBe('{"":4,"A":3,"B":1,"a":2,"aa":5}');
  });

  it('escapes only what JSON requires', () => {
    expect(canonicalJson({ s: 'q"\\\n\t\u0001é' })).toBe('{"s":"q\\"\\\\\\n\\t\\u0001é"}');
  });

  it('leaves out undefined members, like JSON', () => {
    expect(canonicalJson({ a: undefined, b: 1 })).toBe('{"b":1}');
  });

  it('agrees with JSON.parse: the text parses back to the same value', () => {
    const onlySafeIntegers = (v: unknown): boolean => typeof v === 'number' ? Number.isSafeInteger(v)
      : typeof v === 'object' && v !== null ? Object.values(v).every(onlySafeIntegers) : true;
    fc.assert(fc.property(fc.jsonValue({ maxDepth: 3 }).filter(onlySafeIntegers), (value) => {
      expect(JSON.parse(canonicalJson(value))).toEqual(JSON.parse(JSON.stringify(value)));
    }));
  });

  it.each([
    ['a float', { a: 1.5 }],
    ['an integer beyond 2^53', { a: 2 ** 53 }],
    ['NaN', { a: Number.NaN }],
    ['a bigint', { a: 1n }],
    ['a function', { a: () => 1 }],
    ['a float in an array', [1, 2.5]],
  ])('refuses %s with kind json', async (_label, value) => {
    expect(await kindOf(() => canonicalJson(value))).toBe('json');
  });
});

describe('verifyAuthDataSignature (V10)', () => {
  it('signs exactly the canonical JSON without signatures', () => {
    const { signatures: _s, ...signed } = first.auth_data;
    expect(canonicalJson(signed)).toBe(first.signed_bytes);
  });

  it.each(cases)('verifies the js-sdk signature by $user_id', (c) => {
    expect(verifyAuthDataSignature(c.auth_data, c.user_id, c.key_id, c.device_ed25519)).toBe(c.valid);
  });

  it('ignores `unsigned` and the signatures of others', () => {
    const authData = { ...first.auth_data, unsigned: { age: 5 }, signatures: { ...first.auth_data.signatures, '@eve:evil': { 'ed25519:X': 'AAAA' } } };
    expect(verifyAuthDataSignature(authData, first.user_id, first.key_id, first.device_ed25519)).toBe(true);
  });

  it('verifies a signature made over canonical JSON with members in any order', () => {
    const { secretKey, publicKey } = ed25519.keygen();
    const content = { public_key: 'abc', private_key_salt: 'salt', private_key_iterations: 10, nested: { z: 1, a: [true, null] } };
    const signature = encodeBase64(ed25519.sign(new TextEncoder().encode(canonicalJson(content)), secretKey));
    const reordered = { nested: { a: [true, null], z: 1 }, private_key_iterations: 10, signatures: { '@u:x': { 'ed25519:D': signature } }, private_key_salt: 'salt', public_key: 'abc' };
    expect(verifyAuthDataSignature(reordered, '@u:x', 'ed25519:D', encodeBase64(publicKey))).toBe(true);
  });

  const falseCases: Array<[string, unknown, string, string, string]> = [
    ['a swapped public key (the key-swap attack)', { ...first.auth_data, public_key: cases[1]!.auth_data.public_key }, first.user_id, first.key_id, first.device_ed25519],
    ['an added member', { ...first.auth_data, private_key_salt: 'x' }, first.user_id, first.key_id, first.device_ed25519],
    ['another signer\'s public key', first.auth_data, first.user_id, first.key_id, cases[1]!.device_ed25519],
    ['a user with no signature', first.auth_data, '@bob:localhost', first.key_id, first.device_ed25519],
    ['a key id with no signature', first.auth_data, first.user_id, 'ed25519:other', first.device_ed25519],
    ['no signatures at all', { public_key: first.auth_data.public_key }, first.user_id, first.key_id, first.device_ed25519],
    ['a signature that is not base64', { ...first.auth_data, signatures: { [first.user_id]: { [first.key_id]: '!!' } } }, first.user_id, first.key_id, first.device_ed25519],
    ['a signature of 63 bytes', { ...first.auth_data, signatures: { [first.user_id]: { [first.key_id]: encodeBase64(new Uint8Array(63)) } } }, first.user_id, first.key_id, first.device_ed25519],
    ['a signature that is a number', { ...first.auth_data, signatures: { [first.user_id]: { [first.key_id]: 7 } } }, first.user_id, first.key_id, first.device_ed25519],
    ['a float in auth_data (no canonical form)', { ...first.auth_data, x: 0.5 }, first.user_id, first.key_id, first.device_ed25519],
    ['auth_data that is not an object', 'auth', first.user_id, first.key_id, first.device_ed25519],
    ['a user id naming an Object prototype member', first.auth_data, '__proto__', 'constructor', first.device_ed25519],
  ];
  it.each(falseCases)('is false for %s', (_label, authData, userId, keyId, publicKey) => {
    expect(verifyAuthDataSignature(authData, userId, keyId, publicKey)).toBe(false);
  });

  it('throws for a malformed public key (the caller\'s own input)', async () => {
    expect(await kindOf(() => verifyAuthDataSignature(first.auth_data, first.user_id, first.key_id, 'not base64!'))).toBe('base64');
    expect(await kindOf(() => verifyAuthDataSignature(first.auth_data, first.user_id, first.key_id, encodeBase64(new Uint8Array(31))))).toBe('length');
  });
});
