import { describe, expect, it } from 'vitest';
import { derive, failureOf, initialState, reduce, type PopupEvent, type PopupState } from '../../../src/popup/state.ts';
import type { RestoreSummary, UnlockSummary, VaultStatus } from '../../../src/shared/messages.ts';

const account = { userId: '@a:x', deviceId: 'D', homeserverUrl: 'https://x' };
const pin = { version: '3', publicKey: 'PK', source: 'proved' as const, pinnedAt: 1 };
const unlocked: UnlockSummary = { version: '3', publicKey: 'PK', via: 'security-key', at: 5 };
const restore = (phase: RestoreSummary['phase'], extra: Partial<RestoreSummary> = {}): RestoreSummary => ({
  id: 'r1', version: '3', phase, serverCount: 100, done: 40, restored: 30, alreadyPresent: 9, failed: 1, failuresByKind: { mac: 1 },
  rooms: 4, startedAt: 0, finishedAt: null, rate: 20, secondsLeft: 3, retryAt: null, lastError: null, ...extra,
});

function status(over: Partial<VaultStatus> = {}): VaultStatus {
  return {
    worker: { product: 'Matrix Key Vault', version: '0.1.0', bootId: 'b', startedAt: 0 },
    account,
    backup: null,
    upload: { phase: 'idle', pending: 0, stored: 0, serverCount: null, lastSuccessAt: null, lastError: null, retryAt: null, stopped: null, notice: null },
    unlocked: null,
    restore: null,
    earlier: [],
    ...over,
  };
}

const run = (events: PopupEvent[], from: PopupState = initialState) => events.reduce(reduce, from);
const got = (s: VaultStatus, sentAt = 0): PopupEvent => ({ type: 'status', status: s, sentAt });

describe('popup screens from the status', () => {
  it('starts loading, and shows an error when the worker never answered', () => {
    expect(initialState.screen).toBe('loading');
    expect(run([{ type: 'status-error', error: new Error('no'), sentAt: 0 }])).toMatchObject({ screen: 'error' });
  });

  it('walks signed-out → no-backup → locked → unlocked → restoring → done', () => {
    expect(run([got(status({ account: null }))]).screen).toBe('signed-out');
    expect(run([got(status({ server: { state: 'none' } }))]).screen).toBe('no-backup');
    expect(run([got(status())]).screen).toBe('no-backup'); // server not known yet: "checking"
    const present = { state: 'present' as const, version: '3', algorithm: 'a', count: 12, usesPinnedKey: false, supported: true };
    expect(run([got(status({ server: present }))])).toMatchObject({ screen: 'locked', version: '3', count: 12, changed: false });
    expect(run([got(status({ server: { ...present, supported: false } }))]).screen).toBe('no-backup');
    expect(run([got(status({ backup: pin }))])).toMatchObject({ screen: 'locked', version: '3', changed: false });
    expect(run([got(status({ backup: pin, unlocked }))])).toMatchObject({ screen: 'unlocked', unlocked });
    expect(run([got(status({ backup: pin, unlocked, restore: restore('running') }))])).toMatchObject({ screen: 'restoring' });
    expect(run([got(status({ backup: pin, unlocked, restore: restore('waiting') }))])).toMatchObject({ screen: 'restoring' });
    expect(run([got(status({ backup: pin, restore: restore('locked') }))])).toMatchObject({ screen: 'restoring', unlocked: null });
    for (const phase of ['done', 'cancelled', 'failed'] as const) {
      expect(run([got(status({ backup: pin, unlocked, restore: restore(phase) }))]).screen).toBe('done');
      expect(run([got(status({ backup: pin, restore: restore(phase) }))]).screen).toBe('locked');
    }
  });

  it('asks for the new backup\'s key when the pinned one was replaced, even while unlocked', () => {
    const stopped = { kind: 'backup-changed' as const, pinnedVersion: '3', currentVersion: '4', errcode: 'M_WRONG_ROOM_KEYS_VERSION' };
    const s = status({ backup: pin, unlocked, upload: { ...status().upload, phase: 'stopped', stopped } });
    expect(run([got(s)])).toMatchObject({ screen: 'locked', version: '4', changed: true });
    const gone = { ...stopped, currentVersion: null };
    expect(run([got({ ...s, upload: { ...s.upload, stopped: gone } })]).screen).toBe('no-backup');
  });

  it('keeps the server summary from a refresh across polls that did not ask the server', () => {
    const present = { state: 'present' as const, version: '3', algorithm: 'a', count: 12, usesPinnedKey: true, supported: true };
    const s = run([got(status({ backup: pin, server: present })), got(status({ backup: pin }), 1)]);
    expect(s).toMatchObject({ screen: 'locked', count: 12, server: present });
  });
});

