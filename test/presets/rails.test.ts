/**
 * config/presets/rails.yaml in front of the real Rails 6.1 app (test/apps/rails: the encrypted cookie
 * store `_app_session`, set on the anonymous login page and re-encrypted on every response that reads
 * the session, CSRF protection, a `remember_token` cookie, a `_method=delete` logout button).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningApp } from '../support/running-app.js';
import { CookieJar } from '../support/jar.js';
import { loadPreset, rejectionCode, startPresetGateway } from '../support/presets.js';
import { haveRails, startRailsApp } from '../support/rails.js';
import { needTool } from '../support/tools.js';

/** The first hidden field `name` of a page. */
function hidden(html: string, name: string): string {
  const m = new RegExp(`name="${name}" value="([^"]+)"`).exec(html);
  if (!m?.[1]) throw new Error(`no ${name} in:\n${html}`);
  return m[1];
}

/** A browser signing in: the login page (an anonymous `_app_session`, the CSRF token), then the form. */
async function signIn(jar: CookieJar, origin: string, extra: Record<string, string> = {}) {
  const page = await jar.fetch(`${origin}/login`);
  const authenticity_token = hidden(await page.text(), 'authenticity_token');
  return jar.fetch(`${origin}/login`, {
    form: { authenticity_token, username: 'alice', password: 'demo', ...extra },
  });
}

/** The account page's title (`account of alice`), or the gateway's rejection code. */
async function account(jar: CookieJar, origin: string): Promise<unknown> {
  const res = await jar.fetch(`${origin}/account`);
  if (res.status === 401) return rejectionCode(res);
  return /<title>([^<]*)<\/title>/.exec(await res.text())?.[1] ?? `status ${res.status}`;
}

describe.skipIf(!needTool('Rails', 'ruby-rails', haveRails()))('preset rails', () => {
  let app: RunningApp;
  beforeAll(async () => void (app = await startRailsApp()), 60_000);
  afterAll(() => app.close());

  it('loads as the CLI loads it, with nothing to warn about', () => {
    const { config, warnings } = loadPreset('rails', app.url);
    expect(config.upstream).toBe(app.url);
    expect(warnings).toEqual([]);
  });

  it('registers a login made with the anonymous cookie of the login page, and follows its rotation', async () => {
    const gw = await startPresetGateway('rails', app.url);
    const a = new CookieJar();
    const res = await signIn(a, gw.url, { remember: '1' });
    expect(res.status).toBe(302);
    expect(a.cookies.get('remember_token')).toBeDefined();
    expect(await gw.live('alice')).toHaveLength(1);
    const values = new Set<string | undefined>();
    for (let i = 0; i < 3; i++) {
      expect((await a.fetch(`${gw.url}/`)).status).toBe(200);
      values.add(a.cookies.get('_app_session'));
    }
    expect(values.size).toBe(3);
    expect(await account(a, gw.url)).toBe('account of alice');
  });

  it('supersedes the first browser at the second login, its remember-me cookie included', async () => {
    const gw = await startPresetGateway('rails', app.url);
    const a = new CookieJar();
    await signIn(a, gw.url, { remember: '1' });
    const [first] = await gw.live('alice');
    const b = new CookieJar();
    await signIn(b, gw.url);
    const live = await gw.live('alice');
    expect(live).toHaveLength(1);
    expect(live).not.toContain(first);
    const rememberOnly = new CookieJar();
    rememberOnly.cookies.set('remember_token', a.cookies.get('remember_token') ?? '');
    expect(await account(a, gw.url)).toBe('session_superseded');
    expect(await account(rememberOnly, gw.url)).toBe('session_superseded');
    expect(await account(b, gw.url)).toBe('account of alice');
  });

  it("ends the session at logout through Rails' _method=delete button", async () => {
    const gw = await startPresetGateway('rails', app.url);
    const a = new CookieJar();
    await signIn(a, gw.url);
    const page = await (await a.fetch(`${gw.url}/account`)).text();
    const held = a.clone();
    const out = await a.fetch(`${gw.url}/logout`, {
      form: { _method: 'delete', authenticity_token: hidden(page, 'authenticity_token') },
    });
    expect(out.status).toBe(302);
    expect(await gw.live('alice')).toEqual([]);
    expect(await account(held, gw.url)).toBe('session_logged_out');
  });

  it('serves the assets under protect.except without a check', async () => {
    const gw = await startPresetGateway('rails', app.url);
    const forged = new CookieJar();
    forged.cookies.set('_app_session', 'never-issued');
    expect((await forged.fetch(`${gw.url}/assets/app.css`)).status).toBe(200);
    expect(await account(forged, gw.url)).toBe('session_unknown');
  });
});
