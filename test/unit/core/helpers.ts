/** Shared test helpers for the core: hex, error kinds, the vectors, both X25519 implementations. */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CoreError, type CoreErrorKind } from '../../../src/core/index.ts';

export const X25519_IMPLEMENTATIONS = ['native', 'noble'] as const;

export function hex(text: string): Uint8Array {
  if (text.length % 2 !== 0) throw new Error(`odd hex length: ${text}`);
  return Uint8Array.from(text.match(/../g) ?? [], (b) => parseInt(b, 16));
}

export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * Runs `run` and returns the kind of the CoreError it throws (or 'no error'). Anything that is not
 * a CoreError is rethrown, so a TypeError never passes for a handled bad input.
 */
export async function kindOf(run: () => unknown): Promise<CoreErrorKind | 'no error'> {
  try {
    await run();
    return 'no error';
  } catch (error) {
    if (!(error instanceof CoreError)) throw error;
    if (error.message.length < 10) throw new Error(`CoreError ${error.kind} has no useful message`);
    return error.kind;
  }
}

/** The CoreError `run` throws (fails the test when it throws nothing or something else). */
export async function errorOf(run: () => unknown): Promise<CoreError> {
  try {
    await run();
  } catch (error) {
    if (error instanceof CoreError) return error;
    throw error;
  }
  throw new Error('expected a CoreError, nothing was thrown');
}

const vectorDir = resolve(import.meta.dirname, '../../vectors');

/** A vector file from test/vectors (copied from the shared reference; see its "about"). */
export function vectors<T = any>(name: string): T {
  return JSON.parse(readFileSync(join(vectorDir, name), 'utf8')) as T;
}
