/**
 * The one error the kit's vault methods reject with. A provider rejects with `{ code, message }`
 * (EIP-1193); this keeps the code, names the method, and says in words what the page or the user
 * can do about it, so an app can show `error.message` as is and switch on `error.code`.
 */
import { ErrorCode } from '../shared/page-api.ts';

/** What each code means for the developer or the user; the vault's own message follows it. */
const HINTS: ReadonlyMap<number, string> = new Map([
  [ErrorCode.userRejected, 'the user declined in the Matrix Key Vault window'],
  [ErrorCode.unauthorized, "this site does not hold the scope this method needs: call requestScopes() and let the user allow it"],
  [ErrorCode.unsupportedMethod, 'the installed Matrix Key Vault does not know this method (an older version?)'],
  [ErrorCode.vaultLocked, 'the vault is locked: the user unlocks it in the Matrix Key Vault popup'],
  [ErrorCode.disconnected, 'the extension cannot be reached (reloaded, updated, or this site\'s access was revoked): reload the page'],
  [ErrorCode.limitExceeded, 'too many requests from this page: wait and retry'],
  [ErrorCode.invalidParams, 'the request was malformed or too large'],
  [ErrorCode.internal, 'the vault failed'],
]);

export interface KeyVaultErrorOptions {
  /** The page-API method that failed, when there was one. */
  method?: string;
  /** The provider error's `data`, kept as the vault sent it. */
  data?: unknown;
  cause?: unknown;
}

export class KeyVaultError extends Error {
  override readonly name = 'KeyVaultError';
  /** One of `ErrorCode`'s values for errors the vault sent; unknown codes are kept as they came. */
  readonly code: number;
  readonly method: string | undefined;
  readonly data: unknown;

  constructor(code: number, message: string, options: KeyVaultErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.method = options.method;
    this.data = options.data;
  }
}

export function isKeyVaultError(value: unknown): value is KeyVaultError {
  return value instanceof KeyVaultError;
}

/**
 * Turns whatever a provider rejected with into a `KeyVaultError` whose message names the method, the
 * code and what it means. Something without a numeric code (a bug in a provider, a thrown TypeError)
 * becomes `internal`, with the original as `cause`.
 */
export function toKeyVaultError(error: unknown, method: string): KeyVaultError {
  if (error instanceof KeyVaultError) return error;
  const shape = typeof error === 'object' && error !== null ? (error as { code?: unknown; message?: unknown; data?: unknown }) : {};
  const said = typeof shape.message === 'string' && shape.message !== '' ? shape.message : String(error);
  if (typeof shape.code !== 'number' || !Number.isInteger(shape.code)) {
    return new KeyVaultError(ErrorCode.internal, `${method} failed: ${said}`, { method, cause: error });
  }
  const hint = HINTS.get(shape.code) ?? 'unknown error code';
  return new KeyVaultError(shape.code, `${method} failed (${shape.code}, ${hint}): ${said}`, { method, data: shape.data, cause: error });
}

/** The vault answered, but not in the contract's shape: a kit/extension version mismatch or a bug. */
export function malformedAnswer(method: string, what: string): KeyVaultError {
  return new KeyVaultError(ErrorCode.internal, `${method}: the vault's answer is malformed (${what})`, { method });
}
