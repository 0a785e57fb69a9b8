/**
 * How the Redis store writes records and messages, and reads them back: pure functions, no I/O. See
 * redis-scripts.ts for the key layout these values live in.
 */
import { createHash } from 'node:crypto';
import type {
  EndedBy,
  Invalidation,
  SessionChange,
  SessionRecord,
  SessionState,
  SessionWarning,
} from '../model.js';
import { SESSION_STATES } from '../model.js';

const STATES: ReadonlySet<string> = new Set<SessionState>(SESSION_STATES);

/**
 * The first `bytes` of the sha256 of a string's UTF-16 code units, in base64url: lossless for any JS
 * string, lone surrogates included (UTF-8 would turn them all into one replacement character).
 */
function digestOf(s: string, bytes: number): string {
  return createHash('sha256')
    .update(Buffer.from(s, 'utf16le'))
    .digest()
    .subarray(0, bytes)
    .toString('base64url');
}

/**
 * The first line of an index entry's value for an anonymous token id: `a\n<until in base 36>` (a
 * session's is `<tag>\n<key>\n<expiresAt in base 36>`, see encodeTokenRef; no tag is one character).
 */
export const ANONYMOUS = 'a';

/** An anonymous token id's index value, known to be anonymous until `until` (epoch ms). */
export function encodeAnonymous(until: number): string {
  return `${ANONYMOUS}\n${Math.ceil(until).toString(36)}`;
}

/**
 * Hashes the token index is spread over (see redis-scripts.ts): 2^16, so the index stays in Redis's
 * compact listpack encoding (hash-max-listpack-entries 128 a hash) up to about 8 million token ids,
 * live and tombstones: a month of tombstones at 200,000 logins a day is 6 million. Past that a hash
 * becomes a hashtable, which still costs about half of a key per id; raise hash-max-listpack-entries
 * (say to 512) to keep it compact. Below about 200,000 ids most hashes hold one or two entries and
 * an id costs about as much as a key of its own did.
 */
export const INDEX_BUCKETS = 65_536;

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
/** A token id as `TokenIdOf` makes them: 32 bytes of HMAC-SHA256 in base64url. */
const CANONICAL_ID = /^[A-Za-z0-9_-]{43}$/;

/** Where a token id's entry lives: its bucket (`t:<bucket>`), and its field name in that hash. */
export interface IndexSlot {
  /** Three characters: two of base64url (12 bits), then a hex digit (4 bits): one of INDEX_BUCKETS. */
  readonly bucket: string;
  readonly field: string;
  /** The bucket's number, 0 to INDEX_BUCKETS - 1 (the store's per-bucket memos are indexed by it). */
  readonly n: number;
}

/**
 * A token id's place in the index. A canonical id (43 characters of base64url, uniformly random) picks
 * its bucket from its first 16 bits and is stored under its characters 2 to 21 (120 bits: two ids of
 * one bucket sharing them is about 2^-77 likely for a billion ids, and would only make one id read as
 * the other's session, never let a request past the app's own check). Any other string (tests, a
 * custom extractor's ids) is placed by its sha256 and stored as `.` and that hash (no canonical field
 * starts with `.`), so no string can collide with another or hold a character Redis would mangle.
 */
export function indexSlot(tokenId: string): IndexSlot {
  const id = CANONICAL_ID.test(tokenId) ? tokenId : digestOf(tokenId, 32);
  const low = BASE64URL.indexOf(id.charAt(2)) >> 2;
  return {
    bucket: `${id.slice(0, 2)}${low.toString(16)}`,
    field: id === tokenId ? id.slice(2, 22) : `.${id}`,
    n: (BASE64URL.indexOf(id.charAt(0)) << 10) | (BASE64URL.indexOf(id.charAt(1)) << 4) | low,
  };
}

/**
 * The hash tag of a user: sha256 of the user's UTF-16 code units (lossless for any JS string, lone
 * surrogates included, unlike UTF-8), 128 bits in base64url (22 characters; hex took 32). base64url
 * cannot contain `}` or a newline, so no user string can break the tag or land in another user's slot.
 */
