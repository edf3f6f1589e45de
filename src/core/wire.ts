/**
 * The server's JSON, parsed once at the edge (STYLE.md principle 2). Every type here is the wire
 * shape with the spec's snake_case names (reference §1, §5.1); every parser takes `unknown` and
 * either returns that shape or throws a WireError whose message names the bad field. Nothing the
 * server sends can surface later as a TypeError.
 *
 * Where a body holds many independent entries (a room's sessions, a whole backup), one bad entry
 * is set aside in `invalid` instead of failing the rest: a restore counts and lists such entries,
 * it never stops on them (DESIGN.md flow 3).
 */
import { decodeBase64, unpadBase64 } from './base64.ts';
import { BACKUP_ALGORITHM, type EncryptedSessionData } from './types.ts';

export type JsonObject = { [member: string]: unknown };

/**
 * The server answered with JSON that does not match the spec. Its own class until CoreErrorKind
 * (errors.ts) gains 'wire'; callers switch on `kind` either way.
 */
export class WireError extends Error {
  override readonly name = 'WireError';
  readonly kind = 'wire';
  /** Dotted path of the offending member, e.g. `auth_data.public_key`; '' for the whole body. */
  readonly field: string;

  constructor(field: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.field = field;
  }
}

// ---------------------------------------------------------------------------------------------
// Small readers. `what` names the body ("backup version"), `path` the member.

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return value.length > 40 ? 'a long string' : `the string ${JSON.stringify(value)}`;
  if (typeof value === 'number') return `the number ${value}`;
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

