/**
 * Drives a restore (DESIGN flow 3): downloads the current backup as a stream (or, when the whole
 * download's first byte does not come in time, room by room), checks each entry by
 * decrypting it, and stores it in the vault in its backup-encrypted form (the server's
 * `session_data`: no plaintext at rest), marked as uploaded to that version. Each chunk's rows,
 * failures and counters are written in one transaction, tagged with the restore's id, so a worker
 * killed at any point resumes with a new download that skips what is done without decrypting it
 * again. Like the upload driver, retries are alarm times stored with the state, never sleeps.
 */
import { createBackupDecryptor, decodeBase64, type BackupDecryptor } from '../core/index.ts';
import { openEntries, type EntryToOpen, type OpenedEntry } from '../core/restore/open-entries.ts';
import {
  applyChunk, decideAfterPass, decideAfterRooms, doneCount, isActive, newRestore, onByRoom, onFinished, onPassFailed, onPassStarted, onResumed, onRoomsListed,
  type RestoreFailureKind, type RestoreState, type RestoreTimings,
} from '../core/restore/state.ts';
import { MAX_SESSION_JSON_BYTES } from '../core/upload/request.ts';
import { parseKeyBackupData, WireError, type BackupVersionInfo, type KeyBackupData } from '../core/wire.ts';
import type { UnlockedKey } from '../platform/unlock-store.ts';
import { newRevision, type PresentEntry, type RestoreFailureRow, type StoredSession, type Vault } from '../platform/vault.ts';
import { AppError } from './errors.ts';
import { backupEntryChunks, type RawBackupEntry } from '../platform/backup-stream.ts';
import { ConnectionError } from '../platform/homeserver.ts';
import { HelperError } from '../platform/decrypt-helper.ts';
import { toUploadFailure } from './upload-driver.ts';

/** What the restore needs from the homeserver. */
export interface RestoreServer {
  currentBackup(): Promise<BackupVersionInfo | null>;
  /**
   * `patient`: the previous download failed (e.g. the server took too long to start answering, as
   * Synapse does for a very large backup): wait longer for the first byte this time.
   */
  streamKeys(version: string, signal?: AbortSignal, patient?: boolean): Promise<ReadableStream<Uint8Array>>;
  /**
   * The rooms the user is joined to (`GET /joined_rooms`): a room-by-room restore's list. With
   * `streamRoomKeys`, what lets a restore go on room by room when the whole download's first byte
   * does not come within its header timeout; a server without them only downloads whole.
   */
  joinedRooms?(signal?: AbortSignal): Promise<string[]>;
  /** One room's keys as a stream (`GET /room_keys/keys/{roomId}`). */
  streamRoomKeys?(version: string, roomId: string, signal?: AbortSignal): Promise<ReadableStream<Uint8Array>>;
}

type RoomServer = Required<Pick<RestoreServer, 'joinedRooms' | 'streamRoomKeys'>>;

function roomServer(server: RestoreServer): RoomServer | null {
  const { joinedRooms, streamRoomKeys } = server;
  return joinedRooms && streamRoomKeys
    ? { joinedRooms: (signal) => joinedRooms.call(server, signal), streamRoomKeys: (v, r, signal) => streamRoomKeys.call(server, v, r, signal) }
    : null;
}

/** Entries on their way to one chunk, with what the chunk's write records besides them. */
interface Batch {
  entries: RawBackupEntry[];
  /** Rooms counted so far (whole: seen in this download; room by room: done and with keys). */
  rooms: number;
  /** Room by room: the rooms from the start of the list that are done once this chunk is written. */
  roomsDone?: number;
}

