/**
 * From what a user types ("example.org", "https://example.org", "localhost:8008",
 * "http://127.0.0.1:8008") to a checked homeserver base URL (spec "Server Discovery", client
 * `.well-known`; DESIGN.md flow 1).
 *
 * HTTPS only. Plain HTTP is allowed only when the host is a loopback address (127.0.0.0/8, ::1,
 * localhost), which tests and the demo use; the same rule applies to the `base_url` that
 * `.well-known` names, so a well-known file cannot downgrade the connection.
 */
import { parseClientWellKnown, parseVersions, WireError } from '../core/wire.ts';
import { HomeserverError, Transport, type RequestOptions, type TransportOptions } from './homeserver.ts';

export type DiscoveryFailure =
  | 'invalid-input'      // not a server name or http(s) URL
  | 'insecure'           // plain http to a host that is not loopback
  | 'well-known'         // .well-known exists but is unusable (spec FAIL_PROMPT / FAIL_ERROR)
  | 'not-a-homeserver';  // /_matrix/client/versions did not answer like a homeserver

export class DiscoveryError extends Error {
  override readonly name = 'DiscoveryError';
  readonly kind = 'discovery';
  readonly reason: DiscoveryFailure;

  constructor(reason: DiscoveryFailure, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.reason = reason;
  }
}

export interface DiscoveredHomeserver {
  /** Checked base URL, without a trailing slash. */
  baseUrl: string;
  /** host[:port] of what the user typed. */
  serverName: string;
  /** Whether `.well-known` named the base URL (false: it was 404 and the server itself is used). */
  viaWellKnown: boolean;
  /** From `/_matrix/client/versions`. */
  versions: string[];
}

/**
 * Loopback by the URL parser's normalised hostname (it already turned "127.1" and "0x7f.0.0.1"
 * into "127.0.0.1" and "[0:0::1]" into "[::1]"). "localhost.example.org" is not loopback.
 */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.toLowerCase().replace(/\.$/, '');
  if (host === 'localhost' || host === '[::1]') return true;
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
  return v4 !== null && v4.slice(1).every((o) => Number(o) <= 255) && v4[1] === '127';
}

function checkUrl(url: URL, what: string, typed: string, malformed: DiscoveryFailure): void {
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new DiscoveryError(malformed, `${what} ${JSON.stringify(typed)} must be an https:// address`);
  }
  if (url.username || url.password || url.search || url.hash) {
    throw new DiscoveryError(malformed, `${what} ${JSON.stringify(typed)} must not contain a user name, password, query or fragment`);
  }
  if (url.protocol === 'http:' && !isLoopbackHost(url.hostname)) {
    throw new DiscoveryError('insecure', `${what} ${url.host} uses plain http://; only https:// is allowed, except for this computer (localhost, 127.0.0.1, ::1)`);
  }
}

/** The typed text as a URL: no scheme means https, or http for a loopback host. */
export function parseHomeserverInput(input: string): URL {
  const typed = input.trim();
  if (typed === '') throw new DiscoveryError('invalid-input', 'Enter your homeserver, for example matrix.org');
  const hasScheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(typed);
  let url: URL;
  try {
    if (hasScheme) {
      url = new URL(typed);
    } else {
      const plain = new URL(`http://${typed}`);
      url = isLoopbackHost(plain.hostname) ? plain : new URL(`https://${typed}`);
    }
  } catch (e) {
    throw new DiscoveryError('invalid-input', `${JSON.stringify(typed)} is not a server name or address`, { cause: e });
  }
  if (url.hostname === '') throw new DiscoveryError('invalid-input', `${JSON.stringify(typed)} has no host name`);
  checkUrl(url, 'The homeserver', typed, 'invalid-input');
  return url;
}

function withoutTrailingSlash(url: URL): string {
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

/**
 * Spec: 404 means "no well-known, use the server itself"; any other failure stops discovery.
 * The port the user typed is kept (`localhost:8008` → http://localhost:8008/.well-known/…), as
 * matrix-js-sdk's AutoDiscovery does; the spec's "hostname without port" is for user ids.
 */
async function readWellKnown(origin: string, options: TransportOptions & RequestOptions): Promise<string | undefined> {
  const transport = new Transport(origin, options);
  try {
    const wellKnown = await transport.sendParsed({
      method: 'GET', path: '/.well-known/matrix/client', endpoint: 'GET /.well-known/matrix/client', redirect: 'follow',
    }, parseClientWellKnown, options);
    return wellKnown['m.homeserver'].base_url;
  } catch (e) {
    if (e instanceof HomeserverError && e.status === 404) return undefined;
    if (e instanceof HomeserverError) {
      const why = e.cause instanceof WireError ? e.cause.message : e.message;
      throw new DiscoveryError('well-known', `${origin}/.well-known/matrix/client is unusable: ${why}`, { cause: e });
    }
    throw e; // ConnectionError, AbortedError: as they are
  }
}

async function checkVersions(baseUrl: string, options: TransportOptions & RequestOptions): Promise<string[]> {
  const transport = new Transport(baseUrl, options);
  try {
    const { versions } = await transport.sendParsed({
      method: 'GET', path: '/_matrix/client/versions', endpoint: 'GET /_matrix/client/versions', redirect: 'follow',
    }, parseVersions, options);
    return versions;
  } catch (e) {
    if (e instanceof HomeserverError) {
      throw new DiscoveryError('not-a-homeserver', `${baseUrl} does not answer like a Matrix homeserver (${e.message})`, { cause: e });
    }
    throw e;
  }
}

/**
 * Resolves what the user typed to a homeserver base URL and checks it answers
 * `/_matrix/client/versions`. Throws DiscoveryError, or the transport's ConnectionError /
 * AbortedError when the network fails or the caller cancels.
 */
export async function discoverHomeserver(input: string, options: TransportOptions & RequestOptions = {}): Promise<DiscoveredHomeserver> {
  const typed = parseHomeserverInput(input);
  const named = await readWellKnown(typed.origin, options);
  let baseUrl: string;
  if (named === undefined) {
    baseUrl = withoutTrailingSlash(typed);
  } else {
    let url: URL;
    try {
      url = new URL(named);
    } catch (e) {
      throw new DiscoveryError('well-known', `${typed.origin}/.well-known/matrix/client names ${JSON.stringify(named)}, which is not a URL`, { cause: e });
    }
    checkUrl(url, 'The base_url in .well-known', named, 'well-known');
    baseUrl = withoutTrailingSlash(url);
  }
  const versions = await checkVersions(baseUrl, options);
  return { baseUrl, serverName: typed.host, viaWellKnown: named !== undefined, versions };
}

