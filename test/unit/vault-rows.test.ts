/**
 * The vault's disk layout (src/platform/vault-rows.ts): real sessions are stored as bytes, and
 * reading a row back gives exactly what was stored, whatever its strings.
 */
import { describe, expect, it } from 'vitest';
import { encodeBase64 } from '../../src/core/index.ts';
import { decodeRow, encodeRow, newRevision } from '../../src/platform/vault-rows.ts';
import type { StoredSession } from '../../src/platform/vault.ts';

const bytes = (n: number, fill: number): Uint8Array => new Uint8Array(n).fill(fill);

function session(overrides: Partial<StoredSession> = {}): StoredSession {
  return {
    roomId: '!room:example.org', sessionId: encodeBase64(bytes(32, 1)), firstMessageIndex: 3, forwardedCount: 1,
    senderKey: encodeBase64(bytes(32, 2)), publicKey: encodeBase64(bytes(32, 3)),
    sessionData: { ephemeral: encodeBase64(bytes(32, 4)), ciphertext: encodeBase64(bytes(480, 5)), mac: encodeBase64(bytes(8, 6)) },
    uploadedEpoch: 2, revision: 77, storedAt: 1_700_000_000_000,
    ...overrides,
  };
}

describe('vault rows', () => {
  it('keeps a real session as bytes: 520 bytes of envelope and 32 of sender key instead of their base64', () => {
    const row = encodeRow(session({ restoreId: 'r1' }), 4);
    expect(row.d).toBeInstanceOf(Uint8Array);
    expect((row.d as Uint8Array).length).toBe(32 + 8 + 480);
    expect(row.s).toBeInstanceOf(Uint8Array);
    expect(row).toMatchObject({ i: 3, f: 1, k: 4, e: 2, v: 77, t: 1_700_000_000_000, r: 'r1' });
    expect(decodeRow(row, session().publicKey)).toEqual(session({ restoreId: 'r1' }));
  });

  it('gives back the very strings it was given when they are not canonical base64 of the right length', () => {
    const odd: Array<Partial<StoredSession>> = [
      { senderKey: 'not base64!' },
      { senderKey: `${encodeBase64(bytes(32, 2))}=` }, // padded
      { senderKey: encodeBase64(bytes(31, 2)) }, // wrong length
      { sessionData: { ephemeral: `${encodeBase64(bytes(32, 4))}=`, ciphertext: 'AAAA', mac: encodeBase64(bytes(8, 6)) } },
      { sessionData: { ephemeral: encodeBase64(bytes(32, 4)), ciphertext: 'AAAB', mac: encodeBase64(bytes(8, 6)) } }, // stray bits
      { sessionData: { ephemeral: encodeBase64(bytes(32, 4)), ciphertext: '', mac: encodeBase64(bytes(8, 6)) } },
      { sessionData: { ephemeral: encodeBase64(bytes(32, 4)), ciphertext: 'AAAA', mac: encodeBase64(bytes(9, 6)) } },
      { sessionData: { ephemeral: 'e', ciphertext: 'c', mac: 'm' } },
    ];
    for (const overrides of odd) {
      const original = session(overrides);
      const row = encodeRow(original, 0);
      expect(decodeRow(row, original.publicKey), JSON.stringify(overrides)).toEqual(original);
    }
    expect(encodeRow(session({ senderKey: 'not base64!' }), 0).s).toBe('not base64!');
    expect(encodeRow(session({ sessionData: { ephemeral: 'e', ciphertext: 'c', mac: 'm' } }), 0).d).toEqual({ ephemeral: 'e', ciphertext: 'c', mac: 'm' });
  });

  it('does not share the row\'s bytes with what it decodes, nor keep members it does not know', () => {
    const original = session();
    const row = encodeRow({ ...original, extra: 'x' } as StoredSession, 0);
    expect(row).not.toHaveProperty('extra');
    const decoded = decodeRow(row, original.publicKey);
    (row.d as Uint8Array).fill(0);
    expect(decoded.sessionData).toEqual(original.sessionData);
  });

  it('makes revisions that are safe integers and differ', () => {
    const seen = new Set(Array.from({ length: 1000 }, () => newRevision()));
    expect(seen.size).toBe(1000);
    for (const r of seen) expect(Number.isSafeInteger(r) && r >= 0).toBe(true);
  });
});
