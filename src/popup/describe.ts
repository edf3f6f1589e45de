/** Decisions about what the popup says, without the words (those are in texts.ts). Pure, so unit-tested. */
import type { UploadSummary, WireError } from '../shared/messages.ts';

/** An error from before the last successful upload is history, not news, once everything is uploaded. */
export function errorStillRelevant(upload: UploadSummary): boolean {
  if (!upload.lastError) return false;
  return upload.phase !== 'idle' || upload.lastSuccessAt === null || upload.lastError.at > upload.lastSuccessAt;
}

/** A message for a person, from an error that crossed from the worker. */
export function describeError(error: WireError): string {
  return error.message || error.kind;
}
