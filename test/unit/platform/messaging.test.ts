/**
 * Pages' requests survive a worker stopped mid-answer: `request()` sends again after the browser's
 * "no answer" errors (always when no worker got the message, only for requests safe to repeat when
 * one may have started on it) and otherwise throws a RequestError of kind `no-answer`, never the
 * browser's own words.
 */
import { describe, expect, it, vi } from 'vitest';

// The polyfill refuses to load outside an extension; the requester under test gets its send injected.
vi.mock('webextension-polyfill', () => ({ default: { runtime: { sendMessage: () => Promise.reject(new Error('unused')) } } }));

const { classifyFailure, createRequester, RequestError, RETRY_DELAYS_MS } = await import('../../../src/platform/messaging.ts');

const CLOSED = 'A listener indicated an asynchronous response by returning true, but the message channel closed before a response was received';
const NO_RECEIVER = 'Could not establish connection. Receiving end does not exist.';
const status = { ok: true, value: { worker: { bootId: 'b2' } } };

/** A fake `browser.runtime.sendMessage` that plays a script: an Error to throw, or a value to answer. */
function fakeSend(script: Array<Error | unknown>) {
  const calls: unknown[] = [];
  const send = async (message: unknown) => {
    calls.push(message);
    const next = script.length > 1 ? script.shift() : script[0];
    if (next instanceof Error) throw next;
    return next;
  };
  const slept: number[] = [];
  const request = createRequester(send, { sleep: async (ms) => { slept.push(ms); } });
  return { request, calls, slept };
}

async function failure(p: Promise<unknown>): Promise<InstanceType<typeof RequestError>> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(RequestError);
    return e as InstanceType<typeof RequestError>;
  }
  throw new Error('expected the request to fail');
}

describe('request() when the worker stops', () => {
  it('knows the browsers\' wordings', () => {
    expect(classifyFailure(new Error(CLOSED))).toBe('lost-answer');
    expect(classifyFailure(new Error(NO_RECEIVER))).toBe('not-delivered');
    expect(classifyFailure(new Error('The message port closed before a response was received.'))).toBe('lost-answer');
    expect(classifyFailure(new Error("Actor 'Conduits' destroyed before query 'RuntimeMessage' was able to resolve"))).toBe('lost-answer');
    expect(classifyFailure(new Error('Promised response from onMessage listener went out of scope'))).toBe('lost-answer');
    expect(classifyFailure(new Error('Extension context invalidated.'))).toBe('orphaned');
    expect(classifyFailure(new Error('DataCloneError'))).toBeNull();
  });

  it('stores an import chunk again after the worker stopped while storing it', async () => {
    const answer = { ok: true, value: { stored: 0, unchanged: 500, rejected: [] } };
    const { request, calls, slept } = fakeSend([new Error(CLOSED), new Error(NO_RECEIVER), answer]);
    const chunk = { type: 'sessions.import' as const, sessions: [{ session_id: 's' }] };
    await expect(request(chunk)).resolves.toEqual(answer.value);
    expect(calls).toEqual([chunk, chunk, chunk]);
    expect(slept).toEqual(RETRY_DELAYS_MS.slice(0, 2));
  });

  it('treats an empty answer (the port closed) as a lost answer', async () => {
    const { request, calls } = fakeSend([undefined, status]);
    await expect(request({ type: 'status.get' })).resolves.toEqual(status.value);
    expect(calls).toHaveLength(2);
  });

  it('gives up after a few tries with a typed error in its own words', async () => {
    const { request, calls, slept } = fakeSend([new Error(CLOSED)]);
    const e = await failure(request({ type: 'status.get' }));
    expect(e.kind).toBe('no-answer');
    expect(e.message).not.toMatch(/listener|channel|Receiving end/);
    expect(calls).toHaveLength(RETRY_DELAYS_MS.length + 1);
    expect(slept).toEqual([...RETRY_DELAYS_MS]);
  });

  it('tries an unlock once more after a lost answer, not again and again', async () => {
    const answer = { ok: true, value: { version: '1', via: 'security-key' } };
    const once = fakeSend([new Error(CLOSED), answer]);
    await expect(once.request({ type: 'vault.unlock', input: 'key' })).resolves.toEqual(answer.value);
    expect(once.calls).toHaveLength(2);

    const twice = fakeSend([new Error(CLOSED), new Error(CLOSED), answer]);
    expect((await failure(twice.request({ type: 'vault.unlock', input: 'key' }))).kind).toBe('no-answer');
    expect(twice.calls).toHaveLength(2);

    // A message that reached no worker was never acted on: sending it again is always safe.
    const undelivered = fakeSend([new Error(CLOSED), new Error(NO_RECEIVER), new Error(NO_RECEIVER), answer]);
    await expect(undelivered.request({ type: 'vault.unlock', input: 'key' })).resolves.toEqual(answer.value);
    expect(undelivered.calls).toHaveLength(4);
  });

  it('does not repeat what must not happen twice, and says it may have happened', async () => {
    const login = fakeSend([new Error(CLOSED), { ok: true, value: {} }]);
    const e = await failure(login.request({ type: 'account.login', homeserver: 'h', user: 'u', password: 'p' }));
    expect(e.kind).toBe('no-answer');
    expect(e.message).toMatch(/not known whether/);
    expect(login.calls).toHaveLength(1);

    const create = fakeSend([new Error(NO_RECEIVER), { ok: true, value: { version: '2' } }]);
    await expect(create.request({ type: 'backup.create', recoveryKey: 'k' })).resolves.toEqual({ version: '2' });
    expect(create.calls).toHaveLength(2);
  });

  it('passes the worker\'s own errors through untouched and wraps unknown browser errors', async () => {
    const refused = fakeSend([{ ok: false, error: { kind: 'wrong-key', message: 'That key does not match.' } }]);
    const e = await failure(refused.request({ type: 'vault.unlock', input: 'x' }));
    expect([e.kind, e.message]).toEqual(['wrong-key', 'That key does not match.']);
    expect(refused.calls).toHaveLength(1);

    const odd = fakeSend([new Error('Something the browser never said before')]);
    const wrapped = await failure(odd.request({ type: 'status.get' }));
    expect(wrapped.kind).toBe('no-answer');
    expect(wrapped.message).not.toMatch(/never said/);
    expect((wrapped.cause as Error).message).toMatch(/never said/);
    expect(odd.calls).toHaveLength(1);

    const reloaded = fakeSend([new Error('Extension context invalidated.')]);
    expect((await failure(reloaded.request({ type: 'status.get' }))).message).toMatch(/Reload the page/);
  });
});
