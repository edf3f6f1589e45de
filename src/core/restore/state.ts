/**
 * The restore engine's persisted state and the decisions it makes, with no I/O (like
 * `src/core/upload/state.ts`): the service worker streams the backup, hands each chunk's outcome
 * here, and writes the new state back in the same transaction as the chunk's rows, so a worker
 * killed at any point resumes with counters that match what is stored.
 */
import { backoff, backoffDelay } from '../upload/state.ts';

/** Why one backup entry could not be restored (mirrors the wire kinds in src/shared). */
export const RESTORE_FAILURE_KINDS = ['malformed', 'base64', 'mac', 'padding', 'json', 'algorithm', 'session-key', 'session-id', 'too-large'] as const;
export type RestoreFailureKind = typeof RESTORE_FAILURE_KINDS[number];

export type RestorePhase = 'running' | 'waiting' | 'cancelled' | 'done' | 'failed';

export interface RestoreState {
  /** Marks the rows and failures this restore has handled, so a resumed pass skips them. */
  id: string;
  userId: string;
  version: string;
  publicKey: string;
  phase: RestorePhase;
  /** The server's count at the start of the latest pass. */
  serverCount: number;
  restored: number;
  alreadyPresent: number;
  failed: number;
  failuresByKind: Partial<Record<RestoreFailureKind, number>>;
  /** Rooms seen in the furthest pass (a resumed pass starts counting again). */
  rooms: number;
  /** Full downloads started (a resume after a kill or an error starts a new one). */
  passes: number;
  startedAt: number;
  finishedAt: number | null;
  /** Time spent running (for the rate), and when the current running stretch began. */
  activeMs: number;
  runningSince: number | null;
  attempt: number;
  retryAt: number | null;
  lastError: { kind: string; message: string; at: number } | null;
  /** Where the running time went, in ms (for benchmarks and for people asking why it is slow). */
  timings: RestoreTimings;
  /**
   * How this restore downloads. Absent or 'whole': one `GET /room_keys/keys`. 'rooms': one
   * `GET /room_keys/keys/{roomId}` per listed room, because the whole download's first byte did not
   * come within the header timeout (Synapse builds the whole answer first: 24–38 s at 10⁶ keys).
   * Kept with the restore, so a pass after a kill goes on room by room.
   */
  source?: 'whole' | 'rooms';
  /** Room by room: how many rooms were listed (the list itself is kept beside this state), or null before the list was taken. */
  roomsListed?: number | null;
  /** Room by room: the rooms from the start of the list whose entries are all handled (a resumed pass starts after them). */
  roomsDone?: number;
}

export interface RestoreTimings {
  /** Waiting for the download and parsing it. */
  download: number;
  /** Reading what the vault holds for each chunk. */
  lookup: number;
  decrypt: number;
  /** Writing each chunk's transaction. */
  store: number;
  /** Entries opened by the decryption helper (a second thread) rather than the worker. */
  helped?: number;
}

export function newRestore(init: { id: string; userId: string; version: string; publicKey: string; serverCount: number; now: number }): RestoreState {
  return {
    id: init.id, userId: init.userId, version: init.version, publicKey: init.publicKey,
    phase: 'running', serverCount: init.serverCount,
    restored: 0, alreadyPresent: 0, failed: 0, failuresByKind: {}, rooms: 0, passes: 0,
    startedAt: init.now, finishedAt: null, activeMs: 0, runningSince: null,
    attempt: 0, retryAt: null, lastError: null,
    timings: { download: 0, lookup: 0, decrypt: 0, store: 0 },
  };
}

export function isActive(state: RestoreState | undefined): state is RestoreState {
  return !!state && (state.phase === 'running' || state.phase === 'waiting');
}

/** Entries this restore has handled, in every pass together. */
export function doneCount(state: RestoreState): number {
  return state.restored + state.alreadyPresent + state.failed;
}

/** What one chunk did; added to the state in the chunk's own write transaction. */
export interface ChunkOutcome {
  restored: number;
  alreadyPresent: number;
  failures: RestoreFailureKind[];
  rooms: number;
  /** Time this chunk spent in each step (the store step: the previous chunk's write). */
  timings?: Partial<RestoreTimings>;
  /** Room by room: the rooms from the start of the list that are done once this chunk is written. */
  roomsDone?: number;
}

export function applyChunk(state: RestoreState, chunk: ChunkOutcome, now: number): RestoreState {
  const failuresByKind = { ...state.failuresByKind };
  for (const kind of chunk.failures) failuresByKind[kind] = (failuresByKind[kind] ?? 0) + 1;
  return {
    ...resumeClock(state, now),
    restored: state.restored + chunk.restored,
    alreadyPresent: state.alreadyPresent + chunk.alreadyPresent,
    failed: state.failed + chunk.failures.length,
    failuresByKind,
    rooms: Math.max(state.rooms, chunk.rooms),
    attempt: 0,
    timings: addTimings(state.timings ?? { download: 0, lookup: 0, decrypt: 0, store: 0 }, chunk.timings ?? {}),
    ...(chunk.roomsDone !== undefined ? { roomsDone: Math.max(state.roomsDone ?? 0, chunk.roomsDone) } : {}),
  };
}

