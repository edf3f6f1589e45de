/**
 * The worker's services, built once behind the one ready promise: the vault and the upload driver,
 * wired to the homeserver client and the alarms API.
 */
import type { HomeserverClient } from '../platform/homeserver.ts';
import type { UnlockStore } from '../platform/unlock-store.ts';
import type { Vault } from '../platform/vault.ts';
import type { WorkerStatus } from '../shared/messages.ts';
import { clientFor } from './account.ts';
import { toServerBackupInfo } from './backup.ts';
import { RestoreDriver, type EntryHelper, type RestoreServer } from './restore-driver.ts';
import { AppError, storageFailure } from './errors.ts';
import { SessionFetcher } from './session-fetch.ts';
import { AttemptLimiter } from './unlock.ts';
import { Sites } from './sites.ts';
import { sitePermissionPattern, type SitePlatform } from '../platform/sites.ts';
import type { SiteGrant } from '../platform/vault.ts';
import { UploadDriver, type BackupServer } from './upload-driver.ts';

/**
 * Sessions per upload request, chosen with `npm run bench:upload -- --sweep` (10,000 sessions,
 * Synapse 1.163 on SQLite over loopback, 2 cores, median of 3 runs per size):
 *
 *   batch                    100    250    500   1000   2000   5000
 *   KiB per PUT               84    211    422    843  1,686  4,216
 *   Synapse ms per PUT         8     14     20     28     46     98
 *   upload phase, s         1.57   1.23   0.96   0.82   0.76   0.82
 *   whole import, keys/s   2,239  2,427  2,591  2,690  2,734  2,689   (decrypt + ingest + upload)
 *
 * A PUT costs Synapse ≈ 6 ms plus ≈ 0.02 ms per session, so past 500 the whole import gains ≤ 6 %
 * (≈ 15 % for 1,000 with a simulated 50 ms round trip, `--rtt 50`). What grows is the body, 0.84 KiB
 * per session, and it must be sent within UPLOAD_TIMEOUT_MS: on a 1 Mbit/s uplink 500 sessions take
 * ≈ 3.5 s, 1,000 ≈ 7 s and 2,000 ≈ 14 s; 500 still fits at ≈ 0.25 Mbit/s, and on slower links a
 * timed-out batch is halved (src/core/upload/state.ts `shrinkBatch`). Synapse serialises one user's
 * room-keys writes (reference §1.5, "Writes for one user are serialised"), so a big request also
 * delays the user's other clients; its 12.5 MiB body limit is far away (sessions are capped at
 * 8 KiB, src/core/upload/request.ts).
 */
export const UPLOAD_BATCH_SIZE = 500;

/** Chrome kills a worker whose fetch takes over 30 s to answer; give up on an upload before that. */
export const UPLOAD_TIMEOUT_MS = 20_000;

/**
 * Entries per restore chunk: one vault lookup, one decryptMany, one write transaction. Larger
 * chunks amortise the transaction; smaller ones bound memory and lose less work to a kill.
 */
export const RESTORE_CHUNK_SIZE = 1000;
/** The wait for the download's first byte: under Chrome's 30 s limit for a worker's fetch. */
export const RESTORE_HEADERS_TIMEOUT_MS = 25_000;
/**
 * From this many entries (the version's `count`) a restore goes room by room at once: at 10⁶ Synapse
 * took 24–38 s to its first byte and 4–5 GB to build the whole answer (bench "Scale: Synapse at 10⁶
 * keys"); at 10⁵ the whole answer came in under 3 s and is the faster way.
 */
export const RESTORE_BY_ROOM_FROM = 200_000;
/** Room by room: rooms asked for ahead of the one being read (bench: 4 in flight all 10⁶ in 29 s, 1 at a time 39 s). */
export const RESTORE_ROOMS_AHEAD = 3;
/** The same wait after a failed download. */
export const RESTORE_PATIENT_HEADERS_TIMEOUT_MS = 120_000;
/** A download that sends nothing for this long is treated as a stalled connection. */
export const RESTORE_IDLE_TIMEOUT_MS = 30_000;

export interface Services {
  vault: Vault;
  driver: UploadDriver;
  restore: RestoreDriver;
  sessions: SessionFetcher;
  unlockStore: UnlockStore;
  unlockLimiter: AttemptLimiter;
  /** Sites allowed to use the page API. */
  sites: Sites;
  /** Tells the open tabs of allowed sites their status changed (never throws). */
  notifyPages(statusOf: (grant: SiteGrant) => Promise<unknown>): void;
  worker(): WorkerStatus;
  /**
   * The last storage failure of a background run (a full disk stops the vault writes of uploads and
   * restores); kept in memory because the vault itself may not take a write. Cleared by a run that
   * gets through.
   */
  storageProblem(): { kind: string; message: string; at: number } | null;
  /** Starts an upload run unless one is going; never throws (the driver records its own errors). */
  kickUpload(): void;
  /** Runs the active restore unless it runs already; never throws (the driver records its own errors). */
  kickRestore(): void;
}

export interface ServiceHooks {
  scheduleWake(at: number | null): Promise<void>;
  scheduleRestoreWake(at: number | null): Promise<void>;
  unlockStore: UnlockStore;
  sitePlatform: SitePlatform;
  keepAlive(): Promise<void>;
  worker(): WorkerStatus;
  /** Where an unexpected failure of a background run goes (the worker's console). */
  report(error: unknown): void;
  /** A second thread for a restore's decryption, where the browser offers one (restore-driver.ts). */
  decryptHelper?: EntryHelper;
}

