/**
 * Parsers for the server's JSON (src/core/wire.ts): the spec's good bodies, Synapse's real ones,
 * and a table of bad bodies that must be refused with kind 'wire' and the bad field named.
 */
import { describe, expect, it } from 'vitest';
import {
  parseBackupVersionInfo, parseClientWellKnown, parseCreatedBackupVersion, parseCurveAuthData, parseJoinedRooms,
  parseKeyBackupData, parseKeysBackup, parseLoginResponse, parseMatrixError, parseRoomKeyBackup,
  parseRoomKeysUpdateResponse, parseVersions, parseWhoami, WireError,
} from '../../src/core/wire.ts';

const ALGORITHM = 'm.megolm_backup.v1.curve25519-aes-sha2';
// js-sdk test data (reference §2.1).
const PUBLIC_KEY = 'hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo';
const SESSION_DATA = { ephemeral: 'eph', ciphertext: 'ct', mac: 'mac' };
const ENTRY = { first_message_index: 3, forwarded_count: 1, is_verified: false, session_data: SESSION_DATA };

function refused(parse: () => unknown, field: string): WireError {
  let caught: unknown;
  try { parse(); } catch (e) { caught = e; }
  expect(caught, `expected a WireError naming ${field}`).toBeInstanceOf(WireError);
  const err = caught as WireError;
  expect(err.kind).toBe('wire');
  expect(err.field).toBe(field);
  if (field) expect(err.message).toContain(`"${field}"`);
  return err;
}

describe('backup version info', () => {
  const good = { algorithm: ALGORITHM, auth_data: { public_key: PUBLIC_KEY }, count: 0, etag: '0', version: '1' };

  it('reads a supported version, keeping every auth_data member', () => {
    const withExtras = { ...good, auth_data: { public_key: PUBLIC_KEY, signatures: { '@a:b': { 'ed25519:DEV': 'sig' } }, 'org.example.x': 1 } };
    expect(parseBackupVersionInfo(withExtras)).toEqual({ state: 'supported', ...withExtras, publicKey: PUBLIC_KEY });
  });

  it('gives the public key one spelling: a padded auth_data key is read unpadded, auth_data kept as sent', () => {
    const padded = { ...good, auth_data: { public_key: `${PUBLIC_KEY}=` } };
    const info = parseBackupVersionInfo(padded);
    expect(info).toMatchObject({ state: 'supported', publicKey: PUBLIC_KEY, auth_data: { public_key: `${PUBLIC_KEY}=` } });
  });

  it('accepts a padded public key and the legacy passphrase members', () => {
    const legacy = { public_key: `${PUBLIC_KEY}=`, private_key_salt: 'salt', private_key_iterations: 500000, private_key_bits: 256 };
    expect(parseCurveAuthData(legacy)).toEqual(legacy);
  });

  it('turns an unknown algorithm into a state, not an error', () => {
    const info = parseBackupVersionInfo({ ...good, algorithm: 'org.example.future', auth_data: { anything: true } });
    expect(info).toEqual({ state: 'unknown-algorithm', algorithm: 'org.example.future', auth_data: { anything: true }, count: 0, etag: '0', version: '1' });
  });

  it.each([
    ['not an object', [], ''],
    ['missing version', { ...good, version: undefined }, 'version'],
    ['numeric version', { ...good, version: 1 }, 'version'],
    ['empty version', { ...good, version: '' }, 'version'],
    ['string count', { ...good, count: '5' }, 'count'],
    ['negative count', { ...good, count: -1 }, 'count'],
    ['fractional count', { ...good, count: 1.5 }, 'count'],
    ['numeric etag', { ...good, etag: 0 }, 'etag'],
    ['missing algorithm', { ...good, algorithm: undefined }, 'algorithm'],
    ['missing auth_data', { ...good, auth_data: undefined }, 'auth_data'],
    ['auth_data an array', { ...good, auth_data: [] }, 'auth_data'],
    ['unknown algorithm, auth_data a string', { ...good, algorithm: 'x', auth_data: 'y' }, 'auth_data'],
    ['missing public key', { ...good, auth_data: {} }, 'auth_data.public_key'],
    ['public key not base64', { ...good, auth_data: { public_key: 'not base64!' } }, 'auth_data.public_key'],
    ['public key of 31 bytes', { ...good, auth_data: { public_key: PUBLIC_KEY.slice(0, 42) } }, 'auth_data.public_key'],
    ['public key url-safe', { ...good, auth_data: { public_key: PUBLIC_KEY.replace('/', '_') } }, 'auth_data.public_key'],
    ['signatures a string', { ...good, auth_data: { public_key: PUBLIC_KEY, signatures: 'x' } }, 'auth_data.signatures'],
    ['a signature a number', { ...good, auth_data: { public_key: PUBLIC_KEY, signatures: { '@a:b': { k: 1 } } } }, 'auth_data.signatures.@a:b.k'],
    ['salt a number', { ...good, auth_data: { public_key: PUBLIC_KEY, private_key_salt: 1 } }, 'auth_data.private_key_salt'],
    ['iterations zero', { ...good, auth_data: { public_key: PUBLIC_KEY, private_key_iterations: 0 } }, 'auth_data.private_key_iterations'],
    ['bits not a multiple of 8', { ...good, auth_data: { public_key: PUBLIC_KEY, private_key_bits: 100 } }, 'auth_data.private_key_bits'],
  ])('refuses %s', (_name, body, field) => {
    refused(() => parseBackupVersionInfo(body), field);
  });

  it('reads the created version', () => {
    expect(parseCreatedBackupVersion({ version: '7' })).toBe('7');
    refused(() => parseCreatedBackupVersion({ version: 7 }), 'version');
    refused(() => parseCreatedBackupVersion(null), '');
  });
});