export interface RestoreDriverDeps {
  vault: Vault;
  server(): Promise<RestoreServer | null>;
  /** The unlocked key (memory-only storage), or null while locked. */
  unlocked(): Promise<UnlockedKey | null>;
  scheduleWake(at: number | null): Promise<void>;
  keepAlive(): Promise<void>;
  now(): number;
  random(): number;
  newId(): string;
  /** Entries per chunk: one lookup, one decryptMany, one write transaction. */
  chunkSize: number;
  /** A download that sends nothing for this long is a timeout. */
  idleTimeoutMs: number;
  /**
   * A backup counting this many entries or more is restored room by room from the start: Synapse
   * would spend longer than the header timeout (and gigabytes) building the whole answer.
   */
  byRoomFrom: number;
  /** Room by room: rooms asked for ahead of the one being read, so the server works while we do. */
  roomsAhead: number;
  /**
   * A second thread that opens entries beside the worker (src/platform/decrypt-helper.ts): each
   * entry's X25519 takes ≈ 60 µs of the calling thread in Chromium's WebCrypto, so the worker alone
   * is the restore's limit. Absent where the platform has none; `close` ends it after a run.
   */
  helper?: EntryHelper;
  /** Where a helper's failure goes (the run goes on without it). */
  report?(error: unknown): void;
}

/** Opens entries on another thread, with the unlocked key (base64) sent along for that request only. */
export interface EntryHelper {
  open(privateKey: string, entries: readonly EntryToOpen[]): Promise<OpenedEntry[]>;
  close(): Promise<void>;
}

/** Fewer entries than this are opened here: a trip to the helper would cost more than it saves. */
const MIN_TO_HELP = 32;

export type RestoreOutcome = 'idle' | 'done' | 'waiting' | 'locked' | 'cancelled' | 'failed' | 'signed-out';

/** A chunk decrypted and checked, waiting for its write. */
interface Prepared {
  chunk: { rows: StoredSession[]; present: PresentEntry[]; failures: RestoreFailureRow[]; rooms: number };
  timings: Partial<RestoreTimings>;
  roomsDone?: number;
}

type LookupResult = Awaited<ReturnType<Vault['restoreLookup']>>;

/** How long a decrypted chunk waits for the next one before it is written on its own. */
const FLUSH_AFTER_MS = 500;

const delay = (ms: number): Promise<undefined> => new Promise((resolve) => setTimeout(() => resolve(undefined), ms));

/** If the worker dies mid-download, this alarm resumes the restore. */
const RESUME_AFTER_MS = 60_000;

/**
 * Room by room: a chunk is written after at most this many rooms even when they hold fewer entries
 * than a chunk, so the checkpoint moves (a resumed pass asks for fewer rooms again) and the worker
 * is kept alive through a run of rooms without keys.
 */
const ROOMS_PER_CHECKPOINT = 25;

/**
 * Once a chunk's lookup before decrypting has found nothing, only every this-many-th chunk is looked
 * up until one finds something again. A fresh restore's lookups find nothing, and each costs a read
 * transaction that the chunk's write then waits behind; the write checks every entry again anyway,
 * so an entry held already is counted the same either way (it is only decrypted for nothing).
 */
const LOOKUP_EVERY_WHILE_EMPTY = 8;

export class RestoreDriver {
  private running: Promise<RestoreOutcome> | null = null;
  /** Aborts the running pass's download (cancel, lock, a new restore). */
  #interrupt: AbortController | null = null;

  /** The share of a chunk's entries sent to the helper, moved after each chunk so both finish together. */
  #share = 0.5;
  /** The helper failed during this run: the rest of the run opens everything here. */
  #helperDown = false;

  constructor(private readonly deps: RestoreDriverDeps) {}

  get isRunning(): boolean {
    return this.running !== null;
  }

