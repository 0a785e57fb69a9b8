/**
 * Proves that the Rails test app (test/apps/rails/config.ru) behaves as the gateway's tests for issue 12 assume,
 * talking to it directly (no gateway): Rails' cookie store issues `_app_session` on the anonymous login page
 * (it carries the CSRF secret), re-encrypts it on every response that reads the session, and, being stateless,
 * keeps accepting every value it ever issued.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningApp } from './running-app.js';
import { CookieJar } from './jar.js';
import { haveRails, skipWithout, startRailsApp } from './rails.js';

const SESSION = '_app_session';

/** The raw Set-Cookie header for `name` in a response, if any. */
function setCookie(res: Response, name: string): string | undefined {
  return res.headers.getSetCookie().find((c) => c.startsWith(`${name}=`));
}

/** The path a redirect points to (Rails sends absolute URLs). */
function location(app: RunningApp, res: Response): string | null {
  const loc = res.headers.get('location');
  return loc === null ? null : new URL(loc, app.url).pathname;
}

/** The CSRF token of the first form in a page (Rails' hidden `authenticity_token` field). */
function csrfToken(html: string): string {
  const m = /name="authenticity_token" value="([^"]+)"/.exec(html);
  if (!m?.[1]) throw new Error(`no authenticity_token in:\n${html}`);
  return m[1];
}

/** A jar holding a copy of one cookie value, as a replaying client would. */
function jarWith(cookies: Record<string, string>): CookieJar {
  const jar = new CookieJar();
  for (const [k, v] of Object.entries(cookies)) jar.cookies.set(k, v);
  return jar;
}

