/**
 * A fault-injecting HTTP proxy in front of a real Synapse. The upload and restore drivers must
 * survive rate limits, server errors, dropped connections and stalls (DESIGN.md flow 4); this makes
 * each of them happen on demand, reproducibly (seeded PRNG or an explicit script), and counts what
 * it did so a test can prove the fault really happened.
 */
import { request as httpRequest, createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export const FAULT_KINDS = [
  'limit-body',   // 429 M_LIMIT_EXCEEDED with retry_after_ms in the body
  'limit-header', // 429 M_LIMIT_EXCEEDED with only a Retry-After header (seconds)
  'status-500',   // 500 with a Matrix error body
  'status-502',   // 502 with an HTML body, as a reverse proxy sends
  'status-503',   // 503 with a plain-text body and Retry-After
  'drop-before',  // socket destroyed before anything is forwarded: the server never hears
  'drop-after',   // forwarded, the server answers, then the socket is destroyed: the write happened
  'stall',        // nothing forwarded; the response is held for stallMs, then the socket closed
  'wrong-version', // 403 M_WRONG_ROOM_KEYS_VERSION although the version is current (a race or a lying server)
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];
/** A script step: a fault, or 'pass' to forward that request untouched. */
export type ScriptStep = FaultKind | 'pass';

export interface FaultPlan {
  /** Which requests the plan applies to; others always pass. Default: every request. */
  match?: { method?: string; path?: RegExp };
  /** The next matching requests, in order; after the script runs out, `random` (if any) decides. */
  script?: ScriptStep[];
  /** Each matching request gets fault `k` with probability rates[k] (their sum must be ≤ 1). */
  random?: { seed: number; rates: Partial<Record<FaultKind, number>> };
  /** At most this many faults in all; after that everything passes, so a run ends by itself. Default 1000. */
  maxFaults?: number;
  /** retry_after_ms / Retry-After (rounded up to seconds) for the 429s and the 503. Default 1000. */
  retryAfterMs?: number;
  /** How long a stall holds the request before closing it. Default 35 s (> the client's 30 s). */
  stallMs?: number;
}

export interface FaultProxyOptions {
  /**
   * Answer `/.well-known/matrix/client` with 404, so a client that discovers the proxy keeps using it
   * (Synapse's own answer names its real address, which would route around the proxy).
   */
  hideWellKnown?: boolean;
}

/**
 * Injected answers carry exactly the CORS headers Synapse 1.163 sends on every response
 * (synapse/http/server.py `set_cors_headers`), so a browser client sees what it would see from
 * Synapse: the status and body, but not `Retry-After`, which Synapse does not expose.
 */
const CORS_HEADERS = {
  'access-control-allow-origin': '*',
  'access-control-allow-methods': 'GET, HEAD, POST, PUT, DELETE, OPTIONS',
  'access-control-allow-headers': 'X-Requested-With, Content-Type, Authorization, Date',
  'access-control-expose-headers': 'Synapse-Trace-Id, Server',
};

export interface ProxyEvent { method: string; path: string; fault: FaultKind | 'pass' }

export interface FaultCounts {
  /** Requests sent on to Synapse (passes and drop-after). */
  forwarded: number;
  injected: Record<FaultKind, number>;
  /** Requests the plan's `match` selected. */
  matched: number;
}

export interface FaultProxy {
  baseUrl: string;
  /** Replaces the plan (script position, PRNG and fault count start afresh). */
  setPlan(plan: FaultPlan): void;
  /** A snapshot of the counters since start or the last resetCounts(). */
  counts(): FaultCounts;
  /** Zeroes the counters and empties the event log. */
  resetCounts(): void;
  /** Every request seen since start or resetCounts(), oldest first (the last 10,000). */
  events(): ProxyEvent[];
  /** Closes the listener and every open socket (stalled ones included). */
  stop(): Promise<void>;
}

export class FaultProxyError extends Error {
  readonly kind = 'fault-proxy';
  override readonly name = 'FaultProxyError';
}

/** mulberry32: tiny, seedable, good enough to pick faults reproducibly. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function zeroCounts(): FaultCounts {
  return { forwarded: 0, matched: 0, injected: Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number> };
}

function validatePlan(plan: FaultPlan): void {
  for (const step of plan.script ?? []) {
    if (step !== 'pass' && !FAULT_KINDS.includes(step)) throw new FaultProxyError(`unknown script step ${JSON.stringify(step)}`);
  }
  if (plan.random) {
    let sum = 0;
    for (const [k, rate] of Object.entries(plan.random.rates)) {
      if (!FAULT_KINDS.includes(k as FaultKind)) throw new FaultProxyError(`unknown fault kind ${JSON.stringify(k)} in rates`);
      if (typeof rate !== 'number' || !(rate >= 0 && rate <= 1)) throw new FaultProxyError(`rate for ${k} must be in [0, 1], got ${rate}`);
      sum += rate;
    }
    if (sum > 1 + 1e-9) throw new FaultProxyError(`fault rates add up to ${sum}, more than 1`);
  }
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer']);

export async function startFaultProxy(upstreamBaseUrl: string, initialPlan: FaultPlan = {}, options: FaultProxyOptions = {}): Promise<FaultProxy> {
  const upstream = new URL(upstreamBaseUrl);
  if (upstream.protocol !== 'http:') throw new FaultProxyError(`the proxy forwards to plain http only, got ${upstreamBaseUrl}`);
  let plan: FaultPlan = {};
  let scriptPos = 0;
  let random: (() => number) | undefined;
  let faultsInjected = 0;
  let counts = zeroCounts();
  const log: ProxyEvent[] = [];
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();

  function setPlan(next: FaultPlan): void {
    validatePlan(next);
    plan = next;
    scriptPos = 0;
    faultsInjected = 0;
    random = next.random ? seededRandom(next.random.seed) : undefined;
  }
  setPlan(initialPlan);

  function matches(req: IncomingMessage): boolean {
    const m = plan.match;
    if (m?.method && m.method.toUpperCase() !== req.method) return false;
    if (m?.path && !m.path.test(req.url ?? '')) return false;
    return true;
  }

  function choose(req: IncomingMessage): FaultKind | 'pass' {
    if (!matches(req)) return 'pass';
    counts.matched++;
    let step: ScriptStep = 'pass';
    if (plan.script && scriptPos < plan.script.length) {
      step = plan.script[scriptPos++] ?? 'pass';
    } else if (random && plan.random) {
      // Draw for every matching request, even past the cap, so a seed gives the same sequence.
      let r = random();
      for (const kind of FAULT_KINDS) {
        const rate = plan.random.rates[kind] ?? 0;
        if (r < rate) { step = kind; break; }
        r -= rate;
      }
    }
    if (step === 'pass') return 'pass';
    if (faultsInjected >= (plan.maxFaults ?? 1000)) return 'pass';
    faultsInjected++;
    return step;
  }

  function forward(req: IncomingMessage, res: ServerResponse, dropAfter: boolean): void {
    counts.forwarded++;
    const headers: Record<string, string | string[] | undefined> = { ...req.headers, host: upstream.host };
    for (const h of HOP_BY_HOP) delete headers[h];
    const up = httpRequest({
      host: upstream.hostname,
      port: upstream.port,
      method: req.method,
      path: req.url,
      headers,
      agent: false,
    }, (upRes) => {
      if (dropAfter) {
        // Read the whole answer first, so the server has certainly finished the request.
        upRes.resume();
        upRes.on('end', () => req.socket.destroy());
        return;
      }
      const out: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(upRes.headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
      res.writeHead(upRes.statusCode ?? 502, out);
      upRes.pipe(res);
    });
    up.on('error', (e) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`fault proxy: upstream failed: ${e.message}`);
    });
    req.pipe(up);
  }

  function inject(fault: FaultKind, req: IncomingMessage, res: ServerResponse): void {
    const retryAfterMs = plan.retryAfterMs ?? 1000;
    const retryAfterSeconds = String(Math.ceil(retryAfterMs / 1000));
    const json = (status: number, body: unknown, extra: Record<string, string> = {}): void => {
      res.writeHead(status, { 'content-type': 'application/json', ...CORS_HEADERS, ...extra });
      res.end(JSON.stringify(body));
    };
    switch (fault) {
      case 'limit-body':
        return json(429, { errcode: 'M_LIMIT_EXCEEDED', error: 'Too Many Requests (injected)', retry_after_ms: retryAfterMs });
      case 'limit-header':
        return json(429, { errcode: 'M_LIMIT_EXCEEDED', error: 'Too Many Requests (injected)' }, { 'retry-after': retryAfterSeconds });
      case 'status-500':
        return json(500, { errcode: 'M_UNKNOWN', error: 'Internal server error (injected)' });
      case 'status-502':
        res.writeHead(502, { 'content-type': 'text/html', ...CORS_HEADERS });
        res.end('<html><body><h1>502 Bad Gateway</h1></body></html>');
        return;
      case 'status-503':
        res.writeHead(503, { 'content-type': 'text/plain', ...CORS_HEADERS, 'retry-after': retryAfterSeconds });
        res.end('Service Unavailable (injected)');
        return;
      case 'drop-before':
        req.socket.destroy();
        return;
      case 'wrong-version': {
        // Synapse's own 403 echoes the version the client sent as current_version (reference §1.3).
        const version = new URL(req.url ?? '/', 'http://proxy').searchParams.get('version') ?? '';
        return json(403, { errcode: 'M_WRONG_ROOM_KEYS_VERSION', error: 'Wrong room_keys version (injected)', current_version: version });
      }
      case 'drop-after':
        return forward(req, res, true);
      case 'stall': {
        req.resume(); // swallow the body; the server never sees it
        const timer = setTimeout(() => { timers.delete(timer); req.socket.destroy(); }, plan.stallMs ?? 35_000);
        timers.add(timer);
        req.socket.once('close', () => { clearTimeout(timer); timers.delete(timer); });
        return;
      }
    }
  }

  const server = createServer((req, res) => {
    if (options.hideWellKnown && req.url?.startsWith('/.well-known/matrix/client')) {
      res.writeHead(404, { 'content-type': 'application/json', ...CORS_HEADERS });
      res.end(JSON.stringify({ errcode: 'M_NOT_FOUND', error: 'No .well-known here (fault proxy)' }));
      return;
    }
    const fault = choose(req);
    log.push({ method: req.method ?? '?', path: req.url ?? '?', fault });
    if (log.length > 10_000) log.shift();
    if (fault === 'pass') return forward(req, res, false);
    counts.injected[fault]++;
    inject(fault, req, res);
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolveListen());
  });
  const { port } = server.address() as AddressInfo;

  return {
    baseUrl: `http://127.0.0.1:${port}`,
    setPlan,
    counts: () => structuredClone(counts),
    resetCounts: () => { counts = zeroCounts(); log.length = 0; },
    events: () => log.slice(),
    async stop() {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      const closed = new Promise<void>((r) => server.close(() => r()));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}