export function userTag(user: string): string {
  return digestOf(user, 16);
}

/** A session id as the scripts see it: JSON, so any string (newlines, `|`) is one safe field suffix. */
export function encodeSessionId(sessionId: string): string {
  return JSON.stringify(sessionId);
}

/**
 * A session's key in its user's hash: the first 66 bits of sha256 of the session id's UTF-16 code units,
 * in base64url (11 characters), so each of its field names is 12 or 13 bytes whatever the id (a UUID
 * in JSON was 38). The id itself is stored once, in `<key>i`. Two sessions of one user sharing a key
 * would share fields: about 1e-13 likely for a user with 100,000 sessions in their hash.
 */
export function sessionKey(sessionId: string): string {
  return digestOf(sessionId, 9).slice(0, 11);
}

/**
 * A User-Agent's key (`a:<ref>`), where its text is stored once for every session that has it: 128 bits
 * of the sha256 of its UTF-16 code units, in base64url (22 characters). A record holds the reference (29
 * bytes of JSON against 124 for a common Chrome User-Agent inline). 128 bits, not 66 as a session key:
 * these keys are shared across users, so a collision must be out of reach of anyone who picks their
 * User-Agent, and the text of an existing key is never rewritten.
 */
export function agentRef(userAgent: string): string {
  return digestOf(userAgent, 16);
}

/** The longest value a field may hold for its hash to stay a listpack (Redis's hash-max-listpack-value). */
export const MAX_CHUNK = 64;

/**
 * JSON cut into pieces of at most MAX_CHUNK bytes of UTF-8, one per line (JSON never contains a raw
 * newline), cut only between code points, so each piece is valid UTF-8 on its own. The scripts store a
 * value's lines as fields of at most MAX_CHUNK bytes each (see redis-scripts.ts); readers drop the
 * newlines again.
 */
export function splitJson(json: string): string {
  const pieces: string[] = [];
  let piece = '';
  let bytes = 0;
  for (const ch of json) {
    const size = Buffer.byteLength(ch, 'utf8');
    if (bytes + size > MAX_CHUNK && piece !== '') {
      pieces.push(piece);
      piece = '';
      bytes = 0;
    }
    piece += ch;
    bytes += size;
  }
  if (piece !== '') pieces.push(piece);
  return pieces.join('\n');
}

/** The JSON a split value stands for. */
export function joinJson(lines: string): string {
  return lines.replaceAll('\n', '');
}

/**
 * A chunked field's value from a hash's fields: `<name>`, `<name>1`, `<name>2`... joined by newlines
 * (see `putChunks` in redis-scripts.ts); undefined when it has none.
 */
export function readChunks(fields: Readonly<Record<string, string>>, name: string): string | undefined {
  const first = fields[name];
  if (first === undefined) return undefined;
  const parts = [first];
  for (let i = 1; fields[`${name}${i}`] !== undefined; i++) parts.push(fields[`${name}${i}`] as string);
  return parts.join('\n');
}

/** One stored token id per line; JSON never contains a raw newline. */
export function encodeTokens(tokenIds: readonly string[]): string {
  return tokenIds.map((t) => JSON.stringify(t)).join('\n');
}

export function decodeTokens(lines: string): string[] {
  return lines === '' ? [] : (JSON.parse(`[${lines.split('\n').join(',')}]`) as string[]);
}

/** The parts of a new session's fields: what never changes (`base`), and what the scripts update. */
export interface EncodedSession {
  /** The session's key in its user's hash (`sessionKey`). */
  readonly key: string;
  /** The session id's JSON (`<key>i`). */
  readonly sid: string;
  /** The user's JSON (the hash's `u`). */
  readonly user: string;
  /**
   * The record's JSON without its braces and without what other fields say (id, user, state,
   * lastSeenAt, expiresAt, tokenIds), split for `<key>b` (`splitJson`).
   */
  readonly base: string;
  readonly state: SessionState;
  readonly lastSeenAt: string;
  readonly expiresAt: string;
  readonly tokens: string;
  /** The User-Agent the base refers to (`a`), with its text; undefined for an empty one (kept inline). */
  readonly agent: { readonly ref: string; readonly text: string } | undefined;
}

