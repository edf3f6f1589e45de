/**
 * Sites the user allowed to use the page API (DESIGN.md "Per-origin grants"). A grant is made only
 * from extension UI: the popup's "Allow this site" (after the browser granted the host permission)
 * or the approval window a page's `vault_requestScopes` opens. It is kept in the vault, and with it
 * the page-API scripts are registered for that origin and injected into its open tabs. Revoking
 * drops the grant first (every request is checked against it), then tells open tabs, unregisters the
 * scripts and gives the host permission back.
 */
import { CLIENT_REPORT_STATES, isScope, SCOPES, type ClientReport, type Scope } from '../shared/page-api.ts';
import { sitePermissionPattern, type SitePlatform } from '../platform/sites.ts';
import type { SiteGrant, Vault } from '../platform/vault.ts';
import { AppError } from './errors.ts';

/** How long an approval window waits for the user before it counts as a refusal. */
export const APPROVAL_TIMEOUT_MS = 5 * 60_000;
/** After a "no" (or a closed window) a site must wait this long before it may ask again. */
export const APPROVAL_COOLDOWN_MS = 5_000;

export interface PendingApproval {
  id: string;
  origin: string;
  /** The scopes asked for that the origin does not hold yet. */
  scopes: Scope[];
}

interface Waiting extends PendingApproval {
  windowId: number | null;
  timer: ReturnType<typeof setTimeout>;
  settle(granted: boolean): void;
}

/** Message types the worker sends to the bridges of a site's open tabs. */
export type BridgeNotice = { type: 'page.status'; status: unknown } | { type: 'page.revoked' } | { type: 'page.client-off' };

export class ApprovalRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ApprovalRefused';
  }
}

export function normaliseScopes(value: unknown): Scope[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > SCOPES.length * 2) {
    throw new AppError('bad-request', `"scopes" must be a non-empty list of ${SCOPES.map((s) => `"${s}"`).join(' and ')}.`);
  }
  for (const s of value) if (!isScope(s)) throw new AppError('bad-request', `Unknown scope ${JSON.stringify(String(s)).slice(0, 40)}: the scopes are ${SCOPES.join(' and ')}.`);
  return SCOPES.filter((s) => value.includes(s));
}

/** How long "the user is being asked about this site" is remembered (the browser's prompt is open). */
export const INTENT_TTL_MS = 2 * 60_000;

/** A site's last client report, kept in memory (the adapter reports again on every change). */
export type ClientReportSeen = ClientReport & { at: number };

export class Sites {
  readonly #waiting = new Map<string, Waiting>();
  readonly #reports = new Map<string, ClientReportSeen>();
  readonly #intents = new Map<string, { origin: string; scopes: Scope[]; at: number }>();
  readonly #refusedAt = new Map<string, number>();
  /**
   * Changes to grants and to what is registered run one at a time: two popups allowing one site, or
   * a revoke while an allow is still registering, must not leave scripts behind without a grant.
   */
  #queue: Promise<unknown> = Promise.resolve();

