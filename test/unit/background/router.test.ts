/** Trust tiers and request checks in the worker's router, with browser-shaped senders. */
import { memoryUnlockStore } from '../../../src/platform/unlock-store.ts';
import 'fake-indexeddb/auto';
import { describe, expect, it } from 'vitest';
import { AppError, toWireError } from '../../../src/background/errors.ts';
import { requireArray, requireString } from '../../../src/background/fields.ts';
import { route, senderTier, MAX_SESSIONS_PER_REQUEST } from '../../../src/background/router.ts';
import { createServices } from '../../../src/background/services.ts';
import { Vault } from '../../../src/platform/vault.ts';
import { isRequest } from '../../../src/shared/messages.ts';
import { memorySitePlatform } from '../../harness/memory-sites.ts';

const ID = 'abcdefghijklmnopabcdefghijklmnop';
const ORIGIN = `chrome-extension://${ID}/`;

describe('sender tiers', () => {
  it('trusts our own pages, in the popup or a tab', () => {
    expect(senderTier({ id: ID, url: `${ORIGIN}popup.html` }, ID, ORIGIN)).toBe('extension-page');
    expect(senderTier({ id: ID, url: `${ORIGIN}import.html`, tab: { id: 3 } as never }, ID, ORIGIN)).toBe('extension-page');
  });

  it('refuses content scripts, other extensions and look-alike URLs', () => {
    expect(senderTier({ id: ID, url: 'https://app.element.io/', tab: { id: 1 } as never }, ID, ORIGIN)).toBe('untrusted');
    expect(senderTier({ id: 'otherextensionidotherextensionid', url: `${ORIGIN}popup.html` }, ID, ORIGIN)).toBe('untrusted');
    expect(senderTier({ id: ID, url: `https://evil.example/${ORIGIN}` }, ID, ORIGIN)).toBe('untrusted');
    expect(senderTier({ id: ID }, ID, ORIGIN)).toBe('untrusted');
  });
});

describe('requests', () => {
  it('recognises only known request types', () => {
    expect(isRequest({ type: 'status.get' })).toBe(true);
    for (const bad of [null, 'status.get', { type: 'vault.dump' }, { type: 42 }, {}]) expect(isRequest(bad)).toBe(false);
  });

  it('checks fields and sizes with a typed error', () => {
    expect(requireString({ a: 'x' }, 'a')).toBe('x');
    for (const bad of [{}, { a: '' }, { a: '   ' }, { a: 5 }]) expect(() => requireString(bad, 'a')).toThrow(AppError);
    expect(() => requireString({ a: 'x'.repeat(11) }, 'a', 10)).toThrow(/longer than 10/);
    expect(() => requireArray({ a: 'x' }, 'a', 5)).toThrow(/as a list/);
    expect(() => requireArray({ a: [1, 2, 3] }, 'a', 2)).toThrow(/send it in parts/);
  });

  it('turns any error into a wire error without a stack', () => {
    expect(toWireError(new AppError('no-backup', 'set one up'))).toEqual({ kind: 'no-backup', message: 'set one up' });
    expect(toWireError(Object.assign(new Error('nope'), { kind: 'homeserver', errcode: 'M_FORBIDDEN' }))).toEqual({ kind: 'homeserver', message: 'nope', errcode: 'M_FORBIDDEN' });
    expect(toWireError(new TypeError('x is undefined'))).toEqual({ kind: 'internal', message: 'x is undefined' });
    expect(toWireError('plain')).toEqual({ kind: 'internal', message: 'plain' });
  });

  it('answers bad or refused requests with typed errors, never a throw', async () => {
    const vault = await Vault.open(`router-${Date.now()}`);
    const services = createServices(vault, {
      sitePlatform: memorySitePlatform(),
      scheduleWake: async () => {}, scheduleRestoreWake: async () => {}, unlockStore: memoryUnlockStore(), keepAlive: async () => {}, report: () => {},
      worker: () => ({ product: 'Matrix Key Vault', version: '0', bootId: 'b', startedAt: 0 }),
    });
    expect(await route(services, { type: 'sessions.import', sessions: 'nope' } as never)).toMatchObject({ ok: false, error: { kind: 'bad-request' } });
    expect(await route(services, { type: 'sessions.import', sessions: new Array(MAX_SESSIONS_PER_REQUEST + 1).fill({}) })).toMatchObject({ ok: false, error: { kind: 'bad-request' } });
    expect(await route(services, { type: 'sessions.import', sessions: [{}] })).toMatchObject({ ok: false, error: { kind: 'no-backup' } });
    expect(await route(services, { type: 'backup.join', recoveryKey: 'EsTc' })).toMatchObject({ ok: false, error: { kind: 'not-signed-in' } });
    expect(await route(services, { type: 'backup.create', recoveryKey: 'EsTc' })).toMatchObject({ ok: false, error: { kind: 'not-signed-in' } });
    expect(await route(services, { type: 'account.signOut' })).toMatchObject({ ok: false, error: { kind: 'not-signed-in' } });
    expect(await route(services, { type: 'account.login', homeserver: 'example.org', user: '', password: 'x' })).toMatchObject({ ok: false, error: { kind: 'bad-request' } });
    const status = await route(services, { type: 'status.get' });
    expect(status).toMatchObject({ ok: true, value: { account: null, backup: null, upload: { phase: 'idle', pending: 0 } } });
    vault.close();
  });
});
