/**
 * The upload engine as the service worker wires it, in Node: the real vault on fake-indexeddb, the
 * real homeserver client against a real Synapse (optionally through the fault proxy), and a clock
 * the test can move forward instead of waiting out a backoff. "Alarms" are the test calling run()
 * again once the clock has passed the scheduled time.
 */
import 'fake-indexeddb/auto';
import { backupPublicKey, BACKUP_ALGORITHM } from '../../src/core/index.ts';
import type { BackupPin } from '../../src/core/upload/pin.ts';
import { backupServer as productionBackupServer } from '../../src/background/services.ts';
import { UploadDriver, type BackupServer, type RunOutcome } from '../../src/background/upload-driver.ts';
import { HomeserverClient } from '../../src/platform/homeserver.ts';
import { Vault } from '../../src/platform/vault.ts';
import { closePeerMachine, createPeerMachine, createSessions, exportSessions, type ExportedSessionData } from '../peer/index.ts';
import type { SynapseUser } from './synapse.ts';

let dbCount = 0;

export async function freshVault(): Promise<Vault> {
  return Vault.open(`rig-${process.pid}-${Date.now()}-${dbCount++}`);
}

/** Real sessions made by an Element-crypto OlmMachine, exported as a key file would hold them. */
export async function peerSessions(count: number, rooms = 10): Promise<ExportedSessionData[]> {
  const machine = await createPeerMachine();
  try {
    const perRoom = Math.ceil(count / rooms);
    await createSessions(machine, { rooms, sessionsPerRoom: perRoom, eventsPerSession: 0 });
    return (await exportSessions(machine)).slice(0, count);
  } finally {
    closePeerMachine(machine);
  }
}

export function randomKey(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(32));
}

/** Creates a backup version on the server for `privateKey` and returns it with its public key. */
export async function createServerBackup(client: HomeserverClient, privateKey: Uint8Array): Promise<{ version: string; publicKey: string }> {
  const publicKey = await backupPublicKey(privateKey);
  const version = await client.createBackupVersion({ algorithm: BACKUP_ALGORITHM, auth_data: { public_key: publicKey } });
  return { version, publicKey };
}

export function pinFor(user: SynapseUser, version: string, publicKey: string, epoch = 1): BackupPin {
  return { userId: user.userId, version, publicKey, epoch, source: 'proved', pinnedAt: Date.now() };
}

export interface Rig {
  vault: Vault;
  driver: UploadDriver;
  /** Milliseconds the test has moved the clock forward. */
  skew(): number;
  /** Runs the driver as alarms would: again and again, jumping the clock to each wake time, until it settles. */
  runUntilSettled(maxRuns?: number): Promise<RunOutcome>;
  puts(): number;
  /** Sessions in each PUT the driver attempted, in order. */
  batchSizes(): number[];
  wakes(): Array<number | null>;
}

export function uploadRig(vault: Vault, server: () => Promise<BackupServer | null>, options: { batchSize?: number } = {}): Rig {
  let skew = 0;
  let puts = 0;
  const batchSizes: number[] = [];
  const wakes: Array<number | null> = [];
  const now = () => Date.now() + skew;
  const countingServer = async (): Promise<BackupServer | null> => {
    const s = await server();
    if (!s) return null;
    return {
      ...s,
      putRoomKeys: (v, b) => {
        puts++;
        batchSizes.push(Object.values(b.rooms).reduce((n, room) => n + Object.keys(room.sessions).length, 0));
        return s.putRoomKeys(v, b);
      },
    };
  };
  const driver = new UploadDriver({
    vault,
    server: countingServer,
    scheduleWake: async (at) => { wakes.push(at); },
    keepAlive: async () => {},
    now,
    random: Math.random,
    batchSize: options.batchSize ?? 100,
  });
  return {
    vault,
    driver,
    skew: () => skew,
    puts: () => puts,
    batchSizes: () => batchSizes.slice(),
    wakes: () => wakes,
    async runUntilSettled(maxRuns = 500) {
      for (let i = 0; i < maxRuns; i++) {
        const outcome = await driver.run();
        if (outcome !== 'waiting') return outcome;
        const { retryAt } = await vault.getUploadState();
        if (retryAt !== null && retryAt > now()) skew += retryAt - now();
      }
      throw new Error(`the upload did not settle in ${maxRuns} runs`);
    },
  };
}

/** The production wiring (src/background/services.ts), with a shorter timeout for tests. */
export function backupServer(client: HomeserverClient, timeoutMs = 5_000): BackupServer {
  return productionBackupServer(client, timeoutMs);
}
