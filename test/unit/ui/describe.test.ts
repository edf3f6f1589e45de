import { describe, expect, it } from 'vitest';
import { errorStillRelevant } from '../../../src/popup/describe.ts';
import { describeStop, describeUpload, formatWhen } from '../../../src/popup/texts.ts';
import { KeyFileContentError, parseKeyList } from '../../../src/popup/key-list.ts';
import type { UploadSummary } from '../../../src/shared/messages.ts';

const base: UploadSummary = {
  phase: 'idle', pending: 0, stored: 10, serverCount: 10, lastSuccessAt: 1_000, lastError: null, retryAt: null, stopped: null, notice: null,
};

describe('popup texts', () => {
  it('says what a stop means and what to do', () => {
    expect(describeStop({ kind: 'backup-changed', pinnedVersion: '1', currentVersion: '2', errcode: 'M_WRONG_ROOM_KEYS_VERSION' }))
      .toMatch(/version 1 was replaced by version 2.*enter its recovery key/);
    expect(describeStop({ kind: 'backup-changed', pinnedVersion: '1', currentVersion: null, errcode: 'M_NOT_FOUND' }))
      .toMatch(/version 1 is gone/);
    expect(describeStop({ kind: 'signed-out', errcode: 'M_UNKNOWN_TOKEN' })).toMatch(/sign in again/);
  });

  it('describes each upload phase', () => {
    expect(describeUpload(base, 0)).toBe('All keys are backed up.');
    expect(describeUpload({ ...base, pending: 1 }, 0)).toBe('1 key waiting to upload.');
    expect(describeUpload({ ...base, phase: 'uploading', pending: 40 }, 0)).toBe('Uploading… 40 keys to go.');
    expect(describeUpload({ ...base, phase: 'waiting', retryAt: 31_000 }, 1_000)).toBe('Upload paused after an error; next try in 30 s.');
    expect(describeUpload({ ...base, phase: 'stopped', stopped: { kind: 'signed-out', errcode: 'M_UNKNOWN_TOKEN' } }, 0)).toMatch(/sign in again/);
  });

  it('formats times relative to now', () => {
    expect(formatWhen(10_000, 10_500)).toBe('just now');
    expect(formatWhen(10_500, 10_000), 'a retry about to happen is ahead, not past').toBe('in 1 s');
    expect(formatWhen(0, 45_000)).toBe('45 s ago');
    expect(formatWhen(0, 5 * 60_000)).toBe('5 min ago');
    expect(formatWhen(2 * 60_000, 0)).toBe('in 2 min');
  });

  it('shows an old error only while it still matters', () => {
    const error = { kind: 'connection', message: 'x', at: 500 };
    expect(errorStillRelevant({ ...base, lastError: error })).toBe(false); // fixed by the success at 1000
    expect(errorStillRelevant({ ...base, lastError: { ...error, at: 2_000 } })).toBe(true);
    expect(errorStillRelevant({ ...base, lastError: error, phase: 'waiting' })).toBe(true);
    expect(errorStillRelevant({ ...base, lastError: error, lastSuccessAt: null })).toBe(true);
    expect(errorStillRelevant(base)).toBe(false);
  });
});

describe('decrypted key file contents', () => {
  it('accepts a JSON list', () => {
    expect(parseKeyList('[{"a":1},2]')).toEqual([{ a: 1 }, 2]);
  });
  it.each([['not json'], ['{"room_id":"!a"}'], ['"text"']])('refuses %j with a typed error', (text) => {
    expect(() => parseKeyList(text)).toThrow(KeyFileContentError);
    try { parseKeyList(text); } catch (e) { expect((e as KeyFileContentError).kind).toBe('not-a-key-list'); }
  });
});
