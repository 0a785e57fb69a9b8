/**
 * The gateway in front of a real front-controller PHP app (test/apps/php-front/): one index.php serves the
 * login, the account, notes and logout, told apart only by `?action=` in the query or `op` in the form, so
 * the gateway's rules say which requests are logins with `when: { query }` / `when: { form }`. Native PHP
 * sessions (PHPSESSID, regenerated at login) and a rotating REMEMBERME cookie are both tokens of a session.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../../src/config/schema.js';
import { havePhp } from '../support/apps.js';
import type { RunningApp } from '../support/running-app.js';
import { setCookie, startGateway } from '../support/gateway.js';
import { CookieJar } from '../support/jar.js';
import { PHP_FRONT_COUNT_PATH, startPhpFrontApp, toolAvailable } from '../support/php-front.js';

const LOGIN = '/index.php?action=login';
const ACCOUNT = '/index.php?action=account';
const LOGOUT = '/index.php?action=logout';

const LOGIN_RULE = {
  match: 'POST /index.php',
  token: ['cookie:PHPSESSID', 'cookie:REMEMBERME'],
  user: 'request.form:username',
  success: { status: 302, location: ACCOUNT },
};

const FRONT_CONTROLLER: Pick<ConfigInput, 'tokens' | 'login' | 'logout'> = {
  tokens: ['cookie:PHPSESSID', 'cookie:REMEMBERME'],
  login: [
    { ...LOGIN_RULE, when: { query: { action: 'login' } } },
    { ...LOGIN_RULE, when: { form: { op: 'login' } } },
  ],
  logout: [{ match: 'GET,POST /index.php', when: { query: { action: 'logout' } } }],
};

/** The two ways the app takes a login: `?action=login`, or `op=login` in the form of any controller URL. */
const STYLES = {
  'action=login': { target: LOGIN, form: {}, user: 'ann' },
  'op=login': { target: '/index.php', form: { op: 'login' }, user: 'amy' },
} as const;
type Style = keyof typeof STYLES;

/** A browser holding exactly these cookies. */
function browser(cookies: Record<string, string>): CookieJar {
  const jar = new CookieJar();
  for (const [k, v] of Object.entries(cookies)) jar.cookies.set(k, v);
  return jar;
}

/** A request of this browser, its body read (so the response, and any tap behind it, is complete). */
async function send(
  jar: CookieJar,
  url: string,
  form?: Record<string, string>,
  method?: 'GET' | 'POST',
): Promise<{ res: Response; body: string }> {
  const res = await jar.fetch(url, { ...(form && { form }), ...(method && { method }) });
  return { res, body: await res.text() };
}

/** A urlencoded POST of a body as written (a Record cannot repeat a field), from a browser with `cookie`. */
async function postRaw(url: string, body: string, cookie?: string): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      accept: 'application/json',
      ...(cookie !== undefined && { cookie }),
    },
    body,
    redirect: 'manual',
  });
}

/** The `error` code of a JSON error or rejection body. */
async function errorOf(res: Response): Promise<unknown> {
  return ((await res.json()) as { error?: unknown }).error;
}

