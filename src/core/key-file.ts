/**
 * Megolm key-export files (spec "Key exports", reference §6.2, Element's MegolmExportEncryption):
 *   body = 0x01 ‖ salt (16) ‖ IV (16) ‖ rounds (u32 BE) ‖ AES-256-CTR(JSON) ‖ HMAC-SHA-256 (32)
 * with AES key ‖ HMAC key = PBKDF2-HMAC-SHA-512(passphrase, salt, rounds, 512 bits), armoured as
 * base64 between BEGIN/END lines.
 */
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { aesCtr64, randomCtrIv } from './aes-ctr.ts';
import { decodeBase64, encodeBase64 } from './base64.ts';
import { concatBytes, equalBytes, expectBytes, readUint32BE, toBufferSource, utf8Decode, utf8Encode, writeUint32BE } from './bytes.ts';
import { CoreError } from './errors.ts';
import { checkIterations, pbkdf2Sha512 } from './passphrase.ts';

const HEADER = '-----BEGIN MEGOLM SESSION DATA-----';
const TRAILER = '-----END MEGOLM SESSION DATA-----';
const VERSION = 0x01;
const SALT_LENGTH = 16;
const IV_LENGTH = 16;
const HMAC_LENGTH = 32;
const CIPHERTEXT_OFFSET = 1 + SALT_LENGTH + IV_LENGTH + 4; // 37
const MIN_LENGTH = CIPHERTEXT_OFFSET + HMAC_LENGTH; // 69: an empty ciphertext
/** Element Web's default; the spec says "should be at least 100,000". */
export const DEFAULT_KEY_FILE_ROUNDS = 500_000;
/** Element base64s 96-byte chunks: 128-character lines, only the last one padded. */
const LINE_BYTES = 96;

export interface KeyFileOptions {
  /** Pins salt and IV (tests only); default: random, IV with bit 63 cleared. */
  salt?: Uint8Array;
  iv?: Uint8Array;
}

async function deriveFileKeys(passphrase: string, salt: Uint8Array, rounds: number): Promise<{ aesKey: Uint8Array; hmacKey: CryptoKey }> {
  if (typeof passphrase !== 'string') throw new CoreError('field', 'the passphrase must be a string');
  const keys = await pbkdf2Sha512(utf8Encode(passphrase), salt, rounds, 512);
  // WebCrypto HMAC: a file can be megabytes, native code is the fastest place to hash it.
  const hmacKey = await crypto.subtle.importKey('raw', toBufferSource(keys.subarray(32, 64)), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  return { aesKey: keys.subarray(0, 32), hmacKey };
}

/** The same keys as bytes: the HMAC of a file read in pieces is computed as it comes. */
async function deriveRawFileKeys(passphrase: string, salt: Uint8Array, rounds: number): Promise<{ aesKey: Uint8Array; hmacKey: Uint8Array }> {
  const keys = await pbkdf2Sha512(utf8Encode(passphrase), salt, rounds, 512);
  return { aesKey: keys.subarray(0, 32), hmacKey: keys.subarray(32, 64) };
}

async function sign(hmacKey: CryptoKey, data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.sign('HMAC', hmacKey, toBufferSource(data)));
}

/**
 * Encrypts raw bytes into a key file. `encryptKeyFile` is the text front; this one is exported for
 * tests that need a plaintext no string can hold (invalid UTF-8). Not in index.ts.
 */
