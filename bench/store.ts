/**
 * Store: what one session costs Redis in memory, and what one login costs it in commands and round
 * trips (issue 16, "Redis memory" and the Redis side of "Login storm").
 *
 * On a redis-server of its own (a free port, no persistence), through the Redis store module itself:
 * - memory: N sessions registered as one login each of a fresh user (1 token, then 3 tokens), then
 *   `used_memory` delta / N, and MEMORY USAGE of sampled keys per key shape with their encoding;
 * - a login: the store calls `SessionService.login` makes on the common path (a new login of a user
 *   whose one live session it replaces, limit 1): `readUser` and, at the same time, `lookup` of each
 *   new token id after the first (the first is looked for in the user's sessions), then `commit`
 *   (create the new session, end the old one as superseded). Commands per login from INFO commandstats
 *   deltas (commands a script runs included, as Redis counts them), round trips from a TCP relay in
 *   front of the store's command connection (a request sent after a reply is one more round trip).
 *
 * - tombstones: what a token index entry costs while its record is kept, and once the bucket's prune
 *   has shortened it to a tombstone (its record gone), on a clock of the bench's own (the store's
 *   `now`), summed MEMORY USAGE of the index's buckets.
 *
 * Usage: node dist/bench/store.js [--sizes 100000,1000000] [--tokens 1,3] [--logins 2000]
 *          [--warm 400000] [--tombstones 1000000] [--concurrency 256] [--results results/store.md]
 *          [--no-results]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { execSync } from 'node:child_process';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import type { SessionCommit, SessionRecord } from '../src/model.js';
import { createRedisStore, INDEX_PRUNE_MS, type RedisSessionStore } from '../src/store/redis.js';
import { INDEX_BUCKETS } from '../src/store/redis-codec.js';
import { createTokenIdOf } from '../src/tokens/token-id.js';

const HOUR = 3_600_000;
/** The default sessions.maxAge (12 h): records and TTLs as in production. */
const MAX_AGE = 12 * HOUR;
/** A common desktop User-Agent (what the gateway receives from a browser). */
const USER_AGENT =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';
const tokenIdOf = createTokenIdOf('sessiongate-bench-store-secret');

interface Options {
  readonly sizes: number[];
  readonly tokens: number[];
  readonly logins: number;
  /** Registrations through the login measurement's store before it (see measureLogins). */
  readonly warm: number;
  readonly concurrency: number;
  /** Token index entries of the tombstone measurement (0: skip it). */
  readonly tombstones: number;
  readonly results: string | undefined;
  /** redis-server's hash-max-listpack-value, when not its default (64). */
  readonly listpackValue: number | undefined;
}

