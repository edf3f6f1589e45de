/**
 * The JSON shapes the peer reads and writes, as the wasm library produces them. Names follow the
 * spec's wire format (snake_case), not the core's types, so that these tests notice if the two drift.
 */

/** `BackedUpSessionData` (spec, "Server-side key backups"): the plaintext of one backup entry. */
export interface BackedUpSessionData {
  algorithm: string;
  sender_key: string;
  sender_claimed_keys: Record<string, string>;
  /** Session-export format (version byte 0x01, 165 bytes), unpadded base64. */
  session_key: string;
  /** Required by the spec; old writers omitted it, so readers treat it as optional. */
  forwarding_curve25519_key_chain?: string[];
  /** The rust SDK also writes `m.shared_history`; readers must keep unknown members. */
  [member: string]: unknown;
}

/** `ExportedSessionData` (spec, "Key exports"): one element of a key file or of `exportRoomKeys`. */
export interface ExportedSessionData extends BackedUpSessionData {
  room_id: string;
  session_id: string;
}

/** `session_data` for `m.megolm_backup.v1.curve25519-aes-sha2`. */
export interface EncryptedSessionData {
  ephemeral: string;
  ciphertext: string;
  mac: string;
}

/** `KeyBackupData`: one session as the backup stores it. */
export interface KeyBackupData {
  first_message_index: number;
  forwarded_count: number;
  is_verified: boolean;
  session_data: EncryptedSessionData;
}

/** The body of `PUT /room_keys/keys?version=…`. */
export interface KeysBackupBody {
  rooms: Record<string, { sessions: Record<string, KeyBackupData> }>;
}

/** One room event the peer encrypted, in the form a client receives it from `/sync`. */
export interface PeerEvent {
  roomId: string;
  sessionId: string;
  /** The whole `m.room.encrypted` event as JSON, ready for `decryptEvent`. */
  encrypted: string;
  /** What was encrypted: the event type and content a successful decryption must give back. */
  plaintext: { type: string; content: Record<string, unknown> };
}

/** One megolm session the peer created, with the events it encrypted with it. */
export interface PeerSession {
  roomId: string;
  sessionId: string;
  events: PeerEvent[];
}
