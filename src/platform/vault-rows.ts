/**
 * How a session is laid out on disk (vault schema 3). A vault of 10⁶ sessions took 1.85× the
 * server's own entries as readable objects (bench/README.md, "Disk"): every row repeated its member
 * names, the 43-character public key and base64 text a third larger than its bytes. A row now has
 * one-letter members, the public key as a small number (the vault's `publicKeys` list), and the
 * ciphertext and sender key as bytes.
 *
 * Lossless: bytes are kept only when the text is the one canonical spelling of them (unpadded
 * base64 that decodeBase64, which refuses stray bits, accepts), so `decodeRow(encodeRow(s))` gives
 * back the very strings it was given; anything else (a hand-edited entry, an old vault's row) is
 * kept as text.
 */
import { decodeBase64, encodeBase64 } from '../core/base64.ts';
import { isCoreError } from '../core/errors.ts';
import type { EncryptedSessionDataWire } from '../core/upload/request.ts';
import type { StoredSession } from './vault.ts';

/** A session as stored; see StoredSession for what each member means. */
export interface SessionRow {
  roomId: string;
  sessionId: string;
  /** firstMessageIndex */
  i: number;
  /** forwardedCount */
  f: number;
  /** senderKey: its 32 bytes, or its text */
  s: Uint8Array | string;
  /** publicKey: its number in the vault's `publicKeys` list */
  k: number;
  /** uploadedEpoch (the `pending` index is [k, e]) */
  e: number;
  /** sessionData: ephemeral (32) ‖ mac (8) ‖ ciphertext bytes, or the wire object */
  d: Uint8Array | EncryptedSessionDataWire;
  /** revision */
  v: number;
  /** storedAt */
  t: number;
  /** restoreId */
  r?: string;
}

const EPHEMERAL = 32;
const MAC = 8;

/** The bytes `text` is the canonical spelling of, or null. */
function canonicalBytes(text: string, length?: number): Uint8Array | null {
  if (typeof text !== 'string' || text.endsWith('=')) return null;
  let bytes: Uint8Array;
  try {
    bytes = decodeBase64(text);
  } catch (e) {
    if (!isCoreError(e)) throw e;
    return null; // not base64: kept as text (the caller checks nothing here; the row is only stored)
  }
  return length === undefined || bytes.length === length ? bytes : null;
}

function packSessionData(data: EncryptedSessionDataWire): Uint8Array | EncryptedSessionDataWire {
  const ephemeral = canonicalBytes(data.ephemeral, EPHEMERAL);
  const mac = ephemeral && canonicalBytes(data.mac, MAC);
  const ciphertext = mac && canonicalBytes(data.ciphertext);
  if (!ephemeral || !mac || !ciphertext || ciphertext.length === 0) {
    return { ephemeral: data.ephemeral, ciphertext: data.ciphertext, mac: data.mac };
  }
  const packed = new Uint8Array(EPHEMERAL + MAC + ciphertext.length);
  packed.set(ephemeral, 0);
  packed.set(mac, EPHEMERAL);
  packed.set(ciphertext, EPHEMERAL + MAC);
  return packed;
}

function unpackSessionData(d: SessionRow['d']): EncryptedSessionDataWire {
  if (!(d instanceof Uint8Array)) return { ephemeral: d.ephemeral, ciphertext: d.ciphertext, mac: d.mac };
  return {
    ephemeral: encodeBase64(d.subarray(0, EPHEMERAL)),
    ciphertext: encodeBase64(d.subarray(EPHEMERAL + MAC)),
    mac: encodeBase64(d.subarray(EPHEMERAL, EPHEMERAL + MAC)),
  };
}

export function encodeRow(session: StoredSession, keyNumber: number): SessionRow {
  const row: SessionRow = {
    roomId: session.roomId,
    sessionId: session.sessionId,
    i: session.firstMessageIndex,
    f: session.forwardedCount,
    s: canonicalBytes(session.senderKey, 32) ?? session.senderKey,
    k: keyNumber,
    e: session.uploadedEpoch,
    d: packSessionData(session.sessionData),
    v: session.revision,
    t: session.storedAt,
  };
  if (session.restoreId !== undefined) row.r = session.restoreId;
  return row;
}

export function decodeRow(row: SessionRow, publicKey: string): StoredSession {
  const session: StoredSession = {
    roomId: row.roomId,
    sessionId: row.sessionId,
    firstMessageIndex: row.i,
    forwardedCount: row.f,
    senderKey: typeof row.s === 'string' ? row.s : encodeBase64(row.s),
    publicKey,
    sessionData: unpackSessionData(row.d),
    uploadedEpoch: row.e,
    revision: row.v,
    storedAt: row.t,
  };
  if (row.r !== undefined) session.restoreId = row.r;
  return session;
}

/** A new revision: any number another copy of the row is very unlikely to have had (48 random bits). */
export function newRevision(): number {
  const [high, low] = crypto.getRandomValues(new Uint32Array(2));
  return (high! & 0xffff) * 2 ** 32 + low!;
}
