/**
 * The gateway in front of a real Rails 6.1 app (test/apps/rails/config.ru, launched by test/support/rails.ts):
 * Rails' cookie store sets `_app_session` on the anonymous login page (it carries the CSRF secret), re-encrypts
 * it on every response that reads the session, and accepts every value it ever issued; `remember_token` logs a
 * browser back in. Under `unknownTokens: reject` the gateway must let anonymous values through, follow the
 * rotation, keep remember-me with its session, and refuse every value a superseded or logged-out browser held.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningApp } from '../support/running-app.js';
import { startGateway, type TestGateway } from '../support/gateway.js';
import { waitUntil } from '../support/wait.js';
import { CookieJar } from '../support/jar.js';
import { haveRails, skipWithout, startRailsApp } from '../support/rails.js';
import { haveRedis, startRedis, type RedisHandle } from '../support/redis.js';
import { needTool } from '../support/tools.js';

/** The replica suite also needs a redis-server. */
const redisServer = needTool('redis-server', 'redis-server', haveRedis());

const SESSION = '_app_session';
const REMEMBER = 'remember_token';

/**
 * The gateway config under test. Rails redirects to an absolute `http://<host>/account`; `success.location`
 * also matches the path of an absolute Location, so `/account` suffices (an `http` prefix would accept any
 * absolute redirect, `/login` included).
 */
const CONFIG = {
  tokens: [`cookie:${SESSION}`, `cookie:${REMEMBER}`],
  sessions: { unknownTokens: 'reject' as const },
  protect: { paths: ['/**'], except: ['/assets/**', '/favicon.ico'] },
  login: [
    {
      match: 'POST /login',
      token: [`cookie:${SESSION}`, `cookie:${REMEMBER}`],
      user: 'request.form:username',
      success: { status: 302, location: '/account' },
    },
  ],
  logout: [{ match: 'DELETE /logout' }, { match: 'POST /logout', when: { form: { _method: 'delete' } } }],
};

/**
 * A cached "live" is trusted for `cache.maxStaleness` (1 s by default). Where a test asks whether the gateway
 * refuses a value at once, a long bound makes the answer depend on what the gateway knows, not on timing.
 */
const NO_EXPIRY = { maxStaleness: '1m' };

/** The CSRF token of the first form in a page (Rails' hidden `authenticity_token` field). */
function csrfToken(html: string): string {
  const m = /name="authenticity_token" value="([^"]+)"/.exec(html);
  if (!m?.[1]) throw new Error(`no authenticity_token in:\n${html}`);
  return m[1];
}

/** The `error` code of a gateway rejection (the jar asks for JSON). */
async function errorOf(res: Response): Promise<unknown> {
  return ((await res.json()) as { error?: unknown }).error;
}

/** A browser holding exactly these cookie values, as a replaying client would. */
function jarWith(cookies: Record<string, string>): CookieJar {
  const jar = new CookieJar();
  for (const [k, v] of Object.entries(cookies)) jar.cookies.set(k, v);
  return jar;
}

/** A cookie value the jar holds (the test fails if it holds none). */
function held(jar: CookieJar, name: string): string {
  const v = jar.cookies.get(name);
  if (v === undefined) throw new Error(`the jar holds no ${name}`);
  return v;
}

/** GET /login: the page's CSRF token; the jar keeps the anonymous `_app_session` it sets. */
async function openLoginPage(jar: CookieJar, origin: string): Promise<string> {
  const page = await jar.fetch(`${origin}/login`);
  expect(page.status).toBe(200);
  return csrfToken(await page.text());
}

/** The login form posted with the CSRF token of a fresh login page, as a browser does. */
async function logIn(
  jar: CookieJar,
  origin: string,
  user: string,
  extra: Record<string, string> = {},
): Promise<Response> {
  const token = await openLoginPage(jar, origin);
  const res = await jar.fetch(`${origin}/login`, {
    form: { authenticity_token: token, username: user, password: 'demo', ...extra },
  });
  await res.arrayBuffer();
  return res;
}

/** GET / (the route that writes the session on every request): its status, body and the value the jar then holds. */
async function rotate(
  jar: CookieJar,
  origin: string,
): Promise<{ status: number; body: string; value: string }> {
  const res = await jar.fetch(`${origin}/`);
  const body = await res.text();
  return { status: res.status, body, value: held(jar, SESSION) };
}

