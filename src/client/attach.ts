/**
 * `attachKeyVault`: joins a matrix-js-sdk client (≥ 43, Rust crypto) to the vault in both
 * directions. Missing keys are fetched (key-fetcher.ts) and new sessions handed over (hand-over.ts);
 * this file wires them to the client's events and to the vault's status, which opens and closes
 * each direction: fetching needs 'read' and an unlocked vault, hand-over 'backup' and a vault with a
 * backup (locked is fine), and both the vault signed in as the client's own account.
 */
import type { PageVaultStatus } from '../shared/page-api.ts';
import { checkClient, type ClientParts } from './client-shape.ts';
import { missingSessionOf } from './failures.ts';
import { HandOver } from './hand-over.ts';
import { KeyFetcher } from './key-fetcher.ts';
import { StatsBox, type AttachmentStats, type StatsListener } from './stats.ts';
import type { KeyVault } from './vault.ts';

/** matrix-js-sdk's `MatrixEventEvent.Decrypted`, re-emitted by the client for every event it maps. */
export const DECRYPTED_EVENT = 'Event.decrypted';

export interface AttachOptions {
  /** Called with every error, besides `stats.lastError`. */
  onError?: (error: Error) => void;
  /** Wait before asking the vault, so one sync's failures go in one request (default 100 ms). */
  debounceMs?: number;
  /** Wait before exporting new sessions, so they go in one export pass (default 1500 ms). */
  handOverDelayMs?: number;
  /** How long a session asked of the vault is not asked again (default 10 min). */
  notFoundRetryMs?: number;
  /** Longest wait between retries after a rate limit or a vault error (default 5 min). */
  maxRetryMs?: number;
}

/** 'on', or off with the reason, in words a person can act on. */
export type Direction = 'on' | { off: string };

export interface Attachment {
  readonly stats: Readonly<AttachmentStats>;
  /** Whether keys are being fetched from the vault now. */
  readonly fetching: Direction;
  /** Whether new sessions are being handed to the vault now. */
  readonly handOver: Direction;
  /** Called on every change of `stats`, `fetching` or `handOver`; returns the unsubscribe function. */
  onChange(listener: StatsListener): () => void;
  /** Stops listening to the client and the vault; idempotent. */
  detach(): void;
}

/** Thrown by `attachKeyVault` for a client it cannot use; `checkClient` gives the same without throwing. */
export class ClientShapeError extends Error {
  override readonly name = 'ClientShapeError';
  readonly missing: string;

  constructor(missing: string, message: string) {
    super(message);
    this.missing = missing;
  }
}

export function attachKeyVault(client: unknown, vault: KeyVault, options: AttachOptions = {}): Attachment {
  const check = checkClient(client);
  if (!check.ok) throw new ClientShapeError(check.missing, check.message);
  return new KeyVaultAttachment(check.parts, vault, options);
}

class KeyVaultAttachment implements Attachment {
  readonly #parts: ClientParts;
  readonly #options: AttachOptions;
  readonly #stats: StatsBox;
  readonly #fetcher: KeyFetcher;
  readonly #handOver: HandOver | null;
  readonly #handOverOff: string | null;
  readonly #onDecrypted: (event: unknown) => void;
  readonly #stopStatus: () => void;
  #detached = false;

