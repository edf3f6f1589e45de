/** Words for the states and errors the worker reports. Pure, so the texts are unit-tested. */
import type { StopReason } from '../core/upload/state.ts';
import type { UploadSummary, WireError } from '../shared/messages.ts';

export function describeStop(reason: StopReason): string {
  switch (reason.kind) {
    case 'backup-changed':
      return reason.currentVersion === null
        ? `The backup changed on the server: version ${reason.pinnedVersion} is gone and the account has no backup now. ` +
          'Nothing is uploaded until you create a new backup or enter the recovery key of a new one.'
        : `The backup changed on the server: version ${reason.pinnedVersion} was replaced by version ${reason.currentVersion}, ` +
          'which uses a key this extension has not been given. Nothing is uploaded to it until you enter its recovery key.';
    case 'signed-out':
      return 'The homeserver no longer accepts this extension\'s sign-in. Sign out and sign in again to resume uploading.';
  }
}

export function describeUpload(upload: UploadSummary, now: number): string {
  switch (upload.phase) {
    case 'stopped':
      return upload.stopped ? describeStop(upload.stopped) : 'Uploading is stopped.';
    case 'uploading':
      return `Uploading… ${upload.pending} key${upload.pending === 1 ? '' : 's'} to go.`;
    case 'waiting':
      return upload.retryAt !== null
        ? `Upload paused after an error; next try ${formatWhen(upload.retryAt, now)}.`
        : 'Upload paused after an error.';
    case 'idle':
      return upload.pending === 0 ? 'All keys are backed up.' : `${upload.pending} key${upload.pending === 1 ? '' : 's'} waiting to upload.`;
  }
}

/** An error from before the last successful upload is history, not news, once everything is uploaded. */
export function errorStillRelevant(upload: UploadSummary): boolean {
  if (!upload.lastError) return false;
  return upload.phase !== 'idle' || upload.lastSuccessAt === null || upload.lastError.at > upload.lastSuccessAt;
}

/** "in 12 s", "3 min ago", or a clock time for anything far away. */
export function formatWhen(at: number, now: number): string {
  const delta = Math.round((at - now) / 1000);
  const abs = Math.abs(delta);
  const amount = abs < 60 ? `${abs} s` : abs < 3600 ? `${Math.round(abs / 60)} min` : null;
  if (amount === null) return new Date(at).toLocaleString();
  // Moments ago is "just now"; a moment ahead (a retry about to happen) is still "in 1 s".
  if (abs < 2 && delta <= 0) return 'just now';
  if (abs < 2) return 'in 1 s';
  return delta > 0 ? `in ${amount}` : `${amount} ago`;
}

/** A message for a person, from an error that crossed from the worker. */
export function describeError(error: WireError): string {
  return error.message || error.kind;
}
