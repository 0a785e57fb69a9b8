import type { Cluster, Redis } from 'ioredis';
import type { LoginHistoryEntry } from '../model.js';
import type { LoginHistoryStore } from './contract.js';
import type { RedisCall } from './redis-seats.js';

/**
 * RECORD: KEYS[1] the user's history zset (member `device\ncountry`, score the last login's at).
 * ARGV: member, at, horizon (entries at or before it are dropped), max, ttl in ms. The pair's score is
 * set, old pairs and all but the newest `max` dropped, and the key expires with the window.
 */
const RECORD = `
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[4]) + 1))
local ttl = tonumber(ARGV[5])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) else redis.call('DEL', KEYS[1]) end
return 1
`;

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

  constructor(client: Redis | Cluster, keyOf: (user: string) => string, call: RedisCall, now: () => number) {
    this.#client = client;
    this.#keyOf = keyOf;
    this.#call = call;
    this.#now = now;
    client.defineCommand('sgHistoryRecord', { lua: RECORD });
  }

  async read(user: string, since: number): Promise<LoginHistoryEntry[]> {
    const key = this.#keyOf(user);
    const flat = await this.#call('history read', () =>
      this.#client.zrevrangebyscore(key, '+inf', `(${since}`, 'WITHSCORES'),
    );
    const out: LoginHistoryEntry[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const member = flat[i] as string;
      const nl = member.indexOf('\n');
      if (nl < 0) continue;
      const country = member.slice(nl + 1);
      out.push({ device: member.slice(0, nl), ...(country ? { country } : {}), at: Number(flat[i + 1]) });
    }
    return out;
  }

  async record(
    user: string,
    entry: LoginHistoryEntry,
    bounds: { readonly max: number; readonly window: number },
  ): Promise<void> {
    const member = `${entry.device}\n${entry.country ?? ''}`;
    // Redis TTLs are real time; `at` is the caller's clock (the store's own, in a gateway).
    const ttl = Math.ceil(entry.at + bounds.window - this.#now());
    const args = [
      member,
      String(entry.at),
      String(entry.at - bounds.window),
      String(bounds.max),
      String(ttl),
    ];
    await this.#call('history record', () => {
      const command: unknown = Reflect.get(this.#client, 'sgHistoryRecord');
      if (!isScriptCommand(command)) throw new Error('script sgHistoryRecord is not defined on the client');
      return command.call(this.#client, 1, this.#keyOf(user), ...args);
    });
  }
}
