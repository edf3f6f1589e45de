/**
 * The attachment's counters, observable: every change calls the listeners with a fresh frozen
 * snapshot, so an app can render them without copying. Errors land here as well as in `onError`,
 * so none is lost when the app did not pass one.
 */

export interface Rejection {
  sessionId: string | undefined;
  kind: string;
  reason: string;
}

export interface AttachmentStats {
  /** Sessions asked of the vault. */
  keysRequested: number;
  /** Keys the vault had, imported into the client (which then retries the events by itself). */
  keysImported: number;
  /** Sessions the vault did not have. */
  notFound: number;
  /** New sessions of this client the vault accepted for its backup. */
  sessionsHandedOver: number;
  /** New sessions the vault refused (see `lastRejection`). */
  sessionsRejected: number;
  lastRejection: Rejection | null;
  /** The last thing that went wrong, if anything has. */
  lastError: Error | null;
}

export type StatsListener = (stats: Readonly<AttachmentStats>) => void;

export class StatsBox {
  #stats: Readonly<AttachmentStats> = Object.freeze({
    keysRequested: 0, keysImported: 0, notFound: 0, sessionsHandedOver: 0, sessionsRejected: 0, lastRejection: null, lastError: null,
  });
  readonly #listeners = new Set<StatsListener>();
  readonly #onListenerError: (error: unknown) => void;

  constructor(onListenerError: (error: unknown) => void) {
    this.#onListenerError = onListenerError;
  }

  get current(): Readonly<AttachmentStats> {
    return this.#stats;
  }

  /** Adds to counters and replaces the other fields given. */
  update(change: Partial<AttachmentStats>): void {
    const next = { ...this.#stats };
    for (const [key, value] of Object.entries(change) as Array<[keyof AttachmentStats, unknown]>) {
      if (typeof value === 'number') (next[key] as number) = (this.#stats[key] as number) + value;
      else (next as Record<string, unknown>)[key] = value;
    }
    this.#stats = Object.freeze(next);
    this.changed();
  }

  /** Tells the listeners something changed (stats or the attachment's state). */
  changed(): void {
    for (const listener of this.#listeners) {
      try {
        listener(this.#stats);
      } catch (error) {
        this.#onListenerError(error);
      }
    }
  }

  subscribe(listener: StatsListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
