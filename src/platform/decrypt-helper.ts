/**
 * The decryption helper, worker side (Chrome): an offscreen document (`decrypt-helper.html`) whose
 * own thread opens a share of each restore chunk's entries beside the service worker. Chromium's
 * WebCrypto computes X25519 on the calling thread (≈ 60 µs per entry here), so a worker alone
 * cannot restore 10⁶ keys in 5 minutes; a second thread can (bench/README.md, "Decryption helper").
 *
 * The page connects a port to the worker; the worker takes it only from that page of this extension
 * (port names and senders are checked: a content script can connect too). Each request carries the
 * unlocked key (base64) and the entries; the page builds a decryptor for that request alone, answers
 * with what the vault keeps of each entry (never a plaintext key), and keeps nothing. The worker
 * closes the page when its restore run ends, and replaces a page an earlier worker left behind.
 */
import type { EntryToOpen, OpenedEntry } from '../core/restore/open-entries.ts';
import { isOpenedList } from '../core/restore/open-entries.ts';
import type { Runtime } from 'webextension-polyfill';

export const HELPER_PORT = 'mkv-decrypt-helper';
export const HELPER_PAGE = 'decrypt-helper.html';

/** How long the page may take to load and connect. */
const START_TIMEOUT_MS = 10_000;

export interface HelperRequest { id: number; privateKey: string; entries: EntryToOpen[] }
export interface HelperAnswer { id: number; opened?: unknown; error?: string }

/** What the helper needs of the browser: its own id and URLs, and Chrome's offscreen documents. */
export interface OffscreenPlatform {
  extensionId: string;
  pageUrl: string;
  hasDocument(): Promise<boolean>;
  createDocument(): Promise<void>;
  closeDocument(): Promise<void>;
}

interface Waiter { resolve(opened: OpenedEntry[]): void; reject(error: Error): void; length: number }

export class HelperError extends Error {
  override readonly name = 'HelperError';
}

export class OffscreenHelper {
  #port: Runtime.Port | null = null;
  #starting: Promise<Runtime.Port> | null = null;
  #connected: Array<(port: Runtime.Port) => void> = [];
  readonly #pending = new Map<number, Waiter>();
  #next = 0;

  constructor(private readonly platform: OffscreenPlatform) {}

  /**
   * For the worker's `runtime.onConnect`: takes the helper page's port. Returns false for a port
   * that is not the helper's; a port with the helper's name from anyone else is disconnected.
   */
  accept(port: Runtime.Port): boolean {
    if (port.name !== HELPER_PORT) return false;
    if (port.sender?.id !== this.platform.extensionId || port.sender.url !== this.platform.pageUrl) {
      port.disconnect();
      return true;
    }
    const previous = this.#port;
    this.#port = port;
    previous?.disconnect();
    port.onMessage.addListener((message: unknown) => this.#answer(message));
    port.onDisconnect.addListener(() => {
      if (this.#port !== port) return;
      this.#port = null;
      this.#failAll(new HelperError('The decryption helper page went away.'));
    });
    for (const waiter of this.#connected.splice(0)) waiter(port);
    return true;
  }

  /** Opens `entries` on the helper's thread (starting its page if needed). */
  async open(privateKey: string, entries: readonly EntryToOpen[]): Promise<OpenedEntry[]> {
    const port = await this.#ensure();
    const id = ++this.#next;
    return new Promise<OpenedEntry[]>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, length: entries.length });
      port.postMessage({ id, privateKey, entries: [...entries] } satisfies HelperRequest);
    });
  }

  /** Ends the helper: its page is closed (nothing is kept in it between requests anyway). */
  async close(): Promise<void> {
    const port = this.#port;
    this.#port = null;
    port?.disconnect();
    this.#failAll(new HelperError('The decryption helper was closed.'));
    if (await this.platform.hasDocument()) await this.platform.closeDocument();
  }

  #answer(message: unknown): void {
    const answer = message as Partial<HelperAnswer> | null;
    const waiter = typeof answer?.id === 'number' ? this.#pending.get(answer.id) : undefined;
    if (!waiter) return;
    this.#pending.delete(answer!.id!);
    if (typeof answer!.error === 'string') waiter.reject(new HelperError(`The decryption helper failed: ${answer!.error}`));
    else if (!isOpenedList(answer!.opened, waiter.length)) waiter.reject(new HelperError('The decryption helper answered with something other than the opened entries.'));
    else waiter.resolve(answer!.opened);
  }

  #failAll(error: Error): void {
    for (const waiter of this.#pending.values()) waiter.reject(error);
    this.#pending.clear();
  }

  #ensure(): Promise<Runtime.Port> {
    if (this.#port) return Promise.resolve(this.#port);
    this.#starting ??= (async () => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const connected = new Promise<Runtime.Port>((resolve, reject) => {
        this.#connected.push(resolve);
        timer = setTimeout(() => reject(new HelperError(`The decryption helper page did not connect within ${START_TIMEOUT_MS / 1000} s.`)), START_TIMEOUT_MS);
      });
      try {
        // A page an earlier worker started has lost its port: a new one takes its place.
        if (await this.platform.hasDocument()) await this.platform.closeDocument();
        await this.platform.createDocument();
        return await connected;
      } finally {
        clearTimeout(timer);
        this.#connected = [];
      }
    })().finally(() => { this.#starting = null; });
    return this.#starting;
  }
}

/** The helper on Chrome's offscreen documents, or null where the browser has none (Firefox). */
export function offscreenHelper(): OffscreenHelper | null {
  const api = (globalThis as { chrome?: typeof chrome }).chrome;
  if (!api?.offscreen?.createDocument || !api.runtime?.getContexts) return null;
  const pageUrl = api.runtime.getURL(HELPER_PAGE);
  return new OffscreenHelper({
    extensionId: api.runtime.id,
    pageUrl,
    async hasDocument() {
      const contexts = await api.runtime.getContexts({ contextTypes: ['OFFSCREEN_DOCUMENT' as chrome.runtime.ContextType], documentUrls: [pageUrl] });
      return contexts.length > 0;
    },
    createDocument: () => api.offscreen.createDocument({
      url: HELPER_PAGE,
      reasons: ['WORKERS' as chrome.offscreen.Reason],
      justification: 'Decrypts a share of a restore\'s backup entries on a second thread, beside the service worker.',
    }),
    closeDocument: () => api.offscreen.closeDocument(),
  });
}
