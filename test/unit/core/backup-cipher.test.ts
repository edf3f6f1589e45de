import { inspect } from 'node:util';
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { cbc } from '@noble/ciphers/aes.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { aesCbcDecrypt, aesCbcEncrypt, webAesCbcDecrypt, webAesCbcEncrypt } from '../../../src/core/aes-cbc.ts';
import { DEFAULT_BATCH_SIZE, sealSessionBytes } from '../../../src/core/backup-cipher.ts';
import { chooseSymmetric, defaultSymmetric, deriveEntryKeys } from '../../../src/core/backup-symmetric.ts';
import { importX25519PublicKey, importX25519Secret } from '../../../src/core/x25519.ts';
import {
  backupKeyMatches,
  backupPublicKey,
  BackupEncryptor,
  createBackupDecryptor,
  decodeBase64,
  decodeRecoveryKey,
  encodeBase64,
  encryptSessionData,
  hasNativeX25519,
  type BackedUpSessionData,
  type CoreErrorKind,
  type EncryptedSessionData,
} from '../../../src/core/index.ts';
import { hex, kindOf, toHex, vectors, X25519_IMPLEMENTATIONS } from './helpers.ts';

interface DecryptCase {
  id: string;
  private_key_hex: string;
  public_key: string;
  session_data?: EncryptedSessionData;
  key_backup_data?: { session_data: EncryptedSessionData };
  plaintext: string;
}
const backup = vectors<{ decrypt: DecryptCase[]; encrypt_deterministic: any }>('backup-session-data.json');
const chain = vectors('secret-storage.json').chain;
const recoveryKeys = vectors<{ valid: Array<{ encoded: string; x25519_public_key?: string }> }>('recovery-keys.json');
const v17 = backup.encrypt_deterministic;
const sessionDataOf = (c: DecryptCase): EncryptedSessionData => (c.session_data ?? c.key_backup_data!.session_data);
const alice = backup.decrypt.find((c) => c.id === 'js-sdk-alice')!;
const alicePrivate = hex(alice.private_key_hex);
const aliceEntry = sessionDataOf(alice);

// RFC 7748 §7 / libsodium's blocklist: u-coordinates of small order; X25519 with them is all zero.
const LOW_ORDER_POINTS = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
  '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
];

const sample: BackedUpSessionData = JSON.parse(v17.plaintext);

// Every vector and bad input runs through both X25519 and both symmetric implementations.
const SYMMETRIC_IMPLEMENTATIONS = ['js', 'webcrypto'] as const;
const COMBINATIONS = X25519_IMPLEMENTATIONS.flatMap((x25519) => SYMMETRIC_IMPLEMENTATIONS.map((symmetric) => ({ x25519, symmetric })));

describe.each(COMBINATIONS)('backup cipher vectors ($x25519 X25519, $symmetric HKDF and AES)', (implementations) => {
  const { x25519 } = implementations;
  it.each(backup.decrypt)('decrypts $id (V5…V5d) to the exact plaintext, unknown members kept', async (c) => {
    const decryptor = await createBackupDecryptor(hex(c.private_key_hex), implementations);
    expect(decryptor.publicKey).toBe(c.public_key);
    const data = await decryptor.decrypt(sessionDataOf(c));
    // Same members, same order, same values: "as it was".
    expect(JSON.stringify(data)).toBe(JSON.stringify(JSON.parse(c.plaintext)));
  });

  it('derives the public key of every vector key (backup and recovery-key vectors)', async () => {
    for (const c of backup.decrypt) expect(await backupPublicKey(hex(c.private_key_hex), { x25519 })).toBe(c.public_key);
    const withPublicKey = recoveryKeys.valid.filter((k) => k.x25519_public_key !== undefined);
    expect(withPublicKey.length).toBeGreaterThanOrEqual(2);
    for (const k of withPublicKey) expect(await backupPublicKey(decodeRecoveryKey(k.encoded), { x25519 })).toBe(k.x25519_public_key);
  });

  it('encrypts V17 byte for byte with the pinned RFC 7748 ephemeral key', async () => {
    const sessionData = await encryptSessionData(v17.backup_public_key, sample, { ...implementations, ephemeralPrivateKey: hex(v17.ephemeral_private_key_hex) });
    expect(sessionData).toEqual(v17.session_data);
  });

  it('decrypts V17 with the RFC 7748 Alice key', async () => {
    const decryptor = await createBackupDecryptor(hex(v17.backup_private_key_hex), implementations);
    expect(JSON.stringify(await decryptor.decrypt(v17.session_data))).toBe(v17.plaintext);
  });

  it('decrypts the chain vector\'s sessions (V9) with the backup key from secret storage', async () => {
    const decryptor = await createBackupDecryptor(hex(chain.backup_private_key_hex), implementations);
    expect(decryptor.publicKey).toBe(chain.backup_version.auth_data.public_key);
    for (const s of chain.sessions) {
      expect(JSON.stringify(await decryptor.decrypt(s.key_backup_data.session_data))).toBe(JSON.stringify(JSON.parse(s.plaintext)));
    }
  });

  it('refuses every low-order ephemeral key with kind non-contributory', async () => {
    const decryptor = await createBackupDecryptor(alicePrivate, implementations);
    for (const point of LOW_ORDER_POINTS) {
      expect(await kindOf(() => decryptor.decrypt({ ...aliceEntry, ephemeral: encodeBase64(hex(point)) })), point).toBe('non-contributory');
    }
  });

  it('refuses to encrypt to a low-order public key with kind non-contributory', async () => {
    for (const point of LOW_ORDER_POINTS) {
      expect(await kindOf(() => encryptSessionData(encodeBase64(hex(point)), sample, implementations)), point).toBe('non-contributory');
    }
  });
});

