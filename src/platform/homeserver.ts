/**
 * The homeserver client: login, whoami, logout, every `/room_keys` endpoint (reference §1) and
 * account data (reference §5.1), over an injected `fetch`.
 *
 * Every failure is exactly one of three errors (STYLE.md principle 4):
 *  - HomeserverError  (kind 'homeserver'): the server answered, and said no — or answered a 2xx
 *    whose JSON does not match the spec;
 *  - ConnectionError  (kind 'connection', reason 'network' | 'timeout'): no usable answer;
 *  - AbortedError     (kind 'aborted'): the caller's AbortSignal fired.
 * The access token is sent only in the Authorization header: never in a URL, a message or a log.
 */
import {
  parseBackupVersionInfo, parseCreatedBackupVersion, parseJoinedRooms, parseJsonObject, parseKeyBackupData,
  parseLoginResponse, parseMatrixError, parseRoomKeyBackup, parseRoomKeysUpdateResponse,
  parseWhoami, WireError,
  type BackupVersionBody, type BackupVersionInfo, type JsonObject, type KeyBackupData, type KeysBackup,
  type ParsedRoomKeyBackup, type RoomKeyBackup, type RoomKeysUpdateResponse,
  type WhoamiResponse,
} from '../core/wire.ts';

/** Chrome stops a service worker whose fetch takes over 30 s to answer; the upload path passes ~20 s. */
export const DEFAULT_TIMEOUT_MS = 30_000;
/** What the user sees in their device list (spec `initial_device_display_name`). */
export const DEVICE_DISPLAY_NAME = 'Matrix Key Vault';

export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

export interface RequestOptions {
  signal?: AbortSignal;
  /** Whole request, body included; default DEFAULT_TIMEOUT_MS. */
  timeoutMs?: number;
}

export interface TransportOptions {
  fetch?: FetchLike;
  timeoutMs?: number;
  /** Clock for `Retry-After: <HTTP date>`; default Date.now. */
  now?: () => number;
}

// ---------------------------------------------------------------------------------------------
// Errors

export class HomeserverError extends Error {
  override readonly name = 'HomeserverError';
  readonly kind = 'homeserver';
  /** HTTP status (a 2xx when the body did not match the spec). */
  readonly status: number;
  /** The Matrix errcode, when the body was a Matrix error. */
  readonly errcode: string | undefined;
  /** From `Retry-After` (seconds or HTTP date) or the body's `retry_after_ms`. */
  readonly retryAfterMs: number | undefined;
  /**
   * M_WRONG_ROOM_KEYS_VERSION: `current_version` as the server sent it (reference §1.3).
   * SERVER BUG (Synapse up to at least 1.163.2, handlers/e2e_room_keys.py upload_room_keys): it
   * sends back the version the client asked for, not the current one. Do not switch to it; re-read
   * GET /room_keys/version (which the trust check needs anyway, DESIGN.md flow 4).
   */
  readonly currentVersion: string | undefined;
  /** The server's own `error` text. */
  readonly serverMessage: string | undefined;
  /** e.g. `PUT /room_keys/keys/{roomId}/{sessionId}`: the route, without ids. */
  readonly endpoint: string;

  constructor(init: { status: number; endpoint: string; message: string; errcode?: string; retryAfterMs?: number; currentVersion?: string; serverMessage?: string; cause?: unknown }) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.status = init.status;
    this.endpoint = init.endpoint;
    this.errcode = init.errcode;
    this.retryAfterMs = init.retryAfterMs;
    this.currentVersion = init.currentVersion;
    this.serverMessage = init.serverMessage;
  }
}

export class ConnectionError extends Error {
  override readonly name = 'ConnectionError';
  readonly kind = 'connection';
  readonly reason: 'network' | 'timeout';
  readonly endpoint: string;

  constructor(reason: 'network' | 'timeout', endpoint: string, message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.reason = reason;
    this.endpoint = endpoint;
  }
}

export class AbortedError extends Error {
  override readonly name = 'AbortedError';
  readonly kind = 'aborted';
  readonly endpoint: string;

  constructor(endpoint: string) {
    super(`${endpoint} was cancelled`);
    this.endpoint = endpoint;
  }
}

export type HomeserverClientError = HomeserverError | ConnectionError | AbortedError;

