/** The browser calls behind SitePlatform (src/platform/sites.ts). */
import browser from 'webextension-polyfill';
import { BRIDGE_SCRIPT_FILE, PAGE_SCRIPT_FILE, sitePermissionPattern, siteScriptPattern, type SitePlatform } from './sites.ts';

export function isFirefox(): boolean {
  return browser.runtime.getURL('').startsWith('moz-extension:');
}

function scriptIds(origin: string): { page: string; bridge: string } {
  return { page: `page ${origin}`, bridge: `bridge ${origin}` };
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
    const ids = scriptIds(origin);
    const existing = new Set((await browser.scripting.getRegisteredContentScripts({ ids: [ids.page, ids.bridge] })).map((s) => s.id));
    if (existing.size > 0) await browser.scripting.unregisterContentScripts({ ids: [...existing] });
    const matches = [siteScriptPattern(origin, isFirefox())];
    await browser.scripting.registerContentScripts([
      { id: ids.page, matches, js: [PAGE_SCRIPT_FILE], runAt: 'document_start', allFrames: false, world: 'MAIN', persistAcrossSessions: true },
      { id: ids.bridge, matches, js: [BRIDGE_SCRIPT_FILE], runAt: 'document_start', allFrames: false, persistAcrossSessions: true },
    ]);
  },

  async unregister(origin) {
    const ids = scriptIds(origin);
    const existing = (await browser.scripting.getRegisteredContentScripts({ ids: [ids.page, ids.bridge] })).map((s) => s.id);
    if (existing.length > 0) await browser.scripting.unregisterContentScripts({ ids: existing });
  },

  async registeredOrigins() {
    const scripts = await browser.scripting.getRegisteredContentScripts();
    return scripts.filter((s) => s.id.startsWith('bridge ')).map((s) => s.id.slice('bridge '.length));
  },

  async injectOpenTabs(origin) {
    let injected = 0;
    for (const tabId of await tabsOf(origin)) {
      try {
        // The page script first: the bridge's first message finds it listening.
        await browser.scripting.executeScript({ target: { tabId, frameIds: [0] }, files: [PAGE_SCRIPT_FILE], world: 'MAIN', injectImmediately: true });
        await browser.scripting.executeScript({ target: { tabId, frameIds: [0] }, files: [BRIDGE_SCRIPT_FILE], injectImmediately: true });
        injected++;
      } catch {
        // The tab navigated away or closed meanwhile: its next load gets the registered scripts.
      }
    }
    return injected;
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