describe('room keys update response', () => {
  it('reads etag and count', () => {
    expect(parseRoomKeysUpdateResponse({ etag: '3', count: 12 })).toEqual({ etag: '3', count: 12 });
  });
  it.each([
    [{ count: 1 }, 'etag'],
    [{ etag: '1' }, 'count'],
    [{ etag: '1', count: '1' }, 'count'],
    ['{}', ''],
  ])('refuses %j', (body, field) => {
    refused(() => parseRoomKeysUpdateResponse(body), field);
  });
});

describe('KeyBackupData', () => {
  it('reads the four members and drops unknown ones', () => {
    expect(parseKeyBackupData({ ...ENTRY, extra: 1 })).toEqual(ENTRY);
  });
  it.each([
    [{ ...ENTRY, first_message_index: -1 }, 'first_message_index'],
    [{ ...ENTRY, forwarded_count: undefined }, 'forwarded_count'],
    // Synapse refuses a non-boolean is_verified on upload (reference §1.3); so do we on download.
    [{ ...ENTRY, is_verified: 'false' }, 'is_verified'],
    [{ ...ENTRY, session_data: null }, 'session_data'],
    [{ ...ENTRY, session_data: { ...SESSION_DATA, mac: 5 } }, 'session_data.mac'],
    [{ ...ENTRY, session_data: { ...SESSION_DATA, ephemeral: '' } }, 'session_data.ephemeral'],
    [{ ...ENTRY, session_data: { ciphertext: 'c', mac: 'm' } }, 'session_data.ephemeral'],
  ])('refuses %j', (body, field) => {
    refused(() => parseKeyBackupData(body), field);
  });
});

describe('room and whole-backup bodies', () => {
  it('reads a room, setting a bad entry aside instead of failing', () => {
    const parsed = parseRoomKeyBackup({ sessions: { good: ENTRY, 'a/b+c': ENTRY, bad: { ...ENTRY, is_verified: 1 } } }, '!r:x');
    expect(Object.keys(parsed.sessions).sort()).toEqual(['a/b+c', 'good']);
    expect(parsed.invalid).toHaveLength(1);
    expect(parsed.invalid[0]).toMatchObject({ roomId: '!r:x', sessionId: 'bad' });
    expect(parsed.invalid[0]!.message).toContain('"sessions.bad.is_verified"');
  });

  it('keeps a session whose id is "__proto__" as an ordinary entry', () => {
    const parsed = parseRoomKeyBackup(JSON.parse(`{"sessions": {"__proto__": ${JSON.stringify(ENTRY)}}}`), '!r:x');
    expect(Object.keys(parsed.sessions)).toEqual(['__proto__']);
    expect(Object.getPrototypeOf(parsed.sessions)).toBeNull();
    expect(parsed.sessions['__proto__']).toEqual(ENTRY);
  });

  it('reads an empty room and an empty backup (what Synapse sends for "nothing")', () => {
    expect(parseRoomKeyBackup({ sessions: {} }, '!r:x')).toEqual({ sessions: {}, invalid: [] });
    expect(parseKeysBackup({ rooms: {} })).toEqual({ rooms: {}, invalid: [] });
  });

  it('reads a whole backup and lists bad entries by room', () => {
    const parsed = parseKeysBackup({ rooms: { '!a:x': { sessions: { s1: ENTRY } }, '!b:x': { sessions: { s2: { ...ENTRY, session_data: 'x' } } } } });
    expect(parsed.rooms['!a:x']!.sessions.s1).toEqual(ENTRY);
    expect(parsed.rooms['!b:x']!.sessions).toEqual({});
    expect(parsed.invalid).toEqual([{ roomId: '!b:x', sessionId: 's2', message: expect.stringContaining('"rooms.!b:x.sessions.s2.session_data"') }]);
  });

  it.each([
    [() => parseRoomKeyBackup({}, '!r'), 'sessions'],
    [() => parseRoomKeyBackup({ sessions: [] }, '!r'), 'sessions'],
    [() => parseKeysBackup({ rooms: null }), 'rooms'],
    [() => parseKeysBackup({ rooms: { '!a': 5 } }), 'rooms.!a'],
    [() => parseKeysBackup({ rooms: { '!a': {} } }), 'rooms.!a.sessions'],
  ])('refuses a malformed container (%#)', (parse, field) => {
    refused(parse, field);
  });
});

