import { SESSION_STATES, type CachedSession, type SessionRecord, type SessionState } from '../model.js';

const ENDED_REMEMBERED = 10_000;
const NONE: readonly string[] = Object.freeze([]);

/** What a decision can say of its token. */
export type DecisionState = SessionState | 'unknown' | 'anonymous' | 'unavailable';

/** Slot state codes are 1 + the index in STATES; 0 is a free slot. */
const STATES: readonly DecisionState[] = [...SESSION_STATES, 'unknown', 'anonymous', 'unavailable'];
const CODE_OF = new Map<DecisionState, number>(STATES.map((s, i) => [s, i + 1]));
const LIVE = 1;
const UNKNOWN = 7;
const ANONYMOUS = 8;

function codeOf(state: DecisionState): number {
  return CODE_OF.get(state) ?? 0;
}

/** A decision that can change without its session ending (trusted for maxStaleness only), or a tombstone. */
function isProvisional(state: DecisionState): boolean {
  return state === 'live' || state === 'unknown' || state === 'anonymous';
}

function isProvisionalCode(code: number): boolean {
  return code === LIVE || code === UNKNOWN || code === ANONYMOUS;
}

export type { CachedSession };

/** What a decision is and when it was read. `get` and `peek` answer with a fresh copy of the entry. */
export interface Decision {
  /**
   * `unknown`: no login was seen for the token; `anonymous`: the app issued it to a request without a
   * session (a login page's cookie), remembered for a while; `unavailable`: the store could not answer.
   */
  readonly state: DecisionState;
  /**
   * Set by the cache when it stores the decision: its slim form of the record (no address, User-Agent
   * or location), shared with the tokens of the same session whose reads say the same.
   */
  session: CachedSession | undefined;
  /** When the store was read (clock milliseconds). */
  readonly fetchedAt: number;
  /** The cache epoch at fill; a live entry from an older epoch is not trusted (`refresh` sets -1). */
  readonly epoch: number;
  /** Last activity seen (here or in the store); kept across refills of the same session. */
  lastSeenAt: number;
  /** Last activity written to the store. */
  lastWrittenAt: number;
}

