/** The self-service page over HTTP: own sessions only, JSON for SPAs, CSRF-safe actions, 401/404s. */
import { describe, expect, it } from 'vitest';
import { renderSupersededPage } from '../../src/ui/pages.js';
import { bearer, get, NAVIGATE, startGateway, type TestGateway, UA } from '../support/gateway.js';

const PAGE = '/.sessiongate/sessions';
/** A user agent that breaks out of an attribute and opens a tag, if printed unescaped. */
const HOSTILE_UA = `"'><img src=x onerror=alert(1)>&amp;`;
const HOSTILE_UA_ESCAPED = '&#34;&#39;&#62;&#60;img src=x onerror=alert(1)&#62;&#38;amp;';

interface Row {
  id: string;
  user: string;
  current: boolean;
  device: string;
  ip: string;
  location: string | null;
  createdAt: string;
  lastSeenAt: string;
  userAgent: string;
}
interface Listing {
  user: string;
  currentSessionId: string;
  csrfToken: string;
  sessions: Row[];
}

async function listing(gw: TestGateway, token: string): Promise<Listing> {
  const res = await fetch(`${gw.url}${PAGE}`, { headers: { ...bearer(token), accept: 'application/json' } });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toBe('application/json');
  expect(res.headers.get('cache-control')).toBe('no-store');
  return (await res.json()) as Listing;
}

function post(
  gw: TestGateway,
  path: string,
  token: string,
  headers: Record<string, string> = {},
  body?: string,
) {
  return fetch(`${gw.url}${path}`, {
    method: 'POST',
    headers: { ...bearer(token), ...headers },
    redirect: 'manual',
    ...(body !== undefined ? { body } : {}),
  });
}