  #serial<T>(change: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(change, change);
    this.#queue = run.catch(() => undefined); // the next change runs whatever this one did; its caller sees the error
    return run;
  }

  constructor(private readonly deps: {
    vault: Vault;
    platform: SitePlatform;
    now(): number;
    newId(): string;
    /** The homeserver's host permission pattern, which a revoke must not take away. */
    homeserverPattern(): Promise<string | null>;
  }) {}

  list(): Promise<SiteGrant[]> {
    return this.deps.vault.getSites();
  }

  async grantOf(origin: string): Promise<SiteGrant | null> {
    return (await this.deps.vault.getSites()).find((g) => g.origin === origin) ?? null;
  }

  /**
   * Allows a site (from the popup, after the browser granted its host permission in the click):
   * stores the grant, registers the scripts and injects them into the site's open tabs at once.
   */
  grant(origin: string, scopes: Scope[]): Promise<{ grant: SiteGrant; injected: number }> {
    return this.#serial(() => this.#grant(origin, scopes));
  }

  async #grant(origin: string, scopes: Scope[]): Promise<{ grant: SiteGrant; injected: number }> {
    if (!(await this.deps.platform.hasPermission(origin))) {
      throw new AppError('bad-request', `The browser has not given the extension access to ${origin}; allow it in the prompt the popup opens.`);
    }
    this.cancelIntent(origin);
    const now = this.deps.now();
    const sites = await this.deps.vault.updateSites((list) => {
      const current = list.find((g) => g.origin === origin);
      const next: SiteGrant = {
        origin, scopes: SCOPES.filter((s) => scopes.includes(s)), grantedAt: current?.grantedAt ?? now,
        ...(current?.connectClient ? { connectClient: true } : {}),
      };
      return [...list.filter((g) => g.origin !== origin), next];
    });
    const grant = sites.find((g) => g.origin === origin)!;
    await this.deps.platform.register(origin);
    const injected = await this.deps.platform.injectOpenTabs(origin);
    return { grant, injected };
  }

  /**
   * The popup is about to ask the browser for a site's host permission. A popup may close while the
   * browser's prompt is open (it loses focus), and then it never sends `sites.allow`: the worker
   * completes the grant itself when the permission arrives (`permissionAdded`).
   */
  async intend(origin: string, scopes: Scope[]): Promise<void> {
    // Already held: no prompt, nothing to wait for (the popup's own `sites.allow` follows at once).
    if (await this.deps.platform.hasPermission(origin)) return;
    this.#intents.set(sitePermissionPattern(origin), { origin, scopes, at: this.deps.now() });
  }

  /** The user said no in the prompt: a permission that comes later some other way allows nothing. */
  cancelIntent(origin: string): void {
    const pattern = sitePermissionPattern(origin);
    if (this.#intents.get(pattern)?.origin === origin) this.#intents.delete(pattern);
  }

  /** The browser added host permissions: a site the user was just asked about is allowed now. */
  permissionAdded(patterns: readonly string[]): Promise<void> {
    return this.#serial(() => this.#permissionAdded(patterns));
  }

  async #permissionAdded(patterns: readonly string[]): Promise<void> {
    for (const pattern of patterns) {
      const intent = this.#intents.get(pattern);
      this.#intents.delete(pattern);
      if (intent && this.deps.now() - intent.at < INTENT_TTL_MS) await this.#grant(intent.origin, intent.scopes);
    }
  }

  /**
   * "Connect to the Matrix client on this site": the adapter script is registered (and put into
   * open tabs) or taken away (open tabs' adapters detach at once).
   */
  connectClient(origin: string, on: boolean): Promise<SiteGrant> {
    return this.#serial(() => this.#connectClient(origin, on));
  }

  async #connectClient(origin: string, on: boolean): Promise<SiteGrant> {
    const sites = await this.deps.vault.updateSites((list) => list.map((g) => (g.origin === origin ? { ...g, connectClient: on } : g)));
    const grant = sites.find((g) => g.origin === origin);
    if (!grant) throw new AppError('bad-request', `${origin} is not allowed to use the vault: allow it first.`);
    this.#reports.delete(origin);
    if (on) await this.deps.platform.injectClient(origin);
    else await this.deps.platform.tellTabs(origin, { type: 'page.client-off' } satisfies BridgeNotice);
    return grant;
  }

  /**
   * A bridge on an allowed site confirmed its origin: the page-world scripts go into that document
   * (the page API, and the client adapter where the connection is on).
   */
  async pageReady(grant: SiteGrant, target: { tabId: number; documentId?: string }): Promise<void> {
    await this.deps.platform.injectPageWorld(target, grant.connectClient === true);
  }

  /** The adapter's report for a site that has the client connection on (checked by the caller). */
  report(origin: string, value: unknown): void {
    this.#reports.set(origin, { ...parseClientReport(value), at: this.deps.now() });
  }

  reportOf(origin: string): ClientReportSeen | null {
    return this.#reports.get(origin) ?? null;
  }

  /** Takes a site's grant away: refused at once (the grant is gone first), then the tabs are told. */
  revoke(origin: string): Promise<boolean> {
    return this.#serial(() => this.#revoke(origin));
  }

  async #revoke(origin: string): Promise<boolean> {
    let found = false;
    const remaining = await this.deps.vault.updateSites((list) => {
      found = list.some((g) => g.origin === origin);
      return list.filter((g) => g.origin !== origin);
    });
    for (const waiting of [...this.#waiting.values()]) if (waiting.origin === origin) waiting.settle(false);
    this.#reports.delete(origin);
    // Told before the permission goes: without it the worker can no longer see the site's tabs.
    await this.deps.platform.tellTabs(origin, { type: 'page.revoked' } satisfies BridgeNotice);
    await this.deps.platform.unregister(origin);
    const homeserver = await this.deps.homeserverPattern();
    await this.deps.platform.removePermission(origin, (pattern) =>
      pattern === homeserver || remaining.some((g) => sitePermissionPattern(g.origin) === pattern));
    return found;
  }

  /**
   * Brings the browser in line with the grants (after a start or an update): scripts of sites no
   * longer granted are unregistered, granted sites whose scripts are missing are registered again,
   * and grants whose host permission the user took away in the browser's settings are dropped.
   */
  reconcile(): Promise<void> {
    return this.#serial(() => this.#reconcile());
  }

  async #reconcile(): Promise<void> {
    const grants = await this.deps.vault.getSites();
    const registered = new Set(await this.deps.platform.registeredOrigins());
    for (const origin of registered) if (!grants.some((g) => g.origin === origin)) await this.deps.platform.unregister(origin);
    for (const grant of grants) {
      if (!(await this.deps.platform.hasPermission(grant.origin))) await this.#revoke(grant.origin);
      else if (!registered.has(grant.origin)) await this.deps.platform.register(grant.origin);
    }
  }

  /** The browser took a host permission away: the grants it carried go too. */
  permissionRemoved(patterns: readonly string[]): Promise<void> {
    return this.#serial(() => this.#permissionRemoved(patterns));
  }

  async #permissionRemoved(patterns: readonly string[]): Promise<void> {
    for (const grant of await this.deps.vault.getSites()) {
      if (patterns.includes(sitePermissionPattern(grant.origin))) await this.#revoke(grant.origin);
    }
  }

  /** Tells every granted site's open tabs its status (after an unlock, a lock, a sign-in or out). */
  async notifyAll(statusOf: (grant: SiteGrant) => Promise<unknown>): Promise<void> {
    for (const grant of await this.deps.vault.getSites()) {
      await this.deps.platform.tellTabs(grant.origin, { type: 'page.status', status: await statusOf(grant) } satisfies BridgeNotice);
    }
  }

  /**
   * Asks the user, in an extension window, to give a site scopes it does not hold. Resolves with the
   * scopes held afterwards; rejects with ApprovalRefused when the user says no, closes the window or
   * lets it wait too long. One approval per site at a time.
   */
  async requestScopes(origin: string, wanted: Scope[]): Promise<Scope[]> {
    const grant = await this.grantOf(origin);
    if (!grant) throw new AppError('bad-request', 'This site is not allowed to use the vault.');
    const missing = wanted.filter((s) => !grant.scopes.includes(s));
    if (missing.length === 0) return grant.scopes;
    if ([...this.#waiting.values()].some((w) => w.origin === origin)) {
      throw new AppError('rate-limited', 'An approval for this site is already open: answer it first.');
    }
    // A site may not bring the window back the moment the user said no.
    const refused = this.#refusedAt.get(origin);
    if (refused !== undefined && this.deps.now() - refused < APPROVAL_COOLDOWN_MS) {
      throw new AppError('rate-limited', 'The user just said no to this site: wait before asking again.');
    }
    const id = this.deps.newId();
    const granted = await new Promise<boolean>((resolve) => {
      const waiting: Waiting = {
        id, origin, scopes: missing, windowId: null,
        timer: setTimeout(() => waiting.settle(false), APPROVAL_TIMEOUT_MS),
        settle: (answer) => {
          if (!this.#waiting.delete(id)) return;
          clearTimeout(waiting.timer);
          if (waiting.windowId !== null) void this.deps.platform.closeWindow(waiting.windowId).catch(() => undefined);
          resolve(answer);
        },
      };
      this.#waiting.set(id, waiting);
      this.deps.platform.openWindow(`approve.html#${encodeURIComponent(id)}`).then(
        (windowId) => {
          if (this.#waiting.has(id)) waiting.windowId = windowId;
          else if (windowId !== null) void this.deps.platform.closeWindow(windowId).catch(() => undefined);
        },
        () => waiting.settle(false),
      );
    });
    if (!granted) {
      this.#refusedAt.set(origin, this.deps.now());
      if (this.#refusedAt.size > 1000) this.#refusedAt.delete(this.#refusedAt.keys().next().value!);
      throw new ApprovalRefused('The user did not allow this.');
    }
    const sites = await this.deps.vault.updateSites((list) => list.map((g) =>
      g.origin === origin ? { ...g, scopes: SCOPES.filter((s) => g.scopes.includes(s) || missing.includes(s)) } : g));
    const after = sites.find((g) => g.origin === origin);
    // Revoked while the window was open: nothing is granted.
    if (!after) throw new ApprovalRefused('This site was disallowed meanwhile.');
    return after.scopes;
  }

  /** What the approval window shows. */
  approval(id: string): PendingApproval | null {
    const w = this.#waiting.get(id);
    return w ? { id: w.id, origin: w.origin, scopes: w.scopes } : null;
  }

  answer(id: string, allow: boolean): boolean {
    const w = this.#waiting.get(id);
    if (!w) return false;
    w.settle(allow);
    return true;
  }

  /** A window was closed: an approval it showed counts as refused. */
  windowClosed(windowId: number): void {
    for (const w of [...this.#waiting.values()]) if (w.windowId === windowId) w.settle(false);
  }
}

/** A client report as a page sent it: every field checked, strings cut to a readable length. */
export function parseClientReport(value: unknown): ClientReport {
  const r = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>;
  if (!CLIENT_REPORT_STATES.includes(r.state as ClientReport['state'])) throw new AppError('bad-request', `"state" must be one of ${CLIENT_REPORT_STATES.join(', ')}.`);
  const text = (v: unknown, field: string): string | null => {
    if (v === null || v === undefined) return null;
    if (typeof v !== 'string' || v.length > 300) throw new AppError('bad-request', `"${field}" must be a string of at most 300 characters.`);
    return v;
  };
  const count = (v: unknown, field: string): number => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new AppError('bad-request', `"${field}" must be a count.`);
    return v;
  };
  return {
    state: r.state as ClientReport['state'],
    clientUserId: text(r.clientUserId, 'clientUserId'),
    reason: text(r.reason, 'reason'),
    keysFetched: count(r.keysFetched, 'keysFetched'),
    sessionsHandedOver: count(r.sessionsHandedOver, 'sessionsHandedOver'),
  };
}
