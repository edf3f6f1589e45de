/**
 * The third trust tier: requests from the page API's bridge on sites the user allowed. Who asks is
 * decided from the browser-supplied sender only (its origin, tab and frame); nothing a page writes
 * into a message can widen that. This tier has its own request map and guard: no request type of
 * the extension pages is reachable from here, and an origin gets exactly what its grant says.
 *
 * Every answer is `{ ok: true, value } | { ok: false, error: { code, message } }` with the EIP-1193
 * style codes of src/shared/page-api.ts.
 */
import type { MessageSender } from '../platform/extension.ts';
import { HomeserverError } from '../platform/homeserver.ts';
import type { SiteGrant } from '../platform/vault.ts';
import {
  ErrorCode, isPageMethod, isPlainJson, MAX_SESSIONS_PER_PAGE_REQUEST, type BackupResult, type PageMethod, type PageMethods,
  type PageVaultStatus, type RoomKeyResult, type Scope,
} from '../shared/page-api.ts';
import { AppError } from './errors.ts';
import { ingestSessions } from './ingest.ts';
import type { Services } from './services.ts';
import { ApprovalRefused, normaliseScopes } from './sites.ts';

/** Who is asking, as the browser says. */
export interface PageSender {
  origin: string;
  tabId: number;
  /** The document that asked (Chrome), so scripts go into it and no other. */
  documentId?: string;
}

/** Messages the bridge may send; anything else from a content script is refused. */
export type PageRequest =
  | { type: 'page.hello' }
  | { type: 'page.call'; method: PageMethod; params?: unknown };

export type PageResult = { ok: true; value: unknown } | { ok: false; error: { code: number; message: string } };

export class PageApiError extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
    this.name = 'PageApiError';
  }
}

/**
 * The sender as a page-API caller, or null: our own extension's content script, in a tab's top
 * frame, on an http(s) origin that is not opaque and not our own.
 */
export function pageSender(sender: MessageSender, extensionId: string, extensionOrigin: string): PageSender | null {
  if (sender.id !== extensionId) return null;
  const tabId = sender.tab?.id;
  if (typeof tabId !== 'number' || sender.frameId !== 0) return null;
  const url = typeof sender.url === 'string' ? sender.url : '';
  if (!url || url.startsWith(extensionOrigin)) return null;
  // Chrome and Firefox report `origin` for content scripts; the URL's origin is the same thing otherwise.
  const reported = (sender as { origin?: unknown }).origin;
  let origin: string;
  try {
    origin = typeof reported === 'string' ? reported : new URL(url).origin;
  } catch {
    return null;
  }
  if (origin === 'null' || !/^https?:\/\/[^/]+$/.test(origin)) return null;
  // The frame's URL must agree with the origin the browser reported (a sandboxed frame would not).
  try {
    if (new URL(url).origin !== origin) return null;
  } catch {
    return null;
  }
  const documentId = (sender as { documentId?: unknown }).documentId;
  return { origin, tabId, ...(typeof documentId === 'string' ? { documentId } : {}) };
}

export function isPageRequest(value: unknown): value is PageRequest {
  if (typeof value !== 'object' || value === null) return false;
  const type = (value as { type?: unknown }).type;
  if (type === 'page.hello') return true;
  return type === 'page.call' && typeof (value as { method?: unknown }).method === 'string';
}

/**
 * Tokens per second each origin gets, and its burst; a request costs 1 plus 1 per 50 sessions it
 * names (a client opening a room asks for up to 1,000 keys at once: 10 requests, 30 tokens, within
 * the burst). What is refused costs the worker nothing.
 */
export const PAGE_RATE_PER_SECOND = 20;
export const PAGE_BURST = 60;
export const SESSIONS_PER_TOKEN = 50;

/** A token bucket per origin: one site flooding requests does not slow the others. */
export class OriginLimiter {
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  constructor(private readonly now: () => number = Date.now, private readonly rate = PAGE_RATE_PER_SECOND, private readonly burst = PAGE_BURST) {}

