/**
 * The decryption helper's worker side (src/platform/decrypt-helper.ts) with fake channels and a fake
 * offscreen platform: who may hand over a channel, what an answer must be, and what a lost page does.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { HELPER_MESSAGE, HelperError, OffscreenHelper, type HelperPort, type HelperRequest, type OffscreenPlatform } from '../../../src/platform/decrypt-helper.ts';
import type { EntryToOpen } from '../../../src/core/restore/open-entries.ts';

const ORIGIN = 'chrome-extension://extension-id';
const PAGE = `${ORIGIN}/decrypt-helper.html`;

interface FakePort extends HelperPort {
  sent: unknown[];
  closed: boolean;
  answer(message: unknown): void;
}

function fakePort(): FakePort {
  const port: FakePort = {
    sent: [], closed: false, onmessage: null,
    postMessage(m) { port.sent.push(m); },
    close() { port.closed = true; },
    answer(m) { port.onmessage?.({ data: m }); },
  };
  return port;
}

const handover = (port: FakePort, origin = ORIGIN, url = PAGE) => ({ data: { type: HELPER_MESSAGE }, origin, source: { url }, ports: [port] });

/** A platform whose page "loads" by handing over the channel the test gives it. */
function platform(existing = false) {
  let open = existing;
  const log: string[] = [];
  let onCreate: () => void = () => {};
  const p: OffscreenPlatform = {
    origin: ORIGIN, pageUrl: PAGE,
    hasDocument: async () => open,
    createDocument: async () => { log.push('create'); open = true; onCreate(); },
    closeDocument: async () => { log.push('close'); open = false; },
  };
  return { p, log, whenCreated(f: () => void) { onCreate = f; } };
}

const entries: EntryToOpen[] = [
  { roomId: '!r:x', sessionId: 's1', sessionData: { ephemeral: 'e', ciphertext: 'c', mac: 'm' } },
  { roomId: '!r:x', sessionId: 's2', sessionData: { ephemeral: 'e', ciphertext: 'c', mac: 'm' } },
];
const opened = [
  { ok: true, sessionId: 's1', firstMessageIndex: 0, senderKey: 'k' },
  { ok: false, kind: 'mac', reason: 'the session MAC does not match' },
];

function connected(existing = true) {
  const { p, log, whenCreated } = platform(existing);
  const helper = new OffscreenHelper(p);
  let port = fakePort();
  whenCreated(() => { port = fakePort(); const given = port; queueMicrotask(() => helper.accept(handover(given))); });
  return { helper, port: () => port, log };
}

async function request(helper: OffscreenHelper, port: () => FakePort) {
  const pending = helper.open('a2V5', entries);
  await vi.waitFor(() => expect(port().sent).toHaveLength(1));
  const sent = port().sent[0] as HelperRequest;
  port().sent.length = 0;
  return { pending, sent };
}

afterEach(() => vi.useRealTimers());

describe('the decryption helper, worker side', () => {
  it('starts its page (replacing one an earlier worker left), sends the key with each request, and takes its answer', async () => {
    const { helper, port, log } = connected();
    const { pending, sent } = await request(helper, port);
    expect(log).toEqual(['close', 'create']);
    expect(sent).toMatchObject({ privateKey: 'a2V5', entries });
    port().answer({ id: sent.id, opened });
    await expect(pending).resolves.toEqual(opened);
    await helper.close();
    expect(port().closed).toBe(true);
    expect(log).toEqual(['close', 'create', 'close']);
  });

  it('refuses an answer that is not the opened entries, and passes on the page\'s own error', async () => {
    const { helper, port } = connected(false);
    for (const bad of [opened.slice(0, 1), [{ ...opened[0], firstMessageIndex: '0' }], [opened[0], { ...opened[1], kind: 'other' }], 'text']) {
      const { pending, sent } = await request(helper, port);
      port().answer({ id: sent.id, opened: bad });
      await expect(pending).rejects.toThrow(/answered with something other than the opened entries/);
    }
    const { pending, sent } = await request(helper, port);
    port().answer({ id: sent.id, error: 'WebCrypto is unavailable' });
    await expect(pending).rejects.toThrow('The decryption helper failed: WebCrypto is unavailable');
  });

  it('a request the page does not answer in time fails, and the next one starts a new page', async () => {
    vi.useFakeTimers();
    const { helper, port, log } = connected(false);
    const first = port;
    const { pending } = await request(helper, port);
    const asked = first();
    pending.catch(() => undefined);
    await vi.advanceTimersByTimeAsync(30_001);
    await expect(pending).rejects.toBeInstanceOf(HelperError);
    expect(asked.closed, 'the silent page\'s channel is dropped').toBe(true);
    const next = helper.open('a2V5', entries);
    next.catch(() => undefined);
    await vi.waitFor(() => expect(log).toEqual(['create', 'close', 'create']));
  });

  it('takes a channel only from its own page: any other sender\'s is closed, other messages are not its business', () => {
    const helper = new OffscreenHelper(platform().p);
    const fromPopup = fakePort();
    expect(helper.accept(handover(fromPopup, ORIGIN, `${ORIGIN}/popup.html`))).toBe(true);
    expect(fromPopup.closed).toBe(true);
    const otherOrigin = fakePort();
    helper.accept(handover(otherOrigin, 'chrome-extension://other', PAGE));
    expect(otherOrigin.closed).toBe(true);
    const other = fakePort();
    expect(helper.accept({ data: { type: 'something-else' }, origin: ORIGIN, source: { url: PAGE }, ports: [other] })).toBe(false);
    expect(other.closed).toBe(false);
  });

  it('a second page\'s channel replaces the first, whose unanswered requests fail at once', async () => {
    const { helper, port } = connected(false);
    const { pending } = await request(helper, port);
    const first = port();
    const second = fakePort();
    helper.accept(handover(second));
    expect(first.closed).toBe(true);
    await expect(pending).rejects.toThrow('The decryption helper page was replaced.');
    const next = helper.open('a2V5', entries);
    await vi.waitFor(() => expect(second.sent).toHaveLength(1));
    second.answer({ id: (second.sent[0] as HelperRequest).id, opened });
    await expect(next).resolves.toEqual(opened);
  });

  it('a start after a close waits for the close, so the new page is not the one closed', async () => {
    const { helper, port, log } = connected(false);
    const { pending, sent } = await request(helper, port);
    port().answer({ id: sent.id, opened });
    await pending;
    const closing = helper.close();
    const next = helper.open('a2V5', entries);
    await closing;
    await vi.waitFor(() => expect(port().sent).toHaveLength(1));
    expect(log).toEqual(['create', 'close', 'create']);
    port().answer({ id: (port().sent[0] as HelperRequest).id, opened });
    await expect(next).resolves.toEqual(opened);
  });

  it('a page that never hands over its channel fails the request in time', async () => {
    vi.useFakeTimers();
    const helper = new OffscreenHelper(platform().p);
    const pending = helper.open('a2V5', entries);
    pending.catch(() => undefined);
    await vi.advanceTimersByTimeAsync(10_001);
    await expect(pending).rejects.toThrow(/did not connect within 10 s/);
  });
});
