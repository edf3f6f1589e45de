/**
 * Sends requests to the service worker and unwraps the Result it answers with.
 *
 * The browser stops an idle worker, and may stop it while it handles a request. The page then gets a
 * raw browser error instead of an answer: "Could not establish connection. Receiving end does not
 * exist." when the message reached no worker, or "A listener indicated an asynchronous response by
 * returning true, but the message channel closed before a response was received" (Chrome; Firefox
 * has its own wordings) when the worker stopped while answering. The next message starts a new
 * worker, so `request()` sends again after a short wait: always when the message reached no one,
 * and after a lost answer only for requests that are safe to do twice. Whatever still fails becomes
 * a RequestError of kind `no-answer`; a page never shows the browser's own words.
 */
import browser from 'webextension-polyfill';
import type { RequestOf, RequestType, ResponseValue, Result, WireError } from '../shared/messages.ts';

export class RequestError extends Error {
  readonly kind: string;
  readonly errcode: string | undefined;
  constructor(error: WireError, options?: { cause?: unknown }) {
    super(error.message, options);
    this.name = 'RequestError';
    this.kind = error.kind;
    this.errcode = error.errcode;
  }
}

/** `browser.runtime.sendMessage`, or a stand-in for tests. */
export type SendMessage = (message: unknown) => Promise<unknown>;

/**
 * What may be sent again once the worker may have started on it and stopped before answering.
 *  - `again`: doing it twice is harmless (reads; storing a session twice stores it once).
 *  - `once`: harmless too, but it proves a key the user typed, and failed tries slow down the next
 *    ones; one more try covers a worker stopped mid-answer without hammering.
 * Anything else (signing in, which creates a device; creating a backup, which creates a version;
 * starting a restore; signing out) is sent again only if it never reached a worker.
 */
const afterLostAnswer: Partial<Record<RequestType, 'again' | 'once'>> = {
  'status.get': 'again',
  'sessions.import': 'again',
  'upload.retry': 'again',
  'vault.lock': 'again',
  'restore.cancel': 'again',
  'restore.failures': 'again',
  'vault.exportBatch': 'again',
  'vault.unlock': 'once',
  'backup.join': 'once',
  'earlier.unlock': 'once',
};

/** Waits before each new try, in ms: a worker restarts in well under a second. */
export const RETRY_DELAYS_MS: readonly number[] = [200, 500, 1000, 2000];

/**
 * Which browser error this is: no worker got the message, the worker stopped before answering, or
 * this page belongs to an extension that was since reloaded or updated (no try can reach it).
 */
export type Failure = 'not-delivered' | 'lost-answer' | 'orphaned';

export function classifyFailure(error: unknown): Failure | null {
  const text = error instanceof Error ? error.message : typeof error === 'string' ? error : '';
  if (/Receiving end does not exist|Could not establish connection/i.test(text)) return 'not-delivered';
  if (/message channel closed before a response|message port closed|Message manager disconnected|destroyed before query|went out of scope/i.test(text)) {
    return 'lost-answer';
  }
  if (/Extension context invalidated/i.test(text)) return 'orphaned';
  return null;
}

export const NO_ANSWER_MESSAGE = 'The extension\'s background worker stopped and did not answer. Try again.';
export const ORPHANED_MESSAGE = 'The extension was updated or reloaded since this page opened. Reload the page.';
export const MAYBE_DONE_MESSAGE = 'The extension\'s background worker stopped before it answered, so it is not known whether this was done. ' +
  'Check the extension popup before trying again.';

export interface RequesterOptions {
  delaysMs?: readonly number[];
  sleep?: (ms: number) => Promise<void>;
}

export type Requester = <T extends RequestType>(req: RequestOf<T>) => Promise<ResponseValue<T>>;

/** A `request` function over any send function (the real one below, fakes in tests). */
export function createRequester(send: SendMessage, options: RequesterOptions = {}): Requester {
  const delays = options.delaysMs ?? RETRY_DELAYS_MS;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));

  return async function request<T extends RequestType>(req: RequestOf<T>): Promise<ResponseValue<T>> {
    const policy = afterLostAnswer[req.type];
    let lostAnswers = 0;
    for (let attempt = 0; ; attempt++) {
      let failure: Failure;
      try {
        const result = (await send(req)) as Result<ResponseValue<T>> | undefined;
        if (result !== undefined && result !== null) {
          if (!result.ok) throw new RequestError(result.error);
          return result.value;
        }
        failure = 'lost-answer'; // the channel closed with no answer at all
      } catch (error) {
        if (error instanceof RequestError) throw error;
        const kind = classifyFailure(error);
        // Not one of the known wordings: still no raw browser text for people; the cause keeps it.
        if (kind === null) throw new RequestError({ kind: 'no-answer', message: NO_ANSWER_MESSAGE }, { cause: error });
        if (kind === 'orphaned') throw new RequestError({ kind: 'no-answer', message: ORPHANED_MESSAGE }, { cause: error });
        failure = kind;
      }
      if (failure === 'lost-answer') {
        lostAnswers++;
        const mayRepeat = policy === 'again' || (policy === 'once' && lostAnswers <= 1);
        if (!mayRepeat) {
          throw new RequestError({ kind: 'no-answer', message: policy === undefined ? MAYBE_DONE_MESSAGE : NO_ANSWER_MESSAGE });
        }
      }
      if (attempt >= delays.length) throw new RequestError({ kind: 'no-answer', message: NO_ANSWER_MESSAGE });
      await sleep(delays[attempt]!);
    }
  };
}

export const request: Requester = createRequester((message) => browser.runtime.sendMessage(message));

/**
 * For the page API's bridge: one message to the worker. Sent again (after a short wait) when it
 * reached no worker; and once more when the worker stopped before answering, if `repeatable` (asking
 * twice does no harm). Any other failure is thrown as it is, for the bridge to turn into a page error.
 */
export async function sendToWorker(message: unknown, options: { repeatable?: boolean; delays?: readonly number[] } = {}): Promise<unknown> {
  const delays = options.delays ?? RETRY_DELAYS_MS;
  let lostAnswers = 0;
  for (let attempt = 0; ; attempt++) {
    try {
      const answer = await browser.runtime.sendMessage(message);
      if (answer !== undefined) return answer;
      throw new Error('message channel closed before a response was received');
    } catch (error) {
      const failure = classifyFailure(error);
      const again = failure === 'not-delivered' || (failure === 'lost-answer' && options.repeatable === true && ++lostAnswers <= 1);
      if (!again || attempt >= delays.length) throw error;
      await new Promise<void>((resolve) => setTimeout(resolve, delays[attempt]!));
    }
  }
}

/** For the page API's bridge: messages the worker sends to this tab, and this extension's version. */
export function onWorkerMessage(listener: (message: unknown) => void): void {
  browser.runtime.onMessage.addListener((message: unknown, sender: { id?: string }) => {
    if (sender.id === browser.runtime.id) listener(message);
    return undefined;
  });
}

export function extensionVersion(): string {
  return browser.runtime.getManifest().version;
}
