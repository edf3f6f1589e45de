/**
 * Opening a restore's backup entries: decrypt each, then check that it is a megolm session whose key
 * parses and whose id is its key (reference §2.2, §6.1). What comes out is what the vault keeps of a
 * plaintext: the session id, first index and sender key; the plaintext itself goes nowhere. The
 * service worker opens entries with this, and so does the decryption helper (a second thread, see
 * doc/architecture.md), whose answers the worker checks with `isOpenedList` before using them.
 */
import type { BackupDecryptor } from '../backup-cipher.ts';
import { parseExportedSession } from '../exported-session.ts';
import type { BackedUpSessionData, EncryptedSessionData } from '../types.ts';
import { RESTORE_FAILURE_KINDS, type RestoreFailureKind } from './state.ts';

export interface EntryToOpen {
  roomId: string;
  sessionId: string;
  sessionData: EncryptedSessionData;
}

export type OpenedEntry =
  | { ok: true; sessionId: string; firstMessageIndex: number; senderKey: string }
  | { ok: false; kind: RestoreFailureKind; reason: string };

/** Opens each entry; a bad entry is a failure in its place, a bug (not a bad entry) throws. */
export async function openEntries(decryptor: BackupDecryptor, entries: readonly EntryToOpen[]): Promise<OpenedEntry[]> {
  const opened = await decryptor.decryptMany(entries.map((e) => e.sessionData));
  return opened.map((result, i): OpenedEntry => {
    if (!result.ok) return { ok: false, kind: cipherFailureKind(result.error.kind), reason: result.error.message };
    const checked = checkPlaintext(entries[i]!, result.value);
    return 'kind' in checked ? { ok: false, ...checked } : { ok: true, ...checked };
  });
}

/** Whether `value` is a list of `length` opened entries, as openEntries makes them. */
export function isOpenedList(value: unknown, length: number): value is OpenedEntry[] {
  return Array.isArray(value) && value.length === length && value.every((v: unknown) => {
    if (typeof v !== 'object' || v === null) return false;
    const e = v as Record<string, unknown>;
    if (e.ok === true) return typeof e.sessionId === 'string' && typeof e.senderKey === 'string' && Number.isSafeInteger(e.firstMessageIndex);
    return e.ok === false && typeof e.reason === 'string' && (RESTORE_FAILURE_KINDS as readonly unknown[]).includes(e.kind);
  });
}

function cipherFailureKind(kind: string): RestoreFailureKind {
  switch (kind) {
    case 'base64':
    case 'mac':
    case 'padding':
    case 'json':
      return kind;
    case 'utf8':
      return 'json';
    default:
      return 'malformed';
  }
}

function checkPlaintext(entry: EntryToOpen, plaintext: BackedUpSessionData): { sessionId: string; firstMessageIndex: number; senderKey: string } | { kind: RestoreFailureKind; reason: string } {
  try {
    const parsed = parseExportedSession({ ...plaintext, room_id: entry.roomId, session_id: entry.sessionId });
    return { sessionId: parsed.sessionId, firstMessageIndex: parsed.firstMessageIndex, senderKey: parsed.senderKey };
  } catch (e) {
    const kind = (e as { kind?: unknown }).kind;
    if (typeof kind !== 'string') throw e;
    const reason = e instanceof Error ? e.message : String(e);
    switch (kind) {
      case 'algorithm':
        return { kind: 'algorithm', reason };
      case 'session-id':
        return { kind: 'session-id', reason };
      case 'base64':
      case 'length':
      case 'session-version':
      case 'signature':
        return { kind: 'session-key', reason };
      default:
        return { kind: 'malformed', reason };
    }
  }
}