export interface DecisionCacheOptions {
  /**
   * Entries kept (LRU beyond). About 400 B of memory each when filled (bench/results/cache-memory.md);
   * the cache's arrays grow by doubling up to it, so a cache never filled costs less.
   */
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

/** The record's fields past the ones every session has: kept as an object, and only when one is set. */
type RareFields = Pick<
  CachedSession,
  'newDevice' | 'newLocation' | 'tenant' | 'endedAt' | 'endedBy' | 'pinned' | 'warning'
>;

/**
 * A row's record past its slot's key: its token ids (a string when one other than the key, else the
 * list; none when just the key of the row's one slot, so no second copy of it) and its rare fields.
 */
interface RowExtra {
  readonly tokens: string | readonly string[] | undefined;
  readonly rare: RareFields | undefined;
}

function rareFieldsOf(s: CachedSession): RareFields | undefined {
  if (
    s.newDevice === undefined &&
    s.newLocation === undefined &&
    s.tenant === undefined &&
    s.endedAt === undefined &&
    s.endedBy === undefined &&
    s.pinned === undefined &&
    s.warning === undefined
  )
    return undefined;
  return {
    ...(s.newDevice !== undefined ? { newDevice: s.newDevice } : {}),
    ...(s.newLocation !== undefined ? { newLocation: s.newLocation } : {}),
    ...(s.tenant !== undefined ? { tenant: s.tenant } : {}),
    ...(s.endedAt !== undefined ? { endedAt: s.endedAt } : {}),
    ...(s.endedBy !== undefined ? { endedBy: s.endedBy } : {}),
    ...(s.pinned !== undefined ? { pinned: s.pinned } : {}),
    ...(s.warning !== undefined ? { warning: s.warning } : {}),
  };
}

/**
 * Token ids are base64url HMAC-SHA256 digests (src/tokens/token-id.ts): 43 characters, kept as their
 * 32 bytes (a 43-character string is 64 B of heap, twice the bytes). Any other key (tests, a caller's
 * own ids) is kept as its string in a Map.
 */
const ID_CHARS = 43;
const KEY_WORDS = 8;
/**
 * A slot's fields side by side, so a lookup that misses the CPU caches reads two adjacent cache lines
 * rather than one per field array (bench/results/micro.md): its key's 8 words, then as int32 its
 * epoch, row and LRU links, then as float64 its fetchedAt, lastSeenAt and lastWrittenAt.
 */
const SLOT_BYTES = 72;
const SLOT_WORDS = SLOT_BYTES / 4;
const SLOT_F64 = SLOT_BYTES / 8;
const EPOCH = 8;
const ROW = 9;
const PREV = 10;
const NEXT = 11;
const FETCHED_AT = 6;
const LAST_SEEN_AT = 7;
const LAST_WRITTEN_AT = 8;
const ROW_BYTES = 32;
const ROW_F64 = ROW_BYTES / 8;
const ROW_WORDS = ROW_BYTES / 4;
const CREATED_AT = 0;
const ROW_LAST_SEEN_AT = 1;
const EXPIRES_AT = 2;
const REFS = 6;
const HASH = 7;
const HAS_EXTRA = 0x80;
const SEXTET = new Int8Array(128).fill(-1);
'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
  .split('')
  .forEach((c, i) => (SEXTET[c.charCodeAt(0)] = i));

function sextet(s: string, i: number): number {
  const c = s.charCodeAt(i);
  return c < 128 ? (SEXTET[c] ?? -1) : -1;
}

/** Decodes a canonical 43-character base64url id into `out` (32 bytes); false for any other string. */
function decodeId(id: string, out: Uint8Array): boolean {
  if (id.length !== ID_CHARS) return false;
  let o = 0;
  for (let i = 0; i < 40; i += 4) {
    const a = sextet(id, i);
    const b = sextet(id, i + 1);
    const c = sextet(id, i + 2);
    const d = sextet(id, i + 3);
    if ((a | b | c | d) < 0) return false;
    const n = (a << 18) | (b << 12) | (c << 6) | d;
    out[o++] = n >>> 16;
    out[o++] = (n >>> 8) & 255;
    out[o++] = n & 255;
  }
  const a = sextet(id, 40);
  const b = sextet(id, 41);
  const c = sextet(id, 42);
  // The last character's two low bits are padding: a canonical encoding has them zero, so each id
  // has one string and one byte form.
  if ((a | b | c) < 0 || (c & 3) !== 0) return false;
  const n = (a << 12) | (b << 6) | c;
  out[o++] = n >>> 10;
  out[o] = (n >>> 2) & 255;
  return true;
}

/** Mixed, so ids that are not HMAC output (tests, benches) do not cluster in the table. */
function hashOf(w: Uint32Array, at: number): number {
  let h = Math.imul((w[at] ?? 0) ^ 0x9e3779b9, 0x85ebca6b);
  h ^= Math.imul(w[at + 1] ?? 0, 0xc2b2ae35);
  h ^= h >>> 15;
  h = Math.imul(h, 0x27d4eb2f);
  return (h ^ (h >>> 13)) >>> 0;
}

function grownF64(a: Float64Array, n: number) {
  const g = new Float64Array(n);
  g.set(a);
  return g;
}
function grownI32(a: Int32Array, n: number) {
  const g = new Int32Array(n).fill(-1);
  g.set(a);
  return g;
}
function grownU8(a: Uint8Array, n: number) {
  const g = new Uint8Array(n);
  g.set(a);
  return g;
}

/** FNV-1a of a session id: the session table's hash (ids are the store's, not the client's). */
function stringHash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/**
 * Empties position `i` of a linear-probing table by backward shift, so probes need no tombstones.
 * `home` is an entry's hash.
 */
function shiftOut(table: Int32Array, mask: number, i: number, home: (entry: number) => number): void {
  for (let j = (i + 1) & mask; ; j = (j + 1) & mask) {
    const e = table[j] ?? 0;
    if (e === 0) break;
    const h = home(e) & mask;
    // The entry at j may move to i unless its home lies cyclically in (i, j].
    const stays = i <= j ? h > i && h <= j : h > i || h <= j;
    if (!stays) {
      table[i] = e;
      i = j;
    }
  }
  table[i] = 0;
}

/**
 * The set of `#frontIds` a canonical id falls in, from its first three characters (the top 13 bits of
 * its first two bytes, as `frontSetOfKey` reads them): no hashing, and HMAC output is uniform there.
 * Garbage for other strings, which are never found there anyway.
 */
function frontSetOf(id: string): number {
  return ((sextet(id, 0) << 7) | (sextet(id, 1) << 1) | (sextet(id, 2) >>> 5)) & (FRONT_SETS - 1);
}

/**
 * Characters 3-7 of an id, so a way whose id differs is passed over without reading its string (a
 * cache miss when it is not hot); equal tags still compare the strings.
 */
function frontTagOf(id: string): number {
  return (
    (sextet(id, 3) << 24) |
    (sextet(id, 4) << 18) |
    (sextet(id, 5) << 12) |
    (sextet(id, 6) << 6) |
    sextet(id, 7)
  );
}

function frontSetOfKey(bytes: Uint8Array, at: number): number {
  return (((bytes[at] ?? 0) << 5) | ((bytes[at + 1] ?? 0) >>> 3)) & (FRONT_SETS - 1);
}

const INITIAL_SLOTS = 1024;
/**
 * Token ids whose slots are found by their string (`#frontIds`), two to a set: constant memory, about
 * 200 KB and the strings it holds.
 */
const FRONT_SETS = 8192;
/**
 * Session objects handed out lately, reused while their row lives (a hit then allocates only its
 * decision), two to a set of `row % VIEW_SETS`; bounded, so memory does not grow with the entries.
 */
const VIEW_SETS = 4096;

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
 *
 * Packed (issue 16): lru-cache kept an object per entry with its record and boxed numbers, about 1 KB
 * of RSS an entry. Here each entry is a slot in typed arrays (its id's 32 bytes, state, epoch, times,
 * LRU and per-session links) found through an open-addressing table, and each distinct record is a row
 * shared by the slots of its session's tokens. The project's lru-cache stays for the other caches.
 */
export class DecisionCache {
  readonly #max: number;
  readonly #pending = new Map<string, FillTicket>();
  /** Sessions seen ending lately: a store read that raced the end and answered "live" is not cached. */
  readonly #ended = new Map<string, number>();
  readonly #maxStaleness: number;
  readonly #now: () => number;
  #epoch = 0;

