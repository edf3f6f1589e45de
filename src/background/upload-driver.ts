/**
 * Drives uploads: reads the pending sessions and the engine state from the vault, PUTs one batch at
 * a time, and writes the outcome back before the next step, so the worker can be killed at any point
 * and resume from the vault. Retries are alarm times stored with the state, never in-process sleeps.
 * A batch re-sent after a kill is harmless: the server keeps one entry per session.
 */
import { checkServerBackup, type BackupPin, type ServerBackupInfo } from '../core/upload/pin.ts';
import { buildRoomKeysBody, type RoomKeysBody } from '../core/upload/request.ts';
import {
  backoff, decideOnFailure, growBatch, isSizeFailure, onUploadSuccess, shrinkBatch,
  type FailureDecision, type StopReason, type UploadFailure, type UploadState,
} from '../core/upload/state.ts';
import type { Vault } from '../platform/vault.ts';

/** What the driver needs from the homeserver. */
export interface BackupServer {
  putRoomKeys(version: string, body: RoomKeysBody): Promise<{ etag: string; count: number }>;
  /** The current backup, or null when the account has none. */
  currentBackup(): Promise<ServerBackupInfo | null>;
}

export interface UploadDriverDeps {
  vault: Vault;
  /** A client for the signed-in account, or null when signed out. */
  server(): Promise<BackupServer | null>;
  /** Wake the driver at this time even if the worker was stopped (an alarm); null cancels. */
  scheduleWake(at: number | null): Promise<void>;
  /** Tells the browser the worker is busy (an extension API call resets its idle timer). */
  keepAlive(): Promise<void>;
  now(): number;
  random(): number;
  batchSize: number;
}

export type RunOutcome = 'idle' | 'waiting' | 'stopped' | 'no-pin' | 'signed-out' | 'aborted';

/** If the worker dies mid-request, this alarm resumes the upload. */
const RESUME_AFTER_MS = 60_000;

export class UploadDriver {
  private running: Promise<RunOutcome> | null = null;
  private again = false;

  constructor(private readonly deps: UploadDriverDeps) {}

  get isRunning(): boolean {
    return this.running !== null;
  }