  /** Starts a restore of the server's current backup with the unlocked key; it runs in the background. */
  async start(): Promise<RestoreState> {
    const { vault, now } = this.deps;
    const key = await this.deps.unlocked();
    if (!key) throw new AppError('locked', 'Unlock the vault with your recovery key first.');
    const current = await vault.getRestoreState();
    if (isActive(current)) throw new AppError('restore-running', 'A restore is already running; cancel it first to start again.');
    const server = await this.deps.server();
    if (!server) throw new AppError('not-signed-in', 'Sign in to your Matrix account first.');
    const info = await server.currentBackup();
    if (!info || info.state !== 'supported' || info.version !== key.version || info.publicKey !== key.publicKey) {
      throw new AppError('locked', 'The backup on the server changed since you unlocked; unlock again with its recovery key.');
    }
    const state = newRestore({ id: this.deps.newId(), userId: key.userId, version: info.version, publicKey: info.publicKey, serverCount: info.count, now: now() });
    await vault.startRestore(state);
    return state;
  }

  /** Stops the restore; what it stored stays (and counts as restored). */
  async cancel(): Promise<RestoreState | null> {
    const state = await this.deps.vault.getRestoreState();
    if (!isActive(state)) return state ?? null;
    const next = await this.deps.vault.updateRestore(state.id, (s) => (isActive(s) ? onFinished(s, 'cancelled', this.deps.now()) : null));
    this.interrupt();
    await this.deps.scheduleWake(null);
    return next;
  }

  /**
   * Ends the running pass's download now (the vault was locked, or the restore cancelled): the run
   * stops at once instead of after its next chunk, and nothing it had not written is written.
   */
  interrupt(): void {
    this.#interrupt?.abort();
  }

  /**
   * Runs the active restore until it is done or must wait; concurrent calls join the same run. A run
   * that ends because its restore was cancelled or replaced meanwhile hands over to the restore
   * that is active now (a Cancel followed by Restore must not leave the new one waiting).
   */
  run(): Promise<RestoreOutcome> {
    this.running ??= (async () => {
      for (;;) {
        const outcome = await this.#run();
        if (outcome !== 'cancelled' || !isActive(await this.deps.vault.getRestoreState())) return outcome;
      }
    })().finally(() => {
      this.running = null;
      this.#helperDown = false;
      // The helper holds nothing between requests; its page is closed until the next run needs it.
      this.deps.helper?.close().catch((e: unknown) => this.deps.report?.(e));
    });
    return this.running;
  }

  async #run(): Promise<RestoreOutcome> {
    const { vault, now } = this.deps;
    let state = await vault.getRestoreState();
    if (!isActive(state)) return 'idle';
    if (state.phase === 'waiting' && state.retryAt !== null && state.retryAt > now()) {
      await this.deps.scheduleWake(state.retryAt);
      return 'waiting';
    }
    const key = await this.deps.unlocked();
    // Locked (a browser restart forgot the key): the restore waits, and unlocking resumes it.
    if (!key) return 'locked';
    // Unlocked for another backup (the server's changed and the user proved the new one): this one
    // can never finish; it ends, keeping what it stored.
    if (key.version !== state.version || key.publicKey !== state.publicKey) {
      await this.#finish(state, 'failed', { kind: 'backup-changed', message: `The vault is now unlocked for backup version ${key.version}; the restore of version ${state.version} ended. Start a restore of the new version.` });
      return 'failed';
    }
    const pin = await vault.getPin();
    if (!pin || pin.publicKey !== state.publicKey) {
      await this.#finish(state, 'failed', { kind: 'backup-changed', message: 'The pinned backup key changed since this restore began.' });
      return 'failed';
    }
    const server = await this.deps.server();
    if (!server) return 'signed-out';
    const privateKey = decodeBase64(key.privateKey, 'the unlocked key');
    let decryptor: BackupDecryptor;
    try {
      decryptor = await createBackupDecryptor(privateKey);
    } finally {
      privateKey.fill(0);
    }
    const resumed = await vault.updateRestore(state.id, (s) => (isActive(s) ? onResumed(s, now()) : null));
    if (!resumed) return 'cancelled';
    state = resumed;

