/**
 * attachKeyVault, hand-over direction: new sessions of a real matrix-js-sdk 43 client (Rust crypto)
 * reach the fake vault's vault_backupRoomKeys through the Rust machine's room-key callback and
 * `exportRoomKeys`, batched, once each, and only while the site holds 'backup'.
 */
import { EncryptionSettings, RoomId } from '@matrix-org/matrix-sdk-crypto-wasm';
import type { MatrixClient } from 'matrix-js-sdk';
import { afterEach, describe, expect, it } from 'vitest';
import { attachKeyVault, type Attachment, type AttachOptions } from '../../../src/client/attach.ts';
import type { KitOlmMachine } from '../../../src/client/olm-machine.ts';
import { KeyVault } from '../../../src/client/vault.ts';
import { ErrorCode, type PageVaultStatus } from '../../../src/shared/page-api.ts';
import { announcement, createTestClient, deliver, FakeProvider, peerKeys, sleep, until } from './harness.ts';

let client: MatrixClient | undefined;
let attachment: Attachment | undefined;

afterEach(() => {
  attachment?.detach();
  client?.stopClient();
  attachment = undefined;
  client = undefined;
});

type Callback = Parameters<KitOlmMachine['registerRoomKeyUpdatedCallback']>[0];

/**
 * The client's Rust machine, with its exportRoomKeys calls counted (each is a pass over every key)
 * and the callbacks registered on it kept, so a test can fire one again as the machine may.
 */
function machineOf(c: MatrixClient): KitOlmMachine & { exports: number; callbacks: Callback[] } {
  const machine = (c.getCrypto() as unknown as { olmMachine: KitOlmMachine & { exports: number; callbacks: Callback[] } }).olmMachine;
  const exportRoomKeys = machine.exportRoomKeys.bind(machine);
  const register = machine.registerRoomKeyUpdatedCallback.bind(machine);
  machine.exports = 0;
  machine.callbacks = [];
  machine.exportRoomKeys = (predicate) => {
    machine.exports++;
    return exportRoomKeys(predicate);
  };
  machine.registerRoomKeyUpdatedCallback = (callback) => {
    machine.callbacks.push(callback);
    register(callback);
  };
  return machine;
}

async function setUp(status: Partial<PageVaultStatus> = {}, options: AttachOptions = {}) {
  client = await createTestClient();
  const machine = machineOf(client);
  const provider = new FakeProvider();
  provider.status = { ...provider.status, ...status };
  const errors: Error[] = [];
  attachment = attachKeyVault(client, new KeyVault(announcement(provider)), { debounceMs: 10, handOverDelayMs: 50, onError: (e) => errors.push(e), ...options });
  await until('the status', () => provider.callsOf('vault_status').length === 1);
  await sleep(0);
  return { client, machine, provider, attachment, errors };
}

const sentIds = (provider: FakeProvider): string[] => provider.backedUp.map((k) => k.session_id as string);

