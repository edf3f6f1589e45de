import { describe, expect, it } from 'vitest';
import { describeRestore, earlierTexts, formatDuration, unlockedTexts } from '../../../src/popup/texts.ts';
import type { RestoreSummary } from '../../../src/shared/messages.ts';

const r: RestoreSummary = {
  id: 'r', version: '4', phase: 'running', serverCount: 5000, done: 1234, restored: 1200, alreadyPresent: 30, failed: 4,
  failuresByKind: { mac: 4 }, rooms: 12, startedAt: 0, finishedAt: null, rate: 250, secondsLeft: 15, retryAt: null, lastError: null,
};

describe('recovery texts', () => {
  it('says where a restore is, in each phase', () => {
    expect(describeRestore(r, 0)).toBe('Restoring keys from backup version 4: 1,234 of 5,000.');
    expect(describeRestore({ ...r, phase: 'waiting', retryAt: 30_000, lastError: { kind: 'connection', message: 'the server did not answer', at: 0 } }, 0))
      .toBe('The restore paused after an error (the server did not answer); it retries in 30 s.');
    expect(describeRestore({ ...r, phase: 'locked' }, 0)).toBe('Unlock to resume the restore.');
    expect(describeRestore({ ...r, phase: 'done', done: 5000 }, 0)).toBe('Restore finished: 1,200 keys restored, 30 already present, 4 failed.');
    expect(describeRestore({ ...r, phase: 'cancelled' }, 0)).toMatch(/cancelled after 1,234 of 5,000/);
    expect(describeRestore({ ...r, phase: 'failed', lastError: { kind: 'x', message: 'the backup is gone', at: 0 } }, 0)).toMatch(/stopped: the backup is gone/);
  });

  it('formats durations', () => {
    expect(formatDuration(0)).toBe('0 s');
    expect(formatDuration(59.4)).toBe('59 s');
    expect(formatDuration(150)).toBe('3 min');
    expect(formatDuration(3600)).toBe('1 h');
    expect(formatDuration(7500)).toBe('2 h 5 min');
  });

  it('names the unlock method and the earlier keys', () => {
    expect(unlockedTexts.unlockedWith('security-phrase')).toBe('Unlocked with your Security Phrase.');
    expect(earlierTexts.waiting(3, '2')).toBe('3 keys wait for the key of backup version 2.');
    expect(earlierTexts.waiting(1, '2')).toBe('1 key waits for the key of backup version 2.');
    expect(earlierTexts.label('2')).toBe('Key of backup version 2');
  });
});
