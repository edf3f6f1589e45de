/**
 * Fetching: sessions the client could not decrypt are collected, deduplicated and asked of the vault
 * in batches of ≤ 100 after a short debounce; what comes back is imported with the public
 * `CryptoApi.importRoomKeys`, after which matrix-js-sdk retries the waiting events by itself.
 *
 * Each session asked is then left alone for `cooldownMs`, found or not: a session the vault lacks
 * now is not asked again for every event that uses it, and one whose imported key still cannot
 * decrypt (a copy from a later message index) does not loop.
 */
import { MAX_SESSIONS_PER_PAGE_REQUEST, type ExportedRoomKey, type RoomKeyResult, type SessionRef } from '../shared/page-api.ts';
import { refKey } from './answers.ts';
import { Pump } from './pump.ts';
import { afterFailure, Backoff } from './retry.ts';
import type { StatsBox } from './stats.ts';

export interface KeyFetcherDeps {
  getRoomKeys(refs: SessionRef[]): Promise<RoomKeyResult[]>;
  importRoomKeys(keys: ExportedRoomKey[]): Promise<void>;
  stats: StatsBox;
  report(error: unknown): void;
  /** Session ids imported from the vault; hand-over skips them (they came from the backup). */
  fromVault: Set<string>;
  debounceMs: number;
  cooldownMs: number;
  maxRetryMs: number;
}

export class KeyFetcher {
  readonly #deps: KeyFetcherDeps;
  readonly #pending = new Map<string, SessionRef>();
  readonly #inFlight = new Set<string>();
  /** Session key → time until which it is not asked again. */
  readonly #cooldown = new Map<string, number>();
  readonly #backoff: Backoff;
  readonly #pump: Pump;
  /** Why fetching waits for the vault's status to change, or null. */
  #gate: string | null = null;

  constructor(deps: KeyFetcherDeps) {
    this.#deps = deps;
    this.#backoff = new Backoff(deps.maxRetryMs);
    this.#pump = new Pump(() => this.#step(), deps.report);
  }

  get gate(): string | null {
    return this.#gate;
  }

  /** Sessions collected and not yet asked of the vault. */
  get pending(): number {
    return this.#pending.size;
  }

  want(ref: SessionRef): void {
    const key = refKey(ref);
    if (this.#pending.has(key) || this.#inFlight.has(key)) return;
    const until = this.#cooldown.get(key);
    if (until !== undefined) {
      if (Date.now() < until) return;
      this.#cooldown.delete(key);
    }
    this.#pending.set(key, ref);
    this.#pump.schedule(this.#deps.debounceMs);
  }

  /** Set from the vault's status: null opens the gate and asks for what waited. */
  setGate(reason: string | null): void {
    this.#gate = reason;
    if (reason === null && this.#pending.size > 0) this.#pump.schedule(0);
  }

  stop(): void {
    this.#pump.stop();
  }

  async #step(): Promise<void> {
    if (this.#gate !== null || this.#pending.size === 0) return;
    const batch = [...this.#pending].slice(0, MAX_SESSIONS_PER_PAGE_REQUEST);
    for (const [key] of batch) {
      this.#pending.delete(key);
      this.#inFlight.add(key);
    }
    const refs = batch.map(([, ref]) => ref);
    let results: RoomKeyResult[];
    try {
      results = await this.#deps.getRoomKeys(refs);
    } catch (error) {
      for (const [key] of batch) this.#inFlight.delete(key);
      this.#failed(error, batch);
      return; // #failed decided when to try again
    }
    this.#backoff.reset();
    try {
      await this.#import(refs, results);
    } finally {
      for (const [key] of batch) this.#inFlight.delete(key);
    }
    if (this.#pending.size > 0) this.#pump.schedule(0);
  }

  async #import(refs: SessionRef[], results: RoomKeyResult[]): Promise<void> {
    this.#pruneCooldown();
    const until = Date.now() + this.#deps.cooldownMs;
    for (const ref of refs) this.#cooldown.set(refKey(ref), until);
    const keys = results.flatMap((r) => (r.found ? [r.key] : []));
    // Sessions the vault did not answer for count as not found, like the ones it said it lacks.
    this.#deps.stats.update({ keysRequested: refs.length, notFound: refs.length - keys.length });
    if (keys.length === 0) return;
    // Before the import: the client's room-key callback fires during it.
    for (const key of keys) this.#deps.fromVault.add(key.session_id);
    try {
      await this.#deps.importRoomKeys(keys);
    } catch (error) {
      this.#deps.report(new Error(`importRoomKeys refused ${keys.length} key(s) from the vault: ${String(error)}`, { cause: error }));
      return;
    }
    this.#deps.stats.update({ keysImported: keys.length });
  }

  #failed(error: unknown, batch: Array<[string, SessionRef]>): void {
    this.#deps.report(error);
    const next = afterFailure(error, 'read');
    if (next.action === 'drop') {
      // The request itself is wrong; asking again would fail again.
      const until = Date.now() + this.#deps.cooldownMs;
      for (const [key] of batch) this.#cooldown.set(key, until);
      return;
    }
    for (const [key, ref] of batch) this.#pending.set(key, ref);
    if (next.action === 'wait') this.#gate = next.gate;
    else this.#pump.schedule(this.#backoff.next());
  }

  /** Forgets expired entries once the map is large, so a long-lived page does not keep every session ever asked. */
  #pruneCooldown(): void {
    if (this.#cooldown.size < 10_000) return;
    const now = Date.now();
    for (const [key, until] of this.#cooldown) if (until <= now) this.#cooldown.delete(key);
  }
}