    let passesWithoutProgress = 0;
    try {
      for (;;) {
        await this.deps.scheduleWake(now() + RESUME_AFTER_MS);
        const info = await server.currentBackup();
        if (!info || info.version !== state.version) {
          await this.#finish(state, 'failed', {
            kind: 'backup-changed',
            message: `Backup version ${state.version} was ${info ? `replaced by version ${info.version}` : 'deleted'} on the server during the restore. The keys restored so far are kept.`,
          });
          return 'failed';
        }
        const before = doneCount(state);
        const started = await vault.updateRestore(state.id, (s) => (s.phase === 'running' ? onPassStarted(s, info.count, now()) : null));
        if (!started) return 'cancelled';
        state = started;
        if (state.source !== 'rooms' && info.count >= this.deps.byRoomFrom && roomServer(server)) {
          // Too large for one answer: room by room now, rather than after a header timeout's wait.
          const switched = await vault.updateRestore(state.id, (s) => (s.phase === 'running' ? onByRoom(s) : null));
          if (!switched) return 'cancelled';
          state = switched;
        }
        const passed = await this.#pass(server, decryptor, key.privateKey, state, pin.epoch);
        if (passed === 'locked') return 'locked';
        if (passed === 'by-room') {
          // Recorded with the restore: a pass after a kill goes on room by room too.
          const switched = await vault.updateRestore(state.id, (s) => (s.phase === 'running' ? onByRoom(s) : null));
          if (!switched) return 'cancelled';
          state = switched;
          continue;
        }
        if (!passed) return 'cancelled';
        state = passed;
        if (state.source === 'rooms') {
          // Every listed room is done: what the server counts beyond that is in rooms not listed.
          const after = await server.currentBackup();
          const decision = decideAfterRooms(state, after?.count ?? info.count);
          await this.#finish(state, 'done', decision.note);
          return 'done';
        }
        passesWithoutProgress = doneCount(state) > before ? 0 : passesWithoutProgress + 1;
        const after = await server.currentBackup();
        const decision = decideAfterPass(state, after?.count ?? info.count, passesWithoutProgress);
        if (decision.action === 'done') {
          const missing = Math.max(0, (after?.count ?? info.count) - doneCount(state));
          await this.#finish(state, 'done', missing > 0
            ? { kind: 'incomplete', message: `${missing} entries the server counts were not in its download.` }
            : undefined);
          return 'done';
        }
      }
    } catch (e) {
      return this.#onError(state, e);
    }
  }

  async #finish(state: RestoreState, phase: 'done' | 'failed', error?: { kind: string; message: string }): Promise<void> {
    await this.deps.vault.updateRestore(state.id, (s) => (s.phase === 'running' || s.phase === 'waiting' ? onFinished(s, phase, this.deps.now(), error) : null));
    await this.deps.scheduleWake(null);
  }

  async #onError(state: RestoreState, e: unknown): Promise<RestoreOutcome> {
    const failure = toUploadFailure(e);
    const { now, random } = this.deps;
    if (failure.kind === 'aborted') return 'cancelled';
    if (failure.kind === 'homeserver' && (failure.status === 404 || failure.status === 403 || failure.status === 401)) {
      const message = failure.status === 401
        ? 'The homeserver no longer accepts this extension\'s sign-in. Sign in again and start the restore again.'
        : `The homeserver refused the download: ${failure.message}`;
      await this.#finish(state, 'failed', { kind: failure.status === 401 ? 'signed-out' : 'homeserver', message });
      return 'failed';
    }
    // 429, 5xx, a dropped or stalled download, a malformed answer: pause and resume at the backoff
    // time (or the server's Retry-After). A bug (`internal`) is shown the same way, never swallowed.
    const waiting = await this.deps.vault.updateRestore(state.id, (s) => (s.phase === 'running' ? onPassFailed(s, {
      kind: failure.kind, message: failure.message, ...(failure.kind === 'homeserver' && failure.retryAfterMs !== undefined ? { retryAfterMs: failure.retryAfterMs } : {}),
    }, now(), random) : null));
    if (!waiting) return 'cancelled';
    await this.deps.scheduleWake(waiting.retryAt);
    return 'waiting';
  }

  /**
   * One full download (whole, or the listed rooms from the checkpoint on); returns the state after
   * it, null when the restore was cancelled meanwhile, or 'by-room' when the whole download's first
   * byte did not come within the header timeout and the server can be asked room by room.
   * Chunk N's write overlaps chunk N+1's decryption: N+1's lookup is issued first (IndexedDB runs
   * transactions in the order they were made, so a lookup made after the write would wait for it),
   * then N's write, then N+1 is decrypted. Their keys differ, so N+1's lookup needs nothing N writes.
   */
  async #pass(server: RestoreServer, decryptor: BackupDecryptor, privateKey: string, state: RestoreState, epoch: number): Promise<RestoreState | 'locked' | 'by-room' | null> {
    const { now, vault } = this.deps;
    const interrupt = new AbortController();
    this.#interrupt = interrupt;
    const options = { chunkSize: this.deps.chunkSize, idleTimeoutMs: this.deps.idleTimeoutMs };
    let chunks: AsyncGenerator<Batch>;
    if (state.source === 'rooms') {
      const byRoom = roomServer(server);
      if (!byRoom) throw new Error('This restore goes room by room, and the homeserver connection cannot list rooms.');
      let rooms = await vault.getRestoreRooms(state.id);
      if (!rooms) {
        // The rooms the account is in, and those the vault holds keys of for this backup key
        // (rooms it may have left since): one list per restore, kept beside its checkpoint.
        const listed = [...new Set([...await byRoom.joinedRooms(interrupt.signal), ...await vault.roomsHeldFor(state.publicKey)])];
        const kept = await vault.setRestoreRooms(state.id, listed, (s) => (s.phase === 'running' ? onRoomsListed(s, listed.length) : null));
        if (!kept) return null;
        state = kept;
        rooms = listed;
      }
      chunks = roomChunks(byRoom, state.version, rooms, state.roomsDone ?? 0, state.rooms, interrupt.signal, { ...options, roomsAhead: this.deps.roomsAhead });
    } else {
      let stream: ReadableStream<Uint8Array>;
      try {
        stream = await server.streamKeys(state.version, interrupt.signal, state.attempt > 0);
      } catch (e) {
        // No first byte in time (Synapse builds the whole answer before it sends any): room by room.
        if (e instanceof ConnectionError && e.reason === 'timeout' && roomServer(server) && !interrupt.signal.aborted) return 'by-room';
        throw e;
      }
      chunks = wholeChunks(stream, options);
    }
    let lastWake = now();
    let waiting: Prepared | null = null;
    /** A chunk's write: `issued` once its transaction needs nothing more of this thread, `done` once it is written. */
    const startWrite = (prepared: Prepared): { issued: Promise<void>; done: Promise<RestoreState | null> } => {
      const started = performance.now();
      let markIssued: () => void = () => undefined;
      const issued = new Promise<void>((resolve) => { markIssued = resolve; });
      const done = vault.commitRestoreChunk(state.id, prepared.chunk,
        (s, outcome) => applyChunk(s, {
          ...outcome, timings: { ...prepared.timings, store: performance.now() - started },
          ...(prepared.roomsDone !== undefined ? { roomsDone: prepared.roomsDone } : {}),
        }, now()), markIssued);
      return { issued, done };
    };
    const write = (prepared: Prepared): Promise<RestoreState | null> => startWrite(prepared).done;
    let waitedAt = performance.now();
    const ask = (): Promise<IteratorResult<Batch>> => {
      const asked = chunks.next();
      asked.catch(() => undefined); // awaited below, after a write that may come first
      return asked;
    };
    let next = ask();
    // The first chunks of a pass are looked up (a resumed pass meets what it did before the kill).
    let lookupsFind = true;
    let sinceLookup = 0;
    try {
      for (;;) {
        let result: IteratorResult<Batch>;
        if (waiting) {
          // A slow link: when the next chunk takes a while, write the one that is ready now, so
          // progress shows and a kill loses nothing decrypted.
          const raced = await Promise.race([next, delay(FLUSH_AFTER_MS)]);
          if (raced === undefined) {
            const written = await write(waiting);
            waiting = null;
            if (!written) { interrupt.abort(); return null; }
            state = written;
            result = await next;
          } else {
            result = raced;
          }
        } else {
          result = await next;
        }
        if (result.done) break;
        // The next chunk downloads (and the server prepares it) while this one is looked up,
        // decrypted and written.
        next = ask();
        const { entries: chunk, rooms, roomsDone } = result.value;
        const download = performance.now() - waitedAt;
        const lookupStarted = performance.now();
        // A restore that has recorded no failure has none to skip: no need to look for them.
        const look: boolean = lookupsFind || ++sinceLookup >= LOOKUP_EVERY_WHILE_EMPTY;
        const lookup: Promise<LookupResult> = look
          ? vault.restoreLookup(chunk.map((e) => [e.roomId, e.sessionId] as const), state.failed > 0)
          : Promise.resolve(chunk.map(() => ({})) as LookupResult);
        const writing = waiting ? startWrite(waiting) : null;
        waiting = null; // in flight: never written twice, whatever fails next
        writing?.done.catch(() => undefined); // awaited below; a failure must not surface as unhandled first
        const known = await lookup;
        const lookupMs = performance.now() - lookupStarted;
        if (look) {
          lookupsFind = known.some((k) => k.row !== undefined || k.failedBy !== undefined);
          sinceLookup = 0;
        }
        // The write's reads are answered before this thread turns to thousands of decryption tasks
        // (measured: 10⁵ keys, 22 of the writes' 25 s went to reads queued behind them).
        await writing?.issued;
        const prepared = await this.#prepare(decryptor, privateKey, state, epoch, chunk, known, rooms);
        if (roomsDone !== undefined) prepared.roomsDone = roomsDone;
        prepared.timings.download = download;
        prepared.timings.lookup = lookupMs;
        if (writing) {
          const written = await writing.done;
          if (!written) { interrupt.abort(); return null; }
          state = written;
        }
        waiting = prepared;
        // Locked meanwhile: stop with the key (what is decrypted and not written is dropped).
        const key = await this.deps.unlocked();
        if (!key || key.publicKey !== state.publicKey) {
          interrupt.abort();
          return 'locked';
        }
        // An extension API call resets the worker's idle timer; the alarm moves with the work.
        await this.deps.keepAlive();
        if (now() - lastWake > RESUME_AFTER_MS / 2) {
          lastWake = now();
          await this.deps.scheduleWake(lastWake + RESUME_AFTER_MS);
        }
        waitedAt = performance.now();
      }
    } catch (e) {
      if (interrupt.signal.aborted) return null; // cancelled, locked or replaced: nothing more is written
      // The download broke off: keep the chunk already decrypted, so the next pass need not open it
      // again (if that write fails too, the download's error is still the one reported).
      if (waiting) await write(waiting).catch(() => undefined);
      throw e;
    } finally {
      // Ends the download if the loop stopped early (the generator's finally cancels the reader).
      void chunks.return(undefined).catch(() => undefined);
    }
    if (waiting) {
      const written = await write(waiting);
      if (!written) return null;
      state = written;
    }
    return state;
  }

  /** Looks up, checks and decrypts one chunk: what its write transaction will store. */
  async #prepare(decryptor: BackupDecryptor, privateKey: string, state: RestoreState, epoch: number, chunk: readonly RawBackupEntry[], lookup: LookupResult, rooms: number): Promise<Prepared> {
    const { now } = this.deps;
    const decryptStarted = performance.now();
    const failures: RestoreFailureRow[] = [];
    const present: PresentEntry[] = [];
    const toOpen: Array<{ entry: RawBackupEntry; data: KeyBackupData }> = [];
    const fail = (entry: RawBackupEntry, kind: RestoreFailureKind, reason: string): void => {
      // Keyed by the ids as the server sent them, so a resumed pass finds it (only the reason is cut).
      failures.push({ roomId: entry.roomId, sessionId: entry.sessionId, restoreId: state.id, kind, reason: reason.slice(0, 500) });
    };
    chunk.forEach((entry, i) => {
      const known = lookup[i]!;
      if (known.row?.restoreId === state.id || known.failedBy === state.id) return; // handled before a kill
      if (entry.misplaced) {
        fail(entry, 'malformed', `The entry is not where the spec puts entries (rooms.${entry.roomId}.sessions must map session ids to entries).`);
        return;
      }
      let data: KeyBackupData;
      try {
        data = parseKeyBackupData(entry.value);
      } catch (e) {
        if (!(e instanceof WireError)) throw e;
        fail(entry, 'malformed', e.message);
        return;
      }
      // Held already, for this key, as good or better: no need to open it.
      if (known.row && known.row.publicKey === state.publicKey && known.row.firstMessageIndex <= data.first_message_index) {
        present.push({ roomId: entry.roomId, sessionId: entry.sessionId, serverFirstMessageIndex: data.first_message_index });
        return;
      }
      // Real sessions are under 1 KB; base64 grows by a third, so this bounds the plaintext.
      if (data.session_data.ciphertext.length > (MAX_SESSION_JSON_BYTES * 4) / 3 + 64) {
        fail(entry, 'too-large', `The entry is ${data.session_data.ciphertext.length} characters of ciphertext; real sessions are under 1,500.`);
        return;
      }
      toOpen.push({ entry, data });
    });

    const { opened, helped } = await this.#open(decryptor, privateKey,
      toOpen.map(({ entry, data }) => ({ roomId: entry.roomId, sessionId: entry.sessionId, sessionData: data.session_data })));
    const rows: StoredSession[] = [];
    opened.forEach((result, i) => {
      const { entry, data } = toOpen[i]!;
      if (!result.ok) {
        fail(entry, result.kind, result.reason);
        return;
      }
      rows.push({
        roomId: entry.roomId,
        sessionId: result.sessionId,
        firstMessageIndex: result.firstMessageIndex,
        forwardedCount: data.forwarded_count,
        senderKey: result.senderKey,
        publicKey: state.publicKey,
        sessionData: data.session_data,
        // Already in this version of the backup: never uploaded again.
        uploadedEpoch: epoch,
        revision: newRevision(),
        storedAt: now(),
      });
    });
    return { chunk: { rows, present, failures, rooms }, timings: { decrypt: performance.now() - decryptStarted, ...(helped > 0 ? { helped } : {}) } };
  }

  /**
   * Opens entries, a share of them on the helper's thread while the rest are opened here; the share
   * moves so that both finish together. A helper that fails is reported, its entries are opened here,
   * and the rest of the run goes without it.
   */
  async #open(decryptor: BackupDecryptor, privateKey: string, entries: readonly EntryToOpen[]): Promise<{ opened: OpenedEntry[]; helped: number }> {
    const helper = this.deps.helper;
    if (!helper || this.#helperDown || entries.length < MIN_TO_HELP) return { opened: await openEntries(decryptor, entries), helped: 0 };
    const split = Math.round(entries.length * this.#share);
    const away = entries.slice(0, split);
    const here = entries.slice(split);
    const started = performance.now();
    let awayMs = 0;
    const asked = helper.open(privateKey, away).then((opened) => { awayMs = performance.now() - started; return opened; });
    asked.catch(() => undefined); // awaited below, after this thread's share
    const local = await openEntries(decryptor, here);
    const hereMs = performance.now() - started;
    let remote: OpenedEntry[];
    try {
      remote = await asked;
      // Each answer must be for the entry in its place (the stored row takes its data from there).
      const misplaced = remote.findIndex((r, i) => r.ok && r.sessionId !== away[i]!.sessionId);
      if (misplaced >= 0) throw new HelperError(`The decryption helper answered entry ${misplaced} with another session.`);
    } catch (e) {
      this.#helperDown = true;
      this.deps.report?.(e);
      return { opened: [...await openEntries(decryptor, away), ...local], helped: 0 };
    }
    // Per entry, here and there: the share at which both would have finished together.
    const hereRate = hereMs / Math.max(1, here.length);
    const awayRate = awayMs / Math.max(1, away.length);
    const even = hereRate / (hereRate + awayRate);
    if (Number.isFinite(even)) this.#share = Math.min(0.9, Math.max(0.1, (this.#share + even) / 2));
    return { opened: [...remote, ...local], helped: away.length };
  }
}

