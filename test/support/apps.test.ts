/**
 * Proves that the real test apps in test/apps/ behave as sessiongate's integration tests assume, talking to
 * each app directly (no proxy) with Node's fetch and a small cookie jar.
 */
import { needTool } from './tools.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haveDjango, haveFlask, havePhp, startDjangoApp, startFlaskApp, startPhpApp } from './apps.js';
import type { RunningApp } from './running-app.js';

interface SetCookie {
  name: string;
  value: string;
  /** True when the cookie is being removed (Max-Age <= 0 or Expires in the past). */
  expired: boolean;
  attrs: Record<string, string>;
}

function parseSetCookie(header: string): SetCookie {
  const [pair = '', ...rest] = header.split(';');
  const eq = pair.indexOf('=');
  const name = pair.slice(0, eq).trim();
  let value = pair.slice(eq + 1).trim();
  if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) value = value.slice(1, -1);
  const attrs: Record<string, string> = {};
  for (const part of rest) {
    const i = part.indexOf('=');
    const k = (i < 0 ? part : part.slice(0, i)).trim().toLowerCase();
    attrs[k] = i < 0 ? '' : part.slice(i + 1).trim();
  }
  let expired = false;
  if (attrs['max-age'] !== undefined) expired = Number(attrs['max-age']) <= 0;
  else if (attrs['expires'] !== undefined) expired = Date.parse(attrs['expires']) <= Date.now();
  return { name, value, expired, attrs };
}

/** A tiny cookie jar: one host, path / only, which is all these apps use. */
class Jar {
  readonly cookies = new Map<string, string>();

  constructor(init: Record<string, string> = {}) {
    for (const [k, v] of Object.entries(init)) this.cookies.set(k, v);
  }

  get(name: string): string | undefined {
    return this.cookies.get(name);
  }

  store(res: Response): SetCookie[] {
    const set = res.headers.getSetCookie().map(parseSetCookie);
    for (const c of set) {
      if (c.expired) this.cookies.delete(c.name);
      else this.cookies.set(c.name, c.value);
    }
    return set;
  }

