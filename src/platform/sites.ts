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
 * The bridge's pattern for a site. Chrome matches an explicit port, but a pattern without one (a
 * default port) covers every port; Firefox ignores ports in patterns (bug 1362809). So the bridge,
 * invisible to the page, may run on another port of the host: there the worker refuses its
 * handshake (it compares exact origins) and nothing reaches the page.
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
  /** Registers the bridge for the site's top frames, replacing any earlier registration. */
  register(origin: string): Promise<void>;
  unregister(origin: string): Promise<void>;
  registeredOrigins(): Promise<string[]>;
  /** Injects the bridge into the site's open tabs (top frames); how many took it. */
  injectOpenTabs(origin: string): Promise<number>;
  /** Injects the client adapter into the site's open tabs (the connection was turned on). */
  injectClient(origin: string): Promise<number>;
  /** Puts the page-world scripts (the page API, and the client adapter when on) into one tab's top document. */
  injectPageWorld(target: { tabId: number; documentId?: string }, withClient: boolean): Promise<void>;
  /** Sends a message to the bridge in each of the site's open tabs. */
  tellTabs(origin: string, message: unknown): Promise<void>;
  /** Opens an extension page in a small window; resolves with its window id. */
  openWindow(path: string): Promise<number | null>;
  closeWindow(windowId: number): Promise<void>;
}
