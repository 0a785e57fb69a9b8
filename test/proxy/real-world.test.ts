/**
 * What real apps do to a login watcher: re-login and concurrent logins, long-lived connections,
 * who-am-i probes, CORS on rejections, and the extractor vocabulary of common stacks.
 */
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { request } from 'undici';
import { describe, expect, it, onTestFinished } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { bearer, get, postForm, postJson, setCookie, startGateway } from '../support/gateway.js';
import { SignJWT } from 'jose';
import { cookieFormApp, JWT_KEY, listenApp, readBody } from '../support/upstreams.js';
import { JSON_LOGIN_RULE } from '../support/login-rules.js';
import { waitUntil } from '../support/wait.js';

async function app(handler: Parameters<typeof listenApp>[0]) {
  const a = await listenApp(handler);
  onTestFinished(() => a.close());
  return a;
}

/** A JSON login app with a WebSocket echo and an SSE stream. */
async function liveApp() {
  const upstream = await app((req, res) => {
    void (async () => {
      await readBody(req);
      if (req.url === '/api/login') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ accessToken: randomBytes(12).toString('hex'), user: { id: 'sam' } }));
        return;
      }
      if (req.url === '/events') {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        res.write('data: hello\n\n');
        const t = setInterval(() => res.write('data: tick\n\n'), 50);
        res.on('close', () => clearInterval(t));
        return;
      }
      res.end('ok');
    })();
  });
  const wss = new WebSocketServer({ server: upstream.server });
  wss.on('connection', (ws) => {
    ws.on('message', (m) => ws.send(String(m)));
    const t = setInterval(() => ws.readyState === ws.OPEN && ws.send(Buffer.alloc(300_000, 7)), 20);
    ws.on('close', () => clearInterval(t));
  });
  onTestFinished(() => wss.close());
  return upstream;
}

const JSON_LOGIN = [JSON_LOGIN_RULE];
const loginToken = async (url: string) =>
  ((await (await postJson(`${url}/api/login`, {})).json()) as { accessToken: string }).accessToken;

describe('long-lived connections', () => {
  it('closes an open WebSocket with 4001 when its session is superseded', async () => {
    const upstream = await liveApp();
    const { url, gateway } = await startGateway({ upstream: upstream.url, login: JSON_LOGIN });
    const token = await loginToken(url);
    const ws = new WebSocket(`${url.replace('http', 'ws')}/socket`, { headers: bearer(token) });
    onTestFinished(() => ws.terminate());
    await once(ws, 'open');
    const closed = once(ws, 'close') as Promise<[number, Buffer]>;
    await loginToken(url);
    const [code, reason] = await closed;
    expect(code).toBe(4001);
    expect(JSON.parse(String(reason))).toEqual({ error: 'session_superseded' });
    expect(
      await gateway.metrics.registry.getSingleMetricAsString('sessiongate_connections_closed_total'),
    ).toContain('kind="websocket"} 1');
  });

  it('ends an open event stream when its session is superseded', async () => {
    const upstream = await liveApp();
    const { url } = await startGateway({ upstream: upstream.url, login: JSON_LOGIN });
    const token = await loginToken(url);
    const res = await request(`${url}/events`, { headers: bearer(token) });
    expect(res.headers['content-type']).toBe('text/event-stream');
    const chunks: string[] = [];
    const ended = (async () => {
      for await (const c of res.body) chunks.push(String(c));
    })();
    await waitUntil('the stream is flowing', () => chunks.length > 0);
    await loginToken(url);
    await ended;
    expect(chunks.join('')).toContain('data: hello');
  });

  it('leaves connections of other sessions open', async () => {
    const upstream = await liveApp();
    const { url } = await startGateway({ upstream: upstream.url, login: JSON_LOGIN, sessions: { limit: 2 } });
    const token = await loginToken(url);
    const ws = new WebSocket(`${url.replace('http', 'ws')}/socket`, { headers: bearer(token) });
    onTestFinished(() => ws.terminate());
    await once(ws, 'open');
    await loginToken(url);
    // A listener that stays: the echo may arrive in the same read as a large frame, and once() between
    // two awaits would miss it.
    const echoed = new Promise<void>((resolve) =>
      ws.on('message', (m: Buffer) => {
        if (m.length === 10 && String(m) === 'still here') resolve();
      }),
    );
    ws.send('still here');
    await echoed;
    expect(ws.readyState).toBe(WebSocket.OPEN);
  });
});

