/**
 * The one error type the core throws. Every failure carries a `kind` a caller can switch on
 * (STYLE.md "Failures are data"); the message is for people and never contains secret material.
 */

/** Every kind the core can throw, grouped by what failed. */
export type CoreErrorKind =
  // text encodings
  | 'base58' // not base58 (recovery keys, reference §4.1)
  | 'base64' // not standard base64, padded or unpadded (reference §0)
  | 'utf8' // bytes that should be UTF-8 text are not
  | 'length' // a value decoded fine but has the wrong number of bytes
  // recovery keys (reference §4.1)
  | 'prefix'
  | 'parity'
  // backup entries and secrets (reference §2.5, §5.3)
  | 'mac'
  | 'padding'
  | 'json'
  | 'algorithm'
  | 'non-contributory' // X25519 produced the all-zero shared secret (low-order point)
  | 'field' // a member is missing or has the wrong type
  // key files (reference §6.2)
  | 'header'
  | 'trailer'
  | 'version'
  | 'hmac'
  // passphrases (reference §4.2)
  | 'iterations'
  | 'no-passphrase'
  // secret storage (reference §5)
  | 'key-check'
  | 'no-default-key'
  | 'no-secret'
  // session keys (reference §6.1)
  | 'session-version'
  | 'session-id'
  | 'signature';

export class CoreError extends Error {
  override readonly name = 'CoreError';
  readonly kind: CoreErrorKind;

  constructor(kind: CoreErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.kind = kind;
  }
}

/** True when `error` is a CoreError, optionally of the given kind. */
export function isCoreError(error: unknown, kind?: CoreErrorKind): error is CoreError {
  return error instanceof CoreError && (kind === undefined || error.kind === kind);
}
