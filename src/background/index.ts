/**
 * The service worker (Chrome) / event page (Firefox). Every listener is registered synchronously at
 * top level, so the events that wake a stopped worker are never missed; work waits on one ready
 * promise. Nothing here holds state that matters across a kill: it all lives in the vault.
 */
import { browser, type MessageSender } from '../platform/extension.ts';
import { Vault } from '../platform/vault.ts';
import { isRequest, type Result, type WorkerStatus } from '../shared/messages.ts';
import { route, senderTier } from './router.ts';
import { createServices, type Services } from './services.ts';

const UPLOAD_ALARM = 'upload';
const bootId = crypto.randomUUID();
const startedAt = Date.now();

function worker(): WorkerStatus {
  return { product: 'Matrix Key Vault', version: browser.runtime.getManifest().version, bootId, startedAt };
}

const ready: Promise<Services> = Vault.open().then((vault) => createServices(vault, {
  worker,
  async scheduleWake(at) {
    if (at === null) await browser.alarms.clear(UPLOAD_ALARM);
    else await browser.alarms.create(UPLOAD_ALARM, { when: Math.max(at, Date.now() + 1000) });
  },
  async keepAlive() {
    await browser.runtime.getPlatformInfo();
  },
  report(error) {
    console.error('Matrix Key Vault: upload run failed unexpectedly:', error instanceof Error ? error.message : error);
  },
}));

browser.runtime.onMessage.addListener((message: unknown, sender: MessageSender) => {
  if (senderTier(sender, browser.runtime.id, browser.runtime.getURL('')) !== 'extension-page') return undefined;
  if (!isRequest(message)) {
    return Promise.resolve<Result<never>>({ ok: false, error: { kind: 'bad-request', message: 'Unknown request.' } });
  }
  return ready.then((services) => route(services, message));
});

browser.alarms.onAlarm.addListener((alarm) => {
  if (alarm.name === UPLOAD_ALARM) return ready.then((services) => services.driver.run()).then(() => undefined);
  return undefined;
});

// Every start of the worker is a chance to resume: whatever woke it (a message, an alarm, a browser
// start), pending sessions wait in the vault, and a run killed mid-request must not wait for its alarm.
void ready.then((s) => s.kickUpload());
browser.runtime.onStartup.addListener(() => void ready.then((s) => s.kickUpload()));
browser.runtime.onInstalled.addListener(() => void ready.then((s) => s.kickUpload()));
