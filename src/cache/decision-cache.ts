import { LRUCache } from 'lru-cache';
import type { CachedSession, SessionRecord, SessionState } from '../model.js';

const ENDED_REMEMBERED = 10_000;
const NONE: readonly string[] = Object.freeze([]);

/** A decision that can change without its session ending (trusted for maxStaleness only), or a tombstone. */
function isProvisional(state: Decision['state']): boolean {
  return state === 'live' || state === 'unknown' || state === 'anonymous';
}

/**
 * Whether two reads of one session say the same: same state, same end, same tokens. Activity may
 * differ: each decision keeps its own `lastSeenAt`, which the record's only seeds.
 */
function sameRecord(a: CachedSession, b: SessionRecord | CachedSession): boolean {
  if (a === b) return true;
  if (a.id !== b.id || a.state !== b.state || a.endedAt !== b.endedAt || a.pinned !== b.pinned) return false;
  if (a.warning?.sessionId !== b.warning?.sessionId) return false;
  const n = a.tokenIds.length;
  if (n !== b.tokenIds.length) return false;
  for (let i = 0; i < n; i++) if (a.tokenIds[i] !== b.tokenIds[i]) return false;
  return true;
}

export type { CachedSession };

/**
 * The cached form of a record: the same object when it is one already, else a copy without what stays
 * in the store, whose list of token ids holds the cache key's own string for `tokenId` (a store read
 * decodes its own copy of each id: 64 B an entry kept twice; bench/results/cache-memory.md).
 */
function slim(s: SessionRecord | CachedSession, tokenId: string): CachedSession {
  if (!('userAgent' in s)) return s;
  const { ip: _ip, userAgent: _userAgent, location: _location, geo: _geo, ...kept } = s;
  return { ...kept, tokenIds: kept.tokenIds.map((t) => (t === tokenId ? tokenId : t)) };
}

/** What this replica believes of one token id. Entries are mutated in place for activity tracking. */
export interface Decision {
  /**
   * `unknown`: no login was seen for the token; `anonymous`: the app issued it to a request without a
   * session (a login page's cookie), remembered for a while; `unavailable`: the store could not answer.
   */
  readonly state: SessionState | 'unknown' | 'anonymous' | 'unavailable';
  /**
   * Set by the cache alone, when it stores the decision: the slim form of the record, or the one a
   * sibling token of the same session already holds. (The decision object itself is never copied: its
   * caller goes on updating its activity.)
   */
  session: CachedSession | undefined;
  /** When the store was read (clock milliseconds). */
  readonly fetchedAt: number;
  /** The cache epoch at fill; a live entry from an older epoch is not trusted (`refresh` sets -1). */
  epoch: number;
  /** Last activity seen (here or in the store); kept across refills of the same session. */
  lastSeenAt: number;
  /** Last activity written to the store. */
  lastWrittenAt: number;
}

export interface DecisionCacheOptions {
  /** Entries kept (LRU beyond). */
  max: number;
  /** Milliseconds a live or unknown decision is trusted before the store is asked again. */
  maxStaleness: number;
  /** Clock in epoch milliseconds. @default Date.now */
  now?: () => number;
}

/** A store read in flight for one token id; an invalidation during the read voids it. */
export interface FillTicket {
  readonly tokenId: string;
  readonly epoch: number;
  voided: boolean;
}

/**
 * The per-replica LRU of token decisions. Live and unknown decisions are trusted for `maxStaleness` and
 * only within the current epoch (bumped when the invalidation channel may have lost messages); ended
 * sessions (tombstones) are trusted for as long as they stay in the LRU, whatever the channel does,
 * because a token once dead never lives again: past its session's `expiresAt` too, so a dead token
 * keeps costing no store read however often it comes back.
 *
 * The cache-fill race (a store read that returns "live" after the revocation it raced was applied) is
 * closed with fill tickets: `invalidate` voids the pending read of the same token id, and a voided or
 * older-epoch fill is not cached.
 */
