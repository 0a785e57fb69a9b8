import { createHash } from 'node:crypto';
import { Cluster, Redis } from 'ioredis';
import type { ClusterOptions, RedisOptions } from 'ioredis';
import { ConfigError, SessiongateError, StoreConflictError, StoreUnavailableError } from '../errors.js';
import type { SeatStore, SessionStore, StoreHealth } from './contract.js';
import { RedisSeats } from './redis-seats.js';
import type {
  EndedBy,
  Invalidation,
  InvalidationListener,
  SessionCommit,
  SessionRecord,
  SessionState,
  TokenLookup,
  UserSessions,
} from '../model.js';
import {
  ADD_TOKENS,
  COMMIT,
  COUNT_LIVE,
  LIVE_EXPIRY,
  READ_USER,
  SCRIPTS,
  TOUCH,
  TRACK_LIVE,
  type LuaScript,
} from './redis-scripts.js';

export interface RedisStoreOptions {
  /** `redis://` or `rediss://` URL. Ignored when `sentinels` or `cluster` is set. */
  readonly url?: string;
  /** Sentinel addresses (`host:port`), with `sentinelName`. */
  readonly sentinels?: readonly string[];
  /** The Sentinel master name. @default mymaster */
  readonly sentinelName?: string;
  /** Cluster seed nodes (`host:port`). */
  readonly cluster?: readonly string[];
  readonly password?: string;
  /** Prefix of every key and of the channel. @default sg: */
  readonly keyPrefix?: string;
  /** Milliseconds a request-path command may take before it fails. @default 250 */
  readonly commandTimeout?: number;
  /** Milliseconds between subscriber PINGs; an unanswered PING counts as a disconnect. @default 1000 */
  readonly pingInterval?: number;
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
  /** Connection-level problems (command failures are thrown to the caller instead). */
  readonly onError?: (err: unknown, what: string) => void;
  /** The command connection became usable (true) or not (false). */
  readonly onStateChange?: (available: boolean) => void;
  /** The invalidation channel was lost (messages may be missed) or restored (resubscribed). */
  readonly onChannel?: (state: 'lost' | 'restored') => void;
  /** One invalidation message received; `lagMs` since its publication (publisher's clock) when known. */
  readonly onInvalidation?: (lagMs: number | undefined) => void;
}

type Client = Redis | Cluster;

/** Longest wait between reconnect attempts (command and subscriber connections). */
const MAX_BACKOFF = 2_000;
/**
 * The index key's value for an anonymous token id (a session's is `<tag>\n<sid>\n<expiresAt>`, or
 * `<tag>\n<sid>` as written before tombstones).
 */
const ANONYMOUS = 'a';
/** Consecutive command timeouts after which the command connection is presumed half-open. */
const TIMEOUTS_BEFORE_RECONNECT = 3;
const STATES: ReadonlySet<string> = new Set<SessionState>([
  'live',
  'superseded',
  'logged_out',
  'expired',
  'ended_by_user',
  'ended_by_admin',
]);

function backoff(attempt: number): number {
  return Math.min(50 * 2 ** Math.min(attempt, 10), MAX_BACKOFF);
}

/** `host:port` or `[v6]:port`. */
function parseAddress(address: string): { host: string; port: number } {
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(address.trim());
  if (!m || !m[1])
    throw new ConfigError([{ path: 'store', message: `expected host:port, got "${address}"` }]);
  return { host: m[1], port: Number(m[2]) };
}

/**
 * The hash tag of a user: sha256 of the user's UTF-16 code units (lossless for any JS string, lone
 * surrogates included, unlike UTF-8), hex, 128 bits. Hex cannot contain `}` or a newline, so no user
 * string can break the tag or land in another user's slot.
 */
function userTag(user: string): string {
  return createHash('sha256').update(Buffer.from(user, 'utf16le')).digest('hex').slice(0, 32);
}

/** One stored token id per line; JSON never contains a raw newline. */
function encodeTokens(tokenIds: readonly string[]): string {
  return tokenIds.map((t) => JSON.stringify(t)).join('\n');
}

function decodeTokens(lines: string): string[] {
  return lines === '' ? [] : (JSON.parse(`[${lines.split('\n').join(',')}]`) as string[]);
}

