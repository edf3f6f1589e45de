/**
 * The backup algorithm `m.megolm_backup.v1.curve25519-aes-sha2` (reference §2.4–2.7): X25519 with
 * an ephemeral key, HKDF-SHA-256 → AES-256-CBC key, MAC key and IV, and an 8-byte "MAC".
 *
 * X25519 goes to WebCrypto when the platform has it (x25519.ts); HKDF and AES-CBC run in JS or in
 * WebCrypto, whichever measured faster on the platform (backup-symmetric.ts); the tiny HMAC runs
 * in JS. The private key is imported once per decryptor, the backup public key once per encryptor,
 * and decryptMany batches the key agreements (DEFAULT_BATCH_SIZE). bench/decrypt.ts measures it all.
 */
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { decodeBase64, encodeBase64 } from './base64.ts';
import { chooseSymmetric, type SymmetricImplementation, type SymmetricSuite } from './backup-symmetric.ts';
import { equalBytes, expectBytes, isJsonObject, utf8Decode, utf8Encode } from './bytes.ts';
import { CoreError, isCoreError } from './errors.ts';
import type { BackedUpSessionData, EncryptedSessionData } from './types.ts';
import { BACKUP_ALGORITHM } from './types.ts';
import {
  chooseX25519,
  generateX25519Secret,
  importX25519PublicKey,
  importX25519Secret,
  type X25519Implementation,
  type X25519PublicKey,
  type X25519Secret,
} from './x25519.ts';

export interface BackupCipherOptions {
  /** Which X25519 to use; default: native when the platform has it, else noble. */
  x25519?: X25519Implementation;
  /** Which implementation does HKDF and AES-CBC; default: 'js' on Node, else 'webcrypto'. */
  symmetric?: SymmetricImplementation;
  /** Pins the ephemeral private key (tests, vector V17); never set it in production. */
  ephemeralPrivateKey?: Uint8Array;
}

/** One entry's outcome in `decryptMany`: failures are data, never fatal (DESIGN flow 3). */
export type DecryptResult =
  | { ok: true; value: BackedUpSessionData }
  | { ok: false; error: CoreError };

const MAC_LENGTH = 8;
const AES_BLOCK = 16;
const EMPTY = new Uint8Array(0);

/**
 * SPEC BUG (libolm): the MAC covers the EMPTY string, not the ciphertext. libolm's
 * `olm_pk_encrypt` handed its 8-byte MAC buffer to the generic cipher as "the output", which then
 * MACs `output[0 .. len - 8]` = nothing; every implementation has copied it since (spec v1.10+
 * warning box, MSC4048, reference §2.6). So this tag only confirms the key, it authenticates nothing.
 */
function entryMac(macKey: Uint8Array): Uint8Array {
  return hmac(sha256, macKey, EMPTY).subarray(0, MAC_LENGTH);
}

function decodeField(value: unknown, name: string): Uint8Array {
  if (typeof value !== 'string') throw new CoreError('field', `session_data.${name} must be a string`);
  return decodeBase64(value, `session_data.${name}`);
}

interface Envelope { ephemeral: Uint8Array; ciphertext: Uint8Array; mac: Uint8Array }

/** Checks the envelope: base64 everywhere, a 32-byte key, an 8-byte MAC, whole AES blocks. */
function readEnvelope(sessionData: unknown): Envelope {
  if (!isJsonObject(sessionData)) throw new CoreError('field', 'session_data must be a JSON object');
  const ephemeral = decodeField(sessionData.ephemeral, 'ephemeral');
  const ciphertext = decodeField(sessionData.ciphertext, 'ciphertext');
  const mac = decodeField(sessionData.mac, 'mac');
  if (ephemeral.length !== 32) {
    throw new CoreError('length', `session_data.ephemeral must be a 32-byte X25519 key, got ${ephemeral.length} bytes`);
  }
  if (mac.length !== MAC_LENGTH) {
    throw new CoreError('length', `session_data.mac must be ${MAC_LENGTH} bytes, got ${mac.length}`);
  }
  if (ciphertext.length === 0 || ciphertext.length % AES_BLOCK !== 0) {
    throw new CoreError('length', `session_data.ciphertext must be whole 16-byte AES blocks, got ${ciphertext.length} bytes`);
  }
  return { ephemeral, ciphertext, mac };
}

/**
 * The plaintext must be a JSON object with the spec's required members; it is returned as it was,
 * unknown members included. `forwarding_curve25519_key_chain` may be missing (reference §2.2).
 */
