/**
 * What a person does in the extension's pages in Firefox, as steps over the remote debugging
 * protocol (test/harness/firefox.ts): type into a field, press a button, pick a file, read what the
 * page shows; plus the worker requests a test makes from a page (status, the vault's keys). The
 * Chromium tests do the same through Playwright (extension-ui.ts, restore-ui.ts).
 *
 * Each step is one evaluation in the page. Typing sets the field's value and sends the `input` and
 * `change` events preact listens to; a click is the element's `click()`, refused when the element is
 * missing or disabled, as a person could not press it; a file is put into the file input through a
 * DataTransfer, as a drop would.
 */
import type { ExportBatch, ImportSummary, Result, VaultStatus } from '../../src/shared/messages.ts';
import { FirefoxHarnessError, type ExtensionPage } from './firefox.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** An expression finding the element: the first match of `selector`, or of those whose trimmed text is `text`. */
function find(selector: string, text?: string): string {
  const all = `[...document.querySelectorAll(${JSON.stringify(selector)})]`;
  return text === undefined
    ? `document.querySelector(${JSON.stringify(selector)})`
    : `(${all}.find((e) => e.textContent.trim() === ${JSON.stringify(text)}) ?? null)`;
}

function missing(selector: string, text?: string): string {
  return JSON.stringify(`no element ${selector}${text === undefined ? '' : ` with text "${text}"`}`);
}

export interface FirefoxUi {
  page: ExtensionPage;
  count(selector: string): Promise<number>;
  /** The element's trimmed text, or null when there is none. */
  text(selector: string): Promise<string | null>;
  attr(selector: string, name: string): Promise<string | null>;
  isDisabled(selector: string, text?: string): Promise<boolean>;
  fill(selector: string, value: string): Promise<void>;
  click(selector: string, text?: string): Promise<void>;
  setFile(selector: string, name: string, contents: string): Promise<void>;
  /** Waits until the element exists. */
  waitFor(selector: string, timeoutMs?: number): Promise<void>;
  /** Waits until `read()` gives `expected`; returns it. */
  waitUntil<T>(read: () => Promise<T>, expected: T, what: string, timeoutMs?: number): Promise<T>;
  /** A request to the worker from this page, as the page itself sends it; a `{ ok: false }` answer throws. */
  send<T>(message: Record<string, unknown>, timeoutMs?: number): Promise<T>;
  status(): Promise<VaultStatus>;
}

