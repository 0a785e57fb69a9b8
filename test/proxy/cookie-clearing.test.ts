/**
 * What a rejection's Set-Cookie does in a browser: a cookie is deleted only by a Set-Cookie with its
 * name, Domain and Path (RFC 6265 section 5.3 step 11), and a `__Host-` / `__Secure-` cookie only by one
 * that is itself valid for the prefix (RFC 6265bis section 4.1.3). Every token cookie of the dead session
 * is cleared, and a bearer request is never taken for a browser navigation.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { haveFlask, startFlaskApp } from '../support/apps.js';
import type { RunningApp } from '../support/running-app.js';
import { bearer, get, NAVIGATE, postForm, postJson, startGateway } from '../support/gateway.js';
import { CookieJar } from '../support/jar.js';
import { toolAvailable } from '../support/php-front.js';
import { haveRedis, startRedis } from '../support/redis.js';
import { waitUntil } from '../support/wait.js';
import { needTool } from '../support/tools.js';
import { cookieOf, listenApp, readBody } from '../support/upstreams.js';

/** A form-login app that sets its session cookie `name` with the given attributes. */
async function cookieApp(name: string, attributes: string): Promise<RunningApp> {
  let n = 0;
  const sessions = new Map<string, string>();
  const app = await listenApp((req, res) => {
    void (async () => {
      const form = new URLSearchParams((await readBody(req)).toString());
      if (req.method === 'POST' && req.url === '/login') {
        const sid = `sid-${++n}-${Date.now()}`;
        sessions.set(sid, form.get('username') ?? '');
        res.writeHead(302, { location: '/account', 'set-cookie': `${name}=${sid}; ${attributes}` });
        res.end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ user: sessions.get(cookieOf(req, name) ?? '') ?? null }));
    })();
  });
  onTestFinished(() => app.close());
  return { url: app.url, port: Number(new URL(app.url).port), close: () => app.close() };
}

function formLogin(name: string) {
  return {
    login: [
      {
        match: 'POST /login',
        token: `cookie:${name}`,
        user: 'request.form:username',
        success: { status: 302, location: '/account' },
      },
    ],
  };
}

/** Signs `user` in through the gateway; the cookie pair (`name=value`) the app set. */
async function signIn(url: string, name: string, user = 'alice'): Promise<string> {
  const res = await postForm(`${url}/login`, { username: user });
  expect(res.status).toBe(302);
  const set = res.headers.getSetCookie().find((c) => c.startsWith(`${name}=`));
  return (set as string).split(';')[0] as string;
}

/** The Set-Cookie of a response for `name`, its attributes as a lower-cased map. */
function clearing(res: Response, name: string): Map<string, string> | undefined {
  const set = res.headers.getSetCookie().find((c) => c.startsWith(`${name}=;`));
  if (set === undefined) return undefined;
  const attrs = new Map<string, string>();
  for (const part of set.split(';').slice(1)) {
    const eq = part.indexOf('=');
    const key = (eq === -1 ? part : part.slice(0, eq)).trim().toLowerCase();
    attrs.set(key, eq === -1 ? '' : part.slice(eq + 1).trim());
  }
  return attrs;
}

/** The test on two replicas starts a redis-server; the others run anywhere. */
const onRedis = it.skipIf(!needTool('redis-server', 'redis-server', haveRedis()));

