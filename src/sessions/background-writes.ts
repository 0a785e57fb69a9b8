/**
 * The session service's writes that no request waits for (activity touches, the end of a session seen
 * expired), run a few at a time.
 *
 * Why bounded: 10,000 sessions expiring in the same second used to fire 10,000 commits at once on each
 * replica. They queued on the store's one connection ahead of every other user's token read, and those
 * requests waited seconds (bench/results/mass-revocation.md). With at most `concurrency` in flight, a
 * request's read waits behind a handful of writes at most; the rest wait here, where they cost no
 * connection and no Redis memory.
 *
 * Why keyed: a write still waiting is replaced by a newer one of the same key (a later touch of the same
 * session carries the later time; a second "end it, it expired" of the same session is the same write),
 * so the queue holds at most one write per session however often its tokens come back; and one that
 * has become pointless (the session ended elsewhere) is cancelled before it costs a store call.
 */

export interface BackgroundWritesOptions {
  /** Writes in flight at most. */
  readonly concurrency: number;
  /** A write that failed (it is not retried: each of these is redone by the next request that needs it). */
  readonly onError: (err: unknown, what: string) => void;
}

interface Write {
  readonly run: () => Promise<unknown>;
  readonly what: string;
}

export class BackgroundWrites {
  readonly #concurrency: number;
  readonly #onError: (err: unknown, what: string) => void;
  /** Writes not started yet, in arrival order (a Map keeps the first insertion's place on replace). */
  readonly #waiting = new Map<string, Write>();
  #running = 0;
  #idle: (() => void)[] = [];

  constructor(options: BackgroundWritesOptions) {
    if (!Number.isInteger(options.concurrency) || options.concurrency < 1)
      throw new RangeError(`concurrency must be a positive integer, got ${options.concurrency}`);
    this.#concurrency = options.concurrency;
    this.#onError = options.onError;
  }

  /** Writes waiting for a turn (not counting those in flight). */
  get waiting(): number {
    return this.#waiting.size;
  }

  /** Writes in flight. */
  get running(): number {
    return this.#running;
  }

  /**
   * Runs `run` now if fewer than `concurrency` writes are in flight, else once one finishes; a write of
   * the same `key` still waiting is replaced by this one.
   */
  add(key: string, what: string, run: () => Promise<unknown>): void {
    if (this.#running < this.#concurrency && this.#waiting.size === 0) {
      this.#start({ run, what });
      return;
    }
    this.#waiting.set(key, { run, what });
  }

  /** Drops the write of `key` if it is still waiting (one in flight runs on); true when one was dropped. */
  cancel(key: string): boolean {
    // Nothing waits while a slot is free, so no write has to start in its place.
    return this.#waiting.delete(key);
  }

  /** Resolves once nothing is waiting or in flight (shutdown: the last touches reach the store). */
  drained(): Promise<void> {
    if (this.#running === 0 && this.#waiting.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  #start(write: Write): void {
    this.#running++;
    let pending: Promise<unknown>;
    try {
      pending = write.run();
    } catch (err) {
      pending = Promise.reject(err);
    }
    pending
      .catch((err: unknown) => this.#onError(err, write.what))
      .finally(() => {
        this.#running--;
        this.#next();
      });
  }

  #next(): void {
    while (this.#running < this.#concurrency) {
      const first = this.#waiting.entries().next();
      if (first.done === true) break;
      const [key, write] = first.value;
      this.#waiting.delete(key);
      this.#start(write);
    }
    if (this.#running === 0 && this.#waiting.size === 0) {
      const idle = this.#idle;
      this.#idle = [];
      for (const resolve of idle) resolve();
    }
  }
}
