/**
 * config/presets/oauth2-password.yaml in front of an OAuth2 token endpoint with the password grant
 * (test/support/oauth2-app.ts: `POST /token` for the password and refresh_token grants, RFC 7009
 * `POST /revoke`, client authentication with HTTP Basic, opaque tokens).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { bearer, get, postForm } from '../support/gateway.js';
import { OAUTH2_CLIENT, startOAuth2App } from '../support/oauth2-app.js';
import { loadPreset, rejectionCode, startPresetGateway } from '../support/presets.js';
import type { RunningApp } from '../support/running-app.js';

interface Grant {
  access_token: string;
  refresh_token: string;
}

const CLIENT = { authorization: OAUTH2_CLIENT };

async function passwordGrant(origin: string, password = 'pw-alice'): Promise<Response> {
  return postForm(`${origin}/token`, { grant_type: 'password', username: 'alice', password }, CLIENT);
}

async function signIn(origin: string): Promise<Grant> {
  const res = await passwordGrant(origin);
  expect(res.status).toBe(200);
  return (await res.json()) as Grant;
}

/** GET /api/me with the access token (in the header, or the query): the user, or the gateway's code. */
async function me(origin: string, token: string, inQuery = false): Promise<unknown> {
  const res = inQuery
    ? await get(`${origin}/api/me?access_token=${encodeURIComponent(token)}`)
    : await get(`${origin}/api/me`, bearer(token));
  const body = (await res.json()) as { user?: unknown; error?: unknown };
  return res.status === 200 ? body.user : body.error;
}

describe('preset oauth2-password', () => {
  let app: RunningApp;
  beforeAll(async () => void (app = await startOAuth2App()));

  it('loads as the CLI loads it, with nothing to warn about', () => {
    const { config, warnings } = loadPreset('oauth2-password', app.url);
    expect(config.upstream).toBe(app.url);
    expect(warnings).toEqual([]);
  });

  it('registers a password grant, and nothing for a refused one', async () => {
    const gw = await startPresetGateway('oauth2-password', app.url);
    expect((await passwordGrant(gw.url, 'wrong')).status).toBe(400);
    expect(await gw.live('alice')).toEqual([]);
    const { access_token } = await signIn(gw.url);
    expect(await gw.live('alice')).toHaveLength(1);
    expect(await me(gw.url, access_token)).toBe('alice');
  });

  it('adds the pair of a refresh_token grant to the same session', async () => {
    const gw = await startPresetGateway('oauth2-password', app.url);
    const first = await signIn(gw.url);
    const [session] = await gw.live('alice');
    const res = await postForm(
      `${gw.url}/token`,
      { grant_type: 'refresh_token', refresh_token: first.refresh_token },
      CLIENT,
    );
    expect(res.status).toBe(200);
    const next = (await res.json()) as Grant;
    expect(await gw.live('alice')).toEqual([session]);
    expect(await me(gw.url, next.access_token)).toBe('alice');
  });

  it('supersedes the first grant at the second: its tokens are refused, in the header, the query and a refresh', async () => {
    const gw = await startPresetGateway('oauth2-password', app.url);
    const a = await signIn(gw.url);
    const [first] = await gw.live('alice');
    const b = await signIn(gw.url);
    const live = await gw.live('alice');
    expect(live).toHaveLength(1);
    expect(live).not.toContain(first);
    expect(await me(gw.url, a.access_token)).toBe('session_superseded');
    expect(await me(gw.url, a.access_token, true)).toBe('session_superseded');
    // Straight to the server, the first grant's token is still good: only the gateway stops it.
    expect(await me(app.url, a.access_token)).toBe('alice');
    const refresh = await postForm(
      `${gw.url}/token`,
      { grant_type: 'refresh_token', refresh_token: a.refresh_token },
      CLIENT,
    );
    expect(refresh.status).toBe(401);
    expect(await rejectionCode(refresh)).toBe('session_superseded');
    expect(await me(gw.url, b.access_token)).toBe('alice');
  });

  it('ends the session when the client revokes its refresh token (RFC 7009)', async () => {
    const gw = await startPresetGateway('oauth2-password', app.url);
    const a = await signIn(gw.url);
    const out = await postForm(
      `${gw.url}/revoke`,
      { token: a.refresh_token, token_type_hint: 'refresh_token' },
      CLIENT,
    );
    expect(out.status).toBe(200);
    expect(await gw.live('alice')).toEqual([]);
    expect(await me(gw.url, a.access_token)).toBe('session_logged_out');
  });
});
