/**
 * The upload engine's persisted state and the decisions it makes, with no I/O: the service worker
 * reads this state from the vault, asks what to do, does it, and writes the new state back. Time and
 * randomness are arguments so tests can pin them.
 */

/** Why uploading stopped until the user acts. Each has its own message in the popup. */
export type StopReason =
  /** 403 M_WRONG_ROOM_KEYS_VERSION or 404 M_NOT_FOUND, and the server's current backup is not ours. */
  | { kind: 'backup-changed'; pinnedVersion: string; currentVersion: string | null; errcode: string }
  /** The access token was refused (401): the user must sign in again. */
  | { kind: 'signed-out'; errcode: string };

export interface UploadError {
  kind: string;
  message: string;
  errcode?: string;
  status?: number;
  at: number;
}

export interface UploadState {
  /** Consecutive failed attempts since the last success; drives the backoff. */
  attempt: number;
  /** No upload before this time (ms since the epoch): a server's retry-after, or our backoff. */
  retryAt: number | null;
  stopped: StopReason | null;
  lastSuccessAt: number | null;
  lastError: UploadError | null;
  /** What the server said after our last write, or when we last asked. */
  serverCount: number | null;
  serverEtag: string | null;
  /** A change the user should hear about although uploading goes on (e.g. a new version, same key). */
  notice: { message: string; at: number } | null;
  /** Fewer sessions per request than the default, after a timeout or a body too large; null = default. */
  batchLimit: number | null;
}

export const initialUploadState: UploadState = {
  attempt: 0,
  retryAt: null,
  stopped: null,
  lastSuccessAt: null,
  lastError: null,
  serverCount: null,
  serverEtag: null,
  notice: null,
  batchLimit: null,
};

/**
 * Backoff after a failure that may heal by itself (5xx, dropped connection, timeout): exponential
 * from 2 s, capped at 10 minutes, with "full jitter" so that many clients do not retry in step.
 * Hand-written rather than taken from a retry library: those sleep in-process, and a killed service
 * worker cannot keep a sleep; here the delay becomes an alarm time stored with the state.
 */
export const backoff = { baseMs: 2_000, capMs: 10 * 60_000 };

export function backoffDelay(attempt: number, random: () => number): number {
  const ceiling = Math.min(backoff.capMs, backoff.baseMs * 2 ** Math.min(attempt, 20));
  // Never less than half the ceiling: a jitter of zero would turn a backoff into a hot loop.
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/** The failure of one upload request, as the engine classifies it. */
export type UploadFailure =
  | { kind: 'homeserver'; status: number; errcode?: string; message: string; retryAfterMs?: number; currentVersion?: string }
  | { kind: 'connection'; message: string; timedOut?: boolean }
  | { kind: 'aborted'; message: string }
  /** Anything else (a bug, a malformed local row): shown, and retried with backoff. */
  | { kind: 'internal'; message: string };

export type FailureDecision =
  /** Try again at this time; the state records why. */
  | { action: 'retry'; at: number }
  /** The server says our version is gone or replaced: re-read the current backup before anything else. */
  | { action: 'recheck-version'; errcode: string; currentVersion: string | null }
  | { action: 'stop'; reason: StopReason }
  /** The caller aborted (the worker is shutting down the run): leave the state as it was. */
  | { action: 'none' };

export function decideOnFailure(
  state: UploadState,
  failure: UploadFailure,
  now: number,
  random: () => number,
): { state: UploadState; decision: FailureDecision } {
  if (failure.kind === 'aborted') return { state, decision: { action: 'none' } };
  const lastError: UploadError = {
    kind: failure.kind,
    message: failure.message,
    at: now,
    ...(failure.kind === 'homeserver' ? { status: failure.status, ...(failure.errcode ? { errcode: failure.errcode } : {}) } : {}),
  };
  if (failure.kind === 'homeserver') {
    const errcode = failure.errcode ?? '';
    // Spec: writes go only to the current version; 403 M_WRONG_ROOM_KEYS_VERSION carries the
    // current one, 404 M_NOT_FOUND means ours was deleted. Never switch silently: re-check trust.
    if ((failure.status === 403 && errcode === 'M_WRONG_ROOM_KEYS_VERSION') || (failure.status === 404 && errcode === 'M_NOT_FOUND')) {
      return {
        state: { ...state, lastError, retryAt: null },
        decision: { action: 'recheck-version', errcode, currentVersion: failure.currentVersion ?? null },
      };
    }
    if (failure.status === 401) {
      const reason: StopReason = { kind: 'signed-out', errcode: errcode || 'M_UNKNOWN_TOKEN' };
      return { state: { ...state, lastError, retryAt: null, stopped: reason }, decision: { action: 'stop', reason } };
    }
    if (failure.status === 429) {
      const attempt = state.attempt + 1;
      const wait = failure.retryAfterMs ?? backoffDelay(attempt - 1, random);
      const at = now + Math.max(0, wait);
      return { state: { ...state, attempt, lastError, retryAt: at }, decision: { action: 'retry', at } };
    }
  }
  // 5xx, other 4xx, network errors and timeouts: back off and try again. A persistent 4xx is shown
  // as the last error and retried at the capped rate rather than given up on: giving up loses keys.
  const attempt = state.attempt + 1;
  const at = now + backoffDelay(attempt - 1, random);
  return { state: { ...state, attempt, lastError, retryAt: at }, decision: { action: 'retry', at } };
}

/** Signing in again is what a `signed-out` stop asked for: uploading resumes at once. */
export function onSignedIn(state: UploadState): UploadState {
  return state.stopped?.kind === 'signed-out' ? { ...state, stopped: null, retryAt: null, attempt: 0 } : state;
}

export function onUploadSuccess(state: UploadState, response: { etag: string; count: number }, now: number): UploadState {
  return { ...state, attempt: 0, retryAt: null, lastSuccessAt: now, serverCount: response.count, serverEtag: response.etag };
}

/** The smallest batch a shrinking upload goes down to. */
export const MIN_BATCH = 10;

/**
 * Failures that may come from the size of the request halve the next batch: a timeout (a slow link
 * never gets a large body through in time), 413 M_TOO_LARGE, and a dropped connection, which is how
 * Synapse answers a body over its limit (reference §1.5). A drop that was only a network blip costs
 * a few smaller batches before the size doubles back.
 */
export function isSizeFailure(failure: UploadFailure): boolean {
  return failure.kind === 'connection' || (failure.kind === 'homeserver' && failure.status === 413);
}

export function shrinkBatch(state: UploadState, failedBatchSize: number): UploadState {
  return { ...state, batchLimit: Math.max(MIN_BATCH, Math.floor(failedBatchSize / 2)) };
}

/** After a success the batch doubles back towards the default. */
export function growBatch(state: UploadState, defaultSize: number): UploadState {
  if (state.batchLimit === null) return state;
  const next = state.batchLimit * 2;
  return { ...state, batchLimit: next >= defaultSize ? null : next };
}
