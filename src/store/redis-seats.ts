import type { Cluster, Redis } from 'ioredis';
import type { SeatClaim, SeatStore } from './contract.js';

/**
 * RESERVE: KEYS[1] the tenant's seat hash (session id -> "user\nexpiresAt"). ARGV: now, session id,
 * user, expiresAt, max, then the user's kept session ids. Seats past their expiresAt are dropped first.
 * Returns 1 when the seat was taken, 0 when the tenant is full. The hash expires with its last seat.
 */
const RESERVE = `
local now = tonumber(ARGV[1])
local sid, user, max = ARGV[2], ARGV[3], tonumber(ARGV[5])
local keep = {}
local kept = 0
for i = 6, #ARGV do keep[ARGV[i]] = true; kept = kept + 1 end
local fields = redis.call('HGETALL', KEYS[1])
local others, mine, latest = 0, {}, tonumber(ARGV[4])
for i = 1, #fields, 2 do
  local v = fields[i + 1]
  local nl = string.find(v, '\\n', 1, true)
  local exp = tonumber(string.sub(v, nl + 1))
  if exp <= now then
    redis.call('HDEL', KEYS[1], fields[i])
  elseif string.sub(v, 1, nl - 1) == user then
    if not keep[fields[i]] and fields[i] ~= sid then mine[#mine + 1] = fields[i] end
    if exp > latest then latest = exp end
  else
    others = others + 1
    if exp > latest then latest = exp end
  end
end
if others + kept + 1 > max then return 0 end
for _, f in ipairs(mine) do redis.call('HDEL', KEYS[1], f) end
redis.call('HSET', KEYS[1], sid, user .. '\\n' .. ARGV[4])
redis.call('PEXPIRE', KEYS[1], math.max(1, latest - now))
return 1
`;

/** COUNT: KEYS[1] the seat hash, ARGV[1] now: the seats not past their expiresAt. */
const COUNT = `
local now = tonumber(ARGV[1])
local vals = redis.call('HVALS', KEYS[1])
local n = 0
for _, v in ipairs(vals) do
  local nl = string.find(v, '\\n', 1, true)
  if tonumber(string.sub(v, nl + 1)) > now then n = n + 1 end
end
return n
`;

type ScriptCommand = (numberOfKeys: number, ...keysAndArgs: string[]) => Promise<unknown>;

function isScriptCommand(value: unknown): value is ScriptCommand {
  return typeof value === 'function';
}

/** Runs a store operation the way the store's own commands run (errors become StoreUnavailableError). */
export type RedisCall = <T>(what: string, fn: () => Promise<T>) => Promise<T>;

/**
 * Seats on Redis: one hash per tenant, `<prefix>{s:<tenant>}:seats`, so each script touches one key
 * and runs on Cluster too. The reservation is one Lua script (atomic); it runs before the user's
 * compare-and-set, in another slot, so a commit that then loses its race retries and reserves again
 * (the user's own seats are rewritten, never counted twice).
 */
export class RedisSeats implements SeatStore {
  readonly #client: Redis | Cluster;
  readonly #prefix: string;
  readonly #call: RedisCall;

  constructor(client: Redis | Cluster, prefix: string, call: RedisCall) {
    this.#client = client;
    this.#prefix = prefix;
    this.#call = call;
    // No numberOfKeys: #run passes it first, as the store's own scripts do.
    client.defineCommand('sgSeatReserve', { lua: RESERVE });
    client.defineCommand('sgSeatCount', { lua: COUNT });
  }

  async reserve(claim: SeatClaim): Promise<boolean> {
    const args = [String(claim.at), claim.sessionId, claim.user, String(claim.expiresAt), String(claim.max)];
    const taken = await this.#call('seat reserve', () =>
      this.#run('sgSeatReserve', this.#key(claim.tenant), [...args, ...claim.keep]),
    );
    return taken === 1;
  }

  async release(tenant: string, sessionIds: readonly string[]): Promise<void> {
    if (sessionIds.length === 0) return;
    await this.#call('seat release', () => this.#client.hdel(this.#key(tenant), ...sessionIds));
  }

  async count(tenant: string, at: number): Promise<number> {
    const n = await this.#call('seat count', () => this.#run('sgSeatCount', this.#key(tenant), [String(at)]));
    return Number(n);
  }

  /** Braces would change the hash tag: they are escaped, so any tenant name is one key of its own. */
  #key(tenant: string): string {
    return `${this.#prefix}{s:${tenant.replace(/[%{}]/g, (c) => `%${c.charCodeAt(0).toString(16)}`)}}:seats`;
  }

  #run(name: string, key: string, args: readonly string[]): Promise<unknown> {
    const command: unknown = Reflect.get(this.#client, name);
    if (!isScriptCommand(command)) throw new Error(`script ${name} is not defined on the client`);
    return command.call(this.#client, 1, key, ...args);
  }
}
