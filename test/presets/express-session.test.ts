/**
 * config/presets/express-session.yaml in front of a real express app on express-session
 * (test/apps/express-session: MemoryStore, `connect.sid`, req.session.regenerate() at login, a flash
 * message, and so a cookie, on a failed login).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningApp } from '../support/running-app.js';
import { haveExpressSession, startExpressSessionApp } from '../support/express-session.js';
import { CookieJar } from '../support/jar.js';
import { loadPreset, rejectionCode, startPresetGateway } from '../support/presets.js';

// A devDependency: `npm ci` installs it, so a missing one is a broken install, not a missing tool.
const available = haveExpressSession();

const login = (jar: CookieJar, url: string, password = 'pw-alice') =>
  jar.fetch(`${url}/login`, { form: { username: 'alice', password } });

/** The account page (`hello alice`), the app's redirect, or the gateway's rejection code. */
async function account(jar: CookieJar, origin: string): Promise<unknown> {
  const res = await jar.fetch(`${origin}/account`);
  if (res.status === 401) return rejectionCode(res);
  if (res.status === 302) return `-> ${res.headers.get('location')}`;
  return res.text();
}

describe('preset express-session', () => {
  it('has express-session installed', () => expect(available).toBe(true));

  let app: RunningApp;
  beforeAll(async () => void (app = await startExpressSessionApp()), 30_000);
  afterAll(() => app.close());

  it('loads as the CLI loads it, with nothing to warn about', () => {
    const { config, warnings } = loadPreset('express-session', app.url);
    expect(config.upstream).toBe(app.url);
    expect(warnings).toEqual([]);
  });

  it('registers a login under the session id regenerated for it', async () => {
    const gw = await startPresetGateway('express-session', app.url);
    const a = new CookieJar();
    const res = await login(a, gw.url);
    expect([res.status, res.headers.get('location')]).toEqual([302, '/account']);
    expect(decodeURIComponent(a.cookies.get('connect.sid') ?? '')).toMatch(/^s:[^.]+\..+$/);
    expect(await gw.live('alice')).toHaveLength(1);
    expect(await account(a, gw.url)).toBe('hello alice');
  });

  it('passes the cookie of a failed login as anonymous, and registers the login after it', async () => {
    const gw = await startPresetGateway('express-session', app.url);
    const a = new CookieJar();
    const failed = await login(a, gw.url, 'wrong');
    expect([failed.status, failed.headers.get('location')]).toEqual([302, '/login?error=1']);
    const anonymous = a.cookies.get('connect.sid');
    expect(anonymous).toBeDefined();
    expect(await gw.live('alice')).toEqual([]);
    expect(await (await a.fetch(`${gw.url}/login`)).text()).toContain('bad credentials');
    await login(a, gw.url);
    expect(a.cookies.get('connect.sid')).not.toBe(anonymous);
    expect(await gw.live('alice')).toHaveLength(1);
  });

  it('supersedes the first browser at the second login', async () => {
    const gw = await startPresetGateway('express-session', app.url);
    const a = new CookieJar();
    await login(a, gw.url);
    const [first] = await gw.live('alice');
    const b = new CookieJar();
    await login(b, gw.url);
    const live = await gw.live('alice');
    expect(live).toHaveLength(1);
    expect(live).not.toContain(first);
    expect(await account(a, gw.url)).toBe('session_superseded');
    expect(await account(b, gw.url)).toBe('hello alice');
  });

  it('ends the session at logout', async () => {
    const gw = await startPresetGateway('express-session', app.url);
    const a = new CookieJar();
    await login(a, gw.url);
    const held = a.clone();
    const out = await a.fetch(`${gw.url}/logout`, { method: 'POST' });
    expect([out.status, out.headers.get('location')]).toEqual([302, '/login']);
    expect(await gw.live('alice')).toEqual([]);
    expect(await account(held, gw.url)).toBe('session_logged_out');
  });
});