describe('the cookie a rejection clears', () => {
  it('clears a __Host- cookie with Secure and Path=/ and no Domain', async () => {
    const app = await cookieApp('__Host-sid', 'Path=/; Secure; HttpOnly; SameSite=Lax');
    const { url } = await startGateway({
      upstream: app.url,
      ...formLogin('__Host-sid'),
      tokens: ['cookie:__Host-sid'],
    });
    const old = await signIn(url, '__Host-sid');
    await signIn(url, '__Host-sid');
    const res = await get(`${url}/account`, { cookie: old });
    expect(res.status).toBe(401);
    const attrs = clearing(res, '__Host-sid');
    expect(attrs?.has('secure')).toBe(true);
    expect(attrs?.get('path')).toBe('/');
    expect(attrs?.has('domain')).toBe(false);
  });

  it('clears a __Secure- cookie with Secure', async () => {
    const app = await cookieApp('__Secure-sid', 'Path=/; Secure; HttpOnly');
    const { url } = await startGateway({
      upstream: app.url,
      ...formLogin('__Secure-sid'),
      tokens: ['cookie:__Secure-sid'],
    });
    const old = await signIn(url, '__Secure-sid');
    await signIn(url, '__Secure-sid');
    const res = await get(`${url}/account`, { cookie: old });
    expect(res.status).toBe(401);
    expect(clearing(res, '__Secure-sid')?.has('secure')).toBe(true);
  });

  it('clears a cookie with the Path and Domain the app set it with', async () => {
    const app = await cookieApp('sid', 'Path=/app; Domain=example.test; HttpOnly');
    const { url } = await startGateway({ upstream: app.url, ...formLogin('sid'), tokens: ['cookie:sid'] });
    const old = await signIn(url, 'sid');
    await signIn(url, 'sid');
    const res = await get(`${url}/app/account`, { cookie: old });
    expect(res.status).toBe(401);
    const attrs = clearing(res, 'sid');
    expect(attrs?.get('path')).toBe('/app');
    expect(attrs?.get('domain')).toBe('example.test');
  });

  onRedis('clears with the configured Path and Domain on a replica that never saw the login', async () => {
    const redis = await startRedis();
    onTestFinished(() => redis.stop());
    const app = await cookieApp('sid', 'Path=/app; Domain=example.test; HttpOnly');
    const shared = { upstream: app.url, ...formLogin('sid'), store: { url: redis.url } };
    const a = await startGateway({ ...shared, tokens: ['cookie:sid'] });
    const b = await startGateway({
      ...shared,
      tokens: [{ from: 'cookie:sid', path: '/app', domain: 'example.test' }],
    });
    await waitUntil('both replicas ready', () => a.gateway.isReady() && b.gateway.isReady());
    const old = await signIn(a.url, 'sid');
    await signIn(a.url, 'sid');
    const res = await get(`${b.url}/app/account`, { cookie: old });
    expect(res.status).toBe(401);
    const attrs = clearing(res, 'sid');
    expect(attrs?.get('path')).toBe('/app');
    expect(attrs?.get('domain')).toBe('example.test');
  });
});

describe('a browser navigation', () => {
  it('is never a request with a bearer token: it gets the 401, not the redirect', async () => {
    const { url } = await startGateway({ reject: { redirect: '/login' } });
    const old = (
      (await (await postJson(`${url}/api/login`, { username: 'bo' })).json()) as {
        accessToken: string;
      }
    ).accessToken;
    await postJson(`${url}/api/login`, { username: 'bo' });
    const res = await get(`${url}/api/data`, { ...bearer(old), accept: 'text/html,*/*' });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toContain('invalid_token');
    expect(await res.json()).toMatchObject({ error: 'session_superseded' });
  });

  it('still is a request that accepts HTML and carries only cookies', async () => {
    const { url } = await startGateway({ reject: { redirect: '/login' } });
    const old = await signIn(url, 'sid', 'cy');
    await signIn(url, 'sid', 'cy');
    const res = await get(`${url}/app`, { cookie: old, accept: 'text/html,*/*' });
    expect(res.status).toBe(302);
    expect(res.headers.get('location')).toBe('/login?reason=session_superseded');
  });
});

const flask = toolAvailable('python3 with flask and flask-login', 'python3-flask-login', haveFlask());

describe.skipIf(!flask)('every token cookie of a dead session (Flask-Login remember-me)', () => {
  let app: RunningApp;
  beforeAll(async () => void (app = await startFlaskApp()), 30_000);
  afterAll(() => app.close());
  const config = () => ({
    upstream: app.url,
    login: [
      {
        match: 'POST /login',
        token: ['cookie:session', 'cookie:remember_token'],
        user: 'request.form:username',
        success: { status: 302, location: '/account' },
      },
    ],
    tokens: ['cookie:session', 'cookie:remember_token'],
  });

  async function superseded(url: string): Promise<CookieJar> {
    const a = new CookieJar();
    await a.fetch(`${url}/login`, { form: { username: 'alice', password: 'pw-alice', remember: '1' } });
    expect([...a.cookies.keys()].sort()).toEqual(['remember_token', 'session']);
    const b = new CookieJar();
    await b.fetch(`${url}/login`, { form: { username: 'alice', password: 'pw-alice', remember: '1' } });
    return a;
  }

  it('clears the session and the remember-me cookie with the 401', async () => {
    const { url } = await startGateway(config());
    const a = await superseded(url);
    const res = await a.fetch(`${url}/account`);
    expect(res.status).toBe(401);
    expect(clearing(res, 'session')).toBeDefined();
    expect(clearing(res, 'remember_token')).toBeDefined();
    expect(a.cookies.size).toBe(0);
  });

  it('clears the session and the remember-me cookie with the redirect of a navigation', async () => {
    const { url } = await startGateway({ ...config(), reject: { redirect: '/login' } });
    const a = await superseded(url);
    const res = await get(`${url}/account`, { ...NAVIGATE, cookie: a.header() });
    expect(res.status).toBe(302);
    expect(clearing(res, 'session')).toBeDefined();
    expect(clearing(res, 'remember_token')).toBeDefined();
  });
});