describe.skipIf(skipWithout(haveRails(), 'Ruby on Rails', 'ruby-rails'))(
  'Rails test app (cookie store, CSRF, remember-me)',
  () => {
    let app: RunningApp;
    beforeAll(async () => {
      app = await startRailsApp();
    });
    afterAll(async () => {
      await app?.close();
    });

    /** GETs /login, then posts its form with the cookie the page set; the jar follows every Set-Cookie. */
    async function logIn(
      jar: CookieJar,
      form: Record<string, string> = {},
    ): Promise<{ res: Response; body: string }> {
      const page = await jar.fetch(`${app.url}/login`);
      const token = csrfToken(await page.text());
      const res = await jar.fetch(`${app.url}/login`, {
        form: { authenticity_token: token, username: 'alice', password: 'demo', ...form },
      });
      return { res, body: await res.text() };
    }

    it('sets an anonymous session cookie on the login page, with a CSRF token in the form', async () => {
      const jar = new CookieJar();
      const res = await jar.fetch(`${app.url}/login`);
      expect(res.status).toBe(200);
      expect(csrfToken(await res.text())).toMatch(/^[\w-]{40,}$/);
      const cookie = setCookie(res, SESSION);
      // A browser-session cookie: no Expires or Max-Age.
      expect(cookie).toMatch(/^_app_session=[^;]+; path=\/; HttpOnly; SameSite=Lax$/);
    });

    it('logs in with the form token and that cookie: 302 /account and a new session cookie value', async () => {
      const jar = new CookieJar();
      const page = await jar.fetch(`${app.url}/login`);
      const token = csrfToken(await page.text());
      const anonymous = jar.cookies.get(SESSION);
      expect(anonymous).toBeDefined();

      const res = await jar.fetch(`${app.url}/login`, {
        form: { authenticity_token: token, username: 'alice', password: 'demo' },
      });
      expect(res.status).toBe(302);
      expect(location(app, res)).toBe('/account');
      expect(setCookie(res, SESSION)).toMatch(/; path=\/; HttpOnly; SameSite=Lax$/);
      expect(jar.cookies.get(SESSION)).not.toBe(anonymous);
      expect(setCookie(res, 'remember_token')).toBeUndefined();
    });

    it('answers /account with the logged-in user', async () => {
      const jar = new CookieJar();
      await logIn(jar);
      const res = await jar.fetch(`${app.url}/account`);
      expect(res.status).toBe(200);
      expect(await res.text()).toContain('<p>account of alice</p>');
    });

    it('answers the project routes with the user, in JSON for .json', async () => {
      const jar = new CookieJar();
      await logIn(jar);
      const list = await jar.fetch(`${app.url}/projects.json`);
      expect(list.status).toBe(200);
      expect(list.headers.get('content-type')).toMatch(/^application\/json/);
      expect(await list.json()).toEqual({ user: 'alice', projects: [{ id: 1, name: 'one' }] });
      const html = await jar.fetch(`${app.url}/projects`);
      expect(await html.text()).toContain('<p>projects of alice</p>');
      const one = await jar.fetch(`${app.url}/projects/1`);
      expect(await one.text()).toContain('<p>project 1 of alice</p>');
    });

    it('redirects to /login without a session', async () => {
      const res = await new CookieJar().fetch(`${app.url}/account`);
      expect(res.status).toBe(302);
      expect(location(app, res)).toBe('/login');
      // Reading an absent session does not create one.
      expect(res.headers.getSetCookie()).toEqual([]);
    });

    it('answers a wrong password with the form again', async () => {
      const jar = new CookieJar();
      const { res, body } = await logIn(jar, { password: 'wrong' });
      expect(res.status).toBe(200);
      expect(body).toMatch(/<p>bad credentials<\/p>\s*<form method="post" action="\/login">/);
      expect(location(app, await jar.fetch(`${app.url}/account`))).toBe('/login');
    });

    it('refuses a login without the CSRF token with 422, setting no cookie', async () => {
      const jar = new CookieJar();
      await (await jar.fetch(`${app.url}/login`)).arrayBuffer();
      const res = await jar.fetch(`${app.url}/login`, { form: { username: 'alice', password: 'demo' } });
      expect(res.status).toBe(422);
      expect(res.headers.getSetCookie()).toEqual([]);
    });

    it('refuses the CSRF token without the anonymous cookie it came with', async () => {
      // The token is checked against the secret in the anonymous _app_session: a gateway that dropped that
      // cookie would break every login.
      const page = await new CookieJar().fetch(`${app.url}/login`);
      const token = csrfToken(await page.text());
      const res = await new CookieJar().fetch(`${app.url}/login`, {
        form: { authenticity_token: token, username: 'alice', password: 'demo' },
      });
      expect(res.status).toBe(422);
    });

    it('rotates the session cookie on every GET / and still accepts the older values', async () => {
      const jar = new CookieJar();
      await logIn(jar);
      const values: string[] = [];
      for (let i = 1; i <= 3; i++) {
        const res = await jar.fetch(`${app.url}/`);
        expect(await res.text()).toBe(`views ${i}`);
        values.push(jar.cookies.get(SESSION) ?? '');
      }
      expect(new Set(values).size).toBe(3);
      // The cookie store keeps no server-side state, so every value it ever issued stays valid (here the first
      // one, holding views=1): Rails cannot retire an old value, so the gateway must decide deliberately which
      // old values of a session it keeps alive and which it kills.
      const replay = jarWith({ [SESSION]: values[0] ?? '' });
      expect(await (await replay.fetch(`${app.url}/`)).text()).toBe('views 2');
      expect(
        await (await jarWith({ [SESSION]: values[0] ?? '' }).fetch(`${app.url}/account`)).text(),
      ).toContain('account of alice');
    });

    it('re-encrypts the cookie on every response that reads the session, even unchanged', async () => {
      const jar = new CookieJar();
      await logIn(jar);
      const first = await jar.fetch(`${app.url}/account`);
      const second = await jar.fetch(`${app.url}/account`);
      await Promise.all([first.arrayBuffer(), second.arrayBuffer()]);
      const a = setCookie(first, SESSION);
      const b = setCookie(second, SESSION);
      expect(a).toBeDefined();
      expect(b).toBeDefined();
      expect(a).not.toBe(b);
    });

    it('sends no session cookie with responses that never read the session (asset, favicon)', async () => {
      const jar = new CookieJar();
      await logIn(jar);
      const css = await jar.fetch(`${app.url}/assets/app.css`);
      expect(css.headers.get('content-type')).toMatch(/^text\/css/);
      expect(await css.text()).toBe('body { margin: 0 }\n');
      expect(css.headers.getSetCookie()).toEqual([]);
      const icon = await jar.fetch(`${app.url}/favicon.ico`);
      expect(icon.headers.get('content-type')).toMatch(/^image\/x-icon/);
      expect((await icon.arrayBuffer()).byteLength).toBe(4);
      expect(icon.headers.getSetCookie()).toEqual([]);
    });

    it('logs in again from remember_token after the session cookie is dropped', async () => {
      const jar = new CookieJar();
      const { res: login } = await logIn(jar, { remember: '1' });
      // cookies.permanent: twenty years.
      expect(setCookie(login, 'remember_token')).toMatch(
        /^remember_token=[\w-]{43}; path=\/; expires=[^;]+ 20\d\d \S+ GMT; HttpOnly; SameSite=Lax$/,
      );
      jar.cookies.delete(SESSION);

      const res = await jar.fetch(`${app.url}/account`);
      expect(res.status).toBe(200);
      expect(await res.text()).toContain('account of alice');
      expect(setCookie(res, SESSION)).toBeDefined();
      expect(setCookie(res, 'remember_token')).toBeUndefined();
      jar.cookies.delete('remember_token');
      expect((await jar.fetch(`${app.url}/account`)).status).toBe(200); // the new session alone suffices
    });

    it('does not log in again without remember-me once the session cookie is dropped', async () => {
      const jar = new CookieJar();
      await logIn(jar);
      jar.cookies.delete(SESSION);
      const res = await jar.fetch(`${app.url}/account`);
      expect(location(app, res)).toBe('/login');
    });

    it('logs out with POST _method=delete: 302 /login, remember_token deleted and forgotten', async () => {
      const jar = new CookieJar();
      await logIn(jar, { remember: '1' });
      const remember = jar.cookies.get('remember_token') ?? '';
      const account = await jar.fetch(`${app.url}/account`);
      const token = csrfToken(await account.text());

      const res = await jar.fetch(`${app.url}/logout`, {
        form: { _method: 'delete', authenticity_token: token },
      });
      expect(res.status).toBe(302);
      expect(location(app, res)).toBe('/login');
      expect(setCookie(res, 'remember_token')).toMatch(
        /^remember_token=; path=\/; max-age=0; expires=Thu, 01 Jan 1970/,
      );
      expect(setCookie(res, SESSION)).toBeDefined();
      expect(location(app, await jar.fetch(`${app.url}/account`))).toBe('/login');
      expect(location(app, await jarWith({ remember_token: remember }).fetch(`${app.url}/account`))).toBe(
        '/login',
      );
    });

    it('logs out with a real DELETE too', async () => {
      const jar = new CookieJar();
      await logIn(jar);
      const token = csrfToken(await (await jar.fetch(`${app.url}/account`)).text());
      const res = await jar.fetch(`${app.url}/logout`, {
        method: 'DELETE',
        form: { authenticity_token: token },
      });
      expect(res.status).toBe(302);
      expect(location(app, res)).toBe('/login');
      expect(location(app, await jar.fetch(`${app.url}/account`))).toBe('/login');
    });

    it('still accepts a session cookie value copied before logout', async () => {
      // Logout only replaces the browser's cookie; the copied value is as valid as ever. Only the gateway can
      // retire it.
      const jar = new CookieJar();
      await logIn(jar);
      const account = await jar.fetch(`${app.url}/account`);
      const token = csrfToken(await account.text());
      const copied = jar.cookies.get(SESSION) ?? '';
      const out = await jar.fetch(`${app.url}/logout`, {
        form: { _method: 'delete', authenticity_token: token },
      });
      expect(location(app, out)).toBe('/login');

      const replay = await jarWith({ [SESSION]: copied }).fetch(`${app.url}/account`);
      expect(replay.status).toBe(200);
      expect(await replay.text()).toContain('account of alice');
    });
  },
);