function parsePlaintext(plaintext: Uint8Array): BackedUpSessionData {
  let value: unknown;
  try {
    value = JSON.parse(utf8Decode(plaintext, 'the decrypted session'));
  } catch (cause) {
    throw new CoreError('json', 'the decrypted session is not JSON text', { cause });
  }
  if (!isJsonObject(value)) throw new CoreError('json', 'the decrypted session is not a JSON object');
  for (const member of ['algorithm', 'sender_key', 'session_key'] as const) {
    if (typeof value[member] !== 'string') throw new CoreError('field', `the decrypted session has no string "${member}"`);
  }
  if (!isJsonObject(value.sender_claimed_keys)) {
    throw new CoreError('field', 'the decrypted session has no "sender_claimed_keys" object');
  }
  return value as BackedUpSessionData;
}

/** Reference §2.5 steps 2–5, once X25519 is done: derive, check the MAC (constant time), decrypt, parse. */
async function openEnvelope(envelope: Envelope, sharedSecret: Uint8Array, symmetric: SymmetricSuite): Promise<BackedUpSessionData> {
  const keys = await symmetric.deriveEntryKeys(sharedSecret);
  sharedSecret.fill(0);
  try {
    if (!equalBytes(entryMac(keys.macKey), envelope.mac)) {
      throw new CoreError('mac', 'the session MAC does not match: it was encrypted for a different backup key, or corrupted');
    }
    // A padding failure here means a corrupted ciphertext (the MAC, covering nothing, passed).
    return parsePlaintext(await symmetric.decrypt(keys, envelope.ciphertext, 'the session ciphertext'));
  } finally {
    keys.wipe();
  }
}

/** What one decryptor holds: the private key, imported once, and the symmetric implementation. */
interface Opener {
  secret: X25519Secret;
  symmetric: SymmetricSuite;
}

/** Reference §2.5: agree, then open. */
async function decryptEntry(opener: Opener, sessionData: EncryptedSessionData): Promise<BackedUpSessionData> {
  const envelope = readEnvelope(sessionData);
  return openEnvelope(envelope, await opener.secret.sharedSecret(envelope.ephemeral), opener.symmetric);
}

/** A backup public key made ready for many encryptions: implementations chosen, the key imported. */
interface SealTarget {
  implementation: X25519Implementation;
  publicKey: X25519PublicKey;
  symmetric: SymmetricSuite;
}

async function prepareTarget(publicKey: Uint8Array, options: BackupCipherOptions): Promise<SealTarget> {
  const symmetric = chooseSymmetric(options.symmetric);
  const implementation = await chooseX25519(options.x25519);
  return { implementation, publicKey: await importX25519PublicKey(publicKey, implementation), symmetric };
}

/** Reference §2.4: a fresh ephemeral key (or the pinned one), agree, derive, encrypt, MAC. */
async function seal(target: SealTarget, plaintext: Uint8Array, ephemeralPrivateKey: Uint8Array | undefined): Promise<EncryptedSessionData> {
  const ephemeral = ephemeralPrivateKey === undefined
    ? await generateX25519Secret(target.implementation)
    : await importX25519Secret(expectBytes(ephemeralPrivateKey, 'ephemeralPrivateKey', 32), target.implementation);
  const sharedSecret = await ephemeral.sharedSecret(target.publicKey);
  const keys = await target.symmetric.deriveEntryKeys(sharedSecret);
  sharedSecret.fill(0);
  try {
    return {
      ephemeral: encodeBase64(ephemeral.publicKey),
      ciphertext: encodeBase64(await target.symmetric.encrypt(keys, plaintext)),
      mac: encodeBase64(entryMac(keys.macKey)),
    };
  } finally {
    keys.wipe();
  }
}

/**
 * Encrypts raw plaintext bytes to a backup public key (reference §2.4). Exported for tests that
 * need envelopes a JSON encoder cannot make (bad padding, non-JSON plaintext); not in index.ts.
 */
export async function sealSessionBytes(publicKey: Uint8Array, plaintext: Uint8Array, options: BackupCipherOptions = {}): Promise<EncryptedSessionData> {
  expectBytes(publicKey, 'backup public key', 32);
  return seal(await prepareTarget(publicKey, options), expectBytes(plaintext, 'plaintext'), options.ephemeralPrivateKey);
}

