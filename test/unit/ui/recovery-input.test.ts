import { describe, expect, it } from 'vitest';
import { encodeRecoveryKey } from '../../../src/core/index.ts';
import { canSubmitRecoveryInput, classifyRecoveryInput, keyFromFile, MAX_RECOVERY_INPUT } from '../../../src/popup/recovery-input.ts';
import { describeRecoveryInput } from '../../../src/popup/texts.ts';

const key = encodeRecoveryKey(new Uint8Array(32).fill(7));
/** The same key with one character in the middle changed to another base58 character. */
const typo = (() => {
  const i = 20;
  const c = key[i] === 'a' ? 'b' : 'a';
  return key.slice(0, i) + c + key.slice(i + 1);
})();

describe('classifyRecoveryInput', () => {
  it('says nothing about an empty or blank field, and does not let it be sent', () => {
    for (const text of ['', '   ', '\n\t ']) {
      const c = classifyRecoveryInput(text);
      expect(c).toEqual({ kind: 'empty' });
      expect(canSubmitRecoveryInput(c)).toBe(false);
      expect(describeRecoveryInput(c)).toBe('');
    }
  });

  it('refuses a 1 MB paste as too long, as the worker does', () => {
    const c = classifyRecoveryInput('Es'.padEnd(1024 * 1024, 'x'));
    expect(c).toEqual({ kind: 'too-long', length: 1024 * 1024 });
    expect(canSubmitRecoveryInput(c)).toBe(false);
    expect(describeRecoveryInput(c)).toMatch(/too long/);
    expect(classifyRecoveryInput('x'.repeat(MAX_RECOVERY_INPUT)).kind).not.toBe('too-long');
  });

  it('accepts a valid key, grouped, ungrouped or with stray whitespace', () => {
    for (const text of [key, key.replace(/ /g, ''), `  ${key.replace(/ /g, '\n')}  `]) {
      const c = classifyRecoveryInput(text);
      expect(c).toEqual({ kind: 'key' });
      expect(canSubmitRecoveryInput(c)).toBe(true);
    }
    expect(describeRecoveryInput({ kind: 'key' })).toMatch(/valid recovery key/);
  });

  it('names a typo as a check-character mismatch', () => {
    const c = classifyRecoveryInput(typo);
    expect(c).toMatchObject({ kind: 'bad-key', problem: 'parity' });
    expect(canSubmitRecoveryInput(c)).toBe(true); // the worker has the last word
    expect(describeRecoveryInput(c)).toMatch(/typo/);
    // The key the end-to-end test types, one character off.
    expect(classifyRecoveryInput('EsTc LW2K PGiF wKEA 3As5 g5c4 BXwk qeeJ ZJV8 Q9fu gUMN UE4e')).toMatchObject({ kind: 'bad-key' });
  });

  it('names an incomplete key by its length', () => {
    const c = classifyRecoveryInput(key.slice(0, 30));
    expect(c).toMatchObject({ kind: 'bad-key', problem: 'length' });
    expect(describeRecoveryInput(c)).toMatch(/has 2\d characters .* a recovery key has 48/);
  });

  it('sees a Bitcoin address as key-shaped, and says it is not a key', () => {
    const c = classifyRecoveryInput('1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa');
    expect(c).toMatchObject({ kind: 'bad-key', problem: 'length', characters: 34 });
  });

  it('checks text that starts like a key as a key, and words that merely begin with "Es" as a phrase', () => {
    expect(classifyRecoveryInput('EsT0 OIl1')).toMatchObject({ kind: 'bad-key', problem: 'base58' });
    expect(classifyRecoveryInput('Es war einmal')).toEqual({ kind: 'phrase' });
    expect(describeRecoveryInput({ kind: 'bad-key', problem: 'base58', characters: 9 })).toMatch(/0, O, I and l/);
  });

  it('sees groups of four as a key, however short', () => {
    expect(classifyRecoveryInput('EsTc LW2K PGiF')).toMatchObject({ kind: 'bad-key', problem: 'length', characters: 12 });
  });

  it('names a wrong prefix on 35 bytes of base58', () => {
    const c = classifyRecoveryInput(key.replace(/^Es/, 'Fs').replace(/ /g, ''));
    // Changing the first character changes the decoded bytes: either the prefix or the length is off.
    expect(c.kind).toBe('bad-key');
    expect(['prefix', 'length']).toContain((c as { problem: string }).problem);
  });

  it('tries anything else as a Security Phrase', () => {
    for (const text of ['correct horse battery staple', 'the quick brown fox jumps over', 'hunter2', 'ünïcödé pässphrase with spaces']) {
      const c = classifyRecoveryInput(text);
      expect(c, text).toEqual({ kind: 'phrase' });
      expect(canSubmitRecoveryInput(c)).toBe(true);
    }
    expect(describeRecoveryInput({ kind: 'phrase' })).toBe('This will be tried as a Security Phrase.');
  });
});

describe('keyFromFile', () => {
  it('reads Element\'s security-key.txt (the key alone) and the create page\'s file (a title line first)', () => {
    expect(keyFromFile(`${key}\n`)).toBe(key);
    expect(keyFromFile(`Matrix key backup recovery key\r\n\r\n${key}\r\n`)).toBe(key);
  });
  it('falls back to the whole text, or nothing for an empty file', () => {
    expect(keyFromFile('  my passphrase \n')).toBe('my passphrase');
    expect(keyFromFile(' \n\n')).toBeNull();
  });
});