export async function sealKeyFile(plaintext: Uint8Array, passphrase: string, rounds = DEFAULT_KEY_FILE_ROUNDS, options: KeyFileOptions = {}): Promise<string> {
  expectBytes(plaintext, 'plaintext');
  checkIterations(rounds, 'the key-file round count');
  const salt = options.salt === undefined ? randomBytes(SALT_LENGTH) : expectBytes(options.salt, 'salt', SALT_LENGTH);
  const iv = options.iv === undefined ? randomCtrIv() : expectBytes(options.iv, 'iv', IV_LENGTH);
  const { aesKey, hmacKey } = await deriveFileKeys(passphrase, salt, rounds);
  const ciphertext = await aesCtr64(aesKey, iv, plaintext);
  const signed = concatBytes(new Uint8Array([VERSION]), salt, iv, writeUint32BE(rounds), ciphertext);
  const body = concatBytes(signed, await sign(hmacKey, signed));
  const lines: string[] = [HEADER];
  for (let i = 0; i < body.length; i += LINE_BYTES) lines.push(encodeBase64(body.subarray(i, i + LINE_BYTES), true));
  lines.push(TRAILER, '');
  return lines.join('\n');
}

/** Writes a key file the way Element does (default 500,000 rounds; any 1..10,000,000 accepted). */
export async function encryptKeyFile(plaintext: string, passphrase: string, rounds = DEFAULT_KEY_FILE_ROUNDS, options: KeyFileOptions = {}): Promise<string> {
  if (typeof plaintext !== 'string') throw new CoreError('field', 'the key-file plaintext must be a string');
  return sealKeyFile(utf8Encode(plaintext), passphrase, rounds, options);
}

/**
 * The armoured body's bytes, decoded as the text comes: every line strictly between header and
 * trailer, whitespace removed, base64 padded or not (Element pads per line, rust-sdk writes one
 * unpadded text cut into 71-character lines; CRLF is fine). Lines are one base64 text cut anywhere;
 * a line that ends in `=` ends a text of its own (a writer that padded each line). Text before the
 * header and after the trailer is ignored.
 */
async function* armouredBody(text: AsyncIterable<string>): AsyncGenerator<Uint8Array> {
  type Where = 'before' | 'body' | 'after';
  let state = 'before' as Where; // moved by line(), a closure
  let partial = '';
  let carry = '';
  const out: Uint8Array[] = [];
  // Lines gather in `carry` and are decoded once per piece of text (or when a line ends in `=`).
  const feed = (chars: string, lineEnds: boolean): void => {
    carry += chars;
    // Asks the line, not `carry`: a string grown by += is a rope that endsWith would flatten each time.
    if (lineEnds && chars.endsWith('=')) {
      out.push(decodeBase64(carry, 'a key-file line'));
      carry = '';
    }
  };
  const flush = (): void => {
    const whole = carry.length - (carry.length % 4);
    if (whole > 0) {
      out.push(decodeBase64(carry.slice(0, whole), 'the key file'));
      carry = carry.slice(whole);
    }
  };
  const line = (raw: string): void => {
    const trimmed = raw.trim();
    if (state === 'before') {
      if (trimmed === HEADER) state = 'body';
    } else if (state === 'body') {
      if (trimmed === TRAILER) state = 'after';
      else feed(trimmed.replace(/\s+/g, ''), true);
    }
  };
  for await (const chunk of text) {
    if (typeof chunk !== 'string') throw new CoreError('field', 'the key file must be text');
    partial += chunk;
    const lines = partial.split(/\r\n|\r|\n/);
    partial = lines.pop()!;
    for (const l of lines) {
      line(l);
      if (state === 'after') break;
    }
    if (state === 'after') break;
    // One very long line (a writer that never wraps): what is surely base64 is decoded already.
    if (state === 'body' && partial.length > 1 << 16 && !partial.trimStart().startsWith('-')) {
      feed(partial.replace(/\s+/g, ''), false);
      partial = '';
    }
    flush();
    yield* out.splice(0);
  }
  if (state !== 'after') line(partial);
  if (state === 'before') throw new CoreError('header', `not a key file: the line "${HEADER}" is missing`);
  if (state === 'body') throw new CoreError('trailer', `the key file is cut short: the line "${TRAILER}" is missing`);
  if (carry !== '') out.push(decodeBase64(carry, 'the key file'));
  yield* out.splice(0);
}

/** The armoured file's text from its start, in pieces: called once for each pass over the file. */
export type KeyFileText = () => AsyncIterable<string>;