  header(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
}

interface Reply {
  status: number;
  /** Location as path + query, resolved against the app's URL. */
  location: string | null;
  body: string;
  /** The Set-Cookie headers of this response, parsed. */
  setCookies: SetCookie[];
  setCookie(name: string): SetCookie | undefined;
}

async function request(
  app: RunningApp,
  jar: Jar,
  method: 'GET' | 'POST',
  path: string,
  form?: Record<string, string>,
): Promise<Reply> {
  const headers: Record<string, string> = {};
  const cookie = jar.header();
  if (cookie) headers['cookie'] = cookie;
  const res = await fetch(app.url + path, {
    method,
    headers,
    body: form ? new URLSearchParams(form) : undefined,
    redirect: 'manual',
  });
  const body = await res.text();
  const setCookies = jar.store(res);
  const loc = res.headers.get('location');
  let location: string | null = null;
  if (loc !== null) {
    const u = new URL(loc, app.url);
    location = u.pathname + u.search;
  }
  return {
    status: res.status,
    location,
    body,
    setCookies,
    setCookie: (name) => setCookies.find((c) => c.name === name),
  };
}

const get = (app: RunningApp, jar: Jar, path: string): Promise<Reply> => request(app, jar, 'GET', path);
const post = (app: RunningApp, jar: Jar, path: string, form: Record<string, string> = {}): Promise<Reply> =>
  request(app, jar, 'POST', path, form);

describe.skipIf(!needTool('Django', 'python3-django', haveDjango()))(
  'Django test app (signed-cookie sessions)',
  () => {
    let app: RunningApp;
    beforeAll(async () => {
      app = await startDjangoApp();
    });
    afterAll(async () => {
      await app?.close();
    });

    it('redirects a failed login to /login?error=1 and still sends a sessionid cookie', async () => {
      const jar = new Jar();
      const r = await post(app, jar, '/login', { username: 'alice', password: 'wrong' });
      expect(r.status).toBe(302);
      expect(r.location).toBe('/login?error=1');
      const c = r.setCookie('sessionid');
      expect(c?.value).toBeTruthy();
      expect(c?.expired).toBe(false);
      // The cookie is an anonymous session: it does not log anyone in.
      expect((await get(app, jar, '/api/me')).status).toBe(401);
      // A second failure in the same session re-issues the cookie with a new value (the counter went up).
      const again = await post(app, jar, '/login', { username: 'nobody', password: 'x' });
      expect(again.location).toBe('/login?error=1');
      expect(again.setCookie('sessionid')?.value).not.toBe(c?.value);
    });

    it('logs in, then re-issues a new sessionid on every /account while old values stay valid', async () => {
      const jar = new Jar();
      const login = await post(app, jar, '/login', { username: 'alice', password: 'pw-alice' });
      expect(login.status).toBe(302);
      expect(login.location).toBe('/account');
      const first = login.setCookie('sessionid')?.value;
      expect(first).toBeTruthy();

      const seen = new Set([first]);
      for (let i = 0; i < 3; i++) {
        const r = await get(app, jar, '/account');
        expect(r.status).toBe(200);
        expect(r.body).toBe('hello alice');
        const v = r.setCookie('sessionid')?.value;
        expect(v).toBeTruthy();
        expect(seen.has(v)).toBe(false);
        seen.add(v);
      }

      // Signed cookies cannot be revoked by the server: the value issued at login still works.
      const old = await get(app, new Jar({ sessionid: first! }), '/account');
      expect(old.status).toBe(200);
      expect(old.body).toBe('hello alice');

      // /api/me reads the session without changing it: JSON, and no Set-Cookie.
      const me = await get(app, jar, '/api/me');
      expect(me.status).toBe(200);
      expect(JSON.parse(me.body)).toEqual({ authenticated: true, username: 'alice', views: 3 });
      expect(me.setCookie('sessionid')).toBeUndefined();
    });

    it('redirects /account to /login without a session and sets no cookie', async () => {
      const r = await get(app, new Jar(), '/account');
      expect(r.status).toBe(302);
      expect(r.location).toBe('/login');
      expect(r.setCookies).toEqual([]);
      const me = await get(app, new Jar(), '/api/me');
      expect(me.status).toBe(401);
      expect(JSON.parse(me.body)).toEqual({ authenticated: false });
    });

    it('keeps users apart', async () => {
      const jar = new Jar();
      expect((await post(app, jar, '/login', { username: 'bob', password: 'pw-bob' })).location).toBe(
        '/account',
      );
      expect((await get(app, jar, '/account')).body).toBe('hello bob');
      expect((await post(app, new Jar(), '/login', { username: 'bob', password: 'pw-alice' })).location).toBe(
        '/login?error=1',
      );
    });

    it('logout deletes the cookie, but the old signed value would still be accepted', async () => {
      const jar = new Jar();
      await post(app, jar, '/login', { username: 'alice', password: 'pw-alice' });
      const before = jar.get('sessionid')!;
      const r = await post(app, jar, '/logout');
      expect(r.status).toBe(302);
      expect(r.location).toBe('/login');
      const c = r.setCookie('sessionid');
      expect(c?.value).toBe('');
      expect(c?.expired).toBe(true);
      expect(jar.get('sessionid')).toBeUndefined();
      expect((await get(app, jar, '/account')).location).toBe('/login');
      // Replaying the pre-logout cookie: Django has no server-side record to delete, so it still works.
      const replay = await get(app, new Jar({ sessionid: before }), '/account');
      expect(replay.status).toBe(200);
      expect(replay.body).toBe('hello alice');
    });
  },
);

describe.skipIf(!needTool('PHP', 'php-cli', havePhp()))(
  'PHP test app (native sessions, id regenerated on every /account)',
  () => {
    let app: RunningApp;
    beforeAll(async () => {
      app = await startPhpApp();
    });
    afterAll(async () => {
      await app?.close();
    });

    it('redirects a failed login to /login.php?error=1 and still sets PHPSESSID', async () => {
      const jar = new Jar();
      const r = await post(app, jar, '/login.php', { username: 'alice', password: 'wrong' });
      expect(r.status).toBe(302);
      expect(r.location).toBe('/login.php?error=1');
      expect(r.setCookie('PHPSESSID')?.value).toMatch(/^[a-z0-9,-]{20,}$/i);
      expect((await get(app, jar, '/account.php')).location).toBe('/login.php');
    });

    it('logs in with a new id, then rotates PHPSESSID on every /account.php and kills the old id', async () => {
      const jar = new Jar();
      await post(app, jar, '/login.php', { username: 'alice', password: 'wrong' });
      const anonymous = jar.get('PHPSESSID');
      const login = await post(app, jar, '/login.php', { username: 'alice', password: 'pw-alice' });
      expect(login.status).toBe(302);
      expect(login.location).toBe('/account.php');
      const first = login.setCookie('PHPSESSID')?.value;
      expect(first).toBeTruthy();
      expect(first).not.toBe(anonymous);

      let prev = first!;
      for (let i = 0; i < 3; i++) {
        const r = await get(app, jar, '/account.php');
        expect(r.status).toBe(200);
        expect(r.body).toBe('hello alice');
        const next = r.setCookie('PHPSESSID')?.value;
        expect(next).toBeTruthy();
        expect(next).not.toBe(prev);
        // The previous id was destroyed: it is no longer a session.
        const stale = await get(app, new Jar({ PHPSESSID: prev }), '/account.php');
        expect(stale.status).toBe(302);
        expect(stale.location).toBe('/login.php');
        // Strict mode: PHP does not adopt the unknown id, it hands out a fresh one.
        expect(stale.setCookie('PHPSESSID')?.value).not.toBe(prev);
        prev = next!;
      }
      expect((await get(app, jar, '/account.php')).body).toBe('hello alice');
    });

    it('keeps users apart and 404s anything but the pages', async () => {
      const jar = new Jar();
      await post(app, jar, '/login.php', { username: 'bob', password: 'pw-bob' });
      expect((await get(app, jar, '/account.php')).body).toBe('hello bob');
      expect((await get(app, new Jar(), '/common.php')).status).toBe(404);
    });

    it('logout destroys the session and expires the cookie', async () => {
      const jar = new Jar();
      await post(app, jar, '/login.php', { username: 'alice', password: 'pw-alice' });
      await get(app, jar, '/account.php');
      const before = jar.get('PHPSESSID')!;
      const r = await post(app, jar, '/logout.php');
      expect(r.status).toBe(302);
      expect(r.location).toBe('/login.php');
      const c = r.setCookie('PHPSESSID');
      expect(c?.expired).toBe(true);
      expect(jar.get('PHPSESSID')).toBeUndefined();
      expect((await get(app, new Jar({ PHPSESSID: before }), '/account.php')).location).toBe('/login.php');
    });
  },
);

describe.skipIf(!needTool('Flask-Login', 'python3-flask-login', haveFlask()))(
  'Flask + Flask-Login test app (cookie session + remember-me)',
  () => {
    let app: RunningApp;
    beforeAll(async () => {
      app = await startFlaskApp();
    });
    afterAll(async () => {
      await app?.close();
    });

    it('redirects a failed login to /login?error=1 with a session cookie and no remember_token', async () => {
      const jar = new Jar();
      const r = await post(app, jar, '/login', { username: 'alice', password: 'wrong', remember: '1' });
      expect(r.status).toBe(302);
      expect(r.location).toBe('/login?error=1');
      expect(r.setCookie('session')?.value).toBeTruthy();
      expect(r.setCookie('remember_token')).toBeUndefined();
      expect((await get(app, jar, '/account')).location).toBe('/login');
    });

    it('sets session and remember_token on login with remember=1', async () => {
      const jar = new Jar();
      const r = await post(app, jar, '/login', { username: 'alice', password: 'pw-alice', remember: '1' });
      expect(r.status).toBe(302);
      expect(r.location).toBe('/account');
      expect(r.setCookie('session')?.value).toBeTruthy();
      const remember = r.setCookie('remember_token');
      expect(remember?.value).toMatch(/^alice\|[0-9a-f]+$/);
      expect(remember?.attrs['expires']).toBeDefined();

      const account = await get(app, jar, '/account');
      expect(account.status).toBe(200);
      expect(account.body).toBe('hello alice');
      // Flask re-sends its session cookie only when the session changed.
      expect(account.setCookies).toEqual([]);
    });

    it('sets no remember_token without remember=1', async () => {
      const jar = new Jar();
      const r = await post(app, jar, '/login', { username: 'bob', password: 'pw-bob' });
      expect(r.location).toBe('/account');
      expect(r.setCookie('session')).toBeDefined();
      expect(r.setCookie('remember_token')).toBeUndefined();
      expect((await get(app, jar, '/account')).body).toBe('hello bob');
    });

    it('re-creates a session from remember_token alone', async () => {
      const login = new Jar();
      await post(app, login, '/login', { username: 'alice', password: 'pw-alice', remember: '1' });
      const token = login.get('remember_token')!;

      const jar = new Jar({ remember_token: token });
      const r = await get(app, jar, '/account');
      expect(r.status).toBe(200);
      expect(r.body).toBe('hello alice');
      const session = r.setCookie('session')?.value;
      expect(session).toBeTruthy();
      expect(session).not.toBe(login.get('session'));

      // The new session cookie works on its own, as a non-fresh login.
      const me = await get(app, new Jar({ session: session! }), '/api/me');
      expect(me.status).toBe(200);
      expect(JSON.parse(me.body)).toEqual({ authenticated: true, username: 'alice', fresh: false });
    });

    it('logout clears both cookies; the old values are still accepted if replayed', async () => {
      const jar = new Jar();
      await post(app, jar, '/login', { username: 'alice', password: 'pw-alice', remember: '1' });
      const before = { session: jar.get('session')!, remember_token: jar.get('remember_token')! };
      const r = await post(app, jar, '/logout');
      expect(r.status).toBe(302);
      expect(r.location).toBe('/login');
      expect(r.setCookie('remember_token')?.expired).toBe(true);
      expect(r.setCookie('session')?.expired).toBe(true);
      expect(jar.cookies.size).toBe(0);
      expect((await get(app, jar, '/account')).location).toBe('/login');
      // Neither cookie is backed by server state, so replaying either one logs alice back in.
      expect((await get(app, new Jar({ session: before.session }), '/account')).body).toBe('hello alice');
      expect((await get(app, new Jar({ remember_token: before.remember_token }), '/account')).body).toBe(
        'hello alice',
      );
    });
  },
);
