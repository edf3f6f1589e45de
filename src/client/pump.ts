/**
 * Runs one asynchronous step at a time, after a delay. A step asked for while one is scheduled
 * keeps the earlier timer (so a stream of new sessions cannot postpone a batch forever, and cannot
 * cut a backoff short); one asked for while a step runs happens after it.
 */
export class Pump {
  readonly #step: () => Promise<void>;
  readonly #onError: (error: unknown) => void;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #running = false;
  #again: number | undefined;
  #stopped = false;

  constructor(step: () => Promise<void>, onError: (error: unknown) => void) {
    this.#step = step;
    this.#onError = onError;
  }

  schedule(delayMs: number): void {
    if (this.#stopped) return;
    if (this.#running) {
      this.#again = Math.min(this.#again ?? delayMs, delayMs);
      return;
    }
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(() => void this.#run(), delayMs);
  }

  /** True while a step runs or waits on its timer. */
  get active(): boolean {
    return this.#running || this.#timer !== undefined;
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  async #run(): Promise<void> {
    this.#timer = undefined;
    this.#running = true;
    try {
      await this.#step();
    } catch (error) {
      this.#onError(error);
    } finally {
      this.#running = false;
      const again = this.#again;
      this.#again = undefined;
      if (again !== undefined) this.schedule(again);
    }
  }
}