/** A session's status field, `<state> <lastSeenAt> <expiresAt>` (no part contains a space). */
export interface SessionStatus {
  readonly state: string;
  readonly lastSeenAt: string;
  readonly expiresAt: number;
}

export function encodeStatus(state: string, lastSeenAt: number, expiresAt: number): string {
  return `${state} ${lastSeenAt} ${expiresAt}`;
}

export function decodeStatus(value: string | null | undefined): SessionStatus | undefined {
  const parts = value?.split(' ');
  if (parts?.length !== 3) return undefined;
  const [state, lastSeenAt, expiresAt] = parts as [string, string, string];
  return { state, lastSeenAt, expiresAt: Number(expiresAt) };
}

/**
 * Stored names of a record's immutable fields: one letter each, as they are in every record (and in the
 * ended records of a message); `a` is the User-Agent's reference. A field not named here keeps its name.
 */
const STORED_NAMES: Readonly<Record<string, string>> = {
  createdAt: 'c',
  ip: 'i',
  location: 'l',
  geo: 'g',
  newDevice: 'd',
  newLocation: 'n',
  tenant: 't',
  pinned: 'p',
};
const RECORD_NAMES: Readonly<Record<string, string>> = Object.fromEntries(
  Object.entries(STORED_NAMES).map(([name, stored]) => [stored, name]),
);

function renamed(fields: object, names: Readonly<Record<string, string>>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(fields)) out[names[name] ?? name] = value;
  return out;
}

export function encodeSession(session: SessionRecord): EncodedSession {
  const { id, user, state, lastSeenAt, expiresAt, tokenIds, ...fixed } = session;
  const { userAgent, ...rest } = fixed;
  const agent = userAgent === '' ? undefined : { ref: agentRef(userAgent), text: userAgent };
  const stored = renamed(agent === undefined ? fixed : { ...rest, a: agent.ref }, STORED_NAMES);
  return {
    key: sessionKey(id),
    sid: encodeSessionId(id),
    user: JSON.stringify(user),
    base: splitJson(JSON.stringify(stored).slice(1, -1)),
    state,
    lastSeenAt: String(lastSeenAt),
    expiresAt: String(expiresAt),
    tokens: encodeTokens(tokenIds),
    agent,
  };
}

/** The record's immutable fields as stored (renamed back): the User-Agent as its reference `a`, or inline. */
type StoredFixed = Omit<
  SessionRecord,
  'id' | 'user' | 'state' | 'lastSeenAt' | 'expiresAt' | 'tokenIds' | 'userAgent'
> & {
  readonly userAgent?: string;
  readonly a?: string;
};

/** The User-Agent reference a stored base holds (as `readChunks` gives it), if any. */
export function agentRefOf(base: string | null | undefined): string | undefined {
  if (!base) return undefined;
  const { a } = JSON.parse(`{${joinJson(base)}}`) as { a?: unknown };
  return typeof a === 'string' ? a : undefined;
}

/** The `<key>e` field of an ended session (split: its endedBy holds a User-Agent). */
export function encodeEnd(at: number, endedBy: EndedBy | undefined): string {
  return splitJson(JSON.stringify({ endedAt: at, ...(endedBy ? { endedBy } : {}) }));
}

/** The `<key>w` field of a warned live session (`onLimit: warn`), split; '' for none. */
export function encodeWarning(warning: SessionWarning | null): string {
  return warning === null ? '' : splitJson(JSON.stringify(warning));
}

/** The warning of a `<key>w` field, or undefined when it holds none (or something that is not one). */
export function decodeWarning(value: string | null | undefined): SessionWarning | undefined {
  if (!value) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(joinJson(value));
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const { sessionId, at, device, place } = v as Record<string, unknown>;
  if (typeof sessionId !== 'string' || typeof at !== 'number' || typeof device !== 'string') return undefined;
  return { sessionId, at, device, ...(typeof place === 'string' ? { place } : {}) };
}

