/**
 * What the text in the "Recovery key" field looks like, for feedback while typing. The rule is the
 * core's (`src/core/recovery-input.ts`), the one the worker acts on when the user presses Unlock:
 * key-shaped text (base58, in groups of four, one run of at least 20 characters, or starting with
 * "Es") is decoded as a key and its problem named; anything else will be tried as a Security Phrase.
 */
import { classifyRecoveryInput as classifyInCore, MAX_RECOVERY_INPUT_LENGTH } from '../core/recovery-input.ts';
import { decodeRecoveryKey } from '../core/recovery-key.ts';

export const MAX_RECOVERY_INPUT = MAX_RECOVERY_INPUT_LENGTH;

export type KeyProblem = 'base58' | 'length' | 'prefix' | 'parity';

export type RecoveryInputClass =
  | { kind: 'empty' }
  | { kind: 'too-long'; length: number }
  /** Decodes as a recovery key (a Security Key or a backup recovery key); it may still be the wrong one. */
  | { kind: 'key' }
  /** Looks like a key but is not one; `characters` counts the non-space characters. */
  | { kind: 'bad-key'; problem: KeyProblem; characters: number }
  | { kind: 'phrase' };

export function classifyRecoveryInput(text: string): RecoveryInputClass {
  const c = classifyInCore(text);
  switch (c.shape) {
    case 'empty':
    case 'phrase':
      return { kind: c.shape };
    case 'too-long':
      return { kind: 'too-long', length: c.length };
    case 'key':
      c.key.fill(0); // only the shape matters here; the worker decodes it again
      return { kind: 'key' };
    case 'bad-key': {
      const kind = c.error.kind;
      const problem: KeyProblem = kind === 'base58' || kind === 'length' || kind === 'prefix' || kind === 'parity' ? kind : 'base58';
      return { kind: 'bad-key', problem, characters: text.replace(/\s+/g, '').length };
    }
  }
}

/** Whether the Unlock button may send the text (the worker checks everything else). */
export function canSubmitRecoveryInput(c: RecoveryInputClass): boolean {
  return c.kind !== 'empty' && c.kind !== 'too-long';
}

/**
 * The key in a key file: Element's "security-key.txt" is the key alone; the create-backup page's file
 * has a title line first. Returns the first line that decodes as a key, else the whole text trimmed
 * (a phrase saved in a file), or null for an empty file.
 */
export function keyFromFile(text: string): string | null {
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '');
  for (const line of lines) {
    if (line.length > 200) continue;
    try {
      decodeRecoveryKey(line);
      return line;
    } catch {
      // not this line
    }
  }
  const whole = text.trim();
  return whole === '' ? null : whole;
}
