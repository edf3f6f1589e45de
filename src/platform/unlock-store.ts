/**
 * Where the backup private key lives while the vault is unlocked: `storage.session`, which the
 * browser keeps in memory only (never on disk), readable by the extension's own trusted contexts
 * only (its default access level), and empties when the browser closes. It survives the service
 * worker being stopped, so a restore resumes after a kill without asking the user again; after a
 * browser restart the vault is locked.
 */
import type { UnlockMethod } from '../shared/messages.ts';

export interface UnlockedKey {
  userId: string;
  version: string;
  /** Unpadded base64 public key the private key was proved against. */
  publicKey: string;
  /** Base64 of the 32-byte backup private key. */
  privateKey: string;
  via: UnlockMethod;
  at: number;
}

export interface UnlockStore {
  get(): Promise<UnlockedKey | null>;
  set(key: UnlockedKey): Promise<void>;
  clear(): Promise<void>;
}

const KEY = 'unlocked';

/** The part of `browser.storage.session` used here (passed in, so Node tests need no polyfill). */
export interface SessionStorageArea {
  get(key: string): Promise<Record<string, unknown>>;
  set(items: Record<string, unknown>): Promise<void>;
  remove(key: string): Promise<void>;
}

export function sessionUnlockStore(area: SessionStorageArea): UnlockStore {
  return {
    async get() {
      const found = (await area.get(KEY))[KEY] as UnlockedKey | undefined;
      return found ?? null;
    },
    async set(key) {
      await area.set({ [KEY]: key });
    },
    async clear() {
      await area.remove(KEY);
    },
  };
}

/** For Node tests and benchmarks: the same contract, in a variable. */
export function memoryUnlockStore(): UnlockStore {
  let held: UnlockedKey | null = null;
  return {
    async get() { return held ? { ...held } : null; },
    async set(key) { held = { ...key }; },
    async clear() { held = null; },
  };
}
