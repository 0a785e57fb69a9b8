/**
 * A response that rotates the session cookie is held until the new value is registered. When the store
 * cannot register it, `failMode` decides: `closed` answers 503 and the app's response (with the new
 * value) is never delivered; `open` releases it, logged and counted. A chunked credential (ASP.NET Core
 * `NameC1..N`) is registered as the value the next request presents: the chunks joined.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it, onTestFinished } from 'vitest';
import { get, postForm, postJson, startGateway } from '../support/gateway.js';
import { haveRedis, startRedis, type RedisHandle } from '../support/redis.js';
import { waitUntil } from '../support/wait.js';
import { needTool } from '../support/tools.js';
import { listenApp, readBody } from '../support/upstreams.js';

/** The `name=value` pairs a response sets, as a Cookie header. */
function cookieHeader(res: Response): string {
  return res.headers
    .getSetCookie()
    .map((c) => c.split(';')[0] as string)
    .join('; ');
}

/** The store that fails is a real redis-server, stopped mid-test. */
const redisServer = needTool('redis-server', 'redis-server', haveRedis());

describe.skipIf(!redisServer)('a rotation the store cannot register', () => {
  /** `POST /login` sets `sid`; `GET /rotate` runs `beforeRotate` (the store goes away), then sets a new `sid`. */
  async function rotatingApp(beforeRotate: () => Promise<void>) {
    const app = await listenApp((req, res) => {
      void (async () => {
        await readBody(req);
        const sid = randomBytes(12).toString('hex');
        if (req.url === '/login') {
          res.writeHead(302, { location: '/account', 'set-cookie': `sid=${sid}; Path=/; HttpOnly` });
          res.end();
          return;
        }
        if (req.url === '/rotate') await beforeRotate();
        res.writeHead(200, {
          'content-type': 'text/plain',
          ...(req.url === '/rotate' ? { 'set-cookie': `sid=${sid}; Path=/; HttpOnly` } : {}),
        });
        res.end('the app answered');
      })();
    });
    onTestFinished(() => app.close());
    return app;
  }

  async function gatewayOn(redis: RedisHandle, failMode: 'open' | 'closed') {
    const app = await rotatingApp(() => redis.kill());
    const gw = await startGateway({
      upstream: app.url,
      failMode,
      store: { url: redis.url, commandTimeout: '200ms' },
      // The request itself is let in from the cache; only the rotation needs the store.
      cache: { maxStaleness: '10m' },
      login: [
        {
          match: 'POST /login',
          token: 'cookie:sid',
          user: 'request.form:username',
          success: { status: 302, location: '/account' },
        },
      ],
      tokens: ['cookie:sid'],
    });
    // The store itself, not readiness: under failMode open a replica is ready before Redis answers.
    await waitUntil('store up', () => gw.gateway.store.health().commands);
    const login = await postForm(`${gw.url}/login`, { username: 'alice' });
    expect(login.status).toBe(302);
    return { gw, cookie: cookieHeader(login) };
  }

  it('answers 503 under failMode closed and never delivers the new value', async () => {
    const redis = await startRedis();
    onTestFinished(() => redis.stop());
    const { gw, cookie } = await gatewayOn(redis, 'closed');
    const res = await get(`${gw.url}/rotate`, { cookie });
    expect(res.status).toBe(503);
    expect(res.headers.getSetCookie()).toEqual([]);
    const body = await res.text();
    expect(JSON.parse(body)).toMatchObject({ error: 'session_store_unavailable' });
    expect(body).not.toContain('the app answered');
  });

  it('releases the response under failMode open, logged and counted', async () => {
    const redis = await startRedis();
    onTestFinished(() => redis.stop());
    const { gw, cookie } = await gatewayOn(redis, 'open');
    const res = await get(`${gw.url}/rotate`, { cookie });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('the app answered');
    expect(res.headers.getSetCookie()).toHaveLength(1);
    expect(gw.logs.lines().some((l) => l.code === 'SG_ERR_ROTATION' && l.failMode === 'open')).toBe(true);
    const errors = await gw.gateway.metrics.registry.getSingleMetricAsString(
      'sessiongate_store_errors_total',
    );
    expect(Number(/sessiongate_store_errors_total (\d+)/.exec(errors)?.[1])).toBeGreaterThan(0);
  });
});

describe('a chunked cookie that rotates', () => {
  /** ASP.NET Core's cookie chunking: `Name=chunks-2`, `NameC1`, `NameC2`, on sign-in and on renewal. */
  async function aspNetApp() {
    const app = await listenApp((req, res) => {
      void (async () => {
        await readBody(req);
        if (req.url === '/signin' || req.url === '/renew') {
          const v = `${randomBytes(16).toString('hex')}${'x'.repeat(30)}`;
          res.writeHead(200, {
            'content-type': 'application/json',
            'set-cookie': [
              '.AspNetCore.Cookies=chunks-2; path=/; httponly',
              `.AspNetCore.CookiesC1=${v.slice(0, 31)}; path=/; httponly`,
              `.AspNetCore.CookiesC2=${v.slice(31)}; path=/; httponly`,
            ],
          });
          res.end(JSON.stringify({ name: 'kai' }));
          return;
        }
        res.end('ok');
      })();
    });
    onTestFinished(() => app.close());
    return app;
  }
  const chunked = { from: 'cookie:.AspNetCore.Cookies', chunked: true };

  it('registers the joined chunks, so the renewed cookie is the session', async () => {
    const app = await aspNetApp();
    const { url } = await startGateway({
      upstream: app.url,
      login: [{ match: 'POST /signin', token: chunked, user: 'json:name' }],
      tokens: [chunked],
      sessions: { unknownTokens: 'reject' },
    });
    const first = cookieHeader(await postJson(`${url}/signin`, {}));
    const renewed = await get(`${url}/renew`, { cookie: first });
    expect(renewed.status).toBe(200);
    const next = cookieHeader(renewed);
    expect(next).not.toBe(first);
    expect((await get(`${url}/x`, { cookie: next })).status).toBe(200);
    await postJson(`${url}/signin`, {});
    const superseded = await get(`${url}/x`, { cookie: next });
    expect(superseded.status).toBe(401);
    expect(await superseded.json()).toMatchObject({ error: 'session_superseded' });
  });
});
