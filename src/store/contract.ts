import type {
  InvalidationListener,
  SessionCommit,
  SessionRecord,
  TokenLookup,
  UserSessions,
} from '../model.js';

/**
 * The session store contract. Every implementation passes `test/store/contract.ts`.
 *
 * The store decides nothing: the limit policy runs in the session service on a `readUser` snapshot and
 * the store applies the outcome with `commit`, atomically and only if the user's version has not moved
 * (compare-and-set). Every key or entry expires at its session's `expiresAt`, so a store never grows
 * without bound, and an ended session stays readable as a tombstone until then.
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
  /** The user's live sessions and version. */
  readUser(user: string): Promise<UserSessions>;
  /**
   * Applies a commit atomically: creates the new session (indexing its token ids), ends the listed live
   * sessions (their tokens become tombstones), bumps the version, and publishes an invalidation for the
   * ended sessions' token ids. Throws StoreConflictError when the version moved.
   */
  commit(change: SessionCommit): Promise<void>;
  /** What is known of a token id, or undefined. */
  lookup(tokenId: string): Promise<TokenLookup | undefined>;
  /**
   * Adds token ids to a live session (refresh, rotation), dropping the oldest beyond `maxTokens`.
   * Returns the resulting session, or undefined if it is not live any more. Dropped ids are invalidated.
   */
  addTokens(
    user: string,
    sessionId: string,
    tokenIds: readonly string[],
    maxTokens: number,
  ): Promise<SessionRecord | undefined>;
  /** Records activity (off the request path; at most once per interval per session). */
  touch(user: string, sessionId: string, at: number): Promise<void>;
  /** Subscribes to invalidations (this replica's and the others'). Returns an unsubscribe function. */
  watch(listener: InvalidationListener): () => void;
  /** True while the store is believed reachable. */
  isAvailable(): boolean;
  close(): Promise<void>;
}
