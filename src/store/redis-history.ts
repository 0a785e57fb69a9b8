import type { Cluster, Redis } from 'ioredis';
import { LRUCache } from 'lru-cache';
import type { LoginHistoryEntry } from '../model.js';
import type { LoginHistoryStore } from './contract.js';
import type { RedisCall } from './redis-seats.js';

/**
 * RECORD: KEYS[1] the user's history zset (member `device\ncountry`, score the last login's at).
 * ARGV: member, at, horizon (entries at or before it are dropped), max, ttl in ms ('' leaves the TTL),
 * then whether to drop old entries ('1') and the entries past the newest max ('1'). The pair's score is
 * set; a ttl <= 0 deletes the history.
 */
const RECORD = `
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
if ARGV[6] == '1' then redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3]) end
if ARGV[7] == '1' then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[4]) + 1)) end
if ARGV[5] ~= '' then
  local ttl = tonumber(ARGV[5])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) else redis.call('DEL', KEYS[1]) end
end
return 1
`;

/**
 * A history's TTL is set to the end of the day (UTC days since the epoch) of the login plus the window,
 * so it needs setting only at a user's first login of each day: a login whose history's newest entry is
 * of the same day finds it set already (the day's first login set it, or failed and wrote no entry).
 * A history lives at most a day past its window.
 */
const TTL_GRID = 24 * 3_600_000;

/** What a read saw of a user's history, for the record that follows it (the same login): at most this old. */
const SEEN_FOR = 60_000;

/** Users whose last read this replica remembers (a login reads, then records, within milliseconds). */
const SEEN_USERS = 1_024;

interface Seen {
  readonly members: ReadonlySet<string>;
  /** Scores of the oldest and newest entries (undefined: none). */
  readonly oldest: number | undefined;
  readonly newest: number | undefined;
  readonly at: number;
}

type ScriptCommand = (numberOfKeys: number, ...keysAndArgs: string[]) => Promise<unknown>;

function isScriptCommand(value: unknown): value is ScriptCommand {
  return typeof value === 'function';
}

/**
 * Login history on Redis: one sorted set per user, `<prefix>v4:h:{<user tag>}`, in the user hash's
 * slot (same hash tag). A member is `<device>\n<country>` (the fingerprint holds no newline), so a pair
 * is stored once and its score is its last login: no JSON for Lua to decode.
 */
export class RedisHistory implements LoginHistoryStore {
  readonly #client: Redis | Cluster;
  readonly #keyOf: (user: string) => string;
  readonly #call: RedisCall;
  readonly #now: () => number;
  /**
   * What the last read of each user saw: the record that follows it (the login's) leaves out the trims
   * and the TTL it can tell are not needed (two commands of four, three on a second login that day).
   * Behind Redis only by what another replica recorded meanwhile: that can leave a history a few
   * entries over max until its next record, never lose one early.
   */
  readonly #seen = new LRUCache<string, Seen>({ max: SEEN_USERS });

  constructor(client: Redis | Cluster, keyOf: (user: string) => string, call: RedisCall, now: () => number) {
    this.#client = client;
    this.#keyOf = keyOf;
    this.#call = call;
    this.#now = now;
    client.defineCommand('sgHistoryRecord', { lua: RECORD });
  }

  async read(user: string, since: number): Promise<LoginHistoryEntry[]> {
    const key = this.#keyOf(user);
    // All of it (a few dozen entries at most: every record keeps max), so the record knows what is there.
    const flat = await this.#call('history read', () => this.#client.zrevrange(key, 0, -1, 'WITHSCORES'));
    const out: LoginHistoryEntry[] = [];
    const members = new Set<string>();
    let oldest: number | undefined;
    let newest: number | undefined;
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const member = flat[i] as string;
      const at = Number(flat[i + 1]);
      members.add(member);
      oldest = oldest === undefined ? at : Math.min(oldest, at);
      newest = newest === undefined ? at : Math.max(newest, at);
      const nl = member.indexOf('\n');
      if (nl < 0 || at <= since) continue;
      const country = member.slice(nl + 1);
      out.push({ device: member.slice(0, nl), ...(country ? { country } : {}), at });
    }
    this.#seen.set(user, { members, oldest, newest, at: this.#now() });
    return out;
  }

  async record(
    user: string,
    entry: LoginHistoryEntry,
    bounds: { readonly max: number; readonly window: number },
  ): Promise<void> {
    const member = `${entry.device}\n${entry.country ?? ''}`;
    const now = this.#now();
    const horizon = entry.at - bounds.window;
    const seen = this.#seen.get(user);
    this.#seen.delete(user);
    const known = seen !== undefined && now - seen.at < SEEN_FOR ? seen : undefined;
    const day = Math.floor(entry.at / TTL_GRID);
    const dropOld = known === undefined || (known.oldest !== undefined && known.oldest <= horizon);
    const dropOver =
      known === undefined || known.members.size + (known.members.has(member) ? 0 : 1) > bounds.max;
    const expire = known?.newest === undefined || Math.floor(known.newest / TTL_GRID) < day;
    // Redis TTLs are real time; `at` is the caller's clock (the store's own, in a gateway).
    const ttl = Math.ceil((day + 1) * TTL_GRID + bounds.window - now);
    const args = [
      member,
      String(entry.at),
      String(horizon),
      String(bounds.max),
      expire ? String(ttl) : '',
      dropOld ? '1' : '',
      dropOver ? '1' : '',
    ];
    await this.#call('history record', () => {
      const command: unknown = Reflect.get(this.#client, 'sgHistoryRecord');
      if (!isScriptCommand(command)) throw new Error('script sgHistoryRecord is not defined on the client');
      return command.call(this.#client, 1, this.#keyOf(user), ...args);
    });
  }
}
