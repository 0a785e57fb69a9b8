/**
 * cookies.harden through real sockets: the Set-Cookie lines are read off the raw bytes of the response
 * the client receives (a plain TCP client, no fetch parsing), from an app of the test's own that sends
 * exactly the Set-Cookie headers a test names.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../../src/config/schema.js';
import { startGateway } from '../support/gateway.js';
import { raw } from './cookie-harden-wire.js';

/** The app: `GET /set?c=<JSON list>` answers 200 with those Set-Cookie headers, byte for byte. */
async function setCookieApp(): Promise<{ url: string; close: () => Promise<void> }> {
  let n = 0;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (req.method === 'POST' && url.pathname === '/login') {
      req.resume();
      n++;
      res.writeHead(302, { location: '/app', 'set-cookie': `sid=tok-${n}-${Date.now()}; Path=/` });
      res.end();
      return;
    }
    if (url.pathname === '/set') {
      const cookies = JSON.parse(url.searchParams.get('c') ?? '[]') as string[];
      res.writeHead(200, { 'content-type': 'text/plain', 'set-cookie': cookies });
      res.end('ok');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('plain');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

const LOGIN = {
  match: 'POST /login',
  token: 'cookie:sid',
  user: 'request.form:username',
  success: { status: 302 },
};

const set = (...cookies: string[]) => `/set?c=${encodeURIComponent(JSON.stringify(cookies))}`;

describe('cookies.harden', () => {
  let app: Awaited<ReturnType<typeof setCookieApp>>;
  beforeAll(async () => void (app = await setCookieApp()));
  afterAll(() => app.close());

  const gateway = (harden: NonNullable<ConfigInput['cookies']>['harden'], extra: Partial<ConfigInput> = {}) =>
    startGateway({
      upstream: app.url,
      login: [LOGIN],
      tokens: ['cookie:sid'],
      cookies: { harden },
      ...extra,
    });

  it('adds HttpOnly and SameSite=Lax to the token cookie over plain HTTP, and no Secure (secure: auto)', async () => {
    const gw = await gateway({});
    const res = await raw(gw.url, 'GET', set('sid=abc; Path=/'));
    expect(res.setCookies).toEqual(['sid=abc; Path=/; HttpOnly; SameSite=Lax']);
  });

  it('keeps the value and every other attribute byte for byte, in their order', async () => {
    const gw = await gateway({});
    const res = await raw(
      gw.url,
      'GET',
      set('sid="a b%2C"; Expires=Wed, 21 Oct 2037 07:28:00 GMT; Domain=example.test;  Path=/x ; httponly'),
    );
    expect(res.setCookies).toEqual([
      'sid="a b%2C"; Expires=Wed, 21 Oct 2037 07:28:00 GMT; Domain=example.test;  Path=/x ; httponly; SameSite=Lax',
    ]);
  });

  it("replaces the app's SameSite in place, keeping its spacing", async () => {
    const gw = await gateway({ sameSite: 'strict' });
    const res = await raw(gw.url, 'GET', set('sid=v;samesite=None; Secure; Path=/'));
    expect(res.setCookies).toEqual(['sid=v;SameSite=Strict; Secure; Path=/; HttpOnly']);
  });

  it('passes a token cookie that already has the attributes as the same bytes, uncounted', async () => {
    const gw = await gateway({});
    const res = await raw(gw.url, 'GET', set('sid=v; path=/; samesite=lax; HTTPONLY'));
    expect(res.setCookies).toEqual(['sid=v; path=/; samesite=lax; HTTPONLY']);
    const scrape = await gw.gateway.metrics.registry.getSingleMetricAsString(
      'sessiongate_cookies_hardened_total',
    );
    expect(scrape).toContain('sessiongate_cookies_hardened_total 0');
  });

  it('leaves other cookies alone, and hardens them too with all: true', async () => {
    const only = await gateway({});
    const a = await raw(only.url, 'GET', set('theme=dark; Path=/', 'sid=v; Path=/'));
    expect(a.setCookies).toEqual(['theme=dark; Path=/', 'sid=v; Path=/; HttpOnly; SameSite=Lax']);
    const all = await gateway({ all: true });
    const b = await raw(all.url, 'GET', set('theme=dark; Path=/'));
    expect(b.setCookies).toEqual(['theme=dark; Path=/; HttpOnly; SameSite=Lax']);
  });

  it('adds Secure for X-Forwarded-Proto: https from a trusted proxy, not from any other peer', async () => {
    const trusted = await gateway({}, { trustedProxies: ['127.0.0.1'] });
    const a = await raw(trusted.url, 'GET', set('sid=v; Path=/'), { 'X-Forwarded-Proto': 'https' });
    expect(a.setCookies).toEqual(['sid=v; Path=/; HttpOnly; Secure; SameSite=Lax']);
    const b = await raw(trusted.url, 'GET', set('sid=v; Path=/'), { 'X-Forwarded-Proto': 'http' });
    expect(b.setCookies).toEqual(['sid=v; Path=/; HttpOnly; SameSite=Lax']);
    const untrusted = await gateway({}, { trustedProxies: ['10.0.0.0/8'] });
    const c = await raw(untrusted.url, 'GET', set('sid=v; Path=/'), { 'X-Forwarded-Proto': 'https' });
    expect(c.setCookies).toEqual(['sid=v; Path=/; HttpOnly; SameSite=Lax']);
  });

  it('adds Secure always with secure: true, and leaves httpOnly as set with httpOnly: false', async () => {
    const gw = await gateway({ secure: true, httpOnly: false, sameSite: 'keep' });
    const res = await raw(gw.url, 'GET', set('sid=v; Path=/; SameSite=None'));
    expect(res.setCookies).toEqual(['sid=v; Path=/; SameSite=None; Secure']);
  });

  it('never adds SameSite=None without Secure: over plain HTTP the app value stays', async () => {
    const gw = await gateway({ sameSite: 'none' }, { trustedProxies: ['127.0.0.1'] });
    const plain = await raw(gw.url, 'GET', set('sid=v; Path=/', 'sid2=w; SameSite=Lax'), {});
    expect(plain.setCookies).toEqual(['sid=v; Path=/; HttpOnly', 'sid2=w; SameSite=Lax']);
    const tls = await raw(gw.url, 'GET', set('sid=v; Path=/'), { 'X-Forwarded-Proto': 'https' });
    expect(tls.setCookies).toEqual(['sid=v; Path=/; HttpOnly; Secure; SameSite=None']);
  });

  it('refuses sameSite: none with secure: false at startup, naming the key', async () => {
    await expect(gateway({ sameSite: 'none', secure: false })).rejects.toThrow(/cookies\.harden\.sameSite/);
  });

  it('passes an unparseable Set-Cookie unchanged and counts it; the response is served', async () => {
    const gw = await gateway({ all: true });
    const bad = ['=novalue; Path=/', 'no equals sign', 'bad name=v; Path=/'];
    const res = await raw(gw.url, 'GET', set(...bad, 'sid=v; Path=/'));
    expect(res.status).toBe(200);
    expect(res.setCookies).toEqual([...bad, 'sid=v; Path=/; HttpOnly; SameSite=Lax']);
    const scrape = await gw.gateway.metrics.registry.getSingleMetricAsString(
      'sessiongate_set_cookie_unparseable_total',
    );
    expect(scrape).toContain('sessiongate_set_cookie_unparseable_total 3');
  });

  it("hardens the login response's cookie (a held response) as the client receives it", async () => {
    const gw = await gateway({ sameSite: 'strict' });
    const res = await raw(
      gw.url,
      'POST',
      '/login',
      { 'Content-Type': 'application/x-www-form-urlencoded' },
      'username=ann',
    );
    expect(res.status).toBe(302);
    expect(res.setCookies).toHaveLength(1);
    expect(res.setCookies[0]).toMatch(/^sid=tok-\d+-\d+; Path=\/; HttpOnly; SameSite=Strict$/);
    expect(await gw.gateway.sessions.listSessions('ann')).toHaveLength(1);
  });

  it("gives the gateway's own deletion of a superseded cookie the same attributes", async () => {
    const gw = await gateway({ sameSite: 'strict' }, { trustedProxies: ['127.0.0.1'] });
    const form = { 'Content-Type': 'application/x-www-form-urlencoded' };
    const first = await raw(gw.url, 'POST', '/login', form, 'username=bea');
    const sid = (first.setCookies[0] as string).split(';')[0] as string;
    await raw(gw.url, 'POST', '/login', form, 'username=bea');
    const rejected = await raw(gw.url, 'GET', '/page', { Cookie: sid, 'X-Forwarded-Proto': 'https' });
    expect(rejected.status).toBe(401);
    expect(rejected.setCookies).toEqual([
      'sid=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Strict; Secure',
    ]);
  });

  it('changes nothing without cookies.harden', async () => {
    const gw = await startGateway({
      upstream: app.url,
      login: [LOGIN],
      tokens: ['cookie:sid'],
    });
    const res = await raw(gw.url, 'GET', set('sid=v; Path=/'));
    expect(res.setCookies).toEqual(['sid=v; Path=/']);
  });
});
