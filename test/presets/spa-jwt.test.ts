/**
 * config/presets/spa-jwt.yaml in front of an SPA's API (test/support/spa-jwt-app.ts: express + jose, a
 * JWT access token and a refresh token in the JSON login response, the JWT verified statelessly).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { bearer, get, postJson } from '../support/gateway.js';
import { loadPreset, rejectionCode, startPresetGateway } from '../support/presets.js';
import { startSpaJwtApp } from '../support/spa-jwt-app.js';
import type { RunningApp } from '../support/running-app.js';

interface Pair {
  access_token: string;
  refresh_token: string;
}

async function signIn(origin: string, email = 'alice@example.com'): Promise<Pair> {
  const res = await postJson(`${origin}/api/auth/login`, { email, password: 'pw-alice' });
  expect(res.status).toBe(200);
  return (await res.json()) as Pair;
}

/** GET /api/me with the token: the API's {email}, or the gateway's rejection code. */
async function me(origin: string, token: string): Promise<unknown> {
  const res = await get(`${origin}/api/me`, bearer(token));
  if (res.status === 401) return rejectionCode(res);
  return ((await res.json()) as { email?: unknown }).email;
}

describe('preset spa-jwt', () => {
  let app: RunningApp;
  beforeAll(async () => void (app = await startSpaJwtApp()));

  it('loads as the CLI loads it, with nothing to warn about', () => {
    const { config, warnings } = loadPreset('spa-jwt', app.url);
    expect(config.upstream).toBe(app.url);
    expect(warnings).toEqual([]);
  });

  it("registers a login under the JWT's subject, the e-mail in lower case", async () => {
    const gw = await startPresetGateway('spa-jwt', app.url);
    const { access_token } = await signIn(gw.url, 'Alice@Example.com');
    expect(await gw.live('alice@example.com')).toHaveLength(1);
    expect(await me(gw.url, access_token)).toBe('Alice@Example.com');
  });

  it('adds the pair of a refresh to the same session', async () => {
    const gw = await startPresetGateway('spa-jwt', app.url);
    const first = await signIn(gw.url);
    const [session] = await gw.live('alice@example.com');
    const res = await postJson(`${gw.url}/api/auth/refresh`, { refresh_token: first.refresh_token });
    expect(res.status).toBe(200);
    const next = (await res.json()) as Pair;
    expect(await gw.live('alice@example.com')).toEqual([session]);
    expect(await me(gw.url, next.access_token)).toBe('alice@example.com');
  });

  it('supersedes the first login at the second: its JWT and its refresh token are refused', async () => {
    const gw = await startPresetGateway('spa-jwt', app.url);
    const a = await signIn(gw.url);
    const [first] = await gw.live('alice@example.com');
    const b = await signIn(gw.url);
    const live = await gw.live('alice@example.com');
    expect(live).toHaveLength(1);
    expect(live).not.toContain(first);
    expect(await me(gw.url, a.access_token)).toBe('session_superseded');
    // Straight to the API, the superseded JWT is still good: only the gateway stops it.
    expect(await me(app.url, a.access_token)).toBe('alice@example.com');
    const refresh = await postJson(`${gw.url}/api/auth/refresh`, { refresh_token: a.refresh_token });
    expect(refresh.status).toBe(401);
    expect(await rejectionCode(refresh)).toBe('session_superseded');
    expect(await me(gw.url, b.access_token)).toBe('alice@example.com');
  });

  it('ends the session at logout', async () => {
    const gw = await startPresetGateway('spa-jwt', app.url);
    const a = await signIn(gw.url);
    const out = await fetch(`${gw.url}/api/auth/logout`, { method: 'POST', headers: bearer(a.access_token) });
    expect(out.status).toBe(204);
    expect(await gw.live('alice@example.com')).toEqual([]);
    expect(await me(gw.url, a.access_token)).toBe('session_logged_out');
  });
});
