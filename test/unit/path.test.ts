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
    ['/login;jsessionid=ABC', '/login'],
    ['/a/b/?q=1', '/a/b/'],
    ['/../../etc', '/etc'],
  ])('normalises %s to %s', (raw, path) => {
    expect(normalizePath(raw)).toEqual({ ok: true, path });
  });

  it.each(['/api%2flogin', '/api%5Clogin', '/api\\login', '/a%00b', '/bad%zz'])(
    'refuses the ambiguous %s',
    (raw) => {
      expect(normalizePath(raw).ok).toBe(false);
    },
  );
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
