import { randomUUID } from 'node:crypto';
import type { CachedSession, Decision, DecisionCache } from '../cache/decision-cache.js';
export type { CachedSession };
import { SessionContentionError, StoreConflictError, StoreUnavailableError } from '../errors.js';
import type { SessionStore } from '../store/contract.js';
import type {
  EndedBy,
  EndState,
  Geo,
  LoginHistoryEntry,
  SessionRecord,
  SessionWarning,
  TokenLookup,
} from '../model.js';
import { BackgroundWrites } from './background-writes.js';
import { END_EVENT, REPLACED_EVENT, SessionEvents } from './events.js';
import { describeDevice, deviceClass, type DeviceClass } from './device.js';
import { describePlace } from './place.js';
import { decideLogin, type EndReason, type OnLimit, type PolicyReason } from './policy.js';
import { compareWithHistory, deviceFingerprint, HISTORY_MAX, HISTORY_WINDOW } from './history.js';
import { loginGeo } from './place.js';

export interface SessionServiceConfig {
  readonly limit: number;
  readonly onLimit: OnLimit;
  /** Milliseconds; see LimitPolicyConfig.reclaimIdleAfter. */
  readonly reclaimIdleAfter?: number | undefined;
  /** Live sessions per device class (sessions.devices). */
  readonly devices?: Readonly<Partial<Record<DeviceClass, number>>> | undefined;
  /** Limits by group (sessions.groups.limits): a user in several groups gets the smallest. */
  readonly groups?: { readonly limits: Readonly<Record<string, number>> } | undefined;
  /** A cap on live sessions per tenant (sessions.seats.max). */
  readonly seats?: { readonly max: number } | undefined;
  /** Users and groups never counted, never ended by a limit (sessions.exempt). */
  readonly exempt?: { readonly users: readonly string[]; readonly groups: readonly string[] } | undefined;
  /** Milliseconds. */
  readonly idleTimeout: number;
  readonly maxAge: number;
  readonly maxTokensPerSession: number;
  readonly activityInterval: number;
  /** `strict` asks the store on every check. */
  readonly consistency: 'cached' | 'strict';
}

export interface SessionServiceOptions {
  readonly store: SessionStore;
  readonly cache: DecisionCache;
  readonly config: SessionServiceConfig;
  /** Epoch-millisecond clock. @default Date.now */
  readonly now?: () => number;
  /** Session id generator. @default crypto.randomUUID */
  readonly newId?: () => string;
  readonly events?: SessionEvents;
  /** Background failures (activity writes, expiry commits). */
  readonly onBackgroundError?: (err: unknown, what: string) => void;
  /** A login issued a secondary token that belongs to another session already (not linked). */
  readonly onSharedToken?: (user: string) => void;
  /** Where a client address is (`geo.database`); never throws. Unset: logins record no geo. */
  readonly locate?: (ip: string) => Geo | undefined;
}

export interface LoginInput {
  readonly user: string;
  /** Token ids the login issued; all belong to the new session. */
  readonly tokenIds: readonly string[];
  /** The token id the login request carried, if any (re-login from the same browser). */
  readonly presentedTokenId?: string;
  readonly ip: string;
  readonly userAgent: string;
  readonly location?: string;
  /** The groups the login named (sessions.groups.from), for group limits and exemptions. */
  readonly groups?: readonly string[];
  /** The tenant the login named (sessions.seats.key): the new session takes one of its seats. */
  readonly tenant?: string;
  /**
   * `mode: report-only`: a login the limit would refuse is registered anyway, past the limit, so the
   * gateway keeps tracking the session the app now has (the outcome says `wouldRefuse`).
   */
  readonly reportOnly?: boolean;
  /**
   * `onLimit: ask`: the live session the user chose to end for this login. It ends (superseded, reason
   * `chosen-by-user`) in the same compare-and-set that creates the new session; a login still over the
   * limit then is refused, not offered a choice again.
   */
  readonly chosenSessionId?: string;
}

export type LoginOutcome =
  | {
      readonly kind: 'created';
      readonly session: SessionRecord;
      /** Sessions of this user on other devices the login ended (superseded, or found expired). */
      readonly ended: readonly SessionRecord[];
      /** The session of the same user the login request carried a token of, now replaced. */
      readonly replaced?: SessionRecord;
      /** Another user's session the login request carried a token of, now logged out. */
      readonly loggedOut?: SessionRecord;
      /** report-only: the limit would have refused this login. */
      readonly wouldRefuse?: boolean;
      /** `onLimit: warn`: the user's other live sessions the login marked warned (the limit let it past). */
      readonly warned?: readonly SessionRecord[];
    }
  | { readonly kind: 'existing'; readonly session: SessionRecord }
  | { readonly kind: 'refused'; readonly live: number; readonly reason: PolicyReason }
  /**
   * `onLimit: ask`: the limit refused the login, and the user may end one of `sessions` (live, the
   * newest first; of the login's device class for a device limit) to make room. Nothing was registered.
   */
  | { readonly kind: 'choose'; readonly reason: PolicyReason; readonly sessions: readonly SessionRecord[] };