export function isHomeserverClientError(e: unknown): e is HomeserverClientError {
  return e instanceof HomeserverError || e instanceof ConnectionError || e instanceof AbortedError;
}

// ---------------------------------------------------------------------------------------------
// Retry-After

/**
 * `Retry-After` is delta-seconds or an HTTP date (RFC 9110 §10.2.3). It wins over the body's
 * `retry_after_ms`, which spec v1.13 deprecated in its favour; a header that parses to nothing
 * falls back to the body.
 */
export function parseRetryAfter(header: string | null, bodyMs: number | undefined, now: number): number | undefined {
  if (header !== null) {
    const text = header.trim();
    if (/^\d+$/.test(text)) return Number(text) * 1000;
    const date = Date.parse(text);
    if (/[A-Za-z]/.test(text) && !Number.isNaN(date)) return Math.max(0, date - now);
  }
  return bodyMs;
}

// ---------------------------------------------------------------------------------------------
// The transport: one request, one of three errors.

export interface Call {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Path below the base URL, path parameters already encoded. */
  path: string;
  /** The route without ids, for messages: `GET /room_keys/keys/{roomId}`. */
  endpoint: string;
  body?: unknown;
  accessToken?: string;
  /**
   * Default 'error': a redirect must not carry a token or a password to another host. Discovery
   * follows redirects (an unauthenticated GET of public JSON).
   */
  redirect?: RequestRedirect;
}

/** One base URL, one fetch, the timeout and the error mapping; HomeserverClient and discovery share it. */
export class Transport {
  readonly baseUrl: string;
  readonly #fetch: FetchLike;
  readonly #timeoutMs: number;
  readonly #now: () => number;

  constructor(baseUrl: string, options: TransportOptions = {}) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    // Bound: a browser's fetch called as a method of another object throws "Illegal invocation".
    this.#fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#now = options.now ?? Date.now;
  }

  /** Sends the call and returns the parsed JSON body of a 2xx; throws one of the three errors. */
  async send(call: Call, options: RequestOptions = {}): Promise<unknown> {
    const { status, text } = await this.#exchange(call, options, async (response) => ({ status: response.status, text: await response.text() }));
    try {
      return JSON.parse(text) as unknown;
    } catch (e) {
      throw new HomeserverError({ status, endpoint: call.endpoint, message: `${call.endpoint}: the homeserver answered ${status} with a body that is not JSON`, cause: e });
    }
  }

  /**
   * Sends the call and hands back the body of a 2xx as a stream, for answers too large to hold
   * (a whole key backup). The timeout covers the wait for the response headers; reading the body is
   * the caller's (it passes an idle timeout of its own), and aborting `signal` ends the stream.
   */
  async openStream(call: Call, options: RequestOptions = {}): Promise<ReadableStream<Uint8Array>> {
    return this.#exchange(call, options, async (response) => {
      if (!response.body) throw new HomeserverError({ status: response.status, endpoint: call.endpoint, message: `${call.endpoint}: the homeserver answered ${response.status} with no body` });
      return response.body;
    }, true);
  }

  /**
   * One request: timeout, the three errors, and a non-2xx answer turned into a HomeserverError.
   * `take` reads a 2xx response, inside the timer unless `headersOnly`.
   */
  async #exchange<T>(call: Call, options: RequestOptions, take: (response: Response) => Promise<T>, headersOnly = false): Promise<T> {
    const { endpoint } = call;
    if (options.signal?.aborted) throw new AbortedError(endpoint);
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    const controller = new AbortController();
    let timedOut = false;
    const onAbort = (): void => controller.abort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(() => { timedOut = true; controller.abort(); }, timeoutMs);

    const headers: Record<string, string> = { accept: 'application/json' };
    if (call.accessToken !== undefined) headers.authorization = `Bearer ${call.accessToken}`;
    if (call.body !== undefined) headers['content-type'] = 'application/json';

    let status = 0;
    let text = '';
    let retryHeader: string | null = null;
    let taken: { value: T } | undefined;
    try {
      const response = await this.#fetch(`${this.baseUrl}${call.path}`, {
        method: call.method,
        headers,
        body: call.body === undefined ? undefined : JSON.stringify(call.body),
        signal: controller.signal,
        credentials: 'omit',
        redirect: call.redirect ?? 'error',
      });
      status = response.status;
      retryHeader = response.headers.get('retry-after');
      if (status >= 200 && status < 300) {
        if (headersOnly) clearTimeout(timer);
        // Read inside the timer: a server that stalls mid-body is a timeout too.
        taken = { value: await take(response) };
      } else {
        text = await response.text();
      }
    } catch (e) {
      if (e instanceof HomeserverError) throw e;
      if (timedOut) throw new ConnectionError('timeout', endpoint, `${endpoint}: the homeserver did not answer within ${timeoutMs / 1000} s`, e);
      if (options.signal?.aborted) throw new AbortedError(endpoint);
      throw new ConnectionError('network', endpoint, `${endpoint}: could not reach the homeserver (${networkReason(e)})`, e);
    } finally {
      clearTimeout(timer);
      // A stream stays tied to the caller's signal until it is read to the end or cancelled.
      if (!headersOnly || !taken) options.signal?.removeEventListener('abort', onAbort);
    }
    if (taken) return taken.value;

    let json: unknown;
    try { json = JSON.parse(text); } catch { json = undefined; }
    const body = parseMatrixError(json);
    const retryAfterMs = parseRetryAfter(retryHeader, body?.retry_after_ms, this.#now());
    const said = body ? `${body.errcode}${body.error ? `: ${body.error}` : ''}` : 'no Matrix error body';
    throw new HomeserverError({
      status,
      endpoint,
      message: `${endpoint} failed with HTTP ${status} (${said})`,
      errcode: body?.errcode,
      retryAfterMs,
      currentVersion: body?.current_version,
      serverMessage: body?.error,
    });
  }

  /** send(), then a spec parser; a WireError becomes a HomeserverError (the server answered, wrongly). */
  async sendParsed<T>(call: Call, parse: (json: unknown) => T, options?: RequestOptions): Promise<T> {
    const json = await this.send(call, options);
    try {
      return parse(json);
    } catch (e) {
      if (!(e instanceof WireError)) throw e;
      throw new HomeserverError({ status: 200, endpoint: call.endpoint, message: `${call.endpoint}: the homeserver's answer does not match the spec: ${e.message}`, cause: e });
    }
  }
}

