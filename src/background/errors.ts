/**
 * Errors the worker reports to extension pages. Each kind has a message that tells a person what to
 * do; the router turns any thrown error into `{ ok: false, error: { kind, message, errcode? } }`.
 */
import type { WireError } from '../shared/messages.ts';

export type AppErrorKind =
  | 'no-backup' // no pinned backup key: sessions cannot be accepted
  | 'not-signed-in'
  | 'backup-exists' // creating a backup when the account already has one
  | 'no-server-backup' // joining when the server has none
  | 'unsupported-algorithm'
  | 'not-a-key' // the text is not a recovery key at all (format)
  | 'wrong-key' // a valid recovery key that does not match the backup
  | 'too-large' // a session far larger than any real one
  | 'empty-input'
  | 'older-backup-key' // a valid key of an earlier backup version
  | 'no-secret-storage' // a phrase on an account without secret storage
  | 'no-phrase' // a phrase on a secret storage set up without one
  | 'wrong-phrase'
  | 'rate-limited' // too many failed attempts in a row
  | 'locked' // needs the vault unlocked
  | 'restore-running'
  | 'bad-request'; // a malformed message from an extension page

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
