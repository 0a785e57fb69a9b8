/**
 * config/presets/tomcat.yaml in front of a real Tomcat 10 (test/apps/tomcat, launched by
 * test/support/tomcat.ts): servlet FORM login through j_security_check, JSESSIONID changed at login,
 * `;jsessionid=` URLs for a client without cookies.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningApp } from '../support/running-app.js';
import { get } from '../support/gateway.js';
import { CookieJar } from '../support/jar.js';
import { loadPreset, rejectionCode, startPresetGateway } from '../support/presets.js';
import { haveTomcat, startTomcatApp } from '../support/tomcat.js';
import { needTool } from '../support/tools.js';

const ALICE = { j_username: 'alice', j_password: 'pw-alice' };

/** A browser signing in as Tomcat has it: the protected page (the login form), then j_security_check. */
async function signIn(jar: CookieJar, origin: string, form: Record<string, string> = ALICE) {
  const page = await jar.fetch(`${origin}/app/`);
  expect(await page.text()).toContain('j_security_check');
  return jar.fetch(`${origin}/app/j_security_check`, { form });
}

/** The page a signed-in browser sees (Tomcat's answer, trimmed), or the gateway's rejection code. */
async function home(jar: CookieJar, origin: string): Promise<unknown> {
  const res = await jar.fetch(`${origin}/app/`);
  return res.status === 401 ? rejectionCode(res) : (await res.text()).trim();
}

/** The `;jsessionid=` in the action of a login form Tomcat rewrote for a client without cookies. */
function formAction(html: string): string {
  const m = /action="(j_security_check;jsessionid=[^"]+)"/.exec(html);
  if (!m?.[1]) throw new Error(`no rewritten form action in:\n${html}`);
  return m[1];
}

describe.skipIf(!needTool('Tomcat 10', 'tomcat10-common', haveTomcat()))('preset tomcat', () => {
  let app: RunningApp;
  beforeAll(async () => void (app = await startTomcatApp()), 40_000);
  afterAll(() => app.close());

  it('loads as the CLI loads it, with nothing to warn about', () => {
    const { config, warnings } = loadPreset('tomcat', app.url);
    expect(config.upstream).toBe(app.url);
    expect(warnings).toEqual([]);
  });

  it('registers the FORM login under the id Tomcat changes to', async () => {
    const gw = await startPresetGateway('tomcat', app.url);
    const a = new CookieJar();
    await a.fetch(`${gw.url}/app/`);
    const anonymous = a.cookies.get('JSESSIONID');
    const res = await a.fetch(`${gw.url}/app/j_security_check`, { form: ALICE });
    expect([res.status, res.headers.get('location')]).toEqual([303, '/app/']);
    expect(a.cookies.get('JSESSIONID')).not.toBe(anonymous);
    expect(await gw.live('alice')).toHaveLength(1);
    expect(await home(a, gw.url)).toBe('hello alice');
  });

  it('registers nothing for a failed login (200, the error page)', async () => {
    const gw = await startPresetGateway('tomcat', app.url);
    const a = new CookieJar();
    const res = await signIn(a, gw.url, { ...ALICE, j_password: 'wrong' });
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('bad credentials');
    expect(await gw.live('alice')).toEqual([]);
  });

  it('supersedes the first browser at the second login', async () => {
    const gw = await startPresetGateway('tomcat', app.url);
    const a = new CookieJar();
    await signIn(a, gw.url);
    const [first] = await gw.live('alice');
    const b = new CookieJar();
    await signIn(b, gw.url);
    const live = await gw.live('alice');
    expect(live).toHaveLength(1);
    expect(live).not.toContain(first);
    expect(await home(a, gw.url)).toBe('session_superseded');
    expect(await home(b, gw.url)).toBe('hello alice');
  });

  it('follows a client without cookies through ;jsessionid= URLs, and refuses its id once superseded', async () => {
    const gw = await startPresetGateway('tomcat', app.url);
    const form = await get(`${gw.url}/app/`);
    const action = formAction(await form.text());
    const login = await fetch(`${gw.url}/app/${action}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(ALICE).toString(),
      redirect: 'manual',
    });
    expect(login.status).toBe(303);
    const location = login.headers.get('location') ?? '';
    expect(location).toMatch(/^\/app\/;jsessionid=[0-9A-F]+$/);
    expect((await (await get(`${gw.url}${location}`)).text()).trim()).toBe('hello alice');

    await signIn(new CookieJar(), gw.url);
    const replay = await get(`${gw.url}${location}`, { accept: 'application/json' });
    expect(replay.status).toBe(401);
    expect(await rejectionCode(replay)).toBe('session_superseded');
  });

  it('ends the session at logout', async () => {
    const gw = await startPresetGateway('tomcat', app.url);
    const a = new CookieJar();
    await signIn(a, gw.url);
    const held = a.clone();
    const out = await a.fetch(`${gw.url}/app/logout.jsp`, { method: 'POST' });
    expect(out.status).toBe(302);
    expect(await gw.live('alice')).toEqual([]);
    expect(await home(held, gw.url)).toBe('session_logged_out');
  });

  // Tomcat takes a login at any path of the context ending in /j_security_check: `/app/**/j_security_check`.
  it('registers a login posted to another path ending in j_security_check', async () => {
    const gw = await startPresetGateway('tomcat', app.url);
    const a = new CookieJar();
    await a.fetch(`${gw.url}/app/`);
    const res = await a.fetch(`${gw.url}/app/x/j_security_check`, { form: ALICE });
    expect(res.status).toBe(303);
    expect(await gw.live('alice')).toHaveLength(1);
  });

  // Tomcat sets JSESSIONID with `Path=/app`: a clearing cookie at another path would leave it in the browser.
  it('clears a superseded JSESSIONID at the path Tomcat set it (/app)', async () => {
    const gw = await startPresetGateway('tomcat', app.url);
    const a = new CookieJar();
    const login = await signIn(a, gw.url);
    expect(login.headers.getSetCookie().join('\n')).toMatch(/JSESSIONID=[^;]+; Path=\/app;/);
    await signIn(new CookieJar(), gw.url);
    const rejected = await a.fetch(`${gw.url}/app/`);
    expect(rejected.status).toBe(401);
    expect(rejected.headers.getSetCookie()).toContainEqual(
      expect.stringMatching(/^JSESSIONID=;.*Path=\/app;/),
    );
  });
});
