import { ed25519 } from '@noble/curves/ed25519.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeBase64,
  encodeBase64,
  parseExportedSession,
  parseSessionKey,
  type CoreErrorKind,
} from '../../../src/core/index.ts';
import { kindOf, vectors } from './helpers.ts';

const v16 = vectors('session-keys.json').cases[0];
const backupVectors = vectors('backup-session-data.json');
const chain = vectors('secret-storage.json').chain;

/** An export-format key (0x01, 165 bytes) for a given index and Ed25519 public key. */
function exportKey(index: number, publicKey: Uint8Array, ratchet = new Uint8Array(128).fill(3)): Uint8Array {
  const bytes = new Uint8Array(165);
  bytes[0] = 1;
  new DataView(bytes.buffer).setUint32(1, index);
  bytes.set(ratchet, 5);
  bytes.set(publicKey, 133);
  return bytes;
}

/** A sharing-format key (0x02, 229 bytes), signed by its own Ed25519 key. */
function sharingKey(index: number): { text: string; bytes: Uint8Array; sessionId: string } {
  const { secretKey, publicKey } = ed25519.keygen();
  const signed = exportKey(index, publicKey);
  signed[0] = 2;
  const bytes = Uint8Array.of(...signed, ...ed25519.sign(signed, secretKey));
  return { text: encodeBase64(bytes), bytes, sessionId: encodeBase64(publicKey) };
}

describe('parseSessionKey (reference §6.1)', () => {
  it('reads the js-sdk export-format vector (V16)', () => {
    expect(parseSessionKey(v16.session_key)).toEqual({ version: 1, firstMessageIndex: v16.first_message_index, sessionId: v16.session_id });
  });

  it('reads every session key in the backup vectors; its key is the session id', () => {
    for (const c of backupVectors.decrypt.filter((c: any) => c.session_id)) {
      const info = parseSessionKey(JSON.parse(c.plaintext).session_key);
      expect(info.version).toBe(1);
      expect(info.sessionId).toBe(c.session_id);
    }
    for (const s of chain.sessions) expect(parseSessionKey(JSON.parse(s.plaintext).session_key).sessionId).toBe(s.session_id);
  });

  it('reads the first message index as a big-endian u32, all the way to 2^32 - 1', () => {
    fc.assert(fc.property(fc.nat({ max: 0xffffffff }), fc.uint8Array({ minLength: 32, maxLength: 32 }), (index, publicKey) => {
      const info = parseSessionKey(encodeBase64(exportKey(index, publicKey)));
      expect(info).toEqual({ version: 1, firstMessageIndex: index, sessionId: encodeBase64(publicKey) });
    }));
  });

  it('reads a sharing-format key and checks its signature', () => {
    const key = sharingKey(7);
    expect(parseSessionKey(key.text)).toEqual({ version: 2, firstMessageIndex: 7, sessionId: key.sessionId });
  });

  it('accepts a padded session key', () => {
    const key = sharingKey(1); // 229 bytes: padded base64 ends in "="
    expect(encodeBase64(key.bytes, true)).toMatch(/=$/);
    expect(parseSessionKey(encodeBase64(key.bytes, true)).sessionId).toBe(key.sessionId);
  });

  const v16Bytes = decodeBase64(v16.session_key);
  const changed = (bytes: Uint8Array, at: number, value: number): string => encodeBase64(Uint8Array.from(bytes, (b, i) => (i === at ? value : b)));
  const signedKey = sharingKey(0);
  const bad: Array<[string, string, CoreErrorKind]> = [
    ['not base64', v16.session_key.replace('A', '-'), 'base64'],
    ['empty', '', 'length'],
    ['version byte 0', changed(v16Bytes, 0, 0), 'session-version'],
    ['version byte 3', changed(v16Bytes, 0, 3), 'session-version'],
    ['export format one byte short', encodeBase64(v16Bytes.subarray(0, 164)), 'length'],
    ['export format one byte long', encodeBase64(Uint8Array.of(...v16Bytes, 0)), 'length'],
    ['version 2 with the export length', changed(v16Bytes, 0, 2), 'length'],
    ['version 1 with the sharing length', changed(signedKey.bytes, 0, 1), 'length'],
    ['sharing format with a broken signature', changed(signedKey.bytes, 228, signedKey.bytes[228]! ^ 1), 'signature'],
    ['sharing format with a changed index', changed(signedKey.bytes, 4, signedKey.bytes[4]! ^ 1), 'signature'],
    ['sharing format with an all-zero signature', encodeBase64(Uint8Array.of(...signedKey.bytes.subarray(0, 165), ...new Uint8Array(64))), 'signature'],
  ];
  it.each(bad)('refuses %s', async (_label, text, kind) => {
    expect(await kindOf(() => parseSessionKey(text))).toBe(kind);
  });
});

