import type {
  InvalidationListener,
  LoginHistoryEntry,
  SessionCommit,
  SessionRecord,
  TokenLookup,
  UserSessions,
} from '../model.js';

/** What readiness needs to know of a store (`SessionStore.health`). */
export interface StoreHealth {
  /** Request-path commands are answered: connected, and none timed out since the last that succeeded. */
  readonly commands: boolean;
  /** Invalidations from other replicas arrive (a store without replicas: always true). */
  readonly channel: boolean;
  /** Why not, when either is false. */
  readonly reason?: string;
}

/** One login's claim on a seat of its tenant (`sessions.seats`). */
export interface SeatClaim {
  readonly tenant: string;
  readonly user: string;
  /** The new session, which takes the seat. */
  readonly sessionId: string;
  /** The new session's expiresAt: its seat is free after it, whatever else happens. */
  readonly expiresAt: number;
  /**
   * The user's sessions that stay live after this login (the policy's outcome): they keep their seats;
   * the user's other seats are released, so a re-login never counts twice.
   */
  readonly keep: readonly string[];
  readonly max: number;
  /** Epoch milliseconds of the login. */
  readonly at: number;
}

/**
 * Seats: a cap on live sessions per tenant across all its users, one set of session ids per tenant
 * (sets, not counters, so a changed max is exact at once). Reserved before the user's compare-and-set,
 * released when a session ends; a seat of a session past its expiresAt is free.
 */
export interface SeatStore {
  /**
   * Atomically: the tenant's seats of other users, plus this user's kept sessions and the new one, stay
   * within `max`, and then the new session takes a seat and the user's sessions not kept give theirs
   * up. Returns false (and changes nothing) when they would not fit. Throws StoreUnavailableError.
   */
  reserve(claim: SeatClaim): Promise<boolean>;
  /** Frees the seats of these sessions (ended, or a reservation whose login did not go through). */
  release(tenant: string, sessionIds: readonly string[]): Promise<void>;
  /** Seats taken in the tenant now (for tests and metrics). */
  count(tenant: string, at: number): Promise<number>;
}

/**
 * Per-user login history ("new device, new place"): distinct device/country pairs, each with the time of
 * its last login, bounded in count and in age, expiring with the newest entry's window (Redis: one
 * sorted set per user, one script per record).
 */
export interface LoginHistoryStore {
  /** The user's entries newer than `since` (epoch ms), newest first. Throws StoreUnavailableError. */
  read(user: string, since: number): Promise<LoginHistoryEntry[]>;
  /**
   * Adds the entry (a pair already there moves to `entry.at`), drops entries at or before
   * `entry.at - window` and all but the newest `max`, and keeps the user's history for at least
   * `window` after `entry.at` (Redis: to the end of that UTC day, so one login a day sets the TTL).
   * Atomic. Throws StoreUnavailableError.
   */
  record(
    user: string,
    entry: LoginHistoryEntry,
    bounds: { readonly max: number; readonly window: number },
  ): Promise<void>;
}

/**
 * The session store contract. Every implementation passes `test/store/contract.ts`.
 *
 * The store decides nothing: the limit policy runs in the session service on a `readUser` snapshot and
 * the store applies the outcome with `commit`, atomically and only if the user's version has not moved
 * (compare-and-set). Every key or entry expires: a session record at its `expiresAt` plus the
 * retention (an ended session stays readable, with its reason, until then), and the token ids of a
 * session, as compact tombstones, at its `expiresAt` plus `tombstoneRetention`; so a store never grows
 * without bound, and a dead token never becomes unknown while the app may still honour it.
 *
 * Errors: a store that cannot answer throws StoreUnavailableError; a commit that lost a race throws
 * StoreConflictError.
 *
 * Also: a user without records has version 0 (versions may restart there); `readUser` lists sessions
 * in no promised order; invalidations may arrive synchronously inside `commit` (memory) or later over
 * pub/sub (Redis), so callers apply their own changes locally and never rely on the timing.
 */
