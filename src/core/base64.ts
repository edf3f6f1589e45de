/**
 * Standard base64 (RFC 4648 §4, `+` and `/`). Matrix writes it unpadded, but some writers pad
 * (Element's secret storage, reference §0), so decoding accepts both; anything else — the URL-safe
 * alphabet, whitespace, misplaced `=`, non-zero trailing bits — is refused with kind `base64`.
 *
 * Hand-written because it sits on the restore hot path (three fields per backup entry): a table
 * decoder that reads four characters per step measured faster than @scure/base's
 * general coder here (about 1.8× on a 770-character ciphertext; bench/decrypt.ts prints both).
 */
import { CoreError } from './errors.ts';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const PAD = 61; // '='

/** char code → 6-bit value, or 64 for "not in the alphabet" (bit 6 marks invalid). */
const DECODE = new Uint8Array(128).fill(64);
for (let i = 0; i < ALPHABET.length; i++) DECODE[ALPHABET.charCodeAt(i)] = i;

function invalid(what: string, why: string): CoreError {
  return new CoreError('base64', `${what} is not valid base64: ${why}`);
}

/** Decodes padded or unpadded standard base64; `what` names the value in error messages. */
export function decodeBase64(text: string, what = 'value'): Uint8Array {
  if (typeof text !== 'string') throw new CoreError('field', `${what} must be a base64 string`);
  let end = text.length;
  if (end > 0 && text.charCodeAt(end - 1) === PAD) {
    // RFC 4648 §3.2: padding brings the length to a multiple of 4, with at most two `=`.
    if (end % 4 !== 0) throw invalid(what, 'padding does not complete a 4-character group');
    end--;
    if (text.charCodeAt(end - 1) === PAD) end--;
  }
  const rest = end % 4;
  if (rest === 1) throw invalid(what, 'its length is impossible for base64');
  const out = new Uint8Array((end * 3) >>> 2);
  const full = end - rest;
  let o = 0;
  for (let i = 0; i < full; i += 4) {
    const c0 = text.charCodeAt(i), c1 = text.charCodeAt(i + 1);
    const c2 = text.charCodeAt(i + 2), c3 = text.charCodeAt(i + 3);
    if ((c0 | c1 | c2 | c3) > 127) throw invalid(what, 'it contains a character outside the alphabet');
    const a = DECODE[c0]!, b = DECODE[c1]!, c = DECODE[c2]!, d = DECODE[c3]!;
    if ((a | b | c | d) & 64) throw invalid(what, 'it contains a character outside the alphabet');
    const v = (a << 18) | (b << 12) | (c << 6) | d;
    out[o++] = v >>> 16;
    out[o++] = (v >>> 8) & 0xff;
    out[o++] = v & 0xff;
  }
  if (rest > 0) {
    const c0 = text.charCodeAt(full), c1 = text.charCodeAt(full + 1);
    const c2 = rest === 3 ? text.charCodeAt(full + 2) : 65; // 'A' = 0 stands in for the missing char
    if ((c0 | c1 | c2) > 127) throw invalid(what, 'it contains a character outside the alphabet');
    const a = DECODE[c0]!, b = DECODE[c1]!, c = DECODE[c2]!;
    if ((a | b | c) & 64) throw invalid(what, 'it contains a character outside the alphabet');
    const v = (a << 18) | (b << 12) | (c << 6);
    // RFC 4648 §3.5: the unused low bits of the last character must be zero, so that every byte
    // string has exactly one encoding (comparing encodings then equals comparing bytes).
    if ((rest === 2 ? v & 0xffff : v & 0xff) !== 0) throw invalid(what, 'its last character has non-zero unused bits');
    out[o++] = v >>> 16;
    if (rest === 3) out[o++] = (v >>> 8) & 0xff;
  }
  return out;
}

/** Encodes standard base64, unpadded unless `padded` (the spec's "unpadded base64", appendix). */
export function encodeBase64(bytes: Uint8Array, padded = false): string {
  const parts: string[] = [];
  let chunk = '';
  const full = bytes.length - (bytes.length % 3);
  for (let i = 0; i < full; i += 3) {
    const v = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    chunk += ALPHABET[v >>> 18]! + ALPHABET[(v >>> 12) & 63]! + ALPHABET[(v >>> 6) & 63]! + ALPHABET[v & 63]!;
    if (chunk.length >= 4096) {
      parts.push(chunk);
      chunk = '';
    }
  }
  const rest = bytes.length - full;
  if (rest > 0) {
    const v = (bytes[full]! << 16) | (rest === 2 ? bytes[full + 1]! << 8 : 0);
    chunk += ALPHABET[v >>> 18]! + ALPHABET[(v >>> 12) & 63]!;
    chunk += rest === 2 ? ALPHABET[(v >>> 6) & 63]! : '';
    if (padded) chunk += rest === 2 ? '=' : '==';
  }
  parts.push(chunk);
  return parts.join('');
}

/** Drops trailing `=` so padded and unpadded spellings of the same bytes compare equal. */
export function unpadBase64(text: string): string {
  return text.replace(/=+$/, '');
}
