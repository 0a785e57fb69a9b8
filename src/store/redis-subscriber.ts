/**
 * The invalidation channel's subscriber: one connection per store, its own reconnects and liveness.
 */
import type { Redis } from 'ioredis';
import type { Invalidation } from '../model.js';
import { decodeMessage } from './redis-codec.js';
import { backoff } from './redis-connection.js';

/**
 * The time stamped on invalidation messages and compared with on receipt: wall-clock milliseconds with
 * sub-millisecond precision (Date.now() alone made the lag histogram's 0.25-1 ms buckets guesswork).
 * Real time, not the injectable clock: it measures the channel, not session time.
 */
export function publicationClock(): number {
  return performance.timeOrigin + performance.now();
}

export interface SubscriberOptions {
  /** A new, not yet connected (lazyConnect) connection for one attempt. */
  readonly connect: () => Redis;
  readonly channel: string;
  readonly pingInterval: number;
  /** `at`: the publisher's clock at publication, when the message carries it. */
  readonly onMessage: (m: Invalidation, at: number | undefined) => void;
  readonly onLost: () => void;
  readonly onRestored: () => void;
  readonly onError: (err: unknown, what: string) => void;
}

/**
 * The store's one subscriber connection. Each attempt is a fresh connection that must connect and
 * SUBSCRIBE within a deadline; once up it PINGs every `pingInterval` and a PING unanswered within
 * `pingInterval` counts as a disconnect, because a half-open TCP connection can look alive for
 * minutes while every message is lost. Any close, end, error or missed PING drops the connection,
 * reports the channel lost (once per outage) and starts a new attempt after capped backoff; a
 * successful SUBSCRIBE reports it restored. Reconnects are ours, not ioredis's, so that we know exactly
 * when the subscription is live again (and, on Cluster, can move to another node).
 */
export class InvalidationSubscriber {
  readonly #o: SubscriberOptions;
  #conn: Redis | undefined;
  /** Bumped per attempt; callbacks of an older attempt are ignored. */
  #generation = 0;
  #up = false;
  #attempt = 0;
  #closed = false;
  #timer: NodeJS.Timeout | undefined;
  #deadline: NodeJS.Timeout | undefined;

  constructor(options: SubscriberOptions) {
    this.#o = options;
    this.#open();
  }

  isUp(): boolean {
    return this.#up;
  }

  close(): void {
    this.#closed = true;
    this.#generation++;
    this.#clearTimers();
    const conn = this.#conn;
    this.#conn = undefined;
    this.#up = false;
    // No QUIT: a subscriber has nothing to flush, and a QUIT on a half-open connection would never
    // be answered (the subscriber has no command timeout).
    conn?.disconnect();
  }

  #open(): void {
    if (this.#closed) return;
    const generation = ++this.#generation;
    const conn = this.#o.connect();
    this.#conn = conn;
    conn.on('message', (channel: string, message: string) => {
      if (generation === this.#generation && channel === this.#o.channel) this.#deliver(message);
    });
    // An error listener stays attached for good: ioredis may emit after we dropped the connection.
    conn.on('error', (err: unknown) => this.#drop(generation, err));
    conn.on('close', () => this.#drop(generation, new Error('subscriber connection closed')));
    conn.on('end', () => this.#drop(generation, new Error('subscriber connection ended')));
    this.#arm(generation, Math.max(3 * this.#o.pingInterval, 2_000), 'connect and subscribe');
    conn
      .connect()
      .then(() => conn.subscribe(this.#o.channel))
      .then(
        () => {
          if (generation !== this.#generation) return;
          this.#clearTimers();
          this.#attempt = 0;
          this.#up = true;
          this.#o.onRestored();
          this.#schedulePing(generation);
        },
        (err: unknown) => this.#drop(generation, err),
      );
  }

  #schedulePing(generation: number): void {
    this.#timer = setTimeout(() => {
      const conn = this.#conn;
      if (generation !== this.#generation || !conn) return;
      this.#arm(generation, this.#o.pingInterval, 'PING');
      conn.ping().then(
        () => {
          if (generation !== this.#generation) return;
          clearTimeout(this.#deadline);
          this.#schedulePing(generation);
        },
        (err: unknown) => this.#drop(generation, err),
      );
    }, this.#o.pingInterval);
  }

  /** No reply within `ms`: the connection is treated as dead. */
  #arm(generation: number, ms: number, what: string): void {
    clearTimeout(this.#deadline);
    this.#deadline = setTimeout(
      () => this.#drop(generation, new Error(`subscriber ${what} not answered within ${ms}ms`)),
      ms,
    );
  }

  #drop(generation: number, reason: unknown): void {
    if (generation !== this.#generation || this.#closed) return;
    this.#generation++;
    this.#clearTimers();
    const conn = this.#conn;
    this.#conn = undefined;
    conn?.disconnect();
    this.#o.onError(reason, 'subscriber');
    if (this.#up) {
      this.#up = false;
      this.#o.onLost();
    }
    this.#timer = setTimeout(() => this.#open(), backoff(this.#attempt++));
  }

  #deliver(message: string): void {
    const decoded = decodeMessage(message);
    if (decoded.problem !== undefined) this.#o.onError(new Error(decoded.problem), 'invalidation message');
    if (decoded.invalidation !== undefined) this.#o.onMessage(decoded.invalidation, decoded.at);
  }

  #clearTimers(): void {
    clearTimeout(this.#timer);
    clearTimeout(this.#deadline);
    this.#timer = undefined;
    this.#deadline = undefined;
  }
}
