/**
 * sessions.fixation against real apps: the php-legacy app (native PHP sessions under `php -S`) signs
 * in without session_regenerate_id() at POST /login.php (the pre-login PHPSESSID becomes the signed-in
 * one, and no Set-Cookie is sent) and with it at POST /login-regenerate.php; express-session
 * regenerates at login (never flagged); and an app of the test's own re-sends the same cookie on a
 * refresh (never flagged).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../../src/config/schema.js';
import type { RunningApp } from '../support/running-app.js';
import { haveExpressSession, startExpressSessionApp } from '../support/express-session.js';
import { NAVIGATE, startGateway, type TestGateway } from '../support/gateway.js';
import { CookieJar } from '../support/jar.js';
import { startPhpLegacyApp } from '../support/php-legacy.js';
import { havePhp } from '../support/apps.js';
import { startPresetGateway } from '../support/presets.js';
import { needTool } from '../support/tools.js';

const LEGACY_LOGINS: NonNullable<ConfigInput['login']> = ['/login.php', '/login-regenerate.php'].map(
  (path) => ({
    match: `POST ${path}`,
    token: 'cookie:PHPSESSID',
    user: 'request.form:username',
    success: { status: 302, location: '/account.php' },
  }),
);

async function fixationCount(gw: TestGateway, outcome: string, which: string): Promise<number> {
  const text = await gw.gateway.metrics.registry.getSingleMetricAsString(
    'sessiongate_session_fixation_total',
  );
  const m = new RegExp(`outcome="${outcome}",case="${which}"\\} (\\d+)`).exec(text);
  return m === null ? 0 : Number(m[1]);
}

const fixationWarnings = (gw: TestGateway) =>
  gw.logs.lines().filter((l) => l.code === 'SG_WARN_SESSION_FIXATION');

describe.skipIf(!needTool('PHP', 'php-cli', havePhp()))('session fixation (php-legacy)', () => {
  let app: RunningApp;
  beforeAll(async () => void (app = await startPhpLegacyApp()), 30_000);
  afterAll(() => app.close());

  const gateway = (fixation: 'off' | 'warn' | 'refuse', extra: Partial<ConfigInput> = {}) =>
    startGateway({
      upstream: app.url,
      login: LEGACY_LOGINS,
      logout: [{ match: 'POST /logout.php' }],
      tokens: ['cookie:PHPSESSID'],
      sessions: { fixation },
      ...extra,
    });

  /** A browser that opened the login page: it holds the PHPSESSID the app started there. */
  const browserAtLoginPage = async (gw: TestGateway): Promise<CookieJar> => {
    const jar = new CookieJar();
    expect((await jar.fetch(`${gw.url}/login.php`)).status).toBe(200);
    expect(jar.cookies.get('PHPSESSID')).toMatch(/^[a-z0-9,-]{20,}$/);
    return jar;
  };
  const signIn = (jar: CookieJar, gw: TestGateway, path = '/login.php', username = 'alice') =>
    jar.fetch(`${gw.url}${path}`, { form: { username, password: `pw-${username}` } });

  it('registers the pre-login id a login kept, and warns: logged, audited, counted', async () => {
    const gw = await gateway('warn');
    const a = await browserAtLoginPage(gw);
    const preLogin = a.cookies.get('PHPSESSID');
    const res = await signIn(a, gw);
    expect([res.status, res.headers.get('location')]).toEqual([302, '/account.php']);
    expect(res.headers.getSetCookie()).toEqual([]);
    expect(a.cookies.get('PHPSESSID')).toBe(preLogin);
    expect(await gw.gateway.sessions.listSessions('alice')).toHaveLength(1);
    expect(await (await a.fetch(`${gw.url}/account.php`)).text()).toContain('hello alice');

    expect(fixationWarnings(gw)).toEqual([
      expect.objectContaining({ rule: 'login[0]', case: 'first_login', mode: 'warn' }),
    ]);
    expect(gw.logs.audit('session.fixation_risk')).toEqual([
      expect.objectContaining({ user: 'alice', rule: 'login[0]', reason: 'registered' }),
    ]);
    expect(await fixationCount(gw, 'warned', 'first_login')).toBe(1);
    // No raw session id in any log line.
    expect(gw.logs.text()).not.toContain(preLogin);
  });

  it('applies the limit to such an app: a second browser supersedes the first', async () => {
    const gw = await gateway('warn');
    const a = await browserAtLoginPage(gw);
    await signIn(a, gw);
    const b = await browserAtLoginPage(gw);
    await signIn(b, gw);
    const first = await a.fetch(`${gw.url}/account.php`);
    expect(first.status).toBe(401);
    expect(((await first.json()) as { error: string }).error).toBe('session_superseded');
    expect(await (await b.fetch(`${gw.url}/account.php`)).text()).toContain('hello alice');
  });

  it('flags a second login of the signed-in browser that keeps its id (re-login), in the same session', async () => {
    const gw = await gateway('warn');
    const a = await browserAtLoginPage(gw);
    await signIn(a, gw);
    const [session] = await gw.gateway.sessions.listSessions('alice');
    const again = await signIn(a, gw);
    expect(again.status).toBe(302);
    expect((await gw.gateway.sessions.listSessions('alice')).map((s) => s.id)).toEqual([session?.id]);
    expect(fixationWarnings(gw).map((l) => l.case)).toEqual(['first_login', 'relogin']);
    expect(gw.logs.audit('session.fixation_risk')[1]).toEqual(
      expect.objectContaining({ user: 'alice', sessionId: session?.id }),
    );
    expect(await fixationCount(gw, 'warned', 'relogin')).toBe(1);
  });

  it('never flags a login that regenerates the id (session_regenerate_id)', async () => {
    const gw = await gateway('refuse');
    const a = await browserAtLoginPage(gw);
    const preLogin = a.cookies.get('PHPSESSID');
    const res = await signIn(a, gw, '/login-regenerate.php');
    expect([res.status, res.headers.get('location')]).toEqual([302, '/account.php']);
    expect(a.cookies.get('PHPSESSID')).not.toBe(preLogin);
    expect(await gw.gateway.sessions.listSessions('alice')).toHaveLength(1);
    expect(await (await a.fetch(`${gw.url}/account.php`)).text()).toContain('hello alice');
    // The warning would have been logged before the login response was released.
    expect(fixationWarnings(gw)).toEqual([]);
    expect(gw.logs.audit('session.fixation_risk')).toEqual([]);
  });

  it('refuses it with 403 session_fixation under refuse: nothing registered, the cookie deleted', async () => {
    const gw = await gateway('refuse');
    const a = await browserAtLoginPage(gw);
    const res = await signIn(a, gw);
    expect(res.status).toBe(403);
    expect(res.headers.get('location')).toBeNull();
    expect(await res.json()).toEqual({ error: 'session_fixation', message: expect.any(String) });
    expect(res.headers.getSetCookie()).toEqual([expect.stringMatching(/^PHPSESSID=; Path=\/; Max-Age=0; /)]);
    expect(a.cookies.has('PHPSESSID')).toBe(false);
    expect(await gw.gateway.sessions.listSessions('alice')).toEqual([]);
    expect(gw.logs.audit('session.fixation_risk')).toEqual([
      expect.objectContaining({ user: 'alice', rule: 'login[0]', reason: 'refused' }),
    ]);
    expect(await fixationCount(gw, 'refused', 'first_login')).toBe(1);
  });

  it('answers a browser navigation under refuse with a page', async () => {
    const gw = await gateway('refuse');
    const a = await browserAtLoginPage(gw);
    const res = await request(`${gw.url}/login.php`, {
      method: 'POST',
      headers: {
        ...NAVIGATE,
        cookie: a.header(),
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: 'username=alice&password=pw-alice',
    });
    expect(res.statusCode).toBe(403);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    expect(await res.body.text()).toContain('data-code="session_fixation"');
  });

  it('only warns under mode: report-only, and registers the login', async () => {
    const gw = await gateway('refuse', { mode: 'report-only' });
    const a = await browserAtLoginPage(gw);
    expect((await signIn(a, gw)).status).toBe(302);
    expect(await gw.gateway.sessions.listSessions('alice')).toHaveLength(1);
    expect(fixationWarnings(gw)).toEqual([expect.objectContaining({ reportOnly: true })]);
    expect(await fixationCount(gw, 'warned', 'first_login')).toBe(1);
  });

  it('judges nothing under off: the login passes unregistered, as before', async () => {
    const gw = await gateway('off');
    const a = await browserAtLoginPage(gw);
    expect((await signIn(a, gw)).status).toBe(302);
    expect(await gw.gateway.sessions.listSessions('alice')).toEqual([]);
    expect(gw.logs.lines().some((l) => l.code === 'SG_ERR_LOGIN_NO_TOKEN')).toBe(true);
    expect(fixationWarnings(gw)).toEqual([]);
  });

  it('never registers a dead id the gateway left out of the login request', async () => {
    const gw = await gateway('warn');
    const a = await browserAtLoginPage(gw);
    await signIn(a, gw);
    const b = await browserAtLoginPage(gw);
    await signIn(b, gw); // supersedes a
    // a signs in again with its superseded id: the app never sees it, starts a new session and sets it.
    const res = await signIn(a, gw);
    expect(res.status).toBe(302);
    expect(res.headers.getSetCookie()).toHaveLength(1);
    expect(await (await a.fetch(`${gw.url}/account.php`)).text()).toContain('hello alice');
    expect(fixationWarnings(gw).map((l) => l.case)).toEqual(['first_login', 'first_login']);
  });
});

