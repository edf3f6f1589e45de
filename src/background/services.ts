/**
 * The worker's services, built once behind the one ready promise: the vault and the upload driver,
 * wired to the homeserver client and the alarms API.
 */
import type { Vault } from '../platform/vault.ts';
import type { WorkerStatus } from '../shared/messages.ts';
import { clientFor } from './account.ts';
import { toServerBackupInfo } from './backup.ts';
import { UploadDriver, type BackupServer } from './upload-driver.ts';

/**
 * Sessions per upload request. About 1 KB of JSON each, so far below Synapse's 12.5 MiB body limit;
 * chosen by `npm run bench:upload` (see bench/upload.ts for the figures).
 */
export const UPLOAD_BATCH_SIZE = 500;

/** Chrome kills a worker whose fetch takes over 30 s to answer; give up on an upload before that. */
export const UPLOAD_TIMEOUT_MS = 20_000;

export interface Services {
  vault: Vault;
  driver: UploadDriver;
  worker(): WorkerStatus;
  /** Starts an upload run unless one is going; never throws (the driver records its own errors). */
  kickUpload(): void;
}

export interface ServiceHooks {
  scheduleWake(at: number | null): Promise<void>;
  keepAlive(): Promise<void>;
  worker(): WorkerStatus;
  /** Where an unexpected failure of a background run goes (the worker's console). */
  report(error: unknown): void;
}

export async function backupServerFor(vault: Vault): Promise<BackupServer | null> {
  const client = await clientFor(vault);
  if (!client) return null;
  return {
    putRoomKeys: (version, body) => client.putBackupKeys(version, body, { timeoutMs: UPLOAD_TIMEOUT_MS }),
    currentBackup: async () => {
      const info = await client.getLatestBackupVersion({ timeoutMs: UPLOAD_TIMEOUT_MS });
      return info ? toServerBackupInfo(info) : null;
    },
  };
}

export function createServices(vault: Vault, hooks: ServiceHooks): Services {
  const driver = new UploadDriver({
    vault,
    server: () => backupServerFor(vault),
    scheduleWake: hooks.scheduleWake,
    keepAlive: hooks.keepAlive,
    now: Date.now,
    random: Math.random,
    batchSize: UPLOAD_BATCH_SIZE,
  });
  return {
    vault,
    driver,
    worker: hooks.worker,
    kickUpload() {
      driver.run().catch(hooks.report);
    },
  };
}
