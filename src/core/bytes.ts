/** Small byte helpers shared by the algorithm files: argument checks, UTF-8, constant-time compare. */
import { CoreError } from './errors.ts';

/** Boundary assert: `value` must be a Uint8Array (of `length` bytes when given). */
export function expectBytes(value: unknown, name: string, length?: number): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new CoreError('field', `${name} must be a Uint8Array`);
  if (length !== undefined && value.length !== length) {
    throw new CoreError('length', `${name} must be ${length} bytes, got ${value.length}`);
  }
  return value;
}

/** Boundary assert: `value` must be a string. */
export function expectString(value: unknown, name: string): string {
  if (typeof value !== 'string') throw new CoreError('field', `${name} must be a string`);
  return value;
}

/** True for a plain JSON object (not null, not an array). */
export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const encoder = new TextEncoder();
// fatal: a decrypted payload that is not UTF-8 is an error, never silently replaced by U+FFFD.
const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function utf8Encode(text: string): Uint8Array {
  return encoder.encode(text);
}

/** Decodes UTF-8 strictly; `what` names the payload in the error message. */
export function utf8Decode(bytes: Uint8Array, what: string): string {
  try {
    return decoder.decode(bytes);
  } catch (cause) {
    throw new CoreError('utf8', `${what} is not valid UTF-8 text`, { cause });
  }
}

/**
 * Constant-time equality: the running time depends only on the lengths, never on where the first
 * difference is, so a MAC check leaks nothing about the expected tag.
 */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

export function isAllZero(bytes: Uint8Array): boolean {
  let acc = 0;
  for (let i = 0; i < bytes.length; i++) acc |= bytes[i]!;
  return acc === 0;
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

export function readUint32BE(bytes: Uint8Array, offset: number): number {
  return ((bytes[offset]! << 24) | (bytes[offset + 1]! << 16) | (bytes[offset + 2]! << 8) | bytes[offset + 3]!) >>> 0;
}

export function writeUint32BE(value: number): Uint8Array {
  return new Uint8Array([value >>> 24, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff]);
}

/** Narrows to the BufferSource type WebCrypto takes; copies only a view of a SharedArrayBuffer. */
export function toBufferSource(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return bytes.buffer instanceof ArrayBuffer ? (bytes as Uint8Array<ArrayBuffer>) : new Uint8Array(bytes);
}
