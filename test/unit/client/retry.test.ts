/** What the kit does after each kind of failed vault request. */
import { describe, expect, it } from 'vitest';
import { KeyVaultError } from '../../../src/client/errors.ts';
import { afterFailure, Backoff } from '../../../src/client/retry.ts';
import { ErrorCode } from '../../../src/shared/page-api.ts';

const failure = (code: number) => new KeyVaultError(code, 'x');

describe('after a failed vault request', () => {
  it('waits for a status change only where one will come (unlock, a granted scope)', () => {
    expect(afterFailure(failure(ErrorCode.vaultLocked), 'read')).toMatchObject({ action: 'wait', gate: expect.stringMatching(/locked/) });
    expect(afterFailure(failure(ErrorCode.unauthorized), 'backup')).toMatchObject({ action: 'wait', gate: expect.stringMatching(/'backup' scope/) });
  });

  it('retries later when the extension did not answer: a restarted worker announces nothing', () => {
    expect(afterFailure(failure(ErrorCode.disconnected), 'read')).toEqual({ action: 'retry' });
    expect(afterFailure(failure(ErrorCode.limitExceeded), 'read')).toEqual({ action: 'retry' });
    expect(afterFailure(new Error('boom'), 'read')).toEqual({ action: 'retry' });
  });

  it('drops a request the vault calls malformed', () => {
    expect(afterFailure(failure(ErrorCode.invalidParams), 'read')).toEqual({ action: 'drop' });
    expect(afterFailure(failure(ErrorCode.unsupportedMethod), 'backup')).toEqual({ action: 'drop' });
  });

  it('backs off from 2 s, doubling, to its cap', () => {
    const backoff = new Backoff(10_000);
    expect([backoff.next(), backoff.next(), backoff.next(), backoff.next()]).toEqual([2000, 4000, 8000, 10_000]);
    backoff.reset();
    expect(backoff.next()).toBe(2000);
  });
});