  constructor(parts: ClientParts, vault: KeyVault, options: AttachOptions) {
    this.#parts = parts;
    this.#options = options;
    this.#stats = new StatsBox((error) => this.#reportListenerError(error));
    const report = (error: unknown): void => this.#report(error);
    const fromVault = new Set<string>();
    const maxRetryMs = options.maxRetryMs ?? 5 * 60_000;
    this.#fetcher = new KeyFetcher({
      getRoomKeys: (refs) => vault.getRoomKeys(refs),
      importRoomKeys: (keys) => parts.crypto.importRoomKeys(keys),
      stats: this.#stats,
      report,
      fromVault,
      debounceMs: options.debounceMs ?? 100,
      cooldownMs: options.notFoundRetryMs ?? 10 * 60_000,
      maxRetryMs,
    });
    let handOver: HandOver | null = null;
    let handOverOff = parts.machine.ok ? null : parts.machine.message;
    if (parts.machine.ok) {
      try {
        handOver = new HandOver({
          machine: parts.machine.machine,
          backupRoomKeys: (sessions) => vault.backupRoomKeys(sessions),
          stats: this.#stats,
          report,
          fromVault,
          delayMs: options.handOverDelayMs ?? 1500,
          maxRetryMs,
        });
      } catch (error) {
        // A closed machine (the client was stopped) refuses the registration.
        handOverOff = `registering for new sessions on getCrypto().olmMachine failed (${String(error)}): new sessions are not handed to the vault`;
      }
    }
    this.#handOver = handOver;
    this.#handOverOff = handOverOff;

    this.#onDecrypted = (event) => {
      try {
        const ref = missingSessionOf(event);
        if (ref) this.#fetcher.want(ref);
      } catch (error) {
        this.#report(error); // an event of an unexpected shape; the client's emitter must not see it
      }
    };
    parts.on(DECRYPTED_EVENT, this.#onDecrypted);
    this.#stopStatus = vault.onStatusChanged((status) => this.#apply(status));
    vault.status().then((status) => this.#apply(status), (error: unknown) => {
      this.#report(error);
      this.#handOver?.setGate(`the vault's status could not be read (${String(error)}): waiting for it to change`);
      this.#stats.changed();
    });
    this.#scanEarlierFailures();
  }

  get stats(): Readonly<AttachmentStats> {
    return this.#stats.current;
  }

  get fetching(): Direction {
    if (this.#detached) return { off: 'detached' };
    const gate = this.#fetcher.gate;
    return gate === null ? 'on' : { off: gate };
  }

  get handOver(): Direction {
    if (this.#detached) return { off: 'detached' };
    const gate = this.#handOverOff ?? this.#handOver?.gate ?? null;
    return gate === null ? 'on' : { off: gate };
  }

  onChange(listener: StatsListener): () => void {
    return this.#stats.subscribe(listener);
  }

  detach(): void {
    if (this.#detached) return;
    this.#detached = true;
    try {
      this.#parts.off(DECRYPTED_EVENT, this.#onDecrypted);
    } catch (error) {
      this.#report(error);
    }
    this.#stopStatus();
    this.#fetcher.stop();
    this.#handOver?.stop();
    this.#stats.changed();
  }

  /** Opens or closes each direction from the vault's status. */
  #apply(status: PageVaultStatus): void {
    if (this.#detached) return;
    let clientUser: string | null;
    try {
      clientUser = this.#parts.getUserId();
    } catch (error) {
      this.#report(error); // and go on as if the client did not know: the vault's account is not checked
      clientUser = null;
    }
    const otherAccount = status.userId !== null && clientUser !== null && status.userId !== clientUser
      ? `the vault holds ${status.userId}'s keys, this client is ${clientUser}`
      : null;
    this.#fetcher.setGate(otherAccount
      ?? (!status.scopes.includes('read') ? "this site does not hold the 'read' scope: call vault.requestScopes(['read'])" : null)
      ?? (status.state === 'locked' ? 'the vault is locked: the user unlocks it in the Matrix Key Vault popup' : null));
    this.#handOver?.setGate(otherAccount
      ?? (!status.scopes.includes('backup') ? "this site does not hold the 'backup' scope: call vault.requestScopes(['backup'])" : null)
      ?? (!status.backup ? 'the vault has no backup yet: the user sets one up in the Matrix Key Vault popup' : null));
    this.#stats.changed();
  }

  /** Events that failed before the kit was attached never emit again: find them in the live timelines. */
  #scanEarlierFailures(): void {
    let rooms: unknown[];
    try {
      rooms = this.#parts.getRooms();
    } catch (error) {
      this.#report(error);
      return;
    }
    for (const room of rooms) {
      const events = liveEventsOf(room);
      if (typeof events === 'string') {
        this.#report(new TypeError(`looking for earlier decryption failures: ${events}`));
        return; // one report is enough: the other rooms have the same shape
      }
      for (const event of events) {
        const failed = (event as { isDecryptionFailure?: () => unknown }).isDecryptionFailure?.();
        if (failed !== true) continue;
        const ref = missingSessionOf(event);
        if (ref) this.#fetcher.want(ref);
      }
    }
  }

  #report(error: unknown): void {
    const err = error instanceof Error ? error : new Error(String(error));
    this.#stats.update({ lastError: err });
    try {
      this.#options.onError?.(err);
    } catch (thrown) {
      this.#reportListenerError(thrown);
    }
  }

  /** An app's own callback threw: not the kit's error to record, but not to be lost either. */
  #reportListenerError(error: unknown): void {
    setTimeout(() => {
      throw error;
    });
  }
}

/** A room's live timeline events, or what is wrong with its shape. */
function liveEventsOf(room: unknown): unknown[] | string {
  if (typeof room !== 'object' || room === null) return `getRooms() gave a ${typeof room}, not a Room`;
  const { getLiveTimeline } = room as { getLiveTimeline?: unknown };
  if (typeof getLiveTimeline !== 'function') return 'a room has no getLiveTimeline()';
  const timeline: unknown = getLiveTimeline.call(room);
  const getEvents = (timeline as { getEvents?: unknown } | null)?.getEvents;
  if (typeof getEvents !== 'function') return "a room's live timeline has no getEvents()";
  const events: unknown = getEvents.call(timeline);
  return Array.isArray(events) ? events : "a room's live timeline gave no list of events";
}
