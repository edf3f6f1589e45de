/**
 * For the client kit's tests: a real matrix-js-sdk 43 `MatrixClient` with Rust crypto and no server
 * (a fake fetch answers the few requests it makes on its own), real megolm sessions and encrypted
 * events from the Element-crypto peer (test/peer), and a fake vault provider that follows the page
 * API's contract (src/shared/page-api.ts).
 */
import type { MatrixClient, MatrixEvent, Room } from 'matrix-js-sdk';
import type { Logger } from 'matrix-js-sdk/lib/logger.js';
import { ErrorCode, type BackupResult, type ExportedRoomKey, type PageMethod, type PageVaultStatus, type RoomKeyResult, type SessionRef, type VaultProvider } from '../../../src/shared/page-api.ts';
import { closePeerMachine, createPeerMachine, createSessions, exportSessions, type PeerEvent, type PeerSession } from '../../peer/index.ts';

// matrix-js-sdk wants Promise.withResolvers (Node 22+); Node 20 runs the tests.
if (!('withResolvers' in Promise)) {
  Object.defineProperty(Promise, 'withResolvers', {
    configurable: true,
    writable: true,
    value: function withResolvers<T>() {
      let resolve!: (value: T) => void;
      let reject!: (reason?: unknown) => void;
      const promise = new Promise<T>((res, rej) => { resolve = res; reject = rej; });
      return { promise, resolve, reject };
    },
  });
}

const sdk = await import('matrix-js-sdk');
// Events log through the SDK's global logger, and every failure to decrypt is a warning: the tests make many.
// The global logger is a loglevel logger; its type does not say so.
((await import('matrix-js-sdk/lib/logger.js')).logger as unknown as { setLevel(level: string, persist: boolean): void }).setLevel('error', false);
const wasm = await import('@matrix-org/matrix-sdk-crypto-wasm');
// Quiet: the SDK logs every request at debug level, the Rust side every failed decryption.
await wasm.initAsync();
new wasm.Tracing(wasm.LoggerLevel.Error).turnOn();

/** The SDK's errors still show; its debug, info and warnings (a missing server backup, …) do not. */
const quietLogger: Logger = {
  trace: () => {}, debug: () => {}, info: () => {}, warn: () => {},
  error: (...message: unknown[]) => console.error(...message),
  getChild: () => quietLogger,
};

export { sdk };

export const USER_ID = '@me:kit.test';

/** Answers the client's own requests: no key backup on the server, nothing else known. */
async function fakeFetch(input: RequestInfo | URL): Promise<Response> {
  const url = String(input instanceof Request ? input.url : input);
  const json = (status: number, body: unknown): Response => new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
  if (url.includes('/room_keys/version')) return json(404, { errcode: 'M_NOT_FOUND', error: 'No current backup version' });
  return json(404, { errcode: 'M_UNRECOGNIZED', error: 'not in this test' });
}

/** A client that is never started: crypto initialised, no sync, no server. `stopClient()` when done. */
export async function createTestClient(userId = USER_ID): Promise<MatrixClient> {
  const client = sdk.createClient({
    baseUrl: 'http://127.0.0.1:9', // never contacted: every request goes to fakeFetch
    userId,
    deviceId: `KIT${Math.random().toString(36).slice(2, 8).toUpperCase()}`,
    accessToken: 'not-a-token',
    fetchFn: fakeFetch as typeof fetch,
    logger: quietLogger,
  });
  await client.initRustCrypto({ useIndexedDB: false });
  return client;
}

/** A room in the client's store, so `getRooms()` lists it. */
export function addRoom(client: MatrixClient, roomId: string): Room {
  const room = new sdk.Room(roomId, client, client.getUserId()!);
  client.store.storeRoom(room);
  return room;
}

/**
 * An encrypted event as sync would deliver it: mapped by the client (which re-emits its
 * `Event.decrypted`) and decrypted; `ageMs` makes it older than the device, for HISTORICAL_MESSAGE_*.
 */
export async function deliver(client: MatrixClient, peerEvent: PeerEvent, options: { ageMs?: number; room?: Room } = {}): Promise<MatrixEvent> {
  const raw = JSON.parse(peerEvent.encrypted) as Record<string, unknown>;
  if (options.ageMs !== undefined) raw.origin_server_ts = Date.now() - options.ageMs;
  const event = client.getEventMapper({ decrypt: false })(raw);
  if (options.room) await options.room.addLiveEvents([event], { addToState: false });
  await client.decryptEventIfNeeded(event);
  return event;
}

/** Real sessions and events from a peer device, and their keys as the vault would hold them. */
export interface PeerKeys {
  sessions: PeerSession[];
  events: PeerEvent[];
  /** In the key-export shape, with the forwarding chain the peer's type leaves optional. */
  keys: ExportedRoomKey[];
}

