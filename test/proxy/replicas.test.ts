/**
 * Several gateway replicas sharing one Redis: cross-replica revocation, concurrent logins across
 * replicas, Redis faults (killed, pub/sub connection killed, Sentinel failover).
 */
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { createTokenIdOf } from '../../src/tokens/token-id.js';
import { bearer, startGateway, TEST_ADMIN_TOKEN, TEST_SECRET, type TestGateway } from '../support/gateway.js';
import {
  haveRedis,
  haveRedisCli,
  redisCommand,
  startRedis,
  startRedisCluster,
  startRedisSentinel,
  type RedisHandle,
} from '../support/redis.js';
import { waitUntil } from '../support/wait.js';
import { needTool } from '../support/tools.js';
import { listenApp, readBody } from '../support/upstreams.js';
import type { RunningApp } from '../support/running-app.js';
import { JSON_LOGIN_RULE } from '../support/login-rules.js';

/** Every suite here starts redis-servers; the Cluster is created with redis-cli. */
const redisServer = needTool('redis-server', 'redis-server', haveRedis());
const redisCli = redisServer && needTool('redis-cli', 'redis-tools', haveRedisCli());

const LOGIN = [JSON_LOGIN_RULE];
const agent = new Agent({ connections: 64 });
const tokenIdOf = createTokenIdOf(TEST_SECRET);

/** Token ids the replica has been told stopped being live (its own revocations and the channel's). */
function revokedOn(gw: TestGateway): Set<string> {
  const ids = new Set<string>();
  const off = gw.gateway.sessions.onRevoked((tokenIds) => tokenIds.forEach((id) => ids.add(id)));
  onTestFinished(() => void off());
  return ids;
}

async function loginApp(): Promise<RunningApp> {
  const app = await listenApp((req, res) => {
    void (async () => {
      const body = (await readBody(req)).toString();
      if (req.url === '/api/login') {
        const { username } = JSON.parse(body) as { username: string };
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ accessToken: randomBytes(16).toString('hex'), user: { id: username } }));
        return;
      }
      if (req.url === '/events') {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        res.write('data: hello\n\n');
        const tick = setInterval(() => res.write('data: tick\n\n'), 50);
        res.on('close', () => clearInterval(tick));
        return;
      }
      res.end('ok');
    })();
  });
  new WebSocketServer({ server: app.server }).on('connection', (ws) =>
    ws.on('message', (m) => ws.send(String(m))),
  );
  return app;
}

async function login(url: string, username: string): Promise<string> {
  const res = await request(`${url}/api/login`, {
    method: 'POST',
    body: JSON.stringify({ username }),
    dispatcher: agent,
  });
  return ((await res.body.json()) as { accessToken: string }).accessToken;
}

/**
 * A login that must succeed before a test's load starts: a 503 (a 200 ms command timeout overrun on a
 * loaded machine) is retried, anything else but a token fails the test, so no test runs its load with
 * an undefined token (which the gateway would pass as unknown).
 */
async function loginBeforeLoad(url: string, username: string): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    const res = await request(`${url}/api/login`, {
      method: 'POST',
      body: JSON.stringify({ username }),
      dispatcher: agent,
    });
    if (res.statusCode === 503 && attempt < 20) {
      await res.body.dump();
      continue;
    }
    expect(res.statusCode).toBe(200);
    const { accessToken } = (await res.body.json()) as { accessToken?: string };
    expect(accessToken).toBeTypeOf('string');
    return accessToken as string;
  }
}

async function status(url: string, token: string): Promise<number> {
  const res = await request(`${url}/data`, {
    headers: { authorization: `Bearer ${token}` },
    dispatcher: agent,
  });
  await res.body.dump();
  return res.statusCode;
}

