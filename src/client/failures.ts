/**
 * Which decryption failures mean "this device lacks the session's key", so that the vault may have
 * it. The codes are matrix-js-sdk's `DecryptionFailureCode` (src/crypto-api/index.ts) as strings,
 * so the kit needs no import of the SDK.
 */
import type { SessionRef } from '../shared/page-api.ts';

/** The key was never shared with this device, or only from a later message index on. */
export const MISSING_KEY_FAILURES: ReadonlySet<string> = new Set([
  'MEGOLM_UNKNOWN_INBOUND_SESSION_ID',
  'OLM_UNKNOWN_MESSAGE_INDEX',
]);

/**
 * A device reading history from before it existed gets one of these instead of
 * MEGOLM_UNKNOWN_INBOUND_SESSION_ID (…_NO_KEY_BACKUP, …_BACKUP_UNCONFIGURED, …_WORKING_BACKUP,
 * …_USER_NOT_JOINED): exactly the messages a vault restored from the backup can decrypt.
 */
export const HISTORICAL_FAILURE_PREFIX = 'HISTORICAL_MESSAGE_';

export function isMissingKeyFailure(reason: unknown): boolean {
  return typeof reason === 'string' && (MISSING_KEY_FAILURES.has(reason) || reason.startsWith(HISTORICAL_FAILURE_PREFIX));
}

/**
 * The session an event needs, if it failed to decrypt for want of its key; null for anything else
 * (decrypted, withheld, not encrypted, or not shaped like a `MatrixEvent`).
 */
export function missingSessionOf(event: unknown): SessionRef | null {
  if (typeof event !== 'object' || event === null) return null;
  const e = event as { decryptionFailureReason?: unknown; getRoomId?: unknown; getWireContent?: unknown };
  if (!isMissingKeyFailure(e.decryptionFailureReason)) return null;
  if (typeof e.getRoomId !== 'function' || typeof e.getWireContent !== 'function') return null;
  const roomId: unknown = (e.getRoomId as () => unknown).call(event);
  const content: unknown = (e.getWireContent as () => unknown).call(event);
  const sessionId = typeof content === 'object' && content !== null ? (content as { session_id?: unknown }).session_id : undefined;
  if (typeof roomId !== 'string' || roomId === '' || typeof sessionId !== 'string' || sessionId === '') return null;
  return { roomId, sessionId };
}
