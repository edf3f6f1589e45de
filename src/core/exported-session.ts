/**
 * Validation of one exported room key (spec `ExportedSessionData`, reference §6.1–6.2): an element
 * of a key-export file, or a backup plaintext with its room and session ids. Untrusted input: every
 * refusal names the member, so an importer can list a reason per session.
 */
import { unpadBase64 } from './base64.ts';
import { isJsonObject } from './bytes.ts';
import { CoreError } from './errors.ts';
import { EXPORT_VERSION, parseSessionKey } from './session-key.ts';
import type { BackedUpSessionData, ExportedSession } from './types.ts';
import { MEGOLM_ALGORITHM } from './types.ts';

function fieldError(member: string, what: string): CoreError {
  return new CoreError('field', `"${member}" ${what}`);
}

function requireString(value: Record<string, unknown>, member: string): string {
  const found = value[member];
  if (typeof found !== 'string' || found === '') throw fieldError(member, 'must be a non-empty string');
  return found;
}

function readChain(value: Record<string, unknown>): string[] {
  // Legacy libolm-era js-sdk wrote `forwardingCurve25519KeyChain` (vector V5c); rust-sdk defaults
  // a missing chain to [] (reference §2.2).
  const member = value.forwarding_curve25519_key_chain !== undefined ? 'forwarding_curve25519_key_chain' : 'forwardingCurve25519KeyChain';
  const chain = value[member];
  if (chain === undefined) return [];
  if (!Array.isArray(chain) || !chain.every((k) => typeof k === 'string')) throw fieldError(member, 'must be an array of strings');
  return chain as string[];
}

/** Validates one exported session; throws CoreError kinds field/algorithm/base64/length/session-version/session-id. */
export function parseExportedSession(value: unknown): ExportedSession {
  if (!isJsonObject(value)) throw new CoreError('field', 'a session must be a JSON object');
  const roomId = requireString(value, 'room_id');
  if (!roomId.startsWith('!')) throw fieldError('room_id', `must be a room id starting with "!", got ${JSON.stringify(roomId)}`);
  const sessionId = requireString(value, 'session_id');
  if (value.algorithm !== MEGOLM_ALGORITHM) {
    throw new CoreError('algorithm', `"algorithm" must be ${MEGOLM_ALGORITHM}, got ${JSON.stringify(value.algorithm)}`);
  }
  const senderKey = requireString(value, 'sender_key');
  const claimed = value.sender_claimed_keys;
  if (!isJsonObject(claimed) || !Object.values(claimed).every((k) => typeof k === 'string')) {
    throw fieldError('sender_claimed_keys', 'must be an object of strings');
  }
  const chain = readChain(value);
  const info = parseSessionKey(requireString(value, 'session_key'));
  if (info.version !== EXPORT_VERSION) {
    throw new CoreError('session-version', '"session_key" is in the sharing format (version 2); exports and backups need the export format (version 1)');
  }
  if (info.sessionId !== unpadBase64(sessionId)) {
    throw new CoreError('session-id', `"session_id" ${sessionId} is not the key embedded in "session_key" (${info.sessionId})`);
  }
  const { room_id: _roomId, session_id: _sessionId, ...rest } = value;
  // BackedUpSessionData requires the chain; write it under its spec name when only the legacy
  // spelling (or nothing) was given. Unknown members stay as they were.
  const data = { ...rest, forwarding_curve25519_key_chain: chain } as BackedUpSessionData;
  return { roomId, sessionId: info.sessionId, firstMessageIndex: info.firstMessageIndex, senderKey, forwardingChainLength: chain.length, data };
}
