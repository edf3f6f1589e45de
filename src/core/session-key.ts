/**
 * Megolm session keys (reference §6.1, libolm `docs/megolm.md`, vodozemac `session_keys.rs`):
 *   export  (0x01, 165 bytes): V ‖ index (u32 BE) ‖ R0..R3 (4×32) ‖ Ed25519 key (32)
 *   sharing (0x02, 229 bytes): the same ‖ Ed25519 signature (64) over bytes 0..165
 * The session id is the unpadded base64 of the Ed25519 key.
 */
import { decodeBase64, encodeBase64 } from './base64.ts';
import { readUint32BE } from './bytes.ts';
import { verifyEd25519 } from './ed25519.ts';
import { CoreError } from './errors.ts';
import type { SessionKeyInfo } from './types.ts';

export const EXPORT_VERSION = 0x01;
export const SHARING_VERSION = 0x02;
const SIGNED_LENGTH = 1 + 4 + 4 * 32 + 32; // 165: everything the signature covers
const LENGTHS: Record<number, number> = { [EXPORT_VERSION]: SIGNED_LENGTH, [SHARING_VERSION]: SIGNED_LENGTH + 64 };
const PUBLIC_KEY_OFFSET = 133;

/** Reads version, first message index and session id; checks the signature of a sharing key. */
export function parseSessionKey(sessionKey: string): SessionKeyInfo {
  if (typeof sessionKey !== 'string') throw new CoreError('field', 'session_key must be a string');
  const bytes = decodeBase64(sessionKey, 'session_key');
  if (bytes.length === 0) throw new CoreError('length', 'session_key is empty');
  const version = bytes[0]!;
  const expected = LENGTHS[version];
  if (expected === undefined) {
    // Older copies of megolm.md claim 0x02 for the export format; it is 0x01 (olm commit 203083cd).
    throw new CoreError('session-version', `session_key has version byte ${version}; only 1 (export) and 2 (sharing) exist`);
  }
  if (bytes.length !== expected) {
    throw new CoreError('length', `session_key with version ${version} must be ${expected} bytes, got ${bytes.length}`);
  }
  const publicKey = bytes.subarray(PUBLIC_KEY_OFFSET, SIGNED_LENGTH);
  if (version === SHARING_VERSION && !verifyEd25519(bytes.subarray(SIGNED_LENGTH), bytes.subarray(0, SIGNED_LENGTH), publicKey)) {
    throw new CoreError('signature', 'session_key (sharing format) is not signed by its own Ed25519 key');
  }
  return {
    version: version as 1 | 2,
    firstMessageIndex: readUint32BE(bytes, 1),
    sessionId: encodeBase64(publicKey),
  };
}
