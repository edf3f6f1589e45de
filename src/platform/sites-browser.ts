/** The browser calls behind SitePlatform (src/platform/sites.ts). */
import browser from 'webextension-polyfill';
import { BRIDGE_SCRIPT_FILE, CLIENT_SCRIPT_FILE, PAGE_SCRIPT_FILE, sitePermissionPattern, siteScriptPattern, type SitePlatform } from './sites.ts';

export function isFirefox(): boolean {
  return browser.runtime.getURL('').startsWith('moz-extension:');
}

/** The id of the bridge registered for a site (the only script registered: see `register`). */
function bridgeId(origin: string): string {
  return `bridge ${origin}`;
}

/** Runs files in the top frame of each of the site's open tabs; how many tabs took them. */
async function injectInto(origin: string, files: Array<{ file: string; main: boolean }>): Promise<number> {
  let injected = 0;
  for (const tabId of await tabsOf(origin)) {
    try {
      for (const { file, main } of files) {
        await browser.scripting.executeScript({ target: { tabId, frameIds: [0] }, files: [file], ...(main ? { world: 'MAIN' as const } : {}), injectImmediately: true });
      }
      injected++;
    } catch {
      // The tab navigated away or closed meanwhile: its next load gets the registered scripts.
    }
  }
  return injected;
}

export const browserSitePlatform: SitePlatform = {
  hasPermission: (origin) => browser.permissions.contains({ origins: [sitePermissionPattern(origin)] }),

  async removePermission(origin, keep) {
    const pattern = sitePermissionPattern(origin);
    if (keep(pattern)) return;
    // A pattern the manifest asks for outright cannot be removed (a test build grants loopback that way).
    const required = (browser.runtime.getManifest() as { host_permissions?: string[] }).host_permissions ?? [];
    if (required.includes(pattern)) return;
    await browser.permissions.remove({ origins: [pattern] });
  },

  async register(origin) {
    // Only the bridge, in the isolated world, where a page cannot see it. The page-world scripts go
    // in after the worker confirmed this exact origin (`injectPageWorld`), so a page elsewhere (another
    // port: Chrome's default-port patterns and Firefox's patterns cover every port) sees nothing.
    await this.unregister(origin);
    await browser.scripting.registerContentScripts([{
      id: bridgeId(origin), js: [BRIDGE_SCRIPT_FILE], matches: [siteScriptPattern(origin, isFirefox())],
      runAt: 'document_start', allFrames: false, persistAcrossSessions: true,
    }]);
  },

  async unregister(origin) {
    const existing = (await browser.scripting.getRegisteredContentScripts({ ids: [bridgeId(origin)] })).map((s) => s.id);
    if (existing.length > 0) await browser.scripting.unregisterContentScripts({ ids: existing });
  },

  async registeredOrigins() {
    const scripts = await browser.scripting.getRegisteredContentScripts();
    return scripts.filter((s) => s.id.startsWith('bridge ')).map((s) => s.id.slice('bridge '.length));
  },

  injectOpenTabs(origin) {
    // The bridge asks the worker, which puts the page-world scripts in once it confirmed the origin.
    return injectInto(origin, [{ file: BRIDGE_SCRIPT_FILE, main: false }]);
  },

  injectClient(origin) {
    return injectInto(origin, [{ file: CLIENT_SCRIPT_FILE, main: true }]);
  },

  async injectPageWorld(target, withClient) {
    // Chrome names the document that asked, so a tab that navigated meanwhile gets nothing.
    const into = target.documentId ? { tabId: target.tabId, documentIds: [target.documentId] } : { tabId: target.tabId, frameIds: [0] };
    await browser.scripting.executeScript({ target: into as never, files: [PAGE_SCRIPT_FILE], world: 'MAIN', injectImmediately: true });
    if (withClient) await browser.scripting.executeScript({ target: into as never, files: [CLIENT_SCRIPT_FILE], world: 'MAIN', injectImmediately: true });
  },

  async tellTabs(origin, message) {
    await Promise.all((await tabsOf(origin)).map((tabId) =>
      // A tab whose page has no bridge (loaded before the grant and not injected) has no listener.
      browser.tabs.sendMessage(tabId, message, { frameId: 0 }).catch(() => undefined)));
  },

  async openWindow(path) {
    const window = await browser.windows.create({ url: browser.runtime.getURL(path), type: 'popup', width: 420, height: 520, focused: true });
    return window.id ?? null;
  },

  async closeWindow(windowId) {
    await browser.windows.remove(windowId);
  },
};

/** The site's open tabs whose top frame is at exactly that origin (the host permission shows their URLs). */
async function tabsOf(origin: string): Promise<number[]> {
  const tabs = await browser.tabs.query({ url: sitePermissionPattern(origin) });
  return tabs.filter((t) => typeof t.id === 'number' && typeof t.url === 'string' && safeOrigin(t.url) === origin).map((t) => t.id!);
}

function safeOrigin(url: string): string | null {
  try {
    return new URL(url).origin;
  } catch {
    return null;
  }
}
