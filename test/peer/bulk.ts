/**
 * Thousands of backup entries written by Element's crypto, for restore tests and benchmarks.
 *
 * Why several machines: in wasm 18.9 each `backupRoomKeys()` call scans every session the machine's
 * memory store holds to find the next 100 not yet backed up, so one machine backing up n sessions
 * costs O(n²) (measured: 5,000 sessions ≈ 15 s, 10,000 ≈ 52 s). Split over machines of ~200 sessions
 * each it is linear (10,000 ≈ 7 s, create included). Each machine is a different device (its own
 * sender key), which is what a real account's backup looks like anyway.
 */
import { closePeerMachine, createPeerMachine } from './machine.ts';
import { exportSessions } from './keyExport.ts';
import { createSessionsInRooms } from './sessions.ts';
import { peerBackupRequests, type PeerBackupRequest } from './backup.ts';
import { PeerError } from './errors.ts';
import type { ExportedSessionData, PeerEvent, PeerSession } from './types.ts';

export interface PeerBackupOptions {
  sessions: number;
  /** Rooms the sessions are spread over, round-robin (default 10). */
  rooms?: number;
  /** Default 0: no events, fastest. */
  eventsPerSession?: number;
  /** Default 200, the fastest measured split. */
  sessionsPerMachine?: number;
}

export interface PeerBackup {
  /** Every PUT the machines would send, machine after machine. */
  requests: PeerBackupRequest[];
  sessions: PeerSession[];
  events: PeerEvent[];
  /** What each machine's `exportRoomKeys` reported: the expected plaintext of every entry. */
  exported: ExportedSessionData[];
}

export async function createPeerBackup(options: PeerBackupOptions, backupPublicKey: string, backupVersion: string): Promise<PeerBackup> {
  const { sessions: total, rooms = 10, eventsPerSession = 0, sessionsPerMachine = 200 } = options;
  if (!Number.isSafeInteger(total) || total < 0) throw new PeerError('argument', `createPeerBackup: sessions must be a whole number ≥ 0, got ${total}`);
  if (!Number.isSafeInteger(rooms) || rooms < 1) throw new PeerError('argument', `createPeerBackup: rooms must be ≥ 1, got ${rooms}`);
  if (!Number.isSafeInteger(sessionsPerMachine) || sessionsPerMachine < 1) throw new PeerError('argument', `createPeerBackup: sessionsPerMachine must be ≥ 1, got ${sessionsPerMachine}`);
  const tag = Array.from(crypto.getRandomValues(new Uint8Array(4)), (b) => b.toString(16).padStart(2, '0')).join('');
  const roomIds = Array.from({ length: rooms }, (_, r) => `!backup-${tag}-${r}:peer.test`);

  const result: PeerBackup = { requests: [], sessions: [], events: [], exported: [] };
  for (let first = 0; first < total; first += sessionsPerMachine) {
    const plan = new Map<string, number>();
    for (let k = first; k < Math.min(total, first + sessionsPerMachine); k++) {
      const roomId = roomIds[k % rooms]!;
      plan.set(roomId, (plan.get(roomId) ?? 0) + 1);
    }
    const machine = await createPeerMachine();
    try {
      const created = await createSessionsInRooms(machine, plan, eventsPerSession);
      result.sessions.push(...created.sessions);
      result.events.push(...created.events);
      result.exported.push(...await exportSessions(machine));
      result.requests.push(...await peerBackupRequests(machine, backupPublicKey, backupVersion));
    } finally {
      closePeerMachine(machine);
    }
  }
  return result;
}