/** The two calls the upload driver makes, on a homeserver client. */
export function backupServer(client: HomeserverClient, timeoutMs = UPLOAD_TIMEOUT_MS): BackupServer {
  return {
    putRoomKeys: (version, body) => client.putBackupKeys(version, body, { timeoutMs }),
    currentBackup: async () => {
      const info = await client.getLatestBackupVersion({ timeoutMs });
      return info ? toServerBackupInfo(info) : null;
    },
  };
}

export async function backupServerFor(vault: Vault): Promise<BackupServer | null> {
  const client = await clientFor(vault);
  return client ? backupServer(client) : null;
}

/** The restore's waits for a first byte (injectable, so a test can make the whole download time out). */
export interface RestoreTimeouts {
  /** The whole download's first try. */
  headersMs: number;
  /** The whole download after a failed one. */
  patientHeadersMs: number;
  /** Each room's download, and the room list, room by room. */
  roomHeadersMs: number;
}

export function restoreServer(client: HomeserverClient, timeouts: Partial<RestoreTimeouts> = {}): RestoreServer {
  const { headersMs = RESTORE_HEADERS_TIMEOUT_MS, patientHeadersMs = RESTORE_PATIENT_HEADERS_TIMEOUT_MS, roomHeadersMs = RESTORE_HEADERS_TIMEOUT_MS } = timeouts;
  const withSignal = (timeoutMs: number, signal?: AbortSignal) => ({ timeoutMs, ...(signal ? { signal } : {}) });
  return {
    currentBackup: () => client.getLatestBackupVersion({ timeoutMs: 20_000 }),
    // Synapse builds the whole answer before it sends a byte (reference §1.5), and Chrome may end a
    // worker whose fetch has not answered within 30 s: the first try gives up before that, and the
    // restore goes on room by room (a room's answer starts within 0.5 s even at 10⁶ keys; bench
    // "Scale: Synapse at 10⁶ keys"). A whole download after another failure waits longer.
    streamKeys: (version, signal, patient) => client.streamBackupKeys(version, withSignal(patient ? patientHeadersMs : headersMs, signal)),
    joinedRooms: (signal) => client.joinedRooms(withSignal(roomHeadersMs, signal)),
    streamRoomKeys: (version, roomId, signal) => client.streamBackupRoomKeys(version, roomId, withSignal(roomHeadersMs, signal)),
  };
}

/** Single-session backup fetches (for web pages) running at once, across all sites. */
export const SESSION_FETCH_SLOTS = 4;

/** Runs at most `size` tasks at once; the others wait their turn in order. */
export class Slots {
  #free: number;
  readonly #waiting: Array<() => void> = [];
  constructor(size: number) { this.#free = size; }
  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.#free > 0) this.#free--;
    else await new Promise<void>((resolve) => this.#waiting.push(resolve));
    try {
      return await task();
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#free++;
    }
  }
}

export function createServices(vault: Vault, hooks: ServiceHooks): Services {
  const newId = (): string => crypto.randomUUID();
  const fetchSlots = new Slots(SESSION_FETCH_SLOTS);
  const restore = new RestoreDriver({
    vault,
    server: async () => {
      const client = await clientFor(vault);
      return client ? restoreServer(client) : null;
    },
    unlocked: () => hooks.unlockStore.get(),
    scheduleWake: hooks.scheduleRestoreWake,
    keepAlive: hooks.keepAlive,
    now: Date.now,
    random: Math.random,
    newId,
    chunkSize: RESTORE_CHUNK_SIZE,
    idleTimeoutMs: RESTORE_IDLE_TIMEOUT_MS,
    byRoomFrom: RESTORE_BY_ROOM_FROM,
    roomsAhead: RESTORE_ROOMS_AHEAD,
    ...(hooks.decryptHelper ? { helper: hooks.decryptHelper } : {}),
    report: hooks.report,
  });
  const sessions = new SessionFetcher({
    vault,
    unlocked: () => hooks.unlockStore.get(),
    // However many sites ask, at most a few single-session fetches run at once: the homeserver and
    // the vault's own uploads and restores are not crowded out.
    getBackupSession: (version, roomId, sessionId) => fetchSlots.run(async () => {
      const client = await clientFor(vault);
      if (!client) throw new AppError('not-signed-in', 'Sign in to your Matrix account first.');
      return client.getBackupSessionKey(version, roomId, sessionId, { timeoutMs: 15_000 });
    }),
    now: Date.now,
  });
  const driver = new UploadDriver({
    vault,
    server: () => backupServerFor(vault),
    scheduleWake: hooks.scheduleWake,
    keepAlive: hooks.keepAlive,
    now: Date.now,
    random: Math.random,
    batchSize: UPLOAD_BATCH_SIZE,
  });
  let storageProblem: { kind: string; message: string; at: number } | null = null;
  const failed = (e: unknown): void => {
    const storage = storageFailure(e);
    if (storage) storageProblem = { kind: storage.kind, message: storage.message, at: Date.now() };
    hooks.report(e);
  };
  const succeeded = (): void => { storageProblem = null; };
  const sites = new Sites({
    vault,
    platform: hooks.sitePlatform,
    now: Date.now,
    newId,
    homeserverPattern: async () => {
      const account = await vault.getAccount();
      return account ? sitePermissionPattern(account.homeserverUrl) : null;
    },
  });
  return {
    vault,
    driver,
    restore,
    sessions,
    unlockStore: hooks.unlockStore,
    unlockLimiter: new AttemptLimiter(),
    sites,
    notifyPages(statusOf) {
      sites.notifyAll(statusOf).catch(hooks.report);
    },
    worker: hooks.worker,
    storageProblem: () => storageProblem,
    kickUpload() {
      driver.run().then((outcome) => { if (outcome === 'idle') succeeded(); }, failed);
    },
    kickRestore() {
      restore.run().then((outcome) => { if (outcome === 'done') succeeded(); }, failed);
    },
  };
}