interface Scan { length: number; tag: Uint8Array }

/**
 * One pass over the body: yields the signed bytes (version to ciphertext's end) in order, the first
 * yield holding at least the 37-byte header, which `onHeader` sees first; the 32-byte HMAC that ends
 * the body is held back and left in `scan.tag`, with the body's length.
 */
async function* signedBytes(text: AsyncIterable<string>, onHeader: (header: Uint8Array) => Promise<void>, scan: Scan): AsyncGenerator<Uint8Array> {
  let held: Uint8Array = new Uint8Array(0);
  let head: Uint8Array | null = new Uint8Array(0);
  for await (const bytes of armouredBody(text)) {
    if (bytes.length === 0) continue;
    if (scan.length === 0 && bytes[0] !== VERSION) throw new CoreError('version', `unsupported key-file version ${bytes[0]!}; only version 1 exists`);
    scan.length += bytes.length;
    const data = concatBytes(held, bytes);
    if (data.length <= HMAC_LENGTH) {
      held = data;
      continue;
    }
    const signed = data.subarray(0, data.length - HMAC_LENGTH);
    held = data.slice(data.length - HMAC_LENGTH);
    if (head) {
      head = concatBytes(head, signed);
      if (head.length < CIPHERTEXT_OFFSET) continue;
      await onHeader(head.subarray(0, CIPHERTEXT_OFFSET));
      yield head;
      head = null;
    } else {
      yield signed;
    }
  }
  if (scan.length === 0) throw new CoreError('length', 'the key file is empty');
  if (scan.length < MIN_LENGTH) throw new CoreError('length', `the key file is too short: ${scan.length} bytes, at least ${MIN_LENGTH} needed`);
  scan.tag = held;
}

/** A key file whose HMAC matched: its plaintext, decrypted a piece at a time as it is read. */
export interface OpenedKeyFile {
  /** The plaintext's length in bytes. */
  readonly byteLength: number;
  /**
   * The plaintext in pieces of `size` bytes (a multiple of 16; the last piece may be shorter), each
   * decrypted when asked for: a reader that handles one piece before asking for the next never
   * holds the whole plaintext.
   */
  pieces(size?: number): AsyncGenerator<Uint8Array>;
}

/** Plaintext bytes per piece, by default. */
export const KEY_FILE_PIECE_BYTES = 1 << 20;

/**
 * The counter block `blocks` AES blocks after `iv`: AES-CTR with a 64-bit counter (WebCrypto's
 * `length: 64`, as Element writes files) increments the low 8 bytes, wrapping within them.
 */
function counterAfter(iv: Uint8Array, blocks: number): Uint8Array {
  const counter = iv.slice();
  const view = new DataView(counter.buffer, counter.byteOffset, counter.byteLength);
  view.setBigUint64(8, BigInt.asUintN(64, view.getBigUint64(8) + BigInt(blocks)));
  return counter;
}

/**
 * Checks a key file's header, version, round count and HMAC (before decrypting anything, reference
 * §6.2), reading the file once as it comes; a wrong passphrase is kind `hmac`. Accepts any round
 * count ≥ 1. `pieces()` then reads it a second time, decrypting as it goes, and checks that the
 * second reading is the file the first one verified. Neither pass holds the file, or its plaintext,
 * whole: a 100,000-key file is ≈ 80 MB of text.
 */
