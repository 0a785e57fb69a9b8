/**
 * Real apps of real stacks behind the gateway, using their frameworks' own session machinery:
 * Django signed-cookie sessions (the cookie rotates on every response, old values stay valid), PHP
 * native sessions with session_regenerate_id(true) on every request, Flask-Login with remember-me.
 */
import { needTool } from '../support/tools.js';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import {
  haveDjango,
  haveFlask,
  havePhp,
  startDjangoApp,
  startFlaskApp,
  startPhpApp,
} from '../support/apps.js';
import type { RunningApp } from '../support/running-app.js';
import { startGateway } from '../support/gateway.js';
import { CookieJar } from '../support/jar.js';
import { haveRedis, startRedis, type RedisHandle } from '../support/redis.js';
import { waitUntil } from '../support/wait.js';

/** The tests on two replicas also need a redis-server. */
const redisServer = needTool('redis-server', 'redis-server', haveRedis());

/**
 * Signed-cookie stores put a timestamp of whole seconds in the cookie: two logins of one user within
 * the same second get the identical value, which is (rightly) the same session. Wait for the next second.
 */
async function nextSecond(): Promise<void> {
  await new Promise((r) => setTimeout(r, 1001 - (Date.now() % 1000)));
}

async function body(res: Response): Promise<Record<string, unknown>> {
  return (await res.json()) as Record<string, unknown>;
}

describe.skipIf(!needTool('Django', 'python3-django', haveDjango()))(
  'Django with signed-cookie sessions',
  () => {
    let app: RunningApp;
    beforeAll(async () => void (app = await startDjangoApp()), 30_000);
    afterAll(() => app.close());
    const config = {
      login: [
        {
          match: 'POST /login',
          token: 'cookie:sessionid',
          user: 'request.form:username',
          success: { status: 302, location: '/account' },
        },
      ],
      logout: [{ match: 'POST /logout' }],
      tokens: ['cookie:sessionid'],
      sessions: { unknownTokens: 'reject' as const },
    };

    it('keeps the current user signed in while the cookie rotates on every page', async () => {
      const { url } = await startGateway({ upstream: app.url, ...config });
      const browser = new CookieJar();
      expect(
        (await browser.fetch(`${url}/login`, { form: { username: 'alice', password: 'pw-alice' } })).status,
      ).toBe(302);
      const seen = new Set<string>();
      for (let i = 0; i < 5; i++) {
        const res = await browser.fetch(`${url}/account`);
        expect(res.status).toBe(200);
        seen.add(browser.cookies.get('sessionid') as string);
      }
      expect(seen.size).toBe(5);
    });

    it('rejects every value of the superseded browser, old and rotated', async () => {
      const { url } = await startGateway({ upstream: app.url, ...config });
      const a = new CookieJar();
      await a.fetch(`${url}/login`, { form: { username: 'alice', password: 'pw-alice' } });
      const loginValue = a.cookies.get('sessionid') as string;
      await a.fetch(`${url}/account`);
      await a.fetch(`${url}/account`);
      await nextSecond();
      const b = new CookieJar();
      await b.fetch(`${url}/login`, { form: { username: 'alice', password: 'pw-alice' } });
      expect((await b.fetch(`${url}/account`)).status).toBe(200);
      const rotated = await a.fetch(`${url}/account`);
      expect(rotated.status).toBe(401);
      expect(await body(rotated)).toMatchObject({ error: 'session_superseded' });
      const old = await fetch(`${url}/account`, {
        headers: { cookie: `sessionid=${loginValue}`, accept: 'application/json' },
        redirect: 'manual',
      });
      expect(old.status).toBe(401);
      expect(await body(old)).toMatchObject({ error: 'session_superseded' });
      // The app itself would still accept that old value: only the gateway stops it.
      const direct = await fetch(`${app.url}/account`, {
        headers: { cookie: `sessionid=${loginValue}` },
        redirect: 'manual',
      });
      expect(direct.status).toBe(200);
    });

    it('ends the session at logout although the old value stays valid at the app', async () => {
      const { url } = await startGateway({ upstream: app.url, ...config });
      const a = new CookieJar();
      await a.fetch(`${url}/login`, { form: { username: 'bob', password: 'pw-bob' } });
      await a.fetch(`${url}/account`);
      const before = a.cookies.get('sessionid') as string;
      await a.fetch(`${url}/logout`, { form: {} });
      const res = await fetch(`${url}/account`, {
        headers: { cookie: `sessionid=${before}`, accept: 'application/json' },
        redirect: 'manual',
      });
      expect(res.status).toBe(401);
      expect(await body(res)).toMatchObject({ error: 'session_logged_out' });
    });

    it('ends the session when a response only clears the cookie, without a logout rule', async () => {
      const { url } = await startGateway({ upstream: app.url, ...config, logout: [] });
      const a = new CookieJar();
      await a.fetch(`${url}/login`, { form: { username: 'bob', password: 'pw-bob' } });
      await a.fetch(`${url}/account`);
      const before = a.cookies.get('sessionid') as string;
      const out = await a.fetch(`${url}/logout`, { form: {} });
      expect(
        out.headers.getSetCookie().some((c) => c.startsWith('sessionid=""') || c.startsWith('sessionid=;')),
      ).toBe(true);
      const res = await fetch(`${url}/account`, {
        headers: { cookie: `sessionid=${before}`, accept: 'application/json' },
        redirect: 'manual',
      });
      expect(res.status).toBe(401);
      expect(await body(res)).toMatchObject({ error: 'session_logged_out' });
    });

    it('does not end a live session on a failed login that sends a fresh cookie', async () => {
      const { url } = await startGateway({ upstream: app.url, ...config });
      const a = new CookieJar();
      await a.fetch(`${url}/login`, { form: { username: 'alice', password: 'pw-alice' } });
      const attacker = new CookieJar();
      const failed = await attacker.fetch(`${url}/login`, { form: { username: 'alice', password: 'wrong' } });
      expect(failed.headers.get('location')).toContain('error');
      expect(attacker.cookies.has('sessionid')).toBe(true);
      expect((await a.fetch(`${url}/account`)).status).toBe(200);
    });
  },
);

