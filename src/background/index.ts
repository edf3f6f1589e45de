/**
 * The service worker (Chrome) / event page (Firefox). Every listener is registered synchronously at
 * top level, so the events that wake a stopped worker are never missed; work waits on one ready
 * promise. Nothing here holds state that matters across a kill: it all lives in the vault.
 */
import { browser, type MessageSender } from '../platform/extension.ts';
import { sessionUnlockStore } from '../platform/unlock-store.ts';
import { Vault } from '../platform/vault.ts';
import { isRequest, type Result, type WorkerStatus } from '../shared/messages.ts';
import { toWireError } from './errors.ts';
import { route, senderTier } from './router.ts';
import { pageGuards, pageSender, routePage } from './page-api.ts';
import { browserSitePlatform } from '../platform/sites-browser.ts';
import { createServices, type Services } from './services.ts';
import { offscreenHelper } from '../platform/decrypt-helper.ts';

const UPLOAD_ALARM = 'upload';
const RESTORE_ALARM = 'restore';
const bootId = crypto.randomUUID();
const startedAt = Date.now();

function worker(): WorkerStatus {
  return { product: 'Matrix Key Vault', version: browser.runtime.getManifest().version, bootId, startedAt };
}

function alarmAt(name: string): (at: number | null) => Promise<void> {
  return async (at) => {
    if (at === null) await browser.alarms.clear(name);
    else await browser.alarms.create(name, { when: Math.max(at, Date.now() + 1000) });
  };
}

function openServices(): Promise<Services> {
  // Opening may upgrade the vault, and migration 3 rewrites every row (42–48 s for 10⁵ rows in
  // Chromium here). A message waiting for its answer held the worker that long in the test
  // (test/e2e/vault-upgrade.test.ts, with and without this); a start with no message pending (an
  // update) may have nothing else, so an extension API call every 10 s holds it, as a restore does.
  const alive = setInterval(() => { hooks.keepAlive().catch(hooks.report); }, 10_000);
  return Vault.open().then((vault) => createServices(vault, hooks)).finally(() => clearInterval(alive));
}

/** Chrome: the restore's decryption helper page (its channel arrives as a `message` event, taken at once). */
const decryptHelper = offscreenHelper();

const hooks: Parameters<typeof createServices>[1] = {
  ...(decryptHelper ? { decryptHelper } : {}),
  worker,
  scheduleWake: alarmAt(UPLOAD_ALARM),
  scheduleRestoreWake: alarmAt(RESTORE_ALARM),
  unlockStore: sessionUnlockStore(browser.storage.session),
  sitePlatform: browserSitePlatform,
  async keepAlive() {
    await browser.runtime.getPlatformInfo();
  },
  report(error) {
    console.error('Matrix Key Vault: a background run failed unexpectedly:', error instanceof Error ? error.message : error);
  },
};

/**
 * The one ready promise. If the database cannot be opened (a broken profile, storage switched off),
 * requests are answered with that error and the next one tries again, instead of every request
 * failing for the rest of the worker's life.
 */
let opening: Promise<Services> = openServices();
function reopen(): Promise<Services> {
  opening = openServices();
  // Work the old connection was doing starts again on the new one.
  void opening.then(resume, hooks.report);
  return opening;
}

function ready(): Promise<Services> {
  return opening.then(
    // A connection the browser closed (a full disk, cleared site data) is replaced by a new one.
    (services) => (services.vault.terminated ? reopen() : services),
    () => reopen(),
  );
}

const guards = pageGuards();

browser.runtime.onMessage.addListener((message: unknown, sender: MessageSender) => {
  const extensionOrigin = browser.runtime.getURL('');
  if (senderTier(sender, browser.runtime.id, extensionOrigin) !== 'extension-page') {
    // The third tier: the page API's bridge on an allowed site, with its own requests and checks.
    const page = pageSender(sender, browser.runtime.id, extensionOrigin);
    if (!page) return undefined;
    return ready().then((services) => routePage(services, guards, page, message),
      () => ({ ok: false, error: { code: -32603, message: 'The vault could not open its storage.' } }));
  }
  if (!isRequest(message)) {
    return Promise.resolve<Result<never>>({ ok: false, error: { kind: 'bad-request', message: 'Unknown request.' } });
  }
  return ready().then((services) => route(services, message), (e: unknown) => ({ ok: false, error: toWireError(e) }) satisfies Result<never>);
});

browser.alarms.onAlarm.addListener((alarm) => {
  if (alarm.name === UPLOAD_ALARM) return ready().then((services) => services.kickUpload());
  if (alarm.name === RESTORE_ALARM) return ready().then((services) => services.kickRestore());
  return undefined;
});

// Every start of the worker is a chance to resume: whatever woke it (a message, an alarm, a browser
// start), pending sessions wait in the vault, and a run killed mid-request must not wait for its alarm.
function resume(s: Services): void {
  s.kickUpload();
  s.kickRestore();
}

/** After a start or an update: the registered page-API scripts match the grants again. */
function reconcileSites(s: Services): void {
  s.sites.reconcile().catch(hooks.report);
}

// The user took a site's access away in the browser's settings: its grant goes too.
browser.permissions.onRemoved.addListener((removed) => {
  void ready().then((s) => s.sites.permissionRemoved(removed.origins ?? [])).catch(hooks.report);
});
// A site the popup asked the browser about was allowed (the popup may have closed meanwhile).
browser.permissions.onAdded.addListener((added) => {
  void ready().then((s) => s.sites.permissionAdded(added.origins ?? [])).catch(hooks.report);
});
// An approval window closed without an answer counts as a refusal.
browser.windows.onRemoved.addListener((windowId) => {
  void ready().then((s) => s.sites.windowClosed(windowId)).catch(hooks.report);
});
void ready().then(resume, hooks.report);
browser.runtime.onStartup.addListener(() => void ready().then((s) => { resume(s); reconcileSites(s); }, hooks.report));
browser.runtime.onInstalled.addListener(() => void ready().then((s) => { resume(s); reconcileSites(s); }, hooks.report));
