/**
 * Faults: nothing lost. The gateway on the Redis store, its Redis connections through the fault proxy
 * (test/support/fault-proxy.ts) in front of a real redis-server: a stall, a half-open subscriber or
 * command connection, a lookup held while a revocation lands, a logout during an outage. Each test
 * shows the decision taken during the fault and that the gateway serves again, by itself, once the fault
 * is lifted. Session time is an injected clock shared by the replicas (maxStaleness is advanced, never
 * slept); the proxy's events say when a fault has bitten.
 */
import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import type { ConfigInput } from '../../src/config/schema.js';
import {
  bearer,
  get,
  postJson,
  startGateway,
  testClock,
  type TestClock,
  type TestGateway,
} from '../support/gateway.js';
import { TEST_LOGIN_RULES } from '../support/login-rules.js';
import { startFaultProxy, type FaultConnection, type FaultProxy } from '../support/fault-proxy.js';
import { haveRedis, startRedis, type RedisHandle } from '../support/redis.js';
import { waitUntil } from '../support/wait.js';
import { needTool } from '../support/tools.js';
import { testApp, type TestApp } from '../support/upstreams.js';

/** Every suite here runs against a real redis-server. */
const redisServer = needTool('redis-server', 'redis-server', haveRedis());

const MAX_STALENESS = 1_000;

let redis: RedisHandle;
let app: TestApp;
beforeAll(async () => {
  redis = await startRedis();
  app = await testApp();
  return async () => {
    await app.close();
    await redis.stop();
  };
});

async function faultProxy(): Promise<FaultProxy> {
  const proxy = await startFaultProxy(redis.port);
  onTestFinished(() => proxy.close());
  return proxy;
}

interface ReplicaOptions {
  /** The Redis URL (a fault proxy's, or the server's own). */
  readonly url: string;
  readonly keyPrefix: string;
  readonly clock: TestClock;
  readonly commandTimeout?: string;
  readonly pingInterval?: string;
  readonly extra?: Partial<ConfigInput>;
}

/** A gateway replica on the Redis store in front of the shared test app, ready (connected and subscribed). */
async function replica(o: ReplicaOptions): Promise<TestGateway> {
  const gw = await startGateway(
    {
      upstream: app.url,
      login: TEST_LOGIN_RULES,
      logout: [{ match: 'POST /api/logout' }],
      tokens: ['bearer'],
      sessions: { limit: 1 },
      cache: { maxStaleness: MAX_STALENESS },
      store: {
        url: o.url,
        keyPrefix: o.keyPrefix,
        commandTimeout: o.commandTimeout ?? '200ms',
        pingInterval: o.pingInterval ?? '200ms',
      },
      ...o.extra,
    },
    { now: o.clock.now },
  );
  await waitUntil('the replica is ready', () => gw.gateway.isReady());
  return gw;
}

const prefix = () => `sgf${randomBytes(4).toString('hex')}:`;

/** The value of a metric without labels (a counter or gauge) on a gateway. */
async function metric(gw: TestGateway, name: string): Promise<number> {
  const m = gw.gateway.metrics.registry.getSingleMetric(name);
  if (!m) throw new Error(`no metric ${name}`);
  const values = (await m.get()).values;
  return values.reduce((sum, v) => sum + v.value, 0);
}

async function readyz(gw: TestGateway): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await gw.admin('/readyz', { auth: false });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function login(gw: TestGateway, user: string): Promise<string> {
  const { token, response } = await gw.loginJson(user);
  expect(response.status).toBe(200);
  return token;
}

/** The subscriber's connection through the proxy (the one that sent SUBSCRIBE; ioredis writes it lower-case). */
const subscriberOf = (proxy: FaultProxy) =>
  proxy.connection((c) => c.sent().toLowerCase().includes('subscribe'));

