/** The worker's error kinds, as pages see them: one union, and every kind the worker raises is in it. */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { workerErrorKind } from '../../../src/shared/errors.ts';

describe('worker error kinds', () => {
  it('keeps known kinds and maps anything else to internal', () => {
    expect(workerErrorKind('wrong-key')).toBe('wrong-key');
    expect(workerErrorKind('older-backup-key')).toBe('older-backup-key');
    expect(workerErrorKind('connection')).toBe('connection');
    expect(workerErrorKind('no-answer')).toBe('no-answer');
    expect(workerErrorKind('__proto__')).toBe('internal');
    expect(workerErrorKind('something-new')).toBe('internal');
  });

  it('lists every kind an AppError is raised with in src/background', () => {
    const dir = join(import.meta.dirname, '../../../src/background');
    const raised = new Set<string>();
    for (const file of readdirSync(dir)) {
      for (const m of readFileSync(join(dir, file), 'utf8').matchAll(/new AppError\('([a-z-]+)'/g)) raised.add(m[1]!);
    }
    expect(raised.size).toBeGreaterThan(10);
    for (const kind of raised) expect(workerErrorKind(kind), kind).toBe(kind);
  });
});
