import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, get, postForm, postJson, setCookie, startGateway, testClock } from '../support/gateway.js';
import { cookieFormApp, jwtApp } from '../support/upstreams.js';
import type { RunningApp } from '../support/running-app.js';
import { JSON_LOGIN_RULE } from '../support/login-rules.js';

const JSON_LOGIN = [JSON_LOGIN_RULE];

describe('a JSON API with bearer tokens', () => {
  let app: RunningApp;
  beforeAll(async () => void (app = await jwtApp()));
  afterAll(() => app.close());

  const login = async (url: string, username: string, headers: Record<string, string> = {}) => {
    const res = await postJson(`${url}/api/login`, { username }, headers);
    return { res, body: (await res.json()) as { accessToken: string; refreshToken: string } };
  };

  it('rejects the first token after a second login, with the message', async () => {
    const { url } = await startGateway({ upstream: app.url, login: JSON_LOGIN });
    const first = await login(url, 'alice');
    expect((await get(`${url}/data`, bearer(first.body.accessToken))).status).toBe(200);
    await login(url, 'alice');
    const res = await get(`${url}/data`, bearer(first.body.accessToken));
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe(
      'Bearer error="invalid_token", error_description="session_superseded"',
    );
    expect(await res.json()).toEqual({
      error: 'session_superseded',
      message: 'Another session has been started using your account. You will now be signed out.',
    });
  });

  it('keeps the second token working', async () => {
    const { url } = await startGateway({ upstream: app.url, login: JSON_LOGIN });
    await login(url, 'alice');
    const second = await login(url, 'alice');
    expect((await get(`${url}/data`, bearer(second.body.accessToken))).status).toBe(200);
  });

  it('does not let one user supersede another', async () => {
    const { url } = await startGateway({ upstream: app.url, login: JSON_LOGIN });
    const alice = await login(url, 'alice');
    await login(url, 'bob');
    expect((await get(`${url}/data`, bearer(alice.body.accessToken))).status).toBe(200);
  });

  it('keeps two sessions with limit 2 and supersedes the oldest on the third login', async () => {
    const { url } = await startGateway({ upstream: app.url, login: JSON_LOGIN, sessions: { limit: 2 } });
    const a = await login(url, 'alice');
    const b = await login(url, 'alice');
    expect((await get(`${url}/x`, bearer(a.body.accessToken))).status).toBe(200);
    const c = await login(url, 'alice');
    expect((await get(`${url}/x`, bearer(a.body.accessToken))).status).toBe(401);
    expect((await get(`${url}/x`, bearer(b.body.accessToken))).status).toBe(200);
    expect((await get(`${url}/x`, bearer(c.body.accessToken))).status).toBe(200);
  });

  it('refuses a new login with 409 under reject-new, and never delivers its token', async () => {
    const { url } = await startGateway({
      upstream: app.url,
      login: JSON_LOGIN,
      sessions: { onLimit: 'reject-new' },
    });
    const first = await login(url, 'alice');
    const res = await postJson(`${url}/api/login`, { username: 'alice' });
    expect(res.status).toBe(409);
    const body = await res.text();
    expect(JSON.parse(body)).toMatchObject({ error: 'session_limit_reached' });
    expect(body).not.toContain('accessToken');
    expect((await get(`${url}/x`, bearer(first.body.accessToken))).status).toBe(200);
  });

  it('treats 1 from a JSON body and "1" from a JWT sub as the same user', async () => {
    const { url, gateway } = await startGateway({
      upstream: app.url,
      login: [JSON_LOGIN_RULE, { match: 'POST /api/sso/login', token: 'json:accessToken', user: 'jwt:sub' }],
    });
    const viaBody = await login(url, '1'); // user.id is the number 1
    const viaJwt = (await (await postJson(`${url}/api/sso/login`, { username: '1' })).json()) as {
      accessToken: string;
    };
    expect((await get(`${url}/x`, bearer(viaBody.body.accessToken))).status).toBe(401);
    expect((await get(`${url}/x`, bearer(viaJwt.accessToken))).status).toBe(200);
    expect(await gateway.sessions.listSessions('1')).toHaveLength(1);
  });

  it('takes the user from the login request body', async () => {
    const { url, gateway } = await startGateway({
      upstream: app.url,
      login: [{ match: 'POST /api/login', token: 'json:accessToken', user: 'request.json:username' }],
    });
    await login(url, 'carol');
    expect(await gateway.sessions.listSessions('carol')).toHaveLength(1);
  });

  it('counts the same token seen at a second login as the same session', async () => {
    const same = await jwtApp({ sameTokenWithinSecond: true });
    try {
      const { url, gateway } = await startGateway({
        upstream: same.url,
        login: [{ match: 'POST /api/login', token: 'json:accessToken', user: 'jwt:sub' }],
      });
      const a = await login(url, 'dave');
      const b = await login(url, 'dave');
      expect(b.body.accessToken).toBe(a.body.accessToken);
      expect((await get(`${url}/x`, bearer(a.body.accessToken))).status).toBe(200);
      expect(await gateway.sessions.listSessions('dave')).toHaveLength(1);
    } finally {
      await same.close();
    }
  });

  it('links a refreshed token to the session of the token presented', async () => {
    const { url } = await startGateway({
      upstream: app.url,
      login: [
        { match: 'POST /api/login', token: ['json:accessToken', 'json:refreshToken'], user: 'json:user.id' },
      ],
      refresh: [
        {
          match: 'POST /api/refresh',
          token: ['json:accessToken', 'json:refreshToken'],
          presented: 'request.json:refreshToken',
        },
      ],
    });
    const first = await login(url, 'erin');
    const refreshed = (await (
      await postJson(`${url}/api/refresh`, { refreshToken: first.body.refreshToken })
    ).json()) as { accessToken: string; refreshToken: string };
    expect((await get(`${url}/x`, bearer(refreshed.accessToken))).status).toBe(200);
    // A second login supersedes the session, including the refreshed token and the refresh token.
    await login(url, 'erin');
    expect((await get(`${url}/x`, bearer(refreshed.accessToken))).status).toBe(401);
    const reuse = await postJson(`${url}/api/refresh`, { refreshToken: refreshed.refreshToken });
    expect(reuse.status).toBe(401);
    expect(await reuse.json()).toMatchObject({ error: 'session_superseded' });
  });

  it('ends the session at logout', async () => {
    const { url } = await startGateway({
      upstream: app.url,
      login: JSON_LOGIN,
      logout: [{ match: 'POST /api/logout' }],
    });
    const a = await login(url, 'frank');
    expect((await postJson(`${url}/api/logout`, {}, bearer(a.body.accessToken))).status).toBe(200);
    const res = await get(`${url}/x`, bearer(a.body.accessToken));
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ error: 'session_logged_out' });
  });

  it('expires a session idle past idleTimeout', async () => {
    const clock = testClock();
    const { url } = await startGateway(
      { upstream: app.url, login: JSON_LOGIN, sessions: { idleTimeout: '15m' } },
      { now: clock.now },
    );
    const a = await login(url, 'gina');
    clock.advance(14 * 60_000);
    expect((await get(`${url}/x`, bearer(a.body.accessToken))).status).toBe(200);
    clock.advance(14 * 60_000);
    expect((await get(`${url}/x`, bearer(a.body.accessToken))).status).toBe(200);
    clock.advance(15 * 60_000);
    const res = await get(`${url}/x`, bearer(a.body.accessToken));
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ error: 'session_expired' });
  });

  it('expires an active session at maxAge', async () => {
    const clock = testClock();
    const { url } = await startGateway(
      { upstream: app.url, login: JSON_LOGIN, sessions: { maxAge: '1h', idleTimeout: '30m' } },
      { now: clock.now },
    );
    const a = await login(url, 'hank');
    for (let i = 0; i < 5; i++) {
      clock.advance(10 * 60_000);
      expect((await get(`${url}/x`, bearer(a.body.accessToken))).status).toBe(200);
    }
    clock.advance(11 * 60_000);
    const res = await get(`${url}/x`, bearer(a.body.accessToken));
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ error: 'session_expired' });
  });

  it('passes an unknown token by default', async () => {
    const { url } = await startGateway({ upstream: app.url, login: JSON_LOGIN });
    expect((await get(`${url}/x`, bearer('never-seen'))).status).toBe(200);
  });

  it('rejects an unknown token with unknownTokens: reject', async () => {
    const { url } = await startGateway({
      upstream: app.url,
      login: JSON_LOGIN,
      sessions: { unknownTokens: 'reject' },
    });
    const res = await get(`${url}/x`, bearer('never-seen'));
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ error: 'session_unknown' });
  });

  it('passes and logs what it would reject in report-only mode', async () => {
    const { url, logs } = await startGateway({ upstream: app.url, login: JSON_LOGIN, mode: 'report-only' });
    const first = await login(url, 'ivy');
    await login(url, 'ivy');
    expect((await get(`${url}/x`, bearer(first.body.accessToken))).status).toBe(200);
    expect(logs.lines().some((l) => l.reportOnly === true && l.code === 'session_superseded')).toBe(true);
  });

  it('passes requests without a token and paths outside protect untouched', async () => {
    const { url } = await startGateway({ upstream: app.url, login: JSON_LOGIN, protect: ['/api/**'] });
    const first = await login(url, 'jack');
    await login(url, 'jack');
    expect((await get(`${url}/public/page`, bearer(first.body.accessToken))).status).toBe(200);
    expect((await get(`${url}/api/data`, bearer(first.body.accessToken))).status).toBe(401);
    expect((await get(`${url}/api/data`)).status).toBe(200);
  });

  it('passes a login whose response has no token, and counts it', async () => {
    const { url, gateway, logs } = await startGateway({
      upstream: app.url,
      login: [{ match: 'POST /api/login', token: 'json:missing', user: 'json:user.id' }],
    });
    const res = await postJson(`${url}/api/login`, { username: 'kim' });
    expect(res.status).toBe(200);
    expect(logs.lines().some((l) => l.code === 'SG_ERR_LOGIN_NO_TOKEN')).toBe(true);
    expect(await gateway.metrics.registry.getSingleMetricAsString('sessiongate_logins_total')).toContain(
      'outcome="no_token"} 1',
    );
  });

  it('does not register a failed (401) login', async () => {
    const { url, gateway } = await startGateway({ upstream: app.url, login: JSON_LOGIN });
    const ok = await login(url, 'lee');
    expect((await postJson(`${url}/api/login`, { username: 'lee', password: 'wrong' })).status).toBe(401);
    expect((await get(`${url}/x`, bearer(ok.body.accessToken))).status).toBe(200);
    expect(await gateway.sessions.listSessions('lee')).toHaveLength(1);
  });

  it('matches a login route written with repeated slashes or dot segments', async () => {
    const { url } = await startGateway({ upstream: app.url, login: JSON_LOGIN });
    const first = await login(url, 'mo');
    const res = await postJson(`${url}//api/./login`, { username: 'mo' });
    expect(res.status).toBe(200);
    expect((await get(`${url}/x`, bearer(first.body.accessToken))).status).toBe(401);
  });
});

