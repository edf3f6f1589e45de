/** Builds the body of `PUT /room_keys/keys?version=V` from stored sessions (reference §1.3). */

export interface EncryptedSessionDataWire {
  ephemeral: string;
  ciphertext: string;
  mac: string;
}

/** The part of a stored session that goes on the wire. */
export interface UploadableSession {
  roomId: string;
  sessionId: string;
  firstMessageIndex: number;
  forwardedCount: number;
  sessionData: EncryptedSessionDataWire;
}

export interface KeyBackupDataWire {
  first_message_index: number;
  forwarded_count: number;
  is_verified: boolean;
  session_data: EncryptedSessionDataWire;
}

export interface RoomKeysBody {
  rooms: Record<string, { sessions: Record<string, KeyBackupDataWire> }>;
}

export function buildRoomKeysBody(sessions: readonly UploadableSession[]): RoomKeysBody {
  const rooms: RoomKeysBody['rooms'] = {};
  for (const s of sessions) {
    const room = (rooms[s.roomId] ??= { sessions: {} });
    room.sessions[s.sessionId] = {
      first_message_index: s.firstMessageIndex,
      forwarded_count: s.forwardedCount,
      // Always false: the extension never verified the sender itself, and Synapse lets a verified
      // copy win over a better unverified one (reference §3.2), so claiming it could hurt.
      is_verified: false,
      session_data: s.sessionData,
    };
  }
  return { rooms };
}

/**
 * forwarded_count: at least 1, because the extension never holds a key first-hand.
 * SERVER BUG (Synapse, element-hq/synapse#13704): a stored key is replaced whenever the new one has a
 * lower forwarded_count, even if its first_message_index is worse. rust-sdk uploads every imported key
 * with forwarded_count 1, so a 0 from us would let our worse copy overwrite its better one. The
 * forwarding chain's length is used when it is longer.
 */
export function forwardedCountFor(forwardingChainLength: number): number {
  return Math.max(1, forwardingChainLength);
}

/**
 * The largest session the extension accepts, as plaintext JSON. Real ones are about 600 bytes; the
 * cap keeps a full batch (500 sessions, each growing by a third in base64) near 6 MB, well under
 * Synapse's 12.5 MiB request limit, so no single hostile or broken session can make every request
 * fail and block the queue behind it.
 */
export const MAX_SESSION_JSON_BYTES = 8 * 1024;