describe.skipIf(!redisServer)('two replicas on one Redis', () => {
  let app: RunningApp;
  let redis: RedisHandle;
  beforeAll(async () => {
    app = await loginApp();
    redis = await startRedis(['--appendonly', 'yes', '--appendfsync', 'always']);
  });
  afterAll(async () => {
    await app.close();
    await redis.stop();
  });

  const pair = async (extra: Record<string, unknown> = {}) => {
    const keyPrefix = `t${randomBytes(4).toString('hex')}:`;
    const config = {
      login: LOGIN,
      store: { url: redis.url, keyPrefix, pingInterval: '200ms' },
      cache: { maxStaleness: '1s' },
      ...extra,
    };
    const a = await startGateway({ upstream: app.url, ...config });
    const b = await startGateway({ upstream: app.url, ...config });
    await waitUntil('both subscribers', () => a.gateway.isReady() && b.gateway.isReady());
    return { a, b };
  };

  it('rejects the older token on B after a login through A, told by the invalidation channel', async () => {
    const { a, b } = await pair({ cache: { maxStaleness: '1h' } });
    const t1 = await login(a.url, 'alice');
    expect(await status(b.url, t1)).toBe(200); // B now caches t1 as live
    const revokedOnB = revokedOn(b);
    await login(a.url, 'alice');
    // With an hour of staleness allowed, only the channel's message can make B reject t1.
    await waitUntil('B told t1 is revoked', () => revokedOnB.has(tokenIdOf(t1)));
    expect(await status(b.url, t1)).toBe(401);
  });

  it('ends concurrent logins of many users across both replicas with exactly limit live each', async () => {
    const { a, b } = await pair({ sessions: { limit: 2 } });
    const users = Array.from({ length: 8 }, (_, i) => `user${i}`);
    const revoked = [revokedOn(a), revokedOn(b)];
    const tokens = await Promise.all(
      users.flatMap((u) =>
        Array.from({ length: 8 }, (_, i) => login(i % 2 === 0 ? a.url : b.url, u).then((t) => ({ u, t }))),
      ),
    );
    const live = new Set<string>();
    for (const u of users) {
      const sessions = await a.gateway.sessions.listSessions(u);
      expect(sessions).toHaveLength(2);
      for (const s of sessions) for (const id of s.tokenIds) live.add(id);
    }
    // Every token but the live ones is rejected on both replicas once each has been told it ended. A
    // login the gateway answered without a token (a commit that lost every race) issued none.
    const issued = tokens.flatMap(({ t }) => ((t as string | undefined) === undefined ? [] : [tokenIdOf(t)]));
    const ended = issued.filter((id) => !live.has(id));
    expect(ended).toHaveLength(issued.length - users.length * 2);
    await waitUntil('both replicas told of every superseded token', () =>
      revoked.every((ids) => ended.every((id) => ids.has(id))),
    );
    // Only issued tokens are sent: `Bearer undefined` would pass as an unknown token.
    const sent = tokens.filter(({ t }) => (t as string | undefined) !== undefined);
    for (const gw of [a, b]) {
      const statuses = await Promise.all(sent.map(async ({ u, t }) => ({ u, s: await status(gw.url, t) })));
      for (const u of users) expect(statuses.filter((x) => x.u === u && x.s === 200)).toHaveLength(2);
    }
  });

  it('still rejects when the pub/sub connection is killed as the revocation is published', async () => {
    const { a, b } = await pair({ cache: { maxStaleness: '1h' } });
    const t1 = await login(a.url, 'bob');
    expect(await status(b.url, t1)).toBe(200);
    const revokedOnB = revokedOn(b);
    let restored = false;
    onTestFinished(b.gateway.sessions.onChannelRestored(() => (restored = true)));
    await redisCommand(redis.port, 'CLIENT', 'KILL', 'TYPE', 'pubsub');
    await login(a.url, 'bob');
    // Either the message got through, or it was lost and B, resubscribed, no longer trusts what it
    // cached as live (no staleness to wait out: it is an hour).
    await waitUntil('B told t1 is revoked, or resubscribed', () => revokedOnB.has(tokenIdOf(t1)) || restored);
    expect(await status(b.url, t1)).toBe(401);
  });

  it('ends a session on every replica when an admin ends it on one', async () => {
    const { a, b } = await pair();
    const t1 = await login(a.url, 'dora');
    expect(await status(b.url, t1)).toBe(200);
    const res = await request(`${a.adminUrl}/admin/users/dora/sessions`, {
      method: 'DELETE',
      headers: bearer(TEST_ADMIN_TOKEN),
      dispatcher: agent,
    });
    expect(res.statusCode).toBe(200);
    await res.body.dump();
    await waitUntil('B rejects the ended token', async () => (await status(b.url, t1)) === 401, 1000, 5);
    const again = await request(`${b.url}/data`, {
      headers: { authorization: `Bearer ${t1}` },
      dispatcher: agent,
    });
    expect(await again.body.json()).toMatchObject({ error: 'session_ended' });
  });

  it('closes a WebSocket held by B when A supersedes its session', async () => {
    const { a, b } = await pair();
    const t1 = await login(a.url, 'cy');
    const ws = new WebSocket(`${b.url.replace('http', 'ws')}/socket`, {
      headers: { authorization: `Bearer ${t1}` },
    });
    onTestFinished(() => ws.terminate());
    await once(ws, 'open');
    const closed = once(ws, 'close') as Promise<[number, Buffer]>;
    await login(a.url, 'cy');
    const [code] = await closed;
    expect(code).toBe(4001);
  });

  it('ends an event stream held by B when A supersedes its session', async () => {
    const { a, b } = await pair();
    const t1 = await login(a.url, 'cyd');
    const res = await request(`${b.url}/events`, { headers: bearer(t1), dispatcher: agent });
    expect(res.headers['content-type']).toBe('text/event-stream');
    const chunks: string[] = [];
    const ended = (async () => {
      for await (const c of res.body) chunks.push(String(c));
    })();
    await waitUntil('the stream is flowing', () => chunks.length > 0);
    await login(a.url, 'cyd');
    await ended;
    expect(chunks.join('')).toContain('data: hello');
    expect(await status(b.url, t1)).toBe(401);
  });

  it('follows failMode closed while Redis is down and recovers by itself', async () => {
    const own = await startRedis(['--appendonly', 'yes', '--appendfsync', 'always']);
    onTestFinished(() => own.stop());
    const config = {
      login: LOGIN,
      store: { url: own.url, pingInterval: '200ms', commandTimeout: '200ms' },
      cache: { maxStaleness: '300ms' },
    };
    const a = await startGateway({ upstream: app.url, ...config });
    const b = await startGateway({ upstream: app.url, ...config });
    await waitUntil('ready', () => a.gateway.isReady() && b.gateway.isReady());
    const old = await login(a.url, 'dee');
    expect(await status(a.url, old)).toBe(200);
    const current = await login(a.url, 'dee');
    expect(await status(a.url, old)).toBe(401);

    await own.kill();
    // Both replicas have lost the channel (and with it their trust in cached live sessions).
    await waitUntil('both replicas see the store down', () =>
      [a, b].every((gw) => !gw.gateway.store.health().channel && !gw.gateway.store.health().commands),
    );
    const during = await Promise.all([status(a.url, current), status(b.url, current), status(a.url, old)]);
    expect(during).toEqual([503, 503, 401]); // revoked stays rejected; others fail closed
    const ready = await request(`${a.adminUrl}/readyz`, { dispatcher: agent });
    expect(ready.statusCode).toBe(503);
    await ready.body.dump();

    await own.restart();
    await waitUntil('recovery', async () => (await status(b.url, current)) === 200, 10_000);
    // No superseded token is accepted after reconnect, on either replica.
    expect(await status(a.url, old)).toBe(401);
    expect(await status(b.url, old)).toBe(401);
    // Readiness follows the store's own health probe (a PING per pingInterval), not B's traffic.
    await waitUntil('A ready again', () => a.gateway.isReady());
  });

  it('rejects on B a token superseded through A from the message alone, even with Redis down', async () => {
    const own = await startRedis();
    onTestFinished(() => own.stop());
    const config = {
      login: LOGIN,
      store: { url: own.url, pingInterval: '200ms', commandTimeout: '200ms' },
      cache: { maxStaleness: '30s' },
    };
    const a = await startGateway({ upstream: app.url, ...config });
    const b = await startGateway({ upstream: app.url, ...config });
    await waitUntil('ready', () => a.gateway.isReady() && b.gateway.isReady());
    const old = await login(a.url, 'erin');
    expect(await status(b.url, old)).toBe(200); // B caches it as live
    const revokedOnB = new Promise<readonly string[]>((resolve) => b.gateway.sessions.onRevoked(resolve));
    await login(a.url, 'erin');
    await revokedOnB;

    // B must not need the store to learn why: the invalidation carried the ended session.
    await own.kill();
    const res = await request(`${b.url}/data`, { headers: bearer(old), dispatcher: agent });
    expect(res.statusCode).toBe(401);
    expect(await res.body.json()).toMatchObject({ error: 'session_superseded' });
  });

  it('passes requests under failMode open while Redis is down, counting them', async () => {
    const own = await startRedis();
    onTestFinished(() => own.stop());
    const a = await startGateway({
      upstream: app.url,
      login: LOGIN,
      failMode: 'open',
      store: { url: own.url, commandTimeout: '200ms' },
      cache: { maxStaleness: '200ms' },
    });
    const t = await login(a.url, 'eve');
    await own.kill();
    await waitUntil('the store seen down', () => {
      const health = a.gateway.store.health();
      return !health.channel && !health.commands;
    });
    expect(await status(a.url, t)).toBe(200);
    expect(await a.gateway.metrics.registry.getSingleMetricAsString('sessiongate_requests_total')).toMatch(
      /outcome="passed_store_unavailable"} [1-9]/,
    );
  });

  it('forwards a refresh whose body names the token while Redis is down under failMode open', async () => {
    const own = await startRedis();
    onTestFinished(() => own.stop());
    const a = await startGateway({
      upstream: app.url,
      login: LOGIN,
      refresh: [
        { match: 'POST /api/refresh', token: 'json:accessToken', presented: 'request.json:refreshToken' },
      ],
      failMode: 'open',
      store: { url: own.url, commandTimeout: '200ms' },
    });
    await own.kill();
    const res = await request(`${a.url}/api/refresh`, {
      method: 'POST',
      body: JSON.stringify({ refreshToken: 'r1' }),
      headersTimeout: 5000,
      dispatcher: agent,
    });
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe('ok');
  });

  it('keeps error rates to failMode during an outage under load, and accepts no superseded token afterwards', async () => {
    const own = await startRedis(['--appendonly', 'yes', '--appendfsync', 'always']);
    onTestFinished(() => own.stop());
    const config = {
      login: LOGIN,
      store: { url: own.url, commandTimeout: '200ms', pingInterval: '200ms' },
      cache: { maxStaleness: '200ms' },
    };
    const a = await startGateway({ upstream: app.url, ...config });
    const b = await startGateway({ upstream: app.url, ...config });
    await waitUntil('ready', () => a.gateway.isReady() && b.gateway.isReady());
    const superseded: string[] = [];
    const live: string[] = [];
    for (let i = 0; i < 10; i++) {
      superseded.push(await loginBeforeLoad(a.url, `load${i}`));
      live.push(await loginBeforeLoad(b.url, `load${i}`));
    }
    const seen = new Map<number, number>();
    let acceptedSuperseded = 0;
    let stop = false;
    const load = (async () => {
      while (!stop) {
        const i = Math.floor(Math.random() * 10);
        const gw = Math.random() < 0.5 ? a : b;
        const [s1, s2] = await Promise.all([
          status(gw.url, live[i] as string),
          status(gw.url, superseded[i] as string),
        ]);
        seen.set(s1, (seen.get(s1) ?? 0) + 1);
        if (s2 === 200) acceptedSuperseded++;
      }
    })();
    const count = (s: number) => seen.get(s) ?? 0;
    await waitUntil('load served before the outage', () => count(200) >= 20);
    await own.kill();
    await waitUntil('the outage seen by the load', () => count(503) >= 5);
    await own.restart();
    await waitUntil(
      'recovery',
      async () =>
        (await status(a.url, live[0] as string)) === 200 && (await status(b.url, live[1] as string)) === 200,
      10_000,
    );
    const servedAtRecovery = count(200);
    await waitUntil('load served after the recovery', () => count(200) >= servedAtRecovery + 20);
    stop = true;
    await load;
    expect(acceptedSuperseded).toBe(0);
    expect([...seen.keys()].every((s) => s === 200 || s === 503)).toBe(true);
    expect(seen.get(503)).toBeGreaterThan(0);
    expect(seen.get(200)).toBeGreaterThan(0);
  });
});