describe('re-login and concurrent logins', () => {
  const FORM = {
    login: [
      {
        match: 'POST /login',
        token: 'cookie:sid',
        user: 'request.form:username',
        success: { status: 302, location: '/account' },
      },
    ],
    tokens: ['cookie:sid'],
  };

  it('lets a browser with a live session sign in again under reject-new, replacing its session', async () => {
    const upstream = await cookieFormApp();
    onTestFinished(() => upstream.close());
    const { url, gateway } = await startGateway({
      upstream: upstream.url,
      ...FORM,
      sessions: { onLimit: 'reject-new' },
    });
    const first = setCookie(
      await postForm(`${url}/login`, { username: 'al', password: 'pw' }),
      'sid',
    ) as string;
    const again = await postForm(
      `${url}/login`,
      { username: 'al', password: 'pw' },
      { cookie: `sid=${first}` },
    );
    expect(again.status).toBe(302);
    const second = setCookie(again, 'sid') as string;
    expect((await get(`${url}/account`, { cookie: `sid=${second}` })).status).toBe(200);
    expect(await gateway.sessions.listSessions('al')).toHaveLength(1);
    // Another device is still refused.
    expect((await postForm(`${url}/login`, { username: 'al', password: 'pw' })).status).toBe(409);
  });

  for (const limit of [1, 2]) {
    it(`ends 20 simultaneous logins of one user (half re-logins) with exactly ${limit} live`, async () => {
      const upstream = await cookieFormApp();
      onTestFinished(() => upstream.close());
      const { url, gateway } = await startGateway({ upstream: upstream.url, ...FORM, sessions: { limit } });
      const live = setCookie(
        await postForm(`${url}/login`, { username: 'race', password: 'pw' }),
        'sid',
      ) as string;
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          postForm(
            `${url}/login`,
            { username: 'race', password: 'pw' },
            i % 2 === 0 ? { cookie: `sid=${live}` } : {},
          ),
        ),
      );
      const sids = results.map((r) => setCookie(r, 'sid') as string);
      expect(results.every((r) => r.status === 302)).toBe(true);
      const sessions = await gateway.sessions.listSessions('race');
      expect(sessions).toHaveLength(limit);
      const statuses = await Promise.all(
        [live, ...sids].map(async (sid) => (await get(`${url}/account`, { cookie: `sid=${sid}` })).status),
      );
      expect(statuses.filter((s) => s === 200)).toHaveLength(limit);
    });
  }
});

describe('who-am-i probe', () => {
  async function ssoApp(options: { probeFails?: boolean } = {}) {
    const tokens = new Map<string, string>();
    return app((req, res) => {
      void (async () => {
        await readBody(req);
        if (req.url?.startsWith('/oauth/callback')) {
          // A JWT without any user claim: only the app knows whose it is.
          const token = await new SignJWT({ scope: 'app' })
            .setProtectedHeader({ alg: 'HS256' })
            .setJti(randomBytes(8).toString('hex'))
            .sign(JWT_KEY);
          tokens.set(token, 'Pat');
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ accessToken: token }));
          return;
        }
        if (req.url === '/api/user') {
          const who = tokens.get((req.headers.authorization ?? '').slice(7));
          res.writeHead(options.probeFails || !who ? 500 : 200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ login: who }));
          return;
        }
        res.end('ok');
      })();
    });
  }
  const rule = (onFailure: 'pass' | 'refuse') => [
    {
      match: 'GET /oauth/callback',
      token: 'json:accessToken',
      probe: { match: 'GET /api/user', user: 'json:login', onFailure },
    },
  ];

  it('learns the user from the app before releasing the login', async () => {
    const upstream = await ssoApp();
    const { url, gateway } = await startGateway({ upstream: upstream.url, login: rule('refuse') });
    const a = ((await (await get(`${url}/oauth/callback?code=1`)).json()) as { accessToken: string })
      .accessToken;
    await get(`${url}/oauth/callback?code=2`);
    expect((await get(`${url}/x`, bearer(a))).status).toBe(401);
    expect(await gateway.sessions.listSessions('Pat')).toHaveLength(1);
  });

  it('refuses the login when the probe fails and onFailure is refuse, registering nothing', async () => {
    const upstream = await ssoApp({ probeFails: true });
    const { url, gateway } = await startGateway({ upstream: upstream.url, login: rule('refuse') });
    const res = await get(`${url}/oauth/callback?code=1`);
    expect(res.status).toBe(503);
    const body = await res.text();
    expect(body).not.toContain('accessToken');
    expect(JSON.parse(body)).toMatchObject({ error: 'SG_ERR_LOGIN_PROBE_FAILED' });
    expect(await gateway.metrics.registry.getSingleMetricAsString('sessiongate_logins_total')).toContain(
      'outcome="probe_failed"} 1',
    );
  });

  it('passes the login unregistered when the probe fails and onFailure is pass', async () => {
    const upstream = await ssoApp({ probeFails: true });
    const { url, gateway } = await startGateway({ upstream: upstream.url, login: rule('pass') });
    const res = await get(`${url}/oauth/callback?code=1`);
    expect(res.status).toBe(200);
    expect(await gateway.sessions.listSessions('Pat')).toHaveLength(0);
  });
});

