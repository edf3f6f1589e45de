/** What a decrypted key file must contain before its sessions go to the worker. */
import { importTexts } from './texts.ts';

export class KeyFileContentError extends Error {
  readonly kind = 'not-a-key-list';
}

/** The decrypted file must be a JSON array (of ExportedSessionData); each element is checked by the worker. */
export function parseKeyList(plaintext: string): unknown[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(plaintext);
  } catch {
    throw new KeyFileContentError(importTexts.notJson);
  }
  if (!Array.isArray(parsed)) throw new KeyFileContentError(importTexts.notAList);
  return parsed;
}
