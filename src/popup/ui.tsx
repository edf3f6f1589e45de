/** Small pieces shared by the popup and the extension pages. */
import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { appTexts } from './texts.ts';

export function Header({ subtitle }: { subtitle?: string }) {
  useEffect(() => { document.title = subtitle ? appTexts.pageTitle(subtitle) : appTexts.name; }, [subtitle]);
  return (
    <header>
      <img src="icons/icon-32.png" alt="" />
      <h1>{appTexts.name}</h1>
      {subtitle && <span class="subtitle">{subtitle}</span>}
    </header>
  );
}

export function Alert({ children, tone = 'error' }: { children: ComponentChildren; tone?: 'error' | 'warning' | 'ok' }) {
  return <div class={`alert ${tone}`} role={tone === 'error' ? 'alert' : 'status'}>{children}</div>;
}

/** An error a page raises itself (a file it cannot read, a server it cannot check). */
export class UiError extends Error {
  constructor(readonly kind: string, message: string) {
    super(message);
    this.name = 'UiError';
  }
}

/** An error's message for people; the kind goes into a data attribute for tests. */
export function ErrorText({ error }: { error: unknown }) {
  const own = (error as { kind?: unknown } | null)?.kind;
  const kind = typeof own === 'string' ? own : 'internal';
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

/**
 * A user action that talks to the worker: busy while it runs, its error kept for display. `run`
 * returns normally on success; whatever it throws is shown.
 */
export function useAction(run: () => Promise<void>): { busy: boolean; error: unknown; start: (e?: Event) => Promise<void> } {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  async function start(e?: Event) {
    e?.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await run();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }
  return { busy, error, start };
}