  // Slots: one per cached token id.
  #capacity = 0;
  #used = 0;
  #size = 0;
  #free = -1;
  /**
   * The slots' fields, `SLOT_BYTES` each, seen as words (the key), int32 (epoch, row, LRU links) and
   * float64 (times). LRU links: `#head` most recent; a free slot's NEXT is the next free one.
   */
  #keyWords = new Uint32Array(0);
  #ints = new Int32Array(0);
  #times = new Float64Array(0);
  #state = new Uint8Array(0);
  #head = -1;
  #tail = -1;
  /**
   * The slots of a session, linked from `#sesTable`'s head, so a session's end reaches every value
   * cached for it: a rotating cookie's values outnumber what the session record lists.
   */
  #sesPrev = new Int32Array(0);
  #sesNext = new Int32Array(0);
  /** Open addressing on the session id's hash: the head slot + 1, 0 empty (no Map of id strings). */
  #sesTable = new Int32Array(0);
  #sesMask = 0;
  /** Open addressing, linear probing: slot + 1, 0 empty. */
  #table = new Int32Array(0);
  #mask = 0;
  /** Keys that are not canonical token ids. */
  readonly #oddSlot = new Map<string, number>();
  readonly #oddKey = new Map<number, string>();
  /** `#keyWords` as bytes (the front set of a slot's key). */
  #keyBytes = new Uint8Array(0);
  readonly #scratch = new Uint32Array(KEY_WORDS);
  readonly #scratchBytes = new Uint8Array(this.#scratch.buffer);
  /**
   * The slots of the token ids found lately, by their strings, in two-way sets picked by the first
   * characters (the more recent first): comparing a string the token-id memo handed out again is a
   * pointer compare, against 200-400 ns to decode 43 characters and probe, so hot tokens skip that.
   * A set, not a Map with an eviction ring: a cold hit (the working set past the front) costs two
   * array writes here, where the Map's get, delete and two sets on fresh strings cost 2 us of cache
   * misses (bench/results/micro.md). Freeing a slot drops its entry; '' is an empty way.
   */
  readonly #frontIds: string[] = new Array<string>(FRONT_SETS * 2).fill('');
  readonly #frontSlots = new Int32Array(FRONT_SETS * 2).fill(-1);
  readonly #frontTags = new Int32Array(FRONT_SETS * 2);

  // Rows: one per distinct record, shared by the slots whose reads say the same.
  #rowCapacity = 0;
  #rowUsed = 0;
  #rowFree = -1;
  /** Each row's session id and user, side by side. */
  readonly #rowStrings: string[] = [];
  /** The record's state code, with `HAS_EXTRA` when `#rowExtra` holds the row (no Map lookup else). */
  #rowState = new Uint8Array(0);
  /**
   * The rows' numbers, `ROW_BYTES` each (one cache line holds a row's): as float64 its createdAt,
   * lastSeenAt and expiresAt; as int32 the slots referring to it (for a free row, the next free row);
   * as uint32 the hash of its session id (`#sesTable`).
   */
  #rowTimes = new Float64Array(0);
  #rowInts = new Int32Array(0);
  #rowWords = new Uint32Array(0);
  /** Rows whose record lists other tokens than their slot's key, or has a rare field set. */
  readonly #rowExtra = new Map<number, RowExtra>();
  /**
   * Views handed out lately, two-way sets of rows (the more recent first), -1 an empty way: a Map with
   * an eviction ring cost a cold hit 0.6 us of misses.
   */
  readonly #viewRows = new Int32Array(VIEW_SETS * 2).fill(-1);
  readonly #views: (CachedSession | undefined)[] = new Array<CachedSession | undefined>(VIEW_SETS * 2).fill(
    undefined,
  );