describe('self-service sessions page', () => {
  it('lists the signed-in user\'s own sessions as JSON with "this device" marked', async () => {
    const gw = await startGateway({ sessions: { limit: 3 }, locationHeader: 'cf-ipcountry' });
    const a = await gw.loginJson('alice', { 'user-agent': UA.chromeWindows, 'cf-ipcountry': 'NL' });
    const b = await gw.loginJson('alice', { 'user-agent': UA.safariIphone });
    await gw.loginJson('bob', { 'user-agent': UA.firefoxLinux });

    const mine = await listing(gw, a.token);
    expect(mine.user).toBe('alice');
    expect(mine.sessions).toHaveLength(2);
    expect(mine.sessions.every((s) => s.user === 'alice')).toBe(true);
    const current = mine.sessions.filter((s) => s.current);
    expect(current).toHaveLength(1);
    expect(current[0]).toMatchObject({
      id: mine.currentSessionId,
      device: 'Chrome on Windows',
      ip: '127.0.0.1',
      location: 'NL',
    });
    // The caller's own session comes first.
    expect(mine.sessions[0]?.current).toBe(true);
    expect(mine.sessions[1]).toMatchObject({
      current: false,
      device: 'Mobile Safari on iOS',
      location: null,
    });
    expect(mine.csrfToken).toMatch(/^[A-Za-z0-9_-]{43}$/);

    const theirs = await listing(gw, b.token);
    expect(theirs.currentSessionId).not.toBe(mine.currentSessionId);
    // The CSRF token is bound to the session.
    expect(theirs.csrfToken).not.toBe(mine.csrfToken);
  });

  it('renders HTML for browsers: devices, "This device", End forms with a CSRF field, strict headers', async () => {
    const gw = await startGateway({ sessions: { limit: 2 } });
    const a = await gw.loginForm('carol', { 'user-agent': UA.chromeWindows });
    await gw.loginForm('carol', { 'user-agent': UA.safariIphone });
    const res = await fetch(`${gw.url}${PAGE}`, {
      headers: { cookie: `sid=${a.sid}`, accept: 'text/html,application/xhtml+xml,*/*;q=0.8' },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(res.headers.get('content-security-policy')).toMatch(/default-src 'none'.*frame-ancestors 'none'/);
    expect(res.headers.get('x-frame-options')).toBe('DENY');
    expect(res.headers.get('vary')).toBe('Accept');
    const html = await res.text();
    expect(html).toContain('<meta name="viewport" content="width=device-width, initial-scale=1">');
    expect(html).toContain('Chrome on Windows');
    expect(html).toContain('Mobile Safari on iOS');
    expect(html.match(/class="badge">This device</g)).toHaveLength(1);
    expect(html.match(/>End<\/button>/g)).toHaveLength(1);
    expect(html).toContain('Log out all other devices');
    expect(html).toMatch(/<input type="hidden" name="csrf" value="[A-Za-z0-9_-]{43}">/);
    expect(html).toMatch(/action="\/\.sessiongate\/sessions\/[^"/]+\/end"/);
    // The stylesheet is allowed by its hash (no unsafe-inline).
    expect(res.headers.get('content-security-policy')).toMatch(/style-src 'sha256-[A-Za-z0-9+/=]+'/);
  });

  it('prints what a login sent (its user agent, its location header) as text, never as markup', async () => {
    const gw = await startGateway({ sessions: { limit: 2 }, locationHeader: 'cf-ipcountry' });
    const a = await gw.loginForm('grace', { 'user-agent': UA.chromeWindows });
    // Too odd for the user-agent parser, so the device column shows it as sent.
    await gw.loginForm('grace', { 'user-agent': HOSTILE_UA, 'cf-ipcountry': '<b id="injected">NL</b>' });
    const res = await fetch(`${gw.url}${PAGE}`, { headers: { cookie: `sid=${a.sid}`, accept: 'text/html' } });
    const html = await res.text();
    expect(html).not.toContain('<img');
    expect(html).not.toContain('<b id=');
    expect(html).toContain(`<span class="device">${HOSTILE_UA_ESCAPED}</span>`);
    expect(html).toContain(`title="End the session on ${HOSTILE_UA_ESCAPED}"`);
    expect(html).toContain('<dd class="location">&#60;b id=&#34;injected&#34;&#62;NL&#60;/b&#62;</dd>');
  });

  it('ends another session with a valid CSRF token; its next request gets 401 session_ended', async () => {
    const gw = await startGateway({ sessions: { limit: 2 } });
    const a = await gw.loginJson('dave');
    const b = await gw.loginJson('dave');
    const { csrfToken, sessions } = await listing(gw, a.token);
    const other = sessions.find((s) => !s.current) as Row;
    const res = await post(gw, `${PAGE}/${other.id}/end`, a.token, { 'x-csrf-token': csrfToken });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ended: [other.id] });
    const next = await fetch(`${gw.url}/api/x`, { headers: bearer(b.token) });
    expect(next.status).toBe(401);
    expect(((await next.json()) as { error: string }).error).toBe('session_ended');
    expect((await fetch(`${gw.url}/api/x`, { headers: bearer(a.token) })).status).toBe(200);
    expect((await listing(gw, a.token)).sessions).toHaveLength(1);
  });

  it('a form POST redirects 303 back to the page, which says what happened', async () => {
    const gw = await startGateway({ sessions: { limit: 2 } });
    const a = await gw.loginForm('erin');
    await gw.loginForm('erin');
    const cookie = { cookie: `sid=${a.sid}` };
    const { csrfToken, sessions } = (await (
      await fetch(`${gw.url}${PAGE}`, { headers: { ...cookie, accept: 'application/json' } })
    ).json()) as Listing;
    const other = sessions.find((s) => !s.current) as Row;
    const res = await fetch(`${gw.url}${PAGE}/${other.id}/end`, {
      method: 'POST',
      headers: { ...cookie, 'content-type': 'application/x-www-form-urlencoded', origin: gw.url },
      body: new URLSearchParams({ csrf: csrfToken }).toString(),
      redirect: 'manual',
    });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe(`${PAGE}?ended=1`);
    const page = await fetch(`${gw.url}${PAGE}?ended=1`, { headers: { ...cookie, accept: 'text/html' } });
    expect(await page.text()).toContain('1 session ended.');
  });

  it('"log out all other devices" ends every other session and keeps this one', async () => {
    const gw = await startGateway({ sessions: { limit: 4 } });
    const tokens = [];
    for (let i = 0; i < 4; i++) tokens.push((await gw.loginJson('frank')).token);
    const [mine, ...others] = tokens as [string, ...string[]];
    const { csrfToken } = await listing(gw, mine);
    const res = await post(gw, `${PAGE}/end-others`, mine, { 'x-csrf-token': csrfToken });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { ended: string[] }).ended).toHaveLength(3);
    for (const t of others) expect((await fetch(`${gw.url}/api/x`, { headers: bearer(t) })).status).toBe(401);
    expect((await fetch(`${gw.url}/api/x`, { headers: bearer(mine) })).status).toBe(200);
    const after = await listing(gw, mine);
    expect(after.sessions.map((s) => s.current)).toEqual([true]);
  });

  it('refuses actions without a valid CSRF token or from another site with 403', async () => {
    const gw = await startGateway({ sessions: { limit: 3 } });
    const a = await gw.loginJson('gina');
    const b = await gw.loginJson('gina');
    const c = await gw.loginJson('gina');
    const mine = await listing(gw, a.token);
    const cs = await listing(gw, c.token);
    const target = `${PAGE}/${(await listing(gw, b.token)).currentSessionId}/end`;
    const form = { 'content-type': 'application/x-www-form-urlencoded' };
    const cases: [string, Promise<Response>][] = [
      ['no token', post(gw, target, a.token)],
      ['empty form', post(gw, target, a.token, form, '')],
      ['wrong token', post(gw, target, a.token, { 'x-csrf-token': 'x'.repeat(43) })],
      ["another session's token", post(gw, target, a.token, { 'x-csrf-token': cs.csrfToken })],
      [
        'cross-site (Fetch Metadata)',
        post(gw, target, a.token, { ...form, 'sec-fetch-site': 'cross-site' }, `csrf=${mine.csrfToken}`),
      ],
      [
        'same-site sibling',
        post(gw, target, a.token, { 'x-csrf-token': mine.csrfToken, 'sec-fetch-site': 'same-site' }),
      ],
      [
        'foreign Origin',
        post(gw, target, a.token, { 'x-csrf-token': mine.csrfToken, origin: 'https://evil.example' }),
      ],
      ['opaque Origin', post(gw, target, a.token, { 'x-csrf-token': mine.csrfToken, origin: 'null' })],
      ['end-others without token', post(gw, `${PAGE}/end-others`, a.token)],
    ];
    for (const [name, pending] of cases) {
      const res = await pending;
      expect(res.status, name).toBe(403);
      const body = await res.text();
      expect(body, name).toContain('SG_ERR_CSRF');
    }
    // Nothing was ended.
    expect((await listing(gw, a.token)).sessions).toHaveLength(3);
    // The same request, same-origin and with the token, works.
    const ok = await post(
      gw,
      target,
      a.token,
      {
        ...form,
        origin: gw.url,
        'sec-fetch-site': 'same-origin',
      },
      `csrf=${encodeURIComponent(mine.csrfToken)}`,
    );
    expect(ok.status).toBe(303);
  });

  it('ignores X-Forwarded-Host from a peer that is not a trusted proxy: a forged host is still cross-site', async () => {
    const gw = await startGateway({ sessions: { limit: 2 } });
    const a = await gw.loginForm('hugo');
    await gw.loginForm('hugo');
    const cookie = { cookie: `sid=${a.sid}` };
    const { csrfToken } = (await (
      await fetch(`${gw.url}${PAGE}`, { headers: { ...cookie, accept: 'application/json' } })
    ).json()) as Listing;
    // A form POST from evil.example that also claims evil.example is this host.
    const res = await fetch(`${gw.url}${PAGE}/end-others`, {
      method: 'POST',
      headers: {
        ...cookie,
        'content-type': 'application/x-www-form-urlencoded',
        origin: 'https://evil.example',
        'x-forwarded-host': 'evil.example',
      },
      body: new URLSearchParams({ csrf: csrfToken }).toString(),
      redirect: 'manual',
    });
    expect(res.status).toBe(403);
    const page = await res.text();
    expect(page).toContain('SG_ERR_CSRF');
    expect(page).not.toContain('evil.example');
    expect(res.headers.get('location')).toBeNull();
    const after = (await (
      await fetch(`${gw.url}${PAGE}`, { headers: { ...cookie, accept: 'application/json' } })
    ).json()) as Listing;
    expect(after.sessions).toHaveLength(2);
  });

  it('believes X-Forwarded-Host from a trusted proxy: the public host is same-origin', async () => {
    // The test client is the proxy in front (127.0.0.1) that forwards the public host.
    const gw = await startGateway({ sessions: { limit: 2 }, trustedProxies: ['127.0.0.0/8'] });
    const a = await gw.loginJson('iris');
    await gw.loginJson('iris');
    const { csrfToken } = await listing(gw, a.token);
    const res = await post(gw, `${PAGE}/end-others`, a.token, {
      'x-csrf-token': csrfToken,
      origin: 'https://app.example',
      'x-forwarded-host': 'app.example',
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { ended: string[] }).ended).toHaveLength(1);
  });

  it("never reaches another user's sessions: a foreign session id is 404 and stays live", async () => {
    const gw = await startGateway();
    const alice = await gw.loginJson('alice');
    const bob = await gw.loginJson('bob');
    const bobsId = (await listing(gw, bob.token)).currentSessionId;
    const { csrfToken } = await listing(gw, alice.token);
    const res = await post(gw, `${PAGE}/${bobsId}/end`, alice.token, { 'x-csrf-token': csrfToken });
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ error: 'SG_ERR_SESSION_NOT_FOUND' });
    expect((await fetch(`${gw.url}/api/x`, { headers: bearer(bob.token) })).status).toBe(200);
    // A user query parameter changes nothing: the user is the token's.
    const viaQuery = (await (
      await fetch(`${gw.url}${PAGE}?user=bob`, {
        headers: { ...bearer(alice.token), accept: 'application/json' },
      })
    ).json()) as Listing;
    expect(viaQuery.user).toBe('alice');
    expect(viaQuery.sessions.map((s) => s.id)).not.toContain(bobsId);
    // Ending a session that is already gone is 404 too.
    const gone = await post(gw, `${PAGE}/no-such-session/end`, alice.token, { 'x-csrf-token': csrfToken });
    expect(gone.status).toBe(404);
  });

  it('answers 401 without a live session: JSON for scripts, a sign-in page for browsers', async () => {
    const gw = await startGateway({ sessions: { limit: 1 } });
    const none = await fetch(`${gw.url}${PAGE}`, { headers: { accept: 'application/json' } });
    expect(none.status).toBe(401);
    expect(await none.json()).toMatchObject({ error: 'session_required' });
    const page = await get(`${gw.url}${PAGE}`, NAVIGATE);
    expect(page.status).toBe(401);
    expect(page.headers.get('content-type')).toContain('text/html');
    const html = await page.text();
    expect(html).toContain('Sign in to see and manage your sessions.');
    expect(html).toContain('href="/"');

    const old = await gw.loginJson('hank');
    await gw.loginJson('hank');
    const superseded = await fetch(`${gw.url}${PAGE}`, {
      headers: { ...bearer(old.token), accept: 'application/json' },
    });
    expect(superseded.status).toBe(401);
    expect(await superseded.json()).toMatchObject({ error: 'session_superseded' });
    // A browser of the superseded session gets the same page as anywhere else: when, and from which device.
    const supersededPage = await get(`${gw.url}${PAGE}`, { ...NAVIGATE, ...bearer(old.token) });
    expect(supersededPage.status).toBe(401);
    const supersededHtml = await supersededPage.text();
    expect(supersededHtml).toContain('data-code="session_superseded"');
    expect(supersededHtml).toMatch(/A new sign-in from <strong>[^<]+<\/strong> on <time/);
    const unknown = await fetch(`${gw.url}${PAGE}`, {
      headers: { ...bearer('never-issued'), accept: 'application/json' },
    });
    expect(unknown.status).toBe(401);
    expect(await unknown.json()).toMatchObject({ error: 'session_unknown' });
    // Actions too (same-origin, but no live session).
    const action = await fetch(`${gw.url}${PAGE}/end-others`, {
      method: 'POST',
      headers: { ...bearer(old.token), 'x-csrf-token': 'x' },
    });
    expect(action.status).toBe(401);
  });

  it('answers 404 for anything else under the prefix and 405 for a wrong method', async () => {
    const gw = await startGateway();
    const { token } = await gw.loginJson('ivan');
    for (const path of [
      '/.sessiongate/',
      '/.sessiongate/x',
      `${PAGE}/`,
      `${PAGE}/abc`,
      `${PAGE}/abc/end/x`,
    ]) {
      const res = await fetch(`${gw.url}${path}`, {
        headers: { ...bearer(token), accept: 'application/json' },
      });
      expect(res.status, path).toBe(404);
    }
    const getAction = await fetch(`${gw.url}${PAGE}/end-others`, { headers: bearer(token) });
    expect(getAction.status).toBe(405);
    expect(getAction.headers.get('allow')).toBe('POST');
    const postList = await fetch(`${gw.url}${PAGE}`, { method: 'POST', headers: bearer(token) });
    expect(postList.status).toBe(405);
    expect(postList.headers.get('allow')).toBe('GET, HEAD');
    // The prefix is never forwarded to the app.
    expect(gw.upstream?.requests.some((r) => r.path.startsWith('/.sessiongate'))).toBe(false);
  });

  it('serves nothing when selfService.enabled is false (the path goes to the app)', async () => {
    const gw = await startGateway({ selfService: { enabled: false } });
    const res = await fetch(`${gw.url}${PAGE}`);
    expect(((await res.json()) as { path: string }).path).toBe(PAGE);
  });

  it('uses a configured prefix', async () => {
    const gw = await startGateway({ selfService: { prefix: '/account/devices/' } });
    const { token } = await gw.loginJson('judy');
    const res = await fetch(`${gw.url}/account/devices/sessions`, {
      headers: { ...bearer(token), accept: 'application/json' },
    });
    expect(res.status).toBe(200);
    const html = await (await fetch(`${gw.url}/account/devices/sessions`, { headers: bearer(token) })).text();
    expect(html).not.toContain('/.sessiongate/');
  });
});