  /** Takes `cost` tokens. */
  take(origin: string, cost = 1): boolean {
    const now = this.now();
    const b = this.#buckets.get(origin) ?? { tokens: this.burst, at: now };
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.rate);
    b.at = now;
    this.#buckets.delete(origin); // re-inserted last: the map's order is least recently used first
    this.#buckets.set(origin, b);
    while (this.#buckets.size > 1000) this.#buckets.delete(this.#buckets.keys().next().value!);
    if (b.tokens < cost) return false;
    b.tokens -= cost;
    return true;
  }
}

/** Requests one origin may have running in the worker at once (its tabs together). */
export const MAX_PAGE_REQUESTS_PER_ORIGIN = 8;
/** A getRoomKeys request starts no new lookup after this long; the rest come back "ask again". */
export const GET_KEYS_DEADLINE_MS = 40_000;

/** How many requests each origin has running, so one site's many tabs cannot fill the worker. */
export class OriginInFlight {
  readonly #running = new Map<string, number>();
  enter(origin: string): boolean {
    const n = this.#running.get(origin) ?? 0;
    if (n >= MAX_PAGE_REQUESTS_PER_ORIGIN) return false;
    this.#running.set(origin, n + 1);
    return true;
  }
  leave(origin: string): void {
    const n = (this.#running.get(origin) ?? 1) - 1;
    if (n <= 0) this.#running.delete(origin);
    else this.#running.set(origin, n);
  }
}

/** Backup fetches one getRoomKeys request runs at once. */
const FETCH_CONCURRENCY = 6;

export interface PageGuards {
  limiter: OriginLimiter;
  inFlight: OriginInFlight;
}

export function pageGuards(): PageGuards {
  return { limiter: new OriginLimiter(), inFlight: new OriginInFlight() };
}

export async function routePage(services: Services, guards: PageGuards, from: PageSender, request: unknown): Promise<PageResult> {
  if (!guards.inFlight.enter(from.origin)) {
    return { ok: false, error: { code: ErrorCode.limitExceeded, message: 'Too many requests from this site at once: wait for some to finish.' } };
  }
  try {
    return { ok: true, value: await dispatchPage(services, guards.limiter, from, request) };
  } catch (e) {
    return { ok: false, error: toPageError(e) };
  } finally {
    guards.inFlight.leave(from.origin);
  }
}

async function dispatchPage(services: Services, limiter: OriginLimiter, from: PageSender, request: unknown): Promise<unknown> {
  if (!isPageRequest(request)) throw new PageApiError(ErrorCode.unsupportedMethod, 'Unknown request.');
  // No grant, no answer of substance: the same refusal whatever was asked.
  const grant = await services.sites.grantOf(from.origin);
  if (!grant) throw new PageApiError(ErrorCode.unauthorized, 'This site is not allowed to use the vault.');
  if (!limiter.take(from.origin)) throw new PageApiError(ErrorCode.limitExceeded, 'Too many requests from this site: wait a moment and retry.');
  if (request.type === 'page.hello') {
    await services.sites.pageReady(grant, from);
    return pageStatus(services, grant);
  }
  if (!isPageMethod(request.method)) throw new PageApiError(ErrorCode.unsupportedMethod, `The vault has no method ${JSON.stringify(String(request.method).slice(0, 64))}.`);
  const params = request.params ?? {};
  if (!isPlainJson(params) || typeof params !== 'object' || params === null || Array.isArray(params)) {
    throw new PageApiError(ErrorCode.invalidParams, 'params must be a plain object of JSON data.');
  }
  return method(request.method, services, limiter, grant, from, params as Record<string, unknown>);
}

/** Sessions cost their share of the origin's budget: 1 token per SESSIONS_PER_TOKEN. */
function chargeSessions(limiter: OriginLimiter, origin: string, count: number): void {
  if (!limiter.take(origin, Math.ceil(count / SESSIONS_PER_TOKEN))) throw new PageApiError(ErrorCode.limitExceeded, 'Too many sessions asked for from this site: wait a moment and retry.');
}

async function method(name: PageMethod, services: Services, limiter: OriginLimiter, grant: SiteGrant, from: PageSender, params: Record<string, unknown>): Promise<unknown> {
  switch (name) {
    case 'vault_status':
      return pageStatus(services, grant);
    case 'vault_requestScopes': {
      const wanted = normaliseScopes(params.scopes);
      const scopes = await services.sites.requestScopes(from.origin, wanted);
      if (wanted.some((s) => !grant.scopes.includes(s))) services.notifyPages((g) => pageStatus(services, g));
      return { scopes } satisfies PageMethods['vault_requestScopes']['result'];
    }
    case 'vault_getRoomKeys': {
      requireScope(grant, 'read');
      const refs = sessionRefs(params.sessions);
      chargeSessions(limiter, from.origin, refs.length);
      if (!(await isUnlocked(services))) throw new PageApiError(ErrorCode.vaultLocked, 'The vault is locked: the user unlocks it in the extension popup.');
      const keys = await getRoomKeys(services, refs);
      // Revoked, or its scope taken, while the keys were looked up: nothing goes out.
      const now = await services.sites.grantOf(from.origin);
      if (!now?.scopes.includes('read')) throw new PageApiError(ErrorCode.unauthorized, 'This site may no longer read keys.');
      return { keys } satisfies PageMethods['vault_getRoomKeys']['result'];
    }
    case 'vault_backupRoomKeys': {
      requireScope(grant, 'backup');
      const sessions = sessionList(params.sessions);
      chargeSessions(limiter, from.origin, sessions.length);
      // A page adds sessions; it never replaces one the vault holds (see IngestOptions.onlyNew).
      const summary = await ingestSessions(services.vault, sessions, { onlyNew: true });
      if (summary.stored > 0) services.kickUpload();
      const rejected = new Map(summary.rejected.map((r) => [r.index, r]));
      const results: BackupResult[] = sessions.map((raw, index) => {
        const sessionId = sessionIdOf(raw);
        const r = rejected.get(index);
        return r
          ? { index, ...(sessionId ? { sessionId } : {}), accepted: false, kind: r.kind, reason: r.reason }
          : { index, ...(sessionId ? { sessionId } : {}), accepted: true };
      });
      return { results } satisfies PageMethods['vault_backupRoomKeys']['result'];
    }
    case 'vault_reportClient':
      if (grant.connectClient !== true) throw new PageApiError(ErrorCode.unauthorized, 'The connection to this site\'s Matrix client is off.');
      services.sites.report(from.origin, params);
      return null;
  }
}

function requireScope(grant: SiteGrant, scope: Scope): void {
  if (!grant.scopes.includes(scope)) {
    throw new PageApiError(ErrorCode.unauthorized, `This site may not ${scope === 'read' ? 'read keys' : 'hand over keys'}: ask for the "${scope}" scope with vault_requestScopes.`);
  }
}

function sessionRefs(value: unknown): Array<{ roomId: string; sessionId: string }> {
  if (!Array.isArray(value) || value.length === 0) throw new PageApiError(ErrorCode.invalidParams, '"sessions" must be a non-empty list of { roomId, sessionId }.');
  if (value.length > MAX_SESSIONS_PER_PAGE_REQUEST) throw new PageApiError(ErrorCode.invalidParams, `At most ${MAX_SESSIONS_PER_PAGE_REQUEST} sessions per request; send them in parts.`);
  return value.map((ref, i) => {
    const { roomId, sessionId } = (typeof ref === 'object' && ref !== null ? ref : {}) as { roomId?: unknown; sessionId?: unknown };
    if (typeof roomId !== 'string' || !roomId.startsWith('!') || roomId.length > 255 || typeof sessionId !== 'string' || !sessionId || sessionId.length > 255) {
      throw new PageApiError(ErrorCode.invalidParams, `sessions[${i}] must be { roomId: "!…", sessionId: "…" } with ids of at most 255 characters.`);
    }
    return { roomId, sessionId };
  });
}

function sessionList(value: unknown): unknown[] {
  if (!Array.isArray(value) || value.length === 0) throw new PageApiError(ErrorCode.invalidParams, '"sessions" must be a non-empty list of sessions in key-export form.');
  if (value.length > MAX_SESSIONS_PER_PAGE_REQUEST) throw new PageApiError(ErrorCode.invalidParams, `At most ${MAX_SESSIONS_PER_PAGE_REQUEST} sessions per request; send them in parts.`);
  return value;
}

function sessionIdOf(raw: unknown): string | undefined {
  const id = typeof raw === 'object' && raw !== null ? (raw as { session_id?: unknown }).session_id : undefined;
  return typeof id === 'string' && id.length <= 255 ? id : undefined;
}

async function isUnlocked(services: Services): Promise<boolean> {
  const [key, account] = await Promise.all([services.unlockStore.get(), services.vault.getAccount()]);
  return !!key && !!account && key.userId === account.userId;
}

export async function pageStatus(services: Services, grant: SiteGrant): Promise<PageVaultStatus> {
  const [account, pin, unlocked] = await Promise.all([services.vault.getAccount(), services.vault.getPin(), isUnlocked(services)]);
  return { state: unlocked ? 'unlocked' : 'locked', scopes: [...grant.scopes], userId: account?.userId ?? null, backup: !!pin };
}

/** Each session from the vault, else from the backup; a miss or a failed fetch is "not found" for that one only. */
async function getRoomKeys(services: Services, refs: Array<{ roomId: string; sessionId: string }>, deadlineMs = GET_KEYS_DEADLINE_MS): Promise<RoomKeyResult[]> {
  const deadline = Date.now() + deadlineMs;
  const results: RoomKeyResult[] = new Array(refs.length);
  let held: Awaited<ReturnType<Services['sessions']['getHeld']>>;
  try {
    // What the vault holds: one lookup, one batch of decryption. Only the rest goes to the backup.
    held = await services.sessions.getHeld(refs);
  } catch (e) {
    if (e instanceof AppError && e.kind === 'locked') throw new PageApiError(ErrorCode.vaultLocked, e.message);
    throw e;
  }
  const missing: number[] = [];
  held.forEach((key, i) => {
    if (key) results[i] = { ...refs[i]!, found: true, key: key as never };
    else missing.push(i);
  });
  let next = 0;
  const work = async (): Promise<void> => {
    while (next < missing.length) {
      const i = missing[next++]!;
      const { roomId, sessionId } = refs[i]!;
      if (Date.now() > deadline) {
        results[i] = { roomId, sessionId, found: false, error: 'Not looked up: the request ran out of time; ask again.' };
        continue;
      }
      try {
        const key = await services.sessions.get(roomId, sessionId);
        results[i] = key ? { roomId, sessionId, found: true, key: key as never } : { roomId, sessionId, found: false };
      } catch (e) {
        // Locked midway ends the request; anything else is this session's problem only.
        if (e instanceof AppError && e.kind === 'locked') throw new PageApiError(ErrorCode.vaultLocked, e.message);
        results[i] = { roomId, sessionId, found: false, error: describeFetchError(e) };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(FETCH_CONCURRENCY, missing.length) }, work));
  return results;
}

function describeFetchError(e: unknown): string {
  if (e instanceof HomeserverError) return `The backup could not be asked: ${e.message}`;
  return e instanceof Error ? e.message : String(e);
}

/** Any thrown error as a page sees it: a code and a message, never a stack or an internal kind. */
export function toPageError(e: unknown): { code: number; message: string } {
  if (e instanceof PageApiError) return { code: e.code, message: e.message };
  if (e instanceof ApprovalRefused) return { code: ErrorCode.userRejected, message: e.message };
  if (e instanceof AppError) {
    switch (e.kind) {
      case 'locked': return { code: ErrorCode.vaultLocked, message: e.message };
      case 'bad-request': return { code: ErrorCode.invalidParams, message: e.message };
      case 'rate-limited': return { code: ErrorCode.limitExceeded, message: e.message };
      default: return { code: ErrorCode.internal, message: e.message };
    }
  }
  return { code: ErrorCode.internal, message: e instanceof Error ? e.message : String(e) };
}
