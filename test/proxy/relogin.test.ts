/**
 * Logins from a browser that already holds a session: the same user signing in again replaces that
 * session (reported as `session.replaced`, never as another device superseded), and another user
 * signing in from it ends the first user's session there (logged out), so it no longer counts.
 */
import { describe, expect, it } from 'vitest';
import { get, startGateway } from '../support/gateway.js';

describe('a login from a browser that holds a live session', () => {
  it('of the same user is reported as session.replaced; the header counts no other device', async () => {
    const gw = await startGateway();
    const first = await gw.loginForm('ida');
    const again = await gw.loginForm('ida', { cookie: `sid=${first.sid}` });
    expect(again.response.status).toBe(302);
    expect(again.response.headers.get('sessiongate-ended-sessions')).toBe('0');
    expect(gw.logs.audit('session.replaced')).toMatchObject([{ user: 'ida', reason: 'replaced' }]);
    expect(gw.logs.audit('session.superseded')).toEqual([]);
    expect(gw.logs.audit('session.created').map((l) => l.ended)).toEqual([0, 0]);
  });

  it('of the same user ends only its own session: another device stays live and uncounted', async () => {
    const gw = await startGateway({ sessions: { limit: 2 } });
    const laptop = await gw.loginForm('jan');
    const phone = await gw.loginForm('jan');
    const again = await gw.loginForm('jan', { cookie: `sid=${phone.sid}` });
    expect(again.response.headers.get('sessiongate-ended-sessions')).toBe('0');
    expect((await get(`${gw.url}/app`, { cookie: `sid=${laptop.sid}` })).status).toBe(200);
    expect((await get(`${gw.url}/app`, { cookie: `sid=${again.sid}` })).status).toBe(200);
    expect(await gw.gateway.sessions.listSessions('jan')).toHaveLength(2);
  });

  it("of another user ends the first user's session there as logged out", async () => {
    const gw = await startGateway();
    const jo = await gw.loginForm('jo');
    const kim = await gw.loginForm('kim', { cookie: `sid=${jo.sid}` });
    expect(kim.response.status).toBe(302);
    expect(kim.response.headers.get('sessiongate-ended-sessions')).toBe('0');
    const res = await get(`${gw.url}/app`, { cookie: `sid=${jo.sid}` });
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ error: 'session_logged_out' });
    expect(gw.logs.audit('session.logged_out')).toMatchObject([{ user: 'jo' }]);
    expect((await get(`${gw.url}/app`, { cookie: `sid=${kim.sid}` })).status).toBe(200);
  });

  it('of another user, under reject-new, does not lock the first user out', async () => {
    const gw = await startGateway({ sessions: { onLimit: 'reject-new' } });
    const jo = await gw.loginForm('jo');
    await gw.loginForm('kim', { cookie: `sid=${jo.sid}` });
    const elsewhere = await gw.loginForm('jo');
    expect(elsewhere.response.status).toBe(302);
    expect(elsewhere.sid).not.toBe('');
  });
});
