/** The export page's logic, without the page: checking the form, and reading every session in batches. */
import type { ExportBatch } from '../shared/messages.ts';
import { MAX_ITERATIONS } from '../core/passphrase.ts';
import { exportTexts } from './texts.ts';

export const EXPORT_BATCH = 1000;
export const DEFAULT_ROUNDS = 500_000;

export type ExportForm = { ok: true; rounds: number } | { ok: false; field: 'passphrase' | 'confirm' | 'rounds'; message: string };

export function checkExportForm(passphrase: string, confirm: string, rounds: string): ExportForm {
  if (passphrase === '') return { ok: false, field: 'passphrase', message: exportTexts.emptyPassphrase };
  if (passphrase !== confirm) return { ok: false, field: 'confirm', message: exportTexts.mismatch };
  const text = rounds.trim().replace(/[\s,_]/g, '');
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > MAX_ITERATIONS) return { ok: false, field: 'rounds', message: exportTexts.badRounds(MAX_ITERATIONS) };
  return { ok: true, rounds: n };
}

export class ExportLoopError extends Error {
  readonly kind = 'export-loop';
}

/**
 * Every session the vault can decrypt, batch by batch until `next` is null. `fetchBatch` is the
 * worker request; `onProgress` hears how many were read of the total.
 */
export async function collectSessions(
  fetchBatch: (after: [string, string] | null, limit: number) => Promise<ExportBatch>,
  onProgress: (read: number, total: number) => void = () => {},
  limit = EXPORT_BATCH,
): Promise<{ sessions: unknown[]; skipped: number; total: number }> {
  const sessions: unknown[] = [];
  let skipped = 0;
  let total = 0;
  let after: [string, string] | null = null;
  for (;;) {
    const batch: ExportBatch = await fetchBatch(after, limit);
    sessions.push(...batch.sessions);
    skipped += batch.skipped;
    total = batch.total;
    onProgress(sessions.length + skipped, total);
    if (batch.next === null) break;
    // The cursor must move on, or the worker would be asked for the same batch forever.
    if (after !== null && batch.next[0] === after[0] && batch.next[1] === after[1]) {
      throw new ExportLoopError(exportTexts.loop);
    }
    after = batch.next;
  }
  return { sessions, skipped, total };
}
