/**
 * attachKeyVault, fetching direction: a real matrix-js-sdk 43 client with Rust crypto fails to
 * decrypt real megolm events, the kit asks a fake vault for the sessions, imports what it gets, and
 * the SDK decrypts the events by itself.
 */
import type { MatrixClient, MatrixEvent } from 'matrix-js-sdk';
import { afterEach, describe, expect, it } from 'vitest';
import { attachKeyVault, type Attachment } from '../../../src/client/attach.ts';
import { KeyVault } from '../../../src/client/vault.ts';
import { ErrorCode, type SessionRef } from '../../../src/shared/page-api.ts';
import { addRoom, announcement, createTestClient, deliver, FakeProvider, peerKeys, sleep, until, USER_ID } from './harness.ts';

const YEAR_MS = 365 * 24 * 3600 * 1000;

let client: MatrixClient | undefined;
let attachment: Attachment | undefined;

afterEach(() => {
  attachment?.detach();
  client?.stopClient();
  attachment = undefined;
  client = undefined;
});

async function setUp(provider = new FakeProvider(), options: Parameters<typeof attachKeyVault>[2] = {}): Promise<{ client: MatrixClient; provider: FakeProvider; attachment: Attachment; errors: Error[] }> {
  client = await createTestClient();
  const errors: Error[] = [];
  attachment = attachKeyVault(client, new KeyVault(announcement(provider)), { debounceMs: 10, onError: (e) => errors.push(e), ...options });
  return { client, provider, attachment, errors };
}

function askedSessions(provider: FakeProvider): string[] {
  return provider.callsOf('vault_getRoomKeys').flatMap((p) => (p as { sessions: SessionRef[] }).sessions.map((s) => s.sessionId));
}