describe.skipIf(!needTool('express-session', 'npm install (a devDependency)', haveExpressSession()))(
  'session fixation (express-session)',
  () => {
    let app: RunningApp;
    beforeAll(async () => void (app = await startExpressSessionApp()), 30_000);
    afterAll(() => app.close());

    it('never flags a login that regenerates the session (req.session.regenerate)', async () => {
      const gw = await startPresetGateway('express-session', app.url);
      const a = new CookieJar();
      // A failed login first, so the browser holds a pre-login connect.sid it presents at the next one.
      await a.fetch(`${gw.url}/login`, { form: { username: 'alice', password: 'wrong' } });
      const preLogin = a.cookies.get('connect.sid');
      expect(preLogin).toBeDefined();
      const res = await a.fetch(`${gw.url}/login`, { form: { username: 'alice', password: 'pw-alice' } });
      expect(res.status).toBe(302);
      expect(a.cookies.get('connect.sid')).not.toBe(preLogin);
      expect(await gw.live('alice')).toHaveLength(1);
      expect(gw.logs.lines().filter((l) => l.code === 'SG_WARN_SESSION_FIXATION')).toEqual([]);
    });
  },
);

describe('session fixation and refreshes', () => {
  it('never flags a refresh that re-sends the same cookie value, but does a login that does', async () => {
    let n = 0;
    const server = createServer((req, res) => {
      req.resume();
      if (req.url === '/login-same') {
        // An app that signs in the id it was sent and sends it back unchanged.
        const sid = /sid=([^;]+)/.exec(req.headers.cookie ?? '')?.[1] ?? '';
        res.writeHead(302, { location: '/app', 'set-cookie': `sid=${sid}; Path=/` });
      } else if (req.url === '/login') {
        res.writeHead(302, { location: '/app', 'set-cookie': `sid=s-${++n}; Path=/` });
      } else if (req.url === '/refresh') {
        const sid = /sid=([^;]+)/.exec(req.headers.cookie ?? '')?.[1] ?? '';
        res.writeHead(200, { 'set-cookie': `sid=${sid}; Path=/` });
      } else res.writeHead(200);
      res.end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const upstream = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const gw = await startGateway({
        upstream,
        login: ['/login', '/login-same'].map((path) => ({
          match: `POST ${path}`,
          token: 'cookie:sid',
          user: 'request.form:username',
          success: { status: 302 },
        })),
        refresh: [{ match: 'POST /refresh', token: 'cookie:sid' }],
        tokens: ['cookie:sid'],
        sessions: { fixation: 'refuse' },
      });
      const jar = new CookieJar();
      // A login whose request carries a pre-login value the app replaces: not flagged.
      jar.cookies.set('sid', 'pre-login');
      expect((await jar.fetch(`${gw.url}/login`, { form: { username: 'cy' } })).status).toBe(302);
      expect(jar.cookies.get('sid')).toBe('s-1');
      const refreshed = await jar.fetch(`${gw.url}/refresh`, { method: 'POST' });
      expect(refreshed.status).toBe(200);
      expect(refreshed.headers.getSetCookie()).toEqual(['sid=s-1; Path=/']);
      expect(await gw.gateway.sessions.listSessions('cy')).toHaveLength(1);
      expect(gw.logs.lines().filter((l) => l.code === 'SG_WARN_SESSION_FIXATION')).toEqual([]);
      // The same value sent back on a login (a Set-Cookie, unlike PHP) is the same kept id: refused.
      const kept = await jar.fetch(`${gw.url}/login-same`, { form: { username: 'cy' } });
      expect(kept.status).toBe(403);
      expect(gw.logs.lines().filter((l) => l.code === 'SG_WARN_SESSION_FIXATION')).toEqual([
        expect.objectContaining({ rule: 'login[1]', case: 'relogin' }),
      ]);
      await gw.close();
    } finally {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