describe.skipIf(!redisServer)('a Redis stall', () => {
  it('turns a cache miss into a 503 session_store_unavailable while Redis still stalls (failMode closed)', async () => {
    const proxy = await faultProxy();
    const clock = testClock();
    const gw = await replica({ url: proxy.url, keyPrefix: prefix(), clock });
    const token = await login(gw, 'alice');
    clock.advance(MAX_STALENESS); // the cached live entry is no longer trusted: a store read is needed
    proxy.stall();

    // Answered by the command timeout: the stall is still on when the answer comes.
    const res = await get(`${gw.url}/api/me`, bearer(token));
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ error: 'session_store_unavailable' });
    expect(await metric(gw, 'sessiongate_store_errors_total')).toBeGreaterThan(0);

    proxy.heal();
    await waitUntil(
      'served again',
      async () => (await get(`${gw.url}/api/me`, bearer(token))).status === 200,
    );
  });

  it('still answers a cache hit with 200, without asking Redis', async () => {
    const proxy = await faultProxy();
    const gw = await replica({ url: proxy.url, keyPrefix: prefix(), clock: testClock() });
    const token = await login(gw, 'bob');
    proxy.stall();
    const res = await get(`${gw.url}/api/me`, bearer(token));
    expect(res.status).toBe(200);
    expect(await metric(gw, 'sessiongate_store_errors_total')).toBe(0);
  });

  it('makes /readyz answer 503 although the connections stay open, and 200 once lifted', async () => {
    const proxy = await faultProxy();
    const gw = await replica({ url: proxy.url, keyPrefix: prefix(), clock: testClock() });
    expect((await readyz(gw)).status).toBe(200);
    proxy.stall();
    // No request at all: the subscriber's unanswered PING is what tells.
    const unready = await waitUntil('unready', async () => {
      const r = await readyz(gw);
      return r.status === 503 ? r : undefined;
    });
    expect(unready.body).toMatchObject({ status: 'unready', reason: 'invalidation channel is down' });
    expect(proxy.connections().every((c) => !c.closed)).toBe(true);

    proxy.heal();
    await waitUntil('ready again', async () => (await readyz(gw)).status === 200);
    expect(await metric(gw, 'sessiongate_invalidation_channel_lost_total')).toBe(1);
    // The recovery is counted too, once (the first subscription was none).
    await waitUntil(
      'recovery counted',
      async () => (await metric(gw, 'sessiongate_store_recoveries_total')) === 1,
    );
  });
  it('keeps /readyz 200 under failMode: open, where the gateway serves through the stall', async () => {
    const proxy = await faultProxy();
    const clock = testClock();
    const gw = await replica({ url: proxy.url, keyPrefix: prefix(), clock, extra: { failMode: 'open' } });
    const token = await login(gw, 'dora');
    proxy.stall();
    clock.advance(MAX_STALENESS);
    // The request that needs the store is answered (passed, failMode open) once the command timed out...
    expect((await get(`${gw.url}/api/me`, bearer(token))).status).toBe(200);
    expect(gw.gateway.store.health().commands).toBe(false);
    // ...and the replica stays in its Service meanwhile.
    expect((await readyz(gw)).status).toBe(200);
    proxy.heal();
  });
});

describe.skipIf(!redisServer)('a half-open connection', () => {
  it('on the command path makes /readyz 503 with the channel up, and the store reconnects by itself', async () => {
    const proxy = await faultProxy();
    const clock = testClock();
    const gw = await replica({ url: proxy.url, keyPrefix: prefix(), clock });
    const token = await login(gw, 'carol');
    const subscriber = await subscriberOf(proxy);
    const commands = proxy.connections().find((c) => c !== subscriber) as FaultConnection;
    commands.halfOpen();
    clock.advance(MAX_STALENESS);
    expect((await get(`${gw.url}/api/me`, bearer(token))).status).toBe(503);

    const r = await readyz(gw);
    expect(r.status).toBe(503);
    expect(r.body).toMatchObject({ store: 'down', reason: expect.stringContaining('not answered') });
    expect(gw.gateway.store.health().channel).toBe(true);

    // No more requests: the store's own probe runs into the timeouts that make it reconnect.
    await waitUntil('ready again', async () => (await readyz(gw)).status === 200);
    expect(proxy.accepted).toBeGreaterThan(2); // a new command connection
    expect((await get(`${gw.url}/api/me`, bearer(token))).status).toBe(200);
    expect(await metric(gw, 'sessiongate_store_available')).toBe(1);
    expect(await metric(gw, 'sessiongate_store_errors_total')).toBeGreaterThan(0);
  });

  it('on the subscriber is detected by its unanswered PING; the channel comes back and invalidations flow', async () => {
    const proxy = await faultProxy();
    const clock = testClock();
    const keyPrefix = prefix();
    const a = await replica({ url: redis.url, keyPrefix, clock });
    const b = await replica({ url: proxy.url, keyPrefix, clock, pingInterval: '200ms' });
    const subscriber = await subscriberOf(proxy);
    subscriber.halfOpen();

    await waitUntil('the channel is reported lost', () =>
      b.logs.lines().some((l) => l.code === 'SG_ERR_CHANNEL_LOST'),
    );
    // Nothing closed the connection: the PING's deadline did.
    expect(subscriber.closed).toBe(false);
    expect(b.logs.lines().some((l) => l.err === 'subscriber PING not answered within 200ms')).toBe(true);
    expect(await metric(b, 'sessiongate_invalidation_channel_lost_total')).toBe(1);

    // A new subscriber connection (the proxy passes new ones) brings the channel back by itself.
    await waitUntil('the channel is restored', () => b.gateway.isReady());
    expect(proxy.accepted).toBeGreaterThan(2);
    const t1 = await login(a, 'dave');
    expect((await get(`${b.url}/api/me`, bearer(t1))).status).toBe(200);
    const revoked = new Promise<readonly string[]>((resolve) => b.gateway.sessions.onRevoked(resolve));
    await login(a, 'dave');
    await revoked;
    const res = await get(`${b.url}/api/me`, bearer(t1));
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ error: 'session_superseded' });
  });

  it('on the subscriber lets no revoked token through once its cached live entry is older than maxStaleness', async () => {
    const proxy = await faultProxy();
    const clock = testClock();
    const keyPrefix = prefix();
    const a = await replica({ url: redis.url, keyPrefix, clock });
    // A PING far away: nothing but the staleness bound can save B here.
    const b = await replica({ url: proxy.url, keyPrefix, clock, pingInterval: '60s' });
    const t1 = await login(a, 'erin');
    expect((await get(`${b.url}/api/me`, bearer(t1))).status).toBe(200); // B caches t1 as live
    (await subscriberOf(proxy)).halfOpen();

    await login(a, 'erin'); // supersedes t1; the invalidation never reaches B
    // Still within maxStaleness: B trusts what it cached (the message was lost, not late).
    expect((await get(`${b.url}/api/me`, bearer(t1))).status).toBe(200);
    clock.advance(MAX_STALENESS - 1);
    expect((await get(`${b.url}/api/me`, bearer(t1))).status).toBe(200);
    clock.advance(1);
    const res = await get(`${b.url}/api/me`, bearer(t1));
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ error: 'session_superseded' });
  });
});