/** Rebuilds a record from its stored parts (see redis-scripts.ts for the layout). */
function assemble(
  base: string | null | undefined,
  state: string | null | undefined,
  lastSeenAt: string | null | undefined,
  end: string | null | undefined,
  tokens: string | null | undefined,
): SessionRecord | undefined {
  if (!base || !state || !STATES.has(state)) return undefined;
  const fixed = JSON.parse(base) as Omit<SessionRecord, 'state' | 'lastSeenAt' | 'tokenIds'>;
  const ended = end ? (JSON.parse(end) as { endedAt?: number; endedBy?: EndedBy }) : {};
  return {
    ...fixed,
    ...ended,
    state: state as SessionState,
    lastSeenAt: Number(lastSeenAt),
    tokenIds: decodeTokens(tokens ?? ''),
  };
}

/**
 * The ended sessions an invalidation message carries (see COMMIT's `publish`), or undefined when it
 * carries none or any of them is malformed: the message is then applied as a plain invalidation.
 */
function endedRecords(value: unknown): SessionRecord[] | undefined {
  if (!Array.isArray(value)) return undefined;
  const out: SessionRecord[] = [];
  for (const item of value as unknown[]) {
    if (typeof item !== 'object' || item === null) return undefined;
    const { b, s, e, l, t } = item as { b?: unknown; s?: unknown; e?: unknown; l?: unknown; t?: unknown };
    if (typeof b !== 'object' || b === null || typeof e !== 'object' || e === null) return undefined;
    if (typeof s !== 'string' || s === 'live' || !STATES.has(s) || typeof l !== 'number') return undefined;
    if (!Array.isArray(t) || !t.every((x) => typeof x === 'string')) return undefined;
    const fixed = b as Partial<SessionRecord>;
    if (typeof fixed.id !== 'string' || typeof fixed.user !== 'string' || typeof fixed.expiresAt !== 'number')
      return undefined;
    out.push({
      ...(b as Omit<SessionRecord, 'state' | 'lastSeenAt' | 'tokenIds'>),
      ...(e as { endedAt?: number; endedBy?: EndedBy }),
      state: s as SessionState,
      lastSeenAt: l,
      tokenIds: t as string[],
    });
  }
  return out;
}

/**
 * The time stamped on invalidation messages and compared with on receipt: wall-clock milliseconds with
 * sub-millisecond precision (Date.now() alone made the lag histogram's 0.25-1 ms buckets guesswork).
 * Real time, not the injectable clock: it measures the channel, not session time.
 */
function publicationClock(): number {
  return performance.timeOrigin + performance.now();
}

function isInvalidation(value: unknown): value is Invalidation {
  return (
    typeof value === 'object' &&
    value !== null &&
    Array.isArray((value as { tokenIds?: unknown }).tokenIds) &&
    (value as { tokenIds: unknown[] }).tokenIds.every((t) => typeof t === 'string')
  );
}

/** A command that `defineCommand` added to the client: the number of keys, the keys, the arguments. */
type ScriptCommand = (this: Client, numberOfKeys: number, ...keysAndArgs: string[]) => Promise<unknown>;