describe('fetching missing keys', () => {
  it('imports the keys of events that failed with MEGOLM_UNKNOWN_INBOUND_SESSION_ID, and the SDK decrypts them', async () => {
    const { client, provider, attachment } = await setUp();
    const peer = await peerKeys(1, 3); // made after the client's device: not history
    provider.hold(peer.keys);
    const events: MatrixEvent[] = [];
    for (const e of peer.events) events.push(await deliver(client, e));
    expect(events.map((e) => e.decryptionFailureReason)).toEqual(Array(3).fill('MEGOLM_UNKNOWN_INBOUND_SESSION_ID'));

    await until('the events to decrypt', () => events.every((e) => !e.isDecryptionFailure()));
    expect(events.map((e) => e.getContent().body)).toEqual(peer.events.map((e) => e.plaintext.content.body));
    expect(provider.callsOf('vault_getRoomKeys')).toHaveLength(1); // one debounced batch
    expect(attachment.stats).toMatchObject({ keysRequested: 3, keysImported: 3, notFound: 0, lastError: null });
    expect(attachment.fetching).toBe('on');
  });

  it('asks for HISTORICAL_MESSAGE_* failures (history from before the device existed)', async () => {
    const peer = await peerKeys(1, 1);
    const { client, attachment } = await setUp(new FakeProvider().hold(peer.keys));
    const event = await deliver(client, peer.events[0]!, { ageMs: YEAR_MS });
    expect(event.decryptionFailureReason).toBe('HISTORICAL_MESSAGE_NO_KEY_BACKUP');
    await until('the historical event to decrypt', () => !event.isDecryptionFailure());
    expect(attachment.stats.keysImported).toBe(1);
  });

  it('finds events that had failed before it was attached, in the rooms\' live timelines', async () => {
    const peer = await peerKeys(2, 1);
    client = await createTestClient();
    const provider = new FakeProvider().hold(peer.keys);
    const events: MatrixEvent[] = [];
    for (const e of peer.events) events.push(await deliver(client, e, { room: addRoom(client, e.roomId), ageMs: YEAR_MS }));
    expect(events.every((e) => e.isDecryptionFailure())).toBe(true);

    attachment = attachKeyVault(client, new KeyVault(announcement(provider)), { debounceMs: 10 });
    await until('the earlier failures to decrypt', () => events.every((e) => !e.isDecryptionFailure()));
    expect(attachment.stats.keysImported).toBe(2);
  });

  it('asks at most 100 sessions per request and each session once, however many events use it', async () => {
    const peer = await peerKeys(3, 50); // 150 sessions
    const { client, provider, attachment } = await setUp(new FakeProvider().hold(peer.keys));
    for (const e of peer.events) await deliver(client, e);
    await deliver(client, peer.events[0]!); // a second event of the first session
    await until('all keys imported', () => attachment.stats.keysImported === 150);
    const batches = provider.callsOf('vault_getRoomKeys').map((p) => (p as { sessions: unknown[] }).sessions.length);
    expect(Math.max(...batches)).toBeLessThanOrEqual(100);
    expect(batches.reduce((a, b) => a + b)).toBe(150);
    expect(new Set(askedSessions(provider)).size).toBe(150);
    expect(attachment.stats.keysRequested).toBe(150);
  });

  it('remembers sessions the vault lacks, and asks again only after notFoundRetryMs', async () => {
    const peer = await peerKeys(1, 1);
    const { client, provider, attachment } = await setUp(new FakeProvider(), { notFoundRetryMs: 300 });
    await deliver(client, peer.events[0]!);
    await until('the not-found answer', () => attachment.stats.notFound === 1);
    await deliver(client, peer.events[0]!);
    await sleep(100);
    expect(provider.callsOf('vault_getRoomKeys')).toHaveLength(1);

    await sleep(250);
    provider.hold(peer.keys);
    const event = await deliver(client, peer.events[0]!);
    await until('the second ask to import the key', () => !event.isDecryptionFailure());
    expect(provider.callsOf('vault_getRoomKeys')).toHaveLength(2);
  });

  it('waits while the vault is locked, without asking, and fetches once statusChanged says unlocked', async () => {
    const peer = await peerKeys(1, 2);
    const provider = new FakeProvider().hold(peer.keys);
    provider.status = { ...provider.status, state: 'locked' };
    const { client, attachment } = await setUp(provider);
    await until('the status to close fetching', () => attachment.fetching !== 'on');
    expect(attachment.fetching).toEqual({ off: expect.stringMatching(/locked/) });
    const events: MatrixEvent[] = [];
    for (const e of peer.events) events.push(await deliver(client, e));
    await sleep(100);
    expect(provider.callsOf('vault_getRoomKeys')).toHaveLength(0);

    provider.emitStatus({ state: 'unlocked' });
    await until('the events to decrypt', () => events.every((e) => !e.isDecryptionFailure()));
    expect(provider.callsOf('vault_getRoomKeys')).toHaveLength(1);
  });

  it('keeps the sessions on 4300 (locked) and 4100 (unauthorized) answers, does not spin, and retries on statusChanged', async () => {
    const peer = await peerKeys(1, 1);
    const provider = new FakeProvider().hold(peer.keys);
    const { client, attachment, errors } = await setUp(provider);
    await until('the status', () => provider.callsOf('vault_status').length === 1);
    provider.status = { ...provider.status, state: 'locked' }; // locked without telling: the request says so
    const event = await deliver(client, peer.events[0]!);
    await until('the refusal', () => errors.length === 1);
    expect(errors[0]).toMatchObject({ code: ErrorCode.vaultLocked });
    expect(attachment.stats.lastError).toBe(errors[0]);
    await sleep(150);
    expect(provider.callsOf('vault_getRoomKeys')).toHaveLength(1);

    provider.emitStatus({ state: 'unlocked', scopes: [] }); // unlocked, but the scope was revoked
    expect(attachment.fetching).toEqual({ off: expect.stringMatching(/'read' scope/) });
    await sleep(50);
    expect(provider.callsOf('vault_getRoomKeys')).toHaveLength(1);

    provider.emitStatus({ scopes: ['read'] });
    await until('the event to decrypt', () => !event.isDecryptionFailure());
    expect(provider.callsOf('vault_getRoomKeys')).toHaveLength(2);
  });

  it('retries after a rate limit with a delay, and reports it', async () => {
    const peer = await peerKeys(1, 1);
    const provider = new FakeProvider().hold(peer.keys);
    let refusals = 1;
    provider.override.set('vault_getRoomKeys', (params) => {
      if (refusals-- > 0) throw { code: ErrorCode.limitExceeded, message: 'slow down' };
      provider.override.delete('vault_getRoomKeys');
      return provider.request({ method: 'vault_getRoomKeys', params: params as { sessions: SessionRef[] } });
    });
    const { client, attachment, errors } = await setUp(provider, { maxRetryMs: 200 });
    const event = await deliver(client, peer.events[0]!);
    await until('the refusal', () => errors.length === 1);
    expect(errors[0]!.message).toMatch(/vault_getRoomKeys failed \(-32005, too many requests.*slow down/);
    await sleep(100);
    expect(event.isDecryptionFailure()).toBe(true); // not retried at once
    await until('the retry to import the key', () => !event.isDecryptionFailure());
    expect(attachment.stats.keysImported).toBe(1);
  });

  it('does not fetch for a vault signed in as another account, and says why', async () => {
    const peer = await peerKeys(1, 1);
    const provider = new FakeProvider().hold(peer.keys);
    provider.status = { ...provider.status, userId: '@someone-else:kit.test' };
    const { client, attachment } = await setUp(provider);
    await until('the status', () => attachment.fetching !== 'on');
    expect(attachment.fetching).toEqual({ off: `the vault holds @someone-else:kit.test's keys, this client is ${USER_ID}` });
    expect(attachment.handOver).toEqual(attachment.fetching);
    await deliver(client, peer.events[0]!);
    await sleep(100);
    expect(provider.callsOf('vault_getRoomKeys')).toHaveLength(0);
  });

  it('refuses a key the vault returns for another session than asked, as a malformed answer', async () => {
    const peer = await peerKeys(1, 2);
    const provider = new FakeProvider();
    provider.override.set('vault_getRoomKeys', (params) => ({
      keys: (params as { sessions: SessionRef[] }).sessions.map((s) => ({ ...s, found: true, key: peer.keys.find((k) => k.session_id !== s.sessionId) })),
    }));
    const { client, attachment, errors } = await setUp(provider, { maxRetryMs: 10_000 });
    await deliver(client, peer.events[0]!);
    await until('the error', () => errors.length > 0);
    expect(errors[0]!.message).toMatch(/vault_getRoomKeys: the vault's answer is malformed \(the key returned for session .* is another session's\)/);
    expect(attachment.stats.keysImported).toBe(0);
  });

  it('stops listening on detach', async () => {
    const peer = await peerKeys(1, 1);
    const { client, provider, attachment } = await setUp(new FakeProvider().hold(peer.keys));
    await until('the status', () => provider.callsOf('vault_status').length === 1);
    const changes: unknown[] = [];
    attachment.onChange((s) => changes.push(s));
    attachment.detach();
    expect(changes).toHaveLength(1);
    expect(attachment.fetching).toEqual({ off: 'detached' });
    expect(provider.listenerCount).toBe(0);
    await deliver(client, peer.events[0]!);
    await sleep(100);
    expect(provider.callsOf('vault_getRoomKeys')).toHaveLength(0);
  });
});
