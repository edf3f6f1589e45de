import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  backupKeyFromSecretStorage,
  checkSecretStorageKey,
  createBackupDecryptor,
  createSecretStorageKeyCheck,
  decodeBase64,
  decodeRecoveryKey,
  decryptSecret,
  encodeBase64,
  encryptSecret,
  secretStorageKeyFromPassphrase,
  type CoreErrorKind,
  type EncryptedSecret,
  type SecretStorageAccountData,
  type SecretStorageKeyDescription,
} from '../../../src/core/index.ts';
import { hex, kindOf, toHex, vectors, X25519_IMPLEMENTATIONS } from './helpers.ts';

const v = vectors('secret-storage.json');
const rustKey = hex(v.key_check[0].key_hex);
const rustDescription: SecretStorageKeyDescription = v.key_check[0].description;
const chain = v.chain;
const chainKeyId: string = chain.account_data['m.secret_storage.default_key'].key;
const chainDescription: SecretStorageKeyDescription = chain.account_data[`m.secret_storage.key.${chainKeyId}`];
const chainAccountData = (): SecretStorageAccountData => ({
  defaultKeyId: chainKeyId,
  keys: { [chainKeyId]: chainDescription },
  megolmBackup: chain.account_data['m.megolm_backup.v1'],
});
const otherKey = new Uint8Array(32).fill(7);

describe('secret-storage key check (V6, reference §5.2)', () => {
  it('accepts the rust-sdk Security Key (base58) for its description', async () => {
    const key = decodeRecoveryKey(v.key_check[0].key_encoded);
    expect(toHex(key)).toBe(v.key_check[0].key_hex);
    expect(await checkSecretStorageKey(key, rustDescription)).toBe(true);
  });

  it('accepts the rust-sdk passphrase key, derived with the description\'s parameters', async () => {
    const c = v.key_check[1];
    const key = await secretStorageKeyFromPassphrase(c.passphrase, c.description);
    expect(toHex(key)).toBe(c.derived_key_hex);
    expect(await checkSecretStorageKey(key, c.description)).toBe(true);
  });

  it('refuses another key: false, not an error', async () => {
    expect(await checkSecretStorageKey(otherKey, rustDescription)).toBe(false);
    expect(await checkSecretStorageKey(hex(v.key_check[1].derived_key_hex), rustDescription)).toBe(false);
  });

  it('accepts padded and unpadded iv/mac alike', async () => {
    const unpadded = { ...rustDescription, iv: rustDescription.iv!.replace(/=+$/, ''), mac: rustDescription.mac!.replace(/=+$/, '') };
    expect(await checkSecretStorageKey(rustKey, unpadded)).toBe(true);
  });

  it('says true without iv and mac, as the spec requires ("assume that the key is valid")', async () => {
    expect(await checkSecretStorageKey(otherKey, { algorithm: 'm.secret_storage.v1.aes-hmac-sha2' })).toBe(true);
  });

  it.each(v.invalid_descriptions.map((c: any) => [c.error, c]) as Array<[string, any]>)('refuses the rust-sdk invalid description: %s', async (_label, c) => {
    const expected: CoreErrorKind = c.error.startsWith('unsupported') ? 'algorithm' : 'length';
    expect(await kindOf(() => checkSecretStorageKey(hex(c.key_hex), c.description))).toBe(expected);
  });

  const bad: Array<[string, unknown, CoreErrorKind]> = [
    ['only an iv', { algorithm: rustDescription.algorithm, iv: rustDescription.iv }, 'field'],
    ['only a mac', { algorithm: rustDescription.algorithm, mac: rustDescription.mac }, 'field'],
    ['iv of 17 bytes', { ...rustDescription, iv: encodeBase64(new Uint8Array(17)) }, 'length'],
    ['mac of 31 bytes', { ...rustDescription, mac: encodeBase64(new Uint8Array(31)) }, 'length'],
    ['iv not base64', { ...rustDescription, iv: 'xv5b6/p3ExEw++wTyfSHEg!!' }, 'base64'],
    ['mac is a number', { ...rustDescription, mac: 5 }, 'field'],
    ['no algorithm', { iv: rustDescription.iv, mac: rustDescription.mac }, 'algorithm'],
    ['the description is a string', 'm.secret_storage.v1.aes-hmac-sha2', 'field'],
  ];
  it.each(bad)('refuses a description with %s', async (_label, description, kind) => {
    expect(await kindOf(() => checkSecretStorageKey(rustKey, description as SecretStorageKeyDescription))).toBe(kind);
  });

  it('says which half of the key check is missing', async () => {
    const onlyIv = { algorithm: rustDescription.algorithm, iv: rustDescription.iv };
    await expect(checkSecretStorageKey(rustKey, onlyIv)).rejects.toThrow(/only one of "iv" and "mac"/);
  });

  it('refuses an empty key', async () => {
    expect(await kindOf(() => checkSecretStorageKey(new Uint8Array(0), rustDescription))).toBe('length');
  });

  it('creates key checks that check: random IVs with bit 63 clear, any key', async () => {
    await fc.assert(fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 64 }), async (key) => {
      const check = await createSecretStorageKeyCheck(key);
      const iv = decodeBase64(check.iv);
      expect(iv).toHaveLength(16);
      expect(iv[8]! & 0x80).toBe(0);
      expect(decodeBase64(check.mac)).toHaveLength(32);
      const description = { algorithm: 'm.secret_storage.v1.aes-hmac-sha2', ...check };
      expect(await checkSecretStorageKey(key, description)).toBe(true);
      expect(await checkSecretStorageKey(Uint8Array.of(...key, 0), description)).toBe(false);
    }), { numRuns: 40 });
  });

  it('reproduces a stored key check with the same IV', async () => {
    const check = await createSecretStorageKeyCheck(rustKey, { iv: decodeBase64(rustDescription.iv!) });
    expect(decodeBase64(check.mac)).toEqual(decodeBase64(rustDescription.mac!));
  });
});