export function firefoxUi(page: ExtensionPage): FirefoxUi {
  const run = <T>(body: string, timeoutMs?: number): Promise<T> => page.evaluateAsync(`(async () => { ${body} })()`, timeoutMs) as Promise<T>;
  const ui: FirefoxUi = {
    page,
    count: (selector) => run(`return document.querySelectorAll(${JSON.stringify(selector)}).length;`),
    text: (selector) => run(`return ${find(selector)}?.textContent.trim() ?? null;`),
    attr: (selector, name) => run(`return ${find(selector)}?.getAttribute(${JSON.stringify(name)}) ?? null;`),
    isDisabled: (selector, text) => run(`const e = ${find(selector, text)}; if (!e) throw new Error(${missing(selector, text)}); return e.disabled === true;`),
    async fill(selector, value) {
      await run(`const e = ${find(selector)}; if (!e) throw new Error(${missing(selector)});
        e.focus(); e.value = ${JSON.stringify(value)};
        e.dispatchEvent(new Event('input', { bubbles: true })); e.dispatchEvent(new Event('change', { bubbles: true }));
        return null;`);
      await sleep(20); // preact renders the new state on its next tick; the next step reads it
    },
    async click(selector, text) {
      await run(`const e = ${find(selector, text)}; if (!e) throw new Error(${missing(selector, text)});
        if (e.disabled) throw new Error(${JSON.stringify(`${selector} ${text ?? ''} is disabled`)});
        e.click(); return null;`);
      await sleep(20);
    },
    async setFile(selector, name, contents) {
      await run(`const e = ${find(selector)}; if (!e) throw new Error(${missing(selector)});
        const dt = new DataTransfer(); dt.items.add(new File([${JSON.stringify(contents)}], ${JSON.stringify(name)}, { type: 'text/plain' }));
        e.files = dt.files; e.dispatchEvent(new Event('input', { bubbles: true })); e.dispatchEvent(new Event('change', { bubbles: true }));
        return e.files.length;`);
      await sleep(20);
    },
    async waitFor(selector, timeoutMs = 30_000) {
      await ui.waitUntil(async () => (await ui.count(selector)) > 0, true, `${selector} to appear`, timeoutMs);
    },
    async waitUntil(read, expected, what, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      let last: unknown;
      for (;;) {
        last = await read();
        if (JSON.stringify(last) === JSON.stringify(expected)) return last as typeof expected;
        if (Date.now() > deadline) throw new FirefoxHarnessError('timeout', `waited ${timeoutMs / 1000} s for ${what}: ${JSON.stringify(last)}, expected ${JSON.stringify(expected)}`);
        await sleep(150);
      }
    },
    async send<T>(message: Record<string, unknown>, timeoutMs?: number) {
      const result = await page.evaluateAsync(`browser.runtime.sendMessage(${JSON.stringify(message)})`, timeoutMs) as Result<T> | undefined;
      if (!result?.ok) throw new Error(`${String(message.type)} failed: ${JSON.stringify(result)}`);
      return result.value;
    },
    status: () => ui.send<VaultStatus>({ type: 'status.get' }),
  };
  return ui;
}

/** Signs in on a popup page showing the sign-in form; resolves once it shows the account. */
export async function signInFirefox(popup: FirefoxUi, homeserver: string, user: string, password: string): Promise<void> {
  const form = '[data-testid=sign-in]';
  await popup.waitFor(form);
  await popup.fill(`${form} input[name=homeserver]`, homeserver);
  await popup.fill(`${form} input[name=user]`, user);
  await popup.fill(`${form} input[name=secret]`, password);
  await popup.click(`${form} button[type=submit]`, 'Sign in');
  await popup.waitUntil(() => popup.text('[data-testid=user-id]'), user, 'the signed-in account', 30_000);
}

/** Picks the key file and passphrase on the import page, presses Import, and reads the result. */
export async function importKeyFileFirefox(page: FirefoxUi, fileText: string, passphrase: string): Promise<ImportSummary & { total: number }> {
  await page.waitFor('[data-testid=import-form]');
  await page.setFile('[data-testid=file]', 'element-keys.txt', fileText);
  await page.fill('[data-testid=passphrase]', passphrase);
  await page.click('[data-testid=import]');
  await page.waitFor('[data-testid=result]', 120_000);
  const stored = Number(await page.attr('[data-testid=result]', 'data-stored'));
  const unchanged = Number(await page.attr('[data-testid=result]', 'data-unchanged'));
  const rejected = Number(await page.attr('[data-testid=result]', 'data-rejected'));
  return { stored, unchanged, rejected: new Array(rejected).fill(null), total: stored + unchanged + rejected };
}

/** Every session the vault decrypts with the unlocked key, in key-export form, through `vault.exportBatch`. */
export async function exportAllFirefox(page: FirefoxUi): Promise<{ sessions: Array<Record<string, unknown>>; skipped: number; total: number }> {
  const sessions: Array<Record<string, unknown>> = [];
  let skipped = 0;
  let after: [string, string] | null = null;
  for (let i = 0; i < 1000; i++) {
    const batch: ExportBatch = await page.send<ExportBatch>({ type: 'vault.exportBatch', after, limit: 2000 }, 60_000);
    sessions.push(...(batch.sessions as Array<Record<string, unknown>>));
    skipped += batch.skipped;
    if (batch.next === null) return { sessions, skipped, total: batch.total };
    after = batch.next;
  }
  throw new Error('vault.exportBatch never ended');
}
