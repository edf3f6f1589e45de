import { describe, expect, it } from 'vitest';
import { BACKUP_ALGORITHM, checkServerBackup, samePublicKey, type BackupPin } from '../../../src/core/upload/pin.ts';
import { buildRoomKeysBody, forwardedCountFor } from '../../../src/core/upload/request.ts';

const pin: BackupPin = { userId: '@a:x', version: '3', publicKey: 'hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo', epoch: 2, source: 'proved', pinnedAt: 1 };
const info = (version: string, publicKey: string | null, algorithm = BACKUP_ALGORITHM) => ({ version, algorithm, publicKey, count: 0, etag: '0' });

describe('following the server backup', () => {
  it('follows a new version with the same key, bumping the epoch', () => {
    const check = checkServerBackup(pin, info('4', `${pin.publicKey}=`), 99);
    expect(check).toMatchObject({ outcome: 'follow', pin: { version: '4', epoch: 3, publicKey: pin.publicKey, pinnedAt: 99 } });
    expect((check as { notice: string }).notice).toMatch(/version 3 to 4/);
  });

  it('stops for a new version with a foreign key (the key-swap attack)', () => {
    expect(checkServerBackup(pin, info('4', 'ZRuVWcWlDuvOwZRygccUCD4Avtnt130800I+WQNwwRY'), 1)).toEqual({ outcome: 'stop', currentVersion: '4' });
  });

  it('stops for the same key under another algorithm', () => {
    expect(checkServerBackup(pin, info('4', pin.publicKey, 'org.example.other'), 1)).toEqual({ outcome: 'stop', currentVersion: '4' });
  });

  it('stops when the backup is gone', () => {
    expect(checkServerBackup(pin, null, 1)).toEqual({ outcome: 'stop', currentVersion: null });
  });

  it('stops when the pinned version now carries another key (auth_data rewritten)', () => {
    expect(checkServerBackup(pin, info('3', 'ZRuVWcWlDuvOwZRygccUCD4Avtnt130800I+WQNwwRY'), 1)).toEqual({ outcome: 'stop', currentVersion: '3' });
  });

  it('treats the same version and key as unchanged', () => {
    expect(checkServerBackup(pin, info('3', pin.publicKey), 1)).toEqual({ outcome: 'unchanged' });
  });

  it('compares keys ignoring base64 padding only', () => {
    expect(samePublicKey('abc', 'abc=')).toBe(true);
    expect(samePublicKey('abc', 'abd')).toBe(false);
  });
});

describe('upload request body', () => {
  it('groups by room and never claims verification', () => {
    const sd = { ephemeral: 'e', ciphertext: 'c', mac: 'm' };
    const body = buildRoomKeysBody([
      { roomId: '!a:x', sessionId: 's1', firstMessageIndex: 0, forwardedCount: 1, sessionData: sd },
      { roomId: '!a:x', sessionId: 's/2+', firstMessageIndex: 5, forwardedCount: 2, sessionData: sd },
      { roomId: '!b:x', sessionId: 's3', firstMessageIndex: 1, forwardedCount: 1, sessionData: sd },
    ]);
    expect(Object.keys(body.rooms)).toEqual(['!a:x', '!b:x']);
    expect(body.rooms['!a:x']!.sessions['s/2+']).toEqual({ first_message_index: 5, forwarded_count: 2, is_verified: false, session_data: sd });
  });

  it('forwarded_count is at least 1', () => {
    expect(forwardedCountFor(0)).toBe(1);
    expect(forwardedCountFor(1)).toBe(1);
    expect(forwardedCountFor(3)).toBe(3);
  });
});