describe('earlier keys', () => {
  it('keeps the list from a refresh across polls that did not ask for it, and forgets it on sign-out', () => {
    const earlier = [{ publicKey: 'OLD', version: '2', count: 7 }];
    const s = run([got(status({ backup: pin, earlier })), got({ ...status({ backup: pin }), earlier: undefined }, 1)]);
    expect(s).toMatchObject({ screen: 'locked', earlier });
    expect(reduce(s, got(status({ backup: pin, earlier: [] }), 2))).toMatchObject({ earlier: [] });
    expect(reduce(s, { type: 'signed-out', outcome: 'session-ended', at: 3 })).toMatchObject({ earlier: [] });
  });
});

describe('popup events', () => {
  const locked = run([got(status({ backup: pin }))]);

  it('unlock: busy while checking, its error shown, then unlocked', () => {
    const busy = reduce(locked, { type: 'started', action: 'unlock' });
    expect(busy).toMatchObject({ screen: 'locked', busy: 'unlock' });
    const error = { kind: 'wrong-key', message: 'no' };
    const failed = reduce(busy, { type: 'failed', action: 'unlock', error });
    expect(failed).toMatchObject({ screen: 'locked', busy: null });
    expect(failureOf(failed, 'unlock')).toBe(error);
    expect(failureOf(failed, 'restore')).toBeNull();
    const again = reduce(failed, { type: 'started', action: 'unlock' });
    expect(failureOf(again, 'unlock')).toBeNull();
    const done = reduce(again, { type: 'unlocked', unlocked, at: 100 });
    expect(done).toMatchObject({ screen: 'unlocked', unlocked, busy: null });
  });

  it('drops a status that was asked for before the last action finished', () => {
    const done = reduce(locked, { type: 'unlocked', unlocked, at: 100 });
    expect(reduce(done, got(status({ backup: pin }), 99)).screen).toBe('unlocked'); // stale
    expect(reduce(done, got(status({ backup: pin }), 100)).screen).toBe('locked'); // fresh: someone locked it
    expect(reduce(done, { type: 'status-error', error: 'x', sentAt: 50 })).toMatchObject({ loadError: null });
    expect(reduce(done, { type: 'status-error', error: 'x', sentAt: 150 })).toMatchObject({ screen: 'unlocked', loadError: 'x' });
    expect(reduce(reduce(done, { type: 'status-error', error: 'x', sentAt: 150 }), got(status({ backup: pin, unlocked }), 200))).toMatchObject({ loadError: null });
  });

  it('restore: started, cancelled, lock', () => {
    const open = run([got(status({ backup: pin, unlocked }))]);
    const running = run([{ type: 'started', action: 'restore' }, { type: 'restore-started', restore: restore('running'), at: 10 }], open);
    expect(running).toMatchObject({ screen: 'restoring', busy: null });
    const cancelled = reduce(running, { type: 'restore-cancelled', restore: restore('cancelled'), at: 11 });
    expect(cancelled).toMatchObject({ screen: 'done', restore: { phase: 'cancelled' } });
    expect(reduce(running, { type: 'restore-cancelled', restore: null, at: 11 }).screen).toBe('restoring');
    const lockedAgain = reduce(cancelled, { type: 'locked', at: 12 });
    expect(lockedAgain).toMatchObject({ screen: 'locked', version: '3' });
    const restoreFailed = reduce(open, { type: 'failed', action: 'restore', error: { kind: 'rate-limited', message: 'slow down' } });
    expect(restoreFailed.screen).toBe('unlocked');
    expect(failureOf(restoreFailed, 'restore')).toMatchObject({ kind: 'rate-limited' });
  });

  it('sign-out forgets the account and says when the server was not reached', () => {
    const open = run([got(status({ backup: pin, unlocked, restore: restore('running') }))]);
    const out = reduce(open, { type: 'signed-out', outcome: 'server-unreachable', at: 5 });
    expect(out).toMatchObject({ screen: 'signed-out', signOutNote: 'server-unreachable' });
    expect(reduce(open, { type: 'signed-out', outcome: 'session-ended', at: 5 })).toMatchObject({ screen: 'signed-out', signOutNote: null });
    const back = reduce(out, { type: 'signed-in', at: 9 });
    expect(back).toMatchObject({ screen: 'signed-out', signOutNote: null });
    expect(reduce(back, got(status(), 10)).screen).toBe('no-backup');
  });

  it('ignores actions before any status', () => {
    expect(reduce(initialState, { type: 'started', action: 'lock' })).toBe(initialState);
    expect(reduce(initialState, { type: 'locked', at: 1 })).toBe(initialState);
  });

  it('derive is idempotent', () => {
    const s = run([got(status({ backup: pin, unlocked, restore: restore('done') }))]);
    if (s.screen === 'loading' || s.screen === 'error') throw new Error('unexpected');
    expect(derive(s)).toEqual(s);
  });
});