describe('every client told why', () => {
  it('adds CORS headers to a rejection for an allowed origin', async () => {
    const upstream = await liveApp();
    const { url } = await startGateway({
      upstream: upstream.url,
      login: JSON_LOGIN,
      cors: { allowedOrigins: ['https://app.example'] },
    });
    const token = await loginToken(url);
    await loginToken(url);
    const res = await get(`${url}/x`, {
      ...bearer(token),
      origin: 'https://app.example',
      'sec-fetch-mode': 'cors',
    });
    expect(res.status).toBe(401);
    expect(res.headers.get('access-control-allow-origin')).toBe('https://app.example');
    expect(res.headers.get('access-control-expose-headers')).toContain('WWW-Authenticate');
    const other = await get(`${url}/x`, { ...bearer(token), origin: 'https://evil.example' });
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('keeps the reason for an ended session until the token expires', async () => {
    const upstream = await liveApp();
    const { url, gateway } = await startGateway({ upstream: upstream.url, login: JSON_LOGIN });
    const token = await loginToken(url);
    await gateway.sessions.endSessions('sam', undefined, 'ended_by_admin');
    const res = await get(`${url}/x`, bearer(token));
    expect(await res.json()).toMatchObject({ error: 'session_ended' });
  });
});

describe('extractors for real stacks', () => {
  /** WordPress-like: `wordpress_logged_in_<hash>=user|expiry|token|hmac`, failures redirect with the error. */
  async function wordpressApp() {
    return app((req, res) => {
      void (async () => {
        const form = new URLSearchParams((await readBody(req)).toString());
        if (req.url === '/wp-login.php') {
          const token = randomBytes(10).toString('hex');
          const value = encodeURIComponent(
            `${form.get('log')}|1900000000|${token}|${randomBytes(8).toString('hex')}`,
          );
          const ok = form.get('pwd') === 'pw';
          res.writeHead(302, {
            location: ok ? '/wp-admin/' : '/wp-login.php?login=failed&error=1',
            'set-cookie': [`wordpress_logged_in_5f2b=${value}; path=/`, `wordpress_test_cookie=WP; path=/`],
          });
          res.end();
          return;
        }
        res.end('dashboard');
      })();
    });
  }
  const field = (n: number) => ({ from: 'cookie:wordpress_logged_in_*', split: '|', field: n });
  const WP = {
    login: [
      {
        match: 'POST /wp-login.php',
        token: field(2),
        user: field(0),
        success: { status: 302, notLocation: ['error'] },
        normalize: ['trim', 'lowercase', 'nfkc'] as ('trim' | 'lowercase' | 'nfkc')[],
      },
    ],
    tokens: [field(2)],
  };

  it('reads the token and the user from fields of one cookie with a variable name', async () => {
    const upstream = await wordpressApp();
    const { url, gateway } = await startGateway({ upstream: upstream.url, ...WP });
    const first = await postForm(`${url}/wp-login.php`, { log: 'Admin', pwd: 'pw' });
    const cookie = first.headers.getSetCookie()[0]?.split(';')[0] as string;
    expect((await get(`${url}/wp-admin/`, { cookie })).status).toBe(200);
    await postForm(`${url}/wp-login.php`, { log: 'admin ', pwd: 'pw' });
    expect((await get(`${url}/wp-admin/`, { cookie })).status).toBe(401);
    expect(await gateway.sessions.listSessions('admin')).toHaveLength(1);
  });

  it('counts a 302 to the error page with a fresh cookie as a failed login', async () => {
    const upstream = await wordpressApp();
    const { url } = await startGateway({ upstream: upstream.url, ...WP });
    const first = await postForm(`${url}/wp-login.php`, { log: 'admin', pwd: 'pw' });
    const cookie = first.headers.getSetCookie()[0]?.split(';')[0] as string;
    const failed = await postForm(`${url}/wp-login.php`, { log: 'admin', pwd: 'guess' });
    expect(failed.headers.getSetCookie().length).toBeGreaterThan(0);
    expect((await get(`${url}/wp-admin/`, { cookie })).status).toBe(200);
  });

  it('joins a credential chunked over several cookies', async () => {
    let n = 0;
    const upstream = await app((req, res) => {
      if (req.url === '/signin') {
        const v = `${++n}${'x'.repeat(30)}${randomBytes(6).toString('hex')}`;
        res.writeHead(200, {
          'content-type': 'application/json',
          'set-cookie': [
            `.AspNetCore.Cookies=chunks-2; path=/`,
            `.AspNetCore.CookiesC1=${v.slice(0, 20)}; path=/`,
            `.AspNetCore.CookiesC2=${v.slice(20)}; path=/`,
          ],
        });
        res.end(JSON.stringify({ name: 'kai' }));
        return;
      }
      res.end('ok');
    });
    const chunked = { from: 'cookie:.AspNetCore.Cookies', chunked: true };
    const { url } = await startGateway({
      upstream: upstream.url,
      login: [{ match: 'POST /signin', token: chunked, user: 'json:name' }],
      tokens: [chunked],
    });
    const first = await postJson(`${url}/signin`, {});
    const cookie = first.headers
      .getSetCookie()
      .map((c) => c.split(';')[0])
      .join('; ');
    expect((await get(`${url}/x`, { cookie })).status).toBe(200);
    await postJson(`${url}/signin`, {});
    expect((await get(`${url}/x`, { cookie })).status).toBe(401);
  });
});
