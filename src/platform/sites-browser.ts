/** The browser calls behind SitePlatform (src/platform/sites.ts). */
import browser from 'webextension-polyfill';
import { BRIDGE_SCRIPT_FILE, CLIENT_SCRIPT_FILE, PAGE_SCRIPT_FILE, sitePermissionPattern, siteScriptPattern, type SitePlatform } from './sites.ts';

export function isFirefox(): boolean {
  return browser.runtime.getURL('').startsWith('moz-extension:');
}

function scriptIds(origin: string): { page: string; bridge: string; client: string } {
  return { page: `page ${origin}`, bridge: `bridge ${origin}`, client: `client ${origin}` };
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

  async register(origin, withClient) {
    const ids = scriptIds(origin);
    const all = [ids.page, ids.bridge, ids.client];
    const existing = (await browser.scripting.getRegisteredContentScripts({ ids: all })).map((s) => s.id);
    if (existing.length > 0) await browser.scripting.unregisterContentScripts({ ids: existing });
    const matches = [siteScriptPattern(origin, isFirefox())];
    const common = { matches, runAt: 'document_start' as const, allFrames: false, persistAcrossSessions: true };
    await browser.scripting.registerContentScripts([
      { id: ids.page, js: [PAGE_SCRIPT_FILE], world: 'MAIN', ...common },
      { id: ids.bridge, js: [BRIDGE_SCRIPT_FILE], ...common },
      ...(withClient ? [{ id: ids.client, js: [CLIENT_SCRIPT_FILE], world: 'MAIN' as const, ...common }] : []),
    ]);
  },

  async unregister(origin) {
    const ids = scriptIds(origin);
    const existing = (await browser.scripting.getRegisteredContentScripts({ ids: [ids.page, ids.bridge, ids.client] })).map((s) => s.id);
    if (existing.length > 0) await browser.scripting.unregisterContentScripts({ ids: existing });
  },

  async registeredOrigins() {
    const ids = new Set((await browser.scripting.getRegisteredContentScripts()).map((s) => s.id));
    return [...ids].filter((id) => id.startsWith('bridge ')).map((id) => {
      const origin = id.slice('bridge '.length);
      return { origin, client: ids.has(scriptIds(origin).client) };
    });
  },

  injectOpenTabs(origin, withClient) {
    // The page script first: the bridge's first message finds it listening.
    return injectInto(origin, [
      { file: PAGE_SCRIPT_FILE, main: true }, { file: BRIDGE_SCRIPT_FILE, main: false },
      ...(withClient ? [{ file: CLIENT_SCRIPT_FILE, main: true }] : []),
    ]);
  },

  injectClient(origin) {
    return injectInto(origin, [{ file: CLIENT_SCRIPT_FILE, main: true }]);
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