describe('a cookie-session app with a form login', () => {
  let app: RunningApp;
  beforeAll(async () => void (app = await cookieFormApp()));
  afterAll(() => app.close());
  const FORM_LOGIN = {
    login: [
      {
        match: 'POST /login',
        token: 'cookie:sid',
        user: 'request.form:username',
        success: { status: 302, location: '/account' },
      },
    ],
    tokens: ['cookie:sid'],
    logout: [{ match: 'POST /logout' }],
  };

  const signIn = async (url: string, username: string, password = 'pw') => {
    const res = await postForm(`${url}/login`, { username, password });
    return { res, sid: setCookie(res, 'sid') as string };
  };

  it('redirects the superseded browser with the reason and clears its cookie', async () => {
    const { url } = await startGateway({ upstream: app.url, ...FORM_LOGIN, reject: { redirect: '/login' } });
    const first = await signIn(url, 'alice');
    await signIn(url, 'alice');
    const res = await get(`${url}/account`, {
      cookie: `sid=${first.sid}`,
      accept: 'text/html',
      'sec-fetch-mode': 'navigate',
    });
    expect(res.status).toBe(302);
    expect(res.headers.get('location')).toBe('/login?reason=session_superseded');
    expect(res.headers.getSetCookie().some((c) => c.startsWith('sid=;') && c.includes('Max-Age=0'))).toBe(
      true,
    );
  });

  it('shows a page with the message when no redirect is configured', async () => {
    const { url } = await startGateway({ upstream: app.url, ...FORM_LOGIN });
    const first = await signIn(url, 'alice');
    await signIn(url, 'alice');
    const res = await get(`${url}/account`, {
      cookie: `sid=${first.sid}`,
      accept: 'text/html,application/xhtml+xml',
    });
    expect(res.status).toBe(401);
    expect(res.headers.get('content-type')).toContain('text/html');
    expect(await res.text()).toContain('Another session has been started using your account.');
  });

  it('answers a fetch from the superseded browser with 401 JSON, never a redirect', async () => {
    const { url } = await startGateway({ upstream: app.url, ...FORM_LOGIN, reject: { redirect: '/login' } });
    const first = await signIn(url, 'alice');
    await signIn(url, 'alice');
    const res = await get(`${url}/account`, {
      cookie: `sid=${first.sid}`,
      accept: 'text/html',
      'sec-fetch-mode': 'cors',
    });
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ error: 'session_superseded' });
  });

  it('never ends a live session on a failed login that sets a fresh cookie', async () => {
    const { url } = await startGateway({ upstream: app.url, ...FORM_LOGIN });
    const live = await signIn(url, 'alice');
    const failed = await signIn(url, 'alice', 'wrong');
    expect(failed.res.headers.get('location')).toBe('/login?error=1');
    expect(failed.sid).toBeDefined();
    expect((await get(`${url}/account`, { cookie: `sid=${live.sid}` })).status).toBe(200);
  });

  it('ends the session when the user logs out', async () => {
    const { url } = await startGateway({ upstream: app.url, ...FORM_LOGIN });
    const a = await signIn(url, 'bob');
    await postForm(`${url}/logout`, {}, { cookie: `sid=${a.sid}` });
    const res = await get(`${url}/account`, { cookie: `sid=${a.sid}` });
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ error: 'session_logged_out' });
  });
});