describe.skipIf(!needTool('PHP', 'php-cli', havePhp()))(
  'PHP sessions with session_regenerate_id on every request',
  () => {
    let app: RunningApp;
    beforeAll(async () => void (app = await startPhpApp()), 30_000);
    afterAll(() => app.close());
    const config = {
      login: [
        {
          match: 'POST /login.php',
          token: 'cookie:PHPSESSID',
          user: 'request.form:username',
          success: { status: 302, location: '/account.php' },
        },
      ],
      logout: [{ match: 'POST /logout.php' }],
      tokens: ['cookie:PHPSESSID'],
      sessions: { unknownTokens: 'reject' as const },
    };

    it('follows the regenerated id, then rejects the superseded browser', async () => {
      const { url } = await startGateway({ upstream: app.url, ...config });
      const a = new CookieJar();
      await a.fetch(`${url}/login.php`, { form: { username: 'alice', password: 'pw-alice' } });
      for (let i = 0; i < 3; i++) expect((await a.fetch(`${url}/account.php`)).status).toBe(200);
      const b = new CookieJar();
      await b.fetch(`${url}/login.php`, { form: { username: 'alice', password: 'pw-alice' } });
      expect((await b.fetch(`${url}/account.php`)).status).toBe(200);
      const res = await a.fetch(`${url}/account.php`);
      expect(res.status).toBe(401);
      expect(await body(res)).toMatchObject({ error: 'session_superseded' });
    });

    it('ends the session at logout', async () => {
      const { url } = await startGateway({ upstream: app.url, ...config });
      const a = new CookieJar();
      await a.fetch(`${url}/login.php`, { form: { username: 'bob', password: 'pw-bob' } });
      await a.fetch(`${url}/account.php`);
      const sid = a.cookies.get('PHPSESSID') as string;
      await a.fetch(`${url}/logout.php`, { form: {} });
      const res = await fetch(`${url}/account.php`, {
        headers: { cookie: `PHPSESSID=${sid}`, accept: 'application/json' },
        redirect: 'manual',
      });
      expect(res.status).toBe(401);
      expect(await body(res)).toMatchObject({ error: 'session_logged_out' });
    });
  },
);