describe('Matrix error body', () => {
  it('reads errcode, error, retry_after_ms and current_version', () => {
    expect(parseMatrixError({ errcode: 'M_WRONG_ROOM_KEYS_VERSION', error: 'Wrong room_keys version', current_version: '2' }))
      .toEqual({ errcode: 'M_WRONG_ROOM_KEYS_VERSION', error: 'Wrong room_keys version', current_version: '2' });
    expect(parseMatrixError({ errcode: 'M_LIMIT_EXCEEDED', retry_after_ms: 1500 })).toEqual({ errcode: 'M_LIMIT_EXCEEDED', retry_after_ms: 1500 });
  });
  it('gives nothing for a body that is not a Matrix error, and drops ill-typed members', () => {
    expect(parseMatrixError(undefined)).toBeUndefined();
    expect(parseMatrixError('<html>')).toBeUndefined();
    expect(parseMatrixError({ error: 'no errcode' })).toBeUndefined();
    expect(parseMatrixError({ errcode: 5 })).toBeUndefined();
    expect(parseMatrixError({ errcode: 'M_X', error: 1, retry_after_ms: -5, current_version: 2 })).toEqual({ errcode: 'M_X' });
    expect(parseMatrixError({ errcode: 'M_X', retry_after_ms: 'soon' })).toEqual({ errcode: 'M_X' });
  });
});

describe('accounts and discovery', () => {
  it('reads a login response without naming the token when it is bad', () => {
    expect(parseLoginResponse({ user_id: '@a:x', access_token: 'syt_secret', device_id: 'DEV', home_server: 'x' }))
      .toEqual({ user_id: '@a:x', access_token: 'syt_secret', device_id: 'DEV' });
    const err = refused(() => parseLoginResponse({ user_id: '@a:x', access_token: 42, device_id: 'D' }), 'access_token');
    expect(err.message).not.toContain('42');
    refused(() => parseLoginResponse({ access_token: 't', device_id: 'D' }), 'user_id');
    refused(() => parseLoginResponse({ user_id: '@a:x', access_token: 't' }), 'device_id');
  });

  it('reads whoami', () => {
    expect(parseWhoami({ user_id: '@a:x', device_id: 'D', is_guest: false })).toEqual({ user_id: '@a:x', device_id: 'D', is_guest: false });
    expect(parseWhoami({ user_id: '@a:x' })).toEqual({ user_id: '@a:x' });
    refused(() => parseWhoami({ device_id: 'D' }), 'user_id');
    refused(() => parseWhoami({ user_id: '@a:x', device_id: 3 }), 'device_id');
    refused(() => parseWhoami({ user_id: '@a:x', is_guest: 'no' }), 'is_guest');
  });

  it('reads .well-known/matrix/client', () => {
    expect(parseClientWellKnown({ 'm.homeserver': { base_url: 'https://m.example.org/' }, 'm.identity_server': {} }))
      .toEqual({ 'm.homeserver': { base_url: 'https://m.example.org/' } });
    refused(() => parseClientWellKnown({}), 'm.homeserver');
    refused(() => parseClientWellKnown({ 'm.homeserver': { base_url: 7 } }), 'm.homeserver.base_url');
    refused(() => parseClientWellKnown({ 'm.homeserver': { base_url: '' } }), 'm.homeserver.base_url');
  });

  it('reads /versions and /joined_rooms', () => {
    expect(parseVersions({ versions: ['v1.11'], unstable_features: {} })).toEqual({ versions: ['v1.11'] });
    refused(() => parseVersions({ versions: [] }), 'versions');
    refused(() => parseVersions({ versions: ['v1', 2] }), 'versions');
    refused(() => parseVersions({}), 'versions');
    expect(parseJoinedRooms({ joined_rooms: ['!a:x'] })).toEqual(['!a:x']);
    refused(() => parseJoinedRooms({ joined_rooms: ['!a:x', null] }), 'joined_rooms.1');
    refused(() => parseJoinedRooms({}), 'joined_rooms');
  });
});
