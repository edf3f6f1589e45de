/**
 * findKeyVault and KeyVault against a fake provider that follows the page API's contract:
 * discovery, batching by 100, answers checked, and errors as KeyVaultError with code and message.
 */
import { describe, expect, it } from 'vitest';
import { announcementOf, findKeyVault } from '../../../src/client/discovery.ts';
import { KeyVaultError, toKeyVaultError } from '../../../src/client/errors.ts';
import { KeyVault } from '../../../src/client/vault.ts';
import { ANNOUNCE_EVENT, ErrorCode, REQUEST_EVENT, type PageVaultStatus, type SessionRef } from '../../../src/shared/page-api.ts';
import { announcement, FakeProvider, sleep } from './harness.ts';

/** A page's window where an extension answers each request event with `announce(target)`. */
function windowWith(announce?: (target: EventTarget) => void): EventTarget & { requests: number } {
  const target = Object.assign(new EventTarget(), { requests: 0 });
  target.addEventListener(REQUEST_EVENT, () => {
    target.requests++;
    announce?.(target);
  });
  return target;
}

const announceWith = (detail: unknown) => (target: EventTarget): void => {
  target.dispatchEvent(new CustomEvent(ANNOUNCE_EVENT, { detail }));
};

describe('findKeyVault', () => {
  it('asks once and resolves with the first well-formed announcement', async () => {
    const provider = new FakeProvider();
    const first = Object.freeze(announcement(provider, '1.2.3'));
    const win = windowWith((t) => {
      announceWith({ info: { name: 'Another Wallet', version: '1', uuid: 'x' }, provider })(t); // not ours
      announceWith({ info: first.info, provider: { request: () => {} } })(t); // no on/removeListener
      announceWith(first)(t);
      announceWith(announcement(new FakeProvider(), '9.9.9'))(t);
    });
    const vault = await findKeyVault({ window: win, timeoutMs: 200 });
    expect(win.requests).toBe(1);
    expect(vault).toBeInstanceOf(KeyVault);
    expect(vault!.info).toEqual(first.info);
    expect(await vault!.status()).toEqual(provider.status);
  });

  it('takes an announcement sent later than the request (an extension still starting)', async () => {
    const win = windowWith((t) => setTimeout(() => announceWith(announcement(new FakeProvider()))(t), 50));
    expect(await findKeyVault({ window: win, timeoutMs: 500 })).toBeInstanceOf(KeyVault);
  });

  it('resolves null after the timeout when no vault answers, and stops listening', async () => {
    const win = windowWith();
    const started = Date.now();
    expect(await findKeyVault({ window: win, timeoutMs: 80 })).toBeNull();
    expect(Date.now() - started).toBeGreaterThanOrEqual(75);
    expect(announcementOf(new CustomEvent(ANNOUNCE_EVENT, { detail: null }))).toBeNull();
  });

  it('says so when there is no window', async () => {
    await expect(findKeyVault()).rejects.toThrow(/no window here .* pass options.window/);
  });
});

