/**
 * Scale: does the check get dearer with many sessions, and what do sessions cost in memory?
 *
 * Sessions are seeded straight through the Redis store module (`createRedisStore` of
 * src/store/redis.ts, its `commit` as the session service calls it): a million logins through the
 * gateway would take far longer than the measurement itself. Then, at each size (1,000 and 1,000,000 by
 * default), a gateway on that Redis is loaded with autocannon, once with its LRU (cache hit) and once
 * with `cache.max: 1` (every request a Redis lookup), and we report Redis `used_memory` per session and
 * the gateway's RSS with its LRU full.
 *
 * Usage: node dist/bench/scale.js [--sizes 1000,1000000] [--sample 1000] [--quick] [--duration 10]
 *          [--warmup 2] [--connections 50] [--seed-concurrency 256] [--gateway-cli ../dist/src/cli.js]
 *          [--results results/scale.md] [--no-results]
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import type { SessionStore } from '../src/store/contract.js';
import { createRedisStore } from '../src/store/redis.js';
import { createTokenIdOf, type TokenIdOf } from '../src/tokens/token-id.js';
import {
  BENCH_SECRET,
  cleanupConfigs,
  GatewayCheckError,
  GatewayUnavailableError,
  startGateway,
  type Gateway,
} from './lib/gateway.js';
import { publish, runIfMain } from './lib/driver.js';
import { getWithToken } from './lib/http.js';
import { bearerRotation, drive, measure, type LoadSettings, type Measurement } from './lib/load.js';
import { outputPaths } from './lib/paths.js';
import { rssBytes } from './lib/proc.js';
import { infoField, redisUnavailableReason, startRedis, type BenchRedis } from './lib/redis.js';
import { int, machine, machineLines, mib, num, oneLine, table } from './lib/report.js';
import { startUpstream, type Helper } from './lib/servers.js';

/** The gateway's default `cache.max`: the "cache full" RSS is read after this many distinct tokens. */
const DEFAULT_CACHE_MAX = 100_000;
/** Key prefix of the seeded sessions; the gateway's `store: redis://...` uses the same default. */
const KEY_PREFIX = 'sg:';
/** The gateway's default sessions.maxAge (12h): seeded sessions expire like real ones. */
const MAX_AGE_MS = 12 * 3600 * 1000;

interface Options {
  sizes: number[];
  sample: number;
  settings: LoadSettings;
  seedConcurrency: number;
  gatewayCli: string;
  resultsFile: string | undefined;
  quick: boolean;
}

/** The record a login creates, taken from the contract itself so the bench follows the model wherever it lives. */
type SessionCommit = Parameters<SessionStore['commit']>[0];
type SessionRecord = NonNullable<SessionCommit['create']>;

/** Deterministic tokens: any index can be re-derived later without keeping a million strings. */
function tokenOf(run: string, index: number): string {
  return `scale-${run}-${index}`;
}

function sessionRecord(run: string, index: number, tokenIdOf: TokenIdOf, now: number): SessionRecord {
  return {
    id: randomUUID(),
    user: `scale-${run}-u${index}`,
    state: 'live',
    createdAt: now,
    lastSeenAt: now,
    expiresAt: now + MAX_AGE_MS,
    ip: '127.0.0.1',
    userAgent: 'sessiongate-bench/scale',
    tokenIds: [tokenIdOf(tokenOf(run, index))],
  };
}

