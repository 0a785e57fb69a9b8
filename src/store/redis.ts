import { StoreConflictError, StoreUnavailableError } from '../errors.js';
import type { LoginHistoryStore, SeatStore, SessionStore, StoreHealth } from './contract.js';
import { RedisSeats } from './redis-seats.js';
import { RedisHistory } from './redis-history.js';
import type {
  InvalidationListener,
  SessionCommit,
  SessionRecord,
  TokenLookup,
  UserSessions,
} from '../model.js';
import {
  INDEX_BUCKETS,
  agentRefOf,
  decodeIndexValue,
  decodeSession,
  decodeStatus,
  encodeAnonymous,
  encodeEnd,
  encodeSession,
  encodeSessionId,
  encodeTokenRef,
  encodeTokens,
  encodeWarning,
  indexSlot,
  readChunks,
  sessionKey,
  userTag,
  type IndexSlot,
  type SessionStatus,
} from './redis-codec.js';
import { RedisUserAgents } from './redis-agents.js';
import { CommandConnection, type RedisConnectionOptions } from './redis-connection.js';
import { ADD_LIVE, ADD_TOKENS, COMMIT, COUNT_LIVE, INDEX, SCRIPTS, TOUCH } from './redis-scripts.js';
import { InvalidationSubscriber, publicationClock } from './redis-subscriber.js';
import { InvalidationBatcher } from './redis-publisher.js';

/**
 * The key layout's version, in every key name after the prefix: a release that changes the layout
 * bumps it, so it never reads an older release's keys as its own (see redis-scripts.ts).
 */
const LAYOUT = 'v4:';

/**
 * A token index bucket's TTL is set this far past the end its entries need, so the writes of the next
 * ten minutes leave it as it is (one PEXPIRE per bucket and replica every ten minutes, not one per
 * login); dead entries outlive their end by at most as long (see INDEX_PRUNE_MS), unread.
 */
export const INDEX_SLACK_MS = 600_000;

/** How often at most a replica's write to a bucket of the token index prunes its dead entries. */
export const INDEX_PRUNE_MS = 600_000;

/**
 * Width of a bucket of the live-session count: sessions are counted by the minute of their expiresAt,
 * so those expiring within the current minute are not counted any more (see `countLive`).
 */
export const LIVE_BUCKET_MS = 60_000;

/** How often at most a replica sends its live-session deltas (one script per batch, not per login). */
export const LIVE_FLUSH_MS = 1_000;

/** Chunks of each chunked field `find` asks for at once (a 3-token list, a long User-Agent fit). */
const FIND_CHUNKS = 4;

/** The names of a chunked field's first `n` chunks (`<name>`, `<name>1`, ...). */
function chunkNames(name: string, n: number): string[] {
  return Array.from({ length: n }, (_, i) => (i === 0 ? name : `${name}${i}`));
}

export interface RedisStoreOptions extends RedisConnectionOptions {
  /** Prefix of every key and of the channel. @default sg: */
  readonly keyPrefix?: string;
  /** Epoch-millisecond clock of the records (and of the TTLs, relative to it). @default Date.now */
  readonly now?: () => number;
  /**
   * Milliseconds a session stays readable by token after its expiresAt (and its keys stay in Redis),
   * so a token that comes back late still learns why it is dead. Same as the memory store's. @default 0
   */
  readonly retention?: number;
  /**
   * Milliseconds the token ids of a session stay dead after its expiresAt (their index keys outlive the
   * record as tombstones; `find` answers `dead`). Same as the memory store's. @default 0
   */
  readonly tombstoneRetention?: number;
  /** The invalidation channel was lost (messages may be missed) or restored (resubscribed). */
  readonly onChannel?: (state: 'lost' | 'restored') => void;
  /** One invalidation message received; `lagMs` since its publication (publisher's clock) when known. */
  readonly onInvalidation?: (lagMs: number | undefined) => void;
}

