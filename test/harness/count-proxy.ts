/**
 * A pass-through proxy in front of Synapse that can make the backup look larger than it is: while
 * a count is set, every `GET /room_keys/version[/{version}]` answer carries that `count` instead of
 * Synapse's, until the first room's keys are asked for (`GET /room_keys/keys/{roomId}`), after which
 * the answers pass untouched again. A restore that picks room by room from the backup's count then
 * takes that way for a backup small enough for a test, and still ends against the true count.
 * Every request is logged (method and path), so a test can tell which way a restore downloaded.
 * `/.well-known/matrix/client` is answered 404 so a client that discovers it stays on it.
 */
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface CountProxy {
  baseUrl: string;
  /** From the next version answer on, report `count` (until the first room download); null: never. */
  setCount(count: number | null): void;
  /** Version answers whose count was replaced so far. */
  inflated(): number;
  /** Every request seen, oldest first. */
  events(): Array<{ method: string; path: string }>;
  resetEvents(): void;
  stop(): Promise<void>;
}

const VERSION = /^\/_matrix\/client\/v3\/room_keys\/version(\/[^/?]+)?(\?|$)/;
const ROOM_KEYS = /^\/_matrix\/client\/v3\/room_keys\/keys\/[^/?]+(\?|$)/;
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'content-length']);

export async function startCountProxy(upstreamBaseUrl: string): Promise<CountProxy> {
  const upstream = new URL(upstreamBaseUrl);
  const sockets = new Set<Socket>();
  let log: Array<{ method: string; path: string }> = [];
  let count: number | null = null;
  let inflated = 0;
  const server = createServer((req, res) => {
    const path = req.url ?? '/';
    const method = req.method ?? 'GET';
    log.push({ method, path });
    if (path.startsWith('/.well-known/matrix/client')) {
      res.writeHead(404, { 'content-type': 'application/json', 'access-control-allow-origin': '*' });
      res.end(JSON.stringify({ errcode: 'M_NOT_FOUND', error: 'No .well-known here (count proxy)' }));
      return;
    }
    if (method === 'GET' && ROOM_KEYS.test(path)) count = null;
    const rewrite = method === 'GET' && count !== null && VERSION.test(path);
    const headers = { ...req.headers, host: upstream.host };
    delete headers.connection;
    const up = httpRequest({ host: upstream.hostname, port: upstream.port, method, path, headers, agent: false }, (upRes) => {
      const out: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(upRes.headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
      if (!rewrite || upRes.statusCode !== 200) {
        if (upRes.headers['content-length'] !== undefined) out['content-length'] = upRes.headers['content-length'];
        res.writeHead(upRes.statusCode ?? 502, out);
        upRes.pipe(res);
        return;
      }
      const parts: Buffer[] = [];
      upRes.on('data', (b: Buffer) => parts.push(b));
      upRes.on('end', () => {
        const body = JSON.parse(Buffer.concat(parts).toString('utf8')) as { count?: number };
        if (count !== null) { body.count = count; inflated++; }
        const text = JSON.stringify(body);
        res.writeHead(200, { ...out, 'content-length': String(Buffer.byteLength(text)) });
        res.end(text);
      });
      upRes.on('error', () => res.destroy());
    });
    up.on('error', () => res.destroy());
    res.on('close', () => up.destroy());
    req.pipe(up);
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => ok());
  });
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    setCount: (next) => { count = next; },
    inflated: () => inflated,
    events: () => log.slice(),
    resetEvents: () => { log = []; },
    async stop() {
      const closed = new Promise<void>((r) => server.close(() => r()));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}
