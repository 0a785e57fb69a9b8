/** The audit log: one pino line of kind "audit" per session event, with who/what/when/where; never a token. */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { bearer, captureLogs, startGateway, TEST_ADMIN_TOKEN, testClock, UA } from '../support/gateway.js';
import { JSON_LOGIN_RULE } from '../support/login-rules.js';

describe('audit log', () => {
  it('writes an audit line per session event with user, session, IP, device, reason and time', async () => {
    const clock = testClock();
    const gw = await startGateway(
      {
        sessions: { limit: 2, idleTimeout: '15m' },
        logout: [{ match: 'POST /api/logout' }],
        locationHeader: 'cf-ipcountry',
      },
      { now: clock.now },
    );
    const tokens: string[] = [];
    const login = async (ua: string) => {
      const r = await gw.loginJson('grace', { 'user-agent': ua, 'cf-ipcountry': 'FR' });
      tokens.push(r.token);
      clock.advance(1000);
      return r.token;
    };
    const a = await login(UA.chromeWindows);
    await login(UA.safariIphone);
    const c = await login(UA.firefoxLinux); // supersedes a
    const late = await fetch(`${gw.url}/api/x`, {
      headers: { ...bearer(a), 'user-agent': UA.chromeWindows },
    });
    expect(late.status).toBe(401);

    // c ends b through the self-service API (ended_by_user), then an admin ends c.
    const page = (await (
      await fetch(`${gw.url}/.sessiongate/sessions`, {
        headers: { ...bearer(c), accept: 'application/json' },
      })
    ).json()) as { csrfToken: string; sessions: { id: string; current: boolean }[] };
    const bId = page.sessions.find((s) => !s.current)?.id as string;
    const end = await fetch(`${gw.url}/.sessiongate/sessions/${bId}/end`, {
      method: 'POST',
      headers: { ...bearer(c), 'x-csrf-token': page.csrfToken },
    });
    expect(end.status).toBe(200);
    expect((await gw.admin('/admin/users/grace/sessions', { method: 'DELETE' })).status).toBe(200);

    // A logout, and an idle expiry.
    const d = await login(UA.chromeWindows);
    expect((await fetch(`${gw.url}/api/logout`, { method: 'POST', headers: bearer(d) })).status).toBe(200);
    const e = await login(UA.chromeWindows);
    clock.advance(16 * 60_000);
    const expired = await fetch(`${gw.url}/api/x`, { headers: bearer(e) });
    expect(expired.status).toBe(401);
    expect(((await expired.json()) as { error: string }).error).toBe('session_expired');

    const audit = gw.logs.audit();
    const of = (event: string) => gw.logs.audit(event);
    expect(of('session.created')).toHaveLength(5);
    expect(of('session.superseded')).toHaveLength(1);
    expect(of('session.ended').map((l) => l.reason)).toEqual(['ended_by_user', 'ended_by_admin']);
    expect(of('session.logged_out')).toHaveLength(1);
    expect(of('session.expired')).toHaveLength(1);
    expect(of('request.rejected').map((l) => l.reason)).toEqual(['session_superseded', 'session_expired']);

    for (const l of audit) {
      expect(l, JSON.stringify(l)).toMatchObject({
        level: 'info',
        service: 'sessiongate',
        user: 'grace',
        ip: '127.0.0.1',
      });
      expect(typeof l.sessionId).toBe('string');
      expect(typeof l.device).toBe('string');
      expect(typeof l.reason).toBe('string');
      expect(typeof l.time).toBe('string');
      expect(typeof l.at).toBe('string');
      expect(l.msg).toBe(l.event);
    }
    const created = of('session.created')[0] as Record<string, unknown>;
    expect(created).toMatchObject({ device: 'Chrome on Windows', location: 'FR', reason: 'login', ended: 0 });
    expect(created.at).toBe('2026-11-23T10:00:00.000Z');
    const superseded = of('session.superseded')[0] as Record<string, unknown>;
    expect(superseded).toMatchObject({
      device: 'Chrome on Windows',
      reason: 'superseded',
      by: { actor: 'login', device: 'Firefox on Linux', ip: '127.0.0.1' },
    });
    expect(of('session.ended')[0]).toMatchObject({ device: 'Mobile Safari on iOS', by: { actor: 'user' } });
    expect(of('session.ended')[1]).toMatchObject({ device: 'Firefox on Linux', by: { actor: 'admin' } });
    expect(of('request.rejected')[0]).toMatchObject({
      sessionId: superseded.sessionId,
      device: 'Chrome on Windows',
    });

    // Never a raw token (nor the admin token) anywhere in the log output.
    const raw = gw.logs.text();
    expect(tokens).toHaveLength(5);
    for (const token of [...tokens, TEST_ADMIN_TOKEN]) expect(raw).not.toContain(token);
  });

  it('logs session.refused under reject-new, without a session id', async () => {
    const gw = await startGateway({ sessions: { limit: 1, onLimit: 'reject-new' } });
    const first = await gw.loginJson('heidi', { 'user-agent': UA.chromeWindows });
    const refused = await fetch(`${gw.url}/api/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'user-agent': UA.safariIphone },
      body: JSON.stringify({ username: 'heidi' }),
    });
    expect(refused.status).toBe(409);
    const audit = gw.logs.audit('session.refused');
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({
      user: 'heidi',
      ip: '127.0.0.1',
      device: 'Mobile Safari on iOS',
      reason: 'session_limit_reached',
    });
    expect(audit[0]?.sessionId).toBeUndefined();
    expect(gw.logs.text()).not.toContain(first.token);
  });

  it('the logger redacts token-bearing fields logged by mistake', () => {
    const { logger, logs } = captureLogs();
    const { config } = parseConfig({
      upstream: 'http://127.0.0.1:1',
      secret: 'audit-test-secret-0123456789',
      login: [JSON_LOGIN_RULE],
    });
    expect(config.log.level).toBe('info');
    logger.info(
      {
        headers: { authorization: 'Bearer raw-token-AAA', cookie: 'sid=raw-token-BBB' },
        token: 'raw-token-CCC',
        body: { accessToken: 'raw-token-DDD' },
      },
      'oops',
    );
    expect(logs.text()).not.toMatch(/raw-token-/);
    expect(logs.text()).toContain('[redacted]');
  });
});
