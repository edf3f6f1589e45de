/**
 * Recovery keys (spec appendix "Cryptographic key representation") between the core and Element.
 *
 * Element's crypto (wasm 18.9) holds the backup key as `BackupDecryptionKey` and speaks only base64;
 * the base58 text is made in matrix-js-sdk, which is not installed here. So: the 32 key bytes must
 * survive core text ↔ wasm key both ways, both sides must derive the same public key, and the core's
 * text must equal an independent restatement of the algorithm (validated on published vectors in
 * peer.test.ts) and open Element's published keys.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { BackupDecryptionKey } from '@matrix-org/matrix-sdk-crypto-wasm';
import { backupPublicKey, decodeRecoveryKey, encodeRecoveryKey } from '../../src/core/index.ts';
import { initPeer, referenceRecoveryKey } from '../peer/index.ts';
import recoveryKeyVectors from '../vectors/recovery-keys.json' with { type: 'json' };
import { randomPrivateKey } from './fixture.ts';

const ROUNDS = 25;
const base64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64').replace(/=+$/, '');

beforeAll(initPeer);

/** The key bytes and public key of a wasm key object, which is then freed. */
function fromWasm(key: BackupDecryptionKey): { bytes: Uint8Array; base64: string; publicKey: string } {
  const text = key.toBase64();
  const publicKeyObject = key.megolmV1PublicKey;
  const publicKey = publicKeyObject.publicKeyBase64;
  publicKeyObject.free();
  key.free();
  return { bytes: new Uint8Array(Buffer.from(text, 'base64')), base64: text, publicKey };
}

describe('keys Element generates', () => {
  it('the core writes them as the spec says and reads its text back to the same bytes', async () => {
    for (let i = 0; i < ROUNDS; i++) {
      const key = fromWasm(BackupDecryptionKey.createRandomKey());
      expect(key.bytes).toHaveLength(32);
      const text = encodeRecoveryKey(key.bytes);
      expect(text).toBe(referenceRecoveryKey(key.bytes));
      expect(decodeRecoveryKey(text)).toEqual(key.bytes);
      // What the user typed, back into Element's key object: the same key.
      expect(fromWasm(BackupDecryptionKey.fromBase64(base64(decodeRecoveryKey(text)))).base64).toBe(key.base64);
    }
  });

  it('have the same backup public key in Element and in the core (both X25519 paths)', async () => {
    for (let i = 0; i < ROUNDS; i++) {
      const key = fromWasm(BackupDecryptionKey.createRandomKey());
      expect(await backupPublicKey(key.bytes, { x25519: 'native' })).toBe(key.publicKey);
      expect(await backupPublicKey(key.bytes, { x25519: 'noble' })).toBe(key.publicKey);
    }
  });
});

describe('keys the core reads from text', () => {
  it('become the same Element key, with the same public key', async () => {
    for (let i = 0; i < ROUNDS; i++) {
      const bytes = randomPrivateKey();
      const decoded = decodeRecoveryKey(referenceRecoveryKey(bytes));
      const key = fromWasm(BackupDecryptionKey.fromBase64(base64(decoded)));
      expect(key.bytes).toEqual(bytes);
      expect(key.publicKey).toBe(await backupPublicKey(decoded));
    }
  });

  it('Element\'s published recovery keys open the same backup in both', async () => {
    const withPublicKey = recoveryKeyVectors.valid.filter((v): v is typeof v & { x25519_public_key: string } => 'x25519_public_key' in v);
    expect(withPublicKey.length).toBeGreaterThanOrEqual(2);
    for (const vector of withPublicKey) {
      const decoded = decodeRecoveryKey(vector.encoded);
      const key = fromWasm(BackupDecryptionKey.fromBase64(base64(decoded)));
      expect(key.publicKey).toBe(vector.x25519_public_key);
      expect(await backupPublicKey(decoded)).toBe(vector.x25519_public_key);
    }
  });
});
