import { LRUCache } from 'lru-cache';
import type { CommandConnection } from './redis-connection.js';
import { AGENT } from './redis-scripts.js';

/** Distinct User-Agents a replica remembers: browsers in use number in the hundreds to thousands. */
const REMEMBERED = 4_096;

/**
 * The User-Agent texts of the Redis store (`a:<ref>` keys, see redis-scripts.ts), each stored once for
 * every session that has it, with a memo of what this replica wrote and read: a login writes its
 * User-Agent's key only when the memo does not know it to live long enough, and a read of a record
 * reads the key only when the memo lacks its text. The memo is only ever behind Redis: it is updated
 * after a reply.
 */
export class RedisUserAgents {
  readonly #conn: CommandConnection;
  readonly #keyOf: (ref: string) => string;
  /** A key's TTL is set this far past what a session needs, so the logins that follow leave it. */
  readonly #slack: number;
  readonly #texts = new LRUCache<string, string>({ max: REMEMBERED });
  /** Until when (the store's clock) each key is known to live. */
  readonly #known = new LRUCache<string, number>({ max: REMEMBERED });

  constructor(conn: CommandConnection, keyOf: (ref: string) => string, slack: number) {
    this.#conn = conn;
    this.#keyOf = keyOf;
    this.#slack = slack;
  }

  /**
   * Makes `text`, under `ref`, live until `until` at least; undefined (no command) when the memo knows it
   * does. Sent before the commit of the record that refers to it, on the same connection.
   */
  write(ref: string, text: string, until: number, now: number): Promise<void> | undefined {
    if ((this.#known.get(ref) ?? 0) >= until) return undefined;
    const reach = until + this.#slack;
    const px = String(Math.ceil(reach - now));
    return this.#conn
      .call('userAgent', () => this.#conn.run(AGENT, [this.#keyOf(ref)], [text, px]))
      .then(() => {
        this.#known.set(ref, Math.max(reach, this.#known.get(ref) ?? 0));
        this.#texts.set(ref, text);
      });
  }

  /** The texts of `refs` (from the memo, else one MGET, or a GET each on a Cluster); a missing key is left out. */
  async read(refs: Iterable<string>): Promise<ReadonlyMap<string, string>> {
    const out = new Map<string, string>();
    const missing: string[] = [];
    for (const ref of refs) {
      if (out.has(ref) || missing.includes(ref)) continue;
      const text = this.#texts.get(ref);
      if (text === undefined) missing.push(ref);
      else out.set(ref, text);
    }
    if (missing.length === 0) return out;
    const keys = missing.map((ref) => this.#keyOf(ref));
    const client = this.#conn.client;
    const values = await this.#conn.call('userAgent', () =>
      this.#conn.cluster ? Promise.all(keys.map((k) => client.get(k))) : client.mget(...keys),
    );
    missing.forEach((ref, i) => {
      const text = values[i];
      if (typeof text !== 'string') return;
      this.#texts.set(ref, text);
      out.set(ref, text);
    });
    return out;
  }
}