  constructor(options: DecisionCacheOptions) {
    this.#max = Math.max(1, Math.floor(options.max));
    this.#maxStaleness = options.maxStaleness;
    this.#now = options.now ?? Date.now;
    this.#growSlots(Math.min(this.#max, INITIAL_SLOTS));
    this.#growRows(Math.min(this.#max, INITIAL_SLOTS));
  }

  get epoch(): number {
    return this.#epoch;
  }

  get size(): number {
    return this.#size;
  }

  /** Milliseconds a live or unknown decision is trusted. */
  get maxStaleness(): number {
    return this.#maxStaleness;
  }

  /** A trusted decision, or undefined (ask the store). */
  get(tokenId: string, now: number): Decision | undefined {
    const slot = this.#find(tokenId);
    if (slot < 0) return undefined;
    this.#toFront(slot);
    const code = this.#state[slot] ?? 0;
    if (
      isProvisionalCode(code) &&
      (this.#ints[slot * SLOT_WORDS + EPOCH] !== this.#epoch ||
        now - (this.#times[slot * SLOT_F64 + FETCHED_AT] ?? 0) >= this.#maxStaleness)
    )
      return undefined;
    return this.#decisionAt(slot, tokenId);
  }

  /** The entry as cached, trusted or not (a refill carries its activity forward). */
  peek(tokenId: string): Decision | undefined {
    const slot = this.#find(tokenId);
    return slot < 0 ? undefined : this.#decisionAt(slot, tokenId);
  }

  /** Activity seen on a cached token (its decision came from `get` or a fill): kept for its next hits. */
  noteActivity(tokenId: string, lastSeenAt: number, lastWrittenAt: number): void {
    const slot = this.#find(tokenId);
    if (slot < 0) return;
    this.#times[slot * SLOT_F64 + LAST_SEEN_AT] = lastSeenAt;
    this.#times[slot * SLOT_F64 + LAST_WRITTEN_AT] = lastWrittenAt;
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
      const slot = this.#find(id);
      if (slot >= 0 && isProvisionalCode(this.#state[slot] ?? 0)) this.#release(slot);
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
      const slot = this.#find(id);
      if (slot >= 0 && this.#state[slot] === LIVE) this.#ints[slot * SLOT_WORDS + EPOCH] = -1;
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
        if (this.#find(id) >= 0) this.#store(id, dead);
      }
    }
  }

  /** The token ids cached for a session (its listed values and any others seen). */
  cachedTokensOf(sessionId: string): readonly string[] {
    let slot = this.#sesHead(sessionId);
    if (slot < 0) return NONE;
    const ids: string[] = [];
    for (; slot >= 0; slot = this.#sesNext[slot] ?? -1) ids.push(this.#keyOf(slot));
    return ids;
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

  makeDecision(state: DecisionState, session: CachedSession | undefined, fetchedAt: number): Decision {
    const lastSeenAt = session?.lastSeenAt ?? fetchedAt;
    return { state, session, fetchedAt, epoch: this.#epoch, lastSeenAt, lastWrittenAt: lastSeenAt };
  }

  /** For tests: the clock this cache was built with. */
  now(): number {
    return this.#now();
  }

  /** For tests: rows (distinct records) held. */
  get rowCount(): number {
    let free = 0;
    for (let r = this.#rowFree; r >= 0; r = this.#rowInts[r * ROW_WORDS + REFS] ?? -1) free++;
    return this.#rowUsed - free;
  }

  /** For tests: slots allocated (grows by doubling up to `max`). */
  get capacity(): number {
    return this.#capacity;
  }

  #decisionAt(slot: number, key: string): Decision {
    const r = this.#ints[slot * SLOT_WORDS + ROW] ?? -1;
    return {
      state: STATES[(this.#state[slot] ?? 1) - 1] ?? 'unknown',
      session: r < 0 ? undefined : this.#view(r, key),
      fetchedAt: this.#times[slot * SLOT_F64 + FETCHED_AT] ?? 0,
      epoch: this.#ints[slot * SLOT_WORDS + EPOCH] ?? 0,
      lastSeenAt: this.#times[slot * SLOT_F64 + LAST_SEEN_AT] ?? 0,
      lastWrittenAt: this.#times[slot * SLOT_F64 + LAST_WRITTEN_AT] ?? 0,
    };
  }

  /** The slot of a key, or -1. */
  #find(tokenId: string): number {
    if (tokenId.length !== ID_CHARS) return this.#oddSlot.get(tokenId) ?? -1;
    const ids = this.#frontIds;
    const slots = this.#frontSlots;
    const tags = this.#frontTags;
    const at = frontSetOf(tokenId) * 2;
    const tag = frontTagOf(tokenId);
    if (tags[at] === tag && ids[at] === tokenId) return slots[at] ?? -1;
    let slot: number;
    if (tags[at + 1] === tag && ids[at + 1] === tokenId) slot = slots[at + 1] ?? -1;
    else {
      if (!decodeId(tokenId, this.#scratchBytes)) return this.#oddSlot.get(tokenId) ?? -1;
      slot = this.#probe(hashOf(this.#scratch, 0));
      if (slot < 0) return -1;
    }
    ids[at + 1] = ids[at] ?? '';
    slots[at + 1] = slots[at] ?? -1;
    tags[at + 1] = tags[at] ?? 0;
    ids[at] = tokenId;
    slots[at] = slot;
    tags[at] = tag;
    return slot;
  }

  /** A slot freed: its key leaves `#frontIds` (its set is read from the key's bytes). */
  #dropFront(slot: number): void {
    const at = frontSetOfKey(this.#keyBytes, slot * SLOT_BYTES) * 2;
    const ids = this.#frontIds;
    const slots = this.#frontSlots;
    const tags = this.#frontTags;
    if (slots[at] === slot) {
      ids[at] = ids[at + 1] ?? '';
      slots[at] = slots[at + 1] ?? -1;
      tags[at] = tags[at + 1] ?? 0;
    } else if (slots[at + 1] !== slot) return;
    ids[at + 1] = '';
    slots[at + 1] = -1;
    tags[at + 1] = 0;
  }

  #probe(h: number): number {
    const table = this.#table;
    const words = this.#keyWords;
    const key = this.#scratch;
    for (let i = h & this.#mask; ; i = (i + 1) & this.#mask) {
      const e = table[i] ?? 0;
      if (e === 0) return -1;
      const slot = e - 1;
      const at = slot * SLOT_WORDS;
      if (words[at] !== key[0]) continue;
      let k = 1;
      while (k < KEY_WORDS && words[at + k] === key[k]) k++;
      if (k === KEY_WORDS) return slot;
    }
  }

  #tableInsert(slot: number): void {
    let i = hashOf(this.#keyWords, slot * SLOT_WORDS) & this.#mask;
    while ((this.#table[i] ?? 0) !== 0) i = (i + 1) & this.#mask;
    this.#table[i] = slot + 1;
  }

  #tableRemove(slot: number): void {
    const table = this.#table;
    const mask = this.#mask;
    const words = this.#keyWords;
    let i = hashOf(words, slot * SLOT_WORDS) & mask;
    while ((table[i] ?? 0) !== slot + 1) i = (i + 1) & mask;
    shiftOut(table, mask, i, (e) => hashOf(words, (e - 1) * SLOT_WORDS));
  }

  /** The position in `#sesTable` of a session's entry, or -1. */
  #sesPos(sessionId: string, h: number): number {
    const table = this.#sesTable;
    for (let i = h & this.#sesMask; ; i = (i + 1) & this.#sesMask) {
      const e = table[i] ?? 0;
      if (e === 0) return -1;
      const r = this.#ints[(e - 1) * SLOT_WORDS + ROW] ?? -1;
      if (this.#rowWords[r * ROW_WORDS + HASH] === h && this.#rowStrings[r * 2] === sessionId) return i;
    }
  }

  #sesHead(sessionId: string): number {
    const pos = this.#sesPos(sessionId, stringHash(sessionId));
    return pos < 0 ? -1 : (this.#sesTable[pos] ?? 0) - 1;
  }

  #sesInsert(slot: number, h: number): void {
    let i = h & this.#sesMask;
    while ((this.#sesTable[i] ?? 0) !== 0) i = (i + 1) & this.#sesMask;
    this.#sesTable[i] = slot + 1;
  }

  #keyOf(slot: number): string {
    const odd = this.#oddKey.get(slot);
    if (odd !== undefined) return odd;
    return Buffer.from(this.#keyWords.buffer, slot * SLOT_BYTES, KEY_WORDS * 4).toString('base64url');
  }

  #store(tokenId: string, d: Decision): void {
    let slot = this.#find(tokenId);
    if (slot < 0) slot = this.#insert(tokenId);
    else this.#toFront(slot);
    const session = d.session;
    const oldRow = this.#ints[slot * SLOT_WORDS + ROW] ?? -1;
    const row = session === undefined ? -1 : this.#rowFor(session, tokenId, slot);
    if (oldRow >= 0) {
      this.#unlinkSession(slot, this.#rowStrings[oldRow * 2] ?? '');
      this.#unref(oldRow);
    }
    this.#ints[slot * SLOT_WORDS + ROW] = row;
    if (session !== undefined && row >= 0) {
      this.#linkSession(slot, session.id);
      d.session = this.#view(row, tokenId);
    }
    this.#state[slot] = codeOf(d.state);
    this.#ints[slot * SLOT_WORDS + EPOCH] = d.epoch;
    this.#times[slot * SLOT_F64 + FETCHED_AT] = d.fetchedAt;
    this.#times[slot * SLOT_F64 + LAST_SEEN_AT] = d.lastSeenAt;
    this.#times[slot * SLOT_F64 + LAST_WRITTEN_AT] = d.lastWrittenAt;
  }

  /** A new slot for a key not cached, the least recent entry evicted first when at `max`. */
  #insert(tokenId: string): number {
    if (this.#size >= this.#max && this.#tail >= 0) this.#release(this.#tail);
    if (this.#free < 0 && this.#used === this.#capacity)
      this.#growSlots(Math.min(this.#max, this.#capacity * 2));
    let slot: number;
    if (this.#free >= 0) {
      slot = this.#free;
      this.#free = this.#ints[slot * SLOT_WORDS + NEXT] ?? -1;
    } else slot = this.#used++;
    if (decodeId(tokenId, this.#scratchBytes)) {
      this.#keyWords.set(this.#scratch, slot * SLOT_WORDS);
      this.#tableInsert(slot);
    } else {
      this.#oddSlot.set(tokenId, slot);
      this.#oddKey.set(slot, tokenId);
    }
    this.#ints[slot * SLOT_WORDS + ROW] = -1;
    this.#sesPrev[slot] = -1;
    this.#sesNext[slot] = -1;
    this.#ints[slot * SLOT_WORDS + PREV] = -1;
    this.#ints[slot * SLOT_WORDS + NEXT] = this.#head;
    if (this.#head >= 0) this.#ints[this.#head * SLOT_WORDS + PREV] = slot;
    this.#head = slot;
    if (this.#tail < 0) this.#tail = slot;
    this.#size++;
    return slot;
  }

  /** Drops an entry: its key, LRU and session links, and its row if no other slot shares it. */
  #release(slot: number): void {
    const odd = this.#oddKey.get(slot);
    if (odd !== undefined) {
      this.#oddKey.delete(slot);
      this.#oddSlot.delete(odd);
    } else {
      this.#tableRemove(slot);
      this.#dropFront(slot);
    }
    const p = this.#ints[slot * SLOT_WORDS + PREV] ?? -1;
    const n = this.#ints[slot * SLOT_WORDS + NEXT] ?? -1;
    if (p >= 0) this.#ints[p * SLOT_WORDS + NEXT] = n;
    else this.#head = n;
    if (n >= 0) this.#ints[n * SLOT_WORDS + PREV] = p;
    else this.#tail = p;
    const row = this.#ints[slot * SLOT_WORDS + ROW] ?? -1;
    if (row >= 0) {
      this.#unlinkSession(slot, this.#rowStrings[row * 2] ?? '');
      this.#unref(row);
      this.#ints[slot * SLOT_WORDS + ROW] = -1;
    }
    this.#state[slot] = 0;
    this.#ints[slot * SLOT_WORDS + NEXT] = this.#free;
    this.#free = slot;
    this.#size--;
  }

  #toFront(slot: number): void {
    if (this.#head === slot) return;
    const p = this.#ints[slot * SLOT_WORDS + PREV] ?? -1;
    const n = this.#ints[slot * SLOT_WORDS + NEXT] ?? -1;
    if (p >= 0) this.#ints[p * SLOT_WORDS + NEXT] = n;
    if (n >= 0) this.#ints[n * SLOT_WORDS + PREV] = p;
    else this.#tail = p;
    this.#ints[slot * SLOT_WORDS + PREV] = -1;
    this.#ints[slot * SLOT_WORDS + NEXT] = this.#head;
    if (this.#head >= 0) this.#ints[this.#head * SLOT_WORDS + PREV] = slot;
    this.#head = slot;
  }

  /** Links after the head, so the head stays the session's first cached token (the sibling compared). */
  #linkSession(slot: number, sessionId: string): void {
    const h = this.#rowWords[(this.#ints[slot * SLOT_WORDS + ROW] ?? -1) * ROW_WORDS + HASH] ?? 0;
    const pos = this.#sesPos(sessionId, h);
    if (pos < 0) {
      this.#sesPrev[slot] = -1;
      this.#sesNext[slot] = -1;
      this.#sesInsert(slot, h);
      return;
    }
    const head = (this.#sesTable[pos] ?? 0) - 1;
    const n = this.#sesNext[head] ?? -1;
    this.#sesNext[slot] = n;
    this.#sesPrev[slot] = head;
    this.#sesNext[head] = slot;
    if (n >= 0) this.#sesPrev[n] = slot;
  }

  /** The slot still refers to its row (the session's hash and id). */
  #unlinkSession(slot: number, sessionId: string): void {
    const p = this.#sesPrev[slot] ?? -1;
    const n = this.#sesNext[slot] ?? -1;
    if (p >= 0) this.#sesNext[p] = n;
    else {
      const pos = this.#sesPos(
        sessionId,
        this.#rowWords[(this.#ints[slot * SLOT_WORDS + ROW] ?? -1) * ROW_WORDS + HASH] ?? 0,
      );
      if (pos >= 0 && n >= 0) this.#sesTable[pos] = n + 1;
      else if (pos >= 0) {
        const table = this.#sesTable;
        shiftOut(
          table,
          this.#sesMask,
          pos,
          (e) => this.#rowWords[(this.#ints[(e - 1) * SLOT_WORDS + ROW] ?? -1) * ROW_WORDS + HASH] ?? 0,
        );
      }
    }
    if (n >= 0) this.#sesPrev[n] = p;
    this.#sesPrev[slot] = -1;
    this.#sesNext[slot] = -1;
  }

  /**
   * The row for a record stored under `tokenId`: the session's first cached token's when the reads say
   * the same (same state, end, pin, warning and tokens: activity may differ, each slot keeps its own),
   * else a new one. Every token of a session read from the store brings its own copy of the record.
   */
  #rowFor(s: CachedSession, tokenId: string, slot: number): number {
    const head = this.#sesHead(s.id);
    if (head >= 0) {
      const r = this.#ints[head * SLOT_WORDS + ROW] ?? -1;
      if (r >= 0 && this.#rowSays(r, head === slot, s, tokenId)) {
        this.#rowInts[r * ROW_WORDS + REFS] = (this.#rowInts[r * ROW_WORDS + REFS] ?? 0) + 1;
        return r;
      }
    }
    return this.#newRow(s, tokenId);
  }

  #rowSays(r: number, ownRow: boolean, s: CachedSession, tokenId: string): boolean {
    const code = this.#rowState[r] ?? 0;
    if ((code & ~HAS_EXTRA) !== codeOf(s.state)) return false;
    const extra = code & HAS_EXTRA ? this.#rowExtra.get(r) : undefined;
    const rare = extra?.rare;
    if (rare?.endedAt !== s.endedAt || rare?.pinned !== s.pinned) return false;
    if (rare?.warning?.sessionId !== s.warning?.sessionId) return false;
    const listed = s.tokenIds;
    const kept = extra?.tokens;
    // A row listing just its slot's own key is that slot's alone.
    if (kept === undefined) return ownRow && listed.length === 1 && listed[0] === tokenId;
    if (typeof kept === 'string') return listed.length === 1 && listed[0] === kept;
    if (kept.length !== listed.length) return false;
    for (let i = 0; i < kept.length; i++) if (kept[i] !== listed[i]) return false;
    return true;
  }

  #newRow(s: CachedSession, tokenId: string): number {
    if (this.#rowFree < 0 && this.#rowUsed === this.#rowCapacity) this.#growRows(this.#rowCapacity * 2);
    let r: number;
    if (this.#rowFree >= 0) {
      r = this.#rowFree;
      this.#rowFree = this.#rowInts[r * ROW_WORDS + REFS] ?? -1;
    } else r = this.#rowUsed++;
    this.#rowStrings[r * 2] = s.id;
    this.#rowStrings[r * 2 + 1] = s.user;
    this.#rowState[r] = codeOf(s.state);
    this.#rowTimes[r * ROW_F64 + CREATED_AT] = s.createdAt;
    this.#rowTimes[r * ROW_F64 + ROW_LAST_SEEN_AT] = s.lastSeenAt;
    this.#rowTimes[r * ROW_F64 + EXPIRES_AT] = s.expiresAt;
    this.#rowInts[r * ROW_WORDS + REFS] = 1;
    const listed = s.tokenIds;
    const [only] = listed;
    this.#rowWords[r * ROW_WORDS + HASH] = stringHash(s.id);
    const tokens =
      listed.length === 1 && only === tokenId
        ? undefined
        : listed.length === 1 && only !== undefined
          ? only
          : [...listed];
    const rare = rareFieldsOf(s);
    if (tokens !== undefined || rare !== undefined) {
      this.#rowExtra.set(r, { tokens, rare });
      this.#rowState[r] = codeOf(s.state) | HAS_EXTRA;
    } else this.#rowExtra.delete(r);
    this.#dropView(r);
    return r;
  }

  #unref(r: number): void {
    const refs = (this.#rowInts[r * ROW_WORDS + REFS] ?? 1) - 1;
    if (refs > 0) {
      this.#rowInts[r * ROW_WORDS + REFS] = refs;
      return;
    }
    this.#rowStrings[r * 2] = '';
    this.#rowStrings[r * 2 + 1] = '';
    this.#rowExtra.delete(r);
    this.#dropView(r);
    this.#rowInts[r * ROW_WORDS + REFS] = this.#rowFree;
    this.#rowFree = r;
  }

  /** The row as a session object; `key` is the key of the slot read (a row listing only it needs it). */
  #view(r: number, key: string): CachedSession {
    const at = (r % VIEW_SETS) * 2;
    const rows = this.#viewRows;
    const views = this.#views;
    if (rows[at] === r) {
      const cached = views[at];
      if (cached !== undefined) return cached;
    }
    if (rows[at + 1] === r) {
      const cached = views[at + 1];
      if (cached !== undefined) {
        rows[at + 1] = rows[at] ?? -1;
        views[at + 1] = views[at];
        rows[at] = r;
        views[at] = cached;
        return cached;
      }
    }
    const code = this.#rowState[r] ?? 0;
    const extra = code & HAS_EXTRA ? this.#rowExtra.get(r) : undefined;
    const kept = extra?.tokens;
    const base: CachedSession = {
      id: this.#rowStrings[r * 2] ?? '',
      user: this.#rowStrings[r * 2 + 1] ?? '',
      state: SESSION_STATES[(code & ~HAS_EXTRA) - 1] ?? 'live',
      createdAt: this.#rowTimes[r * ROW_F64 + CREATED_AT] ?? 0,
      lastSeenAt: this.#rowTimes[r * ROW_F64 + ROW_LAST_SEEN_AT] ?? 0,
      expiresAt: this.#rowTimes[r * ROW_F64 + EXPIRES_AT] ?? 0,
      tokenIds: kept === undefined ? [key] : typeof kept === 'string' ? [kept] : kept,
    };
    const rare = extra?.rare;
    const view = rare === undefined ? base : { ...base, ...rare };
    rows[at + 1] = rows[at] ?? -1;
    views[at + 1] = views[at];
    rows[at] = r;
    views[at] = view;
    return view;
  }

  /** A row freed or rebuilt: its view is no longer its record. */
  #dropView(r: number): void {
    const at = (r % VIEW_SETS) * 2;
    const rows = this.#viewRows;
    const views = this.#views;
    if (rows[at] === r) {
      rows[at] = rows[at + 1] ?? -1;
      views[at] = views[at + 1];
    } else if (rows[at + 1] !== r) return;
    rows[at + 1] = -1;
    views[at + 1] = undefined;
  }

  #growSlots(n: number): void {
    const slots = new ArrayBuffer(n * SLOT_BYTES);
    const bytes = new Uint8Array(slots);
    bytes.set(this.#keyBytes);
    this.#keyBytes = bytes;
    this.#keyWords = new Uint32Array(slots);
    this.#ints = new Int32Array(slots);
    this.#times = new Float64Array(slots);
    this.#state = grownU8(this.#state, n);
    this.#sesPrev = grownI32(this.#sesPrev, n);
    this.#sesNext = grownI32(this.#sesNext, n);
    this.#capacity = n;
    // At most half full: short probes.
    let size = 16;
    while (size < n * 2) size *= 2;
    if (size !== this.#table.length) {
      this.#table = new Int32Array(size);
      this.#mask = size - 1;
      for (let s = 0; s < this.#used; s++)
        if ((this.#state[s] ?? 0) !== 0 && !this.#oddKey.has(s)) this.#tableInsert(s);
      this.#sesTable = new Int32Array(size);
      this.#sesMask = size - 1;
      for (let s = 0; s < this.#used; s++) {
        const r = this.#ints[s * SLOT_WORDS + ROW] ?? -1;
        if ((this.#state[s] ?? 0) !== 0 && r >= 0 && this.#sesPrev[s] === -1)
          this.#sesInsert(s, this.#rowWords[r * ROW_WORDS + HASH] ?? 0);
      }
    }
  }

  #growRows(n: number): void {
    this.#rowState = grownU8(this.#rowState, n);
    this.#rowTimes = grownF64(this.#rowTimes, n * ROW_F64);
    this.#rowInts = new Int32Array(this.#rowTimes.buffer);
    this.#rowWords = new Uint32Array(this.#rowTimes.buffer);
    this.#rowCapacity = n;
  }
}
