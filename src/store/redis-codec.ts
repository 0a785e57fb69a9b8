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

const STATES: ReadonlySet<string> = new Set<SessionState>([
  'live',
  'superseded',
  'logged_out',
  'expired',
  'ended_by_user',
  'ended_by_admin',
]);

/**
 * The index key's value for an anonymous token id (a session's is `<tag>\n<sid>\n<expiresAt>`, or
 * `<tag>\n<sid>` as written before tombstones).
 */
export const ANONYMOUS = 'a';

/**
 * The hash tag of a user: sha256 of the user's UTF-16 code units (lossless for any JS string, lone
 * surrogates included, unlike UTF-8), 128 bits in base64url (22 characters; hex took 32). base64url
 * cannot contain `}` or a newline, so no user string can break the tag or land in another user's slot.
 */
export function userTag(user: string): string {
  return createHash('sha256')
    .update(Buffer.from(user, 'utf16le'))
    .digest()
    .subarray(0, 16)
    .toString('base64url');
}

/** A session id as the scripts see it: JSON, so any string (newlines, `|`) is one safe field suffix. */
export function encodeSessionId(sessionId: string): string {
  return JSON.stringify(sessionId);
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
  readonly sid: string;
  readonly base: string;
  readonly state: SessionState;
  readonly lastSeenAt: string;
  readonly expiresAt: string;
  readonly tokens: string;
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

export function encodeSession(session: SessionRecord): EncodedSession {
  const { state, lastSeenAt, tokenIds, ...fixed } = session;
  return {
    sid: encodeSessionId(session.id),
    base: JSON.stringify(fixed),
    state,
    lastSeenAt: String(lastSeenAt),
    expiresAt: String(session.expiresAt),
    tokens: encodeTokens(tokenIds),
  };
}

/** The `e|<sid>` field of an ended session. */
export function encodeEnd(at: number, endedBy: EndedBy | undefined): string {
  return JSON.stringify({ endedAt: at, ...(endedBy ? { endedBy } : {}) });
}

/** The `w|<sid>` field of a warned live session (`onLimit: warn`); '' for none. */
export function encodeWarning(warning: SessionWarning | null): string {
  return warning === null ? '' : JSON.stringify(warning);
}

/** The warning of a `w|<sid>` field, or undefined when it holds none (or something that is not one). */
export function decodeWarning(value: string | null | undefined): SessionWarning | undefined {
  if (!value) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(value);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const { sessionId, at, device, place } = v as Record<string, unknown>;
  if (typeof sessionId !== 'string' || typeof at !== 'number' || typeof device !== 'string') return undefined;
  return { sessionId, at, device, ...(typeof place === 'string' ? { place } : {}) };
}

/**
 * Rebuilds a record from its stored fields, or undefined when they do not make one. A live session has
 * no end: an `end` field left by an earlier session of the same id is ignored.
 */
export function decodeSession(
  base: string | null | undefined,
  state: string | null | undefined,
  lastSeenAt: string | null | undefined,
  end: string | null | undefined,
  tokens: string | null | undefined,
  warning?: string | null,
): SessionRecord | undefined {
  if (!base || !state || !STATES.has(state)) return undefined;
  const fixed = JSON.parse(base) as Omit<SessionRecord, 'state' | 'lastSeenAt' | 'tokenIds'>;
  const ended = end && state !== 'live' ? (JSON.parse(end) as { endedAt?: number; endedBy?: EndedBy }) : {};
  // Only a live session is warned: a mark left on an ended one means nothing.
  const marked = state === 'live' ? decodeWarning(warning) : undefined;
  return {
    ...fixed,
    ...ended,
    ...(marked !== undefined ? { warning: marked } : {}),
    state: state as SessionState,
    lastSeenAt: Number(lastSeenAt),
    tokenIds: decodeTokens(tokens ?? ''),
  };
}

/** What a token id's index key says: the user's tag, the session (encoded), its expiresAt if known. */
export interface TokenRef {
  readonly tag: string;
  readonly sid: string;
  readonly expiresAt: number | undefined;
}

export function encodeTokenRef(tag: string, sid: string, expiresAt: number): string {
  return `${tag}\n${sid}\n${expiresAt}`;
}

/**
 * `<tag>\n<sid>\n<expiresAt>` (or `<tag>\n<sid>`, written before tombstones): neither the hex tag nor
 * the JSON sid contains a raw newline. Undefined for a value that is neither.
 */
export function decodeTokenRef(value: string): TokenRef | undefined {
  const [tag, sid, end] = value.split('\n');
  if (tag === undefined || sid === undefined) return undefined;
  return { tag, sid, expiresAt: end === undefined ? undefined : Number(end) };
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
    const fixed = b as Partial<SessionRecord>;
    if (typeof fixed.id !== 'string' || typeof fixed.user !== 'string' || typeof fixed.expiresAt !== 'number')
      return undefined;
    out.push({
      ...(b as Omit<SessionRecord, 'state' | 'lastSeenAt' | 'tokenIds'>),
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
