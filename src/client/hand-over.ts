/**
 * Hand-over: every new megolm session of the client (its own outbound ones, received `m.room_key`s,
 * imports) goes to the vault's backup, so keys are backed up even when the app's own backup is off.
 *
 * The Rust machine's room-key callback gives session ids only; the keys come from its
 * `exportRoomKeys(predicate)`, which walks every stored session to apply the predicate. So ids are
 * collected for `delayMs` and exported together (up to 1,000 per pass), then sent 100 per request.
 * Each session id is handled once: the callback may fire again for a better copy, and sessions the
 * kit imported from the vault came from the backup in the first place.
 */
import { MAX_SESSIONS_PER_PAGE_REQUEST, type BackupResult } from '../shared/page-api.ts';
import type { KitInboundGroupSession, KitOlmMachine, KitRoomKeyInfo } from './olm-machine.ts';
import { Pump } from './pump.ts';
import { afterFailure, Backoff } from './retry.ts';
import type { StatsBox } from './stats.ts';

/** Session ids per export pass (each pass reads every stored session once). */
const EXPORT_BATCH = 1000;
/** Ids kept while hand-over waits (no scope yet, no backup): beyond this the oldest are dropped, and said so. */
const MAX_QUEUED = 50_000;

export interface HandOverDeps {
  machine: KitOlmMachine;
  backupRoomKeys(sessions: unknown[]): Promise<BackupResult[]>;
  stats: StatsBox;
  report(error: unknown): void;
  fromVault: ReadonlySet<string>;
  delayMs: number;
  maxRetryMs: number;
}

export class HandOver {
  readonly #deps: HandOverDeps;
  readonly #queued = new Set<string>();
  /** Ids handed over, refused, or not exportable: never sent again. */
  readonly #done = new Set<string>();
  readonly #backoff: Backoff;
  readonly #pump: Pump;
  #gate: string | null = "waiting for the vault's status";
  #stopped = false;

  constructor(deps: HandOverDeps) {
    this.#deps = deps;
    this.#backoff = new Backoff(deps.maxRetryMs);
    this.#pump = new Pump(() => this.#step(), deps.report);
    // The wasm API has no way to unregister: after stop() the callback stays and does nothing.
    deps.machine.registerRoomKeyUpdatedCallback(async (keys) => {
      try {
        this.#collect(keys);
      } catch (error) {
        deps.report(error);
      }
    });
  }

  get gate(): string | null {
    return this.#gate;
  }

  setGate(reason: string | null): void {
    this.#gate = reason;
    if (reason === null && this.#queued.size > 0) this.#pump.schedule(0);
  }

  stop(): void {
    this.#stopped = true;
    this.#pump.stop();
  }

  #collect(keys: readonly KitRoomKeyInfo[]): void {
    if (this.#stopped) return;
    // Only sessionId is read: each read of roomId would make a wasm object to free.
    for (const { sessionId } of keys) {
      if (typeof sessionId !== 'string' || this.#done.has(sessionId) || this.#deps.fromVault.has(sessionId)) continue;
      this.#queued.add(sessionId);
    }
    if (this.#queued.size > MAX_QUEUED) this.#dropOldest();
    if (this.#queued.size > 0) this.#pump.schedule(this.#deps.delayMs);
  }

  #dropOldest(): void {
    const excess = this.#queued.size - MAX_QUEUED;
    let n = 0;
    for (const id of this.#queued) {
      if (n++ >= excess) break;
      this.#queued.delete(id);
    }
    this.#deps.report(new Error(`hand-over waited too long (${this.#gate ?? 'busy'}): the ${excess} oldest new sessions were not handed to the vault`));
  }

  async #step(): Promise<void> {
    if (this.#gate !== null || this.#queued.size === 0) return;
    const ids = new Set([...this.#queued].slice(0, EXPORT_BATCH));
    for (const id of ids) this.#queued.delete(id);

    let keys: Array<Record<string, unknown>>;
    try {
      keys = parseExport(await this.#deps.machine.exportRoomKeys(pick(ids)));
    } catch (error) {
      for (const id of ids) this.#queued.add(id);
      this.#deps.report(new Error(`exporting new sessions from the client failed: ${String(error)}`, { cause: error }));
      this.#pump.schedule(this.#backoff.next());
      return;
    }
    const exported = keys.filter((k) => typeof k.session_id === 'string' && ids.has(k.session_id));
    const absent = ids.size - new Set(exported.map((k) => k.session_id)).size;
    for (const id of ids) this.#done.add(id);
    if (absent > 0) this.#deps.report(new Error(`${absent} new session(s) were not in the client's store when exported: not handed over`));

    for (let i = 0; i < exported.length; i += MAX_SESSIONS_PER_PAGE_REQUEST) {
      const chunk = exported.slice(i, i + MAX_SESSIONS_PER_PAGE_REQUEST);
      if (!(await this.#send(chunk))) {
        // Not sent: these and the rest go back in the queue (ids only; the keys are dropped).
        for (const key of exported.slice(i)) {
          this.#done.delete(key.session_id as string);
          this.#queued.add(key.session_id as string);
        }
        return;
      }
    }
    this.#backoff.reset();
    if (this.#queued.size > 0) this.#pump.schedule(this.#deps.delayMs);
  }

  /** Sends one batch; false when it must be sent again later (and arranges when). */
  async #send(chunk: Array<Record<string, unknown>>): Promise<boolean> {
    let results: BackupResult[];
    try {
      results = await this.#deps.backupRoomKeys(chunk);
    } catch (error) {
      this.#deps.report(error);
      const next = afterFailure(error, 'backup');
      if (next.action === 'drop') {
        this.#deps.stats.update({ sessionsRejected: chunk.length });
        return true;
      }
      if (next.action === 'wait') this.#gate = next.gate;
      else this.#pump.schedule(this.#backoff.next());
      return false;
    }
    let accepted = 0;
    let rejected = 0;
    let lastRejection = this.#deps.stats.current.lastRejection;
    for (const result of results) {
      if (result.accepted) {
        accepted++;
      } else {
        rejected++;
        lastRejection = { sessionId: result.sessionId ?? (chunk[result.index]?.session_id as string | undefined), kind: result.kind, reason: result.reason };
      }
    }
    this.#deps.stats.update({ sessionsHandedOver: accepted, sessionsRejected: rejected, lastRejection });
    return true;
  }
}

/** The export predicate: true for the ids asked for; frees each session object, which is ours. */
function pick(ids: ReadonlySet<string>): (session: KitInboundGroupSession) => boolean {
  return (session) => {
    const chosen = ids.has(session.sessionId);
    session.free?.();
    return chosen;
  };
}

function parseExport(json: unknown): Array<Record<string, unknown>> {
  if (typeof json !== 'string') throw new TypeError(`exportRoomKeys resolved with ${typeof json}, not JSON text`);
  const list: unknown = JSON.parse(json);
  if (!Array.isArray(list)) throw new TypeError('exportRoomKeys did not give a JSON list');
  return list.filter((k): k is Record<string, unknown> => typeof k === 'object' && k !== null);
}