describe('backup cipher round trips', () => {
  const payload = fc.record({
    algorithm: fc.constant('m.megolm.v1.aes-sha2'),
    sender_key: fc.string(),
    sender_claimed_keys: fc.dictionary(fc.string(), fc.string()),
    session_key: fc.string(),
    forwarding_curve25519_key_chain: fc.array(fc.string(), { maxLength: 3 }),
    extra: fc.jsonValue(),
  }).map(({ extra, ...data }) => ({ ...data, 'm.shared_history': extra }) as BackedUpSessionData);

  const pairs = X25519_IMPLEMENTATIONS.flatMap((encryptWith) => X25519_IMPLEMENTATIONS.map((decryptWith) => [encryptWith, decryptWith] as const))
    .map(([encryptWith, decryptWith], i) => [encryptWith, decryptWith, SYMMETRIC_IMPLEMENTATIONS[i % 2]!, SYMMETRIC_IMPLEMENTATIONS[(i >> 1) % 2]!] as const);

  it.each(pairs)('encrypted with %s X25519, decrypted with %s X25519 (symmetric %s → %s): returns the input', async (encryptWith, decryptWith, encryptSymmetric, decryptSymmetric) => {
    const privateKey = crypto.getRandomValues(new Uint8Array(32));
    const decryptor = await createBackupDecryptor(privateKey, { x25519: decryptWith, symmetric: decryptSymmetric });
    await fc.assert(fc.asyncProperty(payload, async (data) => {
      const sessionData = await encryptSessionData(decryptor.publicKey, data, { x25519: encryptWith, symmetric: encryptSymmetric });
      expect(Object.keys(sessionData).sort()).toEqual(['ciphertext', 'ephemeral', 'mac']);
      expect(decodeBase64(sessionData.mac)).toHaveLength(8);
      expect(sessionData.mac).not.toContain('=');
      expect(await decryptor.decrypt(sessionData)).toEqual(JSON.parse(JSON.stringify(data)));
    }), { numRuns: encryptWith === 'noble' || decryptWith === 'noble' ? 25 : 60 });
  });

  it('uses a fresh ephemeral key for every encryption', async () => {
    const a = await encryptSessionData(alice.public_key, sample);
    const b = await encryptSessionData(alice.public_key, sample);
    expect(a.ephemeral).not.toBe(b.ephemeral);
    expect(a.ciphertext).not.toBe(b.ciphertext);
  });

  it('BackupEncryptor gives the same result as encryptSessionData and normalises the public key', async () => {
    const encryptor = new BackupEncryptor(`${alice.public_key}=`, { x25519: 'noble' });
    expect(encryptor.publicKey).toBe(alice.public_key);
    const decryptor = await createBackupDecryptor(alicePrivate);
    expect(await decryptor.decrypt(await encryptor.encrypt(sample))).toEqual(sample);
    expect(await kindOf(() => new BackupEncryptor('AAAA'))).toBe('length');
  });

  it('accepts padded base64 in session_data', async () => {
    const decryptor = await createBackupDecryptor(alicePrivate);
    const padded = (s: string): string => s.padEnd(Math.ceil(s.length / 4) * 4, '=');
    const entry = { ephemeral: padded(aliceEntry.ephemeral), ciphertext: padded(aliceEntry.ciphertext), mac: padded(aliceEntry.mac) };
    expect(JSON.stringify(await decryptor.decrypt(entry))).toBe(JSON.stringify(JSON.parse(alice.plaintext)));
  });
});

