/**
 * Errors the worker reports to extension pages. Each kind has a message that tells a person what to
 * do; the router turns any thrown error into `{ ok: false, error: { kind, message, errcode? } }`.
 */
import type { AppErrorKind } from '../shared/errors.ts';
import type { WireError } from '../shared/messages.ts';

export type { AppErrorKind } from '../shared/errors.ts';

export class AppError extends Error {
  constructor(readonly kind: AppErrorKind, message: string, readonly errcode?: string) {
    super(message);
    this.name = 'AppError';
  }
}

export const noBackupMessage =
  'No backup key is set up yet, so keys cannot be accepted. Open the extension popup and either ' +
  'create a backup or enter the recovery key of your existing backup.';

/** Anything thrown, as it crosses to an extension page. Unknown errors keep their text, never a stack. */
export function toWireError(e: unknown): WireError {
  const storage = storageFailure(e);
  if (storage) return { kind: storage.kind, message: storage.message };
  if (typeof e === 'object' && e !== null && typeof (e as { kind?: unknown }).kind === 'string') {
    const err = e as { kind: string; message?: unknown; errcode?: unknown };
    return {
      kind: err.kind,
      message: typeof err.message === 'string' && err.message ? err.message : err.kind,
      ...(typeof err.errcode === 'string' ? { errcode: err.errcode } : {}),
    };
  }
  return { kind: 'internal', message: e instanceof Error ? e.message : String(e) };
}

// ---------------------------------------------------------------------------------------------
// Storage failures
//
// IndexedDB failures, in words a person can act on. A full disk or an exceeded quota aborts the
// transaction that hit it: nothing of it is written and nothing stored before is lost, so the answer
// is to free space and go on (uploads and restores resume by their alarms).

function errorName(e: unknown): string | undefined {
  if (typeof e !== 'object' || e === null) return undefined;
  const name = (e as { name?: unknown }).name;
  return typeof name === 'string' ? name : undefined;
}

export const storageFullMessage =
  'The browser has no more room for this extension\'s data (the disk is full, or its storage quota is used up). ' +
  'Nothing stored so far was lost. Free some disk space; the extension goes on by itself, or try again.';

/** The AppError for a storage failure, or null when `e` is something else. */
export function storageFailure(e: unknown): AppError | null {
  if (e instanceof AppError) return null;
  switch (errorName(e)) {
    case 'QuotaExceededError':
      return new AppError('storage-full', storageFullMessage);
    case 'UnknownError':
    case 'InvalidStateError':
    case 'VersionError':
    case 'AbortError':
    case 'TransactionInactiveError':
      // The browser's own words ("Internal error opening backing store…") go to the worker's
      // console through the caller's report, not to people.
      return new AppError('storage-unavailable', 'The browser could not read or write this extension\'s data just now (its storage may be full or damaged). Nothing stored so far was lost; try again.');
    default:
      return null;
  }
}
