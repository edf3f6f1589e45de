/**
 * The decryption helper, page side (decrypt-helper.html, an offscreen document): hands the worker
 * one end of a channel and answers its requests with `open`. See decrypt-helper.ts.
 */
import type { EntryToOpen, OpenedEntry } from '../core/restore/open-entries.ts';
import { HELPER_MESSAGE, type HelperAnswer, type HelperRequest } from './decrypt-helper.ts';

function isRequest(value: unknown): value is HelperRequest {
  const r = value as Partial<HelperRequest> | null;
  return typeof r === 'object' && r !== null && typeof r.id === 'number' && typeof r.privateKey === 'string' && Array.isArray(r.entries);
}

export async function serveHelper(open: (privateKey: string, entries: EntryToOpen[]) => Promise<OpenedEntry[]>): Promise<void> {
  const channel = new MessageChannel();
  channel.port1.onmessage = async (event: MessageEvent) => {
    const message: unknown = event.data;
    if (!isRequest(message)) return;
    let answer: HelperAnswer;
    try {
      answer = { id: message.id, opened: await open(message.privateKey, message.entries) };
    } catch (e) {
      answer = { id: message.id, error: e instanceof Error ? e.message : String(e) };
    }
    channel.port1.postMessage(answer);
  };
  const registration = await navigator.serviceWorker.ready;
  if (!registration.active) throw new Error('no active service worker to help');
  registration.active.postMessage({ type: HELPER_MESSAGE }, [channel.port2]);
}
