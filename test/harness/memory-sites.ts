/** An in-memory SitePlatform, for tests of the worker's site decisions without a browser. */
import { sitePermissionPattern, type SitePlatform } from '../../src/platform/sites.ts';

export function memorySitePlatform(granted: Iterable<string> = []): SitePlatform & { permissions: Set<string>; scripts: Set<string>; clients: Set<string>; pageWorld: Array<{ tabId: number; documentId?: string; withClient: boolean }>; told: Array<{ origin: string; message: unknown }>; windows: string[] } {
  const permissions = new Set([...granted].map(sitePermissionPattern));
  const scripts = new Set<string>();
  const clients = new Set<string>();
  const pageWorld: Array<{ tabId: number; documentId?: string; withClient: boolean }> = [];
  const told: Array<{ origin: string; message: unknown }> = [];
  const windows: string[] = [];
  return {
    permissions, scripts, clients, pageWorld, told, windows,
    hasPermission: async (origin) => permissions.has(sitePermissionPattern(origin)),
    removePermission: async (origin, keep) => {
      const pattern = sitePermissionPattern(origin);
      if (!keep(pattern)) permissions.delete(pattern);
    },
    register: async (origin) => { scripts.add(origin); },
    unregister: async (origin) => { scripts.delete(origin); },
    registeredOrigins: async () => [...scripts],
    injectOpenTabs: async () => 0,
    injectClient: async (origin) => { clients.add(origin); return 0; },
    injectPageWorld: async (target, withClient) => { pageWorld.push({ ...target, withClient }); },
    tellTabs: async (origin, message) => { told.push({ origin, message }); },
    openWindow: async (path) => { windows.push(path); return windows.length; },
    closeWindow: async () => undefined,
  };
}
