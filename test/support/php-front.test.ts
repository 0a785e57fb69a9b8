/**
 * Proves that the front-controller PHP app (test/apps/php-front/) behaves as the gateway's tests of query and
 * form rules assume, talking to it directly (no gateway): both login styles, PHP's session cookie on failure,
 * rotating remember-me, logout, the asset through the controller and the request counter.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { havePhp } from './apps.js';
import type { RunningApp } from './running-app.js';
import { setCookie } from './gateway.js';
import { CookieJar } from './jar.js';
import { PHP_FRONT_COUNT_PATH, startPhpFrontApp, toolAvailable } from './php-front.js';

const LOGIN = '/index.php?action=login';
const ACCOUNT = '/index.php?action=account';
const NOTES = '/index.php?action=notes';
const LOGOUT = '/index.php?action=logout';
/** PHP's default session id: 26 characters of [0-9a-v]. */
const SESSION_ID = /^[0-9a-v]{26}$/;
/** The app's remember-me value: 24 random bytes in hex, naming nobody. */
const REMEMBER_VALUE = /^[0-9a-f]{48}$/;

/** The Set-Cookie lines of a response for one cookie, in the order sent. */
function cookieLines(res: Response, name: string): string[] {
  return res.headers.getSetCookie().filter((line) => line.startsWith(`${name}=`));
}

const isDeletion = (line: string): boolean => /;\s*max-age=0(;|$)/i.test(line);

function jarWith(cookies: Record<string, string>): CookieJar {
  const jar = new CookieJar();
  for (const [k, v] of Object.entries(cookies)) jar.cookies.set(k, v);
  return jar;
}