export class DecisionCache {
  readonly #lru: LRUCache<string, Decision>;
  readonly #pending = new Map<string, FillTicket>();
  /**
   * The cached token ids of each session, so a session's end reaches every value cached for it: a
   * rotating cookie's values outnumber what the session record lists (and what an invalidation names).
   * Most sessions have one cached token: it is kept as the string itself, a list only from the second
   * (a `Set` per session cost about 140 B per entry; bench/results/cache-memory.md).
   */
  readonly #bySession = new Map<string, string | string[]>();
  /** Sessions seen ending lately: a store read that raced the end and answered "live" is not cached. */
  readonly #ended = new Map<string, number>();
  readonly #maxStaleness: number;
  readonly #now: () => number;
  #epoch = 0;

  constructor(options: DecisionCacheOptions) {
    this.#lru = new LRUCache<string, Decision>({
      max: options.max,
      dispose: (d, tokenId) => this.#unindex(d, tokenId),
    });
    this.#maxStaleness = options.maxStaleness;
    this.#now = options.now ?? Date.now;
  }

  get epoch(): number {
    return this.#epoch;
  }

  get size(): number {
    return this.#lru.size;
  }

  /** Milliseconds a live or unknown decision is trusted. */
  get maxStaleness(): number {
    return this.#maxStaleness;
  }

  /** A trusted decision, or undefined (ask the store). */
  get(tokenId: string, now: number): Decision | undefined {
    const d = this.#lru.get(tokenId);
    if (d === undefined) return undefined;
    if (isProvisional(d.state)) {
      if (d.epoch !== this.#epoch || now - d.fetchedAt >= this.#maxStaleness) return undefined;
      return d;
    }
    return d;
  }

  /** The entry as cached, trusted or not (a refill carries its activity forward). */
  peek(tokenId: string): Decision | undefined {
    return this.#lru.peek(tokenId);
  }

  beginFill(tokenId: string): FillTicket {
    const ticket: FillTicket = { tokenId, epoch: this.#epoch, voided: false };
    this.#pending.set(tokenId, ticket);
    return ticket;
  }

  /**
   * Caches the result of a store read unless an invalidation or an epoch change happened during it.
   * Returns false when the read must not be trusted (the caller reads again).
   */
  completeFill(ticket: FillTicket, decision: Decision): boolean {
    if (this.#pending.get(ticket.tokenId) === ticket) this.#pending.delete(ticket.tokenId);
    const sid = decision.session?.id;
    if (decision.state === 'live' && sid !== undefined && this.#ended.has(sid)) return false;
    if (ticket.voided || ticket.epoch !== this.#epoch) {
      // A dead answer is still true; only a live, unknown or anonymous one may be stale.
      if (!isProvisional(decision.state)) {
        this.#store(ticket.tokenId, decision);
        return true;
      }
      return false;
    }
    this.#store(ticket.tokenId, decision);
    return true;
  }

  /** Records a decision known to be current (a login or revocation made on this replica). */
  set(tokenId: string, decision: Decision): void {
    const ticket = this.#pending.get(tokenId);
    if (ticket) ticket.voided = true;
    this.#store(tokenId, decision);
  }

  /** These tokens are no longer live: drop their live entries and void reads in flight. */
  invalidate(tokenIds: readonly string[]): void {
    for (const id of tokenIds) {
      const ticket = this.#pending.get(id);
      if (ticket) ticket.voided = true;
      const d = this.#lru.peek(id);
      if (d !== undefined && isProvisional(d.state)) this.#lru.delete(id);
    }
  }

  /**
   * These tokens' sessions changed without ending (a warning set or cleared): their live entries are no
   * longer trusted, so the next request reads the store, but stay for `peek` (their activity carries
   * over to the refill); reads in flight are voided.
   */
  refresh(tokenIds: readonly string[]): void {
    for (const id of tokenIds) {
      const ticket = this.#pending.get(id);
      if (ticket) ticket.voided = true;
      const d = this.#lru.peek(id);
      if (d !== undefined && d.state === 'live') d.epoch = -1;
    }
  }

  /**
   * These sessions ended (another replica's message carried their records): the tokens cached here
   * become tombstones at once, so their next request is answered without a store read. Tokens not
   * cached here are left out: this replica never saw them, and a tombstone for each would crowd out
   * live entries. Reads in flight for any of them are voided.
   */
  bury(sessions: readonly SessionRecord[], now: number): void {
    for (const s of sessions) {
      if (s.state === 'live') continue;
      this.noteEnded(s);
      const dead = this.makeDecision(s.state, s, now);
      const cached = this.cachedTokensOf(s.id);
      for (const id of cached.length === 0 ? s.tokenIds : [...s.tokenIds, ...cached]) {
        const ticket = this.#pending.get(id);
        if (ticket) ticket.voided = true;
        if (this.#lru.has(id)) this.#store(id, dead);
      }
    }
  }

  #store(tokenId: string, d: Decision): void {
    const session = d.session;
    if (session === undefined) {
      this.#lru.set(tokenId, d);
      return;
    }
    const ids = this.#bySession.get(session.id);
    // Every token of a session read from the store brings its own copy of the record: the tokens
    // cached for the same session share one, when it says the same (bench/results/cache-memory.md).
    const sibling =
      ids === undefined ? undefined : this.#lru.peek(typeof ids === 'string' ? ids : (ids[0] ?? ''));
    const shared =
      sibling?.session !== undefined && sameRecord(sibling.session, session)
        ? sibling.session
        : slim(session, tokenId);
    d.session = shared;
    this.#lru.set(tokenId, d);
    if (ids === undefined) this.#bySession.set(session.id, tokenId);
    else if (typeof ids === 'string') {
      if (ids !== tokenId) this.#bySession.set(session.id, [ids, tokenId]);
    } else if (!ids.includes(tokenId)) ids.push(tokenId);
  }

  #unindex(d: Decision, tokenId: string): void {
    const sid = d.session?.id;
    if (sid === undefined) return;
    const ids = this.#bySession.get(sid);
    if (ids === undefined) return;
    if (typeof ids === 'string') {
      if (ids === tokenId) this.#bySession.delete(sid);
      return;
    }
    const at = ids.indexOf(tokenId);
    if (at !== -1) ids.splice(at, 1);
    const [only] = ids;
    if (ids.length === 1 && only !== undefined) this.#bySession.set(sid, only);
    else if (ids.length === 0) this.#bySession.delete(sid);
  }

  /** The token ids cached for a session (its listed values and any others seen). */
  cachedTokensOf(sessionId: string): readonly string[] {
    const ids = this.#bySession.get(sessionId);
    return ids === undefined ? NONE : typeof ids === 'string' ? [ids] : [...ids];
  }

  /** A session ended: a read in flight that answers it "live" will not be cached. */
  noteEnded(s: SessionRecord): void {
    this.#ended.delete(s.id);
    this.#ended.set(s.id, s.expiresAt);
    // Bounded: a race lasts one store round trip, so only the latest ends matter.
    if (this.#ended.size > ENDED_REMEMBERED) {
      const oldest = this.#ended.keys().next().value;
      if (oldest !== undefined) this.#ended.delete(oldest);
    }
  }

  /** The invalidation channel may have lost messages: no live entry (or read in flight) is trusted now. */
  distrustLive(): void {
    this.#epoch++;
    for (const t of this.#pending.values()) t.voided = true;
  }

  makeDecision(state: Decision['state'], session: CachedSession | undefined, fetchedAt: number): Decision {
    const lastSeenAt = session?.lastSeenAt ?? fetchedAt;
    return { state, session, fetchedAt, epoch: this.#epoch, lastSeenAt, lastWrittenAt: lastSeenAt };
  }

  /** For tests: the clock this cache was built with. */
  now(): number {
    return this.#now();
  }
}
