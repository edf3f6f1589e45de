/**
 * The decryption helper, worker side (Chrome): an offscreen document (`decrypt-helper.html`) whose
 * own thread opens a share of each restore chunk's entries beside the service worker. Chromium's
 * WebCrypto computes X25519 on the calling thread (≈ 60 µs per entry here), so a worker alone
 * cannot restore 10⁶ keys in 5 minutes; a second thread can (bench/README.md, "Decryption helper").
 *
 * The page hands the worker one end of a MessageChannel (a message to the service worker: no trip
 * through the browser process, structured clone rather than JSON); the worker takes it only from
 * that page of this extension. Each request carries the unlocked key (base64) and the entries; the
 * page builds a decryptor for that request alone, answers with what the vault keeps of each entry
 * (never a plaintext key), and keeps nothing. A channel has no close event: a request not answered
 * in time fails, and the worker starts a new page. The worker closes the page when its restore run
 * ends, and replaces a page an earlier worker left behind.
 */
import type { EntryToOpen, OpenedEntry } from '../core/restore/open-entries.ts';
import { isOpenedList } from '../core/restore/open-entries.ts';

export const HELPER_MESSAGE = 'mkv-decrypt-helper';
export const HELPER_PAGE = 'decrypt-helper.html';

/** How long the page may take to load and hand over its channel. */
const START_TIMEOUT_MS = 10_000;
/** How long one request may take (a share of one chunk takes well under a second). */
const REQUEST_TIMEOUT_MS = 30_000;

export interface HelperRequest { id: number; privateKey: string; entries: EntryToOpen[] }
export interface HelperAnswer { id: number; opened?: unknown; error?: string }

/** What the helper needs of the browser: its pages' origin and URL, and Chrome's offscreen documents. */
export interface OffscreenPlatform {
  origin: string;
  pageUrl: string;
  hasDocument(): Promise<boolean>;
  createDocument(): Promise<void>;
  closeDocument(): Promise<void>;
}

/** The end of the channel the worker keeps. */
export interface HelperPort {
  postMessage(message: unknown): void;
  onmessage: ((event: { data: unknown }) => void) | null;
  close(): void;
}

/** A message to the worker, as the worker's `message` event gives it. */
export interface HelperHandover {
  data: unknown;
  origin: string;
  source: { url: string } | null;
  ports: readonly HelperPort[];
}

interface Waiter { resolve(opened: OpenedEntry[]): void; reject(error: Error): void; length: number; timer: ReturnType<typeof setTimeout> }

export class HelperError extends Error {
  override readonly name = 'HelperError';
}

export class OffscreenHelper {
  #port: HelperPort | null = null;
  #starting: Promise<HelperPort> | null = null;
  /** The last close, which a start waits for (a run's end and the next run's start may overlap). */
  #closing: Promise<void> = Promise.resolve();
  #connected: Array<(port: HelperPort) => void> = [];
  readonly #pending = new Map<number, Waiter>();
  #next = 0;

  constructor(private readonly platform: OffscreenPlatform) {}

  /**
   * For the worker's `message` event: takes the channel the helper page hands over. Returns false
   * for any other message; the helper's message from anywhere but its page is refused (its port closed).
   */
  accept(message: HelperHandover): boolean {
    const data = message.data as { type?: unknown } | null;
    if (typeof data !== 'object' || data === null || data.type !== HELPER_MESSAGE) return false;
    const port = message.ports[0];
    if (message.origin !== this.platform.origin || message.source?.url !== this.platform.pageUrl || !port) {
      for (const p of message.ports) p.close();
      return true;
    }
    const previous = this.#port;
    this.#port = port;
    if (previous) {
      previous.close();
      // What the replaced page was asked is not answered on the new channel.
      this.#failAll(new HelperError('The decryption helper page was replaced.'));
    }
    port.onmessage = (event) => this.#answer(event.data);
    for (const waiter of this.#connected.splice(0)) waiter(port);
    return true;
  }

  /** Opens `entries` on the helper's thread (starting its page if needed). */
  async open(privateKey: string, entries: readonly EntryToOpen[]): Promise<OpenedEntry[]> {
    const port = await this.#ensure();
    const id = ++this.#next;
    return new Promise<OpenedEntry[]>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (!this.#pending.delete(id)) return;
        // The page is gone or stuck: the next request starts a new one.
        if (this.#port === port) this.#drop();
        reject(new HelperError(`The decryption helper did not answer within ${REQUEST_TIMEOUT_MS / 1000} s.`));
      }, REQUEST_TIMEOUT_MS);
      this.#pending.set(id, { resolve, reject, length: entries.length, timer });
      port.postMessage({ id, privateKey, entries: [...entries] } satisfies HelperRequest);
    });
  }

  /** Ends the helper: its page is closed (nothing is kept in it between requests anyway). */
  close(): Promise<void> {
    const starting = this.#starting;
    // At once: no request goes to a page that is being closed.
    this.#drop();
    this.#failAll(new HelperError('The decryption helper was closed.'));
    this.#closing = (async () => {
      if (starting) {
        // A page still starting is closed too, with whatever was sent to it meanwhile.
        await starting.catch(() => undefined);
        this.#drop();
        this.#failAll(new HelperError('The decryption helper was closed.'));
      }
      if (await this.platform.hasDocument()) await this.platform.closeDocument();
    })();
    return this.#closing;
  }

  #drop(): void {
    this.#port?.close();
    this.#port = null;
  }

  #answer(message: unknown): void {
    const answer = message as Partial<HelperAnswer> | null;
    const waiter = typeof answer?.id === 'number' ? this.#pending.get(answer.id) : undefined;
    if (!waiter) return;
    this.#pending.delete(answer!.id!);
    clearTimeout(waiter.timer);
    if (typeof answer!.error === 'string') waiter.reject(new HelperError(`The decryption helper failed: ${answer!.error}`));
    else if (!isOpenedList(answer!.opened, waiter.length)) waiter.reject(new HelperError('The decryption helper answered with something other than the opened entries.'));
    else waiter.resolve(answer!.opened);
  }

  #failAll(error: Error): void {
    for (const waiter of this.#pending.values()) {
      clearTimeout(waiter.timer);
      waiter.reject(error);
    }
    this.#pending.clear();
  }

  #ensure(): Promise<HelperPort> {
    if (this.#port) return Promise.resolve(this.#port);
    this.#starting ??= (async () => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const connected = new Promise<HelperPort>((resolve, reject) => {
        this.#connected.push(resolve);
        timer = setTimeout(() => reject(new HelperError(`The decryption helper page did not connect within ${START_TIMEOUT_MS / 1000} s.`)), START_TIMEOUT_MS);
      });
      try {
        await this.#closing.catch(() => undefined);
        // A page an earlier worker started has lost its channel: a new one takes its place.
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
  const helper = new OffscreenHelper({
    origin: new URL(api.runtime.getURL('')).origin,
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
  // Registered at once (the worker's top level calls this): the page's channel arrives as a message.
  globalThis.addEventListener('message', (event) => {
    const e = event as MessageEvent & { source: { url?: string } | null };
    helper.accept({ data: e.data, origin: e.origin, source: e.source && typeof e.source.url === 'string' ? { url: e.source.url } : null, ports: e.ports as unknown as HelperPort[] });
  });
  return helper;
}