export async function peerKeys(rooms: number, sessionsPerRoom: number): Promise<PeerKeys> {
  const machine = await createPeerMachine();
  try {
    const { sessions, events } = await createSessions(machine, { rooms, sessionsPerRoom });
    const keys = (await exportSessions(machine)).map((key): ExportedRoomKey => ({ ...key, forwarding_curve25519_key_chain: key.forwarding_curve25519_key_chain ?? [] }));
    return { sessions, events, keys };
  } finally {
    closePeerMachine(machine);
  }
}

type Handler = (params: unknown) => unknown;

/**
 * A provider as the page API promises it: `request` resolves or rejects with `{ code, message }`;
 * `statusChanged` listeners are called by `emitStatus`. Keys it "holds" are served by
 * vault_getRoomKeys; vault_backupRoomKeys accepts every session with a session_id.
 */
export class FakeProvider implements VaultProvider {
  status: PageVaultStatus = { state: 'unlocked', scopes: ['read', 'backup'], userId: USER_ID, backup: true };
  readonly held = new Map<string, ExportedRoomKey>();
  readonly calls: Array<{ method: string; params: unknown }> = [];
  readonly backedUp: Array<Record<string, unknown>> = [];
  /** Replaces a method's behaviour; return a value or throw `{ code, message }`. */
  readonly override = new Map<string, Handler>();
  readonly #listeners = new Set<(status: PageVaultStatus) => void>();

  hold(keys: readonly ExportedRoomKey[]): this {
    for (const key of keys) this.held.set(key.session_id, key);
    return this;
  }

  async request(args: { method: PageMethod; params?: unknown }): Promise<never> {
    this.calls.push({ method: args.method, params: structuredClone(args.params) });
    await Promise.resolve();
    const handler = this.override.get(args.method) ?? this.#default(args.method);
    return handler(args.params) as never;
  }

  on(_event: 'statusChanged', listener: (status: PageVaultStatus) => void): void {
    this.#listeners.add(listener);
  }

  removeListener(_event: 'statusChanged', listener: (status: PageVaultStatus) => void): void {
    this.#listeners.delete(listener);
  }

  get listenerCount(): number {
    return this.#listeners.size;
  }

  emitStatus(change: Partial<PageVaultStatus>): void {
    this.status = { ...this.status, ...change };
    for (const listener of this.#listeners) listener(structuredClone(this.status));
  }

  callsOf(method: PageMethod): unknown[] {
    return this.calls.filter((c) => c.method === method).map((c) => c.params);
  }

  #default(method: PageMethod): Handler {
    switch (method) {
      case 'vault_status':
        return () => structuredClone(this.status);
      case 'vault_requestScopes':
        return (params) => ({ scopes: [...new Set([...this.status.scopes, ...(params as { scopes: PageVaultStatus['scopes'] }).scopes])] });
      case 'vault_getRoomKeys':
        return (params) => this.#getRoomKeys((params as { sessions: SessionRef[] }).sessions);
      case 'vault_backupRoomKeys':
        return (params) => this.#backup((params as { sessions: Array<Record<string, unknown>> }).sessions);
      default:
        return () => { throw { code: ErrorCode.unsupportedMethod, message: `no method ${String(method)}` }; };
    }
  }

  #getRoomKeys(sessions: SessionRef[]): { keys: RoomKeyResult[] } {
    if (!this.status.scopes.includes('read')) throw { code: ErrorCode.unauthorized, message: "needs 'read'" };
    if (this.status.state === 'locked') throw { code: ErrorCode.vaultLocked, message: 'the vault is locked' };
    if (sessions.length > 100) throw { code: ErrorCode.invalidParams, message: 'at most 100 sessions' };
    return {
      keys: sessions.map(({ roomId, sessionId }): RoomKeyResult => {
        const key = this.held.get(sessionId);
        return key && key.room_id === roomId
          ? { roomId, sessionId, found: true, key: structuredClone(key) }
          : { roomId, sessionId, found: false };
      }),
    };
  }

  #backup(sessions: Array<Record<string, unknown>>): { results: BackupResult[] } {
    if (!this.status.scopes.includes('backup')) throw { code: ErrorCode.unauthorized, message: "needs 'backup'" };
    if (sessions.length > 100) throw { code: ErrorCode.invalidParams, message: 'at most 100 sessions' };
    return {
      results: sessions.map((session, index): BackupResult => {
        const sessionId = typeof session.session_id === 'string' ? session.session_id : undefined;
        if (sessionId === undefined || typeof session.session_key !== 'string') {
          return { index, accepted: false, reason: 'not a session', kind: 'malformed' };
        }
        this.backedUp.push(session);
        return { index, sessionId, accepted: true };
      }),
    };
  }
}

export function announcement(provider: VaultProvider, version = '0.1.0'): { info: { name: 'Matrix Key Vault'; version: string; uuid: string }; provider: VaultProvider } {
  return { info: { name: 'Matrix Key Vault', version, uuid: crypto.randomUUID() }, provider };
}

/** Waits until `check` is true (polling every 10 ms), or fails with what it was waiting for. */
export async function until(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