/** The whole download's entries, with the rooms seen so far. */
async function* wholeChunks(stream: ReadableStream<Uint8Array>, options: { chunkSize: number; idleTimeoutMs: number }): AsyncGenerator<Batch> {
  const rooms = new Set<string>();
  for await (const entries of backupEntryChunks(stream, options)) {
    for (const entry of entries) rooms.add(entry.roomId);
    yield { entries, rooms: rooms.size };
  }
}

/**
 * The listed rooms from `from` on, their entries gathered into chunks as the whole download's are.
 * Each room is one `GET /room_keys/keys/{roomId}`; the next `roomsAhead` rooms are asked for while
 * one is read (Synapse builds each answer before it sends it), and read strictly in list order.
 * Each chunk carries the checkpoint it makes true once written: the rooms whose entries are all in
 * it or in earlier chunks. `withKeys`: rooms with keys among the first `from` (the state's count).
 */
async function* roomChunks(
  server: RoomServer, version: string, rooms: readonly string[], from: number, withKeys: number, signal: AbortSignal,
  options: { chunkSize: number; idleTimeoutMs: number; roomsAhead: number },
): AsyncGenerator<Batch> {
  const asked = new Map<number, Promise<ReadableStream<Uint8Array>>>();
  const ask = (i: number): void => {
    if (i >= rooms.length || asked.has(i)) return;
    const stream = server.streamRoomKeys(version, rooms[i]!, signal);
    stream.catch(() => undefined); // awaited in its turn; a room never read is cancelled below
    asked.set(i, stream);
  };
  let pending: RawBackupEntry[] = [];
  let roomsSince = 0;
  try {
    for (let i = from; i < rooms.length; i++) {
      const roomId = rooms[i]!;
      for (let j = i; j <= i + options.roomsAhead; j++) ask(j);
      const stream = await asked.get(i)!;
      asked.delete(i);
      let any = false;
      for await (const entries of backupEntryChunks(stream, { ...options, roomId })) {
        if (entries.length > 0) any = true;
        for (const entry of entries) pending.push(entry);
        if (pending.length >= options.chunkSize) {
          yield { entries: pending, rooms: withKeys, roomsDone: i };
          pending = [];
          roomsSince = 0;
        }
      }
      if (any) withKeys++;
      roomsSince++;
      if (pending.length >= options.chunkSize || roomsSince >= ROOMS_PER_CHECKPOINT) {
        yield { entries: pending, rooms: withKeys, roomsDone: i + 1 };
        pending = [];
        roomsSince = 0;
      }
    }
    if (pending.length > 0 || roomsSince > 0) yield { entries: pending, rooms: withKeys, roomsDone: rooms.length };
  } finally {
    // Stopped early (cancelled, locked, failed): the answers asked for ahead are not read.
    for (const stream of asked.values()) stream.then((s) => s.cancel(), () => undefined).catch(() => undefined);
  }
}