/** What a token's state can be, as the service judges it (a session state, or why there is none). */
export type TokenState = Decision['state'];

/**
 * The answer to "may this token go on?", read-only: callers outside `sessions` never see or change
 * the cache's entries (which carry activity bookkeeping).
 */
export interface TokenCheck {
  readonly state: TokenState;
  /** The session as the cache keeps it: no client address, User-Agent or location (read the store). */
  readonly session: CachedSession | undefined;
  /** Last activity seen of the session (clock milliseconds). */
  readonly lastSeenAt: number;
}

const MAX_COMMIT_ATTEMPTS = 32;
/** Real milliseconds a live-session count is reused (scrapes of several Prometheus servers). */
const LIVE_COUNT_TTL = 5_000;
/**
 * Background writes in flight at most: enough for thousands a second (each one or two round trips),
 * few enough that a request's token read never queues behind a storm of them.
 */
const BACKGROUND_WRITES = 16;
/**
 * The share of cache.maxStaleness after which a live decision in use is read again ahead of time: the
 * rest is the time the read has to come back (a store storm's queue), at the cost of at most a quarter
 * more reads for sessions in constant use.
 */
const READ_AHEAD = 0.8;
const UNAVAILABLE: Decision = Object.freeze({
  state: 'unavailable',
  session: undefined,
  fetchedAt: 0,
  epoch: -1,
  lastSeenAt: 0,
  lastWrittenAt: 0,
}) as Decision;

/**
 * The session service: logins (with the limit), checks, refreshes, logouts, ending and listing.
 * It composes the store and the decision cache, and knows nothing of HTTP.
 */
export class SessionService {
  readonly events: SessionEvents;
  readonly #store: SessionStore;
  readonly #cache: DecisionCache;
  readonly #config: SessionServiceConfig;
  readonly #now: () => number;
  readonly #newId: () => string;
  readonly #onBackgroundError: (err: unknown, what: string) => void;
  readonly #onSharedToken: (user: string) => void;
  readonly #locate: ((ip: string) => Geo | undefined) | undefined;
  readonly #inflight = new Map<string, Promise<Decision>>();
  /** Touches, ends of expired sessions and seat releases: off the request path, a few at a time. */
  readonly #writes: BackgroundWrites;
  /** Age at which a live decision still trusted is read again in the background (see `check`). */
  readonly #readAheadAfter: number;
  readonly #revokedListeners = new Set<(tokenIds: readonly string[]) => void>();
  readonly #unwatch: () => void;
  readonly #restoredListeners = new Set<() => void>();
  /**
   * Activity the store may not have yet, allowed for when idleness is judged from its lastSeenAt: it is
   * written at most once per activityInterval, so another replica's last requests may be missing from
   * it. The memory store has no other replica, and this one carries its own activity in the cache.
   */
  readonly #unwritten: number;
  #liveCount: { readonly at: number; readonly value: Promise<number> } | undefined;
  readonly #exemptUsers: ReadonlySet<string>;
  readonly #exemptGroups: ReadonlySet<string>;
  readonly #groupLimits: ReadonlyMap<string, number>;

