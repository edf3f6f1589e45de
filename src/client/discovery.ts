/**
 * Finding the vault, EIP-6963 style: listen for announcements first, then ask, so an extension that
 * answers synchronously is not missed. The first well-formed announcement wins; anything else on
 * the event name (another extension, a page script) is ignored.
 */
import { ANNOUNCE_EVENT, REQUEST_EVENT, type Announcement } from '../shared/page-api.ts';
import { KeyVault, type KeyVaultOptions } from './vault.ts';

/** The part of `window` discovery uses; any `EventTarget` will do in tests. */
export type DiscoveryTarget = Pick<EventTarget, 'addEventListener' | 'removeEventListener' | 'dispatchEvent'>;

export interface FindKeyVaultOptions extends KeyVaultOptions {
  /** How long to wait for an announcement (default 1000 ms): the extension answers at once when installed. */
  timeoutMs?: number;
  /** Where to listen and ask (default: the global `window`). */
  window?: DiscoveryTarget;
}

/** Resolves with the vault, or null when none announced itself within `timeoutMs`. */
export function findKeyVault(options: FindKeyVaultOptions = {}): Promise<KeyVault | null> {
  const target = options.window ?? (globalThis as { window?: DiscoveryTarget }).window;
  if (!target) {
    return Promise.reject(new TypeError('findKeyVault: no window here (in a worker or Node?); pass options.window'));
  }
  const timeoutMs = options.timeoutMs ?? 1000;
  return new Promise((resolve) => {
    const onAnnounce = (event: Event): void => {
      const announcement = announcementOf(event);
      if (!announcement) return;
      finish(new KeyVault(announcement, options));
    };
    const finish = (vault: KeyVault | null): void => {
      clearTimeout(timer);
      target.removeEventListener(ANNOUNCE_EVENT, onAnnounce);
      resolve(vault);
    };
    const timer = setTimeout(() => finish(null), timeoutMs);
    target.addEventListener(ANNOUNCE_EVENT, onAnnounce);
    target.dispatchEvent(new Event(REQUEST_EVENT));
  });
}

/** The announcement in an event, if it has the contract's shape. */
export function announcementOf(event: Event): Announcement | null {
  const detail = (event as Partial<CustomEvent>).detail as unknown;
  if (typeof detail !== 'object' || detail === null) return null;
  const { info, provider } = detail as { info?: unknown; provider?: unknown };
  if (typeof info !== 'object' || info === null || typeof provider !== 'object' || provider === null) return null;
  const { name, version, uuid } = info as Record<string, unknown>;
  if (name !== 'Matrix Key Vault' || typeof version !== 'string' || typeof uuid !== 'string') return null;
  const { request, on, removeListener } = provider as Record<string, unknown>;
  if (typeof request !== 'function' || typeof on !== 'function' || typeof removeListener !== 'function') return null;
  return { info: { name, version, uuid }, provider: provider as Announcement['provider'] };
}
