import { StoreConflictError } from '../errors.js';
import type { SeatStore, SessionStore, StoreHealth } from './contract.js';
import { MemorySeats } from './memory-seats.js';
import { MemoryHistory } from './memory-history.js';
import type {
  Invalidation,
  InvalidationListener,
  SessionChange,
  SessionCommit,
  SessionRecord,
  TokenLookup,
  UserSessions,
} from '../model.js';

export interface MemoryStoreOptions {
  /** Epoch-millisecond clock; tests inject one. @default Date.now */
  now?: () => number;
  /** How often expired records are swept. @default 60_000 */
  sweepInterval?: number;
  /**
   * How long a session stays readable after its expiresAt, so a token that comes back after the
   * session's maximum age still learns "expired" rather than "unknown". @default 0
   */
  retention?: number;
  /**
   * How long the token ids of a session stay dead after its expiresAt, once its record is dropped
   * (`find` answers `dead`). @default 0
   */
  tombstoneRetention?: number;
  /** Anonymous token ids remembered at most (the oldest are forgotten first). @default 100000 */
  maxAnonymous?: number;
}

const HEALTHY: StoreHealth = Object.freeze({ commands: true, channel: true });

/** Where a token id belongs; `expiresAt` is its session's, so the tombstone outlives the record. */
interface TokenRef {
  readonly user: string;
  readonly sessionId: string;
  readonly expiresAt: number;
}

interface UserEntry {
  version: number;
  /** Every session of the user not yet past its expiresAt, live or ended (tombstones). */
  sessions: Map<string, SessionRecord>;
}

/**
 * The embedded store: one replica, nothing to run. Same contract as the Redis store; everything expires
 * at the session's `expiresAt`, so memory stays bounded by the sessions of the last `maxAge`.
 */
export class MemorySessionStore implements SessionStore {
  readonly kind = 'memory' as const;
  readonly seats: SeatStore = new MemorySeats();
  readonly history = new MemoryHistory();
  readonly #users = new Map<string, UserEntry>();
  readonly #tokens = new Map<string, TokenRef>();
  /**
   * Token ids of dropped sessions -> when they are forgotten: one number per id, so a tombstone costs
   * about 120 bytes of heap with its 43-character id (measured at 200,000, Node 20) where a record
   * costs kilobytes. Bounded by the ids of sessions of the last maxAge + tombstoneRetention.
   */
  readonly #dead = new Map<string, number>();
  readonly #tombstoneRetention: number;
  readonly #listeners = new Set<InvalidationListener>();
  readonly #now: () => number;
  readonly #sweeper: NodeJS.Timeout;
  readonly #retention: number;
  /** tokenId -> when it stops being remembered; insertion order is age order. */
  readonly #anonymous = new Map<string, number>();
  readonly #maxAnonymous: number;
  /** Single-use markers (`markUsed`) -> when they are forgotten; insertion order is age order. */
  readonly #used = new Map<string, number>();

  constructor(options: MemoryStoreOptions = {}) {
    this.#now = options.now ?? Date.now;
    this.#retention = options.retention ?? 0;
    this.#tombstoneRetention = options.tombstoneRetention ?? 0;
    this.#maxAnonymous = options.maxAnonymous ?? 100_000;
    this.#sweeper = setInterval(() => this.sweep(), options.sweepInterval ?? 60_000);
    this.#sweeper.unref();
  }

  async readUser(user: string): Promise<UserSessions> {
    const entry = this.#users.get(user);
    if (!entry) return { user, version: 0, live: [] };
    const now = this.#now();
    const live = [...entry.sessions.values()].filter(
      (s) => s.state === 'live' && s.expiresAt + this.#retention > now,
    );
    return { user, version: entry.version, live };
  }

