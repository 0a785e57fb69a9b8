import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { requestTokenSource } from '../../src/config/sources.js';
import { compileCookieName, parseSetCookie, readCookie } from '../../src/tokens/cookies.js';
import { compileRequestTokenReader } from '../../src/tokens/request-token.js';
import { createTokenIdOf } from '../../src/tokens/token-id.js';

describe('token ids', () => {
  it('are keyed: the same token under two secrets gives two ids', () => {
    const a = createTokenIdOf('secret-one-0123456789')('tok');
    const b = createTokenIdOf('secret-two-0123456789')('tok');
    expect(a).not.toBe(b);
    expect(a).not.toContain('tok');
    expect(a).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });
});

describe('cookies', () => {
  it('reads one cookie from a Cookie header', () => {
    expect(readCookie('a=1; sid=xyz; b=2', 'sid')).toBe('xyz');
    expect(readCookie('sidx=1; sid="q"', 'sid')).toBe('q');
    expect(readCookie('a=1', 'sid')).toBeUndefined();
    expect(readCookie(';;; =; sid', 'sid')).toBeUndefined();
  });

  it('anchors cookie name patterns', () => {
    const m = compileCookieName('grafana_session');
    expect(m.test('grafana_session_expiry')).toBe(false);
    const wp = compileCookieName('wordpress_logged_in_*');
    expect(wp.test('wordpress_logged_in_0a1b')).toBe(true);
    expect(wp.test('xwordpress_logged_in_0a1b')).toBe(false);
  });

  it('recognises a Set-Cookie that clears', () => {
    expect(parseSetCookie('sid=; Path=/; Max-Age=0')?.clears).toBe(true);
    expect(parseSetCookie('sid=x; Expires=Thu, 01 Jan 1970 00:00:00 GMT')?.clears).toBe(true);
    expect(parseSetCookie('sid=x; Path=/')?.clears).toBe(false);
  });
});

/** The reader of `tokens` entries as written in a config. */
const reader = (...sources: z.input<typeof requestTokenSource>[]) =>
  compileRequestTokenReader(sources.map((s) => requestTokenSource.parse(s)));

describe('request tokens', () => {
  it('reads the first configured place that carries one', () => {
    const read = reader('cookie:sid', 'bearer');
    expect(read({ authorization: 'Bearer abc' }, '/')).toEqual({ value: 'abc', carrier: 'bearer' });
    expect(read({ authorization: 'bearer abc', cookie: 'sid=c1' }, '/')).toMatchObject({
      value: 'c1',
      carrier: 'cookie',
    });
    expect(read({ authorization: 'Basic abc' }, '/')).toBeUndefined();
  });

  it('reads a field of a cookie value and a path parameter', () => {
    const wp = reader({ from: 'cookie:wordpress_logged_in_*', split: '|', field: 2 });
    expect(wp({ cookie: 'wordpress_logged_in_ab12=admin%7C1700000000%7Ctok123%7Chmac' }, '/')).toMatchObject({
      value: 'tok123',
      cookieNames: ['wordpress_logged_in_ab12'],
    });
    const jsid = reader('pathparam:jsessionid');
    expect(jsid({}, '/app/page;jsessionid=ABC123?x=1')).toEqual({ value: 'ABC123', carrier: 'pathparam' });
  });

  it('joins chunked cookies in order', () => {
    const read = reader({ from: 'cookie:.AspNetCore.Cookies', chunked: true });
    expect(
      read(
        { cookie: '.AspNetCore.CookiesC2=def; .AspNetCore.Cookies=chunks-2; .AspNetCore.CookiesC1=abc' },
        '/',
      ),
    ).toMatchObject({ value: 'abcdef' });
  });
});

describe('token ids are HMAC-SHA256', () => {
  it('matches RFC 4231 test case 2', () => {
    const id = createTokenIdOf('Jefe')('what do ya want for nothing?');
    expect(Buffer.from(id, 'base64url').toString('hex')).toBe(
      '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
    );
  });

  it('matches RFC 4231 test case 6 (a key longer than the block)', () => {
    const key = Buffer.alloc(131, 0xaa).toString('latin1');
    // The key is given as text: 0xaa as UTF-8 is two bytes, so compare with createHmac on the same bytes.
    const id = createTokenIdOf(key)('Test Using Larger Than Block-Size Key - Hash Key First');
    expect(id).toBe(
      createHmac('sha256', Buffer.from(key, 'utf8'))
        .update('Test Using Larger Than Block-Size Key - Hash Key First')
        .digest('base64url'),
    );
  });

  it('hashes non-ASCII tokens as UTF-8', () => {
    expect(createTokenIdOf('secret-0123456789')('ü€𝄞')).toBe(
      createHmac('sha256', 'secret-0123456789').update('ü€𝄞').digest('base64url'),
    );
  });

  const hmac = (token: string) => createHmac('sha256', 'secret-0123456789').update(token).digest('base64url');

  it('reuses its buffers without leaking bytes of a longer token into a shorter one', () => {
    const tokenIdOf = createTokenIdOf('secret-0123456789');
    for (const token of ['a'.repeat(300), 'b', 'c'.repeat(40), ''])
      expect(tokenIdOf(token)).toBe(hmac(token));
  });

  it('hashes tokens larger than its preallocated buffer', () => {
    const token = 'x'.repeat(5000) + '€';
    expect(createTokenIdOf('secret-0123456789')(token)).toBe(hmac(token));
  });

  it('gives the same ids with the memo, for repeated, evicted and over-long tokens', () => {
    const tokenIdOf = createTokenIdOf('secret-0123456789', { memo: 2 });
    const tokens = ['t1', 't2', 't1', 't3', 't2', 'y'.repeat(3000), 'y'.repeat(3000), 't1'];
    expect(tokens.map(tokenIdOf)).toEqual(tokens.map(hmac));
  });
});
