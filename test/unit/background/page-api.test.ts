/**
 * The page API's tier in the worker: who counts as a page caller (from browser-shaped senders), what
 * each grant lets an origin do, and the refusals — with the vault on fake-indexeddb and the browser's
 * site operations in memory. The end-to-end tests run the same paths through real content scripts.
 */
import 'fake-indexeddb/auto';
import { afterEach, describe, expect, it } from 'vitest';
import { backupPublicKey, encodeBase64 } from '../../../src/core/index.ts';
import { OriginInFlight, OriginLimiter, PAGE_BURST, pageGuards, pageSender, routePage, MAX_PAGE_REQUESTS_PER_ORIGIN, type PageResult } from '../../../src/background/page-api.ts';
import { Slots } from '../../../src/background/services.ts';
import { route } from '../../../src/background/router.ts';
import { ingestSessions } from '../../../src/background/ingest.ts';
import { createServices, type Services } from '../../../src/background/services.ts';
import { memoryUnlockStore } from '../../../src/platform/unlock-store.ts';
import { Vault } from '../../../src/platform/vault.ts';
import { ErrorCode, MAX_SESSIONS_PER_PAGE_REQUEST } from '../../../src/shared/page-api.ts';
import { memorySitePlatform } from '../../harness/memory-sites.ts';
import { peerSessions, randomKey } from '../../harness/upload-rig.ts';

const ID = 'abcdefghijklmnopabcdefghijklmnop';
const EXT = `chrome-extension://${ID}/`;
const SITE = 'https://app.example.org';
const USER = '@u:example.org';

describe('page senders', () => {
  const tab = { id: 7 } as never;
  it('takes our content script in a tab\'s top frame, with the browser\'s origin', () => {
    expect(pageSender({ id: ID, url: `${SITE}/#/room`, tab, frameId: 0, origin: SITE } as never, ID, EXT)).toEqual({ origin: SITE, tabId: 7 });
    expect(pageSender({ id: ID, url: 'http://127.0.0.1:8080/x', tab, frameId: 0 }, ID, EXT)).toEqual({ origin: 'http://127.0.0.1:8080', tabId: 7 });
  });

  it('refuses frames, other extensions, extension pages, opaque and mismatched origins', () => {
    expect(pageSender({ id: ID, url: `${SITE}/`, tab, frameId: 3, origin: SITE } as never, ID, EXT)).toBeNull();
    expect(pageSender({ id: 'otherextensionidotherextensionid', url: `${SITE}/`, tab, frameId: 0 }, ID, EXT)).toBeNull();
    expect(pageSender({ id: ID, url: `${SITE}/`, frameId: 0 }, ID, EXT)).toBeNull(); // no tab
    expect(pageSender({ id: ID, url: `${EXT}popup.html`, tab, frameId: 0 }, ID, EXT)).toBeNull();
    expect(pageSender({ id: ID, url: `${SITE}/`, tab, frameId: 0, origin: 'null' } as never, ID, EXT)).toBeNull();
    expect(pageSender({ id: ID, url: 'https://evil.example/', tab, frameId: 0, origin: SITE } as never, ID, EXT)).toBeNull();
    expect(pageSender({ id: ID, url: 'file:///etc/passwd', tab, frameId: 0 }, ID, EXT)).toBeNull();
  });
});