export async function openKeyFileStream(text: KeyFileText, passphrase: string): Promise<OpenedKeyFile> {
  if (typeof passphrase !== 'string') throw new CoreError('field', 'the passphrase must be a string');
  let header: Uint8Array | null = null;
  let keys: { aesKey: Uint8Array; hmacKey: Uint8Array } | null = null;
  const first: Scan = { length: 0, tag: new Uint8Array(0) };
  let mac: ReturnType<typeof hmac.create> | null = null;
  for await (const signed of signedBytes(text(), async (h) => {
    const rounds = readUint32BE(h, 1 + SALT_LENGTH + IV_LENGTH);
    checkIterations(rounds, 'the key file\'s round count');
    header = h.slice();
    keys = await deriveRawFileKeys(passphrase, h.subarray(1, 1 + SALT_LENGTH), rounds);
    mac = hmac.create(sha256, keys.hmacKey);
  }, first)) {
    mac!.update(signed);
  }
  if (!mac || !keys || !header) throw new CoreError('length', `the key file is too short: ${first.length} bytes, at least ${MIN_LENGTH} needed`);
  const tag = (mac as ReturnType<typeof hmac.create>).digest();
  if (!equalBytes(tag, first.tag)) {
    throw new CoreError('hmac', 'the key file\'s HMAC does not match: the passphrase is probably wrong (or the file is damaged)');
  }
  const { aesKey, hmacKey } = keys as { aesKey: Uint8Array; hmacKey: Uint8Array };
  const verified = header as Uint8Array;
  const iv = verified.subarray(1 + SALT_LENGTH, 1 + SALT_LENGTH + IV_LENGTH);
  const changed = (): CoreError => new CoreError('hmac', 'the key file changed while it was being read: it no longer matches the HMAC checked first');
  return {
    byteLength: first.length - MIN_LENGTH,
    async *pieces(size = KEY_FILE_PIECE_BYTES) {
      if (!Number.isSafeInteger(size) || size <= 0 || size % 16 !== 0) throw new CoreError('length', `a key file is read in pieces of whole AES blocks, not ${size} bytes`);
      const again: Scan = { length: 0, tag: new Uint8Array(0) };
      const check = hmac.create(sha256, hmacKey);
      // Ciphertext gathers in one buffer of `size` bytes (never a list of the text's many small pieces).
      const buffer = new Uint8Array(Math.min(size, Math.max(16, first.length - MIN_LENGTH)));
      let filled = 0;
      let offset = 0; // ciphertext bytes decrypted so far
      const decrypt = async (bytes: Uint8Array): Promise<Uint8Array> => {
        const plain = await aesCtr64(aesKey, counterAfter(iv, offset / 16), bytes);
        offset += bytes.length;
        return plain;
      };
      let at = 0;
      for await (const signed of signedBytes(text(), async (h) => { if (!equalBytes(h, verified)) throw changed(); }, again)) {
        check.update(signed);
        const ciphertext = signed.subarray(Math.max(0, CIPHERTEXT_OFFSET - at));
        at += signed.length;
        for (let from = 0; from < ciphertext.length;) {
          const taken = Math.min(buffer.length - filled, ciphertext.length - from);
          buffer.set(ciphertext.subarray(from, from + taken), filled);
          filled += taken;
          from += taken;
          if (filled === buffer.length) {
            yield await decrypt(buffer);
            filled = 0;
          }
        }
      }
      if (again.length !== first.length || !equalBytes(check.digest(), first.tag) || !equalBytes(again.tag, first.tag)) throw changed();
      if (filled > 0) yield await decrypt(buffer.subarray(0, filled));
    },
  };
}

/** `openKeyFileStream` over a file already read as one string. */
export function openKeyFile(file: string, passphrase: string): Promise<OpenedKeyFile> {
  if (typeof file !== 'string') return Promise.reject(new CoreError('field', 'the key file must be text'));
  return openKeyFileStream(async function* () { yield file; }, passphrase);
}

/** Decrypts a whole key file to its text; a wrong passphrase is kind `hmac`. Accepts any round count ≥ 1. */
export async function decryptKeyFile(file: string, passphrase: string): Promise<string> {
  const opened = await openKeyFile(file, passphrase);
  const plaintext = new Uint8Array(opened.byteLength);
  let at = 0;
  // One piece: the whole ciphertext in one call.
  for await (const piece of opened.pieces(Math.max(16, Math.ceil(opened.byteLength / 16) * 16))) {
    plaintext.set(piece, at);
    at += piece.length;
  }
  return utf8Decode(plaintext, 'the decrypted key file');
}
