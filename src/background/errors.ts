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