describe('handing new sessions to the vault', () => {
  it('hands over keys the app imports, as exported by the client (key-export shape)', async () => {
    const { client, provider, attachment } = await setUp();
    expect(attachment.handOver).toBe('on');
    const peer = await peerKeys(2, 3);
    await client.getCrypto()!.importRoomKeys(peer.keys);
    await until('6 sessions handed over', () => attachment.stats.sessionsHandedOver === 6);
    expect(sentIds(provider).sort()).toEqual(peer.keys.map((k) => k.session_id).sort());
    const sent = provider.backedUp.find((k) => k.session_id === peer.keys[0]!.session_id)!;
    expect(sent).toMatchObject({ room_id: peer.keys[0]!.room_id, session_key: expect.stringMatching(/^AQ/), algorithm: 'm.megolm.v1.aes-sha2' });
    expect(provider.callsOf('vault_backupRoomKeys')).toHaveLength(1);
  });

  it("hands over the client's own new outbound session", async () => {
    const { client, machine, provider, attachment } = await setUp();
    const room = new RoomId('!outbound:kit.test');
    const settings = new EncryptionSettings();
    // What the client does before sending its first message in a room (no members to share with here).
    await (machine as unknown as { shareRoomKey(r: RoomId, users: never[], s: EncryptionSettings): Promise<unknown> }).shareRoomKey(room, [], settings);
    settings.free();
    room.free();
    await until('the outbound session handed over', () => attachment.stats.sessionsHandedOver === 1);
    expect(provider.backedUp[0]).toMatchObject({ room_id: '!outbound:kit.test', sender_key: expect.any(String) });
    expect(client.getUserId()).toBe(provider.status.userId);
  });

  it('exports once per batch, sends ≤ 100 per request, and each session once', async () => {
    const { client, machine, provider, attachment } = await setUp({}, { handOverDelayMs: 200 });
    const peer = await peerKeys(5, 50); // 250 sessions
    const crypto = client.getCrypto()!;
    await crypto.importRoomKeys(peer.keys.slice(0, 120));
    await crypto.importRoomKeys(peer.keys.slice(100)); // 20 again: the callback fires for them again or not at all
    await until('250 sessions handed over', () => attachment.stats.sessionsHandedOver === 250);
    await sleep(300);
    expect(machine.exports).toBe(1);
    const sizes = provider.callsOf('vault_backupRoomKeys').map((p) => (p as { sessions: unknown[] }).sessions.length);
    expect(sizes).toEqual([100, 100, 50]);
    expect(new Set(sentIds(provider)).size).toBe(250);
    expect(provider.backedUp).toHaveLength(250);

    // The machine fires again for a session when a better copy lands: already handed over, not again.
    await machine.callbacks[0]!(peer.keys.slice(0, 3).map((k) => ({ sessionId: k.session_id, roomId: k.room_id })));
    await sleep(300);
    expect(machine.exports).toBe(1);
    expect(provider.backedUp).toHaveLength(250);
  });

  it('does not hand back the keys it fetched from the vault', async () => {
    const { client, provider, attachment } = await setUp();
    const peer = await peerKeys(1, 2);
    provider.hold(peer.keys.slice(0, 1));
    const event = await deliver(client, peer.sessions[0]!.events[0]!);
    await until('the fetched key to decrypt the event', () => !event.isDecryptionFailure());
    await client.getCrypto()!.importRoomKeys(peer.keys.slice(1)); // one the app imports itself
    await until('that one handed over', () => attachment.stats.sessionsHandedOver === 1);
    await sleep(100);
    expect(sentIds(provider)).toEqual([peer.keys[1]!.session_id]);
  });

  it("waits without exporting while the site lacks 'backup' or the vault has no backup, then hands over", async () => {
    const { client, machine, provider, attachment } = await setUp({ scopes: ['read'] });
    expect(attachment.handOver).toEqual({ off: "this site does not hold the 'backup' scope: call vault.requestScopes(['backup'])" });
    const peer = await peerKeys(1, 3);
    await client.getCrypto()!.importRoomKeys(peer.keys);
    await sleep(150);
    expect(machine.exports).toBe(0);
    expect(provider.callsOf('vault_backupRoomKeys')).toHaveLength(0);

    provider.emitStatus({ scopes: ['read', 'backup'], backup: false });
    expect(attachment.handOver).toEqual({ off: 'the vault has no backup yet: the user sets one up in the Matrix Key Vault popup' });
    await sleep(100);
    expect(machine.exports).toBe(0);

    provider.emitStatus({ backup: true, state: 'locked' }); // locked is fine for hand-over
    expect(attachment.handOver).toBe('on');
    await until('3 sessions handed over', () => attachment.stats.sessionsHandedOver === 3);
  });

  it('keeps the sessions when the vault says unauthorized, and sends them once the scope is back', async () => {
    const { client, provider, attachment, errors } = await setUp();
    provider.status = { ...provider.status, scopes: ['read'] }; // revoked, not yet announced
    const peer = await peerKeys(1, 2);
    await client.getCrypto()!.importRoomKeys(peer.keys);
    await until('the refusal', () => errors.length === 1);
    expect(errors[0]).toMatchObject({ code: ErrorCode.unauthorized, method: 'vault_backupRoomKeys' });
    expect(attachment.handOver).toEqual({ off: expect.stringMatching(/'backup' scope/) });
    await sleep(150);
    expect(provider.callsOf('vault_backupRoomKeys')).toHaveLength(1);

    provider.emitStatus({ scopes: ['read', 'backup'] });
    await until('2 sessions handed over', () => attachment.stats.sessionsHandedOver === 2);
  });

  it('counts sessions the vault refuses, with the last reason', async () => {
    const { client, provider, attachment } = await setUp();
    provider.override.set('vault_backupRoomKeys', (params) => ({
      results: (params as { sessions: Array<{ session_id: string }> }).sessions.map((s, index) => (
        index === 0 ? { index, sessionId: s.session_id, accepted: true } : { index, sessionId: s.session_id, accepted: false, reason: 'the vault has no backup key pinned', kind: 'no-backup' }
      )),
    }));
    const peer = await peerKeys(1, 3);
    await client.getCrypto()!.importRoomKeys(peer.keys);
    await until('the answers', () => attachment.stats.sessionsRejected === 2);
    expect(attachment.stats).toMatchObject({ sessionsHandedOver: 1, lastRejection: { kind: 'no-backup', reason: 'the vault has no backup key pinned' } });
  });

  it('is off, with the reason, when the client has no olmMachine; fetching still works', async () => {
    client = await createTestClient();
    const real = client.getCrypto()!;
    // A crypto object without the private field, as a later matrix-js-sdk might have.
    const publicOnly = { importRoomKeys: real.importRoomKeys.bind(real) };
    const wrapped = new Proxy(client, { get: (target, key) => (key === 'getCrypto' ? () => publicOnly : Reflect.get(target, key, target)) });
    const provider = new FakeProvider();
    attachment = attachKeyVault(wrapped, new KeyVault(announcement(provider)), { debounceMs: 10, handOverDelayMs: 10 });
    expect(attachment.handOver).toEqual({ off: expect.stringMatching(/^getCrypto\(\) has no olmMachine \(a private field/) });

    const peer = await peerKeys(1, 1);
    provider.hold(peer.keys);
    const event = await deliver(client, peer.events[0]!);
    await until('the event to decrypt', () => !event.isDecryptionFailure());
    await real.importRoomKeys((await peerKeys(1, 1)).keys);
    await sleep(100);
    expect(provider.callsOf('vault_backupRoomKeys')).toHaveLength(0);
  });

  it('stops handing over on detach (the wasm callback cannot be unregistered; it does nothing)', async () => {
    const { client, machine, provider, attachment } = await setUp();
    attachment.detach();
    expect(attachment.handOver).toEqual({ off: 'detached' });
    await client.getCrypto()!.importRoomKeys((await peerKeys(1, 2)).keys);
    await sleep(150);
    expect(machine.exports).toBe(0);
    expect(provider.callsOf('vault_backupRoomKeys')).toHaveLength(0);
  });
});