  constructor(options: SessionServiceOptions) {
    this.#store = options.store;
    this.#cache = options.cache;
    this.#config = options.config;
    this.#now = options.now ?? Date.now;
    this.#newId = options.newId ?? randomUUID;
    this.events = options.events ?? new SessionEvents();
    this.#onBackgroundError = options.onBackgroundError ?? (() => {});
    this.#readAheadAfter = this.#cache.maxStaleness * READ_AHEAD;
    this.#writes = new BackgroundWrites({
      concurrency: BACKGROUND_WRITES,
      onError: this.#onBackgroundError,
    });
    this.#onSharedToken = options.onSharedToken ?? (() => {});
    this.#locate = options.locate;
    this.#unwritten = this.#store.kind === 'memory' ? 0 : this.#config.activityInterval;
    this.#exemptUsers = new Set(this.#config.exempt?.users ?? []);
    this.#exemptGroups = new Set(this.#config.exempt?.groups ?? []);
    this.#groupLimits = new Map(Object.entries(this.#config.groups?.limits ?? {}));
    this.#unwatch = this.#store.watch({
      onInvalidate: (m) => {
        // Tombstones first: invalidate() then drops only what is still cached as live.
        if (m.ended !== undefined) {
          this.#cache.bury(m.ended, this.#now());
          // Ended, here or on another replica: this replica's writes for them that have not started
          // would only read the store to find nothing to do (10,000 expiring at once queue one each).
          for (const s of m.ended) {
            this.#writes.cancel(`end ${s.id}`);
            this.#writes.cancel(`touch ${s.id}`);
          }
        }
        if (m.changed !== undefined) for (const c of m.changed) this.#refresh(c.sessionId, c.tokenIds);
        this.#cache.invalidate(m.tokenIds);
        this.#notifyRevoked(m.tokenIds);
      },
      onChannelLost: () => this.#cache.distrustLive(),
      onChannelRestored: () => {
        this.#cache.distrustLive();
        for (const l of this.#restoredListeners) l();
      },
    });
  }

  get store(): SessionStore {
    return this.#store;
  }

  /** Called when the invalidation channel is back after a loss (messages may have been missed). */
  onChannelRestored(listener: () => void): () => void {
    this.#restoredListeners.add(listener);
    return () => this.#restoredListeners.delete(listener);
  }

  /** Called with token ids that stopped being live (here or on another replica). */
  onRevoked(listener: (tokenIds: readonly string[]) => void): () => void {
    this.#revokedListeners.add(listener);
    return () => this.#revokedListeners.delete(listener);
  }

  /**
   * The decision for a token id. Synchronous on a cache hit (the hot path: no promise; one small object),
   * a promise otherwise. Never throws: an unreachable store gives state `unavailable`.
   */
  check(tokenId: string): TokenCheck | Promise<TokenCheck> {
    const now = this.#now();
    const hit = this.#cache.get(tokenId, now);
    if (hit !== undefined && (this.#config.consistency === 'cached' || hit.state !== 'live')) {
      if (hit.state !== 'live') return hit;
      // Read ahead: a session in use is read again before its decision stops being trusted, so its
      // requests never wait for the store (nor for a storm of other work queued there).
      if (now - hit.fetchedAt >= this.#readAheadAfter) void this.#fill(tokenId);
      return this.#applyActivity(tokenId, hit, now);
    }
    // Past its expiresAt a session is dead whatever the store says now (maxAge is absolute, and a
    // dead token never lives again): a stale entry answers that without a read.
    const stale = hit === undefined ? this.#cache.peek(tokenId) : undefined;
    if (stale?.state === 'live' && stale.session !== undefined && now >= stale.session.expiresAt)
      return this.#expire(tokenId, stale.session, now);
    // Strict mode never joins a read already in flight: it may have started before a revocation that
    // this request must see.
    return this.#config.consistency === 'strict' ? this.#read(tokenId) : this.#fill(tokenId);
  }

  #fill(tokenId: string): Promise<Decision> {
    const existing = this.#inflight.get(tokenId);
    if (existing) return existing;
    const p = this.#read(tokenId).finally(() => this.#inflight.delete(tokenId));
    this.#inflight.set(tokenId, p);
    return p;
  }

  async #read(tokenId: string): Promise<Decision> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const ticket = this.#cache.beginFill(tokenId);
      let decision: Decision;
      try {
        const found = await this.#store.find(tokenId);
        const now = this.#now();
        decision = this.#decisionOf(found, now);
        // The entry being refilled is stale by now (that is why the store was asked), but its activity
        // is not: the store's lastSeenAt lags it by up to activityInterval.
        const previous = this.#cache.peek(tokenId);
        if (
          previous?.state === 'live' &&
          previous.session?.id === decision.session?.id &&
          previous.lastSeenAt > decision.lastSeenAt
        ) {
          decision.lastSeenAt = previous.lastSeenAt;
          decision.lastWrittenAt = Math.max(previous.lastWrittenAt, decision.lastWrittenAt);
        }
      } catch (err) {
        this.#onBackgroundError(err, 'lookup');
        return UNAVAILABLE;
      }
      if (this.#cache.completeFill(ticket, decision)) {
        return decision.state === 'live'
          ? this.#applyActivity(tokenId, decision, decision.fetchedAt)
          : decision;
      }
    }
    // Invalidated three reads in a row: the token is being revoked right now; ask once more, uncached.
    try {
      return this.#decisionOf(await this.#store.find(tokenId), this.#now());
    } catch (err) {
      this.#onBackgroundError(err, 'lookup');
      return UNAVAILABLE;
    }
  }

  #decisionOf(found: TokenLookup | 'anonymous' | 'dead' | undefined, now: number): Decision {
    if (found === 'anonymous') return this.#cache.makeDecision('anonymous', undefined, now);
    // A tombstone without its record: the session is past its maxAge, whatever else ended it.
    if (found === 'dead') return this.#cache.makeDecision('expired', undefined, now);
    return this.#cache.makeDecision(found ? found.session.state : 'unknown', found?.session, now);
  }

  /**
   * Remembers token values the app issued to requests without a session (the cookie of a login page),
   * for `idleTimeout`, so `unknownTokens: reject` lets them pass. Throws StoreUnavailableError.
   */
  async rememberAnonymous(tokenIds: readonly string[]): Promise<void> {
    await this.#store.rememberAnonymous(tokenIds, this.#config.idleTimeout);
    const now = this.#now();
    for (const t of tokenIds) {
      // Only where nothing better is known: a token of a session stays that session's.
      const cached = this.#cache.get(t, now);
      if (cached === undefined || cached.state === 'unknown')
        this.#cache.set(t, this.#cache.makeDecision('anonymous', undefined, now));
    }
  }

  /**
   * When a session was last used, as far as anyone can tell: what this replica saw (`local`), or the
   * store's lastSeenAt plus the activity not written yet (see #unwritten). Idle expiry is measured from
   * it, so it never fires before idleTimeout of real inactivity, and at most activityInterval late.
   */
  #lastActivity(s: SessionRecord, local = 0): number {
    return Math.max(local, s.lastSeenAt + this.#unwritten);
  }

  /** The newest activity this replica has cached for any token of the session. */
  #localActivity(s: SessionRecord): number {
    let seen = 0;
    for (const t of s.tokenIds) {
      const d = this.#cache.peek(t);
      if (d?.session?.id === s.id && d.lastSeenAt > seen) seen = d.lastSeenAt;
    }
    return seen;
  }

  #isIdle(s: SessionRecord, now: number, local = this.#localActivity(s)): boolean {
    return now - this.#lastActivity(s, local) >= this.#config.idleTimeout;
  }

  /** Idle and absolute timeouts, and the activity write at most once per interval. */
  #applyActivity(tokenId: string, d: Decision, now: number): Decision {
    const s = d.session as SessionRecord;
    if (now >= s.expiresAt || this.#isIdle(s, now, d.lastSeenAt)) return this.#expire(tokenId, s, now);
    d.lastSeenAt = now;
    if (now - d.lastWrittenAt >= this.#config.activityInterval) {
      d.lastWrittenAt = now;
      this.#writes.add(`touch ${s.id}`, 'touch', () => this.#store.touch(s.user, s.id, now));
    }
    // The decision is the cache's copy of its entry: the entry keeps the activity for the next hit.
    this.#cache.noteActivity(tokenId, d.lastSeenAt, d.lastWrittenAt);
    return d;
  }

  /**
   * Caches the token as expired (so its next requests cost no store read) and commits the end: the
   * replica whose commit ends the session emits `session.expired`, once; the others find it ended.
   */
  #expire(tokenId: string, s: CachedSession, now: number): Decision {
    const dead = this.#cache.makeDecision('expired', { ...s, state: 'expired', endedAt: now }, now);
    this.#cache.set(tokenId, dead);
    this.#writes.add(`end ${s.id}`, 'expire', () => this.endSessions(s.user, [s.id], 'expired'));
    return dead;
  }

  /** Registers a login, applying the limit atomically. Throws StoreUnavailableError if the store is down. */
  async login(input: LoginInput): Promise<LoginOutcome> {
    const now = this.#now();
    // The user's sessions, read first: the policy's first snapshot, and the answer to "is the primary
    // token one of theirs already" without a lookup of its own. The history read shares its round trip.
    const history = this.#readHistory(input.user, now);
    // The other reads of a login depend on none of these, so all go out at once (one round trip on
    // Redis, however many tokens the login issued): the token the request presented, and the login's
    // secondary tokens (is one of them another session's?).
    const [firstSnapshot, presented, secondaries] = await Promise.all([
      this.#store.readUser(input.user),
      input.presentedTokenId === undefined ? undefined : this.#store.lookup(input.presentedTokenId),
      Promise.all(input.tokenIds.slice(1).map((t) => this.#store.lookup(t))),
    ]);
    // The same token seen again at a login of the same user is the same session (apps that issue
    // identical JWTs within one second), never a new one that supersedes itself.
    // Only the first (primary) token decides: a secondary one may be shared by every session of the user
    // (Flask-Login's remember_token is the same at every login) and is re-indexed to the new session.
    // The login's tokens are pinned in its session's list, so the snapshot's lists hold every primary.
    const primary = input.tokenIds[0];
    const known = firstSnapshot.live.find(
      (s) => primary !== undefined && s.tokenIds.includes(primary) && this.#isLive(s, now),
    );
    if (known) {
      const others = input.tokenIds.filter((t) => !known.tokenIds.includes(t));
      const session = others.length
        ? ((await this.#store.addTokens(
            input.user,
            known.id,
            others,
            this.#config.maxTokensPerSession,
            known.pinned ?? 0,
          )) ?? known)
        : known;
      this.#cacheLive(input.tokenIds, session, now);
      return { kind: 'existing', session };
    }
    let replacesSessionId: string | undefined;
    // Another user's session in the same browser: the app has switched it to the new user, so it ends
    // (logged out) once this login is registered, and no longer counts toward the first user's limit.
    let otherUsers: SessionRecord | undefined;
    if (presented && this.#isLive(presented.session, now)) {
      if (presented.session.user === input.user) replacesSessionId = presented.session.id;
      // Unless the app kept the very value for the new user (no session id regeneration): ending the
      // old session would revoke the new one's token on every replica.
      else if (!presented.session.tokenIds.some((t) => input.tokenIds.includes(t)))
        otherUsers = presented.session;
    }
    // A secondary token that already belongs to another session is not per-session (Flask-Login's
    // remember_token is the same at every login of a user): linking it to the new session would let the
    // superseded device sign itself back in with it. It stays with the old session and is revoked with it.
    const tokenIds: string[] = [input.tokenIds[0] as string];
    input.tokenIds.slice(1).forEach((tokenId, i) => {
      if (secondaries[i] === undefined) tokenIds.push(tokenId);
      else this.#onSharedToken(input.user);
    });
    const policy = this.#policyOf(input);
    // Exempt users take no seat.
    const seatTenant = this.#config.seats && policy.exempt !== true ? input.tenant : undefined;
    const geo = loginGeo(this.#locate?.(input.ip), input.location);
    const device = deviceFingerprint(input.userAgent);
    let session: SessionRecord = {
      id: this.#newId(),
      user: input.user,
      state: 'live',
      createdAt: now,
      lastSeenAt: now,
      expiresAt: now + this.#config.maxAge,
      ip: input.ip,
      userAgent: input.userAgent,
      ...(input.location ? { location: input.location } : {}),
      ...(geo ? { geo } : {}),
      ...(seatTenant !== undefined ? { tenant: seatTenant } : {}),
      // The login's own tokens (session + remember-me) stay with the session for its life.
      tokenIds,
      pinned: tokenIds.length,
    };
    const endedBy: EndedBy = { sessionId: session.id, ip: input.ip, userAgent: input.userAgent };
    const place = describePlace(session.geo, session.location);
    const warning: SessionWarning = {
      sessionId: session.id,
      at: now,
      device: describeDevice(input.userAgent),
      ...(place !== undefined ? { place } : {}),
    };
    let seated = false;
    let recorded = false;
    for (let attempt = 0; attempt < MAX_COMMIT_ATTEMPTS; attempt++) {
      const snapshot = attempt === 0 ? firstSnapshot : await this.#store.readUser(input.user);
      if (attempt === 0) {
        const unfamiliar = compareWithHistory(await history, { device, country: geo?.country });
        if (unfamiliar.newDevice) session = { ...session, newDevice: true };
        if (unfamiliar.newLocation) session = { ...session, newLocation: true };
      }
      // The policy judges idleness by the last activity anyone can vouch for (see #lastActivity).
      const seen = snapshot.live.map((s) => ({
        ...s,
        lastSeenAt: this.#lastActivity(s, this.#localActivity(s)),
      }));
      const login = {
        at: now,
        sessionId: session.id,
        device: deviceClass(input.userAgent),
        ...policy,
        ...(replacesSessionId ? { replacesSessionId } : {}),
        ...(input.chosenSessionId !== undefined ? { chosenSessionId: input.chosenSessionId } : {}),
      };
      let decision = decideLogin(seen, login, this.#config);
      let wouldRefuse = false;
      if (decision.kind === 'refuse' && !input.reportOnly && this.#config.onLimit === 'ask') {
        // The first refusal of an ask login is a question, not a refusal: no event, nothing registered.
        if (input.chosenSessionId === undefined) {
          const reason = decision.reason;
          const sessions = seen
            .filter(
              (s) =>
                s.id !== replacesSessionId &&
                now < s.expiresAt &&
                now - s.lastSeenAt < this.#config.idleTimeout &&
                (reason !== 'device-limit' || deviceClass(s.userAgent) === login.device),
            )
            .sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? -1 : 1));
          return { kind: 'choose', reason, sessions };
        }
      }
      if (decision.kind === 'refuse' && !input.reportOnly) {
        // A seat reserved by an attempt that lost its race is not this login's any more.
        if (seated && seatTenant !== undefined) this.#releaseSeats(seatTenant, [session.id]);
        this.events.emit({
          type: 'session.refused',
          at: now,
          user: input.user,
          ip: input.ip,
          userAgent: input.userAgent,
          reason: 'session_limit_reached',
          policy: decision.reason,
        });
        return { kind: 'refused', live: decision.live, reason: decision.reason };
      }
      if (decision.kind === 'refuse') {
        // report-only: no session.refused (its webhook would tell the user of a refusal that did not
        // happen; the caller logs and counts it). Decided as if there were no limit: sessions past their
        // time still end, none is superseded.
        decision = decideLogin(seen, { ...login, exempt: true }, this.#config);
        if (decision.kind === 'refuse')
          return { kind: 'refused', live: decision.live, reason: decision.reason };
        wouldRefuse = true;
      }
      if (seatTenant !== undefined && this.#config.seats) {
        const ending = new Set(decision.end.map((e) => e.sessionId));
        const taken = await this.#store.seats.reserve({
          tenant: seatTenant,
          user: input.user,
          sessionId: session.id,
          expiresAt: session.expiresAt,
          keep: snapshot.live.filter((s) => !ending.has(s.id)).map((s) => s.id),
          max: this.#config.seats.max,
          at: now,
        });
        seated = taken;
        if (!taken && input.reportOnly) wouldRefuse = true;
        else if (!taken) {
          this.events.emit({
            type: 'session.refused',
            at: now,
            user: input.user,
            ip: input.ip,
            userAgent: input.userAgent,
            reason: 'session_seat_limit_reached',
            policy: 'seat-limit',
          });
          return { kind: 'refused', live: snapshot.live.length - ending.size, reason: 'seat-limit' };
        }
      }
      try {
        const committing = this.#store.commit({
          user: input.user,
          expectedVersion: snapshot.version,
          create: session,
          end: decision.end.map((e) => ({
            sessionId: e.sessionId,
            state: e.state,
            ...(e.state === 'superseded' ? { endedBy } : {}),
          })),
          ...(decision.warn
            ? { warn: decision.warn.sessionIds.map((sessionId) => ({ sessionId, warning })) }
            : {}),
          at: now,
        });
        // Sent with the commit (same round trip, not awaited by the login): a commit that loses its
        // race is retried, and recording the same device and country again changes nothing.
        if (!recorded) {
          recorded = true;
          this.#recordHistory(input.user, {
            device,
            ...(geo?.country ? { country: geo.country } : {}),
            at: now,
          });
        }
        await committing;
      } catch (err) {
        // A retry reserves again (the user's seats are rewritten); a failure frees the seat taken.
        if (err instanceof StoreConflictError) continue;
        if (seatTenant !== undefined) this.#releaseSeats(seatTenant, [session.id]);
        throw err;
      }
      const all = decision.end.map((e) => {
        const s = snapshot.live.find((x) => x.id === e.sessionId) as SessionRecord;
        return { ...s, state: e.state, endedAt: now, ...(e.state === 'superseded' ? { endedBy } : {}) };
      });
      const reasons = new Map(decision.end.map((e) => [e.sessionId, e.reason]));
      this.#recordEnded(all, now, 'login', session.tokenIds, replacesSessionId, reasons);
      this.#cacheLive(session.tokenIds, session, now);
      const replaced = all.find((s) => s.id === replacesSessionId);
      const ended = all.filter((s) => s.id !== replacesSessionId);
      // The login as both its events describe it.
      const created = {
        at: now,
        user: input.user,
        sessionId: session.id,
        ip: input.ip,
        userAgent: input.userAgent,
        ...(input.location ? { location: input.location } : {}),
        ...(geo ? { geo } : {}),
        ...(session.newDevice ? { newDevice: true as const } : {}),
        ...(session.newLocation ? { newLocation: true as const } : {}),
      };
      this.events.emit({
        type: 'session.created',
        ...created,
        ended: ended.filter((s) => s.state === 'superseded').length,
      });
      if (session.newDevice || session.newLocation)
        this.events.emit({ type: 'session.new_device', ...created });
      // After session.created: the warned sessions go on (the ended ones were reported before it).
      const warned = this.#recordWarned(
        snapshot.live,
        decision.warn?.sessionIds ?? [],
        warning,
        decision.warn?.reason,
        endedBy,
      );
      const loggedOut = otherUsers && (await this.#logOutReplacedUser(otherUsers, endedBy));
      return {
        kind: 'created',
        session,
        ended,
        ...(replaced ? { replaced } : {}),
        ...(loggedOut ? { loggedOut } : {}),
        ...(wouldRefuse ? { wouldRefuse } : {}),
        ...(warned.length > 0 ? { warned } : {}),
      };
    }
    if (seated && seatTenant !== undefined) this.#releaseSeats(seatTenant, [session.id]);
    throw new SessionContentionError();
  }

  /**
   * The user's login history of the window, or none when the store cannot say (the login goes on,
   * flagging nothing: a history failure is no reason to refuse or to alarm).
   */
  #readHistory(user: string, now: number): Promise<readonly LoginHistoryEntry[]> {
    return this.#store.history.read(user, now - HISTORY_WINDOW).catch((err: unknown) => {
      this.#onBackgroundError(err, 'login history read');
      return [];
    });
  }

  /** Records a login's device and country, off the login's path (a failure is reported, never thrown). */
  #recordHistory(user: string, entry: LoginHistoryEntry): void {
    this.#store.history
      .record(user, entry, { max: HISTORY_MAX, window: HISTORY_WINDOW })
      .catch((err: unknown) => this.#onBackgroundError(err, 'login history record'));
  }

  /**
   * `onLimit: warn`, after the commit that marked them: the warned sessions' cached decisions are read
   * again (they carry the mark), and one `session.warned` each, `by` the new login.
   */
  #recordWarned(
    live: readonly SessionRecord[],
    ids: readonly string[],
    warning: SessionWarning,
    policy: PolicyReason | undefined,
    by: EndedBy,
  ): SessionRecord[] {
    const warned: SessionRecord[] = [];
    for (const s of live) {
      if (!ids.includes(s.id)) continue;
      warned.push({ ...s, warning });
      this.#refresh(s.id, s.tokenIds);
      this.events.emit({
        type: 'session.warned',
        at: warning.at,
        user: s.user,
        sessionId: s.id,
        ip: s.ip,
        userAgent: s.userAgent,
        reason: 'warned',
        ...(policy !== undefined ? { policy } : {}),
        by: { ...by, actor: 'login' },
      });
    }
    return warned;
  }

  /** A live session's record changed: what this replica cached of it is read again. */
  #refresh(sessionId: string, tokenIds: readonly string[]): void {
    this.#cache.refresh(tokenIds);
    this.#cache.refresh(this.#cache.cachedTokensOf(sessionId));
  }

  /**
   * "Yes, continue" on the warning page (`onLimit: warn`): clears the session's mark if it still names
   * `loginSessionId`, so a later login past the limit warns again. False when there was no such mark
   * (answered already, or a newer login's mark replaced it) or the session is not live.
   */
  async acknowledgeWarning(user: string, sessionId: string, loginSessionId: string): Promise<boolean> {
    for (let attempt = 0; attempt < MAX_COMMIT_ATTEMPTS; attempt++) {
      const snapshot = await this.#store.readUser(user);
      const s = snapshot.live.find((x) => x.id === sessionId);
      if (s?.warning?.sessionId !== loginSessionId) return false;
      try {
        await this.#store.commit({
          user,
          expectedVersion: snapshot.version,
          end: [],
          warn: [{ sessionId, warning: null }],
          at: this.#now(),
        });
      } catch (err) {
        if (err instanceof StoreConflictError) continue;
        throw err;
      }
      this.#refresh(sessionId, s.tokenIds);
      return true;
    }
    throw new SessionContentionError();
  }

  /**
   * The decision for a token id as the store has it now, cached (the cache may lag another replica's
   * change by up to maxStaleness): for the rare answer that must not lag, the warning page's.
   */
  checkFresh(tokenId: string): Promise<TokenCheck> {
    return this.#read(tokenId);
  }

  /**
   * The user's place in the policy: exempt (by name or group), or the smallest limit of their groups
   * (none named in groups.limits: the default limit).
   */
  #policyOf(input: LoginInput): { exempt?: true; groupLimit?: number } {
    if (this.#exemptUsers.has(input.user)) return { exempt: true };
    let groupLimit: number | undefined;
    for (const g of input.groups ?? []) {
      if (this.#exemptGroups.has(g)) return { exempt: true };
      const l = this.#groupLimits.get(g);
      if (l !== undefined && (groupLimit === undefined || l < groupLimit)) groupLimit = l;
    }
    return groupLimit !== undefined ? { groupLimit } : {};
  }

  /**
   * Ends the first user's session of a browser another user just signed in from. The new login stands
   * whatever happens here: a store failure is reported, and that session idles out as before.
   */
  async #logOutReplacedUser(s: SessionRecord, endedBy: EndedBy): Promise<SessionRecord | undefined> {
    try {
      const [ended] = await this.endSessions(s.user, [s.id], 'logged_out', { actor: 'login', endedBy });
      return ended;
    } catch (err) {
      this.#onBackgroundError(err, 'logout of the previous user of a browser');
      return undefined;
    }
  }

  /** Not ended and within its maxAge (idleness is the policy's and the check's to judge). */
  #isLive(s: SessionRecord, now: number): boolean {
    return s.state === 'live' && now < s.expiresAt;
  }

  /**
   * Adds new token ids to the live session of the presented token (refresh, rotation, remember-me).
   * Returns the session, or undefined when the presented token is not live.
   */
  async addTokens(presentedTokenId: string, tokenIds: readonly string[]): Promise<SessionRecord | undefined> {
    const d = await this.check(presentedTokenId);
    if (d.state === 'unavailable') throw new StoreUnavailableError('session store unavailable');
    if (d.state !== 'live' || !d.session) return undefined;
    const session = await this.#store.addTokens(
      d.session.user,
      d.session.id,
      tokenIds,
      this.#config.maxTokensPerSession,
      d.session.pinned ?? 0,
    );
    if (session) this.#cacheLive(tokenIds, session, this.#now());
    return session;
  }

  /** Ends the session a token belongs to (logout, or the app clearing the cookie). */
  async endByToken(tokenId: string, state: EndState): Promise<SessionRecord | undefined> {
    const found = await this.#store.lookup(tokenId);
    if (!found || found.session.state !== 'live') return undefined;
    const [ended] = await this.endSessions(found.session.user, [found.session.id], state);
    return ended;
  }

  /**
   * Ends live sessions of a user (all of them when `sessionIds` is undefined, minus `exceptSessionId`).
   * Authoritative at once: committed to the store and published to every replica. Returns what ended.
   */
  async endSessions(
    user: string,
    sessionIds: readonly string[] | undefined,
    state: EndState,
    options: { exceptSessionId?: string; actor?: 'user' | 'admin' | 'login'; endedBy?: EndedBy } = {},
  ): Promise<SessionRecord[]> {
    for (let attempt = 0; attempt < MAX_COMMIT_ATTEMPTS; attempt++) {
      const now = this.#now();
      const snapshot = await this.#store.readUser(user);
      const targets = snapshot.live.filter(
        (s) => (sessionIds === undefined || sessionIds.includes(s.id)) && s.id !== options.exceptSessionId,
      );
      if (targets.length === 0) return [];
      // A session already past its maxAge (listed until something ends it) ended by expiring.
      const stateOf = (s: SessionRecord): EndState => (now >= s.expiresAt ? 'expired' : state);
      const by = options.endedBy ? { endedBy: options.endedBy } : {};
      try {
        await this.#store.commit({
          user,
          expectedVersion: snapshot.version,
          end: targets.map((s) => ({ sessionId: s.id, state: stateOf(s), ...by })),
          at: now,
        });
      } catch (err) {
        if (err instanceof StoreConflictError) continue;
        throw err;
      }
      const ended = targets.map((s) => ({ ...s, state: stateOf(s), endedAt: now, ...by }));
      this.#recordEnded(ended, now, options.actor);
      return ended;
    }
    throw new SessionContentionError();
  }

  /**
   * "This was not me": ends every live session of the user, the one the user acts from included, and
   * emits one `session.not_me` (after the sessions' own `session.ended`). Used by the signed "not me"
   * link of a notification and by the warning page's "sign out everywhere".
   */
  async signOutEverywhere(
    user: string,
    context: { sessionId?: string; ip?: string; userAgent?: string } = {},
  ): Promise<SessionRecord[]> {
    const ended = await this.endSessions(user, undefined, 'ended_by_user', { actor: 'user' });
    this.events.emit({
      type: 'session.not_me',
      at: this.#now(),
      user,
      ...(context.sessionId ? { sessionId: context.sessionId } : {}),
      ...(context.ip ? { ip: context.ip } : {}),
      ...(context.userAgent ? { userAgent: context.userAgent } : {}),
      reason: 'not-me',
      ended: ended.length,
    });
    return ended;
  }

  /** The user's live sessions, newest first (sessions idle past the timeout are left out). */
  async listSessions(user: string): Promise<SessionRecord[]> {
    const now = this.#now();
    const { live } = await this.#store.readUser(user);
    return live
      .filter((s) => now < s.expiresAt && !this.#isIdle(s, now))
      .sort((a, b) => b.createdAt - a.createdAt);
  }

  /**
   * Live sessions in the whole store (not ended, within their maxAge), for the gauge. One answer is
   * reused for a few seconds of real time, and dropped at once when this replica changes a session.
   */
  countLive(): Promise<number> {
    const at = performance.now();
    if (this.#liveCount !== undefined && at - this.#liveCount.at < LIVE_COUNT_TTL)
      return this.#liveCount.value;
    const value = this.#store.countLive();
    const entry = { at, value };
    this.#liveCount = entry;
    value.catch(() => {
      if (this.#liveCount === entry) this.#liveCount = undefined;
    });
    return value;
  }

  /** Stops listening for invalidations; resolves once the background writes are done. */
  async close(): Promise<void> {
    this.#unwatch();
    await this.#writes.drained();
  }

  #cacheLive(tokenIds: readonly string[], session: SessionRecord, now: number): void {
    this.#liveCount = undefined;
    for (const t of tokenIds) this.#cache.set(t, this.#cache.makeDecision('live', session, now));
  }

  #recordEnded(
    ended: readonly SessionRecord[],
    now: number,
    actor: 'user' | 'admin' | 'login' | undefined,
    keep: readonly string[] = [],
    replacedId?: string,
    reasons?: ReadonlyMap<string, EndReason>,
  ): void {
    if (ended.length === 0) return;
    this.#liveCount = undefined;
    const tokenIds: string[] = [];
    for (const s of ended) {
      // The values it lists, and any others cached here for it (rotated values that left its list).
      for (const t of new Set([...s.tokenIds, ...this.#cache.cachedTokensOf(s.id)])) {
        if (keep.includes(t)) continue;
        tokenIds.push(t);
        this.#cache.set(t, this.#cache.makeDecision(s.state, s, now));
      }
      this.#cache.noteEnded(s);
      if (s.tenant !== undefined) this.#releaseSeats(s.tenant, [s.id]);
      // Replaced by the browser's own re-login; if it had idled out meanwhile, it is reported as expired.
      const replaced = s.id === replacedId && s.state === 'superseded';
      const why = reasons?.get(s.id);
      this.events.emit({
        type: replaced ? REPLACED_EVENT : END_EVENT[s.state as EndState],
        at: now,
        user: s.user,
        sessionId: s.id,
        ip: s.ip,
        userAgent: s.userAgent,
        reason: replaced ? 'replaced' : s.state,
        ...(why !== undefined && why !== 'expired' && why !== 'replaced' ? { policy: why } : {}),
        ...(s.endedBy || actor ? { by: { ...s.endedBy, ...(actor ? { actor } : {}) } } : {}),
      });
    }
    this.#notifyRevoked(tokenIds);
  }

  /** Frees the seats of ended sessions, off the caller's path: a failure leaves the seat to its expiry. */
  #releaseSeats(tenant: string, sessionIds: readonly string[]): void {
    this.#writes.add(`seats ${tenant} ${sessionIds.join(' ')}`, 'seat release', () =>
      this.#store.seats.release(tenant, sessionIds),
    );
  }

  #notifyRevoked(tokenIds: readonly string[]): void {
    for (const l of this.#revokedListeners) l(tokenIds);
  }
}