describe.skipIf(!toolAvailable('php', 'php-cli', havePhp()))(
  'a front-controller PHP app behind the gateway (rules on ?action= and op=)',
  () => {
    let app: RunningApp;
    beforeAll(async () => {
      app = await startPhpFrontApp();
    });
    afterAll(async () => {
      await app?.close();
    });

    /** A gateway of its own for each test (closed when the test ends), in front of the one app. */
    async function gateway(): Promise<string> {
      return (await startGateway({ upstream: app.url, ...FRONT_CONTROLLER })).url;
    }

    /** Requests the app has served, asked of the app itself, not through the gateway. */
    async function appCount(): Promise<number> {
      return Number(await (await fetch(app.url + PHP_FRONT_COUNT_PATH)).text());
    }

    /** A successful login through the gateway in `jar` (a new browser unless given). */
    async function login(
      gw: string,
      username: string,
      opts: { style?: Style; remember?: boolean; jar?: CookieJar } = {},
    ): Promise<CookieJar> {
      const jar = opts.jar ?? new CookieJar();
      const { target, form } = STYLES[opts.style ?? 'action=login'];
      const { res } = await send(jar, gw + target, {
        ...form,
        username,
        password: 'demo',
        ...(opts.remember && { remember: '1' }),
      });
      expect(res.status).toBe(302);
      expect(res.headers.get('location')).toBe(ACCOUNT);
      return jar;
    }

    /** `GET ?action=account` through the gateway with exactly these cookies. */
    function account(gw: string, cookies: Record<string, string>): Promise<{ res: Response; body: string }> {
      return send(browser(cookies), gw + ACCOUNT);
    }

    it.each(Object.keys(STYLES) as Style[])(
      'registers a login by %s: a second login of the user supersedes the first browser',
      async (style) => {
        const gw = await gateway();
        const { user } = STYLES[style];
        const first = await login(gw, user, { style });
        expect((await send(first, gw + ACCOUNT)).body).toBe(`account of ${user}`);

        await login(gw, user, { style });
        const res = await first.fetch(gw + ACCOUNT);
        expect(res.status).toBe(401);
        expect(await errorOf(res)).toBe('session_superseded');
      },
    );

    it('refuses the superseded browser a form POST (op=note) before the app sees it', async () => {
      const gw = await gateway();
      const first = await login(gw, 'ben');
      const dead = first.cookies.get('PHPSESSID') ?? '';
      await login(gw, 'ben');

      const before = await appCount();
      // POST /index.php is also the op=login route: the body is read, op=note is not a login, so checked.
      const { res, body } = await send(browser({ PHPSESSID: dead }), `${gw}/index.php`, {
        op: 'note',
        text: 'still here',
      });
      expect(res.status).toBe(401);
      expect(JSON.parse(body)).toMatchObject({ error: 'session_superseded' });
      expect(await appCount()).toBe(before);
    });

    it('never forwards a dead PHPSESSID to a login: the superseded browser signs in again afresh', async () => {
      const gw = await gateway();
      const first = await login(gw, 'cleo');
      const dead = first.cookies.get('PHPSESSID') ?? '';
      await login(gw, 'cleo');
      // Checked with a copy: a rejection through `first` would clear the cookie from its jar.
      expect((await account(gw, { PHPSESSID: dead })).res.status).toBe(401);

      const again = await send(first, gw + LOGIN, { username: 'cleo', password: 'demo' });
      expect(again.res.status).toBe(302);
      const fresh = setCookie(again.res, 'PHPSESSID') ?? '';
      expect(fresh).not.toBe('');
      expect(fresh).not.toBe(dead);
      expect((await account(gw, { PHPSESSID: fresh })).body).toBe('account of cleo');

      // Had the app received the dead id, that login would have run in its session and
      // session_regenerate_id(true) destroyed it: asked directly, the app still knows it untouched.
      const direct = await fetch(app.url + ACCOUNT, {
        headers: { cookie: `PHPSESSID=${dead}` },
        redirect: 'manual',
      });
      expect(await direct.text()).toBe('account of cleo');
      // The gateway, meanwhile, still refuses it.
      expect((await account(gw, { PHPSESSID: dead })).res.status).toBe(401);
    });

    it('never forwards the dead REMEMBERME to a login either', async () => {
      const gw = await gateway();
      const first = await login(gw, 'cora', { remember: true });
      const dead = {
        sid: first.cookies.get('PHPSESSID') ?? '',
        remember: first.cookies.get('REMEMBERME') ?? '',
      };
      await login(gw, 'cora');

      const again = await postRaw(
        gw + LOGIN,
        'username=cora&password=demo&remember=1',
        `PHPSESSID=${dead.sid}; REMEMBERME=${dead.remember}`,
      );
      expect(again.status).toBe(302);
      await again.arrayBuffer();
      // A login with remember=1 takes (deletes) the REMEMBERME it is sent; never sent it, the app still
      // honours it when asked directly.
      const direct = await fetch(app.url + ACCOUNT, {
        headers: { cookie: `REMEMBERME=${dead.remember}` },
        redirect: 'manual',
      });
      expect(await direct.text()).toBe('account of cora');
    });

    it('refuses a dead REMEMBERME sent beside an anonymous PHPSESSID', async () => {
      const gw = await gateway();
      const first = await login(gw, 'dina', { remember: true });
      const dead = first.cookies.get('REMEMBERME') ?? '';
      await login(gw, 'dina');
      const anonymous = setCookie((await send(new CookieJar(), gw + LOGIN)).res, 'PHPSESSID') ?? '';
      expect(anonymous).not.toBe('');

      // Forwarded, the app logs dina in again from the dead value, under cookies the gateway never linked.
      const revived = await account(gw, { PHPSESSID: anonymous, REMEMBERME: dead });
      expect(revived.res.status).toBe(401);
      expect(JSON.parse(revived.body)).toMatchObject({ error: 'session_superseded' });
    });

    it.each([
      // PHP takes the last of a repeated query field: this is a login to the app.
      [
        'a repeated action in the query',
        '/index.php?action=view&action=login',
        '',
        'SG_ERR_AMBIGUOUS_REQUEST',
      ],
      ['op[]=login in the form', '/index.php', 'op[]=login&', 'SG_ERR_AMBIGUOUS_REQUEST'],
      // PHP takes the last op too: op=note&op=login logs in.
      ['a repeated op in the form', '/index.php', 'op=note&op=login&', 'SG_ERR_AMBIGUOUS_REQUEST'],
      ['a repeated username on a login', LOGIN, 'username=mallory&', 'SG_ERR_AMBIGUOUS_LOGIN'],
    ])(
      'refuses %s with 400 before the app sees it; the victim stays signed in',
      async (_what, target, prefix, code) => {
        const gw = await gateway();
        const victim = await login(gw, 'victim');

        const before = await appCount();
        const res = await postRaw(gw + target, `${prefix}username=victim&password=demo`);
        expect(res.status).toBe(400);
        expect(await errorOf(res)).toBe(code);
        expect(await appCount()).toBe(before);
        const still = await send(victim, gw + ACCOUNT);
        expect(still.res.status).toBe(200);
        expect(still.body).toBe('account of victim');
      },
    );

    it('links the cookies of a remember-me re-login to the session, so they die with it', async () => {
      const gw = await gateway();
      const remembered = await login(gw, 'dora', { remember: true });
      const loginSid = remembered.cookies.get('PHPSESSID') ?? '';
      remembered.cookies.delete('PHPSESSID');

      const { res, body } = await send(remembered, gw + ACCOUNT);
      expect(res.status).toBe(200);
      expect(body).toBe('account of dora');
      const sid = setCookie(res, 'PHPSESSID') ?? '';
      const remember = setCookie(res, 'REMEMBERME') ?? '';
      expect(sid).not.toBe('');
      expect(sid).not.toBe(loginSid);
      expect(remember).not.toBe('');

      // Both new values work through the gateway (the second rotates again, as each value works once).
      expect((await account(gw, { PHPSESSID: sid })).body).toBe('account of dora');
      expect((await account(gw, { REMEMBERME: remember })).body).toBe('account of dora');

      await login(gw, 'dora');
      const linked: Record<string, string>[] = [{ PHPSESSID: sid }, { REMEMBERME: remember }];
      for (const cookies of linked) {
        const refused = await account(gw, cookies);
        expect(refused.res.status).toBe(401);
        expect(JSON.parse(refused.body)).toMatchObject({ error: 'session_superseded' });
      }
    });

    it('does not link the anonymous PHPSESSID sent with the refusal of a replayed old REMEMBERME', async () => {
      const gw = await gateway();
      const remembered = await login(gw, 'emil', { remember: true });
      const old = remembered.cookies.get('REMEMBERME') ?? '';
      const rotation = await account(gw, { REMEMBERME: old });
      expect(rotation.body).toBe('account of emil');

      const replay = await account(gw, { REMEMBERME: old });
      expect(replay.res.status).toBe(302);
      expect(replay.res.headers.get('location')).toBe(LOGIN);
      const cleared = replay.res.headers.getSetCookie().filter((l) => l.startsWith('REMEMBERME='));
      expect(cleared).toHaveLength(1);
      expect(cleared[0]).toMatch(/;\s*max-age=0(;|$)/i);
      const anonymous = setCookie(replay.res, 'PHPSESSID') ?? '';
      expect(anonymous).not.toBe('');

      // A second login would end every token of emil's session: the anonymous id is none of them, so it
      // is merely unknown and passes (`unknownTokens: pass`) to the app, which sends it to the login page.
      await login(gw, 'emil');
      const after = await account(gw, { PHPSESSID: anonymous });
      expect(after.res.status).toBe(302);
      expect(after.res.headers.get('location')).toBe(LOGIN);
    });

    // The app clearing a refused remember-me value is no logout: only the session cookie's clearing is.
    it('keeps the session live when an already rotated REMEMBERME is replayed and refused', async () => {
      const gw = await gateway();
      const remembered = await login(gw, 'ezra', { remember: true });
      const old = remembered.cookies.get('REMEMBERME') ?? '';
      const rotation = await account(gw, { REMEMBERME: old });
      const sid = setCookie(rotation.res, 'PHPSESSID') ?? '';
      expect(rotation.body).toBe('account of ezra');

      expect((await account(gw, { REMEMBERME: old })).res.headers.get('location')).toBe(LOGIN);
      // The app keeps ezra's session (sid) as it was; so must the gateway.
      const direct = await fetch(app.url + ACCOUNT, {
        headers: { cookie: `PHPSESSID=${sid}` },
        redirect: 'manual',
      });
      expect(await direct.text()).toBe('account of ezra');
      expect((await account(gw, { PHPSESSID: sid })).res.status).toBe(200);
    });

    it.each(['GET', 'POST'] as const)(
      'ends the session on %s ?action=logout: the old cookie gets 401 session_logged_out',
      async (method) => {
        const gw = await gateway();
        const jar = await login(gw, `finn-${method}`);
        const sid = jar.cookies.get('PHPSESSID') ?? '';
        const out = await send(jar, gw + LOGOUT, method === 'POST' ? {} : undefined, method);
        expect(out.res.status).toBe(302);

        const res = await account(gw, { PHPSESSID: sid });
        expect(res.res.status).toBe(401);
        expect(JSON.parse(res.body)).toMatchObject({ error: 'session_logged_out' });
      },
    );

    // PHP's built-in server on Linux routes only the exact `/index.php` (it 404s `/INDEX.PHP`), so a login
    // in another case cannot succeed here; what shows is that the gateway already reads that path as the
    // login route (`routes.caseSensitive: false`, for the servers that do route it): its user field is
    // checked, and an ambiguous one is refused before the app is asked.
    it.each([
      ['/INDEX.PHP?action=login', 'username=victim&'],
      ['/Index.Php', 'op=login&username=victim&'],
    ])(
      'reads POST %s as a login route: a repeated username is refused (400) before the app sees it',
      async (target, prefix) => {
        const gw = await gateway();
        const before = await appCount();
        const res = await postRaw(gw + target, `${prefix}username=mallory&password=demo`);
        expect(res.status).toBe(400);
        expect(await errorOf(res)).toBe('SG_ERR_AMBIGUOUS_LOGIN');
        expect(await appCount()).toBe(before);

        // The same body on a path no rule names reaches the app (which 404s it): the refusal was the rule's.
        const elsewhere = await postRaw(
          `${gw}/OTHER.PHP?action=login`,
          `${prefix}username=mallory&password=demo`,
        );
        expect(elsewhere.status).toBe(404);
        await elsewhere.arrayBuffer();
        expect(await appCount()).toBe(before + 1);
      },
    );
  },
);