describe.skipIf(!redisServer)('Sentinel failover', () => {
  it('keeps sessions through a failover during traffic, without a restart', async () => {
    const app = await loginApp();
    onTestFinished(() => app.close());
    const sentinel = await startRedisSentinel();
    onTestFinished(() => sentinel.stop());
    const gw = await startGateway({
      upstream: app.url,
      login: LOGIN,
      store: {
        sentinels: [...sentinel.sentinelAddresses],
        sentinelName: sentinel.masterName,
        commandTimeout: '500ms',
        pingInterval: '300ms',
      },
      cache: { maxStaleness: '200ms' },
    });
    await waitUntil('ready', () => gw.gateway.isReady());
    const t1 = await login(gw.url, 'fay');
    const t2 = await login(gw.url, 'fay');
    // Wait until the replica has the writes (replication is asynchronous).
    await redisCommand(sentinel.master.port, 'WAIT', 1, 2000);
    let stop = false;
    const statuses: number[] = [];
    const traffic = (async () => {
      while (!stop) {
        statuses.push(await status(gw.url, t2));
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    await redisCommand(sentinel.sentinels[0]?.port as number, 'SENTINEL', 'FAILOVER', sentinel.masterName);
    await waitUntil(
      'the replica to become master',
      async () => String(await redisCommand(sentinel.replica.port, 'ROLE')).startsWith('master'),
      20_000,
    );
    await waitUntil(
      'a login through the new master',
      async () => (await login(gw.url, 'gus')).length > 0,
      20_000,
    );
    stop = true;
    await traffic;
    expect(await status(gw.url, t2)).toBe(200);
    expect(await status(gw.url, t1)).toBe(401);
    const t3 = await login(gw.url, 'fay');
    await waitUntil('t2 superseded after failover', async () => (await status(gw.url, t2)) === 401, 5000);
    expect(await status(gw.url, t3)).toBe(200);
    expect(statuses.every((s) => s === 200 || s === 503)).toBe(true);
  }, 60_000);
});

describe.skipIf(!redisCli)('Redis Cluster', () => {
  it('rejects the older token on B after a login through A', async () => {
    const app = await loginApp();
    onTestFinished(() => app.close());
    const cluster = await startRedisCluster();
    onTestFinished(() => cluster.stop());
    const config = {
      login: LOGIN,
      store: { cluster: [...cluster.seeds], pingInterval: '200ms' },
      cache: { maxStaleness: '1s' },
    };
    const a = await startGateway({ upstream: app.url, ...config });
    const b = await startGateway({ upstream: app.url, ...config });
    await waitUntil('both ready', () => a.gateway.isReady() && b.gateway.isReady());
    const tokens: string[] = [];
    for (const user of ['u1', 'u2', 'u3', 'u4']) {
      tokens.push(await login(a.url, user));
      expect(await status(b.url, tokens[tokens.length - 1] as string)).toBe(200);
      await login(b.url, user);
    }
    await waitUntil(
      'all superseded on A',
      async () => (await Promise.all(tokens.map((t) => status(a.url, t)))).every((s) => s === 401),
      1000,
    );
  }, 30_000);
});