describe('secrets (V8, reference §5.3)', () => {
  it.each(v.secrets.map((s: any) => [s.name, s]) as Array<[string, any]>)('decrypts the rust-sdk secret %s', async (_name, s) => {
    expect(await decryptSecret(hex(s.key_hex), s.name, s.encrypted)).toBe(s.plaintext);
  });

  it('re-encrypts a vector secret to the same ciphertext and MAC with its IV', async () => {
    const s = v.secrets[0];
    const encrypted = await encryptSecret(hex(s.key_hex), s.name, s.plaintext, { iv: decodeBase64(s.encrypted.iv) });
    expect(decodeBase64(encrypted.ciphertext)).toEqual(decodeBase64(s.encrypted.ciphertext));
    expect(decodeBase64(encrypted.mac)).toEqual(decodeBase64(s.encrypted.mac));
  });

  it('round-trips any secret under any name; output is unpadded, IV bit 63 clear', async () => {
    await fc.assert(fc.asyncProperty(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.string(), fc.string({ unit: 'grapheme' }), async (key, name, secret) => {
      const encrypted = await encryptSecret(key, name, secret);
      expect(Object.values(encrypted).join('')).not.toContain('=');
      expect(decodeBase64(encrypted.iv)[8]! & 0x80).toBe(0);
      expect(await decryptSecret(key, name, encrypted)).toBe(secret);
    }), { numRuns: 60 });
  });

  it('binds the name through HKDF: another name or key fails the MAC', async () => {
    const s = v.secrets[0];
    expect(await kindOf(() => decryptSecret(hex(s.key_hex), 'm.cross_signing.self_signing', s.encrypted))).toBe('mac');
    expect(await kindOf(() => decryptSecret(otherKey, s.name, s.encrypted))).toBe('mac');
  });

  it('verifies the MAC before decrypting', async () => {
    // A changed ciphertext must be refused with kind mac, never decrypted to garbage.
    const s = v.secrets[0];
    const ciphertext = decodeBase64(s.encrypted.ciphertext);
    ciphertext[0]! ^= 1;
    expect(await kindOf(() => decryptSecret(hex(s.key_hex), s.name, { ...s.encrypted, ciphertext: encodeBase64(ciphertext) }))).toBe('mac');
  });

  it('refuses a MAC-valid secret that is not UTF-8 with kind utf8', async () => {
    // Built by hand per §5.3 so that the MAC is right but the plaintext bytes are not text.
    const key = otherKey;
    const okm = hkdf(sha256, key, new Uint8Array(32), new TextEncoder().encode('n'), 64);
    const iv = new Uint8Array(16);
    const aesKey = await crypto.subtle.importKey('raw', okm.slice(0, 32), 'AES-CTR', false, ['encrypt']);
    const ciphertext = new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-CTR', counter: iv, length: 64 }, aesKey, Uint8Array.of(0xff, 0xfe)));
    const macKey = await crypto.subtle.importKey('raw', okm.slice(32), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
    const mac = new Uint8Array(await crypto.subtle.sign('HMAC', macKey, ciphertext));
    const encrypted = { iv: encodeBase64(iv), ciphertext: encodeBase64(ciphertext), mac: encodeBase64(mac) };
    expect(await kindOf(() => decryptSecret(key, 'n', encrypted))).toBe('utf8');
  });

  const s0 = v.secrets[0];
  const bad: Array<[string, unknown, CoreErrorKind]> = [
    ['not an object', 'secret', 'field'],
    ['no iv', { ciphertext: s0.encrypted.ciphertext, mac: s0.encrypted.mac }, 'field'],
    ['no ciphertext', { iv: s0.encrypted.iv, mac: s0.encrypted.mac }, 'field'],
    ['an iv of 15 bytes', { ...s0.encrypted, iv: encodeBase64(new Uint8Array(15)) }, 'length'],
    ['a mac of 8 bytes', { ...s0.encrypted, mac: encodeBase64(new Uint8Array(8)) }, 'length'],
    ['a ciphertext that is not base64', { ...s0.encrypted, ciphertext: '%%%%' }, 'base64'],
    ['a wrong mac', { ...s0.encrypted, mac: encodeBase64(new Uint8Array(32)) }, 'mac'],
  ];
  it.each(bad)('refuses an encrypted secret with %s', async (_label, encrypted, kind) => {
    expect(await kindOf(() => decryptSecret(hex(s0.key_hex), s0.name, encrypted as EncryptedSecret))).toBe(kind);
  });

  it('refuses a pinned IV of the wrong size', async () => {
    expect(await kindOf(() => encryptSecret(otherKey, 'n', 's', { iv: new Uint8Array(8) }))).toBe('length');
  });
});

describe('the full chain: Security Phrase → 4S key → m.megolm_backup.v1 → backup key (V9, reference §5.4)', () => {
  it.each(X25519_IMPLEMENTATIONS)('works end to end and the key matches the backup (%s X25519)', async (x25519) => {
    const key = await secretStorageKeyFromPassphrase(chain.security_phrase, chainDescription);
    expect(toHex(key)).toBe(chain.secret_storage_key_hex);
    expect(toHex(decodeRecoveryKey(chain.secret_storage_key_encoded))).toBe(chain.secret_storage_key_hex);
    const backupKey = await backupKeyFromSecretStorage(key, chainAccountData());
    expect(toHex(backupKey)).toBe(chain.backup_private_key_hex);
    expect(encodeBase64(backupKey)).toBe(chain.backup_key_secret);
    const decryptor = await createBackupDecryptor(backupKey, { x25519 });
    expect(decryptor.publicKey).toBe(chain.backup_version.auth_data.public_key);
    for (const s of chain.sessions) {
      expect(JSON.stringify(await decryptor.decrypt(s.key_backup_data.session_data))).toBe(JSON.stringify(JSON.parse(s.plaintext)));
    }
  });

  it('works from the Security Key (base58) too', async () => {
    const backupKey = await backupKeyFromSecretStorage(decodeRecoveryKey(chain.secret_storage_key_encoded), chainAccountData());
    expect(toHex(backupKey)).toBe(chain.backup_private_key_hex);
  });

  it('refuses the wrong Security Key with kind key-check', async () => {
    expect(await kindOf(() => backupKeyFromSecretStorage(otherKey, chainAccountData()))).toBe('key-check');
  });

  it('refuses the wrong key with kind key-check even when the description has no key check', async () => {
    const { iv: _iv, mac: _mac, ...unchecked } = chainDescription;
    const accountData = { ...chainAccountData(), keys: { [chainKeyId]: unchecked as SecretStorageKeyDescription } };
    expect(await kindOf(() => backupKeyFromSecretStorage(otherKey, accountData))).toBe('key-check');
    // Control: the right key still works without the check.
    expect(toHex(await backupKeyFromSecretStorage(hex(chain.secret_storage_key_hex), accountData))).toBe(chain.backup_private_key_hex);
  });

  it('keeps kind mac for a corrupted secret when the key check passed', async () => {
    const encrypted = chain.account_data['m.megolm_backup.v1'].encrypted[chainKeyId];
    const accountData = { ...chainAccountData(), megolmBackup: { encrypted: { [chainKeyId]: { ...encrypted, mac: encodeBase64(new Uint8Array(32)) } } } };
    expect(await kindOf(() => backupKeyFromSecretStorage(hex(chain.secret_storage_key_hex), accountData))).toBe('mac');
  });

  it('accepts a padded backup-key secret (js-sdk writes padded base64)', async () => {
    const key = hex(chain.secret_storage_key_hex);
    const encrypted = await encryptSecret(key, 'm.megolm_backup.v1', `${chain.backup_key_secret}=`);
    const accountData = { ...chainAccountData(), megolmBackup: { encrypted: { [chainKeyId]: encrypted } } };
    expect(toHex(await backupKeyFromSecretStorage(key, accountData))).toBe(chain.backup_private_key_hex);
  });

  const key = hex(chain.secret_storage_key_hex);
  const withSecret = async (secret: string): Promise<SecretStorageAccountData> =>
    ({ ...chainAccountData(), megolmBackup: { encrypted: { [chainKeyId]: await encryptSecret(key, 'm.megolm_backup.v1', secret) } } });
  const cases: Array<[string, () => Promise<SecretStorageAccountData> | SecretStorageAccountData, CoreErrorKind]> = [
    ['no default key id', () => ({ ...chainAccountData(), defaultKeyId: undefined }), 'no-default-key'],
    ['an empty default key id', () => ({ ...chainAccountData(), defaultKeyId: '' }), 'no-default-key'],
    ['no description for the default key', () => ({ ...chainAccountData(), keys: {} }), 'no-default-key'],
    ['a default key id that names an Object prototype member', () => ({ ...chainAccountData(), defaultKeyId: 'constructor' }), 'no-default-key'],
    ['an unknown key algorithm', () => ({ ...chainAccountData(), keys: { [chainKeyId]: { ...chainDescription, algorithm: 'm.secret_storage.v2' } } }), 'algorithm'],
    ['no m.megolm_backup.v1 account data', () => ({ ...chainAccountData(), megolmBackup: undefined }), 'no-secret'],
    ['a deleted secret ({})', () => ({ ...chainAccountData(), megolmBackup: {} }), 'no-secret'],
    ['a secret for another key only', () => ({ ...chainAccountData(), megolmBackup: { encrypted: { other: {} } } }), 'no-secret'],
    ['a secret that is not base64', () => withSecret('not base64!'), 'base64'],
    ['a secret of 31 bytes', () => withSecret(encodeBase64(new Uint8Array(31))), 'length'],
    ['a secret of 33 bytes', () => withSecret(encodeBase64(new Uint8Array(33))), 'length'],
  ];
  it.each(cases)('refuses %s', async (_label, accountData, kind) => {
    const data = await accountData();
    expect(await kindOf(() => backupKeyFromSecretStorage(key, data))).toBe(kind);
  });

  const passphraseCases: Array<[string, unknown, CoreErrorKind]> = [
    ['no passphrase parameters', { algorithm: chainDescription.algorithm }, 'no-passphrase'],
    ['another KDF', { ...chainDescription, passphrase: { ...chainDescription.passphrase, algorithm: 'm.argon2' } }, 'algorithm'],
    ['a missing salt', { ...chainDescription, passphrase: { algorithm: 'm.pbkdf2', iterations: 1 } }, 'field'],
    ['iterations as a string', { ...chainDescription, passphrase: { ...chainDescription.passphrase, iterations: '1' } }, 'iterations'],
    ['absurd iterations', { ...chainDescription, passphrase: { ...chainDescription.passphrase, iterations: 1e12 } }, 'iterations'],
    ['bits as a string', { ...chainDescription, passphrase: { ...chainDescription.passphrase, bits: '256' } }, 'length'],
    ['passphrase parameters that are a string', { ...chainDescription, passphrase: 'pbkdf2' }, 'field'],
  ];
  it.each(passphraseCases)('secretStorageKeyFromPassphrase refuses %s', async (_label, description, kind) => {
    expect(await kindOf(() => secretStorageKeyFromPassphrase('mypassphrase', description as SecretStorageKeyDescription))).toBe(kind);
  });

  it('secretStorageKeyFromPassphrase honours bits', async () => {
    const description = { ...chainDescription, passphrase: { ...chainDescription.passphrase!, bits: 512 } };
    const key = await secretStorageKeyFromPassphrase(chain.security_phrase, description);
    expect(key).toHaveLength(64);
    expect(toHex(key.subarray(0, 32))).toBe(chain.secret_storage_key_hex);
  });
});
