/**
 * The session model shared by every layer (types only; imports nothing).
 * The records a session store keeps. Only token ids (HMAC-SHA256 of a token) ever reach a store.
 */

/** `live`, or why a session ended. */
export type SessionState =
  'live' | 'superseded' | 'logged_out' | 'expired' | 'ended_by_user' | 'ended_by_admin';

/** Every SessionState, in one order (the packed cache's state codes are indexes into it). */
export const SESSION_STATES: readonly SessionState[] = [
  'live',
  'superseded',
  'logged_out',
  'expired',
  'ended_by_user',
  'ended_by_admin',
];
export type EndState = Exclude<SessionState, 'live'>;

/** Who or what ended a session, for the "superseded" page ("a new login from Chrome on Windows at 10:02"). */
export interface EndedBy {
  readonly sessionId?: string;
  readonly ip?: string;
  readonly userAgent?: string;
}

/** Where a client address is, as far as the geo database knows (each part only when it has it). */
export interface Geo {
  /** ISO 3166-1 alpha-2, upper case. */
  readonly country?: string;
  readonly region?: string;
  readonly city?: string;
}

/**
 * `onLimit: warn`: the mark a login past the limit leaves on each other live session of its user, naming
 * that login. Small and shown as is (the warning page, the `Sessiongate-Warning` header), so it is kept
 * in the cached decision too: a device label and a place, never the login's address or User-Agent.
 */
export interface SessionWarning {
  /** The new login's session id. */
  readonly sessionId: string;
  /** Epoch milliseconds of the login. */
  readonly at: number;
  /** describeDevice of its User-Agent: "Chrome on Windows". */
  readonly device: string;
  /** describePlace of its location: "Berlin, DE"; unset when unknown. */
  readonly place?: string;
}

export interface SessionRecord {
  readonly id: string;
  readonly user: string;
  readonly state: SessionState;
  /** Epoch milliseconds. */
  readonly createdAt: number;
  readonly lastSeenAt: number;
  /** createdAt + sessions.maxAge: the session's and its tokens' absolute end; tombstones live until then. */
  readonly expiresAt: number;
  readonly ip: string;
  readonly userAgent: string;
  readonly location?: string;
  /** From `geo.database` at login. */
  readonly geo?: Geo;
  /** The login's device (or country) was not in the user's login history (src/sessions/history.ts). */
  readonly newDevice?: true;
  readonly newLocation?: true;
  /** The tenant whose seat the session holds (`sessions.seats`), if it holds one. */
  readonly tenant?: string;
  readonly endedAt?: number;
  readonly endedBy?: EndedBy;
  /**
   * Token ids of the session, oldest first: the `pinned` ones its login issued (kept for its life), then
   * at most sessions.maxTokensPerSession rotated ones.
   */
  readonly tokenIds: readonly string[];
  /** How many of `tokenIds`, from the first, the login issued. @default 0 */
  readonly pinned?: number;
  /** `onLimit: warn`: the latest login past the limit this live session has not answered yet. */
  readonly warning?: SessionWarning;
}

/**
 * A session as a replica's cache keeps it: what the request path and a login decide on. The client
 * address, User-Agent and location stay in the store: only the self-service list and the admin API
 * show them, and both read the store (they were a third of a cached decision's memory,
 * bench/results/cache-memory.md).
 */
export type CachedSession = Omit<SessionRecord, 'ip' | 'userAgent' | 'location' | 'geo'>;

/** One entry of a user's login history: a device fingerprint and the country it signed in from. */
export interface LoginHistoryEntry {
  /** Browser family, OS and device class (`Chrome/Windows/desktop`); never the raw User-Agent. */
  readonly device: string;
  /** ISO 3166-1 alpha-2, when the login had one. */
  readonly country?: string;
  /** Epoch milliseconds of the last login with this device and country. */
  readonly at: number;
}

/** What a store knows of one token id. */
export interface TokenLookup {
  readonly tokenId: string;
  readonly session: SessionRecord;
}

/** The live sessions of one user, with the version a commit must match (compare-and-set). */
export interface UserSessions {
  readonly user: string;
  readonly version: number;
  readonly live: readonly SessionRecord[];
}

export interface SessionEnd {
  readonly sessionId: string;
  readonly state: EndState;
  readonly endedBy?: EndedBy;
}

/** One atomic change of a user's sessions, applied only if the user's version is still `expectedVersion`. */
export interface SessionCommit {
  readonly user: string;
  readonly expectedVersion: number;
  /** A new live session (with its token ids) to add. */
  readonly create?: SessionRecord;
  /** Live sessions to end. */
  readonly end: readonly SessionEnd[];
  /** `onLimit: warn`: live sessions to mark with a warning, or (null) whose mark to clear. */
  readonly warn?: readonly SessionWarn[];
  /** Epoch milliseconds of the change. */
  readonly at: number;
}

export interface SessionWarn {
  readonly sessionId: string;
  readonly warning: SessionWarning | null;
}

/** A live session whose record changed without ending it (a warning set or cleared). */
export interface SessionChange {
  readonly sessionId: string;
  /** The token ids its record lists. */
  readonly tokenIds: readonly string[];
}

/** Published to every replica when tokens stop being live, or a live session's record changes. */
export interface Invalidation {
  readonly tokenIds: readonly string[];
  /**
   * The sessions that ended, as committed, when the message is about ended sessions (not about tokens
   * dropped from a live one): receivers turn their cached tokens into tombstones without a store read.
   */
  readonly ended?: readonly SessionRecord[];
  /**
   * Live sessions whose record changed (`onLimit: warn` marks): receivers stop trusting what they cached
   * of them and read the store again at the next request. Nothing is revoked (their tokens are not in
   * `tokenIds`).
   */
  readonly changed?: readonly SessionChange[];
}

export interface InvalidationListener {
  /** Tokens that are no longer live. */
  onInvalidate(message: Invalidation): void;
  /** The channel may have lost messages: stop trusting cached live decisions. */
  onChannelLost(): void;
  /** The channel is back (resubscribed). */
  onChannelRestored(): void;
}

/**
 * What a presented "not me" link token is (notify/not-me-link.ts reads it, ui/not-me.ts acts on it).
 * `id` names the link for its single-use marker (the MAC, unique per link).
 */
export type NotMeLinkRead =
  | {
      readonly kind: 'valid' | 'expired';
      readonly user: string;
      readonly sessionId: string;
      readonly expiresAt: number;
      readonly id: string;
    }
  | { readonly kind: 'forged' };