function decodeBackupPublicKey(publicKey: string): Uint8Array {
  if (typeof publicKey !== 'string') throw new CoreError('field', 'the backup public key must be a base64 string');
  const bytes = decodeBase64(publicKey, 'the backup public key');
  if (bytes.length !== 32) throw new CoreError('length', `the backup public key must be 32 bytes, got ${bytes.length}`);
  return bytes;
}

function serialize(data: BackedUpSessionData): Uint8Array {
  if (!isJsonObject(data)) throw new CoreError('field', 'the session to back up must be a JSON object');
  try {
    return utf8Encode(JSON.stringify(data));
  } catch (cause) {
    throw new CoreError('json', 'the session to back up cannot be written as JSON', { cause });
  }
}

/** Caches one prepared target; a failed preparation is dropped, never kept for the next caller. */
class TargetSlot {
  #cached: { key: string; target: Promise<SealTarget> } | undefined;

  get(key: string, prepare: () => Promise<SealTarget>): Promise<SealTarget> {
    if (this.#cached?.key === key) return this.#cached.target;
    const entry = { key, target: prepare() };
    this.#cached = entry;
    entry.target.catch(() => {
      if (this.#cached === entry) this.#cached = undefined;
    });
    return entry.target;
  }
}

// The upload path calls encryptSessionData for every session, and always to the one backup key:
// remembering the last key keeps it imported once instead of once per session (an extra WebCrypto
// call each). Public data only.
const recentTarget = new TargetSlot();

/** Encrypts one session's data to the backup public key (unpadded base64). */
export async function encryptSessionData(publicKey: string, data: BackedUpSessionData, options: BackupCipherOptions = {}): Promise<EncryptedSessionData> {
  const keyBytes = decodeBackupPublicKey(publicKey);
  const plaintext = serialize(data);
  const slot = `${options.x25519 ?? 'default'} ${options.symmetric ?? 'default'} ${encodeBase64(keyBytes)}`;
  const target = recentTarget.get(slot, () => prepareTarget(keyBytes, options));
  return seal(await target, plaintext, options.ephemeralPrivateKey);
}

/** The backup public key (unpadded base64) for a backup private key. */
export async function backupPublicKey(privateKey: Uint8Array, options: BackupCipherOptions = {}): Promise<string> {
  const secret = await importX25519Secret(expectBytes(privateKey, 'backup private key', 32), await chooseX25519(options.x25519));
  return encodeBase64(secret.publicKey);
}

/**
 * Whether a private key belongs to a backup's `auth_data.public_key` (compared as bytes, so
 * padded and unpadded spellings agree — reference §0). The trust rule of DESIGN "Security model".
 */
export async function backupKeyMatches(privateKey: Uint8Array, publicKey: string, options: BackupCipherOptions = {}): Promise<boolean> {
  const expected = decodeBackupPublicKey(publicKey);
  const secret = await importX25519Secret(expectBytes(privateKey, 'backup private key', 32), await chooseX25519(options.x25519));
  return equalBytes(secret.publicKey, expected);
}

/**
 * decryptMany's schedule, chosen by measurement (bench/decrypt.ts; Node 20 on 2 cores): the key
 * agreements of a batch of entries start together, and the next batch starts before this one is
 * finished, so WebCrypto's threads compute X25519 while the main thread runs HKDF, AES-CBC and
 * JSON.parse. In Node, independent "lanes" (each entry awaiting its own agreement, 16 in flight)
 * measured ~25% slower: every completion interleaved WebCrypto bookkeeping with the rest. Batch
 * sizes 16–256 measure alike; Chromium is indifferent to the schedule.
 */
export const DEFAULT_BATCH_SIZE = 64;

export interface DecryptManyOptions {
  /** Entries whose key agreements start together; two batches are in flight. Default 64. */
  batchSize?: number;
}

/** One entry after its key agreement: ready to open, or already failed. */
type Agreed = { envelope: Envelope; sharedSecret: Uint8Array } | { error: unknown };

/** Reads the envelopes of list[start..end) and starts their key agreements; never rejects. */
function agreeBatch(secret: X25519Secret, list: readonly EncryptedSessionData[], start: number, end: number): Promise<Agreed[]> {
  const batch: Array<Agreed | Promise<Agreed>> = [];
  for (let i = start; i < end; i++) {
    let envelope: Envelope;
    try {
      envelope = readEnvelope(list[i]);
    } catch (error) {
      batch.push({ error });
      continue;
    }
    batch.push(secret.sharedSecret(envelope.ephemeral).then((sharedSecret) => ({ envelope, sharedSecret }), (error: unknown) => ({ error })));
  }
  return Promise.all(batch);
}

async function settle(agreed: Agreed, symmetric: SymmetricSuite): Promise<DecryptResult> {
  try {
    if ('error' in agreed) throw agreed.error;
    return { ok: true, value: await openEnvelope(agreed.envelope, agreed.sharedSecret, symmetric) };
  } catch (error) {
    if (!isCoreError(error)) throw error; // a bug, not a bad entry: let it surface
    return { ok: false, error };
  }
}

function batchSizeOf(options: DecryptManyOptions): number {
  const size = options.batchSize ?? DEFAULT_BATCH_SIZE;
  if (!Number.isSafeInteger(size) || size < 1) {
    throw new CoreError('field', `decryptMany batchSize must be a positive integer, got ${String(size)}`);
  }
  return size;
}

/** Decrypts backup entries for one private key. Shows only its public key when printed. */
export class BackupDecryptor {
  readonly algorithm = BACKUP_ALGORITHM;
  readonly publicKey: string;
  readonly implementation: X25519Implementation;
  readonly symmetric: SymmetricImplementation;
  readonly #opener: Opener;

  private constructor(opener: Opener) {
    this.#opener = opener;
    this.publicKey = encodeBase64(opener.secret.publicKey);
    this.implementation = opener.secret.implementation;
    this.symmetric = opener.symmetric.implementation;
  }

  /** Imports the private key once; every decrypt reuses it. */
  static async create(privateKey: Uint8Array, options: BackupCipherOptions = {}): Promise<BackupDecryptor> {
    expectBytes(privateKey, 'backup private key', 32);
    const symmetric = chooseSymmetric(options.symmetric);
    const implementation = await chooseX25519(options.x25519);
    return new BackupDecryptor({ secret: await importX25519Secret(privateKey, implementation), symmetric });
  }

  /** Decrypts one `session_data`; throws CoreError kinds field/base64/length/non-contributory/mac/padding/json/utf8. */
  decrypt(sessionData: EncryptedSessionData): Promise<BackedUpSessionData> {
    return decryptEntry(this.#opener, sessionData);
  }

  /**
   * Decrypts many entries, their key agreements batched (see DEFAULT_BATCH_SIZE); results are in
   * input order, failures included as data.
   */
  async decryptMany(list: readonly EncryptedSessionData[], options: DecryptManyOptions = {}): Promise<DecryptResult[]> {
    const size = batchSizeOf(options);
    const results = new Array<DecryptResult>(list.length);
    const { secret, symmetric } = this.#opener;
    const batchAt = (start: number): Promise<Agreed[]> | undefined =>
      start < list.length ? agreeBatch(secret, list, start, Math.min(start + size, list.length)) : undefined;
    let next = batchAt(0);
    for (let start = 0; next !== undefined; start += size) {
      const current = next;
      next = batchAt(start + size); // started before this batch is finished: X25519 overlaps the rest
      const settled = await Promise.all((await current).map((agreed) => settle(agreed, symmetric)));
      for (let j = 0; j < settled.length; j++) results[start + j] = settled[j]!;
    }
    return results;
  }

  toJSON(): { algorithm: string; publicKey: string } {
    return { algorithm: this.algorithm, publicKey: this.publicKey };
  }

  toString(): string {
    return `BackupDecryptor(${this.publicKey})`;
  }
}

/** A decryptor for a backup private key (32 bytes), imported once. */
export function createBackupDecryptor(privateKey: Uint8Array, options: BackupCipherOptions = {}): Promise<BackupDecryptor> {
  return BackupDecryptor.create(privateKey, options);
}

/** Encrypts many sessions to one backup public key, decoded and imported once (the upload path). */
export class BackupEncryptor {
  readonly algorithm = BACKUP_ALGORITHM;
  readonly publicKey: string;
  readonly #publicKey: Uint8Array;
  readonly #options: BackupCipherOptions;
  readonly #target = new TargetSlot();

  constructor(publicKey: string, options: BackupCipherOptions = {}) {
    this.#publicKey = decodeBackupPublicKey(publicKey);
    this.publicKey = encodeBase64(this.#publicKey);
    this.#options = { ...options };
  }

  async encrypt(data: BackedUpSessionData): Promise<EncryptedSessionData> {
    const plaintext = serialize(data);
    const target = await this.#target.get('', () => prepareTarget(this.#publicKey, this.#options));
    return seal(target, plaintext, this.#options.ephemeralPrivateKey);
  }
}
