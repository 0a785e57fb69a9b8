/**
 * The invalidation channel's publishing side for mass revocations: commits that end sessions while
 * others are in flight leave their message to the store, which publishes them batched.
 *
 * Why not always in the script: a COMMIT that PUBLISHes is atomic with its message and adds no
 * latency, so a lone revocation (the common case) keeps doing that. But 10,000 revocations at once
 * (an admin ending users one call each, or one bulk call) would put 10,000 messages on the channel,
 * each parsed by every replica. So a commit sent while another ending commit is in flight (or within
 * STORM_GAP_MS of one) asks the script for the message's parts instead, and they go out together: a
 * batch gathers for at most MAX_BATCH_DELAY_MS, or until it holds MAX_IDS_PER_MESSAGE token ids, one
 * PUBLISH per message, one round of PUBLISHes in flight at a time. The cost: a replica that dies
 * between such a commit and its PUBLISH loses the message, as pub/sub may lose any message; the
 * receivers' `cache.maxStaleness` bounds what a lost message can do, as it does for those.
 */

/** Token ids per message at most: a receiver's work per message stays small (about 1 ms). */
export const MAX_IDS_PER_MESSAGE = 1000;

/** What a COMMIT that did not publish returns for its message (see COMMIT in redis-scripts.ts). */
export interface DeferredInvalidation {
  /** Token ids invalidated. */
  readonly count: number;
  /** Their JSON strings, joined by commas. */
  readonly tokenIds: string;
  /** The ended records' JSON objects, joined by commas. */
  readonly ended: string;
  /** The changed (warned) sessions' JSON objects, joined by commas (onLimit: warn). */
  readonly changed: string;
  /** The publication clock when the commit was sent (the message's `at`: the lag counts the wait). */
  readonly at: number;
}

/**
 * The messages of a batch, in order: consecutive commits joined while they fit in `max` token ids (a
 * commit larger than that alone), each message in the format COMMIT publishes, stamped with its
 * earliest commit.
 */
export function packInvalidations(
  batch: readonly DeferredInvalidation[],
  max = MAX_IDS_PER_MESSAGE,
): string[] {
  const messages: string[] = [];
  let ids: string[] = [];
  let ended: string[] = [];
  let changed: string[] = [];
  let count = 0;
  let at = Infinity;
  const flush = (): void => {
    if (ids.length === 0 && changed.length === 0) return;
    const extra = changed.length === 0 ? '' : `,"changed":[${changed.join(',')}]`;
    messages.push(
      `{"tokenIds":[${ids.join(',')}],"at":${at.toFixed(3)},"ended":[${ended.join(',')}]${extra}}`,
    );
    ids = [];
    ended = [];
    changed = [];
    count = 0;
    at = Infinity;
  };
  for (const d of batch) {
    if (d.count === 0 && d.changed === '') continue;
    if (count > 0 && count + d.count > max) flush();
    if (d.count > 0) ids.push(d.tokenIds);
    if (d.ended !== '') ended.push(d.ended);
    if (d.changed !== '') changed.push(d.changed);
    count += d.count;
    at = Math.min(at, d.at);
  }
  flush();
  return messages;
}

export interface InvalidationBatcherOptions {
  /** Sends one message (a PUBLISH on the command connection). */
  readonly publish: (message: string) => Promise<unknown>;
  readonly onError: (err: unknown, what: string) => void;
  readonly maxIdsPerMessage?: number;
  /** Milliseconds a batch gathers at most. @default MAX_BATCH_DELAY_MS */
  readonly maxDelay?: number;
}

/**
 * How long a batch gathers the messages of a storm's commits at most: small next to
 * `cache.maxStaleness` (the bound on a lost message).
 */
export const MAX_BATCH_DELAY_MS = 10;

/**
 * Ending commits closer than this (or overlapping) are a storm. Short enough that revocations one
 * after the other, each waiting for a login or a request in between (bench/revocation.ts), publish
 * their own; long enough to catch an admin's calls arriving back to back.
 */
export const STORM_GAP_MS = 1;

/** A batched message's PUBLISH is tried this often at most, RETRY_AFTER_MS apart. */
const PUBLISH_ATTEMPTS = 3;
const RETRY_AFTER_MS = 100;