function fail(what: string, path: string, expected: string, got: unknown): never {
  const where = path ? `"${path}"` : 'the body';
  throw new WireError(path, `${what}: ${where} must be ${expected}, got ${describe(got)}`);
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function parseJsonObject(json: unknown, what: string, path = ''): JsonObject {
  if (!isObject(json)) fail(what, path, 'a JSON object', json);
  return json;
}

function member(obj: JsonObject, key: string): unknown {
  // Own members only: a key named "__proto__" or "constructor" must not reach the prototype.
  return Object.prototype.hasOwnProperty.call(obj, key) ? obj[key] : undefined;
}

function join(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

function str(obj: JsonObject, key: string, what: string, path = ''): string {
  const v = member(obj, key);
  if (typeof v !== 'string') fail(what, join(path, key), 'a string', v);
  return v;
}

function nonEmptyStr(obj: JsonObject, key: string, what: string, path = ''): string {
  const v = str(obj, key, what, path);
  if (v === '') fail(what, join(path, key), 'a non-empty string', v);
  return v;
}

function optStr(obj: JsonObject, key: string, what: string, path = ''): string | undefined {
  return member(obj, key) === undefined ? undefined : str(obj, key, what, path);
}

function count(obj: JsonObject, key: string, what: string, path = ''): number {
  const v = member(obj, key);
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) fail(what, join(path, key), 'a non-negative integer', v);
  return v;
}

function bool(obj: JsonObject, key: string, what: string, path = ''): boolean {
  const v = member(obj, key);
  if (typeof v !== 'boolean') fail(what, join(path, key), 'true or false', v);
  return v;
}

function obj(o: JsonObject, key: string, what: string, path = ''): JsonObject {
  return parseJsonObject(member(o, key), what, join(path, key));
}

// ---------------------------------------------------------------------------------------------
// Errors (spec "Standard error response"; reference §1.1, §1.3)

export interface MatrixErrorBody {
  errcode: string;
  error?: string;
  /** M_LIMIT_EXCEEDED: how long to wait before retrying. */
  retry_after_ms?: number;
  /** M_WRONG_ROOM_KEYS_VERSION: the backup version that is current now. */
  current_version?: string;
}

/**
 * Lenient on purpose: an error body is read to explain a failure that already happened, so a
 * malformed one yields `undefined` (no errcode), never a second error. Only well-typed optional
 * members are kept.
 */
export function parseMatrixError(json: unknown): MatrixErrorBody | undefined {
  if (!isObject(json)) return undefined;
  const errcode = member(json, 'errcode');
  if (typeof errcode !== 'string' || errcode === '') return undefined;
  const body: MatrixErrorBody = { errcode };
  const error = member(json, 'error');
  if (typeof error === 'string') body.error = error;
  const retry = member(json, 'retry_after_ms');
  if (typeof retry === 'number' && Number.isFinite(retry) && retry >= 0) body.retry_after_ms = retry;
  const current = member(json, 'current_version');
  if (typeof current === 'string') body.current_version = current;
  return body;
}

// ---------------------------------------------------------------------------------------------
// Backup versions (reference §1.2, §2.1)

/** `auth_data` of `m.megolm_backup.v1.curve25519-aes-sha2`; every member kept (signatures cover them all). */
export interface CurveAuthData {
  /** Unpadded base64 of the 32-byte X25519 backup public key. */
  public_key: string;
  signatures?: Record<string, Record<string, string>>;
  /** Legacy, not in the spec (reference §2.1): the backup key itself came from a passphrase. */
  private_key_salt?: string;
  private_key_iterations?: number;
  private_key_bits?: number;
  [member: string]: unknown;
}

interface BackupVersionCommon {
  version: string;
  /** Number of keys stored (reference §1.4). */
  count: number;
  /** Opaque; compare for equality only (reference §1.4). */
  etag: string;
}

/** A backup this extension can use. */
export interface SupportedBackupVersion extends BackupVersionCommon {
  state: 'supported';
  algorithm: typeof BACKUP_ALGORITHM;
  auth_data: CurveAuthData;
  /**
   * `auth_data.public_key` in its one spelling, unpadded base64 (the spec's): keys are compared and
   * indexed as strings, so a server's padded spelling must not make the same key look new.
   * `auth_data` itself stays as sent (its signatures cover it).
   */
  publicKey: string;
}

/** A backup of an algorithm this extension does not implement: a state to show, not a crash. */
export interface UnknownAlgorithmBackupVersion extends BackupVersionCommon {
  state: 'unknown-algorithm';
  algorithm: string;
  auth_data: JsonObject;
}

export type BackupVersionInfo = SupportedBackupVersion | UnknownAlgorithmBackupVersion;

/** The request body of `POST`/`PUT /room_keys/version` (reference §1.2). */
export interface BackupVersionBody {
  algorithm: string;
  auth_data: object;
  /** PUT only; must equal the path's version when present. */
  version?: string;
}

function parseSignatures(value: unknown, what: string, path: string): Record<string, Record<string, string>> {
  const byUser = parseJsonObject(value, what, path);
  const out: Record<string, Record<string, string>> = {};
  for (const [userId, byKey] of Object.entries(byUser)) {
    const keys = parseJsonObject(byKey, what, `${path}.${userId}`);
    for (const keyId of Object.keys(keys)) str(keys, keyId, what, `${path}.${userId}`);
    out[userId] = keys as Record<string, string>;
  }
  return out;
}

export function parseCurveAuthData(json: unknown, what = 'backup auth_data', path = 'auth_data'): CurveAuthData {
  const authData = parseJsonObject(json, what, path);
  const publicKey = str(authData, 'public_key', what, path);
  let keyBytes: Uint8Array;
  try {
    keyBytes = decodeBase64(publicKey, `${path}.public_key`);
  } catch (e) {
    throw new WireError(`${path}.public_key`, `${what}: "${path}.public_key" is not base64 (${(e as Error).message})`, { cause: e });
  }
  if (keyBytes.length !== 32) fail(what, `${path}.public_key`, 'base64 of 32 bytes (an X25519 public key)', publicKey);
  if (member(authData, 'signatures') !== undefined) parseSignatures(member(authData, 'signatures'), what, `${path}.signatures`);
  if (member(authData, 'private_key_salt') !== undefined) str(authData, 'private_key_salt', what, path);
  for (const key of ['private_key_iterations', 'private_key_bits']) {
    const v = member(authData, key);
    if (v !== undefined && (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0)) fail(what, `${path}.${key}`, 'a positive integer', v);
  }
  const bits = member(authData, 'private_key_bits');
  if (typeof bits === 'number' && bits % 8 !== 0) fail(what, `${path}.private_key_bits`, 'a multiple of 8', bits);
  return authData as CurveAuthData;
}

/** `GET /room_keys/version[/{version}]` 200 body. */
export function parseBackupVersionInfo(json: unknown): BackupVersionInfo {
  const what = 'backup version';
  const body = parseJsonObject(json, what);
  const common = {
    version: nonEmptyStr(body, 'version', what),
    count: count(body, 'count', what),
    etag: str(body, 'etag', what),
  };
  const algorithm = nonEmptyStr(body, 'algorithm', what);
  if (algorithm === BACKUP_ALGORITHM) {
    const authData = parseCurveAuthData(member(body, 'auth_data'), what);
    return { state: 'supported', algorithm, auth_data: authData, publicKey: unpadBase64(authData.public_key), ...common };
  }
  return { state: 'unknown-algorithm', algorithm, auth_data: obj(body, 'auth_data', what), ...common };
}

/** `POST /room_keys/version` 200 body → the new version. */
export function parseCreatedBackupVersion(json: unknown): string {
  return nonEmptyStr(parseJsonObject(json, 'created backup version'), 'version', 'created backup version');
}

// ---------------------------------------------------------------------------------------------
// Keys (reference §1.3)

/** Every PUT and DELETE on keys answers with the backup's new etag and count. */
export interface RoomKeysUpdateResponse {
  etag: string;
  count: number;
}

export function parseRoomKeysUpdateResponse(json: unknown): RoomKeysUpdateResponse {
  const what = 'room keys update';
  const body = parseJsonObject(json, what);
  return { etag: str(body, 'etag', what), count: count(body, 'count', what) };
}

/** One backed-up session (`KeyBackupData`, all four members required). */
export interface KeyBackupData {
  first_message_index: number;
  forwarded_count: number;
  is_verified: boolean;
  session_data: EncryptedSessionData;
}

/** `session_data` of m.megolm_backup.v1.curve25519-aes-sha2 (reference §2.3); the cipher checks the base64. */
export function parseEncryptedSessionData(json: unknown, what = 'session_data', path = 'session_data'): EncryptedSessionData {
  const sd = parseJsonObject(json, what, path);
  return {
    ephemeral: nonEmptyStr(sd, 'ephemeral', what, path),
    ciphertext: nonEmptyStr(sd, 'ciphertext', what, path),
    mac: nonEmptyStr(sd, 'mac', what, path),
  };
}

export function parseKeyBackupData(json: unknown, what = 'backed-up session', path = ''): KeyBackupData {
  const body = parseJsonObject(json, what, path);
  return {
    first_message_index: count(body, 'first_message_index', what, path),
    forwarded_count: count(body, 'forwarded_count', what, path),
    is_verified: bool(body, 'is_verified', what, path),
    session_data: parseEncryptedSessionData(member(body, 'session_data'), what, join(path, 'session_data')),
  };
}

/** An entry set aside because it does not match `KeyBackupData`. */
export interface InvalidBackupEntry {
  roomId: string;
  sessionId: string;
  message: string;
}

/** `{ sessions: { <session_id>: KeyBackupData } }` (`RoomKeyBackup`). */
export interface RoomKeyBackup {
  sessions: Record<string, KeyBackupData>;
}

/** `{ rooms: { <room_id>: RoomKeyBackup } }`. */
export interface KeysBackup {
  rooms: Record<string, RoomKeyBackup>;
}

/** A parsed download: the valid entries in wire shape, plus those set aside. */
export interface ParsedRoomKeyBackup extends RoomKeyBackup { invalid: InvalidBackupEntry[] }
export interface ParsedKeysBackup extends KeysBackup { invalid: InvalidBackupEntry[] }

function parseSessions(json: unknown, roomId: string, what: string, path: string, invalid: InvalidBackupEntry[]): Record<string, KeyBackupData> {
  const sessions = parseJsonObject(json, what, path);
  // A null-prototype record: session ids are server-chosen strings, "__proto__" included.
  const out: Record<string, KeyBackupData> = Object.create(null) as Record<string, KeyBackupData>;
  for (const [sessionId, entry] of Object.entries(sessions)) {
    try {
      out[sessionId] = parseKeyBackupData(entry, what, `${path}.${sessionId}`);
    } catch (e) {
      if (!(e instanceof WireError)) throw e;
      invalid.push({ roomId, sessionId, message: e.message });
    }
  }
  return out;
}

/** `GET /room_keys/keys/{roomId}` 200 body. */
export function parseRoomKeyBackup(json: unknown, roomId: string): ParsedRoomKeyBackup {
  const what = 'room key backup';
  const body = parseJsonObject(json, what);
  const invalid: InvalidBackupEntry[] = [];
  return { sessions: parseSessions(member(body, 'sessions'), roomId, what, 'sessions', invalid), invalid };
}

/** `GET /room_keys/keys` 200 body. */
export function parseKeysBackup(json: unknown): ParsedKeysBackup {
  const what = 'key backup';
  const rooms = obj(parseJsonObject(json, what), 'rooms', what);
  const invalid: InvalidBackupEntry[] = [];
  const out: Record<string, RoomKeyBackup> = Object.create(null) as Record<string, RoomKeyBackup>;
  for (const [roomId, room] of Object.entries(rooms)) {
    const roomBody = parseJsonObject(room, what, `rooms.${roomId}`);
    out[roomId] = { sessions: parseSessions(member(roomBody, 'sessions'), roomId, what, `rooms.${roomId}.sessions`, invalid) };
  }
  return { rooms: out, invalid };
}

// ---------------------------------------------------------------------------------------------
// Accounts (spec "Login", "whoami", "Server discovery", "Account data")

export interface LoginResponse {
  user_id: string;
  access_token: string;
  device_id: string;
}

/** `POST /login` 200 body. The token is not named in any error message. */
export function parseLoginResponse(json: unknown): LoginResponse {
  const what = 'login response';
  const body = parseJsonObject(json, what);
  const token = member(body, 'access_token');
  if (typeof token !== 'string' || token === '') throw new WireError('access_token', `${what}: "access_token" must be a non-empty string`);
  return { user_id: nonEmptyStr(body, 'user_id', what), access_token: token, device_id: nonEmptyStr(body, 'device_id', what) };
}

export interface WhoamiResponse {
  user_id: string;
  /** Absent for appservice users. */
  device_id?: string;
  is_guest?: boolean;
}

export function parseWhoami(json: unknown): WhoamiResponse {
  const what = 'whoami response';
  const body = parseJsonObject(json, what);
  const out: WhoamiResponse = { user_id: nonEmptyStr(body, 'user_id', what) };
  const deviceId = optStr(body, 'device_id', what);
  if (deviceId !== undefined) out.device_id = deviceId;
  if (member(body, 'is_guest') !== undefined) out.is_guest = bool(body, 'is_guest', what);
  return out;
}

/** `GET /.well-known/matrix/client`: only `m.homeserver.base_url` is used. */
export interface ClientWellKnown {
  'm.homeserver': { base_url: string };
}

/**
 * Spec "Well-known URIs": a body without `m.homeserver` is FAIL_PROMPT, a `base_url` that is not a
 * string is FAIL_ERROR; both are WireErrors here and the discovery code words them for people.
 */
export function parseClientWellKnown(json: unknown): ClientWellKnown {
  const what = '.well-known/matrix/client';
  const body = parseJsonObject(json, what);
  const hs = obj(body, 'm.homeserver', what);
  return { 'm.homeserver': { base_url: nonEmptyStr(hs, 'base_url', what, 'm.homeserver') } };
}

/** `GET /_matrix/client/versions`: proves the URL is a Matrix homeserver. */
export interface VersionsResponse {
  versions: string[];
}

export function parseVersions(json: unknown): VersionsResponse {
  const what = '/_matrix/client/versions';
  const versions = member(parseJsonObject(json, what), 'versions');
  if (!Array.isArray(versions) || versions.length === 0 || !versions.every((v) => typeof v === 'string')) {
    fail(what, 'versions', 'a non-empty array of strings', versions);
  }
  return { versions: versions as string[] };
}

/** `GET /joined_rooms`. */
export function parseJoinedRooms(json: unknown): string[] {
  const what = 'joined rooms';
  const rooms = member(parseJsonObject(json, what), 'joined_rooms');
  if (!Array.isArray(rooms)) fail(what, 'joined_rooms', 'an array', rooms);
  rooms.forEach((r, i) => { if (typeof r !== 'string') fail(what, `joined_rooms.${i}`, 'a string', r); });
  return rooms as string[];
}
