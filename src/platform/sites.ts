/**
 * The browser side of site grants: the optional host permission for a site, the page-API scripts
 * registered for it (top frame only, kept across browser restarts), injecting them into tabs already
 * open, and telling those tabs when something changed. The decisions live in
 * src/background/sites.ts; the browser calls are in sites-browser.ts (this file has none, so the
 * decisions can be tested without a browser).
 */
/** Where the built content scripts are, relative to the extension's root. */
export const PAGE_SCRIPT_FILE = 'content/page.js';
export const BRIDGE_SCRIPT_FILE = 'content/bridge.js';
/** The adapter for a site's own Matrix client (Element Web), only where the user turned it on. */
export const CLIENT_SCRIPT_FILE = 'content/client.js';

/** Checks and normalises a site's origin: http(s) only, plain http only on loopback, no path. */
export function parseSiteOrigin(text: string): string | null {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return null;
  }
  if (url.origin === 'null' || url.username || url.password) return null;
  if (url.protocol === 'https:') return url.origin;
  if (url.protocol === 'http:' && isLoopback(url.hostname)) return url.origin;
  return null;
}

function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname);
}

/** The host permission for a site: scheme and host (permission patterns carry no port). */
export function sitePermissionPattern(origin: string): string {
  const url = new URL(origin);
  return `${url.protocol}//${url.hostname}/*`;
}

/**
 * The content-script pattern for a site. Chrome matches ports, so a grant for one port reaches no
 * other; Firefox ignores ports in patterns (bug 1362809), so there the bridge's handshake with the
 * worker, which compares exact origins, keeps other ports silent.
 */
export function siteScriptPattern(origin: string, firefox: boolean): string {
  if (firefox) return sitePermissionPattern(origin);
  const url = new URL(origin);
  return `${url.protocol}//${url.host}/*`;
}

/** The browser operations site grants need; tests of the decisions use an in-memory stand-in. */
export interface SitePlatform {
  hasPermission(origin: string): Promise<boolean>;
  /** Drops the host permission unless `keep` says another user of the same pattern needs it. */
  removePermission(origin: string, keep: (pattern: string) => boolean): Promise<void>;
  /** Registers the page API for the site (and the client adapter when `withClient`), replacing any. */
  register(origin: string, withClient: boolean): Promise<void>;
  unregister(origin: string): Promise<void>;
  registeredOrigins(): Promise<Array<{ origin: string; client: boolean }>>;
  /** Injects the page API (and the client adapter) into the site's open tabs (top frames); how many took it. */
  injectOpenTabs(origin: string, withClient: boolean): Promise<number>;
  /** Injects only the client adapter into the site's open tabs (turned on after the page API). */
  injectClient(origin: string): Promise<number>;
  /** Sends a message to the bridge in each of the site's open tabs. */
  tellTabs(origin: string, message: unknown): Promise<void>;
  /** Opens an extension page in a small window; resolves with its window id. */
  openWindow(path: string): Promise<number | null>;
  closeWindow(windowId: number): Promise<void>;
}