describe('the decryptor', () => {
  afterEach(() => vi.restoreAllMocks());

  it('uses native X25519 by default on this platform (Node ≥ 20)', async () => {
    expect(await hasNativeX25519()).toBe(true);
    expect((await createBackupDecryptor(alicePrivate)).implementation).toBe('native');
    expect((await createBackupDecryptor(alicePrivate, { x25519: 'noble' })).implementation).toBe('noble');
  });

  it('imports the private key once, not per entry', async () => {
    const importKey = vi.spyOn(crypto.subtle, 'importKey');
    const decryptor = await createBackupDecryptor(alicePrivate, { x25519: 'native' });
    const privateImports = (): number => importKey.mock.calls.filter(([format]) => format === 'pkcs8').length;
    const afterCreate = privateImports();
    expect(afterCreate).toBeGreaterThan(0);
    await decryptor.decryptMany(new Array(5).fill(aliceEntry));
    await decryptor.decrypt(aliceEntry);
    expect(privateImports()).toBe(afterCreate);
  });

  it('never shows the private key: toJSON, toString, inspect and enumerable members hold only public parts', async () => {
    for (const x25519 of X25519_IMPLEMENTATIONS) {
      const decryptor = await createBackupDecryptor(alicePrivate, { x25519 });
      const shown = [JSON.stringify(decryptor), String(decryptor), `${decryptor}`, inspect(decryptor, { depth: 10, showHidden: true }), JSON.stringify(Object.entries(decryptor))];
      for (const text of shown) {
        expect(text).not.toContain(alice.private_key_hex);
        expect(text).not.toContain(encodeBase64(alicePrivate));
        expect(text).not.toMatch(/119, 7, 109, 10/); // the key's first bytes as an array
      }
      expect(JSON.parse(JSON.stringify(decryptor))).toEqual({ algorithm: 'm.megolm_backup.v1.curve25519-aes-sha2', publicKey: alice.public_key });
      expect(String(decryptor)).toContain(alice.public_key);
    }
  });

  it('decryptMany returns results in input order, failures as data with their kind', async () => {
    const decryptor = await createBackupDecryptor(alicePrivate);
    const list = [aliceEntry, { ...aliceEntry, mac: 'AAAAAAAAAAA' }, aliceEntry, { ...aliceEntry, ciphertext: '!' }, v17.session_data];
    const results = await decryptor.decryptMany(list);
    expect(results.map((r) => (r.ok ? 'ok' : r.error.kind))).toEqual(['ok', 'mac', 'ok', 'base64', 'ok']);
    expect(results[4]!.ok && JSON.stringify(results[4]!.value)).toBe(v17.plaintext);
    expect(await decryptor.decryptMany([])).toEqual([]);
  });

  it('decryptMany gives the same answers as decrypt on many entries', async () => {
    const decryptor = await createBackupDecryptor(alicePrivate);
    const inputs = Array.from({ length: 40 }, (_, i) => ({ ...sample, sender_key: `key ${i}` }));
    const entries = await Promise.all(inputs.map((d) => encryptSessionData(alice.public_key, d)));
    const results = await decryptor.decryptMany(entries);
    expect(results.map((r) => (r.ok ? r.value : r.error))).toEqual(inputs);
  });

  it('refuses an all-zero shared secret even from a platform that returns it instead of throwing', async () => {
    const decryptor = await createBackupDecryptor(alicePrivate, { x25519: 'native' });
    vi.spyOn(crypto.subtle, 'deriveBits').mockResolvedValue(new ArrayBuffer(32));
    expect(await kindOf(() => decryptor.decrypt(aliceEntry))).toBe('non-contributory');
  });

  it('backupKeyMatches compares bytes, so padding does not matter', async () => {
    expect(await backupKeyMatches(alicePrivate, alice.public_key)).toBe(true);
    expect(await backupKeyMatches(alicePrivate, `${alice.public_key}=`)).toBe(true);
    expect(await backupKeyMatches(hex(backup.decrypt[1]!.private_key_hex), alice.public_key)).toBe(false);
    expect(await kindOf(() => backupKeyMatches(alicePrivate, 'not base64!'))).toBe('base64');
  });
});

