/**
 * The symmetric half of the backup algorithm: HKDF-SHA-256 from the X25519 shared secret to
 * AES key ‖ MAC key ‖ IV (reference §2.4 step 3), and AES-256-CBC (§2.4 step 4, §2.5 step 4).
 *
 * Two implementations give the same bytes; which is faster depends on what a WebCrypto call costs
 * on the platform, so the default is chosen per platform, from bench/decrypt.ts (2 cores, 5,000
 * ~600-byte entries, against Element's wasm crypto in the same process; X25519 in WebCrypto):
 *
 * - 'js' (@noble/hashes, @noble/ciphers, synchronous) is the default on Node. Node 20 implements
 *   WebCrypto in JS over its KeyObject layer: each call costs ~15 µs of main-thread time, more than
 *   HKDF or AES-CBC on 600 bytes take in JS. Node: js ≈ 2.4× wasm, webcrypto ≈ 1.4×.
 * - 'webcrypto' is the default everywhere else. In Chromium a call costs little on the calling
 *   thread and the work runs on other threads: webcrypto ≈ 1.95× wasm, js ≈ 1.65× (Chromium 156).
 *
 * The 8-byte MAC (an HMAC over nothing, backup-cipher.ts) stays in JS in both: in WebCrypto it would
 * take a key import and a sign call.
 */
import { expand } from '@noble/hashes/hkdf.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { aesCbcDecrypt, aesCbcEncrypt, webAesCbcDecrypt, webAesCbcEncrypt } from './aes-cbc.ts';
import { expectBytes, toBufferSource } from './bytes.ts';
import { CoreError } from './errors.ts';

export type SymmetricImplementation = 'js' | 'webcrypto';

/** One entry's keys: views of one 80-byte HKDF output. */
export interface EntryKeys {
  aesKey: Uint8Array;
  macKey: Uint8Array;
  iv: Uint8Array;
  /** Zeroes all three once the entry is done. */
  wipe(): void;
}

export interface SymmetricSuite {
  readonly implementation: SymmetricImplementation;
  deriveEntryKeys(sharedSecret: Uint8Array): Promise<EntryKeys>;
  encrypt(keys: EntryKeys, plaintext: Uint8Array): Promise<Uint8Array>;
  /** Throws kinds `length` and `padding`; `what` names the ciphertext in messages. */
  decrypt(keys: EntryKeys, ciphertext: Uint8Array, what: string): Promise<Uint8Array>;
}

// Spec: salt = 32 zero bytes, info = "". (HMAC zero-pads short keys, so libolm's empty salt and
// vodozemac's one-byte salt give the same output — reference §2.4 step 3.)
const HKDF_SALT = new Uint8Array(32);
const EMPTY = new Uint8Array(0);
const OKM_BITS = 80 * 8;

function entryKeys(okm: Uint8Array): EntryKeys {
  return { aesKey: okm.subarray(0, 32), macKey: okm.subarray(32, 64), iv: okm.subarray(64, 80), wipe: () => okm.fill(0) };
}

function checkSharedSecret(sharedSecret: Uint8Array): Uint8Array {
  return expectBytes(sharedSecret, 'X25519 shared secret', 32);
}

// HKDF-Extract is HMAC keyed with the salt (RFC 5869 §2.2: PRK = HMAC-Hash(salt, IKM)). The salt
// is a public constant, so its keyed HMAC state is computed once and cloned for every entry.
const HKDF_EXTRACT = hmac.create(sha256, HKDF_SALT);

/** HKDF-SHA-256(shared secret, salt, info "") → 80 bytes, synchronously in JS. */
export function deriveEntryKeys(sharedSecret: Uint8Array): EntryKeys {
  const prk = HKDF_EXTRACT.clone().update(checkSharedSecret(sharedSecret)).digest();
  const okm = expand(sha256, prk, EMPTY, 80); // RFC 5869 §2.3
  prk.fill(0);
  return entryKeys(okm);
}

async function deriveEntryKeysWeb(sharedSecret: Uint8Array): Promise<EntryKeys> {
  const ikm = await crypto.subtle.importKey('raw', toBufferSource(checkSharedSecret(sharedSecret)), 'HKDF', false, ['deriveBits']);
  const params = { name: 'HKDF', hash: 'SHA-256', salt: HKDF_SALT, info: EMPTY };
  return entryKeys(new Uint8Array(await crypto.subtle.deriveBits(params, ikm, OKM_BITS)));
}

const SUITES: Record<SymmetricImplementation, SymmetricSuite> = {
  js: {
    implementation: 'js',
    deriveEntryKeys: async (sharedSecret) => deriveEntryKeys(sharedSecret),
    encrypt: async (keys, plaintext) => aesCbcEncrypt(keys.aesKey, keys.iv, plaintext),
    decrypt: async (keys, ciphertext, what) => aesCbcDecrypt(keys.aesKey, keys.iv, ciphertext, what),
  },
  webcrypto: {
    implementation: 'webcrypto',
    deriveEntryKeys: deriveEntryKeysWeb,
    encrypt: (keys, plaintext) => webAesCbcEncrypt(keys.aesKey, keys.iv, plaintext),
    decrypt: (keys, ciphertext, what) => webAesCbcDecrypt(keys.aesKey, keys.iv, ciphertext, what),
  },
};

/** What the default depends on: whether this is Node (whose WebCrypto calls are costly). */
export interface Runtime { process?: { versions?: { node?: unknown } } }

/** 'js' on Node, 'webcrypto' elsewhere (see the top of this file for the measurements). */
export function defaultSymmetric(runtime: Runtime = globalThis as Runtime): SymmetricImplementation {
  return typeof runtime.process?.versions?.node === 'string' ? 'js' : 'webcrypto';
}

/** The implementation asked for, else the platform's default. */
export function chooseSymmetric(requested?: SymmetricImplementation): SymmetricSuite {
  const implementation = requested ?? defaultSymmetric();
  if (implementation !== 'js' && implementation !== 'webcrypto') {
    throw new CoreError('algorithm', `unknown symmetric implementation ${JSON.stringify(implementation)}`);
  }
  return SUITES[implementation];
}
