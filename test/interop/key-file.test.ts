/**
 * Key files (spec "Key exports", `-----BEGIN MEGOLM SESSION DATA-----`) both ways between the core
 * and Element's crypto, on sessions an OlmMachine made. Low round counts keep it fast; one file each
 * way uses the default 500,000 rounds (≈ 0.5 s each on the reference machine).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_KEY_FILE_ROUNDS, decryptKeyFile, encryptKeyFile, parseExportedSession } from '../../src/core/index.ts';
import { closePeerMachine, decryptEvent, importExportedIntoFreshMachine, keyFileFromPeer, readKeyFileWithPeer } from '../peer/index.ts';
import { createPeerFixture, withoutIds, type PeerFixture } from './fixture.ts';

const passphrase = 'correct horse battery staple';
const unicodePassphrase = 'pässwörd ключ 🔑'; // UTF-8 must be hashed the same on both sides

let peer: PeerFixture;
beforeAll(async () => { peer = await createPeerFixture({ rooms: 3, sessionsPerRoom: 4, eventsPerSession: 1 }); });
afterAll(() => peer.close());

describe('the core writes a key file, Element reads it', () => {
  it('decryptExportedRoomKeys gives back the same sessions, which import and decrypt the events', async () => {
    const file = await encryptKeyFile(JSON.stringify(peer.exported), passphrase, 1000);
    const keys = readKeyFileWithPeer(file, passphrase);
    expect(keys).toEqual(peer.exported);

    const restored = await importExportedIntoFreshMachine(keys);
    try {
      expect({ imported: restored.importedCount, total: restored.totalCount }).toEqual({ imported: peer.sessions.length, total: peer.sessions.length });
      for (const event of peer.events) {
        const result = await decryptEvent(restored.machine, event.encrypted, event.roomId);
        expect({ type: result.type, content: result.content }).toEqual(event.plaintext);
      }
    } finally {
      closePeerMachine(restored.machine);
    }
  });

  it.each([1, 2, 100_000])('Element reads a file of %i rounds', async (rounds) => {
    const file = await encryptKeyFile(JSON.stringify(peer.exported), unicodePassphrase, rounds);
    expect(readKeyFileWithPeer(file, unicodePassphrase)).toEqual(peer.exported);
  });

  it(`Element reads a file at the default ${DEFAULT_KEY_FILE_ROUNDS} rounds`, async () => {
    const file = await encryptKeyFile(JSON.stringify(peer.exported), passphrase);
    expect(readKeyFileWithPeer(file, passphrase)).toEqual(peer.exported);
  });

  it('Element refuses it under another passphrase', async () => {
    const file = await encryptKeyFile(JSON.stringify(peer.exported), passphrase, 10);
    expect(() => readKeyFileWithPeer(file, `${passphrase}!`)).toThrow(expect.objectContaining({ kind: 'key-file', message: expect.stringMatching(/MAC/) }));
  });
});

describe('Element writes a key file, the core reads it', () => {
  it.each([1, 1000])('decryptKeyFile reads a file of %i rounds to the same JSON', async (rounds) => {
    const file = await keyFileFromPeer(peer.machine, unicodePassphrase, rounds);
    expect(JSON.parse(await decryptKeyFile(file, unicodePassphrase))).toEqual(peer.exported);
  });

  it('decryptKeyFile reads a file at Element\'s default 500,000 rounds', async () => {
    const file = await keyFileFromPeer(peer.exported, passphrase, 500_000);
    expect(JSON.parse(await decryptKeyFile(file, passphrase))).toEqual(peer.exported);
  });

  it('every session in it passes the core\'s import validation unchanged', async () => {
    const file = await keyFileFromPeer(peer.exported, passphrase, 1);
    const keys: unknown = JSON.parse(await decryptKeyFile(file, passphrase));
    expect(Array.isArray(keys)).toBe(true);
    for (const [i, key] of (keys as unknown[]).entries()) {
      const expected = peer.exported[i]!;
      expect(parseExportedSession(key)).toEqual({
        roomId: expected.room_id,
        sessionId: expected.session_id,
        firstMessageIndex: 0, // an OlmMachine exports its own sessions from their start
        senderKey: expected.sender_key,
        forwardingChainLength: 0,
        data: withoutIds(expected),
      });
    }
  });

  it('the core refuses it under another passphrase with kind hmac', async () => {
    const file = await keyFileFromPeer(peer.exported, passphrase, 10);
    await expect(decryptKeyFile(file, passphrase.toUpperCase())).rejects.toMatchObject({ kind: 'hmac' });
  });

  it('a 0-round file (the wasm writes one if asked) is refused with kind iterations, not misread', async () => {
    // PBKDF2 with 0 iterations is undefined (RFC 8018 requires c ≥ 1); WebCrypto refuses it too, so
    // Element Web's own reader cannot open such a file either.
    const file = await keyFileFromPeer(peer.exported, passphrase, 0);
    expect(readKeyFileWithPeer(file, passphrase)).toEqual(peer.exported);
    await expect(decryptKeyFile(file, passphrase)).rejects.toMatchObject({ kind: 'iterations' });
  });
});
