/**
 * Matrix canonical JSON (spec appendix "Canonical JSON"): object keys sorted by code point, no
 * insignificant whitespace, UTF-8, shortest escapes, and integers only in [-(2^53)+1, 2^53-1].
 * The bytes signatures cover.
 */
import { CoreError } from './errors.ts';

/** Orders strings by Unicode code point (= UTF-8 byte order), which differs from UTF-16 order. */
function compareCodePoints(a: string, b: string): number {
  const left = Array.from(a), right = Array.from(b);
  for (let i = 0; i < Math.min(left.length, right.length); i++) {
    const d = left[i]!.codePointAt(0)! - right[i]!.codePointAt(0)!;
    if (d !== 0) return d;
  }
  return left.length - right.length;
}

function write(value: unknown, path: string): string {
  if (value === null || typeof value === 'boolean') return String(value);
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) {
      throw new CoreError('json', `canonical JSON allows only integers in ±(2^53 - 1); ${path} is ${String(value)}`);
    }
    return String(value === 0 ? 0 : value); // -0 → "0"
  }
  if (Array.isArray(value)) return `[${value.map((item, i) => write(item, `${path}[${i}]`)).join(',')}]`;
  if (typeof value === 'object') {
    const members = Object.keys(value)
      .filter((key) => (value as Record<string, unknown>)[key] !== undefined)
      .sort(compareCodePoints)
      .map((key) => `${JSON.stringify(key)}:${write((value as Record<string, unknown>)[key], `${path}[${JSON.stringify(key)}]`)}`);
    return `{${members.join(',')}}`;
  }
  throw new CoreError('json', `${path} is a ${typeof value}, which JSON cannot hold`);
}

/** The canonical JSON text of `value` (encode it as UTF-8 to sign or verify). */
export function canonicalJson(value: unknown): string {
  return write(value, 'the value');
}
