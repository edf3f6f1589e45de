/** The restore engine's decisions, with no I/O: counters, passes, pauses and the rate. */
import { describe, expect, it } from 'vitest';
import {
  applyChunk, decideAfterPass, decideAfterRooms, doneCount, isActive, MAX_PASSES_WITHOUT_PROGRESS, newRestore, onByRoom, onFinished, onPassFailed, onPassStarted, onResumed, onRoomsListed, restoreRate,
} from '../../../src/core/restore/state.ts';
import { classifyRecoveryInput, isKeyShaped, MAX_RECOVERY_INPUT_LENGTH } from '../../../src/core/recovery-input.ts';
import { encodeRecoveryKey } from '../../../src/core/index.ts';

const fresh = () => newRestore({ id: 'r', userId: '@u:x', version: '3', publicKey: 'K', serverCount: 10, now: 1000 });

describe('restore state', () => {
  it('adds each chunk to the counters and the failures by kind', () => {
    let s = onPassStarted(fresh(), 10, 1000);
    s = applyChunk(s, { restored: 4, alreadyPresent: 1, failures: ['mac', 'json'], rooms: 2 }, 2000);
    s = applyChunk(s, { restored: 2, alreadyPresent: 0, failures: ['mac'], rooms: 3 }, 3000);
    expect(s).toMatchObject({ restored: 6, alreadyPresent: 1, failed: 3, failuresByKind: { mac: 2, json: 1 }, rooms: 3, passes: 1 });
    expect(doneCount(s)).toBe(10);
    expect(decideAfterPass(s, 10, 0)).toEqual({ action: 'done' });
  });

  it('room by room: the switch is kept with the restore, chunks move the checkpoint, and keys beyond the listed rooms are a note', () => {
    let s = applyChunk(onPassStarted(fresh(), 10, 1000), { restored: 3, alreadyPresent: 0, failures: [], rooms: 4 }, 2000);
    s = onByRoom({ ...s, attempt: 2 });
    expect(s).toMatchObject({ source: 'rooms', roomsListed: null, roomsDone: 0, rooms: 0, attempt: 0, restored: 3 });
    s = onRoomsListed(s, 5);
    s = applyChunk(s, { restored: 4, alreadyPresent: 0, failures: [], rooms: 2, roomsDone: 3 }, 3000);
    s = applyChunk(s, { restored: 0, alreadyPresent: 0, failures: [], rooms: 2, roomsDone: 2 }, 3000);
    expect(s).toMatchObject({ roomsListed: 5, roomsDone: 3, rooms: 2, restored: 7 });
    expect(applyChunk(fresh(), { restored: 1, alreadyPresent: 0, failures: [], rooms: 1 }, 2000)).not.toHaveProperty('roomsDone');
    expect(decideAfterRooms(s, 7)).toEqual({ action: 'done' });
    expect(decideAfterRooms(s, 10)).toEqual({ action: 'done', note: { kind: 'unlisted-rooms', message: expect.stringMatching(/^3 keys are in rooms this account no longer lists/) } });
    expect(decideAfterRooms(s, 8).note?.message).toMatch(/^1 key is in rooms/);
  });

  it('downloads again when a pass ended short, but not forever', () => {
    const s = applyChunk(onPassStarted(fresh(), 10, 1000), { restored: 8, alreadyPresent: 0, failures: [], rooms: 1 }, 2000);
    expect(decideAfterPass(s, 10, 0)).toEqual({ action: 'again' });
    expect(decideAfterPass(s, 10, MAX_PASSES_WITHOUT_PROGRESS)).toEqual({ action: 'done' });
  });

  it('pauses with backoff (or the server\'s wait) after a failure, and stays active', () => {
    const s = onPassStarted(fresh(), 10, 1000);
    const waiting = onPassFailed(s, { kind: 'connection', message: 'dropped' }, 5000, () => 0.5);
    expect(waiting).toMatchObject({ phase: 'waiting', attempt: 1, lastError: { kind: 'connection', at: 5000 } });
    expect(waiting.retryAt).toBeGreaterThanOrEqual(5000 + 1000);
    expect(isActive(waiting)).toBe(true);
    const limited = onPassFailed(waiting, { kind: 'homeserver', message: '429', retryAfterMs: 7000 }, 6000, () => 0.5);
    expect(limited).toMatchObject({ attempt: 2, retryAt: 13_000 });
    expect(onResumed(limited, 14_000)).toMatchObject({ phase: 'running', retryAt: null });
  });

  it('measures the rate over running time only, and finishes', () => {
    let s = onPassStarted(fresh(), 10, 0);
    s = applyChunk(s, { restored: 5, alreadyPresent: 0, failures: [], rooms: 1 }, 1000);
    expect(restoreRate(s, 1000)).toEqual({ rate: 5, secondsLeft: 1 });
    const paused = onPassFailed(s, { kind: 'connection', message: 'x' }, 1000, () => 0.5);
    expect(restoreRate(paused, 60_000), 'a pause does not lower the rate').toEqual({ rate: 5, secondsLeft: 1 });
    const done = onFinished(s, 'done', 2000);
    expect(done).toMatchObject({ phase: 'done', finishedAt: 2000, activeMs: 2000 });
    expect(isActive(done)).toBe(false);
    expect(onFinished(s, 'failed', 2000, { kind: 'backup-changed', message: 'gone' }).lastError).toMatchObject({ kind: 'backup-changed' });
  });
});

describe('what was typed into the Recovery key field', () => {
  it.each([
    ['', 'empty'], ['  \n ', 'empty'], ['x'.repeat(MAX_RECOVERY_INPUT_LENGTH + 1), 'too-long'],
    ['correct horse battery staple', 'phrase'], ['my cat eats bread', 'phrase'], ['Es war einmal', 'phrase'], ['hunter2', 'phrase'],
    ['1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2', 'bad-key'], ['EsTc LW2K 0OIl', 'bad-key'],
    ['EsTc LW2K PGiF wKEA 3As5 g5c4 BXwk qeeJ ZJV8 Q9fu gUMN UE4e', 'bad-key'],
  ])('%j is %s', (text, shape) => {
    expect(classifyRecoveryInput(text).shape).toBe(shape);
  });

  it('decodes a key with or without its spaces', () => {
    const text = encodeRecoveryKey(new Uint8Array(32).fill(7));
    expect(isKeyShaped(text)).toBe(true);
    expect(classifyRecoveryInput(text)).toMatchObject({ shape: 'key' });
    expect(classifyRecoveryInput(` ${text.replace(/ /g, '')}\n`)).toMatchObject({ shape: 'key' });
  });

  it('says why a key-shaped text is not a key', () => {
    const bad = classifyRecoveryInput('1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2');
    expect(bad.shape === 'bad-key' && bad.error.kind).toBe('length');
  });
});
