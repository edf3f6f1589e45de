/**
 * The one entry point for new sessions, whatever their source (an imported key file today, the page
 * API later): validate each, encrypt it at once to the pinned backup key, store it pending. Bad
 * sessions are rejected one by one with a reason; the good ones go ahead.
 */
import { encryptSessionData, parseExportedSession } from '../core/index.ts';
import { forwardedCountFor, MAX_SESSION_JSON_BYTES } from '../core/upload/request.ts';
import { isBetterCopy, newRevision, sessionKey, type StoredSession, type Vault } from '../platform/vault.ts';
import type { ImportSummary, RejectedSessionSummary } from '../shared/messages.ts';
import { AppError, noBackupMessage } from './errors.ts';

/** Encryptions in flight at once: enough to keep WebCrypto busy, few enough to bound memory. */
const ENCRYPT_CONCURRENCY = 64;

export interface IngestOptions {
  /**
   * Never replace a session the vault holds (sessions from a web page: an export-format key carries
   * no signature, so a page could forge a "better" copy of a real session and overwrite it).
   */
  onlyNew?: boolean;
  now?: () => number;
}

export async function ingestSessions(vault: Vault, sessions: readonly unknown[], options: IngestOptions = {}): Promise<ImportSummary> {
  const now = options.now ?? Date.now;
  const pin = await vault.getPin();
  if (!pin) throw new AppError('no-backup', noBackupMessage);

  const rejected: RejectedSessionSummary[] = [];
  const valid: Array<{ index: number; parsed: ReturnType<typeof parseExportedSession> }> = [];
  const utf8 = new TextEncoder();
  sessions.forEach((raw, index) => {
    try {
      const parsed = parseExportedSession(raw);
      const size = utf8.encode(JSON.stringify(parsed.data)).length;
      if (size > MAX_SESSION_JSON_BYTES) {
        throw new AppError('too-large', `This session is ${size} bytes of JSON; real ones are under 1 KB and at most ${MAX_SESSION_JSON_BYTES} are accepted.`);
      }
      valid.push({ index, parsed });
    } catch (e) {
      rejected.push({ index, ...routing(raw), kind: errorKind(e), reason: e instanceof Error ? e.message : String(e) });
    }
  });

  // Skip what is already held as good or better before paying for encryption.
  const stored = await vault.storedCopies(valid.map(({ parsed }) => [parsed.roomId, parsed.sessionId] as const));
  const needed = valid.filter(({ parsed }) => {
    const copy = stored.get(sessionKey(parsed.roomId, parsed.sessionId));
    return !copy || (!options.onlyNew && isBetterCopy({ firstMessageIndex: parsed.firstMessageIndex, publicKey: pin.publicKey }, copy));
  });

  const rows: StoredSession[] = [];
  for (let i = 0; i < needed.length; i += ENCRYPT_CONCURRENCY) {
    const chunk = needed.slice(i, i + ENCRYPT_CONCURRENCY);
    const encrypted = await Promise.all(chunk.map(({ parsed }) => encryptSessionData(pin.publicKey, parsed.data)));
    chunk.forEach(({ parsed }, j) => {
      rows.push({
        roomId: parsed.roomId,
        sessionId: parsed.sessionId,
        firstMessageIndex: parsed.firstMessageIndex,
        forwardedCount: forwardedCountFor(parsed.forwardingChainLength),
        senderKey: parsed.senderKey,
        publicKey: pin.publicKey,
        sessionData: encrypted[j]!,
        uploadedEpoch: 0,
        revision: newRevision(),
        storedAt: now(),
      });
    });
  }
  const outcomes = await vault.putSessions(rows, { onlyNew: options.onlyNew === true });
  const storedCount = outcomes.filter((o) => o === 'stored').length;
  return { stored: storedCount, unchanged: valid.length - storedCount, rejected };
}

function errorKind(e: unknown): string {
  const kind = (e as { kind?: unknown } | null)?.kind;
  return typeof kind === 'string' ? kind : 'invalid';
}

/** Whatever routing fields a rejected entry has, so the user can tell which session it was. */
function routing(raw: unknown): { roomId?: string; sessionId?: string } {
  if (typeof raw !== 'object' || raw === null) return {};
  const { room_id: roomId, session_id: sessionId } = raw as { room_id?: unknown; session_id?: unknown };
  return {
    ...(typeof roomId === 'string' ? { roomId: roomId.slice(0, 255) } : {}),
    ...(typeof sessionId === 'string' ? { sessionId: sessionId.slice(0, 255) } : {}),
  };
}