describe.skipIf(!needTool('Flask-Login', 'python3-flask-login', haveFlask()))(
  'Flask-Login with remember-me',
  () => {
    let app: RunningApp;
    beforeAll(async () => void (app = await startFlaskApp()), 30_000);
    afterAll(() => app.close());
    const config = {
      login: [
        {
          match: 'POST /login',
          token: ['cookie:session', 'cookie:remember_token'],
          user: 'request.form:username',
          success: { status: 302, location: '/account' },
        },
      ],
      logout: [{ match: 'POST /logout' }],
      tokens: ['cookie:session', 'cookie:remember_token'],
      sessions: { unknownTokens: 'reject' as const },
    };

    it('links a session re-created from the remember-me cookie to the same session', async () => {
      const { url, gateway } = await startGateway({ upstream: app.url, ...config });
      const a = new CookieJar();
      await a.fetch(`${url}/login`, { form: { username: 'alice', password: 'pw-alice', remember: '1' } });
      expect(a.cookies.has('remember_token')).toBe(true);
      a.cookies.delete('session'); // the browser was closed: only the persistent cookie is left
      const res = await a.fetch(`${url}/account`);
      expect(res.status).toBe(200);
      expect(a.cookies.has('session')).toBe(true);
      expect((await a.fetch(`${url}/account`)).status).toBe(200);
      expect(await gateway.sessions.listSessions('alice')).toHaveLength(1);
    });

    it('refuses a superseded device coming back with its remember-me cookie', async () => {
      const { url } = await startGateway({ upstream: app.url, ...config });
      const a = new CookieJar();
      await a.fetch(`${url}/login`, { form: { username: 'alice', password: 'pw-alice', remember: '1' } });
      const b = new CookieJar();
      await b.fetch(`${url}/login`, { form: { username: 'alice', password: 'pw-alice', remember: '1' } });
      expect((await b.fetch(`${url}/account`)).status).toBe(200);
      a.cookies.delete('session');
      const remembered = a.header();
      const res = await a.fetch(`${url}/account`);
      expect(res.status).toBe(401);
      expect(await body(res)).toMatchObject({ error: 'session_superseded' });
      // The app alone would have signed it back in.
      const direct = await fetch(`${app.url}/account`, {
        headers: { cookie: remembered },
        redirect: 'manual',
      });
      expect(direct.status).toBe(200);
    });

    it.skipIf(!redisServer)(
      'refuses on replica B a device superseded through replica A, even with only its remember-me cookie',
      async () => {
        const redis = await startRedis();
        onTestFinished(() => redis.stop());
        const shared = { upstream: app.url, ...config, store: { url: redis.url, pingInterval: '200ms' } };
        const a = await startGateway(shared);
        const b = await startGateway(shared);
        await waitUntil('ready', () => a.gateway.isReady() && b.gateway.isReady());
        const phone = new CookieJar();
        await phone.fetch(`${a.url}/login`, {
          form: { username: 'alice', password: 'pw-alice', remember: '1' },
        });
        phone.cookies.delete('session'); // only the persistent cookie is left
        expect((await phone.clone().fetch(`${b.url}/account`)).status).toBe(200); // B signs it back in
        const laptop = new CookieJar();
        await laptop.fetch(`${a.url}/login`, {
          form: { username: 'alice', password: 'pw-alice', remember: '1' },
        });
        const res = await phone.fetch(`${b.url}/account`);
        expect(res.status).toBe(401);
        expect(await body(res)).toMatchObject({ error: 'session_superseded' });
        expect((await laptop.fetch(`${b.url}/account`)).status).toBe(200);
      },
    );
  },
);

describe.skipIf(!needTool('PHP', 'php-cli', havePhp()) || !redisServer)(
  'PHP behind two replicas on Redis',
  () => {
    let app: RunningApp;
    let redis: RedisHandle;
    beforeAll(async () => {
      app = await startPhpApp();
      redis = await startRedis();
    }, 30_000);
    afterAll(async () => {
      await app.close();
      await redis.stop();
    });

    it('follows the regenerated id across replicas and rejects the superseded browser on both', async () => {
      const config = {
        login: [
          {
            match: 'POST /login.php',
            token: 'cookie:PHPSESSID',
            user: 'request.form:username',
            success: { status: 302, location: '/account.php' },
          },
        ],
        tokens: ['cookie:PHPSESSID'],
        sessions: { unknownTokens: 'reject' as const },
        store: { url: redis.url, pingInterval: '200ms' },
      };
      const a = await startGateway({ upstream: app.url, ...config });
      const b = await startGateway({ upstream: app.url, ...config });
      await waitUntil('ready', () => a.gateway.isReady() && b.gateway.isReady());
      const phone = new CookieJar();
      await phone.fetch(`${a.url}/login.php`, { form: { username: 'alice', password: 'pw-alice' } });
      for (const gw of [a, b, a, b]) expect((await phone.fetch(`${gw.url}/account.php`)).status).toBe(200);
      const laptop = new CookieJar();
      await laptop.fetch(`${b.url}/login.php`, { form: { username: 'alice', password: 'pw-alice' } });
      const stale = phone.clone();
      for (const gw of [a, b]) {
        const res = await stale.clone().fetch(`${gw.url}/account.php`);
        expect(res.status).toBe(401);
        expect(await body(res)).toMatchObject({ error: 'session_superseded' });
      }
      expect((await laptop.fetch(`${a.url}/account.php`)).status).toBe(200);
    });
  },
);
