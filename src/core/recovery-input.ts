/**
 * What the user typed into the one "Recovery key" field: a key (Security Key or backup recovery
 * key, base58 in groups of four, reference §4.1) or a phrase (Security Phrase, or the legacy
 * passphrase of an old backup, §4.2). DESIGN flow 2: a key-shaped input is checked as a key;
 * anything else is taken as a phrase. Pure, so the popup gives the same feedback while typing that
 * the worker acts on.
 */
import { type CoreError, isCoreError } from './errors.ts';
import { decodeRecoveryKey } from './recovery-key.ts';

/** Longer than any key or any phrase a person types: refused before anything else is done. */
export const MAX_RECOVERY_INPUT_LENGTH = 1024;

export type RecoveryInput =
  | { shape: 'empty' }
  | { shape: 'too-long'; length: number }
  /** A well-formed key (it may still be the wrong one). */
  | { shape: 'key'; key: Uint8Array }
  /** Looks like a key but does not decode; `error.kind` is base58/length/prefix/parity. */
  | { shape: 'bad-key'; error: CoreError; phrase: string }
  | { shape: 'phrase'; phrase: string };

const ALPHANUMERIC = /^[0-9A-Za-z]+$/;

/**
 * Key-shaped: letters and digits only (spaces aside), and either written in groups of four (as keys
 * are shown, at least three groups), one run of at least 20 characters, or starting with "Es" (every
 * recovery key does, shown as "EsXX"). "my cat eats bread" and "Es war einmal" are phrases; "EsTc LW2K 0OIl" and
 * "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2" are keys, bad ones (characters base58 lacks; too short).
 */
export function isKeyShaped(text: string): boolean {
  const groups = text.trim().split(/\s+/).filter((g) => g !== '');
  const compact = groups.join('');
  if (compact === '' || !ALPHANUMERIC.test(compact)) return false;
  const inFours = groups.length >= 3 && groups.slice(0, -1).every((g) => g.length === 4) && groups.at(-1)!.length <= 4;
  const startsLikeKey = groups.length === 1 ? compact.startsWith('Es') : groups[0]!.length === 4 && groups[0]!.startsWith('Es');
  return inFours || (groups.length === 1 && compact.length >= 20) || startsLikeKey;
}

export function classifyRecoveryInput(text: string): RecoveryInput {
  if (text.length > MAX_RECOVERY_INPUT_LENGTH) return { shape: 'too-long', length: text.length };
  const trimmed = text.trim();
  if (trimmed === '') return { shape: 'empty' };
  if (!isKeyShaped(trimmed)) return { shape: 'phrase', phrase: text };
  try {
    return { shape: 'key', key: decodeRecoveryKey(trimmed) };
  } catch (e) {
    if (!isCoreError(e)) throw e;
    return { shape: 'bad-key', error: e, phrase: text };
  }
}

/** Why a key-shaped input is not a key, in words (the decoder's kinds). */
export function describeKeyFormatError(error: CoreError): string {
  switch (error.kind) {
    case 'base58':
      return 'it contains characters a recovery key never has (0, O, I and l are not used)';
    case 'length':
      return 'it is too short or too long for a recovery key (48 characters, in groups of four)';
    case 'prefix':
      return 'it does not start like a recovery key (they start with “Es”)';
    case 'parity':
      return 'its check digit does not match: a character is probably mistyped';
    default:
      return 'it could not be read';
  }
}

