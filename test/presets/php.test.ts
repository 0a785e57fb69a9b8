/**
 * config/presets/php.yaml in front of the real PHP app (test/apps/php: native file sessions under
 * `php -S`, session_regenerate_id(true) at login and on every signed-in page, a fresh PHPSESSID on a
 * failed login).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { havePhp, startPhpApp } from '../support/apps.js';
import type { RunningApp } from '../support/running-app.js';
import { get, NAVIGATE } from '../support/gateway.js';
import { CookieJar } from '../support/jar.js';
import { loadPreset, rejectionCode, startPresetGateway } from '../support/presets.js';
import { needTool } from '../support/tools.js';

const login = (jar: CookieJar, url: string, password = 'pw-alice') =>
  jar.fetch(`${url}/login.php`, { form: { username: 'alice', password } });

describe.skipIf(!needTool('PHP', 'php-cli', havePhp()))('preset php', () => {
  let app: RunningApp;
  beforeAll(async () => void (app = await startPhpApp()), 30_000);
  afterAll(() => app.close());

  it('loads as the CLI loads it, with nothing to warn about', () => {
    const { config, warnings } = loadPreset('php', app.url);
    expect(config.upstream).toBe(app.url);
    expect(warnings).toEqual([]);
  });

  it('registers a login and follows the id PHP regenerates on every page', async () => {
    const gw = await startPresetGateway('php', app.url);
    const a = new CookieJar();
    const res = await login(a, gw.url);
    expect([res.status, res.headers.get('location')]).toEqual([302, '/account.php']);
    expect(await gw.live('alice')).toHaveLength(1);
    const ids = new Set<string | undefined>();
    for (let i = 0; i < 3; i++) {
      const page = await a.fetch(`${gw.url}/account.php`);
      expect(await page.text()).toBe('hello alice');
      ids.add(a.cookies.get('PHPSESSID'));
    }
    expect(ids.size).toBe(3);
  });

  it('passes the fresh PHPSESSID of a failed login as anonymous, and registers nothing', async () => {
    const gw = await startPresetGateway('php', app.url);
    const a = new CookieJar();
    const failed = await login(a, gw.url, 'wrong');
    expect([failed.status, failed.headers.get('location')]).toEqual([302, '/login.php?error=1']);
    expect(a.cookies.get('PHPSESSID')).toBeDefined();
    expect(await gw.live('alice')).toEqual([]);
    // The app, not the gateway, answers the anonymous cookie: a redirect to its login page.
    const page = await a.fetch(`${gw.url}/account.php`);
    expect([page.status, page.headers.get('location')]).toEqual([302, '/login.php']);
    expect((await login(a, gw.url)).status).toBe(302);
    expect(await gw.live('alice')).toHaveLength(1);
  });

  it('supersedes the first browser at the second login: 401 for fetch, a redirect for navigation', async () => {
    const gw = await startPresetGateway('php', app.url);
    const a = new CookieJar();
    await login(a, gw.url);
    await a.fetch(`${gw.url}/account.php`);
    const [first] = await gw.live('alice');
    const b = new CookieJar();
    await login(b, gw.url);
    const live = await gw.live('alice');
    expect(live).toHaveLength(1);
    expect(live).not.toContain(first);

    // Taken before the rejection, which clears the cookie in the jar.
    const cookie = a.header();
    const rejected = await a.fetch(`${gw.url}/account.php`);
    expect(rejected.status).toBe(401);
    expect(await rejectionCode(rejected)).toBe('session_superseded');
    const navigation = await get(`${gw.url}/account.php`, { ...NAVIGATE, cookie });
    expect(navigation.status).toBe(302);
    expect(navigation.headers.get('location')).toBe('/login.php?reason=session_superseded');
    expect(await (await b.fetch(`${gw.url}/account.php`)).text()).toBe('hello alice');
  });

  it('ends the session at logout', async () => {
    const gw = await startPresetGateway('php', app.url);
    const a = new CookieJar();
    await login(a, gw.url);
    await a.fetch(`${gw.url}/account.php`);
    const held = a.clone();
    const out = await a.fetch(`${gw.url}/logout.php`, { method: 'POST' });
    expect([out.status, out.headers.get('location')]).toEqual([302, '/login.php']);
    expect(await gw.live('alice')).toEqual([]);
    const replay = await held.fetch(`${gw.url}/account.php`);
    expect(replay.status).toBe(401);
    expect(await rejectionCode(replay)).toBe('session_logged_out');
  });
});
