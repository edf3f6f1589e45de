import { describe, expect, it } from 'vitest';
import { checkExportForm, collectSessions, ExportLoopError } from '../../../src/popup/export-keys.ts';
import type { ExportBatch } from '../../../src/shared/messages.ts';

describe('checkExportForm', () => {
  it('needs a passphrase typed twice alike', () => {
    expect(checkExportForm('', '', '500000')).toMatchObject({ ok: false, field: 'passphrase' });
    expect(checkExportForm('a', 'b', '500000')).toMatchObject({ ok: false, field: 'confirm', message: 'The two passphrases do not match.' });
    expect(checkExportForm('a', 'a', '500000')).toEqual({ ok: true, rounds: 500_000 });
  });
  it('reads rounds as a whole number within the core\'s limits', () => {
    expect(checkExportForm('a', 'a', ' 500,000 ')).toEqual({ ok: true, rounds: 500_000 });
    expect(checkExportForm('a', 'a', '1')).toEqual({ ok: true, rounds: 1 });
    for (const bad of ['0', '-5', '1.5', 'many', '', '99999999999']) {
      expect(checkExportForm('a', 'a', bad), bad).toMatchObject({ ok: false, field: 'rounds' });
    }
  });
});

describe('collectSessions', () => {
  it('asks batch after batch until next is null, and adds up what was skipped', async () => {
    const calls: Array<[string, string] | null> = [];
    const pages: ExportBatch[] = [
      { sessions: [1, 2], next: ['!a', 's2'], skipped: 1, total: 6 },
      { sessions: [3], next: ['!b', 's1'], skipped: 0, total: 6 },
      { sessions: [4], next: null, skipped: 1, total: 6 },
    ];
    const progress: number[] = [];
    const result = await collectSessions(async (after, limit) => {
      expect(limit).toBe(1000);
      calls.push(after);
      return pages[calls.length - 1]!;
    }, (read) => progress.push(read));
    expect(calls).toEqual([null, ['!a', 's2'], ['!b', 's1']]);
    expect(result).toEqual({ sessions: [1, 2, 3, 4], skipped: 2, total: 6 });
    expect(progress).toEqual([3, 4, 6]);
  });
  it('stops when the cursor does not move', async () => {
    await expect(collectSessions(async () => ({ sessions: [], next: ['!a', 's'], skipped: 0, total: 1 }))).rejects.toBeInstanceOf(ExportLoopError);
  });
});