/** undici says only "fetch failed" and puts the reason (ECONNREFUSED, "other side closed") in `cause`. */
function networkReason(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  const cause = e instanceof Error && e.cause instanceof Error ? e.cause.message : undefined;
  return cause && cause !== message ? `${message}: ${cause}` : message;
}

const seg = encodeURIComponent;
const CS = '/_matrix/client/v3';

function versionQuery(version: string): string {
  return `?version=${seg(version)}`;
}

/** 404 M_NOT_FOUND → `null`; anything else is rethrown. */
async function nullIfNotFound<T>(p: Promise<T>): Promise<T | null> {
  try {
    return await p;
  } catch (e) {
    if (e instanceof HomeserverError && e.status === 404 && e.errcode === 'M_NOT_FOUND') return null;
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// Login (no access token yet)

/** What a login returns. The token is readable, but not enumerable, printed or serialised. */
export class LoginResult {
  readonly userId: string;
  readonly deviceId: string;
  readonly #accessToken: string;

  constructor(userId: string, deviceId: string, accessToken: string) {
    this.userId = userId;
    this.deviceId = deviceId;
    this.#accessToken = accessToken;
  }

  get accessToken(): string { return this.#accessToken; }
  toString(): string { return `LoginResult(${this.userId}, device ${this.deviceId})`; }
  toJSON(): { userId: string; deviceId: string } { return { userId: this.userId, deviceId: this.deviceId }; }
}

/**
 * `POST /login` with `m.login.password`. `user` is a localpart or a full user id (identifier
 * `m.id.user` takes both). The password is sent once and kept nowhere.
 */
export async function loginWithPassword(baseUrl: string, user: string, password: string, options: TransportOptions & RequestOptions = {}): Promise<LoginResult> {
  const transport = new Transport(baseUrl, options);
  const body = await transport.sendParsed({
    method: 'POST',
    path: `${CS}/login`,
    endpoint: 'POST /login',
    body: { type: 'm.login.password', identifier: { type: 'm.id.user', user }, password, initial_device_display_name: DEVICE_DISPLAY_NAME },
  }, parseLoginResponse, options);
  return new LoginResult(body.user_id, body.device_id, body.access_token);
}

// ---------------------------------------------------------------------------------------------
// The authenticated client

export interface HomeserverClientOptions extends TransportOptions {
  baseUrl: string;
  accessToken: string;
}

export class HomeserverClient {
  readonly #transport: Transport;
  readonly #accessToken: string;

  constructor(options: HomeserverClientOptions) {
    this.#transport = new Transport(options.baseUrl, options);
    this.#accessToken = options.accessToken;
  }

  get baseUrl(): string { return this.#transport.baseUrl; }
  toString(): string { return `HomeserverClient(${this.baseUrl})`; }
  toJSON(): { baseUrl: string } { return { baseUrl: this.baseUrl }; }

  #call<T>(method: Call['method'], path: string, endpoint: string, parse: (json: unknown) => T, options?: RequestOptions, body?: unknown): Promise<T> {
    return this.#transport.sendParsed({ method, path: `${CS}${path}`, endpoint, body, accessToken: this.#accessToken }, parse, options);
  }

  // --- account --------------------------------------------------------------------------------

  whoami(options?: RequestOptions): Promise<WhoamiResponse> {
    return this.#call('GET', '/account/whoami', 'GET /account/whoami', parseWhoami, options);
  }

  /** Invalidates this access token (and its device). */
  async logout(options?: RequestOptions): Promise<void> {
    await this.#call('POST', '/logout', 'POST /logout', (j) => parseJsonObject(j, 'logout response'), options, {});
  }

  /** Room ids the user is joined to: where a restore looks for backed-up rooms (DESIGN.md flow 3). */
  joinedRooms(options?: RequestOptions): Promise<string[]> {
    return this.#call('GET', '/joined_rooms', 'GET /joined_rooms', parseJoinedRooms, options);
  }

  /** Global account data, or `null` when the type was never set (404 M_NOT_FOUND, reference §5.1). */
  getAccountData(userId: string, type: string, options?: RequestOptions): Promise<JsonObject | null> {
    return nullIfNotFound(this.#call('GET', `/user/${seg(userId)}/account_data/${seg(type)}`, 'GET /user/{userId}/account_data/{type}',
      (j) => parseJsonObject(j, `account data ${type}`), options));
  }

  async putAccountData(userId: string, type: string, content: object, options?: RequestOptions): Promise<void> {
    await this.#call('PUT', `/user/${seg(userId)}/account_data/${seg(type)}`, 'PUT /user/{userId}/account_data/{type}',
      (j) => parseJsonObject(j, 'account data update'), options, content);
  }

  // --- backup versions (reference §1.2) --------------------------------------------------------

  /** Creates a version, which becomes the current one; returns its version string. */
  createBackupVersion(body: BackupVersionBody, options?: RequestOptions): Promise<string> {
    return this.#call('POST', '/room_keys/version', 'POST /room_keys/version', parseCreatedBackupVersion, options, body);
  }

  /** The current backup, or `null` when the user has none (404 M_NOT_FOUND). */
  getLatestBackupVersion(options?: RequestOptions): Promise<BackupVersionInfo | null> {
    return nullIfNotFound(this.#call('GET', '/room_keys/version', 'GET /room_keys/version', parseBackupVersionInfo, options));
  }

  /** One version; an unknown or deleted one throws HomeserverError 404 M_NOT_FOUND. */
  getBackupVersion(version: string, options?: RequestOptions): Promise<BackupVersionInfo> {
    return this.#call('GET', `/room_keys/version/${seg(version)}`, 'GET /room_keys/version/{version}', parseBackupVersionInfo, options);
  }

  /** Replaces `auth_data` (only it can change); `algorithm` must be the version's own. */
  async updateBackupVersion(version: string, body: BackupVersionBody, options?: RequestOptions): Promise<void> {
    await this.#call('PUT', `/room_keys/version/${seg(version)}`, 'PUT /room_keys/version/{version}',
      (j) => parseJsonObject(j, 'backup version update'), options, body);
  }

  /** Deletes the version and all its keys; deleting it again succeeds (spec). */
  async deleteBackupVersion(version: string, options?: RequestOptions): Promise<void> {
    await this.#call('DELETE', `/room_keys/version/${seg(version)}`, 'DELETE /room_keys/version/{version}',
      (j) => parseJsonObject(j, 'backup version delete'), options);
  }

  // --- keys (reference §1.3): writes only to the current version (else 403 M_WRONG_ROOM_KEYS_VERSION)

  putBackupKeys(version: string, body: KeysBackup, options?: RequestOptions): Promise<RoomKeysUpdateResponse> {
    return this.#call('PUT', `/room_keys/keys${versionQuery(version)}`, 'PUT /room_keys/keys', parseRoomKeysUpdateResponse, options, body);
  }

  putBackupRoomKeys(version: string, roomId: string, body: RoomKeyBackup, options?: RequestOptions): Promise<RoomKeysUpdateResponse> {
    return this.#call('PUT', `/room_keys/keys/${seg(roomId)}${versionQuery(version)}`, 'PUT /room_keys/keys/{roomId}', parseRoomKeysUpdateResponse, options, body);
  }

  putBackupSessionKey(version: string, roomId: string, sessionId: string, data: KeyBackupData, options?: RequestOptions): Promise<RoomKeysUpdateResponse> {
    return this.#call('PUT', `/room_keys/keys/${seg(roomId)}/${seg(sessionId)}${versionQuery(version)}`, 'PUT /room_keys/keys/{roomId}/{sessionId}',
      parseRoomKeysUpdateResponse, options, data);
  }

  /**
   * The whole backup as a byte stream (Synapse has no pagination, reference §1.5): a backup of 10⁵
   * keys is ~50 MB of JSON, which a restore parses as it arrives instead of holding it
   * (src/platform/backup-stream.ts).
   */
  streamBackupKeys(version: string, options?: RequestOptions): Promise<ReadableStream<Uint8Array>> {
    return this.#transport.openStream({
      method: 'GET', path: `${CS}/room_keys/keys${versionQuery(version)}`, endpoint: 'GET /room_keys/keys', accessToken: this.#accessToken,
    }, options);
  }

  /**
   * One room's keys as a byte stream (`{"sessions": {...}}`): a room-by-room restore parses it as
   * it arrives (src/platform/backup-stream.ts with `roomId`), as it does the whole backup.
   */
  streamBackupRoomKeys(version: string, roomId: string, options?: RequestOptions): Promise<ReadableStream<Uint8Array>> {
    return this.#transport.openStream({
      method: 'GET', path: `${CS}/room_keys/keys/${seg(roomId)}${versionQuery(version)}`, endpoint: 'GET /room_keys/keys/{roomId}', accessToken: this.#accessToken,
    }, options);
  }

  getBackupRoomKeys(version: string, roomId: string, options?: RequestOptions): Promise<ParsedRoomKeyBackup> {
    return this.#call('GET', `/room_keys/keys/${seg(roomId)}${versionQuery(version)}`, 'GET /room_keys/keys/{roomId}',
      (j) => parseRoomKeyBackup(j, roomId), options);
  }

  /**
   * One session. 404 M_NOT_FOUND means "no such key" or "no such version": the spec gives no way
   * to tell them apart (reference §1.3), so it is thrown as it came.
   */
  getBackupSessionKey(version: string, roomId: string, sessionId: string, options?: RequestOptions): Promise<KeyBackupData> {
    return this.#call('GET', `/room_keys/keys/${seg(roomId)}/${seg(sessionId)}${versionQuery(version)}`, 'GET /room_keys/keys/{roomId}/{sessionId}',
      (j) => parseKeyBackupData(j), options);
  }

  deleteBackupKeys(version: string, options?: RequestOptions): Promise<RoomKeysUpdateResponse> {
    return this.#call('DELETE', `/room_keys/keys${versionQuery(version)}`, 'DELETE /room_keys/keys', parseRoomKeysUpdateResponse, options);
  }

  deleteBackupRoomKeys(version: string, roomId: string, options?: RequestOptions): Promise<RoomKeysUpdateResponse> {
    return this.#call('DELETE', `/room_keys/keys/${seg(roomId)}${versionQuery(version)}`, 'DELETE /room_keys/keys/{roomId}', parseRoomKeysUpdateResponse, options);
  }

  deleteBackupSessionKey(version: string, roomId: string, sessionId: string, options?: RequestOptions): Promise<RoomKeysUpdateResponse> {
    return this.#call('DELETE', `/room_keys/keys/${seg(roomId)}/${seg(sessionId)}${versionQuery(version)}`, 'DELETE /room_keys/keys/{roomId}/{sessionId}',
      parseRoomKeysUpdateResponse, options);
  }
}
