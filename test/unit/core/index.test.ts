/**
 * The public surface DESIGN.md promises ("The core's public surface"), and the rules that let the
 * core load as plain ES modules anywhere (no node: imports — layout.test.ts — and no platform
 * globals besides WebCrypto).
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as core from '../../../src/core/index.ts';
import { CoreError, isCoreError } from '../../../src/core/index.ts';

const coreDir = resolve(import.meta.dirname, '../../../src/core');

describe('src/core/index.ts', () => {
  // name → number of parameters before the first optional one (Function.length)
  const designSurface: Record<string, number> = {
    encodeRecoveryKey: 1,
    decodeRecoveryKey: 1,
    derivePassphraseKey: 3, // (passphrase, salt, iterations, bits = 256)
    backupPublicKey: 1,
    encryptSessionData: 2, // (publicKey, data, options?)
    createBackupDecryptor: 1, // (privateKey, options?)
    checkSecretStorageKey: 2,
    encryptSecret: 3,
    decryptSecret: 3,
    encryptKeyFile: 2, // (plaintext, passphrase, rounds = 500000)
    decryptKeyFile: 2,
    parseSessionKey: 1,
    // additions the brief asks for
    createSecretStorageKeyCheck: 1,
    secretStorageKeyFromPassphrase: 2,
    backupKeyFromSecretStorage: 2,
    parseExportedSession: 1,
    canonicalJson: 1,
    verifyAuthDataSignature: 4,
  };

  it.each(Object.entries(designSurface))('exports %s taking %i required arguments', (name, arity) => {
    const exported = (core as Record<string, unknown>)[name];
    expect(typeof exported).toBe('function');
    expect((exported as (...args: unknown[]) => unknown).length).toBe(arity);
  });

  it('gives a decryptor with publicKey, decrypt(sd) and decryptMany(list)', async () => {
    const decryptor = await core.createBackupDecryptor(new Uint8Array(32).fill(1));
    expect(typeof decryptor.publicKey).toBe('string');
    expect(decryptor.decrypt.length).toBe(1);
    expect(decryptor.decryptMany.length).toBe(1);
  });

  it('exports the algorithm names', () => {
    expect(core.BACKUP_ALGORITHM).toBe('m.megolm_backup.v1.curve25519-aes-sha2');
    expect(core.MEGOLM_ALGORITHM).toBe('m.megolm.v1.aes-sha2');
    expect(core.SECRET_STORAGE_ALGORITHM).toBe('m.secret_storage.v1.aes-hmac-sha2');
    expect(core.MEGOLM_BACKUP_SECRET_NAME).toBe('m.megolm_backup.v1');
  });
});

describe('CoreError', () => {
  it('is an Error with a name, a kind and a message', () => {
    const error = new CoreError('mac', 'the MAC does not match');
    expect(error).toBeInstanceOf(Error);
    expect(error.name).toBe('CoreError');
    expect(error.kind).toBe('mac');
    expect(error.message).toBe('the MAC does not match');
    expect(String(error)).toBe('CoreError: the MAC does not match');
  });

  it('isCoreError tells kinds apart', () => {
    const error = new CoreError('parity', 'typo');
    expect(isCoreError(error)).toBe(true);
    expect(isCoreError(error, 'parity')).toBe(true);
    expect(isCoreError(error, 'prefix')).toBe(false);
    expect(isCoreError(new Error('x'))).toBe(false);
    expect(isCoreError({ kind: 'parity' })).toBe(false);
  });

  it('keeps the cause', () => {
    const cause = new Error('inner');
    expect(new CoreError('padding', 'outer', { cause }).cause).toBe(cause);
  });
});

describe('the core loads anywhere', () => {
  const files = readdirSync(coreDir).filter((f) => f.endsWith('.ts')).map((f) => join(coreDir, f));
  // Only WebCrypto (`crypto.subtle`) and language built-ins; TextEncoder/TextDecoder exist in every
  // browser, worker and Node ≥ 11.
  const forbidden = [/\bBuffer\b/, /\bprocess\./, /\brequire\(/, /\bwindow\b/, /\bdocument\b/, /\bnavigator\b/, /\bself\./, /\batob\(|\bbtoa\(/, /\bfetch\(/, /\bsetTimeout\(|\bsetInterval\(/, /\bindexedDB\b|\blocalStorage\b/, /\bchrome\.|\bbrowser\./, /\bcrypto\.(?!subtle\b)/, /\bimport\(/, /\bimport\.meta\b/];

  it('finds the core files', () => {
    expect(files.length).toBeGreaterThan(10);
  });

  it.each(files.map((f) => [f.slice(coreDir.length + 1), f]))('%s uses no platform global but WebCrypto', (_name, file) => {
    const code = readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, ''); // comments may mention anything
    for (const pattern of forbidden) expect(code, String(pattern)).not.toMatch(pattern);
  });
});
