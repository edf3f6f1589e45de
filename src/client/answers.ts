/**
 * Checks of what the vault answers, before the kit hands any of it to the app or to matrix-js-sdk.
 * The provider is the extension's, but the page cannot tell an old extension or a bug from a good
 * answer: a key that does not match the session asked for must never reach `importRoomKeys`.
 */
import { isScope, type BackupResult, type ExportedRoomKey, type PageVaultStatus, type RoomKeyResult, type SessionRef } from '../shared/page-api.ts';
import { malformedAnswer } from './errors.ts';

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function checkStatus(value: unknown, method: string): PageVaultStatus {
  if (!isRecord(value)) throw malformedAnswer(method, 'the status is not an object');
  const { state, scopes, userId, backup } = value;
  if (state !== 'locked' && state !== 'unlocked') throw malformedAnswer(method, `state ${JSON.stringify(state)}`);
  if (!Array.isArray(scopes) || !scopes.every(isScope)) throw malformedAnswer(method, 'scopes is not a list of scopes');
  if (userId !== null && typeof userId !== 'string') throw malformedAnswer(method, 'userId is neither a string nor null');
  if (typeof backup !== 'boolean') throw malformedAnswer(method, 'backup is not a boolean');
  return { state, scopes: [...scopes], userId, backup };
}

export function checkScopes(value: unknown, method: string): PageVaultStatus['scopes'] {
  if (!isRecord(value) || !Array.isArray(value.scopes) || !value.scopes.every(isScope)) {
    throw malformedAnswer(method, 'scopes is not a list of scopes');
  }
  return [...value.scopes];
}

function isExportedRoomKey(value: unknown): value is ExportedRoomKey {
  return isRecord(value)
    && typeof value.algorithm === 'string'
    && typeof value.room_id === 'string'
    && typeof value.session_id === 'string'
    && typeof value.session_key === 'string'
    && typeof value.sender_key === 'string'
    && isRecord(value.sender_claimed_keys)
    && Array.isArray(value.forwarding_curve25519_key_chain);
}

/** One result per session asked for, in any order; a found key must be the key of that session. */
export function checkRoomKeys(value: unknown, asked: readonly SessionRef[], method: string): RoomKeyResult[] {
  if (!isRecord(value) || !Array.isArray(value.keys)) throw malformedAnswer(method, 'keys is not a list');
  const wanted = new Set(asked.map(refKey));
  const out: RoomKeyResult[] = [];
  for (const entry of value.keys as unknown[]) {
    if (!isRecord(entry) || typeof entry.roomId !== 'string' || typeof entry.sessionId !== 'string') {
      throw malformedAnswer(method, 'an entry has no roomId or sessionId');
    }
    const ref = { roomId: entry.roomId, sessionId: entry.sessionId };
    if (!wanted.has(refKey(ref))) throw malformedAnswer(method, `session ${ref.sessionId} in ${ref.roomId} was not asked for`);
    if (entry.found === false) {
      out.push({ ...ref, found: false });
    } else if (entry.found === true && isExportedRoomKey(entry.key)) {
      if (entry.key.room_id !== ref.roomId || entry.key.session_id !== ref.sessionId) {
        throw malformedAnswer(method, `the key returned for session ${ref.sessionId} is another session's`);
      }
      out.push({ ...ref, found: true, key: entry.key });
    } else {
      throw malformedAnswer(method, `the entry for session ${ref.sessionId} is neither found with a key nor not found`);
    }
  }
  return out;
}

/** One result per session sent, each with its index in the request. */
export function checkBackupResults(value: unknown, sent: number, method: string): BackupResult[] {
  if (!isRecord(value) || !Array.isArray(value.results)) throw malformedAnswer(method, 'results is not a list');
  return (value.results as unknown[]).map((entry): BackupResult => {
    if (!isRecord(entry) || !Number.isInteger(entry.index) || (entry.index as number) < 0 || (entry.index as number) >= sent) {
      throw malformedAnswer(method, 'a result has no index within the request');
    }
    const index = entry.index as number;
    const sessionId = typeof entry.sessionId === 'string' ? entry.sessionId : undefined;
    const base = sessionId === undefined ? { index } : { index, sessionId };
    if (entry.accepted === true) return { ...base, accepted: true };
    if (entry.accepted === false) {
      return { ...base, accepted: false, reason: String(entry.reason ?? 'no reason given'), kind: String(entry.kind ?? 'unknown') };
    }
    throw malformedAnswer(method, `result ${index} is neither accepted nor rejected`);
  });
}

/** A Map key for a session: the JSON of the pair, unambiguous whatever characters the ids hold. */
export function refKey(ref: SessionRef): string {
  return JSON.stringify([ref.roomId, ref.sessionId]);
}
