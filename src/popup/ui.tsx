/** Small pieces shared by the popup and the extension pages. */
import type { ComponentChildren } from 'preact';
import { RequestError } from '../platform/messaging.ts';

export function Header({ subtitle }: { subtitle?: string }) {
  return (
    <header>
      <img src="icons/icon-32.png" alt="" />
      <h1>Matrix Key Vault</h1>
      {subtitle && <span class="subtitle">{subtitle}</span>}
    </header>
  );
}

export function Alert({ children, tone = 'error' }: { children: ComponentChildren; tone?: 'error' | 'warning' | 'ok' }) {
  return <div class={`alert ${tone}`} role={tone === 'error' ? 'alert' : 'status'}>{children}</div>;
}

/** An error's message for people; the kind goes into a data attribute for tests. */
export function ErrorText({ error }: { error: unknown }) {
  const kind = error instanceof RequestError ? error.kind : 'internal';
  return <Alert><span data-kind={kind}>{errorMessage(error)}</span></Alert>;
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Asks the browser not to evict the vault under storage pressure (pages only; workers cannot). */
export async function requestPersistentStorage(): Promise<boolean> {
  try {
    return (await navigator.storage?.persisted?.()) || (await navigator.storage?.persist?.()) || false;
  } catch {
    // persist() may throw in unusual contexts; the answer is then simply "not persistent".
    return false;
  }
}