function isScriptCommand(value: unknown): value is ScriptCommand {
  return typeof value === 'function';
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * The Redis session store (standalone, Sentinel or Cluster). See redis-scripts.ts for the key layout of
 * a user; besides those, `<prefix>t:<tokenId>` maps a token id to `<tag>\n<sid>\n<expiresAt>`,
 * `<prefix>live` counts live sessions, and `<prefix>invalidate` is the invalidation channel.
 *
 * Tombstones: the index key of a token id expires at its session's expiresAt plus the longer of the
 * retention and `tombstoneRetention`, whatever becomes of the session (it cannot be rewritten when the
 * session ends: rotated-out ids are not listed anywhere, and they live in other slots). Once the record
 * is gone, the key alone says the id is dead: `find` answers `dead` from the expiresAt it carries. One
 * such key costs about 260 bytes of Redis memory (MEMORY USAGE 200 bytes for a 43-character token id
 * under prefix `sg:`; used_memory grows 261 bytes a key at 100,000 keys with a TTL, Redis 7.0), so 30
 * days of tombstones at 10 logins a second (one token each) is about 6.7 GB; lower
 * `sessions.tombstoneRetention` where that matters.
 *
 * The request-path connection never queues (`enableOfflineQueue: false`), times out every command and
 * never resends one after a disconnect, so an unreachable Redis is a fast StoreUnavailableError. It
 * reconnects forever with capped backoff.
 */
export class RedisSessionStore implements SessionStore {
  readonly kind = 'redis' as const;
  readonly seats: SeatStore;
  readonly #client: Client;
  readonly #prefix: string;
  readonly #channel: string;
  readonly #now: () => number;
  readonly #retention: number;
  readonly #tombstoneRetention: number;
  /** Counts live sessions; on a Cluster, COMMIT cannot reach it (another slot), see TRACK_LIVE. */
  readonly #liveKey: string;
  readonly #cluster: boolean;
  readonly #onError: (err: unknown, what: string) => void;
  readonly #onStateChange: (available: boolean) => void;
  readonly #subscriber: InvalidationSubscriber;
  readonly #listeners = new Set<InvalidationListener>();
  #available = false;
  #timeouts = 0;
  /** Set by a command timeout, cleared by the next success: the connection is up but not answering. */
  #commandFailure: string | undefined;
  /** PINGs the command connection while `#commandFailure` is set (see `#armProbe`). */
  #probeTimer: NodeJS.Timeout | undefined;
  readonly #pingInterval: number;
  #closing: Promise<void> | undefined;

  constructor(options: RedisStoreOptions) {
    this.#prefix = options.keyPrefix ?? 'sg:';
    this.#channel = `${this.#prefix}invalidate`;
    this.#now = options.now ?? Date.now;
    this.#retention = options.retention ?? 0;
    this.#tombstoneRetention = options.tombstoneRetention ?? 0;
    this.#liveKey = `${this.#prefix}live`;
    this.#cluster = options.cluster !== undefined && options.cluster.length > 0;
    this.#onError = options.onError ?? (() => {});
    this.#onStateChange = options.onStateChange ?? (() => {});
    const commandTimeout = options.commandTimeout ?? 250;
    const pingInterval = options.pingInterval ?? 1_000;
    this.#pingInterval = pingInterval;

    const requestPath: RedisOptions = {
      ...(options.password !== undefined ? { password: options.password } : {}),
      enableOfflineQueue: false,
      commandTimeout,
      // A command in flight when the connection drops fails at once and is never resent: a resent
      // commit could apply twice (the compare-and-set would reject it, but as a spurious conflict).
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      connectTimeout: Math.max(1_000, 4 * commandTimeout),
      retryStrategy: (attempt: number) => backoff(attempt),
      // After a Sentinel failover the old master answers writes with READONLY: reconnect to the new one.
      reconnectOnError: (err: Error) => err.message.startsWith('READONLY'),
      // ioredis's 2 s disconnect timer is cleared only by a socket close that a refused connection
      // already had: close() must not keep the process alive that long.
      disconnectTimeout: 0,
    };
    const subscriberBase: RedisOptions = {
      ...(options.password !== undefined ? { password: options.password } : {}),
      disconnectTimeout: 0,
      lazyConnect: true,
      // The subscriber manages its own reconnects, resubscription and liveness (see InvalidationSubscriber).
      retryStrategy: () => null,
      autoResubscribe: false,
      enableReadyCheck: false,
      maxRetriesPerRequest: 0,
      connectTimeout: Math.max(1_000, pingInterval),
    };

    let connectSubscriber: () => Redis;
    if (options.cluster && options.cluster.length > 0) {
      const seeds = options.cluster.map(parseAddress);
      const { reconnectOnError: _r, retryStrategy: _s, ...nodeOptions } = requestPath;
      const clusterOptions: ClusterOptions = {
        enableOfflineQueue: false,
        scaleReads: 'master',
        clusterRetryStrategy: (attempt: number) => backoff(attempt),
        redisOptions: nodeOptions,
      };
      const cluster = new Cluster(seeds, clusterOptions);
      this.#client = cluster;
      // Classic PUBLISH reaches every node of a Cluster, so one plain connection to any master is
      // enough; each new attempt takes the next known master, so a dead node is not retried forever.
      let next = 0;
      connectSubscriber = () => {
        const known = cluster.nodes('master').map((n) => ({ host: n.options.host, port: n.options.port }));
        const candidates = known.length > 0 ? known : seeds;
        const target = candidates[next++ % candidates.length] ?? seeds[0];
        return new Redis({ ...subscriberBase, ...target });
      };
    } else if (options.sentinels && options.sentinels.length > 0) {
      const sentinel: RedisOptions = {
        sentinels: options.sentinels.map(parseAddress),
        name: options.sentinelName ?? 'mymaster',
        role: 'master',
      };
      // failoverDetector: reconnect as soon as a Sentinel announces +switch-master.
      this.#client = new Redis({ ...requestPath, ...sentinel, failoverDetector: true });
      connectSubscriber = () => new Redis({ ...subscriberBase, ...sentinel });
    } else if (options.url) {
      const url = options.url;
      this.#client = new Redis(url, requestPath);
      connectSubscriber = () => new Redis(url, subscriberBase);
    } else {
      throw new ConfigError([{ path: 'store', message: 'expected url, sentinels or cluster' }]);
    }
    // ioredis keeps track, per connection (so per Cluster node), of which scripts it has sent: EVAL the
    // first time and after a NOSCRIPT (SCRIPT FLUSH, a failover to a fresh replica), EVALSHA otherwise.
    // No numberOfKeys: #run passes it first, as COMMIT takes 3 or 4 keys.
    for (const script of SCRIPTS) this.#client.defineCommand(script.name, { lua: script.source });
    this.seats = new RedisSeats(this.#client, this.#prefix, (what, fn) => this.#call(what, fn));

    this.#client.on('error', (err: unknown) => this.#onError(err, 'connection'));
    this.#client.on('ready', () => {
      // A fresh connection answered its ready check: whatever timed out before is behind us.
      this.#commandFailure = undefined;
      this.#setAvailable(true);
    });
    for (const event of ['close', 'end', 'reconnecting'])
      this.#client.on(event, () => this.#setAvailable(false));

    const onChannel = options.onChannel ?? (() => {});
    const onInvalidation = options.onInvalidation ?? (() => {});
    this.#subscriber = new InvalidationSubscriber({
      connect: connectSubscriber,
      channel: this.#channel,
      pingInterval,
      onMessage: (m, at) => {
        onInvalidation(at === undefined ? undefined : publicationClock() - at);
        this.#each((l) => l.onInvalidate(m));
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

  async readUser(user: string): Promise<UserSessions> {
    const k = this.#userKeys(userTag(user));
    const reply = await this.#call('readUser', () => this.#run(READ_USER, [k.sessions, k.live], []));
    const parts = reply as string[];
    const now = this.#now();
    const live: SessionRecord[] = [];
    for (let i = 1; i + 2 < parts.length; i += 3) {
      const s = assemble(parts[i], 'live', parts[i + 1], '', parts[i + 2]);
      // Not ended yet, though perhaps past its expiresAt: the caller ends it as expired.
      if (s && s.user === user && s.expiresAt + this.#retention > now) live.push(s);
    }
    live.sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return { user, version: Number(parts[0] ?? 0), live };
  }

  /**
   * Index first, then the commit script. The index keys (another slot) are written before the script
   * runs and commit returns only after both, so a token can never be handed to a client (the login
   * response waits for commit) before its index exists; and no committed session ever lists a token
   * without an index key. An index key whose commit then fails (conflict, crash) points to a session
   * that does not exist or does not list the token: lookup verifies that and answers undefined, and
   * the key expires with the session it was written for.
   */
  async commit(change: SessionCommit): Promise<void> {
    const tag = userTag(change.user);
    const k = this.#userKeys(tag);
    const now = this.#now();
    const create = change.create;
    // args[1], the publication stamp, is set as the script is sent (the index write comes first).
    const args: string[] = [String(change.expectedVersion), '', this.#horizon(now), this.#channel];
    const keys = [k.sessions, k.expiry, k.live];
    if (!this.#cluster) keys.push(this.#liveKey);
    if (create) {
      const sid = JSON.stringify(create.id);
      await this.#call('commit', () => this.#writeIndex(create.tokenIds, tag, sid, create.expiresAt, now));
      const { state, lastSeenAt, tokenIds, ...fixed } = create;
      args.push(
        '1',
        sid,
        JSON.stringify(fixed),
        state,
        String(lastSeenAt),
        String(create.expiresAt),
        encodeTokens(tokenIds),
      );
    } else {
      args.push('0', '', '', '', '', '', '');
    }
    args.push(tag, String(now));
    for (const end of change.end) {
      const patch = { endedAt: change.at, ...(end.endedBy ? { endedBy: end.endedBy } : {}) };
      args.push(JSON.stringify(end.sessionId), end.state, JSON.stringify(patch));
    }
    const reply = await this.#call('commit', () => {
      args[1] = publicationClock().toFixed(3);
      return this.#run(COMMIT, keys, args);
    });
    if (!Array.isArray(reply) || reply[0] !== 1) throw new StoreConflictError(change.user);
    if (this.#cluster) await this.#trackLive(tag, create, (reply as unknown[]).slice(2).map(String), now);
  }

  /**
   * Cluster only: the commit is applied, so this never fails it. A failure here (the zset's node
   * unreachable) leaves the count off for that session until its expiresAt at most, and is reported.
   */
  async #trackLive(
    tag: string,
    create: SessionRecord | undefined,
    ended: readonly string[],
    now: number,
  ): Promise<void> {
    const added = create?.state === 'live' ? `${tag}\n${JSON.stringify(create.id)}` : '';
    if (added === '' && ended.length === 0) return;
    const args = [
      String(now),
      added,
      String(create?.expiresAt ?? 0),
      ...ended.map((sid) => `${tag}\n${sid}`),
    ];
    try {
      await this.#call('trackLive', () => this.#run(TRACK_LIVE, [this.#liveKey], args));
    } catch (err) {
      this.#onError(err, 'live session count');
    }
  }

  async countLive(): Promise<number> {
    const n = await this.#call('countLive', () =>
      this.#run(COUNT_LIVE, [this.#liveKey], [String(this.#now())]),
    );
    return Number(n);
  }

  async lookup(tokenId: string): Promise<TokenLookup | undefined> {
    const found = await this.find(tokenId);
    return found === 'anonymous' || found === 'dead' ? undefined : found;
  }

  async find(tokenId: string): Promise<TokenLookup | 'anonymous' | 'dead' | undefined> {
    const ref = await this.#call('lookup', () => this.#client.get(this.#indexKey(tokenId)));
    if (ref === null) return undefined;
    if (ref === ANONYMOUS) return 'anonymous';
    // `<tag>\n<sid>\n<expiresAt>`: neither the hex tag nor the JSON sid contains a raw newline.
    const [tag, sid, end] = ref.split('\n');
    if (tag === undefined || sid === undefined) return undefined;
    const expiresAt = end === undefined ? undefined : Number(end);
    const k = this.#userKeys(tag);
    const f = await this.#call('lookup', () =>
      this.#client.hmget(k.sessions, `b|${sid}`, `s|${sid}`, `l|${sid}`, `e|${sid}`, `t|${sid}`),
    );
    const now = this.#now();
    // One whose token fell out of the session's list (rotation) is still the session's: dead stays dead.
    const session = assemble(f[0], f[1], f[2], f[3], f[4]);
    if (session && session.expiresAt + this.#retention > now) return { tokenId, session };
    // No record (any more): past its session's expiresAt the id is a tombstone until its own end. Before
    // that, the key was left by a commit that failed and names a session that never existed: unknown.
    const until = session?.expiresAt ?? expiresAt;
    if (until === undefined || !Number.isFinite(until) || now < until) return undefined;
    return now < until + this.#tombstoneRetention ? 'dead' : undefined;
  }

  async rememberAnonymous(tokenIds: readonly string[], ttl: number): Promise<void> {
    const px = Math.ceil(ttl);
    if (px <= 0 || tokenIds.length === 0) return;
    // NX: an id that belongs to a session is never made anonymous.
    await this.#call('rememberAnonymous', () =>
      Promise.all(tokenIds.map((t) => this.#client.set(this.#indexKey(t), ANONYMOUS, 'PX', px, 'NX'))),
    );
  }

  async addTokens(
    user: string,
    sessionId: string,
    tokenIds: readonly string[],
    maxTokens: number,
    pinned = 0,
  ): Promise<SessionRecord | undefined> {
    const tag = userTag(user);
    const k = this.#userKeys(tag);
    const sid = JSON.stringify(sessionId);
    const keys = [k.sessions, k.expiry, k.live];
    // Same ordering as commit: the new index keys exist before the session lists the tokens. Their TTL
    // is the session's expiresAt, read first (it never changes).
    const expiresAt = await this.#call('addTokens', () => this.#run(LIVE_EXPIRY, keys, [sid]));
    if (typeof expiresAt !== 'string') return undefined;
    const now = this.#now();
    await this.#call('addTokens', () => this.#writeIndex(tokenIds, tag, sid, Number(expiresAt), now));
    const args = [
      sid,
      String(maxTokens),
      String(now),
      this.#horizon(now),
      this.#channel,
      encodeTokens(tokenIds),
      publicationClock().toFixed(3),
      String(pinned),
    ];
    const reply = await this.#call('addTokens', () => this.#run(ADD_TOKENS, keys, args));
    if (!Array.isArray(reply)) return undefined;
    const f = reply as string[];
    return assemble(f[0], f[1], f[2], f[3], f[4]);
  }

  async touch(user: string, sessionId: string, at: number): Promise<void> {
    const k = this.#userKeys(userTag(user));
    await this.#call('touch', () =>
      this.#run(
        TOUCH,
        [k.sessions, k.expiry, k.live],
        [JSON.stringify(sessionId), String(at), String(this.#now())],
      ),
    );
  }

  /** Listeners share the store's one subscriber connection. */
  watch(listener: InvalidationListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  isAvailable(): boolean {
    return this.#available && this.#closing === undefined;
  }

  /**
   * Commands: connected and no command timed out since the last success (a paused Redis keeps the
   * connection "ready" while every command times out). Channel: subscribed, last PING answered.
   */
  health(): StoreHealth {
    const channel = this.#subscriber.isUp();
    const commands = this.isAvailable() && this.#commandFailure === undefined;
    if (commands && channel) return { commands, channel };
    const reason =
      this.#closing !== undefined
        ? 'redis store is closed'
        : !this.#available
          ? 'redis command connection is down'
          : this.#commandFailure !== undefined
            ? `redis commands are not answered (${this.#commandFailure})`
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
    clearTimeout(this.#probeTimer);
    this.#listeners.clear();
    this.#subscriber.close();
    try {
      // QUIT lets in-flight replies arrive; it is a command, so commandTimeout bounds it.
      if (this.#client.status === 'ready') await this.#client.quit();
    } catch {
      // Already gone or not answering; disconnect below stops any reconnect timer.
    }
    this.#client.disconnect();
    this.#setAvailable(false);
  }

  #userKeys(tag: string): { sessions: string; expiry: string; live: string } {
    const base = `${this.#prefix}{u:${tag}}:`;
    return { sessions: `${base}sessions`, expiry: `${base}expiry`, live: `${base}live` };
  }

  #indexKey(tokenId: string): string {
    return `${this.#prefix}t:${tokenId}`;
  }

  /** Records whose expiresAt is at or before this are gone (see redis-scripts.ts). */
  #horizon(now: number): string {
    return String(now - this.#retention);
  }

  /**
   * One SET per token id: they live in different slots, so neither a script nor MULTI can group them.
   * Each expires with its session's tombstone (see the class comment), and carries its expiresAt.
   */
  async #writeIndex(
    tokenIds: readonly string[],
    tag: string,
    sid: string,
    expiresAt: number,
    now: number,
  ): Promise<void> {
    const ttl = expiresAt + Math.max(this.#retention, this.#tombstoneRetention) - now;
    if (ttl <= 0 || tokenIds.length === 0) return;
    const px = Math.ceil(ttl);
    const value = `${tag}\n${sid}\n${expiresAt}`;
    await Promise.all(tokenIds.map((t) => this.#client.set(this.#indexKey(t), value, 'PX', px)));
  }

  /**
   * Runs a script the constructor defined on the client. ioredis's types know only its built-in
   * commands, so this is the one place that looks a defined command up by name.
   */
  #run(script: LuaScript, keys: readonly string[], args: readonly string[]): Promise<unknown> {
    const command: unknown = Reflect.get(this.#client, script.name);
    if (!isScriptCommand(command)) throw new Error(`script ${script.name} is not defined on the client`);
    return command.call(this.#client, keys.length, ...keys, ...args);
  }

  /** Runs one store operation; every Redis failure becomes a StoreUnavailableError with the cause. */
  async #call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (this.#closing !== undefined) throw new StoreUnavailableError('redis store is closed');
    try {
      const result = await fn();
      this.#timeouts = 0;
      this.#commandFailure = undefined;
      return result;
    } catch (err) {
      if (err instanceof SessiongateError) throw err;
      if (messageOf(err) === 'Command timed out') {
        this.#commandFailure = `${what} timed out`;
        this.#armProbe();
        this.#noteTimeout();
      }
      throw new StoreUnavailableError(`redis ${what} failed: ${messageOf(err)}`, { cause: err });
    }
  }

  /**
   * A connection that stops answering without closing (half-open TCP, a frozen peer) is never noticed
   * by ioredis: commands just time out, forever. Several timeouts in a row with no success between
   * them force a reconnect. (A Cluster client is left to its own topology refresh.)
   */
  #noteTimeout(): void {
    if (++this.#timeouts < TIMEOUTS_BEFORE_RECONNECT || !(this.#client instanceof Redis)) return;
    this.#timeouts = 0;
    this.#onError(new Error('repeated command timeouts; reconnecting'), 'connection');
    this.#client.disconnect(true);
  }

  /**
   * While commands are failing, PINGs the command connection every pingInterval until one is answered:
   * a gateway that readiness took out of rotation gets no requests, so without this nothing would
   * ever find out that Redis is back (and a half-open connection would never reach the reconnect).
   */
  #armProbe(): void {
    if (this.#probeTimer !== undefined || this.#closing !== undefined) return;
    this.#probeTimer = setTimeout(() => {
      this.#probeTimer = undefined;
      if (this.#commandFailure === undefined || this.#closing !== undefined) return;
      // Not connected: the 'ready' of the reconnect clears the failure; until then keep waiting.
      if (!this.#available) return this.#armProbe();
      this.#call('probe', () => this.#client.ping()).then(
        () => {},
        () => this.#armProbe(),
      );
    }, this.#pingInterval);
    this.#probeTimer.unref();
  }

  #setAvailable(available: boolean): void {
    if (this.#closing !== undefined && available) return;
    if (available === this.#available) return;
    this.#available = available;
    this.#onStateChange(available);
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

interface SubscriberOptions {
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
class InvalidationSubscriber {
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
    let parsed: unknown;
    try {
      parsed = JSON.parse(message);
    } catch (err) {
      this.#o.onError(err, 'invalidation message');
      return;
    }
    if (!isInvalidation(parsed)) {
      this.#o.onError(new Error('malformed invalidation message'), 'invalidation message');
      return;
    }
    const { at, ended } = parsed as { at?: unknown; ended?: unknown };
    const records = ended === undefined ? undefined : endedRecords(ended);
    if (ended !== undefined && records === undefined)
      this.#o.onError(
        new Error('malformed ended sessions in an invalidation message'),
        'invalidation message',
      );
    this.#o.onMessage(
      records === undefined ? { tokenIds: parsed.tokenIds } : { tokenIds: parsed.tokenIds, ended: records },
      typeof at === 'number' ? at : undefined,
    );
  }

  #clearTimers(): void {
    clearTimeout(this.#timer);
    clearTimeout(this.#deadline);
    this.#timer = undefined;
    this.#deadline = undefined;
  }
}

/** Builds the Redis store; connections open at once and reconnect on their own. */
export function createRedisStore(options: RedisStoreOptions): RedisSessionStore {
  return new RedisSessionStore(options);
}
