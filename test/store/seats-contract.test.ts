/**
 * The seat contract (`SeatStore`, sessions.seats) on every store that is cheap to start here: memory,
 * standalone Redis and a Redis Cluster. Each case runs on a fresh store with its own key prefix.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import type { SeatClaim, SessionStore } from '../../src/store/contract.js';
import { MemorySessionStore } from '../../src/store/memory.js';
import {
  haveRedis,
  haveRedisCli,
  redisStoreHarness,
  startRedis,
  startRedisCluster,
  type RedisClusterHandle,
  type RedisHandle,
} from '../support/redis.js';
import { needTool } from '../support/tools.js';

const redisServer = needTool('redis-server', 'redis-server', haveRedis());
const redisCluster = redisServer && needTool('redis-cli', 'redis-tools', haveRedisCli());

type Harness = () => Promise<{ store: SessionStore; clock: { value: number }; cleanup: () => Promise<void> }>;

let redis: RedisHandle | undefined;
let cluster: RedisClusterHandle | undefined;
beforeAll(async () => {
  if (redisServer) redis = await startRedis();
  if (redisCluster) cluster = await startRedisCluster();
});
afterAll(async () => {
  await redis?.stop();
  await cluster?.stop();
});

const memory: Harness = () => {
  const clock = { value: Date.now() };
  const store = new MemorySessionStore({ now: () => clock.value });
  return Promise.resolve({ store, clock, cleanup: () => store.close() });
};

const cases: [string, Harness, boolean][] = [
  ['memory', memory, false],
  ['redis', redisStoreHarness(() => ({ url: (redis as RedisHandle).url })), !redisServer],
  [
    'redis cluster',
    redisStoreHarness(() => ({ cluster: (cluster as RedisClusterHandle).seeds })),
    !redisCluster,
  ],
];

describe.each(cases)('seats on the %s store', (_name, harness, skip) => {
  let store: SessionStore;
  let clock: { value: number };
  const open = async () => {
    const h = await harness();
    onTestFinished(h.cleanup);
    store = h.store;
    clock = h.clock;
  };
  const claim = (user: string, sessionId: string, extra: Partial<SeatClaim> = {}): SeatClaim => ({
    tenant: 'acme',
    user,
    sessionId,
    expiresAt: clock.value + 3_600_000,
    keep: [],
    max: 2,
    at: clock.value,
    ...extra,
  });

  it.skipIf(skip)('takes seats up to max and refuses the next, changing nothing', async () => {
    await open();
    expect(await store.seats.reserve(claim('a', 's1'))).toBe(true);
    expect(await store.seats.reserve(claim('b', 's2'))).toBe(true);
    expect(await store.seats.reserve(claim('c', 's3'))).toBe(false);
    expect(await store.seats.count('acme', clock.value)).toBe(2);
    // Another tenant has seats of its own.
    expect(await store.seats.reserve(claim('c', 's3', { tenant: 'globex' }))).toBe(true);
  });

  it.skipIf(skip)("hands a user's seat over on a re-login: it never counts twice", async () => {
    await open();
    expect(await store.seats.reserve(claim('a', 's1'))).toBe(true);
    expect(await store.seats.reserve(claim('b', 's2'))).toBe(true);
    // a's new session replaces s1 (not kept): the tenant stays at 2.
    expect(await store.seats.reserve(claim('a', 's3'))).toBe(true);
    expect(await store.seats.count('acme', clock.value)).toBe(2);
    // a keeping s3 and adding s4 needs a third seat.
    expect(await store.seats.reserve(claim('a', 's4', { keep: ['s3'] }))).toBe(false);
    expect(await store.seats.count('acme', clock.value)).toBe(2);
  });

  it.skipIf(skip)('frees released seats and those past their expiresAt', async () => {
    await open();
    expect(await store.seats.reserve(claim('a', 's1', { expiresAt: clock.value + 1_000 }))).toBe(true);
    expect(await store.seats.reserve(claim('b', 's2'))).toBe(true);
    await store.seats.release('acme', ['s2']);
    expect(await store.seats.count('acme', clock.value)).toBe(1);
    clock.value += 1_000;
    expect(await store.seats.count('acme', clock.value)).toBe(0);
    expect(await store.seats.reserve(claim('c', 's3', { max: 1 }))).toBe(true);
    expect(await store.seats.reserve(claim('d', 's4', { max: 1 }))).toBe(false);
  });

  it.skipIf(skip)('reserves exactly max under concurrent claims', async () => {
    await open();
    const results = await Promise.all(
      Array.from({ length: 30 }, (_, i) => store.seats.reserve(claim(`u${i % 10}`, `s${i}`, { max: 4 }))),
    );
    expect(await store.seats.count('acme', clock.value)).toBe(4);
    // Granted to exactly four users: a seat once taken is never taken from its user by another.
    expect(new Set(results.flatMap((ok, i) => (ok ? [`u${i % 10}`] : []))).size).toBe(4);
  });

  it.skipIf(skip)('keeps tenant names with braces apart', async () => {
    await open();
    expect(await store.seats.reserve(claim('a', 's1', { tenant: '{x}', max: 1 }))).toBe(true);
    expect(await store.seats.reserve(claim('b', 's2', { tenant: 'x', max: 1 }))).toBe(true);
    expect(await store.seats.count('{x}', clock.value)).toBe(1);
  });
});