/** A session's stored fields, as read (chunked ones joined by `readChunks`); null or undefined: missing. */
export interface StoredSession {
  /** `<key>i`: the session id's JSON. */
  readonly sid: string | null | undefined;
  /** The hash's `u`: the user's JSON. */
  readonly user: string | null | undefined;
  readonly base: string | null | undefined;
  /** From `<key>s` (`decodeStatus`). */
  readonly state: string | null | undefined;
  readonly lastSeenAt: string | null | undefined;
  readonly expiresAt: number | undefined;
  readonly end: string | null | undefined;
  readonly tokens: string | null | undefined;
  readonly warning?: string | null | undefined;
}

/**
 * Rebuilds a record from its stored fields, or undefined when they do not make one. A live session has
 * no end: an `end` field left by an earlier session of the same id is ignored. A User-Agent stored by
 * reference is looked up in `agents` (`agentRefOf` says which the store must read); one it lacks (its
 * key gone with a flushed Redis) reads as empty, as an unknown device.
 */
export function decodeSession(
  f: StoredSession,
  agents: ReadonlyMap<string, string> = new Map(),
): SessionRecord | undefined {
  const { sid, user, state, expiresAt } = f;
  if (!sid || !user || !state || !STATES.has(state) || expiresAt === undefined) return undefined;
  const stored: unknown = JSON.parse(`{${joinJson(f.base ?? '')}}`);
  const { a, userAgent, ...fixed } = renamed(stored as object, RECORD_NAMES) as StoredFixed;
  const ended =
    f.end && state !== 'live' ? (JSON.parse(joinJson(f.end)) as { endedAt?: number; endedBy?: EndedBy }) : {};
  // Only a live session is warned: a mark left on an ended one means nothing.
  const marked = state === 'live' ? decodeWarning(f.warning) : undefined;
  return {
    id: JSON.parse(sid) as string,
    user: JSON.parse(user) as string,
    ...fixed,
    userAgent: userAgent ?? (a === undefined ? '' : (agents.get(a) ?? '')),
    expiresAt,
    ...ended,
    ...(marked !== undefined ? { warning: marked } : {}),
    state: state as SessionState,
    lastSeenAt: Number(f.lastSeenAt),
    tokenIds: decodeTokens(f.tokens ?? ''),
  };
}

/** What a token id's index entry says of its session: the user's tag, the session's key, its expiresAt. */
export interface TokenRef {
  readonly tag: string;
  readonly key: string;
  readonly expiresAt: number;
}

/**
 * `<tag>\n<key>\n<expiresAt in base 36>`: 43 bytes, within a listpack value's 64. The expiresAt is
 * rounded up to a whole millisecond.
 */
export function encodeTokenRef(tag: string, key: string, expiresAt: number): string {
  return `${tag}\n${key}\n${Math.ceil(expiresAt).toString(36)}`;
}

/**
 * The tag and key of a tombstone's entry, `-\n-\n<expiresAt in base 36>`: what the bucket's prune
 * (`tombstoneOf` in redis-scripts.ts) leaves of a session's entry once its record is gone, 12 bytes
 * instead of 43 (a month of tombstones is most of the index). No user's tag or session's key is one
 * character, and the shape is a session's: a reader that does not know it reads a user's hash that does
 * not exist, finds no record, and answers dead, as it did for the long entry by then.
 */
export const TOMBSTONE = '-';

/** The entry a tombstone is shortened to (as `tombstoneOf` in redis-scripts.ts writes it). */
export function encodeTombstone(expiresAt: number): string {
  return encodeTokenRef(TOMBSTONE, TOMBSTONE, expiresAt);
}

/** What an index entry says: a session's, an anonymous id's, or a tombstone's (dead from its expiresAt). */
export type IndexValue = TokenRef | { readonly anonymousUntil: number } | { readonly tombstoneFrom: number };

/**
 * An index entry's value: a session's `<tag>\n<key>\n<expiresAt>` (neither the base64url tag nor the
 * key contains a newline), a tombstone's (`encodeTombstone`), or an anonymous id's (`encodeAnonymous`).
 * Undefined for anything else.
 */