describe.skipIf(!toolAvailable('php', 'php-cli', havePhp()))(
  'PHP front-controller app (?action=, op=, PHPSESSID, rotating REMEMBERME)',
  () => {
    let app: RunningApp;
    beforeAll(async () => {
      app = await startPhpFrontApp();
    });
    afterAll(async () => {
      await app?.close();
    });

    /** A request of this browser; the body is read, so the response is complete. */
    async function send(
      jar: CookieJar,
      target: string,
      form?: Record<string, string>,
      method?: 'GET' | 'POST',
    ): Promise<{ res: Response; body: string }> {
      const res = await jar.fetch(app.url + target, { ...(form && { form }), ...(method && { method }) });
      return { res, body: await res.text() };
    }

    async function count(): Promise<number> {
      const res = await fetch(app.url + PHP_FRONT_COUNT_PATH);
      return Number(await res.text());
    }

    async function loginWithRemember(username: string): Promise<CookieJar> {
      const jar = new CookieJar();
      const { res } = await send(jar, LOGIN, { username, password: 'demo', remember: '1' });
      expect(res.status).toBe(302);
      return jar;
    }

    it('serves the login form on GET ?action=login, already with a PHPSESSID', async () => {
      const { res, body } = await send(new CookieJar(), LOGIN);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/html/);
      expect(body).toContain('<form method="post" action="/index.php?action=login">');
      expect(body).toContain('name="username"');
      expect(setCookie(res, 'PHPSESSID')).toMatch(SESSION_ID);
    });

    it('logs in on POST ?action=login under a new session id and redirects to the account', async () => {
      const jar = new CookieJar();
      await send(jar, LOGIN);
      const anonymous = jar.cookies.get('PHPSESSID');
      const { res } = await send(jar, LOGIN, { username: 'alice', password: 'demo' });
      expect(res.status).toBe(302);
      expect(res.headers.get('location')).toBe(ACCOUNT);
      const sid = setCookie(res, 'PHPSESSID');
      expect(sid).toMatch(SESSION_ID);
      expect(sid).not.toBe(anonymous);
      expect(cookieLines(res, 'REMEMBERME')).toEqual([]);
      expect(await send(jar, ACCOUNT)).toMatchObject({ body: 'account of alice' });
    });

    it('logs in on POST /index.php with op=login in the form the same way', async () => {
      const jar = new CookieJar();
      const { res } = await send(jar, '/index.php', { op: 'login', username: 'bob', password: 'demo' });
      expect(res.status).toBe(302);
      expect(res.headers.get('location')).toBe(ACCOUNT);
      expect(setCookie(res, 'PHPSESSID')).toMatch(SESSION_ID);
      const account = await send(jar, ACCOUNT);
      expect(account.res.status).toBe(200);
      expect(account.body).toBe('account of bob');
    });

    it.each([
      ['?action=login', LOGIN, {}],
      ['op=login', '/index.php', { op: 'login' }],
    ])(
      'answers a failed login (%s) with 200, the form, the error and a PHPSESSID of nobody',
      async (_style, target, extra) => {
        const jar = new CookieJar();
        const { res, body } = await send(jar, target, { ...extra, username: 'alice', password: 'wrong' });
        expect(res.status).toBe(200);
        expect(body).toContain('bad credentials');
        expect(body).toContain('<form');
        expect(setCookie(res, 'PHPSESSID')).toMatch(SESSION_ID);
        const account = await send(jar, ACCOUNT);
        expect(account.res.status).toBe(302);
        expect(account.res.headers.get('location')).toBe(LOGIN);
      },
    );

    it('sets REMEMBERME on a login with remember=1: opaque, HttpOnly, Path=/, for 30 days', async () => {
      const jar = new CookieJar();
      const { res } = await send(jar, LOGIN, { username: 'alice', password: 'demo', remember: '1' });
      const [line, ...more] = cookieLines(res, 'REMEMBERME');
      expect(more).toEqual([]);
      expect(setCookie(res, 'REMEMBERME')).toMatch(REMEMBER_VALUE);
      expect(line).toMatch(/;\s*HttpOnly(;|$)/i);
      expect(line).toMatch(/;\s*path=\/(;|$)/i);
      expect(line).toMatch(/;\s*Max-Age=2592000(;|$)/i);
    });

    it('logs in again from REMEMBERME alone: new session id, new REMEMBERME, the old value dead', async () => {
      const login = await loginWithRemember('carol');
      const first = login.cookies.get('REMEMBERME') ?? '';
      expect(first).toMatch(REMEMBER_VALUE);

      const { res, body } = await send(jarWith({ REMEMBERME: first }), ACCOUNT);
      expect(res.status).toBe(200);
      expect(body).toBe('account of carol');
      const sid = setCookie(res, 'PHPSESSID') ?? '';
      expect(sid).toMatch(SESSION_ID);
      expect(sid).not.toBe(login.cookies.get('PHPSESSID'));
      const second = setCookie(res, 'REMEMBERME') ?? '';
      expect(second).toMatch(REMEMBER_VALUE);
      expect(second).not.toBe(first);

      // The session made from the cookie stands on its own.
      expect((await send(jarWith({ PHPSESSID: sid }), ACCOUNT)).body).toBe('account of carol');

      // The old value was deleted from the app's store: it logs nobody in, and the app clears it.
      const replay = await send(jarWith({ REMEMBERME: first }), ACCOUNT);
      expect(replay.res.status).toBe(302);
      expect(replay.res.headers.get('location')).toBe(LOGIN);
      expect(cookieLines(replay.res, 'REMEMBERME').map(isDeletion)).toEqual([true]);

      // The new value works, and rotates again.
      const next = await send(jarWith({ REMEMBERME: second }), ACCOUNT);
      expect(next.body).toBe('account of carol');
      expect(setCookie(next.res, 'REMEMBERME')).not.toBe(second);
    });

    it('saves a note in the session on POST op=note and answers 200 saved', async () => {
      const jar = new CookieJar();
      await send(jar, '/index.php', { op: 'login', username: 'dave', password: 'demo' });
      const { res, body } = await send(jar, '/index.php', { op: 'note', text: 'buy milk' });
      expect(res.status).toBe(200);
      expect(body).toBe('saved');
      expect(cookieLines(res, 'PHPSESSID')).toEqual([]);
      expect(JSON.parse((await send(jar, NOTES)).body)).toEqual(['buy milk']);
    });

    it('redirects POST op=note without a login to the login page', async () => {
      const { res } = await send(new CookieJar(), '/index.php', { op: 'note', text: 'buy milk' });
      expect(res.status).toBe(302);
      expect(res.headers.get('location')).toBe(LOGIN);
    });

    it('redirects ?action=account without a session or REMEMBERME to the login page', async () => {
      const { res } = await send(new CookieJar(), ACCOUNT);
      expect(res.status).toBe(302);
      expect(res.headers.get('location')).toBe(LOGIN);
    });

    it.each(['GET', 'POST'] as const)(
      '%s ?action=logout destroys the session, clears both cookies, and neither old value works',
      async (method) => {
        const jar = await loginWithRemember('erin');
        const before = {
          sid: jar.cookies.get('PHPSESSID') ?? '',
          remember: jar.cookies.get('REMEMBERME') ?? '',
        };
        const { res } = await send(jar, LOGOUT, method === 'POST' ? {} : undefined, method);
        expect(res.status).toBe(302);
        expect(res.headers.get('location')).toBe(LOGIN);
        expect(cookieLines(res, 'PHPSESSID').map(isDeletion)).toEqual([true]);
        expect(cookieLines(res, 'REMEMBERME').map(isDeletion)).toEqual([true]);
        expect([...jar.cookies.keys()]).toEqual([]);
        const replays: Record<string, string>[] = [
          { PHPSESSID: before.sid },
          { REMEMBERME: before.remember },
        ];
        for (const cookies of replays) {
          expect((await send(jarWith(cookies), ACCOUNT)).res.headers.get('location')).toBe(LOGIN);
        }
      },
    );

    it('sends, on a logout without a session, a new PHPSESSID and then its deletion, in that order', async () => {
      // Native PHP: session_start() issues an id, setcookie() then deletes it. Browsers apply both in order.
      const { res } = await send(new CookieJar(), LOGOUT);
      const lines = cookieLines(res, 'PHPSESSID');
      expect(lines.map(isDeletion)).toEqual([false, true]);
      expect(lines[1]).toMatch(/^PHPSESSID=deleted;/);
    });

    it('serves /assets/app.css through the controller, which starts a session there too', async () => {
      const { res, body } = await send(new CookieJar(), '/assets/app.css');
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/css/);
      expect(body).toContain('font-family');
      expect(setCookie(res, 'PHPSESSID')).toMatch(SESSION_ID);
    });

    it('runs the controller at /, /index.php and /index.php/<path info>, and 404s any other path', async () => {
      for (const target of ['/?action=login', '/index.php/extra?action=login']) {
        const { res } = await send(new CookieJar(), target, { username: 'frank', password: 'demo' });
        expect(res.headers.get('location')).toBe(ACCOUNT);
      }
      const byOp = await send(new CookieJar(), '/', { op: 'login', username: 'frank', password: 'demo' });
      expect(byOp.res.headers.get('location')).toBe(ACCOUNT);
      for (const target of ['/lib.php', '/INDEX.PHP', '/assets/app.css.php']) {
        expect((await send(new CookieJar(), target)).res.status).toBe(404);
      }
    });

    it('reads repeated query and form fields as PHP does: the last one wins', async () => {
      const byQuery = await fetch(`${app.url}/index.php?action=account&action=login`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'username=gina&password=demo',
        redirect: 'manual',
      });
      expect(byQuery.headers.get('location')).toBe(ACCOUNT);
      const byForm = await fetch(`${app.url}/index.php`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'op=note&op=login&username=gina&password=demo',
        redirect: 'manual',
      });
      expect(byForm.headers.get('location')).toBe(ACCOUNT);
    });

    it('counts every request it serves, but not the _count requests', async () => {
      const before = await count();
      await send(new CookieJar(), '/assets/app.css');
      await send(new CookieJar(), LOGIN);
      await send(new CookieJar(), '/nowhere');
      await send(new CookieJar(), '/index.php', { op: 'bogus' });
      expect(await count()).toBe(before + 4);
      expect(await count()).toBe(before + 4);
    });
  },
);
