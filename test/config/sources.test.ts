/**
 * Token and user sources parsed once, by the schema: a source string and its `{ from }` object give one
 * typed source, and the typed source still reads as it was written.
 */
import { describe, expect, it } from 'vitest';
import {
  presentAs,
  presentedSource,
  requestTokenSource,
  sourceText,
  tokenSource,
  userSource,
} from '../../src/config/sources.js';

describe('source strings', () => {
  it('parse into their kind and argument, split at the first colon only', () => {
    expect(tokenSource.parse('json:data.token')).toEqual({ kind: 'json', path: 'data.token', value: {} });
    expect(tokenSource.parse('cookie:a:b')).toEqual({
      kind: 'cookie',
      name: 'a:b',
      chunked: false,
      value: {},
    });
    expect(requestTokenSource.parse('bearer')).toEqual({ kind: 'bearer', value: {} });
    expect(requestTokenSource.parse('pathparam:jsessionid')).toEqual({
      kind: 'pathparam',
      name: 'jsessionid',
      value: {},
    });
    expect(userSource.parse('request.form:log:in')).toEqual({
      kind: 'request.form',
      field: 'log:in',
      value: {},
    });
    expect(userSource.parse('jwt:sub')).toEqual({ kind: 'jwt', claim: 'sub', value: {} });
    expect(userSource.parse('path:user')).toEqual({ kind: 'path', param: 'user', value: {} });
    expect(presentedSource.parse('request.json:token')).toEqual({ kind: 'request.json', path: 'token' });
    expect(presentAs.parse('header:X-Token')).toEqual({ kind: 'header', name: 'X-Token' });
  });

  it('give the same source as their { from } object, whose options land in `value`', () => {
    expect(requestTokenSource.parse({ from: 'cookie:sid' })).toEqual(requestTokenSource.parse('cookie:sid'));
    expect(
      requestTokenSource.parse({ from: 'cookie:wp_*', split: '|', field: 2, chunked: true, path: '/wp' }),
    ).toEqual({ kind: 'cookie', name: 'wp_*', chunked: true, value: { split: '|', field: 2 }, path: '/wp' });
    expect(userSource.parse({ from: 'cookie:sess', capture: '^([^.]+)' })).toEqual({
      kind: 'cookie',
      name: 'sess',
      value: { capture: '^([^.]+)' },
    });
  });

  it('read back as written', () => {
    const written = {
      token: ['json:a.b', 'cookie:/^JSESSIONID\\..+$/', 'header:X-Auth'],
      request: ['bearer', 'cookie:sid', 'header:x', 'pathparam:jsessionid', 'query:access_token'],
      user: [
        'json:user.id',
        'request.json:login',
        'request.form:user',
        'jwt:sub',
        'header:x-user',
        'path:u',
        'cookie:u',
      ],
      presented: ['request.json:token', 'request.form:token'],
      presentAs: ['bearer', 'cookie:sid', 'header:x-token'],
    };
    const read = {
      token: written.token.map((s) => sourceText(tokenSource.parse(s))),
      request: written.request.map((s) => sourceText(requestTokenSource.parse(s))),
      user: written.user.map((s) => sourceText(userSource.parse(s))),
      presented: written.presented.map((s) => sourceText(presentedSource.parse(s))),
      presentAs: written.presentAs.map((s) => sourceText(presentAs.parse(s))),
    };
    expect(read).toEqual(written);
  });
});