export function decodeIndexValue(value: string): IndexValue | undefined {
  const [tag, key, end] = value.split('\n');
  if (tag === undefined || key === undefined) return undefined;
  if (tag === ANONYMOUS) return end === undefined ? { anonymousUntil: parseInt(key, 36) } : undefined;
  if (end === undefined) return undefined;
  const expiresAt = parseInt(end, 36);
  if (!Number.isFinite(expiresAt)) return undefined;
  return tag === TOMBSTONE && key === TOMBSTONE ? { tombstoneFrom: expiresAt } : { tag, key, expiresAt };
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
    // The User-Agent's reference is dropped: a message's records only end cached decisions, which
    // keep no User-Agent (CachedSession).
    const { a: _ref, ...fixed } = renamed(b, RECORD_NAMES) as Partial<SessionRecord> & { a?: unknown };
    if (typeof fixed.id !== 'string' || typeof fixed.user !== 'string' || typeof fixed.expiresAt !== 'number')
      return undefined;
    out.push({
      ...(fixed as Omit<SessionRecord, 'state' | 'lastSeenAt' | 'tokenIds'>),
      userAgent: typeof fixed.userAgent === 'string' ? fixed.userAgent : '',
      ...(e as { endedAt?: number; endedBy?: EndedBy }),
      state: s as SessionState,
      lastSeenAt: l,
      tokenIds: t as string[],
    });
  }
  return out;
}

/** The changed sessions a message carries (`{"id": sid, "t": [token ids]}` each), or undefined if malformed. */
function changedSessions(value: unknown): SessionChange[] | undefined {
  if (!Array.isArray(value)) return undefined;
  const out: SessionChange[] = [];
  for (const item of value as unknown[]) {
    if (typeof item !== 'object' || item === null) return undefined;
    const { id, t } = item as { id?: unknown; t?: unknown };
    if (typeof id !== 'string' || !Array.isArray(t) || !t.every((x) => typeof x === 'string'))
      return undefined;
    out.push({ sessionId: id, tokenIds: t as string[] });
  }
  return out;
}

function isInvalidation(value: unknown): value is Invalidation {
  return (
    typeof value === 'object' &&
    value !== null &&
    Array.isArray((value as { tokenIds?: unknown }).tokenIds) &&
    (value as { tokenIds: unknown[] }).tokenIds.every((t) => typeof t === 'string')
  );
}

/** A decoded invalidation message; `problem` says what was wrong with it when something was. */
export type DecodedMessage =
  | { readonly invalidation: Invalidation; readonly at: number | undefined; readonly problem?: string }
  | { readonly invalidation?: undefined; readonly problem: string };

/**
 * Reads one message of the channel. A message whose `ended` records are malformed is still applied,
 * as a plain invalidation of its token ids (with `problem` set).
 */
export function decodeMessage(message: string): DecodedMessage {
  let parsed: unknown;
  try {
    parsed = JSON.parse(message);
  } catch (err) {
    return { problem: err instanceof Error ? err.message : String(err) };
  }
  if (!isInvalidation(parsed)) return { problem: 'malformed invalidation message' };
  const { at, ended, changed } = parsed as { at?: unknown; ended?: unknown; changed?: unknown };
  const records = ended === undefined ? undefined : endedRecords(ended);
  const changes = changed === undefined ? undefined : changedSessions(changed);
  const stamp = typeof at === 'number' ? at : undefined;
  const invalidation: Invalidation = {
    tokenIds: parsed.tokenIds,
    ...(records !== undefined ? { ended: records } : {}),
    ...(changes !== undefined ? { changed: changes } : {}),
  };
  if (ended !== undefined && records === undefined)
    return { invalidation, at: stamp, problem: 'malformed ended sessions in an invalidation message' };
  if (changed !== undefined && changes === undefined)
    return { invalidation, at: stamp, problem: 'malformed changed sessions in an invalidation message' };
  return { invalidation, at: stamp };
}
