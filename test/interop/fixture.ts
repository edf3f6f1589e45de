/**
 * What every interop test starts from: an Element-crypto machine holding a few dozen real megolm
 * sessions, with events encrypted under each, and what `exportRoomKeys` says about them.
 */
import type { OlmMachine } from '@matrix-org/matrix-sdk-crypto-wasm';
import { closePeerMachine, createPeerMachine, createSessions, exportSessions, initPeer } from '../peer/index.ts';
import type { BackedUpSessionData, ExportedSessionData, PeerEvent, PeerSession } from '../peer/index.ts';

export interface PeerFixture {
  machine: OlmMachine;
  sessions: PeerSession[];
  events: PeerEvent[];
  exported: ExportedSessionData[];
  /** session id → what a backup entry of that session must decrypt to (the export minus its ids). */
  expectedBackupData: Map<string, BackedUpSessionData>;
  close(): void;
}

export async function createPeerFixture(shape = { rooms: 4, sessionsPerRoom: 6, eventsPerSession: 2 }): Promise<PeerFixture> {
  await initPeer();
  const machine = await createPeerMachine();
  const { sessions, events } = await createSessions(machine, shape);
  const exported = await exportSessions(machine);
  const expectedBackupData = new Map(exported.map((key) => [key.session_id, withoutIds(key)]));
  return { machine, sessions, events, exported, expectedBackupData, close: () => closePeerMachine(machine) };
}

/** `ExportedSessionData` → `BackedUpSessionData`: the backup plaintext has no room or session id. */
export function withoutIds(key: ExportedSessionData): BackedUpSessionData {
  const { room_id: _roomId, session_id: _sessionId, ...data } = key;
  return data as BackedUpSessionData;
}

export function randomPrivateKey(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(32));
}
