/**
 * config/presets/django-signed-cookies.yaml in front of a real Django app with signed-cookie sessions
 * and django.contrib.auth's LoginView / LogoutView (test/apps/django-auth, CSRF enforced): `sessionid`
 * is re-issued on every page that writes the session, and Django takes every value it ever issued.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haveDjango } from '../support/apps.js';
import type { RunningApp } from '../support/running-app.js';
import { djangoProfile, djangoSignIn, djangoSignOut, startDjangoAuthApp } from '../support/django-auth.js';
import { CookieJar } from '../support/jar.js';
import { loadPreset, startPresetGateway } from '../support/presets.js';
import { needTool } from '../support/tools.js';

/**
 * Django signs the cookie with a timestamp of whole seconds: two logins of one user within a second
 * get byte-identical values, which neither Django nor the gateway can tell apart (one session). Two
 * browsers of a test must log in in different seconds.
 */
async function nextSecond(): Promise<void> {
  await new Promise((r) => setTimeout(r, 1001 - (Date.now() % 1000)));
}

describe.skipIf(!needTool('Django', 'python3-django', haveDjango()))('preset django-signed-cookies', () => {
  let app: RunningApp;
  beforeAll(async () => void (app = await startDjangoAuthApp('signed_cookies')), 30_000);
  afterAll(() => app.close());

  it('loads as the CLI loads it, with nothing to warn about', () => {
    const { config, warnings } = loadPreset('django-signed-cookies', app.url);
    expect(config.upstream).toBe(app.url);
    expect(warnings).toEqual([]);
  });

  it('registers a login and keeps the user signed in while the cookie changes on every page', async () => {
    const gw = await startPresetGateway('django-signed-cookies', app.url);
    const a = new CookieJar();
    expect((await djangoSignIn(a, gw.url)).status).toBe(302);
    expect(await gw.live('alice')).toHaveLength(1);
    const values = new Set<string | undefined>();
    for (let i = 0; i < 3; i++) {
      expect(await djangoProfile(a, gw.url)).toBe('hello alice');
      values.add(a.cookies.get('sessionid'));
    }
    expect(values.size).toBe(3);
  });

  it('supersedes the first browser at the second login, under every value it held', async () => {
    const gw = await startPresetGateway('django-signed-cookies', app.url);
    const a = new CookieJar();
    await djangoSignIn(a, gw.url);
    const atLogin = a.clone();
    await djangoProfile(a, gw.url);
    const [first] = await gw.live('alice');
    await nextSecond();
    const b = new CookieJar();
    await djangoSignIn(b, gw.url);
    const live = await gw.live('alice');
    expect(live).toHaveLength(1);
    expect(live).not.toContain(first);
    expect(await djangoProfile(a, gw.url)).toBe('session_superseded');
    expect(await djangoProfile(atLogin, gw.url)).toBe('session_superseded');
    expect(await djangoProfile(b, gw.url)).toBe('hello alice');
  });

  it('ends the session at logout, though Django would still take the old value', async () => {
    const gw = await startPresetGateway('django-signed-cookies', app.url);
    const a = new CookieJar();
    await djangoSignIn(a, gw.url);
    const held = a.clone();
    const out = await djangoSignOut(a, gw.url);
    expect([out.status, out.headers.get('location')]).toEqual([302, '/accounts/login/']);
    expect(await gw.live('alice')).toEqual([]);
    expect(await djangoProfile(held.clone(), gw.url)).toBe('session_logged_out');
    // Straight to Django, the same value still signs alice in: only the gateway stops it.
    expect(await djangoProfile(held.clone(), app.url)).toBe('hello alice');
  });
});