/**
 * Alice logs in on a phone (cap: two rotated values besides the login's), GET / rotates five times, then
 * she logs in on a laptop. `listed`: the values the session still lists (the login's, pinned, and the two
 * newest); `dropped`: the three that fell out of the list.
 */
async function supersededAfterFiveRotations(
  origins: readonly string[],
): Promise<{ listed: string[]; dropped: string[]; laptop: CookieJar }> {
  const phone = new CookieJar();
  await logIn(phone, origins[0] ?? '', 'alice');
  const values = [held(phone, SESSION)];
  for (let i = 0; i < 5; i++) {
    const r = await rotate(phone, origins[(i + 1) % origins.length] ?? '');
    expect(r.status).toBe(200);
    values.push(r.value);
  }
  const laptop = new CookieJar();
  expect((await logIn(laptop, origins[0] ?? '', 'alice')).status).toBe(302);
  return {
    listed: values.filter((_, i) => i === 0 || i >= 4),
    dropped: values.slice(1, 4),
    laptop,
  };
}

/** The values among `values` that `origin` refuses with 401 session_superseded. */
async function supersededAt(origin: string, values: readonly string[]): Promise<string[]> {
  const refused: string[] = [];
  for (const v of values) {
    const res = await jarWith({ [SESSION]: v }).fetch(`${origin}/account`);
    if (res.status !== 401) await res.arrayBuffer();
    else if ((await errorOf(res)) === 'session_superseded') refused.push(v);
  }
  return refused;
}

/** Waits until the superseding login's invalidation reached `origin` (pub/sub is asynchronous). */
async function invalidationArrived(origin: string, value: string): Promise<void> {
  await waitUntil('the dead session cookie to be rejected', async () => {
    const res = await jarWith({ [SESSION]: value }).fetch(`${origin}/account`);
    await res.arrayBuffer();
    return res.status === 401 ? true : undefined;
  });
}

