/** What a decrypted key file must contain before its sessions go to the worker. */

export class KeyFileContentError extends Error {
  readonly kind = 'not-a-key-list';
}

/** The decrypted file must be a JSON array (of ExportedSessionData); each element is checked by the worker. */
export function parseKeyList(plaintext: string): unknown[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(plaintext);
  } catch {
    throw new KeyFileContentError('The file decrypted, but its contents are not JSON: it is not a key export.');
  }
  if (!Array.isArray(parsed)) throw new KeyFileContentError('The file decrypted, but it does not contain a list of keys.');
  return parsed;
}
