/**
 * JS heap sampling over CDP for bench/restore.ts: `Runtime.getHeapUsage` on a page, or on an
 * extension's service worker reached through a page's CDP session. The worker cannot be given to
 * Playwright's `newCDPSession` (pages and frames only), and a persistent context has no browser
 * session, hence Target.attachToTarget from a page session.
 *
 * Chromium does not stop a service worker for idling while a debugger is attached, and Playwright
 * attaches to every service worker itself (`context.serviceWorkers()`): under Playwright a worker
 * outlives 30 s of idling with or without this probe (seen on Chromium 156), so the probe changes
 * nothing there.
 */
import type { BrowserContext, CDPSession, Page } from 'playwright-core';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface HeapUsage { usedSize: number; totalSize: number; backingStorageSize?: number }

export interface HeapStats {
  samples: number;
  /** Largest JS heap in use seen. */
  peakUsed: number;
  /** Largest JS heap in use + ArrayBuffer backing stores (wasm memory, response buffers). */
  peakWithBuffers: number;
  /** After a forced GC, just before the clock started. */
  before: number;
  /** Longest wait between two samples: the target answers CDP only between its tasks. */
  maxGapMs: number;
}

export interface HeapProbe {
  read(): Promise<HeapUsage | null>;
  collectGarbage(): Promise<void>;
  close(): Promise<void>;
}

/** A page's heap through its own CDP session. */
export async function pageProbe(context: BrowserContext, page: Page): Promise<HeapProbe> {
  const cdp = await context.newCDPSession(page);
  return {
    read: () => cdp.send('Runtime.getHeapUsage') as Promise<HeapUsage>,
    collectGarbage: async () => { await cdp.send('HeapProfiler.collectGarbage'); },
    close: () => cdp.detach(),
  };
}

/**
 * The extension's service worker through a page's CDP session: Target.attachToTarget (not flat:
 * Playwright routes no child sessions it did not create), commands and answers through
 * Target.sendMessageToTarget / receivedMessageFromTarget. The worker's target and this session
 * outlive a stop and restart of the worker (Chromium 156), so samples follow the new worker; should
 * the session detach anyway, the next read attaches again.
 */
export async function workerProbe(context: BrowserContext, page: Page, extensionId: string): Promise<HeapProbe> {
  const cdp: CDPSession = await context.newCDPSession(page);
  let sessionId: string | null = null;
  let nextId = 0;
  const pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  cdp.on('Target.receivedMessageFromTarget', (event) => {
    if (event.sessionId !== sessionId) return;
    const message = JSON.parse(event.message) as { id?: number; result?: unknown; error?: { message: string } };
    const waiter = message.id === undefined ? undefined : pending.get(message.id);
    if (!waiter) return;
    pending.delete(message.id!);
    if (message.error) waiter.reject(new Error(message.error.message));
    else waiter.resolve(message.result);
  });
  cdp.on('Target.detachedFromTarget', (event) => {
    if (event.sessionId !== sessionId) return;
    sessionId = null;
    for (const waiter of pending.values()) waiter.reject(new Error('the service worker went away'));
    pending.clear();
  });
  const attach = async (): Promise<boolean> => {
    const { targetInfos } = await cdp.send('Target.getTargets');
    const worker = targetInfos.find((t) => t.type === 'service_worker' && t.url.startsWith(`chrome-extension://${extensionId}/`));
    if (!worker) return false;
    sessionId = (await cdp.send('Target.attachToTarget', { targetId: worker.targetId, flatten: false })).sessionId;
    return true;
  };
  const send = async (method: string): Promise<unknown> => {
    if (sessionId === null && !(await attach())) return null;
    const id = ++nextId;
    const answer = new Promise((resolveAnswer, reject) => pending.set(id, { resolve: resolveAnswer, reject }));
    await cdp.send('Target.sendMessageToTarget', { sessionId: sessionId!, message: JSON.stringify({ id, method, params: {} }) });
    return answer;
  };
  if (!(await attach())) throw new Error(`no service worker target for extension ${extensionId}`);
  return {
    read: () => send('Runtime.getHeapUsage') as Promise<HeapUsage | null>,
    collectGarbage: async () => { await send('HeapProfiler.collectGarbage'); },
    close: () => cdp.detach(),
  };
}

const withBuffers = (u: HeapUsage): number => u.usedSize + (u.backingStorageSize ?? 0);

/** Polls the probe every `intervalMs` (one request at a time) until stopped. */
export async function startSampling(probe: HeapProbe | null, intervalMs = 200): Promise<{ stop(): Promise<HeapStats | null> }> {
  if (!probe) return { stop: async () => null };
  await probe.collectGarbage();
  const first = await probe.read();
  const stats: HeapStats = { samples: 0, peakUsed: 0, peakWithBuffers: 0, before: first?.usedSize ?? 0, maxGapMs: 0 };
  let stopped = false;
  let last = performance.now();
  const loop = (async () => {
    while (!stopped) {
      const t = performance.now();
      try {
        const usage = await probe.read();
        if (usage) {
          const now = performance.now();
          stats.samples++;
          stats.maxGapMs = Math.max(stats.maxGapMs, now - last);
          last = now;
          stats.peakUsed = Math.max(stats.peakUsed, usage.usedSize);
          stats.peakWithBuffers = Math.max(stats.peakWithBuffers, withBuffers(usage));
        }
      } catch {
        // The worker went away mid-request: the next read attaches to its successor.
      }
      await sleep(Math.max(0, intervalMs - (performance.now() - t)));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      await probe.close().catch(() => {});
      return stats;
    },
  };
}

