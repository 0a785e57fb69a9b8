import { describe, expect, it } from 'vitest';
import { normalizePath } from '../../src/proxy/path.js';
import { compileRoute } from '../../src/tokens/route.js';

describe('path normalisation', () => {
  it.each([
    ['/api/login', '/api/login'],
    ['/api//login', '/api/login'],
    ['/api/./login', '/api/login'],
    ['/api/x/../login', '/api/login'],
    ['/api/%6Cogin', '/api/login'],
    ['/log%69n', '/login'],
    ['/a/%2e%2E/login', '/login'],
    ['/a%2cb%40c', '/a,b@c'],
    ['/login;jsessionid=ABC', '/login'],
    ['/a/..;/login', '/login'],
    ['/a/b/?q=1', '/a/b/'],
    ['/../../etc', '/etc'],
  ])('normalises %s to %s', (raw, path) => {
    expect(normalizePath(raw)).toEqual({ ok: true, path });
  });

  it.each([
    ['/a%3fb', '/a%3Fb'],
    ['/a%23b', '/a%23b'],
    ['/a%25', '/a%25'],
    ['/a%25zz', '/a%25zz'],
    ['/a%20b', '/a%20b'],
    ['/caf%c3%a9', '/caf%C3%A9'],
  ])('keeps the escape of a character that is not plain in %s (hex upper-cased): %s', (raw, path) => {
    expect(normalizePath(raw)).toEqual({ ok: true, path });
  });

  it.each([
    ['http://h/api//login', '/api/login'],
    ['HTTPS://h:8443/a/../login?x=1', '/login'],
    ['http://h', '/'],
    ['http://h?q=/login', '/'],
  ])('takes the path of the absolute-form %s: %s', (raw, path) => {
    expect(normalizePath(raw)).toEqual({ ok: true, path });
  });

  it.each([
    ['/api%2flogin', 'encoded slash'],
    ['/api%5Clogin', 'encoded backslash'],
    ['/api\\login', 'backslash'],
    ['http://h/api\\login', 'backslash in absolute-form'],
    ['/a%00b', 'encoded NUL'],
    ['/bad%zz', 'malformed escape'],
    ['/bad%2', 'truncated escape'],
    ['/login%3Bx', 'encoded semicolon (Tomcat: part of the segment; others: a path parameter)'],
    ['/x/%252e%252e/y', 'encoded percent before hex digits (double encoding)'],
    ['/x/%25%32%65', 'encoded percent before escaped hex digits'],
    ['/%C0%AE%C0%AE/etc', 'overlong UTF-8 (a dot to lenient decoders)'],
    ['/%E9', 'malformed UTF-8'],
    ['x:y', 'a target of another form'],
    ['ftp://h/login', 'a scheme other than http(s)'],
    ['http:///login', 'absolute-form without a host'],
    ['', 'an empty target'],
  ])('refuses %s (%s)', (raw) => {
    expect(normalizePath(raw)).toEqual({ ok: false, reason: expect.any(String) });
  });

  it('answers * as *', () => {
    expect(normalizePath('*')).toEqual({ ok: true, path: '*' });
  });
});

describe('route patterns', () => {
  it('matches method and literal path', () => {
    const r = compileRoute('POST /api/login');
    expect(r.matches('POST', '/api/login')).toEqual({});
    expect(r.matches('GET', '/api/login')).toBeUndefined();
    expect(r.matches('POST', '/api/login/x')).toBeUndefined();
  });

  it('captures :params and matches a trailing /**', () => {
    expect(compileRoute('POST /t/:tenant/login').matches('POST', '/t/acme/login')).toEqual({
      tenant: 'acme',
    });
    expect(compileRoute('* /oauth/**').matches('GET', '/oauth/callback/x')).toEqual({});
    expect(compileRoute('GET,POST /a').matches('DELETE', '/a')).toBeUndefined();
  });
});

describe('a ** inside a route pattern', () => {
  const route = compileRoute('POST /app/**/j_security_check');

  it('matches any depth below its prefix, none included', () => {
    expect(route.matches('POST', '/app/j_security_check')).toEqual({});
    expect(route.matches('POST', '/app/x/y/j_security_check')).toEqual({});
    expect(route.matches('POST', '/APP/X/J_SECURITY_CHECK')).toEqual({});
  });

  it('matches nothing outside its prefix or ending elsewhere', () => {
    expect(route.matches('POST', '/other/j_security_check')).toBeUndefined();
    expect(route.matches('POST', '/app/x/j_security_check/more')).toBeUndefined();
    expect(route.matches('POST', '/app/x')).toBeUndefined();
  });

  it('takes :params on either side', () => {
    expect(compileRoute('GET /t/:tenant/**/file/:name').matches('GET', '/t/acme/a/b/file/x')).toEqual({
      tenant: 'acme',
      name: 'x',
    });
  });
});
