/**
 * `Clear-Site-Data` on the answers that end a session for the browser holding it: a rejection of a
 * superseded (expired, logged-out, ended) session, the app's confirmed logout, the self-service end of
 * the current device. In Chromium, an SPA's localStorage token is gone after each.
 */
import { type Browser } from 'playwright-core';
import { haveChromium, launchChromium } from '../support/chromium.js';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { bearer, get, postJson, startGateway } from '../support/gateway.js';
import { startSpaJwtApp } from '../support/spa-jwt-app.js';

/** The page's Web Storage, as the functions given to page.evaluate see it (this file has no DOM types). */
declare const localStorage: {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
};

const SPA_RULES = {
  login: [
    {
      match: 'POST /api/auth/login',
      token: ['json:access_token', 'json:refresh_token'],
      user: 'jwt:sub',
    },
  ],
  logout: [{ match: 'POST /api/auth/logout' }],
  tokens: ['bearer'],
  protect: ['/api/**'],
};

async function signIn(origin: string): Promise<string> {
  const res = await postJson(`${origin}/api/auth/login`, { email: 'ann@example.com', password: 'pw-ann' });
  expect(res.status).toBe(200);
  return ((await res.json()) as { access_token: string }).access_token;
}

describe('Clear-Site-Data', () => {
  it('is sent with the rejection of a superseded session, "cookies", "storage" by default', async () => {
    const gw = await startGateway();
    const first = await gw.loginJson('ann');
    await gw.loginJson('ann');
    const res = await get(`${gw.url}/api/me`, bearer(first.token));
    expect(res.status).toBe(401);
    expect(res.headers.get('clear-site-data')).toBe('"cookies", "storage"');
  });

  it('is not sent for an unknown token or an unreachable store: nothing is known to be over', async () => {
    const gw = await startGateway({ sessions: { unknownTokens: 'reject' } });
    const res = await get(`${gw.url}/api/me`, bearer('never-seen-by-the-gateway'));
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ error: 'session_unknown' });
    expect(res.headers.get('clear-site-data')).toBeNull();
  });

  it('says what reject.clearSiteData lists, and nothing with false', async () => {
    const listed = await startGateway({ reject: { clearSiteData: ['storage', 'cache'] } });
    const none = await startGateway({ reject: { clearSiteData: false } });
    for (const [gw, expected] of [
      [listed, '"storage", "cache"'],
      [none, null],
    ] as const) {
      const first = await gw.loginJson('ann');
      await gw.loginJson('ann');
      const res = await get(`${gw.url}/api/me`, bearer(first.token));
      expect(res.status).toBe(401);
      expect(res.headers.get('clear-site-data')).toBe(expected);
    }
  });

  it("is added to the app's confirmed logout response, per the rule", async () => {
    const app = await startSpaJwtApp();
    const gw = await startGateway({ upstream: app.url, ...SPA_RULES });
    const token = await signIn(gw.url);
    const res = await fetch(`${gw.url}/api/auth/logout`, { method: 'POST', headers: bearer(token) });
    expect(res.status).toBe(204);
    expect(res.headers.get('clear-site-data')).toBe('"cookies", "storage"');

    const off = await startGateway({
      upstream: app.url,
      ...SPA_RULES,
      logout: [{ match: 'POST /api/auth/logout', clearSiteData: false }],
    });
    const other = await signIn(off.url);
    const kept = await fetch(`${off.url}/api/auth/logout`, { method: 'POST', headers: bearer(other) });
    expect(kept.status).toBe(204);
    expect(kept.headers.get('clear-site-data')).toBeNull();
  });

  it('is not added to a logout the app refused', async () => {
    const app = await startSpaJwtApp();
    const gw = await startGateway({ upstream: app.url, ...SPA_RULES });
    const res = await fetch(`${gw.url}/api/auth/logout`, { method: 'POST' });
    expect(res.status).toBe(401);
    expect(res.headers.get('clear-site-data')).toBeNull();
  });

  it('is sent when a user ends their own session on the self-service page, not when they end another', async () => {
    const gw = await startGateway({ sessions: { limit: 2 } });
    const here = await gw.loginJson('ann');
    const there = await gw.loginJson('ann');
    const listed = (await (
      await get(`${gw.url}/.sessiongate/sessions`, {
        ...bearer(here.token),
        accept: 'application/json',
      })
    ).json()) as { csrfToken: string; sessions: { id: string; current: boolean }[] };
    const other = listed.sessions.find((s) => !s.current)?.id as string;
    const own = listed.sessions.find((s) => s.current)?.id as string;
    const end = (id: string) =>
      fetch(`${gw.url}/.sessiongate/sessions/${id}/end`, {
        method: 'POST',
        headers: { ...bearer(here.token), accept: 'application/json', 'x-csrf-token': listed.csrfToken },
      });
    const endedOther = await end(other);
    expect(endedOther.status).toBe(200);
    expect(endedOther.headers.get('clear-site-data')).toBeNull();
    const endedOwn = await end(own);
    expect(endedOwn.status).toBe(200);
    expect(endedOwn.headers.get('clear-site-data')).toBe('"cookies", "storage"');
    expect(there.token).not.toBe(here.token);
  });
});

describe.skipIf(!haveChromium)('Clear-Site-Data in Chromium: an SPA keeping its JWT in localStorage', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
  });

  /** A tab on the SPA's page that signs in and keeps its token in localStorage, as such apps do. */
  async function spaTab(origin: string) {
    const context = await browser.newContext();
    onTestFinished(() => context.close());
    const page = await context.newPage();
    await page.goto(`${origin}/`);
    await page.evaluate(async () => {
      const res = await fetch('/api/auth/login', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email: 'ann@example.com', password: 'pw-ann' }),
      });
      const body = (await res.json()) as { access_token: string };
      localStorage.setItem('$sm-access-token', body.access_token);
    });
    const call = (path: string, method = 'GET') =>
      page.evaluate(
        async ([p, m]) => {
          const token = localStorage.getItem('$sm-access-token') ?? '';
          const res = await fetch(p as string, {
            method: m,
            headers: { authorization: `Bearer ${token}` },
          });
          return res.status;
        },
        [path, method],
      );
    const stored = () => page.evaluate(() => localStorage.getItem('$sm-access-token'));
    return { call, stored };
  }

  it('loses the token when its session is superseded by a login elsewhere', async () => {
    const app = await startSpaJwtApp();
    const gw = await startGateway({ upstream: app.url, ...SPA_RULES });
    const tab = await spaTab(gw.url);
    expect(await tab.call('/api/me')).toBe(200);
    expect(await tab.stored()).not.toBeNull();
    await signIn(gw.url); // another device
    expect(await tab.call('/api/me')).toBe(401);
    expect(await tab.stored()).toBeNull();
  });

  it('loses the token when it logs out', async () => {
    const app = await startSpaJwtApp();
    const gw = await startGateway({ upstream: app.url, ...SPA_RULES });
    const tab = await spaTab(gw.url);
    expect(await tab.stored()).not.toBeNull();
    expect(await tab.call('/api/auth/logout', 'POST')).toBe(204);
    expect(await tab.stored()).toBeNull();
  });
});