  async commit(change: SessionCommit): Promise<void> {
    let entry = this.#users.get(change.user);
    const version = entry?.version ?? 0;
    if (version !== change.expectedVersion) throw new StoreConflictError(change.user);
    if (!entry) {
      entry = { version: 0, sessions: new Map() };
      this.#users.set(change.user, entry);
    }
    const invalidated: string[] = [];
    const ended: SessionRecord[] = [];
    for (const end of change.end) {
      const s = entry.sessions.get(end.sessionId);
      if (!s || s.state !== 'live') continue;
      const record: SessionRecord = {
        ...s,
        state: end.state,
        endedAt: change.at,
        ...(end.endedBy ? { endedBy: end.endedBy } : {}),
      };
      entry.sessions.set(s.id, record);
      invalidated.push(...s.tokenIds);
      if (s.tokenIds.length > 0) ended.push(record);
    }
    const changed: SessionChange[] = [];
    for (const w of change.warn ?? []) {
      const s = entry.sessions.get(w.sessionId);
      if (!s || s.state !== 'live') continue;
      const { warning: _previous, ...unmarked } = s;
      entry.sessions.set(s.id, w.warning === null ? unmarked : { ...unmarked, warning: w.warning });
      changed.push({ sessionId: s.id, tokenIds: s.tokenIds });
    }
    if (change.create) {
      entry.sessions.set(change.create.id, change.create);
      const ref = { user: change.user, sessionId: change.create.id, expiresAt: change.create.expiresAt };
      for (const t of change.create.tokenIds) {
        this.#tokens.set(t, ref);
        this.#dead.delete(t);
        this.#anonymous.delete(t);
      }
    }
    entry.version = version + 1;
    if (invalidated.length > 0 || changed.length > 0)
      this.#publish({
        tokenIds: invalidated,
        ...(ended.length > 0 ? { ended } : {}),
        ...(changed.length > 0 ? { changed } : {}),
      });
  }

  async find(tokenId: string): Promise<TokenLookup | 'anonymous' | 'dead' | undefined> {
    const now = this.#now();
    const ref = this.#tokens.get(tokenId);
    if (ref !== undefined) {
      const session = this.#users.get(ref.user)?.sessions.get(ref.sessionId);
      if (session && session.expiresAt + this.#retention > now) return { tokenId, session };
      // The record is over (swept or not yet): the id is a tombstone until its own end.
      return ref.expiresAt + this.#tombstoneRetention > now ? 'dead' : undefined;
    }
    const dead = this.#dead.get(tokenId);
    if (dead !== undefined) {
      if (dead > now) return 'dead';
      this.#dead.delete(tokenId);
      return undefined;
    }
    const until = this.#anonymous.get(tokenId);
    if (until === undefined) return undefined;
    if (until > this.#now()) return 'anonymous';
    this.#anonymous.delete(tokenId);
    return undefined;
  }

  async rememberAnonymous(tokenIds: readonly string[], ttl: number): Promise<void> {
    const until = this.#now() + ttl;
    for (const t of tokenIds) {
      if (this.#tokens.has(t) || this.#dead.has(t)) continue;
      this.#anonymous.delete(t);
      this.#anonymous.set(t, until);
      if (this.#anonymous.size > this.#maxAnonymous) {
        const oldest = this.#anonymous.keys().next().value;
        if (oldest !== undefined) this.#anonymous.delete(oldest);
      }
    }
  }

  async markUsed(key: string, ttl: number): Promise<boolean> {
    // Checked and set with no await between: two concurrent calls cannot both win.
    if (this.#usedNow(key)) return false;
    this.#used.set(key, this.#now() + ttl);
    // Bounded like the anonymous ids: a flood of markers forgets the oldest first.
    if (this.#used.size > this.#maxAnonymous) {
      const oldest = this.#used.keys().next().value;
      if (oldest !== undefined) this.#used.delete(oldest);
    }
    return true;
  }

  async isUsed(key: string): Promise<boolean> {
    return this.#usedNow(key);
  }

  #usedNow(key: string): boolean {
    const until = this.#used.get(key);
    if (until === undefined) return false;
    if (until > this.#now()) return true;
    this.#used.delete(key);
    return false;
  }

  async lookup(tokenId: string): Promise<TokenLookup | undefined> {
    const ref = this.#tokens.get(tokenId);
    if (!ref) return undefined;
    const session = this.#users.get(ref.user)?.sessions.get(ref.sessionId);
    if (!session || session.expiresAt + this.#retention <= this.#now()) return undefined;
    return { tokenId, session };
  }

  async addTokens(
    user: string,
    sessionId: string,
    tokenIds: readonly string[],
    maxTokens: number,
    pinned = 0,
  ): Promise<SessionRecord | undefined> {
    const entry = this.#users.get(user);
    const s = entry?.sessions.get(sessionId);
    if (!entry || !s || s.state !== 'live' || s.expiresAt <= this.#now()) return undefined;
    const fresh = [...new Set(tokenIds)];
    const kept = keptTokens(s.tokenIds, fresh, maxTokens, pinned);
    const ref = { user, sessionId, expiresAt: s.expiresAt };
    for (const t of fresh) {
      this.#tokens.set(t, ref);
      this.#dead.delete(t);
      this.#anonymous.delete(t);
    }
    // Dropped ids keep their index entry: they stay the session's until it expires (dead stays dead).
    const updated = { ...s, tokenIds: kept };
    entry.sessions.set(sessionId, updated);
    return updated;
  }

  async touch(user: string, sessionId: string, at: number): Promise<void> {
    const entry = this.#users.get(user);
    const s = entry?.sessions.get(sessionId);
    if (entry && s && s.state === 'live' && s.expiresAt > this.#now() && at > s.lastSeenAt) {
      entry.sessions.set(sessionId, { ...s, lastSeenAt: at });
    }
  }

  watch(listener: InvalidationListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  isAvailable(): boolean {
    return true;
  }

  /** In-process: always answers, and there is no other replica to hear from. */
  health(): StoreHealth {
    return HEALTHY;
  }

  async close(): Promise<void> {
    clearInterval(this.#sweeper);
    this.#listeners.clear();
  }

  /** Drops sessions (and their token index entries) past their expiresAt, and forgotten anonymous ids. */
  sweep(): void {
    const now = this.#now();
    for (const [user, entry] of this.#users) {
      for (const [id, s] of entry.sessions) {
        if (s.expiresAt + this.#retention > now) continue;
        entry.sessions.delete(id);
      }
      if (entry.sessions.size === 0) this.#users.delete(user);
    }
    // Index entries of dropped (rotated-out) ids are not listed by their session: one pass over all.
    // Each becomes a tombstone until its session's expiresAt + tombstoneRetention.
    for (const [t, ref] of this.#tokens) {
      if (this.#users.get(ref.user)?.sessions.has(ref.sessionId)) continue;
      this.#tokens.delete(t);
      const until = ref.expiresAt + this.#tombstoneRetention;
      if (until > now) this.#dead.set(t, until);
    }
    for (const [t, until] of this.#dead) if (until <= now) this.#dead.delete(t);
    for (const [t, until] of this.#anonymous) if (until <= now) this.#anonymous.delete(t);
    this.history.sweep(now);
    for (const [k, until] of this.#used) if (until <= now) this.#used.delete(k);
  }

  /**
   * One pass over the records: O(sessions kept), about a millisecond per 100,000; the session service
   * caches the answer for a few seconds, so a scrape does not pay it every time.
   */
  async countLive(): Promise<number> {
    const now = this.#now();
    let n = 0;
    for (const e of this.#users.values())
      for (const s of e.sessions.values()) if (s.state === 'live' && s.expiresAt > now) n++;
    return n;
  }

  /** Counts kept for tests: users, sessions (live and ended), indexed token ids, dead token ids. */
  size(): { users: number; sessions: number; tokens: number; dead: number } {
    let sessions = 0;
    for (const e of this.#users.values()) sessions += e.sessions.size;
    return { users: this.#users.size, sessions, tokens: this.#tokens.size, dead: this.#dead.size };
  }

  /** Counts of remembered anonymous ids, for tests. */
  anonymousSize(): number {
    return this.#anonymous.size;
  }

  #publish(message: Invalidation): void {
    for (const l of this.#listeners) l.onInvalidate(message);
  }
}

/**
 * The token list after adding `fresh`: the first `pinned` (issued by the login) always stay, then the
 * newest `maxTokens` of the others.
 */
export function keptTokens(
  current: readonly string[],
  fresh: readonly string[],
  maxTokens: number,
  pinned: number,
): string[] {
  const head = current.slice(0, pinned);
  const rotated = [
    ...current.slice(pinned).filter((t) => !fresh.includes(t)),
    ...fresh.filter((t) => !head.includes(t)),
  ];
  return [...head, ...rotated.slice(Math.max(0, rotated.length - maxTokens))];
}