describe.skipIf(skipWithout(haveRails(), 'Ruby on Rails', 'ruby-rails'))(
  'Rails (cookie store, CSRF, remember-me) behind the gateway',
  () => {
    let app: RunningApp;
    beforeAll(async () => {
      app = await startRailsApp();
    });
    afterAll(async () => {
      await app?.close();
    });

    const gateway = (
      sessions: Record<string, unknown> = {},
      extra: Record<string, unknown> = {},
    ): Promise<TestGateway> =>
      startGateway({ upstream: app.url, ...CONFIG, ...extra, sessions: { ...CONFIG.sessions, ...sessions } });

    describe('anonymous cookies under unknownTokens: reject', () => {
      it('lets the login page cookie through to the assets, a protected page and the login', async () => {
        const gw = await gateway();
        const browser = new CookieJar();
        const token = await openLoginPage(browser, gw.url);
        expect(browser.cookies.has(SESSION)).toBe(true);

        const css = await browser.fetch(`${gw.url}/assets/app.css`);
        expect(css.status).toBe(200);
        expect(await css.text()).toBe('body { margin: 0 }\n');
        // A protected page that rotates the anonymous cookie: the new value passes too.
        const home = await rotate(browser, gw.url);
        expect(home).toMatchObject({ status: 200, body: 'views 1' });

        const login = await browser.fetch(`${gw.url}/login`, {
          form: { authenticity_token: token, username: 'alice', password: 'demo' },
        });
        expect(login.status).toBe(302);
        expect(new URL(login.headers.get('location') ?? '', gw.url).pathname).toBe('/account');
        expect(await (await browser.fetch(`${gw.url}/account`)).text()).toContain('account of alice');
      });

      it('refuses a cookie value the app never issued with 401 session_unknown', async () => {
        const gw = await gateway();
        const forged = jarWith({ [SESSION]: randomBytes(48).toString('base64url') });
        const res = await forged.fetch(`${gw.url}/`);
        expect(res.status).toBe(401);
        expect(await errorOf(res)).toBe('session_unknown');
      });
    });

    describe('rotation', () => {
      it('follows the rotated cookie: every GET / sets a new value, and the newest works', async () => {
        const gw = await gateway({ maxTokensPerSession: 2 });
        const browser = new CookieJar();
        expect((await logIn(browser, gw.url, 'alice')).status).toBe(302);
        const values = [held(browser, SESSION)];
        for (let i = 1; i <= 5; i++) {
          const r = await rotate(browser, gw.url);
          expect(r).toMatchObject({ status: 200, body: `views ${i}` });
          values.push(r.value);
        }
        expect(new Set(values).size).toBe(values.length);
        const newest = await jarWith({ [SESSION]: values.at(-1) ?? '' }).fetch(`${gw.url}/account`);
        expect(newest.status).toBe(200);
        expect(await newest.text()).toContain('account of alice');
      });

      it('refuses the login value and the listed rotated values of a superseded browser, which Rails still accepts', async () => {
        const gw = await gateway({ maxTokensPerSession: 2 }, { cache: NO_EXPIRY });
        const { listed, laptop } = await supersededAfterFiveRotations([gw.url]);
        expect(await supersededAt(gw.url, listed)).toEqual(listed);
        expect((await laptop.fetch(`${gw.url}/account`)).status).toBe(200);
        // Rails alone still honours the login value.
        const direct = await jarWith({ [SESSION]: listed[0] ?? '' }).fetch(`${app.url}/account`);
        expect(direct.status).toBe(200);
        expect(await direct.text()).toContain('account of alice');
      });

      // Values dropped from the capped list are cached under their session and end with it.
      it('refuses the values that fell out of the capped list at once, which Rails still accepts', async () => {
        const gw = await gateway({ maxTokensPerSession: 2 }, { cache: NO_EXPIRY });
        const { dropped } = await supersededAfterFiveRotations([gw.url]);
        const direct = await jarWith({ [SESSION]: dropped[0] ?? '' }).fetch(`${app.url}/account`);
        expect(await direct.text()).toContain('account of alice');
        expect(await supersededAt(gw.url, dropped)).toEqual(dropped);
      });
    });

    describe('remember-me', () => {
      it('keeps remember_token with its session through rotation, and links the session Rails re-creates from it', async () => {
        const gw = await gateway({ maxTokensPerSession: 2 });
        const phone = new CookieJar();
        expect((await logIn(phone, gw.url, 'alice', { remember: '1' })).status).toBe(302);
        const remember = held(phone, REMEMBER);
        for (let i = 0; i < 4; i++) expect((await rotate(phone, gw.url)).status).toBe(200);

        // The browser session cookie is gone (browser restarted): Rails logs in from remember_token.
        phone.cookies.delete(SESSION);
        const back = await phone.fetch(`${gw.url}/account`);
        expect(back.status).toBe(200);
        expect(await back.text()).toContain('account of alice');
        const recreated = held(phone, SESSION);
        expect(held(phone, REMEMBER)).toBe(remember);

        const laptop = new CookieJar();
        expect((await logIn(laptop, gw.url, 'alice')).status).toBe(302);
        const alone: Record<string, string>[] = [{ [REMEMBER]: remember }, { [SESSION]: recreated }];
        for (const cookies of alone) {
          const res = await jarWith(cookies).fetch(`${gw.url}/account`);
          expect(res.status).toBe(401);
          expect(await errorOf(res)).toBe('session_superseded');
        }
      });
    });

    describe('protect.except', () => {
      /** A browser whose session another login superseded, holding its last value. */
      async function superseded(gw: TestGateway): Promise<CookieJar> {
        const phone = new CookieJar();
        await logIn(phone, gw.url, 'alice');
        await rotate(phone, gw.url);
        await logIn(new CookieJar(), gw.url, 'alice');
        return phone;
      }

      it('serves an excluded asset to a superseded cookie', async () => {
        const gw = await gateway();
        const phone = await superseded(gw);
        const css = await phone.fetch(`${gw.url}/assets/app.css`);
        expect(css.status).toBe(200);
        expect(await css.text()).toBe('body { margin: 0 }\n');
      });

      it('refuses a superseded cookie on /projects.json and /projects/1 (suffix and rest covered by /**)', async () => {
        const gw = await gateway();
        const phone = await superseded(gw);
        for (const path of ['/projects.json', '/projects/1']) {
          const res = await phone.clone().fetch(`${gw.url}${path}`);
          expect(res.status, path).toBe(401);
          expect(await errorOf(res), path).toBe('session_superseded');
        }
      });
    });

    describe('logout', () => {
      /** Logs a browser out with the page's button: POST /logout with `_method=delete` and its CSRF token. */
      async function logOutWithButton(gw: TestGateway, browser: CookieJar): Promise<Response> {
        const page = await browser.fetch(`${gw.url}/account`);
        const token = csrfToken(await page.text());
        const res = await browser.fetch(`${gw.url}/logout`, {
          form: { _method: 'delete', authenticity_token: token },
        });
        await res.arrayBuffer();
        return res;
      }

      it('ends the session at POST /logout with _method=delete: the old cookie is refused session_logged_out', async () => {
        const gw = await gateway();
        const browser = new CookieJar();
        await logIn(browser, gw.url, 'alice');
        await rotate(browser, gw.url);
        const copied = held(browser, SESSION);

        const out = await logOutWithButton(gw, browser);
        expect(out.status).toBe(302);
        expect(new URL(out.headers.get('location') ?? '', gw.url).pathname).toBe('/login');
        const res = await jarWith({ [SESSION]: copied }).fetch(`${gw.url}/account`);
        expect(res.status).toBe(401);
        expect(await errorOf(res)).toBe('session_logged_out');
        // Rails alone still honours the copy.
        expect((await jarWith({ [SESSION]: copied }).fetch(`${app.url}/account`)).status).toBe(200);
      });

      it('ends the session at a real DELETE /logout', async () => {
        const gw = await gateway();
        const browser = new CookieJar();
        await logIn(browser, gw.url, 'alice');
        const page = await browser.fetch(`${gw.url}/account`);
        const token = csrfToken(await page.text());
        const copied = held(browser, SESSION);
        const out = await browser.fetch(`${gw.url}/logout`, {
          method: 'DELETE',
          form: { authenticity_token: token },
        });
        expect(out.status).toBe(302);
        const res = await jarWith({ [SESSION]: copied }).fetch(`${gw.url}/account`);
        expect(res.status).toBe(401);
        expect(await errorOf(res)).toBe('session_logged_out');
      });

      // The fresh anonymous _app_session of the logout response is remembered as anonymous.
      it('lets the browser follow the logout redirect to /login with the cookie the logout set', async () => {
        const gw = await gateway();
        const browser = new CookieJar();
        await logIn(browser, gw.url, 'alice');
        const before = held(browser, SESSION);
        await logOutWithButton(gw, browser);
        expect(held(browser, SESSION)).not.toBe(before);
        const page = await browser.fetch(`${gw.url}/login`);
        expect(page.status).toBe(200);
        expect(await page.text()).toContain('authenticity_token');
      });
    });

    describe.skipIf(!redisServer)('two replicas on one Redis', () => {
      let redis: RedisHandle;
      beforeAll(async () => {
        redis = await startRedis();
      });
      afterAll(async () => {
        await redis?.stop();
      });

      async function pair(): Promise<{ a: TestGateway; b: TestGateway }> {
        const store = {
          url: redis.url,
          keyPrefix: `t${randomBytes(4).toString('hex')}:`,
          pingInterval: '200ms',
        };
        const a = await gateway({ maxTokensPerSession: 2 }, { store, cache: NO_EXPIRY });
        const b = await gateway({ maxTokensPerSession: 2 }, { store, cache: NO_EXPIRY });
        await waitUntil('both subscribers', () => a.gateway.isReady() && b.gateway.isReady());
        return { a, b };
      }

      it('lets a login page cookie issued through A through B, up to the login', async () => {
        const { a, b } = await pair();
        const browser = new CookieJar();
        const token = await openLoginPage(browser, a.url);
        expect((await browser.fetch(`${b.url}/assets/app.css`)).status).toBe(200);
        expect(await rotate(browser, b.url)).toMatchObject({ status: 200, body: 'views 1' });
        const login = await browser.fetch(`${b.url}/login`, {
          form: { authenticity_token: token, username: 'alice', password: 'demo' },
        });
        expect(login.status).toBe(302);
        expect((await browser.fetch(`${a.url}/account`)).status).toBe(200);
      });

      it('refuses on B the listed values of a browser superseded through A, rotated on both', async () => {
        const { a, b } = await pair();
        const { listed, laptop } = await supersededAfterFiveRotations([a.url, b.url]);
        await invalidationArrived(b.url, listed[0] ?? '');
        expect(await supersededAt(b.url, listed)).toEqual(listed);
        expect((await laptop.fetch(`${b.url}/account`)).status).toBe(200);
      });

      // B buries every value it cached for the ended session, listed in the message or not.
      it('refuses on B the values that fell out of the capped list, as soon as the listed ones', async () => {
        const { a, b } = await pair();
        const { listed, dropped } = await supersededAfterFiveRotations([a.url, b.url]);
        await invalidationArrived(b.url, listed[0] ?? '');
        expect(await supersededAt(b.url, dropped)).toEqual(dropped);
      });
    });
  },
);