/**
 * The Redis session store (standalone, Sentinel or Cluster): the operations of the SessionStore
 * contract over one command connection (redis-connection.ts), the record codec (redis-codec.ts), the
 * scripts (redis-scripts.ts, where the key layout is described) and one invalidation subscriber
 * (redis-subscriber.ts). Besides a user's hash, the token index's buckets `<prefix>v4:t:<bucket>` map
 * each token id to `<tag>\n<session key>\n<expiresAt>`, `<prefix>v4:live` counts live sessions, and
 * `<prefix>invalidate` is the invalidation channel (its messages did not change with the layout).
 *
 * Tombstones: the index entry of a token id ends at its session's expiresAt plus the index life (the
 * longer of the retention and `tombstoneRetention`), whatever becomes of the session (it cannot be
 * rewritten when the session ends: rotated-out ids are not listed anywhere, and they live in other
 * slots). Once the record is gone, the entry alone says the id is dead: `find` answers `dead` from the
 * expiresAt it carries. An entry costs about 72 bytes of Redis memory while its hash is a listpack
 * (up to 128 entries, 8 million in all), 123 once it is a hashtable (bench/results/manual-experiments.md),
 * so 30 days of tombstones at 10 logins a second (26 million, one token each) is about 3.2 GB; lower
 * `sessions.tombstoneRetention`, or raise Redis's hash-max-listpack-entries, where that matters.
 *
 * Redis 7.0 has no TTL per hash field, so each replica keeps two memos per bucket (512 KiB each): how
 * long it knows the bucket's TTL reaches (it extends the TTL only past that, INDEX_SLACK_MS ahead), and
 * when it last pruned the bucket's dead entries (INDEX_PRUNE_MS, counted from its start). A TTL memo
 * is only ever behind Redis: a replica that starts reads each bucket's TTL once as it writes it, and
 * TTLs only grow (a script compares PTTL first). A bucket deleted behind the store's back (FLUSHALL)
 * is recreated by the next write without a TTL until a replica's memo runs out; its entries are still
 * pruned.
 */
export class RedisSessionStore implements SessionStore {
  readonly kind = 'redis' as const;
  readonly seats: SeatStore;
  readonly history: LoginHistoryStore;
  readonly #conn: CommandConnection;
  readonly #prefix: string;
  readonly #channel: string;
  readonly #now: () => number;
  readonly #retention: number;
  readonly #tombstoneRetention: number;
  /** How long an index entry outlives its session's expiresAt: the longer retention. */
  readonly #indexLife: number;
  /** Per bucket of the token index: the time (our clock) its TTL is known to reach. */
  readonly #bucketKnown = new Float64Array(INDEX_BUCKETS);
  /** Per bucket of the token index: when this replica last pruned it. */
  readonly #bucketPruned = new Float64Array(INDEX_BUCKETS);
  readonly #agents: RedisUserAgents;
  /** Counts live sessions by expiry bucket (see ADD_LIVE): kept off the login's commands. */
  readonly #liveKey: string;
  /** Live sessions gained (+) and lost (-) per bucket since the last batch was sent. */
  #liveDeltas = new Map<number, number>();
  #liveTimer: NodeJS.Timeout | undefined;
  /** The batch being sent, if any: one at a time, in order. */
  #liveSending: Promise<void> = Promise.resolve();
  readonly #onError: (err: unknown, what: string) => void;
  readonly #subscriber: InvalidationSubscriber;
  /** Messages of commits that ended sessions while others did (a mass revocation), batched. */
  readonly #batcher: InvalidationBatcher;
  readonly #listeners = new Set<InvalidationListener>();
  #closing: Promise<void> | undefined;