/** Decides which commits publish in their script, and publishes the others' messages batched. */
export class InvalidationBatcher {
  readonly #o: InvalidationBatcherOptions;
  readonly #max: number;
  readonly #delay: number;
  /** Commits that end sessions, sent and not answered yet. */
  #ending = 0;
  /** When the last of them was sent (performance.now()). */
  #lastBegin = -Infinity;
  /** A storm's commits are batched until then (performance.now()). */
  #stormUntil = -Infinity;
  #pending: DeferredInvalidation[] = [];
  #pendingIds = 0;
  #timer: NodeJS.Timeout | undefined;
  #due = false;
  #inflight: Promise<void> | undefined;
  /** Messages whose PUBLISH failed, with the attempts made. */
  #retries: { readonly message: string; readonly attempts: number }[] = [];

  constructor(options: InvalidationBatcherOptions) {
    this.#o = options;
    this.#max = options.maxIdsPerMessage ?? MAX_IDS_PER_MESSAGE;
    this.#delay = options.maxDelay ?? MAX_BATCH_DELAY_MS;
  }

  /**
   * A commit that ends sessions is about to be sent. True: no other is in flight, none was sent
   * within STORM_GAP_MS and no storm is on, so its script publishes: no added latency. False: a storm,
   * so its message joins the others'. Pair with `finish`.
   */
  begin(): boolean {
    const now = performance.now();
    const alone = this.#ending === 0 && now - this.#lastBegin >= STORM_GAP_MS && now >= this.#stormUntil;
    // A storm lasts until MAX_BATCH_DELAY_MS pass without an ending commit, so its pauses (a collection,
    // a slow reply) do not split it into lone publications.
    if (!alone) this.#stormUntil = now + this.#delay;
    this.#lastBegin = now;
    this.#ending++;
    return alone;
  }

  /** The commit of `begin` is answered (before its message, if any, is `add`ed). */
  finish(): void {
    this.#ending--;
  }

  /**
   * A committed invalidation to publish with the next batch: once the batch is full, or
   * MAX_BATCH_DELAY_MS after its first invalidation.
   */
  add(d: DeferredInvalidation): void {
    this.#pending.push(d);
    this.#pendingIds += d.count;
    if (this.#pendingIds >= this.#max) this.#flushSoon();
    else this.#timer ??= setTimeout(() => this.#flushSoon(), this.#delay);
  }

  /** Publishes what is pending and resolves when no PUBLISH is in flight (closing). */
  async drain(): Promise<void> {
    while (this.#inflight !== undefined || this.#pending.length > 0 || this.#retries.length > 0) {
      if (this.#inflight === undefined) this.#flush();
      await this.#inflight;
    }
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /**
   * After the replies that arrived in the same read (setImmediate), or once the PUBLISHes in flight are
   * answered, whichever is later: at most one round of PUBLISHes in flight.
   */
  #flushSoon(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#due) return;
    this.#due = true;
    if (this.#inflight === undefined) setImmediate(() => this.#flush());
  }

  #flush(): void {
    this.#due = false;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const batch = this.#pending;
    this.#pending = [];
    this.#pendingIds = 0;
    const messages = [
      ...this.#retries,
      ...packInvalidations(batch, this.#max).map((message) => ({ message, attempts: 0 })),
    ];
    this.#retries = [];
    if (messages.length === 0) return;
    this.#inflight = Promise.all(
      messages.map(({ message, attempts }) =>
        this.#o.publish(message).catch((err: unknown) => {
          // Unlike a script's PUBLISH, this one can fail on its own (a timeout, the connection
          // reconnecting): tried again a few times, then left to cache.maxStaleness.
          if (attempts + 1 < PUBLISH_ATTEMPTS) this.#retries.push({ message, attempts: attempts + 1 });
          else this.#o.onError(err, 'invalidation publish');
        }),
      ),
    ).then(() => {
      this.#inflight = undefined;
      if (this.#retries.length > 0) this.#timer ??= setTimeout(() => this.#flushSoon(), RETRY_AFTER_MS);
      if (this.#due) setImmediate(() => this.#flush());
    });
  }
}
