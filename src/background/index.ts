/**
 * The service worker. Every listener is registered synchronously at top level, so the events that
 * wake a stopped worker are never missed; work waits on one ready promise.
 */
import { browser, type MessageSender } from '../platform/extension.ts';
import { isRequest, type Result, type WorkerStatus } from '../shared/messages.ts';

const bootId = crypto.randomUUID();
const startedAt = Date.now();

function status(): WorkerStatus {
  return { product: 'Matrix Key Vault', version: browser.runtime.getManifest().version, bootId, startedAt };
}

function isExtensionPage(sender: MessageSender): boolean {
  return sender.id === browser.runtime.id && typeof sender.url === 'string' &&
    sender.url.startsWith(browser.runtime.getURL(''));
}

browser.runtime.onMessage.addListener((message: unknown, sender: MessageSender) => {
  // Only the extension's own pages (popup, or a page of ours opened in a tab) may talk to the worker
  // for now; content scripts come with the page API. Decided from the browser-supplied sender.
  if (!isExtensionPage(sender)) return undefined;
  if (!isRequest(message)) return undefined;
  switch (message.type) {
    case 'status.get':
      return Promise.resolve<Result<WorkerStatus>>({ ok: true, value: status() });
  }
});
