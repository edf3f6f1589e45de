/**
 * Megolm key-export files (spec "Key exports", reference §6.2, Element's MegolmExportEncryption):
 *   body = 0x01 ‖ salt (16) ‖ IV (16) ‖ rounds (u32 BE) ‖ AES-256-CTR(JSON) ‖ HMAC-SHA-256 (32)
 * with AES key ‖ HMAC key = PBKDF2-HMAC-SHA-512(passphrase, salt, rounds, 512 bits), armoured as
 * base64 between BEGIN/END lines.
 */
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
 * The armoured body: every line strictly between header and trailer, whitespace removed, base64
 * padded or not (Element pads per line, rust-sdk writes one unpadded line; CRLF is fine).
 */
function readBody(file: string): Uint8Array {
  if (typeof file !== 'string') throw new CoreError('field', 'the key file must be text');
  const lines = file.split(/\r\n|\r|\n/).map((line) => line.trim());
  const start = lines.indexOf(HEADER);
  if (start < 0) throw new CoreError('header', `not a key file: the line "${HEADER}" is missing`);
  const end = lines.indexOf(TRAILER, start + 1);
  if (end < 0) throw new CoreError('trailer', `the key file is cut short: the line "${TRAILER}" is missing`);
  const bodyLines = lines.slice(start + 1, end).map((line) => line.replace(/\s+/g, ''));
  // Usually the lines are one base64 text cut anywhere (rust-sdk: 71-character lines) and join
  // back together. A writer that padded each line on its own leaves `=` inside the joined text:
  // then every line is its own base64 text.
  const paddedInside = bodyLines.slice(0, -1).some((line) => line.endsWith('='));
  if (!paddedInside) return decodeBase64(bodyLines.join(''), 'the key file');
  return concatBytes(...bodyLines.map((line) => decodeBase64(line, 'a key-file line')));
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
 * §6.2); a wrong passphrase is kind `hmac`. Accepts any round count ≥ 1.
 */
export async function openKeyFile(file: string, passphrase: string): Promise<OpenedKeyFile> {
  const body = readBody(file);
  if (body.length === 0) throw new CoreError('length', 'the key file is empty');
  if (body[0] !== VERSION) throw new CoreError('version', `unsupported key-file version ${body[0]!}; only version 1 exists`);
  if (body.length < MIN_LENGTH) {
    throw new CoreError('length', `the key file is too short: ${body.length} bytes, at least ${MIN_LENGTH} needed`);
  }
  const salt = body.subarray(1, 1 + SALT_LENGTH);
  const iv = body.subarray(1 + SALT_LENGTH, 1 + SALT_LENGTH + IV_LENGTH);
  const rounds = readUint32BE(body, 1 + SALT_LENGTH + IV_LENGTH);
  checkIterations(rounds, 'the key file\'s round count');
  const signedEnd = body.length - HMAC_LENGTH;
  const { aesKey, hmacKey } = await deriveFileKeys(passphrase, salt, rounds);
  if (!equalBytes(await sign(hmacKey, body.subarray(0, signedEnd)), body.subarray(signedEnd))) {
    throw new CoreError('hmac', 'the key file\'s HMAC does not match: the passphrase is probably wrong (or the file is damaged)');
  }
  const ciphertext = body.subarray(CIPHERTEXT_OFFSET, signedEnd);
  return {
    byteLength: ciphertext.length,
    async *pieces(size = KEY_FILE_PIECE_BYTES) {
      if (!Number.isSafeInteger(size) || size <= 0 || size % 16 !== 0) throw new CoreError('length', `a key file is read in pieces of whole AES blocks, not ${size} bytes`);
      for (let at = 0; at < ciphertext.length; at += size) {
        yield await aesCtr64(aesKey, counterAfter(iv, at / 16), ciphertext.subarray(at, at + size));
      }
    },
  };
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
