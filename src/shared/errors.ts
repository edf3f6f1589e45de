/**
 * Every kind of error the worker answers with, as one union, so extension pages can switch on them
 * exhaustively (`WireError.kind` carries one of these).
 */

/** Refusals the worker raises itself, each with a message that tells a person what to do. */
export type AppErrorKind =
  | 'no-backup' // no pinned backup key: sessions cannot be accepted
  | 'not-signed-in'
  | 'backup-exists' // creating a backup when the account already has one
  | 'no-server-backup' // joining or unlocking when the server has none
  | 'unsupported-algorithm'
  | 'empty-input' // nothing typed into the Recovery key field
  | 'not-a-key' // the text is not a recovery key at all (format)
  | 'wrong-key' // a valid recovery key that does not match the backup
  | 'older-backup-key' // a valid key of an earlier backup version
  | 'no-secret-storage' // a phrase on an account without secret storage
  | 'no-phrase' // a phrase on a secret storage set up without one
  | 'wrong-phrase'
  | 'rate-limited' // too many failed attempts in a row
  | 'locked' // needs the vault unlocked
  | 'restore-running'
  | 'too-large' // a session far larger than any real one
  | 'storage-full' // the disk is full or the storage quota is used up
  | 'storage-unavailable' // the database could not be opened, or a transaction was aborted
  | 'bad-request'; // a malformed message from an extension page

/** Failures on the way: the homeserver said no, the connection failed, the caller aborted, a bug. */
export type TransportErrorKind = 'homeserver' | 'connection' | 'aborted' | 'internal';

/** What an extension page can receive as `error.kind`, plus its own: the worker did not answer. */
export type WorkerErrorKind = AppErrorKind | TransportErrorKind | 'no-answer';

const appErrorKinds: ReadonlySet<string> = new Set<AppErrorKind>([
  'no-backup', 'not-signed-in', 'backup-exists', 'no-server-backup', 'unsupported-algorithm', 'empty-input', 'not-a-key',
  'wrong-key', 'older-backup-key', 'no-secret-storage', 'no-phrase', 'wrong-phrase', 'rate-limited', 'locked',
  'restore-running', 'too-large', 'storage-full', 'storage-unavailable', 'bad-request',
]);

/** Narrows a wire kind for an exhaustive switch; anything unknown is treated as `internal`. */
export function workerErrorKind(kind: string): WorkerErrorKind {
  if (appErrorKinds.has(kind)) return kind as AppErrorKind;
  return kind === 'homeserver' || kind === 'connection' || kind === 'aborted' || kind === 'no-answer' ? kind : 'internal';
}