describe('KeyVault', () => {
  const refs = (n: number): SessionRef[] => Array.from({ length: n }, (_, i) => ({ roomId: '!r:kit.test', sessionId: `s${i}` }));

  it('asks for any number of sessions 100 at a time, in order', async () => {
    const provider = new FakeProvider();
    const results = await new KeyVault(announcement(provider)).getRoomKeys(refs(250));
    expect(provider.callsOf('vault_getRoomKeys').map((p) => (p as { sessions: unknown[] }).sessions.length)).toEqual([100, 100, 50]);
    expect(results).toHaveLength(250);
    expect(results[249]).toEqual({ roomId: '!r:kit.test', sessionId: 's249', found: false });
  });

  it('hands over sessions 100 at a time, with indices counted across batches', async () => {
    const provider = new FakeProvider();
    const sessions = Array.from({ length: 150 }, (_, i) => ({ session_id: `s${i}`, session_key: 'AQ' }));
    sessions[120] = { session_id: 's120' } as never; // refused by the fake: no session_key
    const results = await new KeyVault(announcement(provider)).backupRoomKeys(sessions);
    expect(provider.callsOf('vault_backupRoomKeys').map((p) => (p as { sessions: unknown[] }).sessions.length)).toEqual([100, 50]);
    expect(results.filter((r) => !r.accepted)).toEqual([{ index: 120, accepted: false, reason: 'not a session', kind: 'malformed' }]);
    expect(results[149]).toEqual({ index: 149, sessionId: 's149', accepted: true });
  });

  it('turns a provider rejection into a KeyVaultError naming the method, the code and what to do', async () => {
    const provider = new FakeProvider();
    provider.status = { ...provider.status, state: 'locked' };
    const error = await new KeyVault(announcement(provider)).getRoomKeys(refs(1)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KeyVaultError);
    expect(error).toMatchObject({
      code: ErrorCode.vaultLocked,
      method: 'vault_getRoomKeys',
      message: 'vault_getRoomKeys failed (4300, the vault is locked: the user unlocks it in the Matrix Key Vault popup): the vault is locked',
    });
  });

  it.each([
    [ErrorCode.userRejected, /declined/], [ErrorCode.unauthorized, /requestScopes\(\)/], [ErrorCode.unsupportedMethod, /does not know this method/],
    [ErrorCode.disconnected, /reload the page/], [ErrorCode.limitExceeded, /wait and retry/], [ErrorCode.invalidParams, /malformed or too large/],
    [ErrorCode.internal, /the vault failed/], [4999, /unknown error code/],
  ])('explains code %i', (code, hint) => {
    const error = toKeyVaultError({ code, message: 'said' }, 'vault_status');
    expect(error.code).toBe(code);
    expect(error.message).toMatch(hint);
    expect(error.message).toMatch(/: said$/);
  });

  it('makes anything without a numeric code an internal error, keeping the cause', () => {
    const thrown = new TypeError('boom');
    expect(toKeyVaultError(thrown, 'vault_status')).toMatchObject({ code: ErrorCode.internal, message: 'vault_status failed: boom', cause: thrown });
  });

  it('refuses malformed answers rather than passing them on', async () => {
    const provider = new FakeProvider();
    const vault = new KeyVault(announcement(provider));
    provider.override.set('vault_status', () => ({ state: 'open', scopes: [], userId: null, backup: false }));
    await expect(vault.status()).rejects.toThrow(/vault_status: the vault's answer is malformed \(state "open"\)/);
    provider.override.set('vault_getRoomKeys', () => ({ keys: [{ roomId: '!r:kit.test', sessionId: 'other', found: false }] }));
    await expect(vault.getRoomKeys(refs(1))).rejects.toThrow(/session other in !r:kit.test was not asked for/);
    provider.override.set('vault_getRoomKeys', () => ({ keys: [{ roomId: '!r:kit.test', sessionId: 's0', found: true, key: { session_id: 's0' } }] }));
    await expect(vault.getRoomKeys(refs(1))).rejects.toThrow(/neither found with a key nor not found/);
    provider.override.set('vault_backupRoomKeys', () => ({ results: [{ index: 5, accepted: true }] }));
    await expect(vault.backupRoomKeys([{}])).rejects.toThrow(/no index within the request/);
  });

  it('fails a request the vault never answers with disconnected, but lets requestScopes wait for the user', async () => {
    const provider = new FakeProvider();
    const vault = new KeyVault(announcement(provider), { requestTimeoutMs: 50 });
    provider.override.set('vault_status', () => new Promise(() => {}));
    await expect(vault.status()).rejects.toMatchObject({ code: ErrorCode.disconnected, message: expect.stringMatching(/did not answer within 0.05 s/) });
    let answer: (value: unknown) => void = () => {};
    provider.override.set('vault_requestScopes', () => new Promise((resolve) => { answer = resolve; }));
    const scopes = vault.requestScopes(['read']);
    await sleep(100);
    answer({ scopes: ['read'] });
    expect(await scopes).toEqual(['read']);
  });

  it('passes well-formed status changes to listeners until they unsubscribe', () => {
    const provider = new FakeProvider();
    const seen: PageVaultStatus[] = [];
    const stop = new KeyVault(announcement(provider)).onStatusChanged((s) => seen.push(s));
    provider.emitStatus({ state: 'locked' });
    (provider as unknown as { status: unknown }).status = { state: 'weird' };
    provider.emitStatus({});
    stop();
    provider.emitStatus({ state: 'unlocked' });
    expect(seen.map((s) => s.state)).toEqual(['locked']);
    expect(provider.listenerCount).toBe(0);
  });
});