  constructor(options: RedisStoreOptions) {
    this.#prefix = options.keyPrefix ?? 'sg:';
    this.#channel = `${this.#prefix}invalidate`;
    this.#now = options.now ?? Date.now;
    this.#retention = options.retention ?? 0;
    this.#tombstoneRetention = options.tombstoneRetention ?? 0;
    this.#indexLife = Math.max(this.#retention, this.#tombstoneRetention);
    // As if every bucket had just been pruned: a replica that starts (all of them, after a deploy) does
    // not read every bucket it writes at once; dead entries wait at most INDEX_PRUNE_MS more, unread.
    this.#bucketPruned.fill(this.#now());
    this.#liveKey = `${this.#prefix}${LAYOUT}live`;
    this.#onError = options.onError ?? (() => {});
    this.#conn = new CommandConnection(options, SCRIPTS);
    this.#agents = new RedisUserAgents(
      this.#conn,
      (ref) => `${this.#prefix}${LAYOUT}a:${ref}`,
      INDEX_SLACK_MS,
    );
    this.#batcher = new InvalidationBatcher({
      publish: (message) =>
        this.#conn.call('publish', () => this.#conn.client.publish(this.#channel, message)),
      onError: (err, what) => this.#onError(err, what),
    });
    this.seats = new RedisSeats(this.#conn.client, this.#prefix, (what, fn) => this.#conn.call(what, fn));
    this.history = new RedisHistory(
      this.#conn.client,
      (user) => `${this.#prefix}${LAYOUT}h:{${userTag(user)}}`,
      (what, fn) => this.#conn.call(what, fn),
      this.#now,
    );

    const onChannel = options.onChannel ?? (() => {});
    const onInvalidation = options.onInvalidation ?? (() => {});
    this.#subscriber = new InvalidationSubscriber({
      connect: this.#conn.connectSubscriber,
      channel: this.#channel,
      pingInterval: options.pingInterval ?? 1_000,
      onMessage: (m, at) => {
        this.#each((l) => l.onInvalidate(m));
        // After the listeners: the lag is until this replica refuses the tokens, not until it read them.
        onInvalidation(at === undefined ? undefined : publicationClock() - at);
      },
      onLost: () => {
        onChannel('lost');
        this.#each((l) => l.onChannelLost());
      },
      onRestored: () => {
        onChannel('restored');
        this.#each((l) => l.onChannelRestored());
      },
      onError: (err, what) => this.#onError(err, what),
    });
  }

  /** One HGETALL of the user's hash: no script, and the policy gets every live record at once. */
  async readUser(user: string): Promise<UserSessions> {
    const h = this.#userKey(userTag(user));
    const fields = await this.#conn.call('readUser', () => this.#conn.client.hgetall(h));
    const now = this.#now();
    const candidates: [string, SessionStatus][] = [];
    for (const [field, value] of Object.entries(fields)) {
      // Status fields: the 11-byte session key, then `s`.
      if (field.length !== 12 || !field.endsWith('s')) continue;
      const status = decodeStatus(value);
      if (status?.state === 'live') candidates.push([field.slice(0, 11), status]);
    }
    const agents = await this.#agentsOf(
      fields,
      candidates.map(([key]) => key),
    );
    const live: SessionRecord[] = [];
    for (const [key, status] of candidates) {
      const s = this.#decode(fields, key, status.state, status.lastSeenAt, status.expiresAt, agents);
      // Not ended yet, though perhaps past its expiresAt: the caller ends it as expired.
      if (s && s.user === user && s.expiresAt + this.#retention > now) live.push(s);
    }
    live.sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return { user, version: Number(fields.v?.split(' ')[0] ?? 0), live };
  }

  /** The User-Agent texts the records of `keys` refer to (see redis-agents.ts). */
  #agentsOf(
    fields: Readonly<Record<string, string>>,
    keys: readonly string[],
  ): Promise<ReadonlyMap<string, string>> {
    const refs: string[] = [];
    for (const key of keys) {
      const ref = agentRefOf(readChunks(fields, `${key}b`));
      if (ref !== undefined) refs.push(ref);
    }
    return this.#agents.read(refs);
  }

  /** A session of a user's hash fields (as HGETALL, or the names `find` reads, gives them). */
  #decode(
    fields: Readonly<Record<string, string>>,
    key: string,
    state: string,
    lastSeenAt: string,
    expiresAt: number,
    agents: ReadonlyMap<string, string>,
  ): SessionRecord | undefined {
    return decodeSession(
      {
        sid: fields[`${key}i`],
        user: fields.u,
        base: readChunks(fields, `${key}b`),
        state,
        lastSeenAt,
        expiresAt,
        end: readChunks(fields, `${key}e`),
        tokens: readChunks(fields, `${key}t`),
        warning: readChunks(fields, `${key}w`),
      },
      agents,
    );
  }

  /**
   * One round trip: the commit script writes the index keys of the new token ids with the session.
   * On a Cluster they live in other slots, so they are written first and the script runs after:
   * commit returns only after both, so a token can never be handed to a client (the login response
   * waits for commit) before its index exists; and no committed session ever lists a token without an
   * index key. An index key whose commit then fails (conflict, crash) points to a session that does not
   * exist or does not list the token: lookup verifies that and answers undefined, and the key expires
   * with the session it was written for.
   */
  async commit(change: SessionCommit): Promise<void> {
    const tag = userTag(change.user);
    const now = this.#now();
    const create = change.create;
    // args[1], the publication stamp, is set as the script is sent (the index write comes first).
    const args: string[] = [String(change.expectedVersion), '', this.#horizon(now), this.#channel];
    const keys = [this.#userKey(tag)];
    let index = '';
    let want = 0;
    let agentWritten: Promise<void> | undefined;
    const slots: IndexSlot[] = [];
    if (create) {
      const s = encodeSession(create);
      want = create.expiresAt + this.#indexLife;
      // On a Cluster the index entries (other slots) are written before the script; elsewhere by it.
      if (want > now) {
        const value = encodeTokenRef(tag, s.key, create.expiresAt);
        const created = create.tokenIds.map(indexSlot);
        if (this.#conn.cluster)
          await this.#conn.call('commit', () => this.#writeIndex(created, value, false, want, now));
        else {
          index = value;
          slots.push(...created);
        }
      }
      // Pipelined ahead of the script on the same connection (on a Cluster, sent at the same time), so
      // the commit waits for no extra round trip; one that fails only leaves the User-Agent unknown.
      const until = create.expiresAt + this.#retention;
      if (s.agent && until > now)
        agentWritten = this.#agents
          .write(s.agent.ref, s.agent.text, until, now)
          ?.catch((err: unknown) => this.#onError(err, 'user agent'));
      args.push('1', s.key, s.sid, s.base, s.state, s.lastSeenAt, s.expiresAt, s.tokens);
    } else {
      args.push('0', '', '', '', '', '', '', '');
    }
    args.push(JSON.stringify(change.user), index, String(now), String(this.#indexLife), String(want));
    args.push(String(INDEX_SLACK_MS), String(slots.length));
    for (const slot of slots) {
      keys.push(this.#bucketKey(slot));
      args.push(...this.#entryArgs(slot, now));
    }
    for (const end of change.end)
      args.push(
        sessionKey(end.sessionId),
        encodeSessionId(end.sessionId),
        end.state,
        encodeEnd(change.at, end.endedBy),
      );
    for (const w of change.warn ?? [])
      args.push(sessionKey(w.sessionId), encodeSessionId(w.sessionId), 'w', encodeWarning(w.warning));
    // A commit that ends sessions while others do leaves its message to the batcher (redis-publisher.ts).
    const ending = change.end.length > 0;
    if (ending && !this.#batcher.begin()) args[3] = '';
    let reply: unknown;
    try {
      reply = await this.#conn.call('commit', () => {
        args[1] = publicationClock().toFixed(3);
        return this.#conn.run(COMMIT, keys, args);
      });
    } finally {
      if (ending) this.#batcher.finish();
      await agentWritten;
    }
    if (!Array.isArray(reply) || reply[0] !== 1) throw new StoreConflictError(change.user);
    this.#noteIndex(slots, want, now);
    const [, , count, tokenIds, ended, changed] = reply as unknown[];
    if (Number(count) > 0 || (changed !== undefined && String(changed) !== ''))
      this.#batcher.add({
        count: Number(count),
        tokenIds: String(tokenIds),
        ended: String(ended),
        changed: String(changed ?? ''),
        at: Number(args[1]),
      });
    if (create?.state === 'live') this.#countLiveDelta(create.expiresAt, 1);
    for (const expiresAt of (reply as unknown[]).slice(6)) this.#countLiveDelta(Number(expiresAt), -1);
  }

  /** One session more or fewer in its expiry bucket, sent with the next batch (LIVE_FLUSH_MS). */
  #countLiveDelta(expiresAt: number, delta: number): void {
    const bucket = Math.floor(expiresAt / LIVE_BUCKET_MS);
    const n = (this.#liveDeltas.get(bucket) ?? 0) + delta;
    if (n === 0) this.#liveDeltas.delete(bucket);
    else this.#liveDeltas.set(bucket, n);
    if (this.#liveDeltas.size > 0 && this.#liveTimer === undefined) {
      this.#liveTimer = setTimeout(() => {
        this.#liveTimer = undefined;
        this.#sendLive().catch((err: unknown) => this.#onError(err, 'live session count'));
      }, LIVE_FLUSH_MS);
      // A pending batch never keeps the process alive; close() sends it.
      this.#liveTimer.unref();
    }
  }

  /**
   * Sends the pending deltas as one ADD_LIVE, after the batch before it. A batch that fails is merged
   * back and sent with the next one: the map holds one entry per bucket at most (maxAge / bucket), so
   * an outage costs bounded memory; the count lags by the deltas not sent yet.
   */
  #sendLive(): Promise<void> {
    const sent = this.#liveSending.then(async () => {
      clearTimeout(this.#liveTimer);
      this.#liveTimer = undefined;
      const now = this.#now();
      const current = Math.floor(now / LIVE_BUCKET_MS);
      const batch = [...this.#liveDeltas].filter(([bucket]) => bucket > current);
      this.#liveDeltas = new Map();
      if (batch.length === 0) return;
      const args = [String(current), String(now), String(LIVE_BUCKET_MS)];
      for (const [bucket, delta] of batch) args.push(String(bucket), String(delta));
      try {
        await this.#conn.call('countLive', () => this.#conn.run(ADD_LIVE, [this.#liveKey], args));
      } catch (err) {
        for (const [bucket, delta] of batch) this.#countLiveDelta(bucket * LIVE_BUCKET_MS, delta);
        throw err;
      }
    });
    // The next batch waits for this one whether it failed or not.
    this.#liveSending = sent.catch(() => {});
    return sent;
  }

  /**
   * This replica's pending deltas are sent first, so the answer includes its own commits; other
   * replicas' commits of the last LIVE_FLUSH_MS may be missing (see the contract).
   */
  async countLive(): Promise<number> {
    await this.#sendLive();
    const current = Math.floor(this.#now() / LIVE_BUCKET_MS);
    const n = await this.#conn.call('countLive', () =>
      this.#conn.run(COUNT_LIVE, [this.#liveKey], [String(current)]),
    );
    // Deltas lost with a replica that died before sending them can leave the sum below zero.
    return Math.max(0, Number(n));
  }

  async lookup(tokenId: string): Promise<TokenLookup | undefined> {
    const found = await this.find(tokenId);
    return found === 'anonymous' || found === 'dead' ? undefined : found;
  }

  async find(tokenId: string): Promise<TokenLookup | 'anonymous' | 'dead' | undefined> {
    const slot = indexSlot(tokenId);
    const value = await this.#conn.call('lookup', () =>
      this.#conn.client.hget(this.#bucketKey(slot), slot.field),
    );
    if (value === null) return undefined;
    const entry = decodeIndexValue(value);
    if (entry === undefined) return undefined;
    // An entry past its end reads as absent, as the key of a version 3 index had expired by then.
    if ('anonymousUntil' in entry) return this.#now() < entry.anonymousUntil ? 'anonymous' : undefined;
    // Its record is gone (the bucket's prune shortened the entry): dead, as the record's absence says below.
    if ('tombstoneFrom' in entry) return this.#tombstone(entry.tombstoneFrom, this.#now());
    const { key, expiresAt } = entry;
    if (this.#now() >= expiresAt + this.#indexLife) return undefined;
    const h = this.#userKey(entry.tag);
    const names = ['u', `${key}i`, `${key}s`];
    for (const f of ['b', 'e', 't', 'w']) names.push(...chunkNames(`${key}${f}`, FIND_CHUNKS));
    const values = await this.#conn.call('lookup', () => this.#conn.client.hmget(h, ...names));
    const fields: Record<string, string> = {};
    names.forEach((name, i) => {
      const v = values[i];
      if (v !== null && v !== undefined) fields[name] = v;
    });
    // A value longer than FIND_CHUNKS chunks (many rotated tokens, a long User-Agent): the rest.
    for (const f of ['b', 'e', 't', 'w']) {
      const name = `${key}${f}`;
      for (let i = FIND_CHUNKS; fields[`${name}${i - 1}`] !== undefined; i++) {
        const more = await this.#conn.call('lookup', () => this.#conn.client.hget(h, `${name}${i}`));
        if (more === null) break;
        fields[`${name}${i}`] = more;
      }
    }
    const now = this.#now();
    const status = decodeStatus(fields[`${key}s`]);
    // One whose token fell out of the session's list (rotation) is still the session's: dead stays dead.
    const agents = status ? await this.#agentsOf(fields, [key]) : new Map<string, string>();
    const session =
      status && this.#decode(fields, key, status.state, status.lastSeenAt, status.expiresAt, agents);
    if (session && session.expiresAt + this.#retention > now) return { tokenId, session };
    // No record (any more): past its session's expiresAt the id is a tombstone until its own end. Before
    // that, the key was left by a commit that failed and names a session that never existed: unknown.
    return this.#tombstone(session?.expiresAt ?? expiresAt, now);
  }

  /** A token id of a session that ended by `expiresAt`, with no record left: dead for the tombstone retention. */
  #tombstone(expiresAt: number, now: number): 'dead' | undefined {
    if (now < expiresAt) return undefined;
    return now < expiresAt + this.#tombstoneRetention ? 'dead' : undefined;
  }

  async rememberAnonymous(tokenIds: readonly string[], ttl: number): Promise<void> {
    const px = Math.ceil(ttl);
    if (px <= 0 || tokenIds.length === 0) return;
    const now = this.#now();
    // Written only where no entry means anything: an id that belongs to a session is never made anonymous.
    await this.#conn.call('rememberAnonymous', () =>
      this.#writeIndex(tokenIds.map(indexSlot), encodeAnonymous(now + px), true, now + px, now),
    );
  }

  /** SET NX PX: one command, atomic on every replica's Redis (a plain key: any Cluster slot will do). */
  async markUsed(key: string, ttl: number): Promise<boolean> {
    const px = Math.max(1, Math.ceil(ttl));
    const reply = await this.#conn.call('markUsed', () =>
      this.#conn.client.set(this.#usedKey(key), '1', 'PX', px, 'NX'),
    );
    return reply === 'OK';
  }

  async isUsed(key: string): Promise<boolean> {
    const n = await this.#conn.call('isUsed', () => this.#conn.client.exists(this.#usedKey(key)));
    return n === 1;
  }

  async addTokens(
    user: string,
    sessionId: string,
    tokenIds: readonly string[],
    maxTokens: number,
    pinned = 0,
  ): Promise<SessionRecord | undefined> {
    const tag = userTag(user);
    const h = this.#userKey(tag);
    const key = sessionKey(sessionId);
    const keys = [h];
    const slots = tokenIds.map(indexSlot);
    if (this.#conn.cluster) {
      // The index entries live in other slots: written first (commit's ordering), with the session's
      // expiresAt, read first (it never changes).
      const status = decodeStatus(
        await this.#conn.call('addTokens', () => this.#conn.client.hget(h, `${key}s`)),
      );
      if (status?.state !== 'live') return undefined;
      const now = this.#now();
      const want = status.expiresAt + this.#indexLife;
      const value = encodeTokenRef(tag, key, status.expiresAt);
      if (want > now)
        await this.#conn.call('addTokens', () => this.#writeIndex(slots, value, false, want, now));
    }
    const now = this.#now();
    const args = [
      key,
      String(maxTokens),
      String(now),
      this.#horizon(now),
      encodeTokens(tokenIds),
      String(pinned),
      tag,
      String(this.#indexLife),
      String(INDEX_SLACK_MS),
    ];
    if (!this.#conn.cluster)
      for (const slot of slots) {
        keys.push(this.#bucketKey(slot));
        args.push(...this.#entryArgs(slot, now));
      }
    const reply = await this.#conn.call('addTokens', () => this.#conn.run(ADD_TOKENS, keys, args));
    if (!Array.isArray(reply)) return undefined;
    const f = reply as string[];
    if (!this.#conn.cluster) this.#noteIndex(slots, Number(f[5]) + this.#indexLife, now);
    const ref = agentRefOf(f[2]);
    const agents = ref === undefined ? new Map<string, string>() : await this.#agents.read([ref]);
    return decodeSession(
      {
        sid: f[0],
        user: f[1],
        base: f[2],
        state: f[3],
        lastSeenAt: f[4],
        expiresAt: Number(f[5]),
        end: '',
        tokens: f[6],
        warning: f[7],
      },
      agents,
    );
  }

  async touch(user: string, sessionId: string, at: number): Promise<void> {
    const h = this.#userKey(userTag(user));
    await this.#conn.call('touch', () =>
      this.#conn.run(TOUCH, [h], [sessionKey(sessionId), String(at), String(this.#now())]),
    );
  }

  /** Listeners share the store's one subscriber connection. */
  watch(listener: InvalidationListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  isAvailable(): boolean {
    return this.#conn.isAvailable() && this.#closing === undefined;
  }

  /**
   * Commands: connected and no command timed out since the last success (a paused Redis keeps the
   * connection "ready" while every command times out). Channel: subscribed, last PING answered.
   */
  health(): StoreHealth {
    const channel = this.#subscriber.isUp();
    const failure = this.#conn.commandFailure;
    const commands = this.isAvailable() && failure === undefined;
    if (commands && channel) return { commands, channel };
    const reason =
      this.#closing !== undefined
        ? 'redis store is closed'
        : !this.#conn.isAvailable()
          ? 'redis command connection is down'
          : failure !== undefined
            ? `redis commands are not answered (${failure})`
            : 'invalidation channel is down';
    return { commands, channel, reason };
  }

  /** True while the invalidation channel is subscribed (and its last PING was answered in time). */
  isWatching(): boolean {
    return this.#subscriber.isUp();
  }

  /**
   * Resolves once the command connection is ready and the invalidation channel subscribed (startup,
   * tests); rejects with StoreUnavailableError after `timeout` milliseconds.
   */
  async ready(timeout = 10_000): Promise<void> {
    const deadline = Date.now() + timeout;
    while (!(this.isAvailable() && this.#subscriber.isUp())) {
      if (this.#closing !== undefined) throw new StoreUnavailableError('redis store is closed');
      if (Date.now() >= deadline) throw new StoreUnavailableError('redis store not ready in time');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  /** Quits both connections; later calls fail with StoreUnavailableError. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    // Batched messages of commits already answered still go out, and their live-session deltas.
    await this.#batcher.drain();
    await this.#sendLive().catch((err: unknown) => this.#onError(err, 'live session count'));
    clearTimeout(this.#liveTimer);
    this.#listeners.clear();
    this.#subscriber.close();
    await this.#conn.close();
  }

  /** The user's one hash; the tag in braces keeps it in its own Cluster slot. */
  #userKey(tag: string): string {
    return `${this.#prefix}${LAYOUT}u:{${tag}}`;
  }

  #usedKey(key: string): string {
    return `${this.#prefix}${LAYOUT}used:${key}`;
  }

  #bucketKey(slot: IndexSlot): string {
    return `${this.#prefix}${LAYOUT}t:${slot.bucket}`;
  }

  /** An entry's field and what the memos say of its bucket: known (its TTL's reach), prune ('1' when due). */
  #entryArgs(slot: IndexSlot, now: number): [string, string, string] {
    const due = now - (this.#bucketPruned[slot.n] ?? 0) >= INDEX_PRUNE_MS;
    return [slot.field, String(this.#bucketKnown[slot.n] ?? 0), due ? '1' : ''];
  }

  /**
   * After the scripts wrote entries lasting until `want`: what they did to the buckets' TTLs and
   * prunes (only then: a memo must never be ahead of Redis).
   */
  #noteIndex(slots: readonly IndexSlot[], want: number, now: number): void {
    for (const { n } of slots) {
      if (want > (this.#bucketKnown[n] ?? 0)) this.#bucketKnown[n] = want + INDEX_SLACK_MS;
      if (now - (this.#bucketPruned[n] ?? 0) >= INDEX_PRUNE_MS) this.#bucketPruned[n] = now;
    }
  }

  /** Records whose expiresAt is at or before this are gone (see redis-scripts.ts). */
  #horizon(now: number): string {
    return String(now - this.#retention);
  }

  /**
   * One INDEX per bucket (buckets live in different slots, so no one script can write them all): the
   * entries of `slots`, each `value`, lasting until `want`.
   */
  async #writeIndex(
    slots: readonly IndexSlot[],
    value: string,
    anonymous: boolean,
    want: number,
    now: number,
  ): Promise<void> {
    const buckets = new Map<string, IndexSlot[]>();
    for (const slot of slots) {
      const same = buckets.get(slot.bucket);
      if (same) same.push(slot);
      else buckets.set(slot.bucket, [slot]);
    }
    await Promise.all(
      [...buckets.values()].map(async (group) => {
        const [first] = group as [IndexSlot];
        const [, known, prune] = this.#entryArgs(first, now);
        const args = [anonymous ? '1' : '', String(now), String(this.#indexLife), String(want)];
        args.push(known, String(INDEX_SLACK_MS), prune, this.#horizon(now));
        for (const slot of group) args.push(slot.field, value);
        await this.#conn.run(INDEX, [this.#bucketKey(first)], args);
        this.#noteIndex([first], want, now);
      }),
    );
  }

  #each(fn: (l: InvalidationListener) => void): void {
    for (const l of [...this.#listeners]) {
      try {
        fn(l);
      } catch (err) {
        this.#onError(err, 'listener');
      }
    }
  }
}

/** Builds the Redis store; connections open at once and reconnect on their own. */
export function createRedisStore(options: RedisStoreOptions): RedisSessionStore {
  return new RedisSessionStore(options);
}
