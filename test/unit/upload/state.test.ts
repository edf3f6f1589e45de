import { describe, expect, it } from 'vitest';
import { backoff, backoffDelay, decideOnFailure, growBatch, initialUploadState, isSizeFailure, MIN_BATCH, onUploadSuccess, shrinkBatch } from '../../../src/core/upload/state.ts';

const now = 1_000_000;
const mid = () => 0.5;

describe('upload engine decisions', () => {
  it('honours retry_after_ms on 429 exactly', () => {
    const { state, decision } = decideOnFailure(initialUploadState,
      { kind: 'homeserver', status: 429, errcode: 'M_LIMIT_EXCEEDED', message: 'slow down', retryAfterMs: 7_500 }, now, mid);
    expect(decision).toEqual({ action: 'retry', at: now + 7_500 });
    expect(state.retryAt).toBe(now + 7_500);
    expect(state.attempt).toBe(1);
    expect(state.lastError).toMatchObject({ kind: 'homeserver', status: 429, errcode: 'M_LIMIT_EXCEEDED', at: now });
  });

  it('backs off on 429 without a retry-after', () => {
    const { decision } = decideOnFailure(initialUploadState, { kind: 'homeserver', status: 429, message: 'x' }, now, mid);
    expect(decision).toEqual({ action: 'retry', at: now + backoffDelay(0, mid) });
  });

  it.each([
    [{ kind: 'homeserver' as const, status: 502, message: 'bad gateway' }],
    [{ kind: 'homeserver' as const, status: 500, errcode: 'M_UNKNOWN', message: 'oops' }],
    [{ kind: 'connection' as const, message: 'socket hang up' }],
    [{ kind: 'internal' as const, message: 'bug' }],
  ])('backs off exponentially with jitter on %o', (failure) => {
    let state = initialUploadState;
    const delays: number[] = [];
    for (let i = 0; i < 12; i++) {
      const r = decideOnFailure(state, failure, now, mid);
      expect(r.decision.action).toBe('retry');
      delays.push((r.decision as { at: number }).at - now);
      state = r.state;
    }
    expect(delays[0]).toBeGreaterThanOrEqual(backoff.baseMs / 2);
    for (let i = 1; i < delays.length; i++) expect(delays[i]).toBeGreaterThanOrEqual(delays[i - 1]!);
    expect(Math.max(...delays)).toBeLessThanOrEqual(backoff.capMs);
    expect(state.attempt).toBe(12);
  });

  it('jitter spreads retries between half and all of the ceiling', () => {
    expect(backoffDelay(3, () => 0)).toBe(backoff.baseMs * 8 / 2);
    expect(backoffDelay(3, () => 1)).toBe(backoff.baseMs * 8);
  });

  it.each([
    [403, 'M_WRONG_ROOM_KEYS_VERSION', '7'],
    [404, 'M_NOT_FOUND', undefined],
  ])('asks for a version re-check on %i %s, never a silent retry', (status, errcode, currentVersion) => {
    const { decision, state } = decideOnFailure(initialUploadState,
      { kind: 'homeserver', status, errcode, message: 'm', ...(currentVersion ? { currentVersion } : {}) }, now, mid);
    expect(decision).toEqual({ action: 'recheck-version', errcode, currentVersion: currentVersion ?? null });
    expect(state.stopped).toBeNull();
  });

  it('a 404 without M_NOT_FOUND (a proxy page) is not a version change', () => {
    const { decision } = decideOnFailure(initialUploadState, { kind: 'homeserver', status: 404, message: 'not found' }, now, mid);
    expect(decision.action).toBe('retry');
  });

  it('stops on 401 until the user signs in again', () => {
    const { decision, state } = decideOnFailure(initialUploadState, { kind: 'homeserver', status: 401, errcode: 'M_UNKNOWN_TOKEN', message: 'm' }, now, mid);
    expect(decision).toEqual({ action: 'stop', reason: { kind: 'signed-out', errcode: 'M_UNKNOWN_TOKEN' } });
    expect(state.stopped).toEqual({ kind: 'signed-out', errcode: 'M_UNKNOWN_TOKEN' });
  });

  it('leaves the state alone when aborted', () => {
    const start = { ...initialUploadState, attempt: 3 };
    expect(decideOnFailure(start, { kind: 'aborted', message: 'stop' }, now, mid)).toEqual({ state: start, decision: { action: 'none' } });
  });

  it('a success resets the backoff and records what the server said', () => {
    const failing = decideOnFailure(initialUploadState, { kind: 'connection', message: 'x' }, now, mid).state;
    const ok = onUploadSuccess(failing, { etag: '12', count: 500 }, now + 1);
    expect(ok).toMatchObject({ attempt: 0, retryAt: null, lastSuccessAt: now + 1, serverCount: 500, serverEtag: '12' });
  });
});

describe('batch size after timeouts', () => {
  it('counts timeouts, dropped connections and 413 as size failures, other errors not', () => {
    expect(isSizeFailure({ kind: 'connection', message: 'x', timedOut: true })).toBe(true);
    expect(isSizeFailure({ kind: 'connection', message: 'socket hang up' })).toBe(true);
    expect(isSizeFailure({ kind: 'homeserver', status: 413, errcode: 'M_TOO_LARGE', message: 'x' })).toBe(true);
    expect(isSizeFailure({ kind: 'homeserver', status: 500, message: 'x' })).toBe(false);
    expect(isSizeFailure({ kind: 'homeserver', status: 429, message: 'x' })).toBe(false);
    expect(isSizeFailure({ kind: 'internal', message: 'x' })).toBe(false);
  });

  it('halves down to a floor and doubles back to the default', () => {
    let state = shrinkBatch(initialUploadState, 500);
    expect(state.batchLimit).toBe(250);
    for (let i = 0; i < 10; i++) state = shrinkBatch(state, state.batchLimit!);
    expect(state.batchLimit).toBe(MIN_BATCH);
    const sizes: Array<number | null> = [];
    while (state.batchLimit !== null) { state = growBatch(state, 500); sizes.push(state.batchLimit); }
    expect(sizes).toEqual([20, 40, 80, 160, 320, null]);
    expect(growBatch(initialUploadState, 500)).toBe(initialUploadState);
  });
});
