/**
 * The page API's contract: what a web page on an origin the user allowed can ask the vault, shared
 * by the page-world script, the bridge, the worker and the client kit. Discovery follows EIP-6963
 * (a request event and a frozen announcement), requests EIP-1193 (`request({ method, params })`,
 * numeric error codes).
 *
 * Nothing here is trusted: the worker decides from the browser-supplied sender, and every field a
 * page sends is checked again there.
 */

/** The page dispatches this on `window` to ask installed vaults to announce themselves. */
export const REQUEST_EVENT = 'matrix-key-vault:request';
/** The vault answers with a `CustomEvent` of this name whose `detail` is a frozen `Announcement`. */
export const ANNOUNCE_EVENT = 'matrix-key-vault:announce';

/** What a page may hold: read keys from the vault, hand new keys to the vault's backup. */
export type Scope = 'read' | 'backup';
export const SCOPES: readonly Scope[] = ['read', 'backup'];

export function isScope(value: unknown): value is Scope {
  return value === 'read' || value === 'backup';
}

/** EIP-1193 style error codes, plus the vault's own. */
export const ErrorCode = {
  /** The user said no in the approval window (or closed it). */
  userRejected: 4001,
  /** The origin does not hold the scope the method needs (or no grant at all). */
  unauthorized: 4100,
  /** No such method. */
  unsupportedMethod: 4200,
  /** The vault is locked: unlock it in the extension popup, then retry (`statusChanged`). */
  vaultLocked: 4300,
  /** The extension cannot be reached (reloaded, updated, or the grant was revoked in this tab). */
  disconnected: 4900,
  /** Too many requests from this page: wait and retry. */
  limitExceeded: -32005,
  /** The params are malformed or too large. */
  invalidParams: -32602,
  /** Anything else went wrong in the vault (the message says what). */
  internal: -32603,
} as const;
export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Sessions per `vault_getRoomKeys` or `vault_backupRoomKeys` request. */
export const MAX_SESSIONS_PER_PAGE_REQUEST = 100;
/** The largest request the bridge forwards, as JSON. */
export const MAX_PAGE_REQUEST_BYTES = 1024 * 1024;
/** Requests one page may have waiting at once; more are refused by the bridge with `limitExceeded`. */
export const MAX_PAGE_REQUESTS_IN_FLIGHT = 16;

export interface PageVaultStatus {
  /** `unlocked`: keys can be read; `locked`: unlock in the popup first. */
  state: 'locked' | 'unlocked';
  /** What this origin may do. */
  scopes: Scope[];
  /** The account signed in to the vault, or null when none is. */
  userId: string | null;
  /** Whether a backup is set up, so that handed-over keys can be accepted. */
  backup: boolean;
}

/** A room key in the key-export shape `CryptoApi.importRoomKeys` takes (`algorithm` included). */
export interface ExportedRoomKey {
  algorithm: string;
  room_id: string;
  session_id: string;
  session_key: string;
  sender_key: string;
  sender_claimed_keys: Record<string, string>;
  forwarding_curve25519_key_chain: string[];
  [extra: string]: unknown;
}

export interface SessionRef {
  roomId: string;
  sessionId: string;
}

export type RoomKeyResult =
  | { roomId: string; sessionId: string; found: true; key: ExportedRoomKey }
  /** Not in the vault nor in the backup; `error` when the backup could not be asked (retry later). */
  | { roomId: string; sessionId: string; found: false; error?: string };

export type BackupResult =
  | { index: number; sessionId?: string; accepted: true }
  | { index: number; sessionId?: string; accepted: false; reason: string; kind: string };

/** The methods, with their params and results. */
export interface PageMethods {
  vault_status: { params: undefined | Record<never, never>; result: PageVaultStatus };
  /** Asks for scopes; any beyond what the origin holds opens an approval window. Resolves with all held. */
  vault_requestScopes: { params: { scopes: Scope[] }; result: { scopes: Scope[] } };
  /** Needs `read` and an unlocked vault. Unknown sessions come back as not found. */
  vault_getRoomKeys: { params: { sessions: SessionRef[] }; result: { keys: RoomKeyResult[] } };
  /** Needs `backup`; works while locked. Each session accepted or rejected with a reason. */
  vault_backupRoomKeys: { params: { sessions: unknown[] }; result: { results: BackupResult[] } };
  /**
   * The extension's own adapter for a site's Matrix client (Element Web's `mxMatrixClientPeg`) says
   * how it is doing, for the popup. Only on a site where the user turned "Connect to the Matrix
   * client on this site" on; what it says is shown, never trusted for anything else.
   */
  vault_reportClient: { params: ClientReport; result: null };
}

