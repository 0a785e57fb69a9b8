/**
 * Seats and limits under concurrency: two gateway replicas on one real Redis, logins racing through
 * real sockets to a real upstream. Every race ends with exactly the tenant's max (or the user's limit)
 * live sessions, every time (each race is repeated).
 */
import { randomBytes } from 'node:crypto';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../../src/config/schema.js';
import { bearer, get, postJson, startGateway, type TestGateway } from '../support/gateway.js';
import { haveRedis, startRedis, type RedisHandle } from '../support/redis.js';
import { waitUntil } from '../support/wait.js';
import { needTool } from '../support/tools.js';
import { JWT_KEY, listenApp, readBody } from '../support/upstreams.js';
import type { RunningApp } from '../support/running-app.js';

const redisServer = needTool('redis-server', 'redis-server', haveRedis());
const LOGIN = [{ match: 'POST /api/login', token: 'json:accessToken', user: 'json:user.id' }];
const REPEATS = 3;

/** Issues a JWT with the tenant the request names. */
async function tenantApp(): Promise<RunningApp> {
  return listenApp((req, res) => {
    void (async () => {
      const body = (await readBody(req)).toString();
      res.writeHead(200, { 'content-type': 'application/json' });
      if (req.method !== 'POST' || req.url !== '/api/login') return res.end('{"ok":true}');
      const { username, tenant } = JSON.parse(body) as { username: string; tenant?: string };
      const token = await new SignJWT({ tenant, jti: randomBytes(8).toString('hex') })
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject(username)
        .sign(JWT_KEY);
      res.end(JSON.stringify({ accessToken: token, user: { id: username } }));
    })();
  });
}

describe.skipIf(!redisServer)('logins racing on two replicas of one Redis', () => {
  let app: RunningApp;
  let redis: RedisHandle;
  beforeAll(async () => {
    app = await tenantApp();
    redis = await startRedis();
  });
  afterAll(async () => {
    await app.close();
    await redis.stop();
  });

  const pair = async (sessions: NonNullable<ConfigInput['sessions']>) => {
    // strict: a check reads the store, so counting live tokens right after the race is exact.
    const config = {
      upstream: app.url,
      login: LOGIN,
      // The race is the subject, not a slow host: a command timing out under a loaded CI machine would
      // answer 503 (the outage semantics), which these counts are not about.
      store: { url: redis.url, keyPrefix: `r${randomBytes(4).toString('hex')}:`, commandTimeout: '5s' },
      consistency: 'strict' as const,
      sessions,
    };
    const a = await startGateway(config);
    const b = await startGateway(config);
    await waitUntil('both replicas', () => a.gateway.isReady() && b.gateway.isReady());
    return [a, b] as const;
  };
  const login = async (gw: TestGateway, username: string, tenant?: string) => {
    const res = await postJson(`${gw.url}/api/login`, { username, tenant });
    const body = (await res.json()) as { accessToken?: string; error?: string };
    return { status: res.status, token: body.accessToken, error: body.error };
  };
  const liveOf = async (gw: TestGateway, tokens: readonly string[]) => {
    let live = 0;
    for (const t of tokens) if ((await get(`${gw.url}/x`, bearer(t))).status === 200) live++;
    return live;
  };

  it('50 concurrent logins of 10 users of one tenant leave exactly seats.max live sessions', async () => {
    for (let round = 0; round < REPEATS; round++) {
      const [a, b] = await pair({ limit: 1, seats: { key: 'jwt:tenant', max: 4 } });
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) => login(i % 2 ? a : b, `user${i % 10}`, 'acme')),
      );
      const admitted = results.filter((r) => r.status === 200).map((r) => r.token as string);
      const refused = results.filter((r) => r.status === 409);
      expect(results.filter((r) => r.status !== 200 && r.status !== 409)).toEqual([]);
      expect(new Set(refused.map((r) => r.error))).toEqual(new Set(['session_seat_limit_reached']));
      expect(await liveOf(a, admitted), `round ${round}`).toBe(4);
      expect(await a.gateway.sessions.store.seats.count('acme', Date.now())).toBe(4);
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('20 concurrent logins of one user leave exactly the limit live', async () => {
    for (let round = 0; round < REPEATS; round++) {
      const [a, b] = await pair({ limit: 3 });
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => login(i % 2 ? a : b, 'solo')));
      expect(results.map((r) => r.status)).toEqual(Array.from({ length: 20 }, () => 200));
      expect(
        await liveOf(
          b,
          results.map((r) => r.token as string),
        ),
        `round ${round}`,
      ).toBe(3);
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('frees a seat when its session ends, and a re-login keeps its own seat', async () => {
    const [a, b] = await pair({ limit: 1, seats: { key: 'jwt:tenant', max: 2 } });
    const first = await login(a, 'ann', 'acme');
    await login(b, 'bob', 'acme');
    expect((await login(a, 'cid', 'acme')).status).toBe(409);
    // ann signs in again on the other replica: her seat moves, the tenant stays full.
    const again = await login(b, 'ann', 'acme');
    expect(again.status).toBe(200);
    expect((await get(`${a.url}/x`, bearer(first.token as string))).status).toBe(401);
    expect((await login(a, 'cid', 'acme')).status).toBe(409);
    // An admin ends ann's session: its seat is free for cid.
    const ended = await a.admin(`/admin/users/ann/sessions`, { method: 'DELETE' });
    expect(ended.status).toBe(200);
    await waitUntil(
      'the seat freed',
      async () => (await a.gateway.sessions.store.seats.count('acme', Date.now())) === 1,
    );
    expect((await login(a, 'cid', 'acme')).status).toBe(200);
  });

  it('gives exempt users no seat', async () => {
    const [a] = await pair({
      limit: 1,
      seats: { key: 'jwt:tenant', max: 1 },
      exempt: { users: ['svc'] },
    });
    expect((await login(a, 'svc', 'acme')).status).toBe(200);
    expect((await login(a, 'svc', 'acme')).status).toBe(200);
    expect((await login(a, 'ann', 'acme')).status).toBe(200);
    expect((await login(a, 'bob', 'acme')).status).toBe(409);
  });
});
