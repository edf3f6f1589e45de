/** Sends requests to the service worker and unwraps the Result it answers with. */
import browser from 'webextension-polyfill';
import type { RequestOf, RequestType, ResponseValue, Result, WireError } from '../shared/messages.ts';

export class RequestError extends Error {
  readonly kind: string;
  readonly errcode: string | undefined;
  constructor(error: WireError) {
    super(error.message);
    this.name = 'RequestError';
    this.kind = error.kind;
    this.errcode = error.errcode;
  }
}

export async function request<T extends RequestType>(req: RequestOf<T>): Promise<ResponseValue<T>> {
  const result = (await browser.runtime.sendMessage(req)) as Result<ResponseValue<T>> | undefined;
  if (result === undefined) throw new RequestError({ kind: 'no-answer', message: 'The extension worker did not answer.' });
  if (!result.ok) throw new RequestError(result.error);
  return result.value;
}
