/**
 * Element's `OlmMachine` with an in-memory store, as a test peer.
 *
 * No server is involved: the machine's own `/keys/upload` and `/keys/query` requests stay pending
 * forever, which nothing here needs — creating and sharing megolm sessions with no recipients,
 * backing them up, exporting and importing them are all local operations.
 */
import { DeviceId, OlmMachine, RoomId, UserId } from '@matrix-org/matrix-sdk-crypto-wasm';
import { initPeer } from './wasm.ts';

export const defaultPeerUserId = '@peer:peer.test';

/** A fresh machine with a memory-only store (no `store_name`), so nothing outlives `close()`. */
export async function createPeerMachine(userId = defaultPeerUserId, deviceId = randomDeviceId()): Promise<OlmMachine> {
  await initPeer();
  const user = new UserId(userId);
  const device = new DeviceId(deviceId);
  try {
    return await OlmMachine.initialize(user, device);
  } finally {
    user.free();
    device.free();
  }
}

/**
 * Shut a machine down and release its wasm memory. `close()` consumes the object (calling anything on
 * it afterwards throws "null pointer passed to rust"), so a second call here is a no-op.
 */
export function closePeerMachine(machine: OlmMachine): void {
  if (closed.has(machine)) return;
  closed.add(machine);
  machine.close();
}
const closed = new WeakSet<OlmMachine>();

/** Run `use` with a `RoomId` that is freed afterwards (wasm objects are not garbage collected promptly). */
export async function withRoomId<T>(roomId: string, use: (room: RoomId) => Promise<T>): Promise<T> {
  const room = new RoomId(roomId);
  try {
    return await use(room);
  } finally {
    room.free();
  }
}

function randomDeviceId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  return `PEER${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('').toUpperCase()}`;
}
