/**
 * The optional host permission for the signed-in homeserver. Without it the worker's requests are
 * cross-origin requests under CORS: a reverse proxy's error page (no CORS headers) reads as a network
 * error, and Synapse's CORS headers do not expose Retry-After. With it the worker reads every answer.
 * Asked for only by a click in the popup (the browser shows its own prompt); declining keeps today's
 * behaviour.
 */
import browser from 'webextension-polyfill';

/** The match pattern for a homeserver's base URL: its scheme and host (patterns carry no port). */
export function homeserverPattern(baseUrl: string): string {
  const url = new URL(baseUrl);
  return `${url.protocol}//${url.hostname}/*`;
}

export async function hasHomeserverAccess(baseUrl: string): Promise<boolean> {
  return browser.permissions.contains({ origins: [homeserverPattern(baseUrl)] });
}

/** Must run in a click handler (the browser asks the user); true when granted. */
export async function requestHomeserverAccess(baseUrl: string): Promise<boolean> {
  return browser.permissions.request({ origins: [homeserverPattern(baseUrl)] });
}

/** The current tab's address, when the popup may see it (`activeTab`, given by opening the popup). */
export async function currentTabUrl(): Promise<string | null> {
  const [tab] = await browser.tabs.query({ active: true, currentWindow: true });
  return typeof tab?.url === 'string' ? tab.url : null;
}

/** Must run in a click handler: the browser asks the user to give the extension access to the site. */
export async function requestSiteAccess(sitePattern: string): Promise<boolean> {
  return browser.permissions.request({ origins: [sitePattern] });
}
