import { StoreConflictError } from '../errors.js';
import type { SessionStore } from './contract.js';
import type {
  Invalidation,
  InvalidationListener,
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
  readonly #users = new Map<string, UserEntry>();
  /** tokenId -> [user, sessionId] */
  readonly #tokens = new Map<string, { user: string; sessionId: string }>();
  readonly #listeners = new Set<InvalidationListener>();
  readonly #now: () => number;
  readonly #sweeper: NodeJS.Timeout;
  readonly #retention: number;

  constructor(options: MemoryStoreOptions = {}) {
    this.#now = options.now ?? Date.now;
    this.#retention = options.retention ?? 0;
    this.#sweeper = setInterval(() => this.sweep(), options.sweepInterval ?? 60_000);
    this.#sweeper.unref();
  }

  async readUser(user: string): Promise<UserSessions> {
    const entry = this.#users.get(user);
    if (!entry) return { user, version: 0, live: [] };
    const now = this.#now();
    const live = [...entry.sessions.values()].filter((s) => s.state === 'live' && s.expiresAt > now);
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
    if (change.create) {
      entry.sessions.set(change.create.id, change.create);
      for (const t of change.create.tokenIds)
        this.#tokens.set(t, { user: change.user, sessionId: change.create.id });
    }
    entry.version = version + 1;
    if (invalidated.length > 0) this.#publish({ tokenIds: invalidated, ended });
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
  ): Promise<SessionRecord | undefined> {
    const entry = this.#users.get(user);
    const s = entry?.sessions.get(sessionId);
    if (!entry || !s || s.state !== 'live' || s.expiresAt <= this.#now()) return undefined;
    const fresh = [...new Set(tokenIds)];
    const merged = [...s.tokenIds.filter((t) => !fresh.includes(t)), ...fresh];
    const dropped = merged.length > maxTokens ? merged.slice(0, merged.length - maxTokens) : [];
    const kept = merged.slice(dropped.length);
    for (const t of fresh) this.#tokens.set(t, { user, sessionId });
    for (const t of dropped) this.#tokens.delete(t);
    const updated = { ...s, tokenIds: kept };
    entry.sessions.set(sessionId, updated);
    if (dropped.length > 0) this.#publish({ tokenIds: dropped });
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

  async close(): Promise<void> {
    clearInterval(this.#sweeper);
    this.#listeners.clear();
  }

  /** Drops sessions (and their token index entries) past their expiresAt. */
  sweep(): void {
    const now = this.#now();
    for (const [user, entry] of this.#users) {
      for (const [id, s] of entry.sessions) {
        if (s.expiresAt + this.#retention > now) continue;
        entry.sessions.delete(id);
        for (const t of s.tokenIds) this.#tokens.delete(t);
      }
      if (entry.sessions.size === 0) this.#users.delete(user);
    }
  }

  /** Counts kept for tests and metrics: users, sessions (live and tombstones), token ids. */
  size(): { users: number; sessions: number; tokens: number } {
    let sessions = 0;
    for (const e of this.#users.values()) sessions += e.sessions.size;
    return { users: this.#users.size, sessions, tokens: this.#tokens.size };
  }

  #publish(message: Invalidation): void {
    for (const l of this.#listeners) l.onInvalidate(message);
  }
}