describe('page requests', () => {
  let vault: Vault;
  let services: Services;
  let platform: ReturnType<typeof memorySitePlatform>;
  const opened: Vault[] = [];
  afterEach(() => { for (const v of opened.splice(0)) v.close(); });

  async function setUp(options: { unlocked?: boolean } = {}): Promise<{ call: (origin: string, request: unknown) => Promise<PageResult> }> {
    vault = await Vault.open(`page-api-${Math.random()}`);
    opened.push(vault);
    platform = memorySitePlatform([SITE, 'http://127.0.0.1:8080']);
    const unlockStore = memoryUnlockStore();
    services = createServices(vault, {
      sitePlatform: platform,
      scheduleWake: async () => {}, scheduleRestoreWake: async () => {}, unlockStore, keepAlive: async () => {}, report: () => {},
      worker: () => ({ product: 'Matrix Key Vault', version: '0', bootId: 'b', startedAt: 0 }),
    });
    await vault.connectAccount({ homeserverUrl: 'https://matrix.example.org', userId: USER, deviceId: 'D', accessToken: { iv: new Uint8Array(12), ciphertext: new Uint8Array(16) }, ownsDevice: true, connectedAt: 0 });
    const privateKey = randomKey();
    const publicKey = await backupPublicKey(privateKey);
    await vault.setPin({ userId: USER, version: '1', publicKey, epoch: 1, source: 'created', pinnedAt: 0 });
    if (options.unlocked) await unlockStore.set({ userId: USER, version: '1', publicKey, privateKey: encodeBase64(privateKey), via: 'recovery-key', at: 0 });
    const guards = pageGuards();
    return { call: (origin, request) => routePage(services, guards, { origin, tabId: 1 }, request) };
  }

  const callOf = (method: string, params?: unknown) => ({ type: 'page.call', method, ...(params !== undefined ? { params } : {}) });

  it('answers an origin without a grant with 4100 whatever it asks, and changes nothing', async () => {
    const { call } = await setUp({ unlocked: true });
    const [session] = await peerSessions(1, 1);
    for (const request of [{ type: 'page.hello' }, callOf('vault_status'), callOf('vault_getRoomKeys', { sessions: [{ roomId: session!.room_id, sessionId: session!.session_id }] }),
      callOf('vault_backupRoomKeys', { sessions: [session] }), callOf('vault_requestScopes', { scopes: ['read'] })]) {
      expect(await call(SITE, request)).toMatchObject({ ok: false, error: { code: ErrorCode.unauthorized } });
    }
    expect(await vault.countSessions()).toBe(0);
    expect(platform.windows).toEqual([]);
    expect(platform.pageWorld).toEqual([]); // nothing put into the page
  });

  it('keeps a grant to its exact origin: no subdomain, other port or scheme', async () => {
    const { call } = await setUp({ unlocked: true });
    expect(await route(services, { type: 'sites.allow', origin: 'http://127.0.0.1:8080', scopes: ['read'] })).toMatchObject({ ok: true });
    expect(await call('http://127.0.0.1:8080', callOf('vault_status'))).toMatchObject({ ok: true, value: { state: 'unlocked', scopes: ['read'], userId: USER, backup: true } });
    for (const other of ['http://127.0.0.1:8081', 'https://127.0.0.1:8080', 'http://localhost:8080', 'http://sub.127.0.0.1:8080']) {
      expect(await call(other, callOf('vault_status'))).toMatchObject({ ok: false, error: { code: ErrorCode.unauthorized } });
    }
  });

  it('refuses to allow a site the browser has not given access to, or a malformed origin', async () => {
    await setUp();
    expect(await route(services, { type: 'sites.allow', origin: 'https://other.example', scopes: ['read'] })).toMatchObject({ ok: false, error: { kind: 'bad-request', message: /has not given the extension access/ } });
    for (const origin of ['https://app.example.org/path', 'http://app.example.org', 'javascript:alert(1)', 'https://user@app.example.org']) {
      expect(await route(services, { type: 'sites.allow', origin, scopes: ['read'] })).toMatchObject({ ok: false, error: { kind: 'bad-request' } });
    }
    expect(await route(services, { type: 'sites.allow', origin: SITE, scopes: ['write'] as never })).toMatchObject({ ok: false, error: { kind: 'bad-request', message: /Unknown scope/ } });
    expect(await vault.getSites()).toEqual([]);
  });

  it('needs the scope for each method, and an unlocked vault to read', async () => {
    const { call } = await setUp();
    await route(services, { type: 'sites.allow', origin: SITE, scopes: ['read'] });
    const [session] = await peerSessions(1, 1);
    const ref = { roomId: session!.room_id, sessionId: session!.session_id };
    expect(await call(SITE, callOf('vault_backupRoomKeys', { sessions: [session] }))).toMatchObject({ ok: false, error: { code: ErrorCode.unauthorized } });
    expect(await vault.countSessions()).toBe(0);
    expect(await call(SITE, callOf('vault_getRoomKeys', { sessions: [ref] }))).toMatchObject({ ok: false, error: { code: ErrorCode.vaultLocked } });
  });

  it('serves held sessions in key-export form and says "not found" for the others', async () => {
    const { call } = await setUp({ unlocked: true });
    await route(services, { type: 'sites.allow', origin: SITE, scopes: ['read', 'backup'] });
    const sessions = await peerSessions(3, 2);
    const handed = await call(SITE, callOf('vault_backupRoomKeys', { sessions: [...sessions, { room_id: '!r:x' }] }));
    expect(handed).toMatchObject({ ok: true });
    const results = (handed as { value: { results: Array<{ accepted: boolean; index: number }> } }).value.results;
    expect(results.map((r) => r.accepted)).toEqual([true, true, true, false]);
    expect(await vault.countSessions()).toBe(3);

    // Handed over above, so held in the vault (encrypted to the pin) and decrypted with the unlocked key.
    const answer = await call(SITE, callOf('vault_getRoomKeys', { sessions: sessions.map((s) => ({ roomId: s.room_id, sessionId: s.session_id })) }));
    expect(answer).toMatchObject({ ok: true });
    const keys = (answer as { value: { keys: Array<{ found: boolean; key?: Record<string, unknown> }> } }).value.keys;
    expect(keys.every((k) => k.found)).toBe(true);
    for (const [i, k] of keys.entries()) {
      expect(k.key).toMatchObject({ algorithm: 'm.megolm.v1.aes-sha2', room_id: sessions[i]!.room_id, session_id: sessions[i]!.session_id, session_key: sessions[i]!.session_key });
    }
  });

  it('refuses unknown methods, extension-page requests, malformed and oversized params', async () => {
    const { call } = await setUp({ unlocked: true });
    await route(services, { type: 'sites.allow', origin: SITE, scopes: ['read', 'backup'] });
    expect(await call(SITE, callOf('vault_dump'))).toMatchObject({ ok: false, error: { code: ErrorCode.unsupportedMethod } });
    for (const internal of [{ type: 'vault.lock' }, { type: 'sites.allow', origin: SITE, scopes: ['read'] }, { type: 'status.get' }]) {
      expect(await call(SITE, internal)).toMatchObject({ ok: false, error: { code: ErrorCode.unsupportedMethod } });
    }
    const polluted = JSON.parse('{"sessions":[{"roomId":"!r:x","sessionId":"s"}],"__proto__":{"admin":true}}') as unknown;
    for (const params of [polluted, 'x', [1], { sessions: 'x' }, { sessions: [] }, { sessions: [{ roomId: 'r', sessionId: 's' }] },
      { sessions: new Array(MAX_SESSIONS_PER_PAGE_REQUEST + 1).fill({ roomId: '!r:x', sessionId: 's' }) }]) {
      expect(await call(SITE, callOf('vault_getRoomKeys', params))).toMatchObject({ ok: false, error: { code: ErrorCode.invalidParams } });
    }
    expect(await call(SITE, callOf('vault_backupRoomKeys', { sessions: new Array(MAX_SESSIONS_PER_PAGE_REQUEST + 1).fill({}) }))).toMatchObject({ ok: false, error: { code: ErrorCode.invalidParams } });
    expect(await vault.countSessions()).toBe(0);
  });

  it('throttles a flooding origin without slowing another', async () => {
    const { call } = await setUp();
    await route(services, { type: 'sites.allow', origin: SITE, scopes: ['read'] });
    await route(services, { type: 'sites.allow', origin: 'http://127.0.0.1:8080', scopes: ['read'] });
    const flood = await Promise.all(Array.from({ length: 200 }, () => call(SITE, callOf('vault_status'))));
    const limited = flood.filter((r) => !r.ok && r.error.code === ErrorCode.limitExceeded).length;
    expect(limited).toBeGreaterThan(100);
    expect(await call('http://127.0.0.1:8080', callOf('vault_status'))).toMatchObject({ ok: true });
  });

  it('asks the user for more scopes in a window: allowed, denied, or revoked meanwhile', async () => {
    const { call } = await setUp();
    await route(services, { type: 'sites.allow', origin: SITE, scopes: ['read'] });
    expect(await call(SITE, callOf('vault_requestScopes', { scopes: ['read'] }))).toEqual({ ok: true, value: { scopes: ['read'] } });
    expect(platform.windows).toEqual([]); // nothing new asked, no window

    const approved = call(SITE, callOf('vault_requestScopes', { scopes: ['backup'] }));
    await until(() => platform.windows.length === 1);
    const id = decodeURIComponent(platform.windows[0]!.split('#')[1]!);
    expect(await route(services, { type: 'approval.get', id })).toEqual({ ok: true, value: { origin: SITE, scopes: ['backup'] } });
    // A second request while the window is open is refused, not stacked.
    expect(await call(SITE, callOf('vault_requestScopes', { scopes: ['backup'] }))).toMatchObject({ ok: false, error: { code: ErrorCode.limitExceeded } });
    await route(services, { type: 'approval.answer', id, allow: true });
    expect(await approved).toEqual({ ok: true, value: { scopes: ['read', 'backup'] } });
    expect((await vault.getSites())[0]!.scopes).toEqual(['read', 'backup']);

    await route(services, { type: 'sites.allow', origin: SITE, scopes: ['read'] });
    const denied = call(SITE, callOf('vault_requestScopes', { scopes: ['backup'] }));
    await until(() => platform.windows.length === 2);
    services.sites.windowClosed(2); // closing the window is a "no"
    expect(await denied).toMatchObject({ ok: false, error: { code: ErrorCode.userRejected } });

    // Right after a "no", the site may not bring the window back.
    expect(await call(SITE, callOf('vault_requestScopes', { scopes: ['backup'] }))).toMatchObject({ ok: false, error: { code: ErrorCode.limitExceeded } });
    expect(platform.windows.length).toBe(2);

    const LOOP = 'http://127.0.0.1:8080';
    await route(services, { type: 'sites.allow', origin: LOOP, scopes: ['read'] });
    const revoked = call(LOOP, callOf('vault_requestScopes', { scopes: ['backup'] }));
    await until(() => platform.windows.length === 3);
    await route(services, { type: 'sites.revoke', origin: LOOP });
    expect(await revoked).toMatchObject({ ok: false, error: { code: ErrorCode.userRejected } });
    expect((await vault.getSites()).map((g) => g.origin)).toEqual([SITE]);
  });

  it('revokes at once: refused, tabs told, scripts and permission gone (but not the homeserver\'s)', async () => {
    const { call } = await setUp();
    await route(services, { type: 'sites.allow', origin: SITE, scopes: ['read'] });
    await route(services, { type: 'sites.allow', origin: 'http://127.0.0.1:8080', scopes: ['read'] });
    expect(platform.scripts).toEqual(new Set([SITE, 'http://127.0.0.1:8080']));
    expect(await route(services, { type: 'sites.revoke', origin: SITE })).toEqual({ ok: true, value: { revoked: true } });
    expect(await call(SITE, callOf('vault_status'))).toMatchObject({ ok: false, error: { code: ErrorCode.unauthorized } });
    expect(platform.told).toContainEqual({ origin: SITE, message: { type: 'page.revoked' } });
    expect(platform.scripts).toEqual(new Set(['http://127.0.0.1:8080']));
    expect(platform.permissions.has('https://app.example.org/*')).toBe(false);

    // The homeserver shares the permission pattern of a site on the same host: it stays.
    await vault.connectAccount({ homeserverUrl: 'http://127.0.0.1:8008', userId: USER, deviceId: 'D', accessToken: { iv: new Uint8Array(12), ciphertext: new Uint8Array(16) }, ownsDevice: true, connectedAt: 0 });
    await route(services, { type: 'sites.revoke', origin: 'http://127.0.0.1:8080' });
    expect(platform.permissions.has('http://127.0.0.1/*')).toBe(true);
    expect(platform.scripts.size).toBe(0);
  });

  it('tells allowed sites\' tabs when the vault locks', async () => {
    await setUp({ unlocked: true });
    await route(services, { type: 'sites.allow', origin: SITE, scopes: ['read'] });
    platform.told.length = 0;
    await route(services, { type: 'vault.lock' });
    await until(() => platform.told.length > 0);
    expect(platform.told[0]).toEqual({ origin: SITE, message: { type: 'page.status', status: { state: 'locked', scopes: ['read'], userId: USER, backup: true } } });
  });

  it('brings scripts in line with the grants, and drops grants whose permission went', async () => {
    await setUp();
    await route(services, { type: 'sites.allow', origin: SITE, scopes: ['read'] });
    await route(services, { type: 'sites.allow', origin: 'http://127.0.0.1:8080', scopes: ['read'] });
    platform.scripts.delete(SITE); // lost (e.g. an update)
    platform.scripts.add('https://stale.example'); // left over
    platform.permissions.delete('http://127.0.0.1/*'); // the user took it away in the browser
    await services.sites.reconcile();
    expect(platform.scripts).toEqual(new Set([SITE]));
    expect((await vault.getSites()).map((g) => g.origin)).toEqual([SITE]);
  });

  it('takes client reports only where the user turned the client connection on, checked field by field', async () => {
    const { call } = await setUp();
    await route(services, { type: 'sites.allow', origin: SITE, scopes: ['read', 'backup'] });
    const report = { state: 'attached', clientUserId: USER, reason: null, keysFetched: 12, sessionsHandedOver: 3 };
    expect(await call(SITE, callOf('vault_reportClient', report))).toMatchObject({ ok: false, error: { code: ErrorCode.unauthorized } });
    expect(platform.clients.size).toBe(0);

    expect(await route(services, { type: 'sites.connectClient', origin: SITE, on: true })).toMatchObject({ ok: true, value: { connectClient: true, client: null } });
    expect(platform.clients).toEqual(new Set([SITE])); // put into the open tabs at once
    // A page of the site that loads now gets the page API and the adapter once its bridge said hello.
    expect(await call(SITE, { type: 'page.hello' })).toMatchObject({ ok: true });
    expect(platform.pageWorld.at(-1)).toMatchObject({ tabId: 1, withClient: true });
    expect(await call(SITE, callOf('vault_reportClient', report))).toEqual({ ok: true, value: null });
    expect(await route(services, { type: 'sites.list' })).toMatchObject({ ok: true, value: [{ origin: SITE, connectClient: true, client: { ...report, at: expect.any(Number) } }] });
    for (const bad of [{ ...report, state: 'owned' }, { ...report, keysFetched: -1 }, { ...report, reason: 'x'.repeat(301) }, { ...report, clientUserId: 5 }]) {
      expect(await call(SITE, callOf('vault_reportClient', bad))).toMatchObject({ ok: false, error: { code: ErrorCode.invalidParams } });
    }

    // Off: the open tabs' adapters are told to detach, the script goes, reports are refused again.
    await route(services, { type: 'sites.connectClient', origin: SITE, on: false });
    expect(platform.told).toContainEqual({ origin: SITE, message: { type: 'page.client-off' } });
    expect(await call(SITE, { type: 'page.hello' })).toMatchObject({ ok: true });
    expect(platform.pageWorld.at(-1)).toMatchObject({ tabId: 1, withClient: false });
    expect(await call(SITE, callOf('vault_reportClient', report))).toMatchObject({ ok: false, error: { code: ErrorCode.unauthorized } });
    expect(await route(services, { type: 'sites.connectClient', origin: 'https://other.example', on: true })).toMatchObject({ ok: false, error: { kind: 'bad-request' } });
  });

  it('completes an allow when the permission arrives after the popup closed, and only for what was asked', async () => {
    await setUp();
    const later = 'https://later.example';
    expect(await route(services, { type: 'sites.intend', origin: later, scopes: ['read'] })).toEqual({ ok: true, value: null });
    await services.sites.permissionAdded(['https://unrelated.example/*']);
    expect(await vault.getSites()).toEqual([]);
    platform.permissions.add('https://later.example/*'); // the browser's prompt said yes
    await services.sites.permissionAdded(['https://later.example/*']);
    expect((await vault.getSites()).map((g) => [g.origin, g.scopes])).toEqual([[later, ['read']]]);
    expect(platform.scripts.has(later)).toBe(true);
    // A "no" in the prompt: a permission added later some other way allows nothing.
    await route(services, { type: 'sites.intend', origin: 'https://declined.example:8443', scopes: ['read'] });
    await route(services, { type: 'sites.cancelIntent', origin: 'https://declined.example:8443' });
    platform.permissions.add('https://declined.example/*');
    await services.sites.permissionAdded(['https://declined.example/*']);
    expect((await vault.getSites()).map((g) => g.origin)).toEqual([later]);
    // An intent is used once.
    await route(services, { type: 'sites.revoke', origin: later });
    platform.permissions.add('https://later.example/*');
    await services.sites.permissionAdded(['https://later.example/*']);
    expect(await vault.getSites()).toEqual([]);
  });

  it('never lets a page replace a session the vault holds, even with a "better" copy', async () => {
    await setUp();
    const [session] = await peerSessions(1, 1);
    // A row for this session as held from index 5 (a client that joined late has it so), made
    // here and put into a fresh vault.
    await ingestSessions(vault, [session]);
    const [held] = await vault.getSessions([[session!.room_id, session!.session_id]]);
    const later = { ...held!, firstMessageIndex: 5, revision: 5 };
    const fresh = await Vault.open(`page-api-held-${Math.random()}`);
    opened.push(fresh);
    await fresh.connectAccount((await vault.getAccount())!);
    await fresh.setPin((await vault.getPin())!);
    await fresh.putSessions([later]);
    const services2 = createServices(fresh, {
      sitePlatform: platform, scheduleWake: async () => {}, scheduleRestoreWake: async () => {}, unlockStore: memoryUnlockStore(), keepAlive: async () => {}, report: () => {},
      worker: () => ({ product: 'Matrix Key Vault', version: '0', bootId: 'b', startedAt: 0 }),
    });
    await route(services2, { type: 'sites.allow', origin: SITE, scopes: ['backup'] });
    // The page's copy claims index 0: accepted (it is a valid session) but not stored over the held one.
    const answer = await routePage(services2, pageGuards(), { origin: SITE, tabId: 1 }, callOf('vault_backupRoomKeys', { sessions: [session] }));
    expect(answer).toMatchObject({ ok: true, value: { results: [{ accepted: true }] } });
    const [after] = await fresh.getSessions([[session!.room_id, session!.session_id]]);
    expect(after).toMatchObject({ firstMessageIndex: 5, revision: 5 });
    // An extension page's import (a key file the user chose) still stores the better copy.
    expect((await ingestSessions(fresh, [session])).stored).toBe(1);
  });

  it('charges sessions to the site\'s budget, caps its requests in flight, and fetches from the backup a few at a time', async () => {
    const limiter = new OriginLimiter(() => 0);
    expect(limiter.take(SITE, PAGE_BURST)).toBe(true); // the whole burst at once
    expect(limiter.take(SITE)).toBe(false);
    expect(limiter.take('https://other.example')).toBe(true);

    const inFlight = new OriginInFlight();
    for (let i = 0; i < MAX_PAGE_REQUESTS_PER_ORIGIN; i++) expect(inFlight.enter(SITE)).toBe(true);
    expect(inFlight.enter(SITE)).toBe(false);
    expect(inFlight.enter('https://other.example')).toBe(true);
    inFlight.leave(SITE);
    expect(inFlight.enter(SITE)).toBe(true);

    const slots = new Slots(2);
    let running = 0;
    let most = 0;
    await Promise.all(Array.from({ length: 10 }, () => slots.run(async () => {
      most = Math.max(most, ++running);
      await new Promise((r) => setTimeout(r, 2));
      running--;
    })));
    expect(most).toBe(2);

    // 100 sessions cost 2 more tokens (charged before anything else, even on a locked vault): a
    // client opening a room (1,000 keys, 10 requests) fits in the burst twice; then the site waits.
    await setUp();
    await route(services, { type: 'sites.allow', origin: SITE, scopes: ['read'] });
    const frozen = { limiter: new OriginLimiter(() => 0), inFlight: new OriginInFlight() }; // no refill
    const refs = Array.from({ length: 100 }, (_, i) => ({ roomId: '!r:x', sessionId: `s${i}` }));
    const answers = [];
    for (let i = 0; i < 22; i++) answers.push(await routePage(services, frozen, { origin: SITE, tabId: 1 }, callOf('vault_getRoomKeys', { sessions: refs })));
    expect(answers.map((a) => (a.ok ? 0 : a.error.code))).toEqual([...new Array(20).fill(ErrorCode.vaultLocked), ErrorCode.limitExceeded, ErrorCode.limitExceeded]);
  });

  it('runs grant changes one at a time: an allow racing a revoke leaves no script without a grant', async () => {
    await setUp();
    // The browser's registration takes a while, as a real one does.
    const register = platform.register;
    platform.register = async (origin) => { await new Promise((r) => setTimeout(r, 20)); await register(origin); };
    const outcomes = await Promise.allSettled([
      services.sites.grant(SITE, ['read']),
      services.sites.revoke(SITE),
      services.sites.grant(SITE, ['read', 'backup']), // refused: the revoke gave the permission back
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'fulfilled', 'rejected']);
    expect(await vault.getSites()).toEqual([]);
    expect(platform.scripts.size).toBe(0);
  });
});

async function until(check: () => boolean, timeoutMs = 2000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 5));
  }
}
