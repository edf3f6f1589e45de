/**
 * What to do after a vault request failed, shared by fetching and hand-over: wait for the vault's
 * status to change (locked, scope missing), give up on the batch (the request itself is wrong and
 * would fail again), or retry later with a growing delay (rate limit, vault error, no answer).
 * Never retry at once: a page must not spin on an extension that keeps saying no.
 */
import { ErrorCode } from '../shared/page-api.ts';
import { KeyVaultError } from './errors.ts';

export type AfterFailure =
  | { action: 'wait'; gate: string }
  | { action: 'drop' }
  | { action: 'retry' };

export function afterFailure(error: unknown, scope: 'read' | 'backup'): AfterFailure {
  const code = error instanceof KeyVaultError ? error.code : undefined;
  switch (code) {
    case ErrorCode.vaultLocked:
      return { action: 'wait', gate: 'the vault is locked: the user unlocks it in the Matrix Key Vault popup' };
    case ErrorCode.unauthorized:
    case ErrorCode.userRejected:
      return { action: 'wait', gate: `this site does not hold the '${scope}' scope: call vault.requestScopes(['${scope}'])` };
    // Often brief: the worker was stopped mid-request, or did not answer in time. A restarted worker
    // sends no status change, so waiting for one could wait for ever: retry later, backing off.
    case ErrorCode.disconnected:
      return { action: 'retry' };
    case ErrorCode.invalidParams:
    case ErrorCode.unsupportedMethod:
      return { action: 'drop' };
    default:
      return { action: 'retry' };
  }
}

/** Exponential backoff: 2 s doubling, capped. */
export class Backoff {
  #ms = 0;
  readonly #maxMs: number;

  constructor(maxMs: number) {
    this.#maxMs = maxMs;
  }

  next(): number {
    this.#ms = Math.min(this.#ms === 0 ? 2000 : this.#ms * 2, this.#maxMs);
    return this.#ms;
  }

  reset(): void {
    this.#ms = 0;
  }
}