function options(): Options {
  const { values } = parseArgs({
    options: {
      sizes: { type: 'string', default: '100000,1000000' },
      tokens: { type: 'string', default: '1,3' },
      logins: { type: 'string', default: '2000' },
      warm: { type: 'string', default: '400000' },
      concurrency: { type: 'string', default: '256' },
      tombstones: { type: 'string', default: '1000000' },
      'listpack-value': { type: 'string' },
      results: { type: 'string', default: 'results/store.md' },
      'no-results': { type: 'boolean', default: false },
    },
  });
  const list = (s: string): number[] => s.split(',').map((x) => Number(x.trim()));
  const here = dirname(fileURLToPath(import.meta.url));
  // dist/bench/store.js -> bench/
  const benchDir = join(here, '..', '..');
  return {
    sizes: list(values.sizes),
    tokens: list(values.tokens),
    logins: Number(values.logins),
    warm: Number(values.warm),
    concurrency: Number(values.concurrency),
    tombstones: Number(values.tombstones),
    results: values['no-results'] ? undefined : join(benchDir, values.results),
    listpackValue: values['listpack-value'] === undefined ? undefined : Number(values['listpack-value']),
  };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

interface OwnRedis {
  readonly port: number;
  readonly admin: Redis;
  stop(): Promise<void>;
}

async function startRedis(listpackValue: number | undefined): Promise<OwnRedis> {
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  if (listpackValue !== undefined) args.push('--hash-max-listpack-value', String(listpackValue));
  const child: ChildProcess = spawn('redis-server', args, { stdio: 'ignore' });
  const admin = new Redis({ host: '127.0.0.1', port, retryStrategy: (n) => (n > 50 ? null : 100) });
  // Refused until redis-server listens: the retries cover it.
  admin.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    admin.once('ready', resolve);
    child.once('exit', (code) => reject(new Error(`redis-server exited (${code})`)));
  });
  return {
    port,
    admin,
    stop: async () => {
      admin.disconnect();
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/**
 * Counts round trips per connection: a client chunk that follows a reply (or opens the connection)
 * starts one. The subscriber's connection (it sends SUBSCRIBE) is left out.
 */
class RoundTripRelay {
  readonly #server: Server;
  readonly #counts: { trips: number; subscriber: boolean }[] = [];

  constructor(target: number) {
    this.#server = createServer((client: Socket) => {
      const upstream = connect(target, '127.0.0.1');
      const count = { trips: 0, subscriber: false };
      this.#counts.push(count);
      let replied = true;
      client.on('data', (chunk: Buffer) => {
        if (chunk.includes('SUBSCRIBE')) count.subscriber = true;
        if (replied) count.trips++;
        replied = false;
        upstream.write(chunk);
      });
      upstream.on('data', (chunk: Buffer) => {
        replied = true;
        client.write(chunk);
      });
      const end = (): void => {
        client.destroy();
        upstream.destroy();
      };
      client.on('close', end).on('error', end);
      upstream.on('close', end).on('error', end);
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    return (this.#server.address() as AddressInfo).port;
  }

  /** Round trips of the command connection(s) so far. */
  trips(): number {
    return this.#counts.filter((c) => !c.subscriber).reduce((n, c) => n + c.trips, 0);
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}

function session(user: string, tokens: number, now: number): SessionRecord {
  const tokenIds = Array.from({ length: tokens }, () => tokenIdOf(randomUUID()));
  return {
    id: randomUUID(),
    user,
    state: 'live',
    createdAt: now,
    lastSeenAt: now,
    expiresAt: now + MAX_AGE,
    ip: '203.0.113.7',
    userAgent: USER_AGENT,
    tokenIds,
    pinned: tokens,
  };
}

function userOf(run: string, i: number): string {
  return `user${i}.${run}@example.com`;
}

async function openStore(port: number): Promise<RedisSessionStore> {
  // A PING interval far beyond the run: the subscriber sends nothing while we count.
  const store = createRedisStore({
    url: `redis://127.0.0.1:${port}`,
    pingInterval: 600_000,
    commandTimeout: 5_000,
  });
  await store.ready();
  return store;
}

/** One login of a fresh user each, `concurrency` in flight. */
async function register(
  store: RedisSessionStore,
  run: string,
  from: number,
  to: number,
  tokens: number,
  concurrency: number,
): Promise<void> {
  let next = from;
  const worker = async (): Promise<void> => {
    while (next < to) {
      const i = next++;
      const now = Date.now();
      const create = session(userOf(run, i), tokens, now);
      await store.commit({ user: create.user, expectedVersion: 0, create, end: [], at: now });
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

async function usedMemory(admin: Redis): Promise<number> {
  const info = await admin.info('memory');
  return Number(/^used_memory:(\d+)/m.exec(info)?.[1]);
}

/** A key's shape: the prefix and fixed parts kept, ids and tags as `*`. */
function shapeOf(key: string): string {
  return key
    .replace(/\{[^}]*\}/, '{*}')
    .replace(/:[A-Za-z0-9_-]{20,}$/, ':*')
    .replace(/:[A-Za-z0-9_-]{20,}:/, ':*:')
    .replace(/:t:[A-Za-z0-9_-]{2}[0-9a-f]$/, ':t:*');
}

interface KeyShape {
  readonly shape: string;
  readonly type: string;
  readonly encoding: string;
  readonly perSession: number;
  readonly usage: number;
}

/**
 * MEMORY USAGE (SAMPLES 0: every element) of sampled keys, grouped by shape; and of the one key per
 * prefix (the live-session count), which a random sample would miss, as its share per session.
 */
async function sampleKeys(admin: Redis, sessions: number): Promise<KeyShape[]> {
  const total = await admin.dbsize();
  const shared: KeyShape[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await admin.scan(cursor, 'MATCH', '*live', 'COUNT', 10_000);
    cursor = next;
    for (const key of keys)
      shared.push({
        shape: key,
        type: await admin.type(key),
        encoding: String(await admin.call('OBJECT', 'ENCODING', key)),
        // One key shared by all sessions: its share of each.
        perSession: 1,
        usage: Number(await admin.call('MEMORY', 'USAGE', key, 'SAMPLES', '0')) / sessions,
      });
  } while (cursor !== '0');
  const byShape = new Map<string, { type: string; encoding: string; n: number; bytes: number }>();
  const seen = new Set<string>();
  for (let i = 0; i < 3000; i++) {
    const key = await admin.randomkey();
    if (key === null || seen.has(key)) continue;
    seen.add(key);
    const shape = shapeOf(key);
    const usage = Number(await admin.call('MEMORY', 'USAGE', key, 'SAMPLES', '0'));
    const entry = byShape.get(shape) ?? {
      type: await admin.type(key),
      encoding: String(await admin.call('OBJECT', 'ENCODING', key)),
      n: 0,
      bytes: 0,
    };
    entry.n++;
    entry.bytes += usage;
    byShape.set(shape, entry);
  }
  const sampled = seen.size;
  const shapes = [...byShape.entries()]
    .filter(([shape]) => !shared.some((k) => k.shape === shape))
    .map(([shape, e]) => ({
      shape,
      type: e.type,
      encoding: e.encoding,
      // Keys of this shape in the whole db, estimated from their share of the random sample.
      perSession: (e.n / sampled) * (total / sessions),
      usage: e.bytes / e.n,
    }));
  return [...shapes, ...shared].sort((a, b) => b.perSession * b.usage - a.perSession * a.usage);
}

interface MemoryResult {
  readonly tokens: number;
  readonly size: number;
  readonly seconds: number;
  readonly bytesPerSession: number;
  readonly keysPerSession: number;
  readonly shapes: KeyShape[];
}

async function measureMemory(
  redis: OwnRedis,
  tokens: number,
  size: number,
  concurrency: number,
): Promise<MemoryResult> {
  await redis.admin.flushall();
  const store = await openStore(redis.port);
  try {
    const before = await usedMemory(redis.admin);
    const started = performance.now();
    await register(store, randomUUID().slice(0, 8), 0, size, tokens, concurrency);
    const seconds = (performance.now() - started) / 1000;
    const after = await usedMemory(redis.admin);
    const keys = await redis.admin.dbsize();
    const shapes = await sampleKeys(redis.admin, size);
    return {
      tokens,
      size,
      seconds,
      bytesPerSession: (after - before) / size,
      keysPerSession: keys / size,
      shapes,
    };
  } finally {
    await store.close();
  }
}

interface LoginResult {
  readonly tokens: number;
  /** Sessions registered through the measured store first (0: its memos of the token index are cold). */
  readonly warm: number;
  readonly logins: number;
  readonly commands: number;
  readonly roundTrips: number;
  readonly breakdown: [string, number][];
  readonly liveAfter: number;
}

async function commandStats(admin: Redis): Promise<Map<string, number>> {
  const info = await admin.info('commandstats');
  const out = new Map<string, number>();
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) out.set(m[1] as string, Number(m[2]));
  return out;
}

/** The store calls of SessionService.login on its common path: replace the user's one live session. */
async function replacingLogin(store: RedisSessionStore, user: string, tokens: number): Promise<void> {
  const now = Date.now();
  const next = session(user, tokens, now);
  // The user's sessions (they also say whether the first token id is a re-login of one of them), and at
  // the same time each other token id: shared with another session?
  const [snapshot] = await Promise.all([
    store.readUser(user),
    ...next.tokenIds.slice(1).map((t) => store.lookup(t)),
  ]);
  const change: SessionCommit = {
    user,
    expectedVersion: snapshot.version,
    create: next,
    end: snapshot.live.map((s) => ({
      sessionId: s.id,
      state: 'superseded' as const,
      endedBy: { sessionId: next.id, ip: next.ip, userAgent: next.userAgent },
    })),
    at: now,
  };
  await store.commit(change);
}

/**
 * Replacing logins through a store of their own, after `warm` more registrations through it: a replica
 * that has written every bucket of the token index within INDEX_PRUNE_MS (as one does at about 110
 * logins a second or more: 65,536 buckets every 10 minutes) knows their TTLs and has pruned them, so
 * its logins write each entry with one HSET; a cold one (just started, or a far slower rate) also
 * reads and extends each bucket it writes (PTTL, PEXPIRE, HGETALL).
 */
async function measureLogins(
  redis: OwnRedis,
  tokens: number,
  logins: number,
  warm: number,
): Promise<LoginResult> {
  await redis.admin.flushall();
  const relay = new RoundTripRelay(redis.port);
  const store = await openStore(await relay.listen());
  try {
    const run = randomUUID().slice(0, 8);
    await register(store, run, 0, logins, tokens, 64);
    if (warm > 0) await register(store, `${run}w`, 0, warm, tokens, 256);
    // A first replacing login each way would EVAL scripts not sent yet on this connection: warm up.
    await replacingLogin(store, userOf(run, 0), tokens);
    const statsBefore = await commandStats(redis.admin);
    const tripsBefore = relay.trips();
    for (let i = 1; i < logins; i++) await replacingLogin(store, userOf(run, i), tokens);
    const tripsAfter = relay.trips();
    const statsAfter = await commandStats(redis.admin);
    const n = logins - 1;
    const breakdown: [string, number][] = [];
    for (const [name, calls] of statsAfter) {
      // The admin connection's own INFO is not the store's.
      if (name === 'info') continue;
      const d = calls - (statsBefore.get(name) ?? 0);
      if (d > 0) breakdown.push([name, d / n]);
    }
    breakdown.sort((a, b) => b[1] - a[1]);
    const live = (await store.readUser(userOf(run, 1))).live.length;
    return {
      tokens,
      warm,
      logins: n,
      commands: breakdown.reduce((s, [, c]) => s + c, 0),
      roundTrips: (tripsAfter - tripsBefore) / n,
      breakdown,
      liveAfter: live,
    };
  } finally {
    await store.close();
    await relay.close();
  }
}

interface TombstoneResult {
  readonly entries: number;
  /** Bytes per entry while its record is kept (`<tag>\n<key>\n<expiresAt>`). */
  readonly whole: number;
  /** Bytes per entry once shortened (`-\n-\n<expiresAt>`). */
  readonly shortened: number;
  /** Of the entries in a sample of buckets, how many were shortened (all should be). */
  readonly sampled: number;
  readonly sampledShort: number;
}

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** A canonical token id of index bucket `n` (see indexSlot in src/store/redis-codec.ts). */
function idOfBucket(n: number): string {
  const head = `${BASE64URL[n >> 10]}${BASE64URL[(n >> 4) & 63]}${BASE64URL[(n & 15) << 2]}`;
  return head + tokenIdOf(randomUUID()).slice(3);
}

/** Summed MEMORY USAGE (SAMPLES 0) of the token index's buckets. */
async function indexUsage(admin: Redis): Promise<number> {
  let bytes = 0;
  let cursor = '0';
  do {
    const [next, keys] = await admin.scan(cursor, 'MATCH', '*:t:*', 'COUNT', 10_000);
    cursor = next;
    const pipeline = admin.pipeline();
    for (const key of keys) pipeline.call('MEMORY', 'USAGE', key, 'SAMPLES', '0');
    for (const [err, usage] of (await pipeline.exec()) ?? []) if (!err) bytes += Number(usage);
  } while (cursor !== '0');
  return bytes;
}

/**
 * `entries` one-token sessions registered at t0, then the clock moved past their end and their
 * records' retention (and INDEX_PRUNE_MS): one more write to every bucket prunes it, which shortens
 * each entry to a tombstone. Every bucket holds a long-lived anonymous id from the start, so the
 * buckets' own cost is measured before the entries' and the second write adds nothing.
 */
async function measureTombstones(
  redis: OwnRedis,
  entries: number,
  concurrency: number,
): Promise<TombstoneResult> {
  await redis.admin.flushall();
  const t0 = Date.now();
  const clock = { value: t0 };
  const store = createRedisStore({
    url: `redis://127.0.0.1:${redis.port}`,
    pingInterval: 600_000,
    commandTimeout: 5_000,
    now: () => clock.value,
    retention: MAX_AGE,
    tombstoneRetention: 30 * 24 * HOUR,
  });
  await store.ready();
  try {
    const markers = Array.from({ length: INDEX_BUCKETS }, (_, n) => idOfBucket(n));
    const mark = async (): Promise<void> => {
      for (let i = 0; i < markers.length; i += 4096)
        await store.rememberAnonymous(markers.slice(i, i + 4096), 60 * 24 * HOUR);
    };
    await mark();
    const buckets = await indexUsage(redis.admin);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < entries) {
        const i = next++;
        const create = session(`tomb${i}@example.com`, 1, t0);
        await store.commit({ user: create.user, expectedVersion: 0, create, end: [], at: t0 });
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    const whole = (await indexUsage(redis.admin)) - buckets;
    clock.value = t0 + MAX_AGE + MAX_AGE + INDEX_PRUNE_MS;
    await mark();
    const shortened = (await indexUsage(redis.admin)) - buckets;
    let sampled = 0;
    let sampledShort = 0;
    for (let n = 0; n < INDEX_BUCKETS; n += 256) {
      const all = await redis.admin.hgetall(`sg:v4:t:${markers[n]?.slice(0, 2)}${(n & 15).toString(16)}`);
      for (const value of Object.values(all)) {
        if (value.startsWith('a\n')) continue;
        sampled++;
        if (value.startsWith('-\n-\n')) sampledShort++;
      }
    }
    return { entries, whole: whole / entries, shortened: shortened / entries, sampled, sampledShort };
  } finally {
    await store.close();
  }
}

function fmt(n: number, digits = 0): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

function commit(): string {
  try {
    const head = execSync('git rev-parse --short HEAD', { encoding: 'utf8' }).trim();
    const dirty = execSync('git status --porcelain', { encoding: 'utf8' }).trim() !== '';
    return dirty ? `${head} + uncommitted changes` : head;
  } catch {
    return 'unknown';
  }
}

function report(
  memory: MemoryResult[],
  logins: LoginResult[],
  tombstones: TombstoneResult | undefined,
  redisVersion: string,
  listpackValue: number | undefined,
): string {
  const lines: string[] = [];
  lines.push('# Store: Redis memory per session, commands and round trips per login (bench/store.ts)');
  lines.push('');
  lines.push(
    `- ${new Date().toISOString()}; node ${process.version}, nproc ${cpus().length}, ${cpus()[0]?.model ?? ''}`,
  );
  const tuning = listpackValue === undefined ? 'default config' : `hash-max-listpack-value ${listpackValue}`;
  lines.push(`- redis-server ${redisVersion}, no persistence, ${tuning}; code ${commit()}`);
  lines.push(
    '- sessions: one login of a fresh user each (user `userN.<run>@example.com`, a Chrome User-Agent, 43-char token ids, maxAge 12 h)',
  );
  lines.push(
    '- targets (issue 16): <= 400 B per session with one token; <= 6 commands and <= 3 round trips per login',
  );
  lines.push('');
  lines.push('| tokens | sessions | registered in s | used_memory / session | keys / session |');
  lines.push('|-------:|---------:|----------------:|----------------------:|---------------:|');
  for (const m of memory)
    lines.push(
      `| ${m.tokens} | ${fmt(m.size)} | ${fmt(m.seconds, 1)} | ${fmt(m.bytesPerSession)} B | ${fmt(m.keysPerSession, 2)} |`,
    );
  lines.push('');
  lines.push(
    'MEMORY USAGE per key shape (SAMPLES 0; keys of the largest run of each token count; a key shared by all sessions as its share of one):',
  );
  lines.push('');
  lines.push('| tokens | key | type | encoding | keys / session | MEMORY USAGE B |');
  lines.push('|-------:|-----|------|----------|---------------:|---------------:|');
  for (const tokens of new Set(memory.map((m) => m.tokens))) {
    const largest = memory.filter((m) => m.tokens === tokens).sort((a, b) => b.size - a.size)[0];
    for (const s of largest?.shapes ?? [])
      lines.push(
        `| ${tokens} | \`${s.shape}\` | ${s.type} | ${s.encoding} | ${fmt(s.perSession, 2)} | ${fmt(s.usage)} |`,
      );
  }
  lines.push('');
  lines.push(
    'A login on the common path (the store calls of `SessionService.login`: readUser and, sent with it, a lookup of each new token id after the first, then the commit replacing the one live session), by a replica whose memos of the token index are warm (it registered the sessions first: it wrote every bucket within the last 10 minutes, as a replica does at about 110 logins/s or more) and by a cold one (just started, or logins far slower than that: each write also reads, extends and prunes its bucket):',
  );
  lines.push('');
  lines.push(
    '| tokens | replica | logins | commands / login | round trips / login | live sessions after | commands (per login) |',
  );
  lines.push(
    '|-------:|---------|-------:|-----------------:|--------------------:|--------------------:|----------------------|',
  );
  for (const l of logins)
    lines.push(
      `| ${l.tokens} | ${l.warm > 0 ? `warm (${fmt(l.warm)} registered first)` : 'cold'} | ${fmt(l.logins)} | ${fmt(l.commands, 1)} | ${fmt(l.roundTrips, 2)} | ${l.liveAfter} | ${l.breakdown
        .map(([name, c]) => `${name} ${fmt(c, 1)}`)
        .join(', ')} |`,
    );
  lines.push('');
  if (tombstones) {
    lines.push(
      `A token index entry (summed MEMORY USAGE of the 65,536 buckets, less their cost before the entries; ${fmt(tombstones.entries)} one-token sessions): while its record is kept, and once its record is gone (past expiresAt and its retention, maxAge 12 h) and the bucket's next prune has shortened it to a tombstone, as a month of \`tombstoneRetention\` holds most entries:`,
    );
    lines.push('');
    lines.push('| entries | whole entry B | tombstone B | saved | shortened (sampled buckets) |');
    lines.push('|--------:|--------------:|------------:|------:|----------------------------:|');
    lines.push(
      `| ${fmt(tombstones.entries)} | ${fmt(tombstones.whole, 1)} | ${fmt(tombstones.shortened, 1)} | ${fmt(100 * (1 - tombstones.shortened / tombstones.whole))} % | ${fmt(tombstones.sampledShort)} of ${fmt(tombstones.sampled)} |`,
    );
    lines.push('');
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const o = options();
  const redis = await startRedis(o.listpackValue);
  try {
    const server = await redis.admin.info('server');
    const redisVersion = /^redis_version:(\S+)/m.exec(server)?.[1] ?? '?';
    const logins: LoginResult[] = [];
    for (const tokens of o.tokens) {
      for (const warm of [o.warm, 0]) {
        const l = await measureLogins(redis, tokens, o.logins, warm);
        console.log(
          `login, ${tokens} token(s), warm ${warm}: ${fmt(l.commands, 1)} commands, ${fmt(l.roundTrips, 2)} round trips; ${l.breakdown.map(([n, c]) => `${n} ${fmt(c, 1)}`).join(', ')}`,
        );
        logins.push(l);
      }
    }
    const memory: MemoryResult[] = [];
    for (const tokens of o.tokens)
      for (const size of o.sizes) {
        const m = await measureMemory(redis, tokens, size, o.concurrency);
        console.log(
          `${fmt(size)} sessions, ${tokens} token(s): ${fmt(m.bytesPerSession)} B/session, ${fmt(m.keysPerSession, 2)} keys/session, ${fmt(m.seconds, 1)} s`,
        );
        memory.push(m);
      }
    let tombstones: TombstoneResult | undefined;
    if (o.tombstones > 0) {
      tombstones = await measureTombstones(redis, o.tombstones, o.concurrency);
      console.log(
        `tombstones: ${fmt(tombstones.whole, 1)} B per whole entry, ${fmt(tombstones.shortened, 1)} B per tombstone (${fmt(tombstones.sampledShort)} of ${fmt(tombstones.sampled)} sampled shortened)`,
      );
    }
    const text = report(memory, logins, tombstones, redisVersion, o.listpackValue);
    console.log(`\n${text}`);
    if (o.results) writeFileSync(o.results, text);
  } finally {
    await redis.stop();
  }
}

await main();
