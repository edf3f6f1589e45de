/**
 * Everything the demo does with the client kit (src/client), in one place so a change of the kit's
 * API is a change here only: find the vault, watch for it to appear (the extension announces itself
 * only on origins the user allowed, so it can show up after the page loaded), and attach it to the
 * Matrix client with the scopes it needs.
 */
import type { MatrixClient } from 'matrix-js-sdk';
import {
  ANNOUNCE_EVENT, attachKeyVault, findKeyVault, type Attachment, type AttachmentStats, type Direction, type KeyVault,
  type PageVaultStatus, type Scope,
} from '../../src/client/index.ts';

export type { Attachment, AttachmentStats, Direction, KeyVault };
export type VaultStatus = PageVaultStatus;

/** What the demo asks for: read keys for history it cannot decrypt, hand over the sessions it creates. */
export const DEMO_SCOPES: readonly Scope[] = ['read', 'backup'];

/**
 * Calls `onFound` once, with the vault, as soon as one announces itself: at once if it is there, or
 * later (the user allowed this site in the popup, or installed the extension). Returns a stop function.
 */
export function watchForVault(onFound: (vault: KeyVault) => void, options: { pollMs?: number } = {}): () => void {
  let stopped = false;
  let searching = false;
  const search = async (): Promise<void> => {
    if (stopped || searching) return;
    searching = true;
    try {
      const vault = await findKeyVault({ timeoutMs: 1000 });
      if (vault && !stopped) { stop(); onFound(vault); }
    } finally {
      searching = false;
    }
  };
  // An announcement nobody asked for (the extension's script arrived after the page loaded).
  const onAnnounce = (): void => { void search(); };
  const timer = setInterval(() => void search(), options.pollMs ?? 3000);
  const stop = (): void => {
    stopped = true;
    clearInterval(timer);
    window.removeEventListener(ANNOUNCE_EVENT, onAnnounce);
  };
  window.addEventListener(ANNOUNCE_EVENT, onAnnounce);
  void search();
  return stop;
}

/** Asks for the scopes this site lacks (the extension asks the user), then attaches the vault to the client. */
export async function useVault(client: MatrixClient, vault: KeyVault): Promise<Attachment> {
  if (!hasScopes(await vault.status())) await vault.requestScopes(DEMO_SCOPES);
  return attachKeyVault(client, vault);
}

function hasScopes(status: VaultStatus): boolean {
  return DEMO_SCOPES.every((scope) => status.scopes.includes(scope));
}