describe('parseExportedSession', () => {
  const rustEntry = { ...JSON.parse(chain.sessions[0].plaintext), room_id: chain.room_id, session_id: chain.sessions[0].session_id };

  it('validates an element of a key export and returns what to back up', () => {
    const exported = { ...JSON.parse(backupVectors.decrypt[0].plaintext), first_known_index: 0 };
    const session = parseExportedSession(exported);
    expect(session).toMatchObject({ roomId: '!room:id', sessionId: exported.session_id, firstMessageIndex: 0, senderKey: exported.sender_key, forwardingChainLength: 0 });
    const { room_id: _r, session_id: _s, ...rest } = exported;
    expect(session.data).toEqual(rest); // unknown members (m.shared_history, first_known_index) kept
    expect(session.data).not.toHaveProperty('room_id');
    expect(session.data).not.toHaveProperty('session_id');
  });

  it('keeps unknown members and counts the forwarding chain', () => {
    const session = parseExportedSession({ ...rustEntry, forwarding_curve25519_key_chain: ['a', 'b'] });
    expect(session.forwardingChainLength).toBe(2);
    expect(session.data['org.matrix.msc3061.shared_history']).toBe(true);
    expect(session.data.forwarding_curve25519_key_chain).toEqual(['a', 'b']);
  });

  it('accepts the legacy forwardingCurve25519KeyChain and writes the spec name for the backup', () => {
    const { forwarding_curve25519_key_chain: _c, ...withoutChain } = rustEntry;
    const legacy = parseExportedSession({ ...withoutChain, forwardingCurve25519KeyChain: ['k'] });
    expect(legacy.forwardingChainLength).toBe(1);
    expect(legacy.data.forwarding_curve25519_key_chain).toEqual(['k']);
    expect(legacy.data.forwardingCurve25519KeyChain).toEqual(['k']);
    const none = parseExportedSession(withoutChain);
    expect(none.forwardingChainLength).toBe(0);
    expect(none.data.forwarding_curve25519_key_chain).toEqual([]);
  });

  it('accepts a padded session_id', () => {
    expect(parseExportedSession({ ...rustEntry, session_id: `${rustEntry.session_id}=` }).sessionId).toBe(rustEntry.session_id);
  });

  const key = sharingKey(3);
  const bad: Array<[string, unknown, CoreErrorKind, RegExp]> = [
    ['not an object', 'session', 'field', /JSON object/],
    ['an array', [rustEntry], 'field', /JSON object/],
    ['no room_id', { ...rustEntry, room_id: undefined }, 'field', /room_id/],
    ['a room_id without "!"', { ...rustEntry, room_id: '#alias:example.org' }, 'field', /room_id/],
    ['no session_id', { ...rustEntry, session_id: undefined }, 'field', /session_id/],
    ['a numeric session_id', { ...rustEntry, session_id: 5 }, 'field', /session_id/],
    ['another algorithm', { ...rustEntry, algorithm: 'm.olm.v1.curve25519-aes-sha2' }, 'algorithm', /algorithm/],
    ['no sender_key', { ...rustEntry, sender_key: undefined }, 'field', /sender_key/],
    ['sender_claimed_keys as a string', { ...rustEntry, sender_claimed_keys: 'ed25519' }, 'field', /sender_claimed_keys/],
    ['sender_claimed_keys with a number', { ...rustEntry, sender_claimed_keys: { ed25519: 1 } }, 'field', /sender_claimed_keys/],
    ['a chain that is not an array', { ...rustEntry, forwarding_curve25519_key_chain: 'k' }, 'field', /forwarding_curve25519_key_chain/],
    ['a chain with a number', { ...rustEntry, forwarding_curve25519_key_chain: [1] }, 'field', /forwarding_curve25519_key_chain/],
    ['a legacy chain that is not an array', { ...rustEntry, forwarding_curve25519_key_chain: undefined, forwardingCurve25519KeyChain: {} }, 'field', /forwardingCurve25519KeyChain/],
    ['no session_key', { ...rustEntry, session_key: undefined }, 'field', /session_key/],
    ['a session_key that is not base64', { ...rustEntry, session_key: '!!!!' }, 'base64', /session_key/],
    ['a truncated session_key', { ...rustEntry, session_key: rustEntry.session_key.slice(0, 200) }, 'length', /session_key/],
    ['a sharing-format session_key', { ...rustEntry, session_key: key.text, session_id: key.sessionId }, 'session-version', /export format/],
    ['a session_key of another session', { ...rustEntry, session_id: chain.sessions[1].session_id }, 'session-id', /session_id/],
  ];
  it.each(bad)('refuses %s', async (_label, value, kind, message) => {
    expect(await kindOf(() => parseExportedSession(value))).toBe(kind);
    expect(() => parseExportedSession(value)).toThrow(message);
  });
});
