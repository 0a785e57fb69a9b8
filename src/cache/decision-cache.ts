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
   * Entries kept (LRU beyond). About 300 B of memory each when filled (bench/results/cache-memory.md);
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
function grownU32(a: Uint32Array, n: number) {
  const g = new Uint32Array(n);
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

const INITIAL_SLOTS = 1024;
/** Token ids whose slots are found by their string (`#front`): constant memory, about 1.5 MB. */
const FRONT = 16_384;
/**
 * Session objects handed out lately, reused while their row lives (a hit then allocates only its
 * decision); bounded, so memory does not grow with the entries.
 */
const VIEWS = 4096;

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
  #keyWords = new Uint32Array(0);
  #state = new Uint8Array(0);
  #slotEpoch = new Int32Array(0);
  #fetchedAt = new Float64Array(0);
  #lastSeenAt = new Float64Array(0);
  #lastWrittenAt = new Float64Array(0);
  /** LRU links (`#head` most recent); a free slot's `#next` is the next free one. */
  #prev = new Int32Array(0);
  #next = new Int32Array(0);
  #head = -1;
  #tail = -1;
  #row = new Int32Array(0);
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
  readonly #scratch = new Uint32Array(KEY_WORDS);
  readonly #scratchBytes = new Uint8Array(this.#scratch.buffer);
  /**
   * The slots of the token ids looked up lately (`FRONT`, oldest first), by their strings: a Map
   * lookup on a string that caches its hash (the token-id memo hands out the same string) is a third
   * of the cost of decoding 43 characters, so the hot tokens skip it. Freeing a slot drops its entry.
   */
  readonly #front = new Map<string, number>();
  /**
   * The key a slot was found by through `#front`, so an entry there is trusted only while its slot
   * still holds it (cleared when the slot is freed): the Map itself is never swept on a free.
   */
  readonly #frontKey = new Map<number, string>();
  /** The keys in `#front`, oldest at `#ringAt` (a Map's own order costs a scan past its deletions). */
  readonly #ring: string[] = new Array<string>(FRONT).fill('');
  #ringAt = 0;

  // Rows: one per distinct record, shared by the slots whose reads say the same.
  #rowCapacity = 0;
  #rowUsed = 0;
  #rowFree = -1;
  readonly #rowId: string[] = [];
  readonly #rowUser: string[] = [];
  #rowState = new Uint8Array(0);
  #rowCreatedAt = new Float64Array(0);
  #rowLastSeenAt = new Float64Array(0);
  #rowExpiresAt = new Float64Array(0);
  /** Slots referring to the row; a free row's count is the next free row. */
  #rowRefs = new Int32Array(0);
  /**
   */
  /** The hash of the row's session id (`#sesTable`). */
  #rowHash = new Uint32Array(0);
  /** Rows whose record lists other tokens than their slot's key, or has a rare field set. */
  readonly #rowExtra = new Map<number, RowExtra>();
  /** Views handed out lately, oldest first (`VIEWS`). */
  readonly #views = new Map<number, CachedSession>();
  /** The rows of `#views`, oldest at `#viewAt`. */
  readonly #viewRing = new Int32Array(VIEWS).fill(-1);
  #viewAt = 0;

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
      (this.#slotEpoch[slot] !== this.#epoch || now - (this.#fetchedAt[slot] ?? 0) >= this.#maxStaleness)
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
    this.#lastSeenAt[slot] = lastSeenAt;
    this.#lastWrittenAt[slot] = lastWrittenAt;
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
      if (slot >= 0 && this.#state[slot] === LIVE) this.#slotEpoch[slot] = -1;
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
    for (let r = this.#rowFree; r >= 0; r = this.#rowRefs[r] ?? -1) free++;
    return this.#rowUsed - free;
  }

  /** For tests: slots allocated (grows by doubling up to `max`). */
  get capacity(): number {
    return this.#capacity;
  }

  #decisionAt(slot: number, key: string): Decision {
    const r = this.#row[slot] ?? -1;
    return {
      state: STATES[(this.#state[slot] ?? 1) - 1] ?? 'unknown',
      session: r < 0 ? undefined : this.#view(r, key),
      fetchedAt: this.#fetchedAt[slot] ?? 0,
      epoch: this.#slotEpoch[slot] ?? 0,
      lastSeenAt: this.#lastSeenAt[slot] ?? 0,
      lastWrittenAt: this.#lastWrittenAt[slot] ?? 0,
    };
  }

  /** The slot of a key, or -1. */
  #find(tokenId: string): number {
    const hot = this.#front.get(tokenId);
    if (hot !== undefined && this.#frontKey.get(hot) === tokenId) return hot;
    if (!decodeId(tokenId, this.#scratchBytes)) return this.#oddSlot.get(tokenId) ?? -1;
    const slot = this.#probe(hashOf(this.#scratch, 0));
    if (slot >= 0) {
      const oldest = this.#ring[this.#ringAt] ?? '';
      const gone = oldest === '' ? undefined : this.#front.get(oldest);
      if (gone !== undefined) {
        this.#front.delete(oldest);
        if (this.#frontKey.get(gone) === oldest) this.#frontKey.delete(gone);
      }
      this.#ring[this.#ringAt] = tokenId;
      this.#ringAt = (this.#ringAt + 1) % FRONT;
      this.#front.set(tokenId, slot);
      this.#frontKey.set(slot, tokenId);
    }
    return slot;
  }

  #probe(h: number): number {
    const table = this.#table;
    const words = this.#keyWords;
    const key = this.#scratch;
    for (let i = h & this.#mask; ; i = (i + 1) & this.#mask) {
      const e = table[i] ?? 0;
      if (e === 0) return -1;
      const slot = e - 1;
      const at = slot * KEY_WORDS;
      if (words[at] !== key[0]) continue;
      let k = 1;
      while (k < KEY_WORDS && words[at + k] === key[k]) k++;
      if (k === KEY_WORDS) return slot;
    }
  }

  #tableInsert(slot: number): void {
    let i = hashOf(this.#keyWords, slot * KEY_WORDS) & this.#mask;
    while ((this.#table[i] ?? 0) !== 0) i = (i + 1) & this.#mask;
    this.#table[i] = slot + 1;
  }

  #tableRemove(slot: number): void {
    const table = this.#table;
    const mask = this.#mask;
    const words = this.#keyWords;
    let i = hashOf(words, slot * KEY_WORDS) & mask;
    while ((table[i] ?? 0) !== slot + 1) i = (i + 1) & mask;
    shiftOut(table, mask, i, (e) => hashOf(words, (e - 1) * KEY_WORDS));
  }

  /** The position in `#sesTable` of a session's entry, or -1. */
  #sesPos(sessionId: string, h: number): number {
    const table = this.#sesTable;
    for (let i = h & this.#sesMask; ; i = (i + 1) & this.#sesMask) {
      const e = table[i] ?? 0;
      if (e === 0) return -1;
      const r = this.#row[e - 1] ?? -1;
      if (this.#rowHash[r] === h && this.#rowId[r] === sessionId) return i;
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
    const at = slot * KEY_WORDS * 4;
    return Buffer.from(this.#keyWords.buffer, at, KEY_WORDS * 4).toString('base64url');
  }

  #store(tokenId: string, d: Decision): void {
    let slot = this.#find(tokenId);
    if (slot < 0) slot = this.#insert(tokenId);
    else this.#toFront(slot);
    const session = d.session;
    const oldRow = this.#row[slot] ?? -1;
    const row = session === undefined ? -1 : this.#rowFor(session, tokenId, slot);
    if (oldRow >= 0) {
      this.#unlinkSession(slot, this.#rowId[oldRow] ?? '');
      this.#unref(oldRow);
    }
    this.#row[slot] = row;
    if (session !== undefined && row >= 0) {
      this.#linkSession(slot, session.id);
      d.session = this.#view(row, tokenId);
    }
    this.#state[slot] = codeOf(d.state);
    this.#slotEpoch[slot] = d.epoch;
    this.#fetchedAt[slot] = d.fetchedAt;
    this.#lastSeenAt[slot] = d.lastSeenAt;
    this.#lastWrittenAt[slot] = d.lastWrittenAt;
  }

  /** A new slot for a key not cached, the least recent entry evicted first when at `max`. */
  #insert(tokenId: string): number {
    if (this.#size >= this.#max && this.#tail >= 0) this.#release(this.#tail);
    if (this.#free < 0 && this.#used === this.#capacity)
      this.#growSlots(Math.min(this.#max, this.#capacity * 2));
    let slot: number;
    if (this.#free >= 0) {
      slot = this.#free;
      this.#free = this.#next[slot] ?? -1;
    } else slot = this.#used++;
    if (decodeId(tokenId, this.#scratchBytes)) {
      this.#keyWords.set(this.#scratch, slot * KEY_WORDS);
      this.#tableInsert(slot);
    } else {
      this.#oddSlot.set(tokenId, slot);
      this.#oddKey.set(slot, tokenId);
    }
    this.#row[slot] = -1;
    this.#sesPrev[slot] = -1;
    this.#sesNext[slot] = -1;
    this.#prev[slot] = -1;
    this.#next[slot] = this.#head;
    if (this.#head >= 0) this.#prev[this.#head] = slot;
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
    } else this.#tableRemove(slot);
    const p = this.#prev[slot] ?? -1;
    const n = this.#next[slot] ?? -1;
    if (p >= 0) this.#next[p] = n;
    else this.#head = n;
    if (n >= 0) this.#prev[n] = p;
    else this.#tail = p;
    const row = this.#row[slot] ?? -1;
    if (row >= 0) {
      this.#unlinkSession(slot, this.#rowId[row] ?? '');
      this.#unref(row);
      this.#row[slot] = -1;
    }
    this.#state[slot] = 0;
    this.#next[slot] = this.#free;
    this.#free = slot;
    this.#size--;
    this.#frontKey.delete(slot);
  }

  #toFront(slot: number): void {
    if (this.#head === slot) return;
    const p = this.#prev[slot] ?? -1;
    const n = this.#next[slot] ?? -1;
    if (p >= 0) this.#next[p] = n;
    if (n >= 0) this.#prev[n] = p;
    else this.#tail = p;
    this.#prev[slot] = -1;
    this.#next[slot] = this.#head;
    if (this.#head >= 0) this.#prev[this.#head] = slot;
    this.#head = slot;
  }

  /** Links after the head, so the head stays the session's first cached token (the sibling compared). */
  #linkSession(slot: number, sessionId: string): void {
    const h = this.#rowHash[this.#row[slot] ?? -1] ?? 0;
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
      const pos = this.#sesPos(sessionId, this.#rowHash[this.#row[slot] ?? -1] ?? 0);
      if (pos >= 0 && n >= 0) this.#sesTable[pos] = n + 1;
      else if (pos >= 0) {
        const table = this.#sesTable;
        shiftOut(table, this.#sesMask, pos, (e) => this.#rowHash[this.#row[e - 1] ?? -1] ?? 0);
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
      const r = this.#row[head] ?? -1;
      if (r >= 0 && this.#rowSays(r, head === slot, s, tokenId)) {
        this.#rowRefs[r] = (this.#rowRefs[r] ?? 0) + 1;
        return r;
      }
    }
    return this.#newRow(s, tokenId);
  }

  #rowSays(r: number, ownRow: boolean, s: CachedSession, tokenId: string): boolean {
    if (this.#rowState[r] !== codeOf(s.state)) return false;
    const extra = this.#rowExtra.get(r);
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
      this.#rowFree = this.#rowRefs[r] ?? -1;
    } else r = this.#rowUsed++;
    this.#rowId[r] = s.id;
    this.#rowUser[r] = s.user;
    this.#rowState[r] = codeOf(s.state);
    this.#rowCreatedAt[r] = s.createdAt;
    this.#rowLastSeenAt[r] = s.lastSeenAt;
    this.#rowExpiresAt[r] = s.expiresAt;
    this.#rowRefs[r] = 1;
    const listed = s.tokenIds;
    const [only] = listed;
    this.#rowHash[r] = stringHash(s.id);
    const tokens =
      listed.length === 1 && only === tokenId
        ? undefined
        : listed.length === 1 && only !== undefined
          ? only
          : [...listed];
    const rare = rareFieldsOf(s);
    if (tokens !== undefined || rare !== undefined) this.#rowExtra.set(r, { tokens, rare });
    else this.#rowExtra.delete(r);
    this.#views.delete(r);
    return r;
  }

  #unref(r: number): void {
    const refs = (this.#rowRefs[r] ?? 1) - 1;
    if (refs > 0) {
      this.#rowRefs[r] = refs;
      return;
    }
    this.#rowId[r] = '';
    this.#rowUser[r] = '';
    this.#rowExtra.delete(r);
    this.#views.delete(r);
    this.#rowRefs[r] = this.#rowFree;
    this.#rowFree = r;
  }

  /** The row as a session object; `key` is the key of the slot read (a row listing only it needs it). */
  #view(r: number, key: string): CachedSession {
    const cached = this.#views.get(r);
    if (cached !== undefined) return cached;
    const extra = this.#rowExtra.get(r);
    const kept = extra?.tokens;
    const base: CachedSession = {
      id: this.#rowId[r] ?? '',
      user: this.#rowUser[r] ?? '',
      state: SESSION_STATES[(this.#rowState[r] ?? 1) - 1] ?? 'live',
      createdAt: this.#rowCreatedAt[r] ?? 0,
      lastSeenAt: this.#rowLastSeenAt[r] ?? 0,
      expiresAt: this.#rowExpiresAt[r] ?? 0,
      tokenIds: kept === undefined ? [key] : typeof kept === 'string' ? [kept] : kept,
    };
    const rare = extra?.rare;
    const view = rare === undefined ? base : { ...base, ...rare };
    // The row evicted may have been freed and reused since: dropping its newer view only costs a rebuild.
    const oldest = this.#viewRing[this.#viewAt] ?? -1;
    if (oldest >= 0) this.#views.delete(oldest);
    this.#viewRing[this.#viewAt] = r;
    this.#viewAt = (this.#viewAt + 1) % VIEWS;
    this.#views.set(r, view);
    return view;
  }

  #growSlots(n: number): void {
    this.#keyWords = grownU32(this.#keyWords, n * KEY_WORDS);
    this.#state = grownU8(this.#state, n);
    this.#slotEpoch = grownI32(this.#slotEpoch, n);
    this.#fetchedAt = grownF64(this.#fetchedAt, n);
    this.#lastSeenAt = grownF64(this.#lastSeenAt, n);
    this.#lastWrittenAt = grownF64(this.#lastWrittenAt, n);
    this.#prev = grownI32(this.#prev, n);
    this.#next = grownI32(this.#next, n);
    this.#row = grownI32(this.#row, n);
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
        const r = this.#row[s] ?? -1;
        if ((this.#state[s] ?? 0) !== 0 && r >= 0 && this.#sesPrev[s] === -1)
          this.#sesInsert(s, this.#rowHash[r] ?? 0);
      }
    }
  }

  #growRows(n: number): void {
    this.#rowState = grownU8(this.#rowState, n);
    this.#rowCreatedAt = grownF64(this.#rowCreatedAt, n);
    this.#rowLastSeenAt = grownF64(this.#rowLastSeenAt, n);
    this.#rowExpiresAt = grownF64(this.#rowExpiresAt, n);
    this.#rowRefs = grownI32(this.#rowRefs, n);
    this.#rowHash = grownU32(this.#rowHash, n);
    this.#rowCapacity = n;
  }
}