async function waitAvailable(store: SessionStore, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!store.isAvailable()) {
    if (Date.now() > deadline)
      throw new Error(`the Redis store did not become available within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Seeds sessions [from, to) as one login each of a fresh user (expectedVersion 0), `concurrency` in flight. */
async function seed(
  store: SessionStore,
  run: string,
  from: number,
  to: number,
  concurrency: number,
): Promise<number> {
  const tokenIdOf = createTokenIdOf(BENCH_SECRET);
  const started = performance.now();
  let next = from;
  let reported = from;
  const worker = async (): Promise<void> => {
    while (next < to) {
      const index = next++;
      const now = Date.now();
      const create = sessionRecord(run, index, tokenIdOf, now);
      await store.commit({ user: create.user, expectedVersion: 0, create, end: [], at: now });
      if (index - reported >= 100_000) {
        reported = index;
        console.log(`  seeded ${int(index)} sessions`);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return (performance.now() - started) / 1000;
}

/** `count` tokens spread evenly over the first `size` sessions, so lookups touch the whole keyspace. */
function spreadTokens(run: string, size: number, count: number): string[] {
  const n = Math.min(size, count);
  return Array.from({ length: n }, (_, j) => tokenOf(run, Math.floor((j * size) / n)));
}

/** A seeded token must pass and an unknown one be refused, else the token ids do not match the gateway's. */
async function verifySeeded(gateway: Gateway, token: string): Promise<void> {
  const live = await getWithToken(gateway.url, token);
  if (live.status !== 200) {
    throw new GatewayCheckError(
      `${gateway.name}: a seeded session answered ${live.status}: ${live.body.slice(0, 200)}`,
    );
  }
  const unknown = await getWithToken(gateway.url, randomBytes(16).toString('hex'));
  if (unknown.status !== 401) {
    throw new GatewayCheckError(`${gateway.name}: an unknown token answered ${unknown.status}, expected 401`);
  }
}

interface SizeResult {
  size: number;
  seedSeconds: number;
  bytesPerSession: number;
  keys: number;
  hit: Measurement;
  miss: Measurement;
  rssBefore: number;
  rssFull: number;
  cachedEntries: number;
}

interface Env {
  options: Options;
  upstream: Helper;
  redis: BenchRedis;
  run: string;
}

function gatewayOverrides(env: Env, cacheMax: number | undefined): Record<string, unknown> {
  return {
    store: env.redis.url,
    // A long staleness bound: the hit rows must measure LRU hits, not the once-a-second re-reads.
    cache: { maxStaleness: '1h', ...(cacheMax ? { max: cacheMax } : {}) },
    // Unknown tokens refused, so that verifySeeded proves the seeded ids are the gateway's ids.
    sessions: { unknownTokens: 'reject' },
  };
}

async function withGateway<T>(
  env: Env,
  name: string,
  cacheMax: number | undefined,
  fn: (g: Gateway) => Promise<T>,
): Promise<T> {
  const gateway = await startGateway(
    name,
    env.options.gatewayCli,
    env.upstream.url,
    gatewayOverrides(env, cacheMax),
  );
  try {
    await verifySeeded(gateway, tokenOf(env.run, 0));
    return await fn(gateway);
  } finally {
    await gateway.stop();
  }
}

async function measureHit(
  env: Env,
  size: number,
): Promise<Pick<SizeResult, 'hit' | 'rssBefore' | 'rssFull' | 'cachedEntries'>> {
  return withGateway(env, `scale-hit-${size}`, undefined, async (gateway) => {
    const watched = [
      { label: 'proxy', pid: gateway.child.pid },
      { label: 'redis', pid: env.redis.child.pid },
    ];
    const hot = spreadTokens(env.run, size, env.options.sample);
    const hit = await measure(
      { url: `${gateway.url}/`, requestsFor: bearerRotation(hot) },
      env.options.settings,
      watched,
    );
    const rssBefore = rssBytes(gateway.child.pid);
    // Fill the LRU: one request per distinct token, up to its capacity.
    const cachedEntries = Math.min(size, DEFAULT_CACHE_MAX);
    const fill = spreadTokens(env.run, size, cachedEntries);
    await drive(
      { url: `${gateway.url}/`, requestsFor: bearerRotation(fill) },
      env.options.settings,
      fill.length,
    );
    return { hit, rssBefore, rssFull: rssBytes(gateway.child.pid), cachedEntries };
  });
}

async function measureMiss(env: Env, size: number): Promise<Measurement> {
  return withGateway(env, `scale-miss-${size}`, 1, (gateway) => {
    const watched = [
      { label: 'proxy', pid: gateway.child.pid },
      { label: 'redis', pid: env.redis.child.pid },
    ];
    const spread = spreadTokens(env.run, size, env.options.sample);
    return measure(
      { url: `${gateway.url}/`, requestsFor: bearerRotation(spread) },
      env.options.settings,
      watched,
    );
  });
}

async function measureSizes(env: Env, store: SessionStore): Promise<SizeResult[]> {
  const baseline = await infoField(env.redis.admin, 'memory', 'used_memory');
  const results: SizeResult[] = [];
  let seeded = 0;
  let seedSeconds = 0;
  for (const size of env.options.sizes) {
    console.log(`\n> ${int(size)} sessions: seeding ${int(size - seeded)} through the store`);
    seedSeconds += await seed(store, env.run, seeded, size, env.options.seedConcurrency);
    seeded = size;
    const used = await infoField(env.redis.admin, 'memory', 'used_memory');
    const keys = await env.redis.admin.dbsize();
    console.log(
      `  seeded in ${num(seedSeconds)} s; used_memory ${mib(used)}, ${int(keys)} keys; cache-hit load`,
    );
    const hitPart = await measureHit(env, size);
    console.log(
      `  hit: ${int(hitPart.hit.reqPerSec)} req/s, ${num(hitPart.hit.cpuPerRequest['proxy'])} us/req; cache-miss load`,
    );
    const miss = await measureMiss(env, size);
    console.log(`  miss: ${int(miss.reqPerSec)} req/s, ${num(miss.cpuPerRequest['proxy'])} us/req`);
    results.push({ size, seedSeconds, bytesPerSession: (used - baseline) / size, keys, miss, ...hitPart });
  }
  return results;
}

function loadRow(size: number, mode: string, m: Measurement): string[] {
  return [
    int(size),
    mode,
    int(m.reqPerSec),
    num(m.p50, 0),
    num(m.p99, 0),
    num(m.cpuPerRequest['proxy']),
    num(m.cpuPerRequest['redis']),
    int(m.non2xx + m.errors + m.timeouts),
  ];
}

function report(options: Options, results: readonly SizeResult[]): string {
  const m = machine();
  const s = options.settings;
  const load = table(
    ['sessions', 'check', 'req/s', 'p50 ms', 'p99 ms', 'gateway CPU us/req', 'redis us/req', 'not 2xx'],
    results.flatMap((r) => [
      loadRow(r.size, 'cache hit', r.hit),
      loadRow(r.size, 'cache miss (max 1)', r.miss),
    ]),
    2,
  );
  const memory = table(
    [
      'sessions',
      'seeded in s (cumulative)',
      'redis keys',
      'used_memory / session',
      'gateway RSS before fill',
      'gateway RSS, LRU full',
      'LRU entries',
    ],
    results.map((r) => [
      int(r.size),
      num(r.seedSeconds),
      int(r.keys),
      `${int(r.bytesPerSession)} B`,
      mib(r.rssBefore),
      mib(r.rssFull),
      int(r.cachedEntries),
    ]),
  );
  return [
    `## ${m.date} — scale (bench/scale.ts)${options.quick ? ' — quick smoke run, not for comparison' : ''}`,
    '',
    ...machineLines(m),
    `- sessions seeded through createRedisStore().commit (one user and one token each); the load rotates over ${options.sample} of them spread over the keyspace`,
    `- autocannon: ${s.connections} connections, pipelining ${s.pipelining}, ${s.warmup} s warm-up then ${s.duration} s measured; gateway with cache.maxStaleness 1h, sessions.unknownTokens reject`,
    '',
    load,
    '',
    memory,
  ].join('\n');
}

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      sizes: { type: 'string', default: '1000,1000000' },
      sample: { type: 'string', default: '1000' },
      quick: { type: 'boolean', default: false },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      connections: { type: 'string', default: '50' },
      'seed-concurrency': { type: 'string', default: '256' },
      'gateway-cli': { type: 'string' },
      results: { type: 'string' },
      'no-results': { type: 'boolean', default: false },
    },
  });
  const quick = values.quick ?? false;
  const sizes = (values.sizes ?? '').split(',').map((v) => Number(v.replace(/_/g, '')));
  if (sizes.some((n) => !Number.isInteger(n) || n < 1))
    throw new Error(`--sizes expects integers, got ${values.sizes}`);
  return {
    sizes: [...sizes].sort((a, b) => a - b),
    sample: Number(values.sample),
    settings: {
      duration: Number(values.duration ?? (quick ? 3 : 10)),
      warmup: Number(values.warmup ?? (quick ? 1 : 2)),
      connections: Number(values.connections),
      pipelining: 1,
    },
    seedConcurrency: Number(values['seed-concurrency']),
    ...outputPaths('scale', values),
    quick,
  };
}