describe.skipIf(!redisServer)('the cache-fill race', () => {
  it('never caches the "live" of a lookup that Redis answered before a revocation it delivered after', async () => {
    const proxy = await faultProxy();
    const clock = testClock();
    const keyPrefix = prefix();
    const a = await replica({ url: redis.url, keyPrefix, clock });
    // A long command timeout: the held reply must come late, not fail.
    const b = await replica({ url: proxy.url, keyPrefix, clock, commandTimeout: '10s' });
    const t1 = await login(a, 'frank');

    // B's lookup reads the session (HMGET); its reply, "live", is held in the proxy.
    const held = new Promise<FaultConnection>((resolve) => {
      const stop = proxy.onData((chunk, direction, conn) => {
        if (direction !== 'up' || !chunk.toString('latin1').toLowerCase().includes('hmget')) return;
        conn.stall('down');
        stop();
        resolve(conn);
      });
    });
    const pending = get(`${b.url}/api/me`, bearer(t1));
    const lookup = await held;
    await lookup.untilHeld('down');

    // Meanwhile A supersedes t1 and B applies the invalidation, with nothing cached to drop.
    const revoked = new Promise<readonly string[]>((resolve) => b.gateway.sessions.onRevoked(resolve));
    await login(a, 'frank');
    await revoked;
    lookup.heal();

    const res = await pending;
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ error: 'session_superseded' });
    expect((await get(`${b.url}/api/me`, bearer(t1))).status).toBe(401);
  });
});

describe.skipIf(!redisServer)('a logout during a store outage', () => {
  it('is answered 503 session_store_unavailable, and a retry once Redis is back ends the session', async () => {
    const proxy = await faultProxy();
    const gw = await replica({ url: proxy.url, keyPrefix: prefix(), clock: testClock() });
    const token = await login(gw, 'grace');
    proxy.stall();
    const during = await postJson(`${gw.url}/api/logout`, {}, bearer(token));
    expect(during.status).toBe(503);
    expect(await during.json()).toMatchObject({ error: 'session_store_unavailable' });
    expect(during.headers.get('retry-after')).toBe('5');

    proxy.heal();
    await waitUntil('ready again', () => gw.gateway.isReady());
    const retry = await postJson(`${gw.url}/api/logout`, {}, bearer(token));
    expect(retry.status).toBe(200);
    const after = await get(`${gw.url}/api/me`, bearer(token));
    expect(after.status).toBe(401);
    expect(await after.json()).toMatchObject({ error: 'session_logged_out' });
  });
});