export interface SessionStore {
  readonly kind: 'memory' | 'redis';
  /** Tenant seats (`sessions.seats`), kept beside the sessions. */
  readonly seats: SeatStore;
  /** Login history per user (`newDevice` / `newLocation`), kept beside the sessions. */
  readonly history: LoginHistoryStore;
  /**
   * The user's live sessions and version: every session not ended yet, including one already past its
   * expiresAt (still readable during the retention), so that a commit can end it as `expired`; callers
   * decide what is past its time (the policy ends those, listings leave them out).
   */
  readUser(user: string): Promise<UserSessions>;
  /**
   * Applies a commit atomically: creates the new session (indexing its token ids), ends the listed live
   * sessions (their tokens become tombstones), bumps the version, and publishes an invalidation for the
   * ended sessions' token ids. Throws StoreConflictError when the version moved.
   */
  commit(change: SessionCommit): Promise<void>;
  /**
   * The session a token id belongs to, or undefined. A token id stays its session's until the session
   * expires, also after it fell out of the session's list (`addTokens`): dead stays dead.
   */
  lookup(tokenId: string): Promise<TokenLookup | undefined>;
  /**
   * As `lookup`, and `anonymous` for a value remembered by `rememberAnonymous` (one round trip), and
   * `dead` for a token id whose session record is gone (past its expiresAt and the retention) while its
   * tombstone lasts: until the session's expiresAt + `tombstoneRetention`. This covers every id that was
   * ever the session's, rotated-out ones too; a later login that issues the same id makes it that
   * login's.
   */
  find(tokenId: string): Promise<TokenLookup | 'anonymous' | 'dead' | undefined>;
  /**
   * Adds token ids to a live session (refresh, rotation). The session lists its first `pinned` ids
   * (those its login issued) and at most `maxTokens` others, dropping the oldest of those; a dropped
   * id is not forgotten (see `lookup`). Returns the resulting session, or undefined if it is not live.
   */
  addTokens(
    user: string,
    sessionId: string,
    tokenIds: readonly string[],
    maxTokens: number,
    pinned?: number,
  ): Promise<SessionRecord | undefined>;
  /**
   * Remembers token ids the app issued to requests without a session (the cookie a Rails, Laravel or
   * PHP login page sets before anyone logs in) for `ttl` milliseconds, so `unknownTokens: reject` lets
   * them pass. Never applies to an id that belongs to a session.
   */
  rememberAnonymous(tokenIds: readonly string[], ttl: number): Promise<void>;
  /**
   * Marks `key` used for `ttl` milliseconds, atomically: true for the one call that marked it, false
   * while it is marked already (single-use links: a "not me" link works once, on any replica).
   */
  markUsed(key: string, ttl: number): Promise<boolean>;
  /** Whether `key` is marked used (a read that marks nothing: the page a GET of a used link shows). */
  isUsed(key: string): Promise<boolean>;
  /** Records activity (off the request path; at most once per interval per session). */
  touch(user: string, sessionId: string, at: number): Promise<void>;
  /**
   * How many sessions are live across the store: not ended and not past their expiresAt (sessions idle
   * past the timeout count until something ends them). For metrics only, so it may be eventual: the
   * memory store is exact; the Redis store includes this store's own commits at once, another
   * replica's once it sends its batch (LIVE_FLUSH_MS, 1 s, later at most; those of a replica that died
   * first stay uncounted, or an end of theirs unsubtracted, until the session's expiresAt), and counts
   * by the minute of the expiresAt (a session expiring within the current minute no longer counts).
   */
  countLive(): Promise<number>;
  /** Subscribes to invalidations (this replica's and the others'). Returns an unsubscribe function. */
  watch(listener: InvalidationListener): () => void;
  /** True while the store is believed reachable. */
  isAvailable(): boolean;
  /**
   * Command and invalidation-channel health, for readiness: synchronous and cheap (no round trip). A
   * connection that is up but stopped answering (a paused Redis) counts as unhealthy, not as available.
   */
  health(): StoreHealth;
  close(): Promise<void>;
}