function addTimings(a: RestoreTimings, b: Partial<RestoreTimings>): RestoreTimings {
  return {
    download: a.download + (b.download ?? 0),
    lookup: a.lookup + (b.lookup ?? 0),
    decrypt: a.decrypt + (b.decrypt ?? 0),
    store: a.store + (b.store ?? 0),
    ...(a.helped !== undefined || b.helped !== undefined ? { helped: (a.helped ?? 0) + (b.helped ?? 0) } : {}),
  };
}

/** Starts (or keeps) the running clock. */
function resumeClock(state: RestoreState, now: number): RestoreState {
  return state.runningSince === null ? { ...state, runningSince: now } : state;
}

/** Stops the running clock, adding the stretch to activeMs. */
function pauseClock(state: RestoreState, now: number): RestoreState {
  if (state.runningSince === null) return state;
  return { ...state, activeMs: state.activeMs + Math.max(0, now - state.runningSince), runningSince: null };
}

export function onPassStarted(state: RestoreState, serverCount: number, now: number): RestoreState {
  return { ...resumeClock(state, now), phase: 'running', passes: state.passes + 1, serverCount, retryAt: null };
}

/** Most passes one restore makes: a pass that ends short (keys added meanwhile) is followed by another. */
export const MAX_PASSES_WITHOUT_PROGRESS = 3;

export type PassDecision = { action: 'done' } | { action: 'again' };

/**
 * After a full download: done when every entry the server counts has been handled. Fewer means
 * entries arrived while the download ran (or the response was short): download again; the rows
 * already handled are skipped without being decrypted.
 */
export function decideAfterPass(state: RestoreState, serverCount: number, passesWithoutProgress: number): PassDecision {
  if (doneCount(state) >= serverCount) return { action: 'done' };
  return passesWithoutProgress >= MAX_PASSES_WITHOUT_PROGRESS ? { action: 'done' } : { action: 'again' };
}

/**
 * The whole download's first byte did not come within the header timeout: this restore goes on
 * room by room (the room list is taken at its next pass). What it stored stays, tagged with its id,
 * so nothing is decrypted again; `rooms` counts again, as rooms with keys among those done.
 */
export function onByRoom(state: RestoreState): RestoreState {
  return { ...state, source: 'rooms', roomsListed: null, roomsDone: 0, rooms: 0, attempt: 0, retryAt: null };
}

/** The room list is taken (and kept beside the state): no room is done yet. */
export function onRoomsListed(state: RestoreState, rooms: number): RestoreState {
  return { ...state, roomsListed: rooms, roomsDone: 0 };
}

/**
 * After every listed room: done. Entries the server counts beyond those handled are in rooms the
 * account no longer lists (rooms it left or forgot), or were added to rooms already done: the
 * restore ends with a note saying how many, rather than asking for the whole download again (the
 * one that did not answer in time). Starting the restore again later tries the whole download first.
 */
export function decideAfterRooms(state: RestoreState, serverCount: number): { action: 'done'; note?: { kind: 'unlisted-rooms'; message: string } } {
  const missing = Math.max(0, serverCount - doneCount(state));
  if (missing === 0) return { action: 'done' };
  return {
    action: 'done',
    note: {
      kind: 'unlisted-rooms',
      message: `${missing.toLocaleString('en')} ${missing === 1 ? 'key is' : 'keys are'} in rooms this account no longer lists (or came after their room was restored); ` +
        'they come with a whole download when the server answers in time: start the restore again later.',
    },
  };
}

export function onFinished(state: RestoreState, phase: 'done' | 'cancelled' | 'failed', now: number, error?: { kind: string; message: string }): RestoreState {
  return {
    ...pauseClock(state, now),
    phase,
    finishedAt: now,
    retryAt: null,
    ...(error ? { lastError: { ...error, at: now } } : {}),
  };
}

/** A server error or a dropped connection: pause, and resume at the backoff time (or the server's). */
export function onPassFailed(state: RestoreState, error: { kind: string; message: string; retryAfterMs?: number }, now: number, random: () => number): RestoreState {
  const attempt = state.attempt + 1;
  // The server's wait, within sense: not a hot loop, and not parked for longer than our own cap.
  const wait = error.retryAfterMs !== undefined ? Math.min(backoff.capMs, Math.max(backoff.baseMs, error.retryAfterMs)) : backoffDelay(attempt - 1, random);
  return {
    ...pauseClock(state, now),
    phase: 'waiting',
    attempt,
    retryAt: now + Math.max(0, wait),
    lastError: { kind: error.kind, message: error.message, at: now },
  };
}

/** A worker that was killed mid-pass left the clock running; a new worker starts a new stretch. */
export function onResumed(state: RestoreState, now: number): RestoreState {
  return { ...pauseClock(state, now), phase: 'running', retryAt: null, runningSince: now };
}

/** Keys per second over the running time, and the seconds left at that rate. */
export function restoreRate(state: RestoreState, now: number): { rate: number | null; secondsLeft: number | null } {
  const active = state.activeMs + (state.runningSince !== null && state.phase === 'running' ? Math.max(0, now - state.runningSince) : 0);
  const handled = doneCount(state);
  if (active < 500 || handled === 0) return { rate: null, secondsLeft: null };
  const rate = handled / (active / 1000);
  const left = Math.max(0, state.serverCount - handled);
  return { rate: Math.round(rate), secondsLeft: state.phase === 'done' ? 0 : Math.ceil(left / rate) };
}
