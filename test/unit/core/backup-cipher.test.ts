import { inspect } from 'node:util';
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { sealSessionBytes } from '../../../src/core/backup-cipher.ts';
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

describe.each(X25519_IMPLEMENTATIONS)('backup cipher vectors (%s X25519)', (x25519) => {
  it.each(backup.decrypt)('decrypts $id (V5…V5d) to the exact plaintext, unknown members kept', async (c) => {
    const decryptor = await createBackupDecryptor(hex(c.private_key_hex), { x25519 });
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
    const sessionData = await encryptSessionData(v17.backup_public_key, sample, { x25519, ephemeralPrivateKey: hex(v17.ephemeral_private_key_hex) });
    expect(sessionData).toEqual(v17.session_data);
  });

  it('decrypts V17 with the RFC 7748 Alice key', async () => {
    const decryptor = await createBackupDecryptor(hex(v17.backup_private_key_hex), { x25519 });
    expect(JSON.stringify(await decryptor.decrypt(v17.session_data))).toBe(v17.plaintext);
  });

  it('decrypts the chain vector\'s sessions (V9) with the backup key from secret storage', async () => {
    const decryptor = await createBackupDecryptor(hex(chain.backup_private_key_hex), { x25519 });
    expect(decryptor.publicKey).toBe(chain.backup_version.auth_data.public_key);
    for (const s of chain.sessions) {
      expect(JSON.stringify(await decryptor.decrypt(s.key_backup_data.session_data))).toBe(JSON.stringify(JSON.parse(s.plaintext)));
    }
  });

  it('refuses every low-order ephemeral key with kind non-contributory', async () => {
    const decryptor = await createBackupDecryptor(alicePrivate, { x25519 });
    for (const point of LOW_ORDER_POINTS) {
      expect(await kindOf(() => decryptor.decrypt({ ...aliceEntry, ephemeral: encodeBase64(hex(point)) })), point).toBe('non-contributory');
    }
  });

  it('refuses to encrypt to a low-order public key with kind non-contributory', async () => {
    for (const point of LOW_ORDER_POINTS) {
      expect(await kindOf(() => encryptSessionData(encodeBase64(hex(point)), sample, { x25519 })), point).toBe('non-contributory');
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

  const pairs = X25519_IMPLEMENTATIONS.flatMap((encryptWith) => X25519_IMPLEMENTATIONS.map((decryptWith) => [encryptWith, decryptWith] as const));

  it.each(pairs)('encrypted with %s, decrypted with %s: returns the input', async (encryptWith, decryptWith) => {
    const privateKey = crypto.getRandomValues(new Uint8Array(32));
    const decryptor = await createBackupDecryptor(privateKey, { x25519: decryptWith });
    await fc.assert(fc.asyncProperty(payload, async (data) => {
      const sessionData = await encryptSessionData(decryptor.publicKey, data, { x25519: encryptWith });
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

  it.each(X25519_IMPLEMENTATIONS)('refuses each bad entry with its kind (%s)', async (x25519) => {
    const decryptor = await createBackupDecryptor(alicePrivate, { x25519 });
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

  it('refuses bad padding under the right key with kind padding', async () => {
    // 32 bytes ending in 0x00; CBC adds a 16-byte pad block. Dropping that block leaves two blocks
    // whose last byte (0x00) is not valid PKCS#7.
    const entry = await sealed(new Uint8Array(32).fill(0x41).fill(0, 31));
    const cut = mangle(entry, 'ciphertext', (b) => b.subarray(0, 32));
    const decryptor = await createBackupDecryptor(alicePrivate);
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
    const decryptor = await createBackupDecryptor(alicePrivate);
    expect(await kindOf(async () => decryptor.decrypt(await sealed(bytes)))).toBe(kind);
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
