/**
 * checkClient: a real matrix-js-sdk 43 client passes whole; each piece the kit touches, when
 * missing, gives its own message (the kit will meet Element Web's client, of any version).
 */
import type { MatrixClient } from 'matrix-js-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attachKeyVault, ClientShapeError } from '../../../src/client/attach.ts';
import { checkClient } from '../../../src/client/client-shape.ts';
import { reachOlmMachine } from '../../../src/client/olm-machine.ts';
import { KeyVault } from '../../../src/client/vault.ts';
import { announcement, createTestClient, FakeProvider, sdk, sleep } from './harness.ts';

let client: MatrixClient;
beforeAll(async () => { client = await createTestClient(); });
afterAll(() => client.stopClient());

const noop = (): void => {};
const importRoomKeys = async (): Promise<void> => {};
const machine = { registerRoomKeyUpdatedCallback: noop, exportRoomKeys: async () => '[]' };

/** A client with everything, for the table below to take one piece away at a time. */
function fake(overrides: Record<string, unknown> = {}, crypto: Record<string, unknown> = { importRoomKeys, olmMachine: machine }): Record<string, unknown> {
  return { on: noop, off: noop, getUserId: () => '@me:kit.test', getRooms: () => [], getCrypto: () => crypto, ...overrides };
}

describe('checkClient', () => {
  it('accepts a real matrix-js-sdk 43 client with Rust crypto, hand-over included', () => {
    const check = checkClient(client);
    expect(check.ok).toBe(true);
    if (!check.ok) return;
    expect(check.parts.machine.ok).toBe(true);
    expect(check.parts.getUserId()).toBe(client.getUserId());
  });

  it('says encryption is not set up on a real client without initRustCrypto', () => {
    const bare = sdk.createClient({ baseUrl: 'http://127.0.0.1:9', userId: '@me:kit.test', deviceId: 'BARE' });
    expect(checkClient(bare)).toEqual({
      ok: false,
      missing: 'crypto',
      message: 'the client has no encryption set up: call `await client.initRustCrypto()` before attaching the vault',
    });
  });

  const broken: Array<[string, unknown, string, RegExp]> = [
    ['null (Element before sign-in)', null, 'client', /^no client: expected a matrix-js-sdk MatrixClient, got null/],
    ['a string', 'client', 'client', /got string/],
    ['no on()', fake({ on: undefined }), 'on', /has no on\(\)/],
    ['neither off() nor removeListener()', fake({ off: undefined }), 'off', /neither off\(\) nor removeListener\(\)/],
    ['no getUserId()', fake({ getUserId: 1 }), 'getUserId', /no getUserId\(\)/],
    ['no getRooms()', fake({ getRooms: undefined }), 'getRooms', /no getRooms\(\)/],
    ['no getCrypto()', fake({ getCrypto: undefined }), 'getCrypto', /no getCrypto\(\): matrix-js-sdk ≥ 43 with Rust crypto is needed/],
    ['getCrypto() that throws', fake({ getCrypto: () => { throw new Error('client stopped'); } }), 'crypto', /getCrypto\(\) threw: Error: client stopped/],
    ['getCrypto() → undefined', fake({ getCrypto: () => undefined }), 'crypto', /no encryption set up/],
    ['no importRoomKeys()', fake({}, { olmMachine: machine }), 'importRoomKeys', /getCrypto\(\) has no importRoomKeys\(\)/],
  ];

  it.each(broken)('refuses a client with %s, naming the piece', (_what, value, missing, message) => {
    const check = checkClient(value);
    expect(check).toMatchObject({ ok: false, missing });
    if (!check.ok) expect(check.message).toMatch(message);
  });

  it('gives a different message for each missing piece', () => {
    const messages = broken.filter(([what]) => what !== 'a string').map(([, value]) => (checkClient(value) as { message: string }).message);
    expect(new Set(messages).size).toBe(messages.length);
  });

  it('takes removeListener() when there is no off()', () => {
    const calls: string[] = [];
    const check = checkClient(fake({ off: undefined, removeListener: (event: string) => calls.push(event) }));
    expect(check.ok).toBe(true);
    if (check.ok) check.parts.off('Event.decrypted', noop);
    expect(calls).toEqual(['Event.decrypted']);
  });

  it('attaches a client whose getUserId() or room-key registration throws, reporting both', async () => {
    const errors: Error[] = [];
    const closedMachine = { ...machine, registerRoomKeyUpdatedCallback: () => { throw new Error('null pointer passed to rust'); } };
    const odd = fake({ getUserId: () => { throw new Error('logged out'); } }, { importRoomKeys, olmMachine: closedMachine });
    const attachment = attachKeyVault(odd, new KeyVault(announcement(new FakeProvider())), { onError: (e) => errors.push(e) });
    expect(attachment.handOver).toEqual({ off: expect.stringMatching(/^registering for new sessions on getCrypto\(\).olmMachine failed \(Error: null pointer/) });
    await sleep(20);
    expect(errors.map((e) => e.message)).toEqual(['logged out']);
    expect(attachment.fetching).toBe('on');
    attachment.detach();
  });

  it('throws ClientShapeError from attachKeyVault with the same message', () => {
    const vault = new KeyVault(announcement(new FakeProvider()));
    expect(() => attachKeyVault(fake({ getCrypto: () => null }), vault)).toThrow(ClientShapeError);
    expect(() => attachKeyVault(fake({ getCrypto: () => null }), vault)).toThrow(/no encryption set up/);
  });
});

describe('the private olmMachine, for hand-over', () => {
  const tail = 'new sessions are not handed to the vault; fetching keys still works';
  const cases: Array<[string, object, string, string]> = [
    ['no olmMachine field', { importRoomKeys }, 'olmMachine',
      `getCrypto() has no olmMachine (a private field of matrix-js-sdk's Rust crypto, renamed or removed in this release, or another crypto backend): ${tail}`],
    ['a getter that throws', Object.defineProperty({ importRoomKeys }, 'olmMachine', { get: () => { throw new Error('machine closed'); } }), 'olmMachine',
      `reading getCrypto().olmMachine threw (Error: machine closed): ${tail}`],
    ['no registerRoomKeyUpdatedCallback()', { importRoomKeys, olmMachine: { exportRoomKeys: machine.exportRoomKeys } }, 'registerRoomKeyUpdatedCallback',
      `getCrypto().olmMachine has no registerRoomKeyUpdatedCallback(): ${tail}`],
    ['no exportRoomKeys()', { importRoomKeys, olmMachine: { registerRoomKeyUpdatedCallback: noop } }, 'exportRoomKeys',
      `getCrypto().olmMachine has no exportRoomKeys(): ${tail}`],
  ];

  it.each(cases)('with %s: hand-over off with its reason, the client still accepted', (_what, crypto, missing, message) => {
    expect(reachOlmMachine(crypto)).toEqual({ ok: false, missing, message });
    const check = checkClient(fake({}, crypto as Record<string, unknown>));
    expect(check.ok).toBe(true);
    if (check.ok) expect(check.parts.machine).toEqual({ ok: false, missing, message });
  });
});
