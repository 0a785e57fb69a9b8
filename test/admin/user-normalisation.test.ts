/**
 * The admin API finds a user under the name the login rules registered: the path's user is normalised
 * as the rules normalise (trim, lowercase, nfkc), through the real admin listener.
 */
import { describe, expect, it } from 'vitest';
import { bearer, startGateway } from '../support/gateway.js';
import { FORM_LOGIN_RULE as FORM_RULE, JSON_LOGIN_RULE as JSON_RULE } from '../support/login-rules.js';

interface Listed {
  user: string;
  sessions: { id: string; user: string }[];
}

describe('admin API user names', () => {
  it('normalises the user in the path as every login rule does (lowercase): Alice finds alice', async () => {
    const gw = await startGateway({
      login: [
        { ...JSON_RULE, normalize: ['trim', 'lowercase'] },
        { ...FORM_RULE, normalize: ['trim', 'lowercase'] },
      ],
    });
    const { token } = await gw.loginJson('alice');

    const list = (await (await gw.admin('/admin/users/Alice/sessions')).json()) as Listed;
    expect(list.user).toBe('alice');
    expect(list.sessions.map((s) => s.user)).toEqual(['alice']);
    const id = list.sessions[0]?.id as string;
    const one = await gw.admin(`/admin/users/%20ALICE%20/sessions/${id}`);
    expect(one.status).toBe(200);

    const del = await gw.admin(`/admin/users/ALICE/sessions/${id}`, { method: 'DELETE' });
    expect(await del.json()).toEqual({ user: 'alice', ended: [id] });
    expect((await fetch(`${gw.url}/api/me`, { headers: bearer(token) })).status).toBe(401);
  });

  it('applies nfkc as the rules do: a full-width name finds its ASCII form', async () => {
    const gw = await startGateway({
      login: [
        { ...JSON_RULE, normalize: ['nfkc', 'lowercase'] },
        { ...FORM_RULE, normalize: ['nfkc', 'lowercase'] },
      ],
    });
    await gw.loginJson('bob');
    const res = await gw.admin(`/admin/users/${encodeURIComponent('ＢＯＢ')}/sessions`);
    expect(((await res.json()) as Listed).sessions.map((s) => s.user)).toEqual(['bob']);
  });

  it("with rules that normalise differently, tries the name as given, then each rule's form", async () => {
    // The JSON login lowercases, the form login keeps case: `Carl` and `carl` are two accounts.
    const gw = await startGateway({
      sessions: { limit: 2 },
      login: [
        { ...JSON_RULE, normalize: ['trim', 'lowercase'] },
        { ...FORM_RULE, normalize: ['trim'] },
      ],
    });
    const lower = await gw.loginJson('Dana');
    expect(((await (await gw.admin('/admin/users/DANA/sessions')).json()) as Listed).user).toBe('dana');

    await gw.loginJson('carl');
    const { sid } = await gw.loginForm('Carl');
    const carl = (await (await gw.admin('/admin/users/Carl/sessions')).json()) as Listed;
    // The name as given has sessions: that account only, never both.
    expect(carl.user).toBe('Carl');
    expect(carl.sessions.map((s) => s.user)).toEqual(['Carl']);
    const del = await gw.admin('/admin/users/Carl/sessions', { method: 'DELETE' });
    expect(((await del.json()) as { ended: string[] }).ended).toHaveLength(1);
    expect((await fetch(`${gw.url}/app`, { headers: { cookie: `sid=${sid}` } })).status).toBe(401);
    const stillThere = (await (await gw.admin('/admin/users/carl/sessions')).json()) as Listed;
    expect(stillThere.sessions.map((s) => s.user)).toEqual(['carl']);

    // Dana was registered lowercased; her sessions end under the name as typed.
    const ended = await gw.admin('/admin/users/Dana/sessions', { method: 'DELETE' });
    expect(await ended.json()).toMatchObject({ user: 'dana' });
    expect((await fetch(`${gw.url}/api/me`, { headers: bearer(lower.token) })).status).toBe(401);
  });
});