/** What the adapter for a site's own Matrix client reports (shown in the popup). */
export interface ClientReport {
  /**
   * waiting: no started client yet; attached: the kit is attached; other-account: the client is
   * signed in as another account than the vault's; unusable: a part the kit needs is missing.
   */
  state: 'waiting' | 'attached' | 'other-account' | 'unusable';
  /** The client's account, when it has one. */
  clientUserId: string | null;
  /** Why it is not attached, or why a direction is off, in words for people. */
  reason: string | null;
  keysFetched: number;
  sessionsHandedOver: number;
}

export const CLIENT_REPORT_STATES: readonly ClientReport['state'][] = ['waiting', 'attached', 'other-account', 'unusable'];
export type PageMethod = keyof PageMethods;
export const PAGE_METHODS: readonly PageMethod[] = ['vault_status', 'vault_requestScopes', 'vault_getRoomKeys', 'vault_backupRoomKeys', 'vault_reportClient'];

export function isPageMethod(value: unknown): value is PageMethod {
  return typeof value === 'string' && (PAGE_METHODS as readonly string[]).includes(value);
}

/** Events a provider emits. `statusChanged` carries the new `PageVaultStatus`. */
export type PageEvent = 'statusChanged';

export interface VaultInfo {
  name: 'Matrix Key Vault';
  version: string;
  /** A random v4 UUID, new for every page load (EIP-6963). */
  uuid: string;
}

export interface RequestArguments<M extends PageMethod = PageMethod> {
  method: M;
  params?: PageMethods[M]['params'];
}

/** The provider a page gets in the announcement. */
export interface VaultProvider {
  request<M extends PageMethod>(args: { method: M; params?: PageMethods[M]['params'] }): Promise<PageMethods[M]['result']>;
  on(event: PageEvent, listener: (status: PageVaultStatus) => void): void;
  removeListener(event: PageEvent, listener: (status: PageVaultStatus) => void): void;
}

export interface Announcement {
  info: VaultInfo;
  provider: VaultProvider;
}

/** The error a provider's promise rejects with. */
export interface ProviderRpcErrorShape {
  code: number;
  message: string;
  data?: unknown;
}

/**
 * Messages between the page-world script and the bridge (window.postMessage, same origin only). The
 * `target` names the receiving side, so neither side takes its own messages for the other's.
 */
export const BRIDGE_TARGET = 'matrix-key-vault/bridge';
export const PAGE_TARGET = 'matrix-key-vault/page';

/** page → bridge */
export interface BridgeRequest {
  target: typeof BRIDGE_TARGET;
  id: string;
  method: string;
  params?: unknown;
}

/** bridge → page: an answer, an event, or the bridge saying the origin may use the API. */
export type PageMessage =
  | { target: typeof PAGE_TARGET; kind: 'response'; id: string; result?: unknown; error?: ProviderRpcErrorShape }
  | { target: typeof PAGE_TARGET; kind: 'event'; event: PageEvent; data: PageVaultStatus }
  | { target: typeof PAGE_TARGET; kind: 'ready'; version: string }
  | { target: typeof PAGE_TARGET; kind: 'revoked' }
  /** The user turned "Connect to the Matrix client on this site" off: the adapter detaches. */
  | { target: typeof PAGE_TARGET; kind: 'client-off' };

/** Keys that could reach a prototype if some code merged the object naively: refused anywhere in a request. */
const POLLUTING_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * True when a value is plain JSON data (null, booleans, finite numbers, strings, arrays, plain
 * objects) no deeper than `maxDepth`, with no key that could reach a prototype.
 */
export function isPlainJson(value: unknown, maxDepth = 8): boolean {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return true;
  if (typeof value === 'number') return Number.isFinite(value);
  if (typeof value !== 'object' || maxDepth <= 0) return false;
  if (Array.isArray(value)) return value.every((v) => isPlainJson(v, maxDepth - 1));
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) return false;
  for (const key of Object.keys(value)) {
    if (POLLUTING_KEYS.has(key)) return false;
    if (!isPlainJson((value as Record<string, unknown>)[key], maxDepth - 1)) return false;
  }
  // Keys that are not enumerable own strings (symbols, getters) are not JSON.
  return Object.getOwnPropertySymbols(value).length === 0;
}
