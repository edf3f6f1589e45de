/**
 * The decryption helper, page side (decrypt-helper.html, an offscreen document): connects to the
 * worker and answers its requests with `open`. See decrypt-helper.ts.
 */
import browser from 'webextension-polyfill';
import type { EntryToOpen, OpenedEntry } from '../core/restore/open-entries.ts';
import { HELPER_PORT, type HelperAnswer, type HelperRequest } from './decrypt-helper.ts';

function isRequest(value: unknown): value is HelperRequest {
  const r = value as Partial<HelperRequest> | null;
  return typeof r === 'object' && r !== null && typeof r.id === 'number' && typeof r.privateKey === 'string' && Array.isArray(r.entries);
}

export function serveHelper(open: (privateKey: string, entries: EntryToOpen[]) => Promise<OpenedEntry[]>): void {
  const port = browser.runtime.connect({ name: HELPER_PORT });
  port.onMessage.addListener(async (message: unknown) => {
    if (!isRequest(message)) return;
    let answer: HelperAnswer;
    try {
      answer = { id: message.id, opened: await open(message.privateKey, message.entries) };
    } catch (e) {
      answer = { id: message.id, error: e instanceof Error ? e.message : String(e) };
    }
    port.postMessage(answer);
  });
  // The worker that started this page is gone; the next one starts a page of its own.
  port.onDisconnect.addListener(() => window.close());
}
