/**
 * Drives uploads: reads the pending sessions and the engine state from the vault, PUTs one batch at
 * a time, and writes the outcome back before the next step, so the worker can be killed at any point
 * and resume from the vault. Retries are alarm times stored with the state, never in-process sleeps.
 * A batch re-sent after a kill is harmless: the server keeps one entry per session.
 */
import { checkServerBackup, type ServerBackupInfo } from '../core/upload/pin.ts';
import { buildRoomKeysBody, type RoomKeysBody } from '../core/upload/request.ts';
import { decideOnFailure, growBatch, isSizeFailure, onUploadSuccess, shrinkBatch, type UploadFailure, type UploadState } from '../core/upload/state.ts';
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
  /** Told after every state change, so open pages can refresh. */
  onChange?(): void;
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

  private async saveState(state: UploadState): Promise<void> {
    await this.deps.vault.setUploadState(state);
    this.deps.onChange?.();
  }

  private async drain(): Promise<RunOutcome> {
    const { vault, now } = this.deps;
    for (;;) {
      const pin = await vault.getPin();
      if (!pin) return 'no-pin';
      let state = await vault.getUploadState();
      if (state.stopped) return 'stopped';
      if (state.retryAt !== null && state.retryAt > now()) {
        await this.deps.scheduleWake(state.retryAt);
        return 'waiting';
      }
      const limit = Math.min(this.deps.batchSize, state.batchLimit ?? this.deps.batchSize);
      const batch = await vault.pendingBatch(pin.publicKey, pin.epoch, limit);
      if (batch.length === 0) {
        await this.deps.scheduleWake(null);
        if (state.retryAt !== null) await this.saveState({ ...state, retryAt: null });
        return 'idle';
      }
      const server = await this.deps.server();
      if (!server) return 'signed-out';

      await this.deps.scheduleWake(now() + RESUME_AFTER_MS);
      try {
        const response = await server.putRoomKeys(pin.version, buildRoomKeysBody(batch));
        await vault.markUploaded(batch, pin.epoch);
        state = growBatch(onUploadSuccess(state, response, now()), this.deps.batchSize);
        await this.saveState(state);
        await this.deps.keepAlive();
        continue;
      } catch (e) {
        const failure = toUploadFailure(e);
        const decided = decideOnFailure(state, failure, now(), this.deps.random);
        const { decision } = decided;
        const failed = isSizeFailure(failure) ? shrinkBatch(decided.state, batch.length) : decided.state;
        switch (decision.action) {
          case 'none':
            return 'aborted';
          case 'retry':
            await this.saveState(failed);
            await this.deps.scheduleWake(decision.at);
            return 'waiting';
          case 'stop':
            await this.saveState(failed);
            await this.deps.scheduleWake(null);
            return 'stopped';
          case 'recheck-version': {
            let current: ServerBackupInfo | null;
            try {
              current = await server.currentBackup();
            } catch (recheckError) {
              const retry = decideOnFailure(failed, toUploadFailure(recheckError), now(), this.deps.random);
              await this.saveState(retry.state);
              if (retry.decision.action === 'retry') await this.deps.scheduleWake(retry.decision.at);
              return retry.decision.action === 'stop' ? 'stopped' : 'waiting';
            }
            const check = checkServerBackup(pin, current, now());
            if (check.outcome === 'follow') {
              await vault.setPinAndUploadState(check.pin, {
                ...failed, attempt: 0, retryAt: null, notice: { message: check.notice, at: now() },
              });
              this.deps.onChange?.();
              continue;
            }
            if (check.outcome === 'unchanged') {
              const retry = decideOnFailure(failed, { kind: 'internal', message: failed.lastError?.message ?? 'upload refused' }, now(), this.deps.random);
              await this.saveState(retry.state);
              if (retry.decision.action === 'retry') await this.deps.scheduleWake(retry.decision.at);
              return 'waiting';
            }
            await this.saveState({
              ...failed,
              retryAt: null,
              stopped: { kind: 'backup-changed', pinnedVersion: pin.version, currentVersion: check.currentVersion, errcode: decision.errcode },
            });
            await this.deps.scheduleWake(null);
            return 'stopped';
          }
        }
      }
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