  /** Runs until nothing is pending or the engine must wait; concurrent calls join the same run. */
  run(): Promise<RunOutcome> {
    if (this.running) {
      this.again = true; // sessions may have arrived after the running loop looked
      return this.running;
    }
    this.running = (async () => {
      let outcome: RunOutcome;
      do {
        this.again = false;
        outcome = await this.drain();
      } while (this.again && outcome === 'idle');
      return outcome;
    })().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async drain(): Promise<RunOutcome> {
    for (;;) {
      const outcome = await this.step();
      if (outcome !== 'continue') return outcome;
    }
  }

  /** One batch, from reading the vault to writing the outcome back: 'continue', or how the run ends. */
  private async step(): Promise<RunOutcome | 'continue'> {
    const { vault, now, batchSize } = this.deps;
    const pin = await vault.getPin();
    if (!pin) return 'no-pin';
    const state = await vault.getUploadState();
    if (state.stopped) return 'stopped';
    if (state.retryAt !== null && state.retryAt > now()) {
      await this.deps.scheduleWake(state.retryAt);
      return 'waiting';
    }
    const batch = await vault.pendingBatch(pin.publicKey, pin.epoch, Math.min(batchSize, state.batchLimit ?? batchSize));
    if (batch.length === 0) {
      await this.deps.scheduleWake(null);
      if (state.retryAt !== null) await vault.setUploadStateIfPinned(pin, { ...state, retryAt: null });
      return 'idle';
    }
    // Before anything that can fail or hang: if the worker dies from here on, this alarm resumes.
    await this.deps.scheduleWake(now() + RESUME_AFTER_MS);
    let server: BackupServer | null;
    try {
      server = await this.deps.server();
    } catch (e) {
      return this.onFailure(pin, state, null, toUploadFailure(e), batch.length);
    }
    if (!server) return 'signed-out';
    try {
      const response = await server.putRoomKeys(pin.version, buildRoomKeysBody(batch));
      await vault.markUploaded(batch, pin.epoch);
      await vault.setUploadStateIfPinned(pin, growBatch(onUploadSuccess(state, response, now()), batchSize));
      await this.deps.keepAlive();
      return 'continue';
    } catch (e) {
      return this.onFailure(pin, state, server, toUploadFailure(e), batch.length);
    }
  }

  private async onFailure(pin: BackupPin, state: UploadState, server: BackupServer | null, failure: UploadFailure, batchLength: number): Promise<RunOutcome | 'continue'> {
    const { now, random } = this.deps;
    const decided = decideOnFailure(state, failure, now(), random);
    const failed = isSizeFailure(failure) ? shrinkBatch(decided.state, batchLength) : decided.state;
    if (decided.decision.action !== 'recheck-version' || server === null) return this.settle(pin, failed, decided.decision);

    let current: ServerBackupInfo | null;
    try {
      current = await server.currentBackup();
    } catch (e) {
      const retry = decideOnFailure(failed, toUploadFailure(e), now(), random);
      return this.settle(pin, retry.state, retry.decision);
    }
    const check = checkServerBackup(pin, current, now());
    switch (check.outcome) {
      case 'follow':
        await this.deps.vault.followPin(pin, check.pin, { ...failed, attempt: 0, retryAt: null, notice: { message: check.notice, at: now() } });
        return 'continue';
      case 'unchanged': {
        const retry = decideOnFailure(failed, { kind: 'internal', message: failed.lastError?.message ?? 'upload refused' }, now(), random);
        return this.settle(pin, retry.state, retry.decision);
      }
      case 'stop': {
        const reason: StopReason = { kind: 'backup-changed', pinnedVersion: pin.version, currentVersion: check.currentVersion, errcode: decided.decision.errcode };
        return this.settle(pin, { ...failed, retryAt: null, stopped: reason }, { action: 'stop', reason });
      }
    }
  }

  /**
   * Writes a failure's state and schedules what it decided. The write happens only if the pin is still
   * the one this batch was for: when the user proved another backup's key meanwhile, that backup's
   * fresh state stands and the loop goes on with it.
   */
  private async settle(pin: BackupPin, state: UploadState, decision: FailureDecision): Promise<RunOutcome | 'continue'> {
    if (!(await this.deps.vault.setUploadStateIfPinned(pin, state))) return 'continue';
    switch (decision.action) {
      case 'none':
        return 'aborted';
      case 'stop':
        await this.deps.scheduleWake(null);
        return 'stopped';
      case 'retry':
      case 'recheck-version': // a re-check that itself was refused that way: try again later
        await this.deps.scheduleWake(state.retryAt ?? this.deps.now() + backoff.baseMs);
        return 'waiting';
    }
  }
}

/** Maps whatever the homeserver client threw onto the engine's three kinds of failure (plus bugs). */
export function toUploadFailure(e: unknown): UploadFailure {
  const err = (typeof e === 'object' && e !== null ? e : {}) as {
    kind?: unknown; message?: unknown; status?: unknown; errcode?: unknown; retryAfterMs?: unknown; currentVersion?: unknown; reason?: unknown;
  };
  const message = typeof err.message === 'string' ? err.message : String(e);
  switch (err.kind) {
    case 'homeserver':
      return {
        kind: 'homeserver',
        status: typeof err.status === 'number' ? err.status : 0,
        message,
        ...(typeof err.errcode === 'string' ? { errcode: err.errcode } : {}),
        ...(typeof err.retryAfterMs === 'number' ? { retryAfterMs: err.retryAfterMs } : {}),
        ...(typeof err.currentVersion === 'string' ? { currentVersion: err.currentVersion } : {}),
      };
    case 'connection':
      return { kind: 'connection', message, timedOut: err.reason === 'timeout' };
    case 'aborted':
      return { kind: 'aborted', message };
    default:
      return { kind: 'internal', message };
  }
}