describe('backup cipher bad inputs', () => {
  const mangle = (entry: EncryptedSessionData, member: keyof EncryptedSessionData, bytes: (b: Uint8Array) => Uint8Array): EncryptedSessionData =>
    ({ ...entry, [member]: encodeBase64(bytes(decodeBase64(entry[member]))) });
  const flipFirstBit = (b: Uint8Array): Uint8Array => Uint8Array.from(b, (x, i) => (i === 0 ? x ^ 1 : x));

  const table: Array<[string, unknown, CoreErrorKind]> = [
    ['session_data is null', null, 'field'],
    ['session_data is an array', [aliceEntry.ephemeral, aliceEntry.ciphertext, aliceEntry.mac], 'field'],
    ['ephemeral missing', { ciphertext: aliceEntry.ciphertext, mac: aliceEntry.mac }, 'field'],
    ['mac is a number', { ...aliceEntry, mac: 12 }, 'field'],
    ['ephemeral is not base64', { ...aliceEntry, ephemeral: aliceEntry.ephemeral.replace(/.$/, '-') }, 'base64'],
    ['ciphertext is URL-safe base64', { ...aliceEntry, ciphertext: aliceEntry.ciphertext.replace(/\//g, '_').replace(/\+/g, '-') }, 'base64'],
    ['mac is not base64', { ...aliceEntry, mac: 'OibmACbORh!' }, 'base64'],
    ['ephemeral truncated (31 bytes)', mangle(aliceEntry, 'ephemeral', (b) => b.subarray(0, 31)), 'length'],
    ['ephemeral overlong (33 bytes)', mangle(aliceEntry, 'ephemeral', (b) => Uint8Array.of(...b, 0)), 'length'],
    ['ephemeral empty', { ...aliceEntry, ephemeral: '' }, 'length'],
    ['mac truncated (7 bytes)', mangle(aliceEntry, 'mac', (b) => b.subarray(0, 7)), 'length'],
    ['mac overlong (9 bytes)', mangle(aliceEntry, 'mac', (b) => Uint8Array.of(...b, 0)), 'length'],
    ['mac is a full 32-byte HMAC', mangle(aliceEntry, 'mac', (b) => Uint8Array.of(...b, ...new Uint8Array(24))), 'length'],
    ['ciphertext empty', { ...aliceEntry, ciphertext: '' }, 'length'],
    ['ciphertext truncated by one byte', mangle(aliceEntry, 'ciphertext', (b) => b.subarray(0, b.length - 1)), 'length'],
    ['ciphertext overlong by one byte', mangle(aliceEntry, 'ciphertext', (b) => Uint8Array.of(...b, 0)), 'length'],
    ['wrong mac (one bit)', mangle(aliceEntry, 'mac', flipFirstBit), 'mac'],
    ['ephemeral of another entry (one bit)', mangle(aliceEntry, 'ephemeral', flipFirstBit), 'mac'],
    ['first ciphertext block changed (garbles the JSON)', mangle(aliceEntry, 'ciphertext', flipFirstBit), 'json'],
  ];

  it.each(COMBINATIONS)('refuses each bad entry with its kind ($x25519 X25519, $symmetric)', async (implementations) => {
    const decryptor = await createBackupDecryptor(alicePrivate, implementations);
    for (const [label, entry, kind] of table) {
      expect(await kindOf(() => decryptor.decrypt(entry as EncryptedSessionData)), label).toBe(kind);
    }
  });

  it('refuses an entry for another backup key with kind mac', async () => {
    const bob = await createBackupDecryptor(hex(backup.decrypt[1]!.private_key_hex));
    expect(await kindOf(() => bob.decrypt(aliceEntry))).toBe('mac');
  });

  // Envelopes built with the right key but a bad inside: the MAC (which covers nothing) passes.
  async function sealed(plaintext: Uint8Array): Promise<EncryptedSessionData> {
    return sealSessionBytes(decodeBase64(alice.public_key), plaintext);
  }

  it.each(SYMMETRIC_IMPLEMENTATIONS)('refuses bad padding under the right key with kind padding (%s)', async (symmetric) => {
    // 32 bytes ending in 0x00; CBC adds a 16-byte pad block. Dropping that block leaves two blocks
    // whose last byte (0x00) is not valid PKCS#7.
    const entry = await sealed(new Uint8Array(32).fill(0x41).fill(0, 31));
    const cut = mangle(entry, 'ciphertext', (b) => b.subarray(0, 32));
    const decryptor = await createBackupDecryptor(alicePrivate, { symmetric });
    expect(await kindOf(() => decryptor.decrypt(cut))).toBe('padding');
    // Control: the uncut entry decrypts as far as the JSON parser.
    expect(await kindOf(() => decryptor.decrypt(entry))).toBe('json');
  });

  const plaintexts: Array<[string, string | Uint8Array, CoreErrorKind]> = [
    ['text that is not JSON', 'hello', 'json'],
    ['invalid UTF-8', Uint8Array.of(0x7b, 0xff, 0xfe, 0x7d), 'json'],
    ['a JSON array', '[1,2]', 'json'],
    ['a JSON string', '"session"', 'json'],
    ['JSON null', 'null', 'json'],
    ['truncated JSON', JSON.stringify(sample).slice(0, -1), 'json'],
    ['no session_key', JSON.stringify({ ...sample, session_key: undefined }), 'field'],
    ['algorithm is not a string', JSON.stringify({ ...sample, algorithm: 1 }), 'field'],
    ['sender_claimed_keys is a string', JSON.stringify({ ...sample, sender_claimed_keys: 'k' }), 'field'],
  ];
  it.each(plaintexts)('refuses a plaintext that is %s', async (_label, plaintext, kind) => {
    const bytes = typeof plaintext === 'string' ? new TextEncoder().encode(plaintext) : plaintext;
    for (const symmetric of SYMMETRIC_IMPLEMENTATIONS) {
      const decryptor = await createBackupDecryptor(alicePrivate, { symmetric });
      expect(await kindOf(async () => decryptor.decrypt(await sealed(bytes))), symmetric).toBe(kind);
    }
  });

  it('accepts a plaintext with no forwarding chain (libolm era, V5c) — control for the table above', async () => {
    const { forwarding_curve25519_key_chain: _chain, ...withoutChain } = sample;
    const decryptor = await createBackupDecryptor(alicePrivate);
    expect(await decryptor.decrypt(await sealed(new TextEncoder().encode(JSON.stringify(withoutChain))))).toEqual(withoutChain);
  });

  it('refuses bad keys and options', async () => {
    expect(await kindOf(() => createBackupDecryptor(new Uint8Array(31)))).toBe('length');
    expect(await kindOf(() => createBackupDecryptor('key' as unknown as Uint8Array))).toBe('field');
    expect(await kindOf(() => createBackupDecryptor(alicePrivate, { x25519: 'openssl' as 'native' }))).toBe('algorithm');
    expect(await kindOf(() => createBackupDecryptor(alicePrivate, { symmetric: 'rot13' as 'js' }))).toBe('algorithm');
    expect(await kindOf(() => createBackupDecryptor(alicePrivate, { symmetric: 'toString' as 'js' }))).toBe('algorithm');
    expect(await kindOf(() => encryptSessionData(alice.public_key, sample, { symmetric: 'rot13' as 'js' }))).toBe('algorithm');
    expect(await kindOf(() => backupPublicKey(new Uint8Array(33)))).toBe('length');
    expect(await kindOf(() => encryptSessionData('not base64!', sample))).toBe('base64');
    expect(await kindOf(() => encryptSessionData(encodeBase64(new Uint8Array(31)), sample))).toBe('length');
    expect(await kindOf(() => encryptSessionData(alice.public_key, sample, { ephemeralPrivateKey: new Uint8Array(16) }))).toBe('length');
    expect(await kindOf(() => encryptSessionData(alice.public_key, [] as unknown as BackedUpSessionData))).toBe('field');
    expect(await kindOf(() => encryptSessionData(alice.public_key, { ...sample, big: 1n } as unknown as BackedUpSessionData))).toBe('json');
  });

  it('the MAC is HMAC(mac_key, "") and NOT over the ciphertext (SPEC BUG, reference §2.6)', async () => {
    // Same ephemeral key → same keys; a different plaintext must not change the MAC.
    const ephemeralPrivateKey = hex(v17.ephemeral_private_key_hex);
    const a = await encryptSessionData(alice.public_key, sample, { ephemeralPrivateKey });
    const b = await encryptSessionData(alice.public_key, { ...sample, sender_key: 'other' }, { ephemeralPrivateKey });
    expect(a.ciphertext).not.toBe(b.ciphertext);
    expect(a.mac).toBe(b.mac);
    expect(toHex(decodeBase64(alice.key_backup_data!.session_data.mac))).toBe((alice as any).intermediates.mac8_hex);
  });
});

// The two AES-CBC implementations behind one async shape, so that each test runs on both.
const AES_CBC = {
  js: { encrypt: async (k: Uint8Array, iv: Uint8Array, p: Uint8Array) => aesCbcEncrypt(k, iv, p), decrypt: async (k: Uint8Array, iv: Uint8Array, c: Uint8Array, what?: string) => aesCbcDecrypt(k, iv, c, what) },
  webcrypto: { encrypt: webAesCbcEncrypt, decrypt: webAesCbcDecrypt },
};

describe.each(SYMMETRIC_IMPLEMENTATIONS)('AES-256-CBC (aes-cbc.ts, %s)', (implementation) => {
  const aes = AES_CBC[implementation];
  // NIST SP 800-38A F.2.5 CBC-AES256.Encrypt; PKCS#7 then adds one whole block of 0x10, whose
  // ciphertext (the last block below) was computed with OpenSSL.
  const nist = {
    key: hex('603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4'),
    iv: hex('000102030405060708090a0b0c0d0e0f'),
    plaintext: hex('6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710'),
    ciphertext: hex('f58c4c04d6e5f1ba779eabfb5f7bfbd69cfc4e967edb808d679f777bc6702c7d39f23369a9d9bacfa530e26304231461b2eb05e2c39be9fcda6c19078c6a9d1b3f461796d6b0d6b2e0c2a72b4d80e644'),
  };

  it('encrypts and decrypts the NIST SP 800-38A vector (F.2.5) with its PKCS#7 block', async () => {
    expect(toHex(await aes.encrypt(nist.key, nist.iv, nist.plaintext))).toBe(toHex(nist.ciphertext));
    expect(toHex(await aes.decrypt(nist.key, nist.iv, nist.ciphertext))).toBe(toHex(nist.plaintext));
  });

  it('decrypts the reference entry with its published intermediates (reference §2.5 step 4)', async () => {
    const { aes_key_hex, iv_hex } = (alice as any).intermediates;
    const plaintext = await aes.decrypt(hex(aes_key_hex), hex(iv_hex), decodeBase64(aliceEntry.ciphertext));
    expect(JSON.stringify(JSON.parse(new TextDecoder().decode(plaintext)))).toBe(JSON.stringify(JSON.parse(alice.plaintext)));
  });

  it('gives the same bytes as the other implementation, both ways, for every length 0–48', async () => {
    const other = AES_CBC[implementation === 'js' ? 'webcrypto' : 'js'];
    const key = crypto.getRandomValues(new Uint8Array(32));
    const iv = crypto.getRandomValues(new Uint8Array(16));
    for (let length = 0; length <= 48; length++) {
      const plaintext = crypto.getRandomValues(new Uint8Array(length));
      const ours = await aes.encrypt(key, iv, plaintext);
      const theirs = await other.encrypt(key, iv, plaintext);
      expect(ours, `length ${length}`).toHaveLength((Math.floor(length / 16) + 1) * 16);
      expect(toHex(ours), `length ${length}`).toBe(toHex(theirs));
      expect(toHex(await aes.decrypt(key, iv, theirs)), `length ${length}`).toBe(toHex(plaintext));
    }
  });

  // Ciphertexts whose last plaintext block is chosen freely (noble without its padding layer).
  const key = hex('00'.repeat(31) + '01');
  const iv = hex('0f'.repeat(16));
  const withLastBlock = (last: number[]): Uint8Array =>
    cbc(key, iv, { disablePadding: true }).encrypt(Uint8Array.from([...new Array(16).fill(0x41), ...last]));
  const block = (tail: number[]): number[] => [...new Array(16 - tail.length).fill(0x41), ...tail];

  const badPadding: Array<[string, number[]]> = [
    ['pad byte 0', block([0x00])],
    ['pad byte 17 (longer than a block)', block([0x11])],
    ['pad byte 0xff', block([0xff])],
    ['pad 2 preceded by 3', block([0x03, 0x02])],
    ['pad 16 with its first byte wrong', [0x0f, ...new Array(15).fill(0x10)]],
    ['pad 5 with a middle byte wrong', block([0x05, 0x05, 0x04, 0x05, 0x05])],
  ];
  it.each(badPadding)('refuses bad padding with kind padding: %s', async (_label, last) => {
    expect(await kindOf(() => aes.decrypt(key, iv, withLastBlock(last)))).toBe('padding');
  });

  it('accepts the padding lengths 1, 3 and 16 and strips exactly them — control for the table above', async () => {
    expect(await aes.decrypt(key, iv, withLastBlock(block([0x01])))).toHaveLength(31);
    expect(await aes.decrypt(key, iv, withLastBlock(new Array(16).fill(0x10)))).toHaveLength(16);
    expect(await aes.decrypt(key, iv, withLastBlock(block([0x03, 0x03, 0x03])))).toHaveLength(29);
  });

  it('refuses bad lengths and argument types', async () => {
    const ciphertext = withLastBlock(block([0x01]));
    expect(await kindOf(() => aes.decrypt(key, iv, new Uint8Array(0)))).toBe('length');
    expect(await kindOf(() => aes.decrypt(key, iv, ciphertext.subarray(0, 31)))).toBe('length');
    expect(await kindOf(() => aes.decrypt(key, iv, Uint8Array.of(...ciphertext, 0)))).toBe('length');
    expect(await kindOf(() => aes.decrypt(key.subarray(0, 16), iv, ciphertext))).toBe('length');
    expect(await kindOf(() => aes.decrypt(key, iv.subarray(0, 8), ciphertext))).toBe('length');
    expect(await kindOf(() => aes.encrypt(key.subarray(0, 24), iv, ciphertext))).toBe('length');
    expect(await kindOf(() => aes.encrypt(key, iv, 'text' as unknown as Uint8Array))).toBe('field');
    expect(await kindOf(() => aes.decrypt(key, iv, [1, 2] as unknown as Uint8Array))).toBe('field');
  });

  it('names the ciphertext in its messages', async () => {
    await expect(aes.decrypt(key, iv, withLastBlock(block([0x00])), 'the session ciphertext')).rejects.toThrow(/^the session ciphertext has bad padding/);
  });
});

describe.each(SYMMETRIC_IMPLEMENTATIONS)('entry keys: HKDF-SHA-256 (%s)', (implementation) => {
  const suite = chooseSymmetric(implementation);

  it('matches the reference intermediates (reference §2.4 step 3)', async () => {
    const i = (alice as any).intermediates;
    const keys = await suite.deriveEntryKeys(hex(i.shared_secret_hex));
    expect([toHex(keys.aesKey), toHex(keys.macKey), toHex(keys.iv)]).toEqual([i.aes_key_hex, i.mac_key_hex, i.iv_hex]);
  });

  it('matches a one-shot HKDF on many secrets (the JS extract state is shared and must never change)', async () => {
    await fc.assert(fc.asyncProperty(fc.uint8Array({ minLength: 32, maxLength: 32 }), async (secret) => {
      const okm = hkdf(sha256, secret, new Uint8Array(32), new Uint8Array(0), 80);
      const keys = await suite.deriveEntryKeys(secret);
      expect(toHex(Uint8Array.of(...keys.aesKey, ...keys.macKey, ...keys.iv))).toBe(toHex(okm));
    }), { numRuns: 50 });
  });

  it('wipe() zeroes the keys, and a shared secret of the wrong length is refused', async () => {
    const keys = await suite.deriveEntryKeys(crypto.getRandomValues(new Uint8Array(32)));
    keys.wipe();
    expect([...keys.aesKey, ...keys.macKey, ...keys.iv].every((b) => b === 0)).toBe(true);
    expect(await kindOf(() => suite.deriveEntryKeys(new Uint8Array(31)))).toBe('length');
    expect(await kindOf(() => suite.deriveEntryKeys('secret' as unknown as Uint8Array))).toBe('field');
  });
});

describe('choosing the symmetric implementation', () => {
  it('defaults to js on Node and to webcrypto elsewhere, a bundler\'s process shim included', () => {
    expect(defaultSymmetric({ process: { versions: { node: '20.20.2' } } })).toBe('js');
    expect(defaultSymmetric({})).toBe('webcrypto');
    expect(defaultSymmetric({ process: {} })).toBe('webcrypto');
    expect(defaultSymmetric({ process: { versions: {} } })).toBe('webcrypto');
    expect(defaultSymmetric()).toBe('js'); // this test runs on Node
  });

  it('a decryptor shows which implementations it uses, and deriveEntryKeys is the js suite\'s', async () => {
    expect((await createBackupDecryptor(alicePrivate)).symmetric).toBe('js');
    expect((await createBackupDecryptor(alicePrivate, { symmetric: 'webcrypto' })).symmetric).toBe('webcrypto');
    const secret = crypto.getRandomValues(new Uint8Array(32));
    const fromSuite = await chooseSymmetric('js').deriveEntryKeys(secret);
    expect(toHex(deriveEntryKeys(secret).aesKey)).toBe(toHex(fromSuite.aesKey));
  });
});

describe('X25519 public keys prepared once', () => {
  it.each(X25519_IMPLEMENTATIONS)('give the same shared secret as raw bytes, across implementations (%s secret)', async (x25519) => {
    const secret = await importX25519Secret(alicePrivate, x25519);
    const peer = decodeBase64(v17.backup_public_key);
    const expected = toHex(await secret.sharedSecret(peer));
    for (const preparedWith of X25519_IMPLEMENTATIONS) {
      expect(toHex(await secret.sharedSecret(await importX25519PublicKey(peer, preparedWith))), preparedWith).toBe(expected);
    }
    expect(await kindOf(() => importX25519PublicKey(new Uint8Array(31), x25519))).toBe('length');
  });
});

describe('decryptMany batches', () => {
  afterEach(() => vi.restoreAllMocks());

  const flipFirstBit = (text: string): string => encodeBase64(Uint8Array.from(decodeBase64(text), (x, i) => (i === 0 ? x ^ 1 : x)));
  // Failures of every stage, spread so that batch boundaries fall between and around them.
  const mixed = async (good: EncryptedSessionData[]): Promise<unknown[]> => {
    const badPadding = mangleCiphertext(await sealSessionBytes(decodeBase64(alice.public_key), new Uint8Array(32).fill(0x41).fill(0, 31)), (b) => b.subarray(0, 32));
    return good.flatMap((entry, i) => [
      entry,
      ...(i % 4 === 0 ? [{ ...entry, mac: flipFirstBit(entry.mac) }] : []),
      ...(i % 5 === 1 ? [{ ...entry, ephemeral: encodeBase64(hex(LOW_ORDER_POINTS[1]!)) }] : []),
      ...(i % 6 === 2 ? [{ ...entry, ciphertext: '!' }] : []),
      ...(i % 7 === 3 ? [null] : []),
      ...(i % 8 === 4 ? [badPadding] : []),
    ]);
  };
  const mangleCiphertext = (entry: EncryptedSessionData, bytes: (b: Uint8Array) => Uint8Array): EncryptedSessionData =>
    ({ ...entry, ciphertext: encodeBase64(bytes(decodeBase64(entry.ciphertext))) });

  it.each(COMBINATIONS)('every batch size gives what decrypt gives, in input order ($x25519, $symmetric)', async (implementations) => {
    const decryptor = await createBackupDecryptor(alicePrivate, implementations);
    const good = await Promise.all(Array.from({ length: 24 }, (_, i) => encryptSessionData(alice.public_key, { ...sample, sender_key: `key ${i}` })));
    const list = (await mixed(good)) as EncryptedSessionData[];
    const expected = await Promise.all(list.map(async (entry) => {
      try {
        return { ok: true, value: await decryptor.decrypt(entry) };
      } catch (error) {
        return { ok: false, kind: (error as { kind: string }).kind };
      }
    }));
    expect(new Set(expected.map((r) => (r.ok ? 'ok' : r.kind)))).toEqual(new Set(['ok', 'mac', 'non-contributory', 'base64', 'field', 'padding']));
    for (const batchSize of [1, 3, 7, DEFAULT_BATCH_SIZE, list.length, list.length + 5]) {
      const results = await decryptor.decryptMany(list, { batchSize });
      expect(results.map((r) => (r.ok ? { ok: true, value: r.value } : { ok: false, kind: r.error.kind })), `batchSize ${batchSize}`).toEqual(expected);
    }
  });

  it('refuses a batch size that is not a positive integer with kind field', async () => {
    const decryptor = await createBackupDecryptor(alicePrivate);
    for (const batchSize of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '8' as unknown as number]) {
      expect(await kindOf(() => decryptor.decryptMany([aliceEntry], { batchSize })), String(batchSize)).toBe('field');
    }
  });

  it.each(SYMMETRIC_IMPLEMENTATIONS)('lets a bug surface instead of reporting it as a bad entry, with later batches pending (%s)', async (symmetric) => {
    const decryptor = await createBackupDecryptor(alicePrivate, { x25519: 'native', symmetric });
    vi.spyOn(crypto.subtle, 'importKey').mockRejectedValue(new TypeError('platform bug'));
    await expect(decryptor.decryptMany(new Array(20).fill(aliceEntry), { batchSize: 4 })).rejects.toThrow(TypeError);
  });

  // DESIGN "Performance model": what goes to WebCrypto is the measured choice (backup-symmetric.ts).
  const perEntry: Array<[string, { importKey: number; deriveBits: number; decrypt: number }]> = [
    ['js', { importKey: 1, deriveBits: 1, decrypt: 0 }], // X25519 only
    ['webcrypto', { importKey: 3, deriveBits: 2, decrypt: 1 }], // X25519, HKDF, AES-CBC
  ];
  it.each(perEntry)('makes the expected WebCrypto calls per entry (%s)', async (symmetric, calls) => {
    const decryptor = await createBackupDecryptor(alicePrivate, { x25519: 'native', symmetric: symmetric as 'js' });
    const spies = (['importKey', 'deriveBits', 'decrypt'] as const).map((name) => vi.spyOn(crypto.subtle, name));
    const results = await decryptor.decryptMany(new Array(5).fill(aliceEntry));
    expect(results.every((r) => r.ok)).toBe(true);
    expect(spies.map((spy) => spy.mock.calls.length)).toEqual([calls.importKey * 5, calls.deriveBits * 5, calls.decrypt * 5]);
  });
});

describe('encryption imports the backup public key once', () => {
  afterEach(() => vi.restoreAllMocks());

  const x25519Imports = (spy: { mock: { calls: unknown[][] } }): number =>
    spy.mock.calls.filter(([format, , algorithm]) => format === 'raw' && (algorithm as { name?: string }).name === 'X25519').length;

  it('encryptSessionData remembers the last key, and only for that key', async () => {
    const [a, b] = await Promise.all([0, 1].map(() => createBackupDecryptor(crypto.getRandomValues(new Uint8Array(32)), { x25519: 'native' })));
    const importKey = vi.spyOn(crypto.subtle, 'importKey');
    const toA = await Promise.all(Array.from({ length: 10 }, (_, i) => encryptSessionData(a!.publicKey, { ...sample, sender_key: `a${i}` }, { x25519: 'native' })));
    expect(x25519Imports(importKey)).toBe(1);
    const toB = await encryptSessionData(b!.publicKey, sample, { x25519: 'native' });
    expect(x25519Imports(importKey)).toBe(2);
    await encryptSessionData(a!.publicKey, sample, { x25519: 'native' });
    expect(x25519Imports(importKey)).toBe(3); // one slot: switching back to a imports again
    await encryptSessionData(`${a!.publicKey}=`, sample, { x25519: 'native' }); // the same key, padded
    expect(x25519Imports(importKey)).toBe(3);
    expect(await Promise.all(toA.map((e) => a!.decrypt(e)))).toEqual(toA.map((_, i) => ({ ...sample, sender_key: `a${i}` })));
    expect(await b!.decrypt(toB)).toEqual(sample);
    expect(await kindOf(() => a!.decrypt(toB))).toBe('mac');
  });

  it('encryptSessionData keeps the symmetric implementation asked for with the remembered key', async () => {
    const decryptor = await createBackupDecryptor(crypto.getRandomValues(new Uint8Array(32)));
    const encrypt = vi.spyOn(crypto.subtle, 'encrypt');
    await encryptSessionData(decryptor.publicKey, sample, { symmetric: 'js' });
    expect(encrypt).not.toHaveBeenCalled();
    const sealed = await encryptSessionData(decryptor.publicKey, sample, { symmetric: 'webcrypto' });
    expect(encrypt).toHaveBeenCalledTimes(1);
    expect(await decryptor.decrypt(sealed)).toEqual(sample);
  });

  it('does not keep a failed import: the next call tries again', async () => {
    const decryptor = await createBackupDecryptor(crypto.getRandomValues(new Uint8Array(32)), { x25519: 'native' });
    vi.spyOn(crypto.subtle, 'importKey').mockRejectedValueOnce(new TypeError('transient platform failure'));
    await expect(encryptSessionData(decryptor.publicKey, sample, { x25519: 'native' })).rejects.toThrow(TypeError);
    expect(await decryptor.decrypt(await encryptSessionData(decryptor.publicKey, sample, { x25519: 'native' }))).toEqual(sample);
  });

  it.each(SYMMETRIC_IMPLEMENTATIONS)('BackupEncryptor imports the key once (%s), and AES-CBC goes where the option says', async (symmetric) => {
    const decryptor = await createBackupDecryptor(alicePrivate, { x25519: 'native' });
    const encryptor = new BackupEncryptor(decryptor.publicKey, { x25519: 'native', symmetric });
    const importKey = vi.spyOn(crypto.subtle, 'importKey');
    const encrypt = vi.spyOn(crypto.subtle, 'encrypt');
    const sealed = await Promise.all(Array.from({ length: 6 }, () => encryptor.encrypt(sample)));
    sealed.push(await encryptor.encrypt(sample));
    expect(x25519Imports(importKey)).toBe(1);
    expect(encrypt).toHaveBeenCalledTimes(symmetric === 'webcrypto' ? 7 : 0);
    for (const entry of sealed) expect(await decryptor.decrypt(entry)).toEqual(sample);
  });
});
