/** The admin API on a real gateway: auth, listing (device, IP, location), ending one and all, health. */
import { describe, expect, it } from 'vitest';
import { bearer, startGateway, TEST_ADMIN_TOKEN, UA } from '../support/gateway.js';

interface ListedSession {
  id: string;
  user: string;
  createdAt: string;
  lastSeenAt: string;
  expiresAt: string;
  ip: string;
  userAgent: string;
  device: string;
  location: string | null;
}

describe('admin API', () => {
  it('answers 401 without the token or with a wrong one, before routing', async () => {
    const gw = await startGateway();
    for (const auth of [false, 'wrong-token-0123456789', `${TEST_ADMIN_TOKEN}x`] as const) {
      for (const path of ['/admin/users/alice/sessions', '/metrics', '/no/such/path']) {
        const res = await gw.admin(path, { auth });
        expect(res.status, `${path} with ${String(auth)}`).toBe(401);
        expect(res.headers.get('www-authenticate')).toMatch(/^Bearer realm=/);
        expect(await res.json()).toMatchObject({ error: 'SG_ERR_ADMIN_UNAUTHORIZED' });
      }
    }
    // Basic auth with the token as password is not a bearer token either.
    const basic = await gw.admin('/admin/users/alice/sessions', {
      auth: false,
      headers: { authorization: `Basic ${Buffer.from(`x:${TEST_ADMIN_TOKEN}`).toString('base64')}` },
    });
    expect(basic.status).toBe(401);
  });

  it('lists live sessions with id, times, IP, User-Agent, device and location', async () => {
    const gw = await startGateway({ locationHeader: 'CF-IPCountry', sessions: { limit: 3 } });
    const before = Date.now();
    await gw.loginJson('alice', { 'user-agent': UA.chromeWindows, 'cf-ipcountry': 'DE' });
    await gw.loginJson('alice', { 'user-agent': UA.safariIphone });
    await gw.loginJson('bob', { 'user-agent': UA.firefoxLinux });

    const res = await gw.admin('/admin/users/alice/sessions');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(res.headers.get('cache-control')).toBe('no-store');
    const body = (await res.json()) as { user: string; sessions: ListedSession[] };
    expect(body.user).toBe('alice');
    expect(body.sessions).toHaveLength(2);
    const chrome = body.sessions.find((s) => s.userAgent === UA.chromeWindows) as ListedSession;
    expect(chrome).toMatchObject({
      user: 'alice',
      ip: '127.0.0.1',
      device: 'Chrome on Windows',
      location: 'DE',
    });
    expect(chrome.id).toMatch(/\S{8,}/);
    for (const field of ['createdAt', 'lastSeenAt', 'expiresAt'] as const) {
      const t = Date.parse(chrome[field]);
      expect(t, field).toBeGreaterThanOrEqual(before - 1000);
    }
    const safari = body.sessions.find((s) => s.userAgent === UA.safariIphone) as ListedSession;
    expect(safari.device).toBe('Mobile Safari on iOS');
    expect(safari.location).toBeNull();
    // Newest first.
    expect(body.sessions[0]?.id).toBe(safari.id);

    // One session by id; an unknown user has none.
    const one = await gw.admin(`/admin/users/alice/sessions/${chrome.id}`);
    expect(one.status).toBe(200);
    expect(((await one.json()) as { session: ListedSession }).session.device).toBe('Chrome on Windows');
    expect((await gw.admin('/admin/users/alice/sessions/nope')).status).toBe(404);
    const nobody = await gw.admin('/admin/users/nobody/sessions');
    expect(await nobody.json()).toEqual({ user: 'nobody', sessions: [] });
  });

  it('decodes user names from the path (percent-encoded)', async () => {
    const gw = await startGateway();
    const user = 'Zoë O/Brien@example.com';
    await gw.loginJson(user);
    const res = await gw.admin(`/admin/users/${encodeURIComponent(user)}/sessions`);
    const body = (await res.json()) as { user: string; sessions: ListedSession[] };
    expect(body.user).toBe(user);
    expect(body.sessions).toHaveLength(1);
    expect((await gw.admin('/admin/users/%E0%A4%A/sessions')).status).toBe(400);
  });

  it('DELETE one ends it at once: its token gets 401 session_ended, the others keep working', async () => {
    const gw = await startGateway({ sessions: { limit: 2 } });
    const a = await gw.loginJson('carol', { 'user-agent': UA.chromeWindows });
    const b = await gw.loginJson('carol', { 'user-agent': UA.safariIphone });
    expect((await fetch(`${gw.url}/api/me`, { headers: bearer(a.token) })).status).toBe(200);

    const list = (await (await gw.admin('/admin/users/carol/sessions')).json()) as {
      sessions: ListedSession[];
    };
    const target = list.sessions.find((s) => s.userAgent === UA.chromeWindows) as ListedSession;
    const del = await gw.admin(`/admin/users/carol/sessions/${target.id}`, { method: 'DELETE' });
    expect(del.status).toBe(200);
    expect(await del.json()).toEqual({ user: 'carol', ended: [target.id] });

    const rejected = await fetch(`${gw.url}/api/me`, { headers: bearer(a.token) });
    expect(rejected.status).toBe(401);
    expect(rejected.headers.get('www-authenticate')).toContain('session_ended');
    expect(await rejected.json()).toMatchObject({ error: 'session_ended' });
    expect((await fetch(`${gw.url}/api/me`, { headers: bearer(b.token) })).status).toBe(200);

    // Ending it again: it is no longer a live session.
    const again = await gw.admin(`/admin/users/carol/sessions/${target.id}`, { method: 'DELETE' });
    expect(again.status).toBe(404);
    expect(await again.json()).toMatchObject({ error: 'SG_ERR_SESSION_NOT_FOUND' });
  });

  it('DELETE all ends every live session of the user and no other user', async () => {
    const gw = await startGateway({ sessions: { limit: 3 } });
    const tokens = [
      (await gw.loginJson('dave')).token,
      (await gw.loginJson('dave')).token,
      (await gw.loginJson('dave')).token,
    ];
    const other = (await gw.loginJson('erin')).token;
    const del = await gw.admin('/admin/users/dave/sessions', { method: 'DELETE' });
    expect(del.status).toBe(200);
    expect(((await del.json()) as { ended: string[] }).ended).toHaveLength(3);
    for (const t of tokens) {
      const res = await fetch(`${gw.url}/api/me`, { headers: bearer(t) });
      expect(res.status).toBe(401);
      expect(((await res.json()) as { error: string }).error).toBe('session_ended');
    }
    expect((await fetch(`${gw.url}/api/me`, { headers: bearer(other) })).status).toBe(200);
    expect(await (await gw.admin('/admin/users/dave/sessions')).json()).toEqual({
      user: 'dave',
      sessions: [],
    });
    // Nothing left: an empty list, not an error.
    expect(await (await gw.admin('/admin/users/dave/sessions', { method: 'DELETE' })).json()).toEqual({
      user: 'dave',
      ended: [],
    });
  });

  it('serves /healthz and /readyz open, /metrics only with the token unless configured open', async () => {
    const gw = await startGateway();
    const health = await gw.admin('/healthz', { auth: false });
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    const ready = await gw.admin('/readyz', { auth: false });
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready', store: 'up' });
    expect((await gw.admin('/metrics', { auth: false })).status).toBe(401);
    const metrics = await gw.admin('/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get('content-type')).toContain('text/plain');
    expect(await metrics.text()).toContain('sessiongate_requests_total');

    const openMetrics = await startGateway({ admin: { open: ['healthz', 'metrics'] } });
    expect((await openMetrics.admin('/metrics', { auth: false })).status).toBe(200);
    // readyz is no longer in the open list: it needs the token now.
    expect((await openMetrics.admin('/readyz', { auth: false })).status).toBe(401);
    // The sessions API is never opened.
    expect((await openMetrics.admin('/admin/users/x/sessions', { auth: false })).status).toBe(401);
  });

  it('without admin.token configured, only the open endpoints answer', async () => {
    const gw = await startGateway({ admin: { token: undefined, listen: '127.0.0.1:0' } });
    expect((await gw.admin('/healthz', { auth: false })).status).toBe(200);
    const res = await gw.admin('/admin/users/x/sessions');
    expect(res.status).toBe(401);
    expect(((await res.json()) as { message: string }).message).toContain('not configured');
  });

  it('answers 404 for unknown paths and 405 with Allow for unknown methods', async () => {
    const gw = await startGateway();
    expect((await gw.admin('/admin/users')).status).toBe(404);
    expect((await gw.admin('/admin/users/x/sessions/y/z')).status).toBe(404);
    const post = await gw.admin('/admin/users/x/sessions', { method: 'POST', body: '{}' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, DELETE');
    const delMetrics = await gw.admin('/metrics', { method: 'DELETE' });
    expect(delMetrics.status).toBe(405);
    expect(delMetrics.headers.get('allow')).toBe('GET');
  });
});
