/**
 * Real megolm sessions made by an `OlmMachine`, with room events encrypted under them.
 *
 * How, without a server: `shareRoomKey(room, [], settings)` with no recipients still creates the
 * outbound group session, and — as for every session a device creates — stores the matching inbound
 * session (first index 0), which is what `exportRoomKeys` and `backupRoomKeys` read.
 * `invalidateGroupSession` then makes the next `shareRoomKey` in that room start a new session. The
 * machine's own pending `/keys/query` is never answered and does not need to be: with no users to
 * share with, the machine asks for no device lists.
 *
 * Cost (2-core machine, Node 20): ≈ 0.2 ms per session and ≈ 0.2 ms per event, see measure.ts.
 */
import type { OlmMachine, RoomId } from '@matrix-org/matrix-sdk-crypto-wasm';
import { EncryptionSettings } from '@matrix-org/matrix-sdk-crypto-wasm';
import { PeerError } from './errors.ts';
import { withRoomId } from './machine.ts';
import type { PeerEvent, PeerSession } from './types.ts';
import { initPeer } from './wasm.ts';

export interface CreateSessionsOptions {
  rooms: number;
  sessionsPerRoom: number;
  /** Events encrypted per session (default 1); 0 is fastest and still yields real sessions. */
  eventsPerSession?: number;
}

export interface CreatedSessions {
  /** One per session, grouped by room; rooms are fresh, so they hold nothing else. */
  sessions: PeerSession[];
  /** Every event of every session, in the order they were encrypted. */
  events: PeerEvent[];
}

export async function createSessions(machine: OlmMachine, options: CreateSessionsOptions): Promise<CreatedSessions> {
  const { rooms, sessionsPerRoom, eventsPerSession = 1 } = options;
  checkCount('rooms', rooms);
  checkCount('sessionsPerRoom', sessionsPerRoom);
  const sender = machine.userId.toString();
  const server = sender.slice(sender.indexOf(':') + 1);
  // A random tag per call keeps the rooms fresh, so that tests can tell their sessions apart.
  const tag = Array.from(crypto.getRandomValues(new Uint8Array(4)), (b) => b.toString(16).padStart(2, '0')).join('');
  const plan = new Map(Array.from({ length: rooms }, (_, r) => [`!peer-${tag}-${r}:${server}`, sessionsPerRoom]));
  return createSessionsInRooms(machine, plan, eventsPerSession);
}

/**
 * Create `count` new sessions in each given room (rooms may already hold sessions; only the new ones
 * are returned), encrypting `eventsPerSession` events with each.
 */
export async function createSessionsInRooms(machine: OlmMachine, plan: ReadonlyMap<string, number>, eventsPerSession = 1): Promise<CreatedSessions> {
  checkCount('eventsPerSession', eventsPerSession);
  for (const count of plan.values()) checkCount('sessions per room', count);
  await initPeer();
  const sender = machine.userId.toString();
  const roomIds = new Set(plan.keys());
  const existing = new Set((await sessionsInRooms(machine, roomIds)).map((s) => s.sessionId));

  const events: PeerEvent[] = [];
  const settings = new EncryptionSettings();
  try {
    for (const [roomId, count] of plan) {
      await withRoomId(roomId, async (room) => {
        for (let s = 0; s < count; s++) {
          // Rotate: the next shareRoomKey then starts a new outbound session (and its inbound copy).
          await machine.invalidateGroupSession(room);
          await machine.shareRoomKey(room, [], settings);
          for (let e = 0; e < eventsPerSession; e++) {
            events.push(await encryptEvent(machine, room, roomId, sender, `${roomId} session ${s} event ${e}`));
          }
        }
      });
    }
  } finally {
    settings.free();
  }

  const sessions = (await sessionsInRooms(machine, roomIds)).filter((s) => !existing.has(s.sessionId));
  const bySessionId = new Map(sessions.map((session) => [session.sessionId, session]));
  for (const event of events) bySessionId.get(event.sessionId)?.events.push(event);
  const expected = [...plan.values()].reduce((a, b) => a + b, 0);
  if (sessions.length !== expected || events.some((e) => !bySessionId.has(e.sessionId))) {
    throw new PeerError('wire', `createSessions: expected ${expected} new sessions, the machine holds ${sessions.length}`);
  }
  return { sessions, events };
}

function checkCount(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new PeerError('argument', `createSessions: ${name} must be a whole number ≥ 0, got ${value}`);
}

async function encryptEvent(machine: OlmMachine, room: RoomId, roomId: string, sender: string, body: string): Promise<PeerEvent> {
  const plaintext = { type: 'm.room.message', content: { msgtype: 'm.text', body } };
  const content = JSON.parse(await machine.encryptRoomEvent(room, plaintext.type, JSON.stringify(plaintext.content))) as { session_id?: unknown };
  if (typeof content.session_id !== 'string') throw new PeerError('wire', 'encryptRoomEvent returned content without a session_id');
  // The decrypting side wants the event as /sync delivers it, not just the encrypted content.
  const encrypted = JSON.stringify({
    type: 'm.room.encrypted',
    content,
    sender,
    room_id: roomId,
    event_id: `$${crypto.randomUUID()}`,
    origin_server_ts: Date.now(),
  });
  return { roomId, sessionId: content.session_id, encrypted, plaintext };
}

/** The inbound sessions the machine holds for these rooms (the predicate exports nothing). */
async function sessionsInRooms(machine: OlmMachine, roomIds: ReadonlySet<string>): Promise<PeerSession[]> {
  const found: PeerSession[] = [];
  await machine.exportRoomKeys((session) => {
    const room = session.roomId;
    const roomId = room.toString();
    room.free();
    if (roomIds.has(roomId)) found.push({ roomId, sessionId: session.sessionId, events: [] });
    session.free(); // handed to JS by value: ours to free
    return false;
  });
  return found.sort((a, b) => (a.roomId < b.roomId ? -1 : a.roomId > b.roomId ? 1 : 0));
}