describe('superseded page', () => {
  it('shows the message, when and from which device the new login came, and a sign-in link', async () => {
    const gw = await startGateway();
    const first = await gw.loginForm('kate', { 'user-agent': UA.chromeWindows });
    await gw.loginForm('kate', { 'user-agent': UA.safariIphone });
    const res = await get(`${gw.url}/app`, { ...NAVIGATE, cookie: `sid=${first.sid}` });
    expect(res.status).toBe(401);
    expect(res.headers.get('content-type')).toContain('text/html');
    // The dead cookie is cleared.
    expect(res.headers.getSetCookie().some((c) => /^sid=;/.test(c))).toBe(true);
    const html = await res.text();
    expect(html).toContain('Another session has been started using your account.');
    expect(html).toContain('data-code="session_superseded"');
    expect(html).toMatch(
      /A new sign-in from <strong>Mobile Safari on iOS<\/strong> on <time datetime="\d{4}-\d\d-\d\dT[^"]+Z">/,
    );
    expect(html).toContain('>Sign in again</a>');
  });

  it('links to reject.redirect when configured for pages, and escapes everything it prints', () => {
    const html = renderSupersededPage({
      code: 'session_superseded',
      message: '<script>alert(1)</script>',
      loginUrl: '/login?next="x"',
      session: {
        id: 's',
        user: 'u',
        state: 'superseded',
        createdAt: 0,
        lastSeenAt: 0,
        expiresAt: 1,
        tokenIds: [],
        endedAt: Date.parse('2026-11-23T10:02:00Z'),
        endedBy: { userAgent: '<img src=x onerror=alert(1)>' },
      },
    });
    expect(html).not.toContain('<script>');
    expect(html).not.toContain('<img');
    expect(html).toContain('&#60;script&#62;');
    expect(html).toContain('href="/login?next=&#34;x&#34;"');
    expect(html).toContain('23 Nov 2026, 10:02 UTC');
  });

  it('says when an ended session was ended', () => {
    const html = renderSupersededPage({
      code: 'session_ended',
      message: 'ended',
      loginUrl: undefined,
      session: {
        id: 's',
        user: 'u',
        state: 'ended_by_admin',
        createdAt: 0,
        lastSeenAt: 0,
        expiresAt: 1,
        tokenIds: [],
        endedAt: Date.parse('2026-11-23T10:02:00Z'),
      },
    });
    expect(html).toContain('This session was ended on <time');
    expect(html).toContain('href="/"');
  });
});
