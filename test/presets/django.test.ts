/**
 * config/presets/django.yaml in front of a real Django app with database sessions and
 * django.contrib.auth's LoginView / LogoutView (test/apps/django-auth, CSRF enforced).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haveDjango } from '../support/apps.js';
import type { RunningApp } from '../support/running-app.js';
import { djangoProfile, djangoSignIn, djangoSignOut, startDjangoAuthApp } from '../support/django-auth.js';
import { CookieJar } from '../support/jar.js';
import { loadPreset, startPresetGateway } from '../support/presets.js';
import { needTool } from '../support/tools.js';

describe.skipIf(!needTool('Django', 'python3-django', haveDjango()))('preset django', () => {
  let app: RunningApp;
  beforeAll(async () => void (app = await startDjangoAuthApp('db')), 30_000);
  afterAll(() => app.close());

  it('loads as the CLI loads it, with nothing to warn about', () => {
    const { config, warnings } = loadPreset('django', app.url);
    expect(config.upstream).toBe(app.url);
    expect(warnings).toEqual([]);
  });

  it('registers a LoginView login, CSRF checks and all', async () => {
    const gw = await startPresetGateway('django', app.url);
    const a = new CookieJar();
    const res = await djangoSignIn(a, gw.url);
    expect([res.status, res.headers.get('location')]).toEqual([302, '/accounts/profile/']);
    expect(a.cookies.get('csrftoken')).toBeDefined();
    expect(await gw.live('alice')).toHaveLength(1);
    expect(await djangoProfile(a, gw.url)).toBe('hello alice');
    expect(await djangoProfile(a, gw.url)).toBe('hello alice');
  });

  it('registers nothing for a failed login (200, the form again)', async () => {
    const gw = await startPresetGateway('django', app.url);
    const res = await djangoSignIn(new CookieJar(), gw.url, 'alice', 'wrong');
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('bad credentials');
    expect(await gw.live('alice')).toEqual([]);
  });

  it('supersedes the first browser at the second login', async () => {
    const gw = await startPresetGateway('django', app.url);
    const a = new CookieJar();
    await djangoSignIn(a, gw.url);
    const [first] = await gw.live('alice');
    const b = new CookieJar();
    await djangoSignIn(b, gw.url);
    const live = await gw.live('alice');
    expect(live).toHaveLength(1);
    expect(live).not.toContain(first);
    expect(await djangoProfile(a, gw.url)).toBe('session_superseded');
    expect(await djangoProfile(b, gw.url)).toBe('hello alice');
  });

  it('ends the session at logout', async () => {
    const gw = await startPresetGateway('django', app.url);
    const a = new CookieJar();
    await djangoSignIn(a, gw.url);
    const held = a.clone();
    const out = await djangoSignOut(a, gw.url);
    expect([out.status, out.headers.get('location')]).toEqual([302, '/accounts/login/']);
    expect(await gw.live('alice')).toEqual([]);
    expect(await djangoProfile(held, gw.url)).toBe('session_logged_out');
  });
});