async function runScale(options: Options): Promise<SizeResult[] | undefined> {
  const upstream = await startUpstream();
  const redis = await startRedis();
  // A long command timeout: seeding keeps hundreds of commits in flight, and a slow one is not a failure here.
  const store = createRedisStore({ url: redis.url, keyPrefix: KEY_PREFIX, commandTimeout: 10_000 });
  try {
    await waitAvailable(store, 5_000);
    const env: Env = { options, upstream, redis, run: randomBytes(3).toString('hex') };
    // Fail fast: find out that the gateway cannot run on Redis before minutes of seeding, not after.
    await (
      await startGateway('scale-probe', options.gatewayCli, upstream.url, gatewayOverrides(env, undefined))
    ).stop();
    return await measureSizes(env, store);
  } catch (err) {
    if (!(err instanceof GatewayUnavailableError)) throw err;
    console.log(`  SKIPPED: the gateway is not available: ${oneLine(err.message)}`);
    return undefined;
  } finally {
    await store.close();
    await redis.stop();
    await upstream.child.stop();
    await cleanupConfigs();
  }
}

async function main(): Promise<void> {
  const options = parseOptions();
  console.log(`> scale: sizes ${options.sizes.map(int).join(', ')}`);
  const missing = redisUnavailableReason();
  if (missing) return void console.log(`  SKIPPED: ${missing}`);
  const results = await runScale(options);
  if (!results) return;
  const section = report(options, results);
  await publish('scale', section, options.resultsFile);
}

runIfMain(import.meta.url, main);
