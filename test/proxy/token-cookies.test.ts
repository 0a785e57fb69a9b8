/**
 * The compiled token cookies, as pure logic: where each cookie was set (so a deletion reaches it), the
 * tokens a response sets, and the token cookies a request carries.
 */
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { requestTokenSource } from '../../src/config/sources.js';
import type { ResponseHead } from '../../src/proxy/forward.js';
import { compileWatchedCookies, type WatchedCookies } from '../../src/proxy/token-cookies.js';
import { clearingCookie } from '../../src/tokens/cookies.js';

const head = (...setCookies: string[]): ResponseHead => ({
  status: 200,
  statusText: 'OK',
  headers: setCookies.flatMap((c) => ['Set-Cookie', c]),
});

/** The watched cookies of `tokens` entries as written in a config. */
function watched(...sources: z.input<typeof requestTokenSource>[]): WatchedCookies {
  const w = compileWatchedCookies(sources.map((s) => requestTokenSource.parse(s)));
  if (w === undefined) throw new Error('no cookie source');
  return w;
}

describe('clearingCookie', () => {
  it('gives a __Host- cookie Secure and Path=/ whatever scope it is handed', () => {
    expect(clearingCookie('__Host-sid', { path: '/app', domain: 'example.test' })).toBe(
      '__Host-sid=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Secure; HttpOnly; SameSite=Lax',
    );
  });

  it('deletes a partitioned cookie with a partitioned, secure Set-Cookie', () => {
    expect(clearingCookie('sid', { partitioned: true })).toContain('; Secure; Partitioned;');
  });
});

describe('where a token cookie was set', () => {
  it('takes the default-path of the login route for a cookie set without a Path', () => {
    const w = watched('cookie:sid');
    w.learn(head('sid=abc; HttpOnly'), '/account/login?next=/');
    expect(w.clearing('sid')).toMatch(/^sid=; Path=\/account;/);
  });

  it('prefers what the app did over what the config states', () => {
    const w = watched({ from: 'cookie:sid', chunked: false, path: '/cfg', domain: 'cfg.test' });
    expect(w.clearing('sid')).toMatch(/^sid=; Path=\/cfg; Domain=cfg\.test;/);
    w.learn(head('sid=abc; Path=/app; Secure'), '/login');
    expect(w.clearing('sid')).toMatch(/^sid=; Path=\/app; Max-Age=0;.*; Secure;/);
  });

  it('remembers a bounded number of names and forgets the oldest', () => {
    const w = watched({ from: 'cookie:JSESSIONID.*', chunked: false, path: '/cfg' });
    for (let i = 0; i < 65; i++) w.learn(head(`JSESSIONID.n${i}=v; Path=/app`), '/login');
    expect(w.clearing('JSESSIONID.n0')).toMatch(/Path=\/cfg;/);
    expect(w.clearing('JSESSIONID.n64')).toMatch(/Path=\/app;/);
  });
});

describe('the tokens a response sets', () => {
  it('marks the tokens of the first cookie source as the session cookie, the others not', () => {
    const w = watched('cookie:PHPSESSID', 'cookie:REMEMBERME');
    const set = w.tokensSet(head('REMEMBERME=; Max-Age=0', 'PHPSESSID=abc; path=/'));
    expect(set).toEqual([
      { names: ['REMEMBERME'], value: null, session: false },
      { names: ['PHPSESSID'], value: 'abc', session: true },
    ]);
  });

  it('joins chunks in index order and ignores the base cookie that only counts them', () => {
    const w = watched({ from: 'cookie:.AspNetCore.Cookies', chunked: true });
    const set = w.tokensSet(
      head(
        '.AspNetCore.Cookies=chunks-2; path=/',
        '.AspNetCore.CookiesC2=world; path=/',
        '.AspNetCore.CookiesC1=hello-; path=/',
      ),
    );
    expect(set).toEqual([
      {
        names: ['.AspNetCore.Cookies', '.AspNetCore.CookiesC2', '.AspNetCore.CookiesC1'],
        value: 'hello-world',
        session: true,
      },
    ]);
  });

  it('reports a chunked cookie whose chunks are all deleted as cleared', () => {
    const w = watched({ from: 'cookie:appSession', chunked: true });
    expect(w.tokensSet(head('appSession.0=; Max-Age=0', 'appSession.1=; Max-Age=0'))).toEqual([
      { names: ['appSession.0', 'appSession.1'], value: null, session: true },
    ]);
  });
});

describe('the token cookies a request carries', () => {
  it('names every configured token cookie present, as sent', () => {
    const w = watched('cookie:session', 'cookie:remember_token', 'bearer');
    expect(w.presentIn('theme=dark; session=a; remember.token=b; other=c')).toEqual([
      'session',
      'remember.token',
    ]);
  });
});
