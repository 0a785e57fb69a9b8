import type { IncomingHttpHeaders } from 'node:http';
import type { RequestTokenSource } from '../config/sources.js';
import {
  AMBIGUOUS,
  compileCookieName,
  cookiePairs,
  readCookie,
  readCookies,
  type CookieNameMatcher,
} from './cookies.js';
import { readFormField } from './form.js';
import { compileValueTransform, type ValueTransform } from './value.js';

export type TokenCarrier = 'bearer' | 'cookie' | 'header' | 'pathparam' | 'query';

/** The token a request carries, and where. */
export interface PresentedToken {
  readonly value: string;
  readonly carrier: TokenCarrier;
  /** For cookies: the cookie name(s) that carried it (cleared on rejection). */
  readonly cookieNames?: readonly string[];
  /**
   * The other tokens the request carries (a remember-me cookie beside the session cookie), in source
   * order: each is checked too, since the app may revive a session from any of them.
   */
  readonly others?: readonly PresentedToken[];
}

/** A token cookie the gateway cannot read as the app would (sent twice with two values, undecodable). */
export { AMBIGUOUS };
export type TokenRead = PresentedToken | undefined | typeof AMBIGUOUS;

/**
 * Reads the token of a request from the configured places, first match wins; AMBIGUOUS when a token
 * cookie cannot be read unambiguously (the request is refused). Compiled at startup.
 */
export type RequestTokenReader = (headers: IncomingHttpHeaders, url: string) => TokenRead;

type SourceReader = (headers: IncomingHttpHeaders, url: string) => TokenRead;

function bearerReader(transform: ValueTransform): SourceReader {
  return (headers) => {
    const auth = headers.authorization;
    // RFC 6750 section 2.1; the scheme is case-insensitive (RFC 9110 section 11.1).
    if (auth === undefined || auth.length < 8 || (auth.charCodeAt(6) !== 32 && auth.charCodeAt(6) !== 9))
      return undefined;
    if (auth.slice(0, 6).toLowerCase() !== 'bearer') return undefined;
    const value = transform(auth.slice(7).trim());
    return value === undefined ? undefined : { value, carrier: 'bearer' };
  };
}

function cookieReader(matcher: CookieNameMatcher, transform: ValueTransform, chunked: boolean): SourceReader {
  if (chunked) {
    return (headers) => {
      const header = headers.cookie;
      if (header === undefined) return undefined;
      const joined = joinChunks(header, matcher.source);
      if (joined === undefined || joined === AMBIGUOUS) return joined;
      const value = transform(joined.value);
      return value === undefined ? undefined : { value, carrier: 'cookie', cookieNames: joined.names };
    };
  }
  if (matcher.exact !== undefined) {
    const name = matcher.exact;
    const names = [name];
    return (headers) => {
      const header = headers.cookie;
      if (header === undefined) return undefined;
      const raw = readCookie(header, name);
      if (raw === AMBIGUOUS) return AMBIGUOUS;
      const value = raw === undefined ? undefined : transform(raw);
      return value === undefined ? undefined : { value, carrier: 'cookie', cookieNames: names };
    };
  }
  return (headers) => {
    const header = headers.cookie;
    if (header === undefined) return undefined;
    const cookies = readCookies(header, matcher);
    if (cookies === AMBIGUOUS) return AMBIGUOUS;
    for (const c of cookies) {
      const value = transform(c.value);
      if (value !== undefined) return { value, carrier: 'cookie', cookieNames: [c.name] };
    }
    return undefined;
  };
}

/**
 * One credential in chunk cookies: `Name` plus `NameC1..N` (ASP.NET Core, whose `Name` then holds
 * `chunks-N`) or `Name.0..n` (express-openid-connect). Chunks are joined in index order.
 */
export function joinChunks(
  header: string,
  base: string,
): { value: string; names: string[] } | undefined | typeof AMBIGUOUS {
  const chunks: { index: number; name: string; value: string }[] = [];
  let baseValue: string | undefined;
  for (const p of cookiePairs(header)) {
    const name = p.canonical === base ? base : p.name;
    const isBase = name === base;
    const m = isBase || !name.startsWith(base) ? null : /^(?:C|\.)(\d+)$/.exec(name.slice(base.length));
    if (!isBase && m === null) continue;
    if (p.value === AMBIGUOUS) return AMBIGUOUS;
    if (isBase) {
      if (baseValue !== undefined && baseValue !== p.value) return AMBIGUOUS;
      baseValue = p.value;
      continue;
    }
    const index = Number((m as RegExpExecArray)[1]);
    const prev = chunks.find((c) => c.index === index);
    if (prev !== undefined) {
      if (prev.value !== p.value) return AMBIGUOUS;
      continue;
    }
    chunks.push({ index, name, value: p.value });
  }
  if (chunks.length === 0) return baseValue ? { value: baseValue, names: [base] } : undefined;
  chunks.sort((a, b) => a.index - b.index);
  const names = chunks.map((c) => c.name);
  if (baseValue !== undefined) names.unshift(base);
  return { value: chunks.map((c) => c.value).join(''), names };
}

function headerReader(name: string, transform: ValueTransform): SourceReader {
  const key = name.toLowerCase();
  return (headers) => {
    const raw = headers[key];
    if (raw === undefined) return undefined;
    // Node joins a repeated header with ", ": the app may read either value, so neither is trusted.
    if (Array.isArray(raw) || raw.includes(',')) return AMBIGUOUS;
    const value = transform(raw.trim());
    return value === undefined ? undefined : { value, carrier: 'header' };
  };
}

/** `;jsessionid=ABC` path parameters (servlet containers without cookies). */
function pathParamReader(name: string, transform: ValueTransform): SourceReader {
  const marker = `;${name}=`;
  return (_headers, url) => {
    const at = url.indexOf(marker);
    if (at === -1) return undefined;
    const start = at + marker.length;
    let end = start;
    while (end < url.length && url[end] !== '?' && url[end] !== ';' && url[end] !== '/' && url[end] !== '#')
      end++;
    const value = transform(url.slice(start, end));
    return value === undefined ? undefined : { value, carrier: 'pathparam' };
  };
}

/**
 * A query-string token (RFC 6750 section 2.3 `access_token`; passport-http-bearer and many APIs accept
 * it), read as form fields are: sent twice, or in a form stacks read differently, it is AMBIGUOUS.
 */
function queryReader(name: string, transform: ValueTransform): SourceReader {
  return (_headers, url) => {
    const q = url.indexOf('?');
    if (q === -1) return undefined;
    const hash = url.indexOf('#', q);
    const r = readFormField(url.slice(q + 1, hash === -1 ? undefined : hash), name);
    if (r.kind === 'ambiguous') return AMBIGUOUS;
    if (r.kind === 'absent') return undefined;
    const value = transform(r.value);
    return value === undefined ? undefined : { value, carrier: 'query' };
  };
}

export function compileRequestTokenReader(sources: readonly RequestTokenSource[]): RequestTokenReader {
  const readers = sources.map((s): SourceReader => {
    const transform = compileValueTransform(s.value);
    switch (s.kind) {
      case 'bearer':
        return bearerReader(transform);
      case 'cookie':
        return cookieReader(compileCookieName(s.name), transform, s.chunked);
      case 'header':
        return headerReader(s.name, transform);
      case 'query':
        return queryReader(s.name, transform);
      case 'pathparam':
        return pathParamReader(s.name, transform);
    }
  });
  if (readers.length === 1) return readers[0] as SourceReader;
  return (headers, url) => {
    let first: PresentedToken | undefined;
    let others: PresentedToken[] | undefined;
    for (const r of readers) {
      const t = r(headers, url);
      if (t === AMBIGUOUS) return AMBIGUOUS;
      if (t === undefined || t.value === first?.value) continue;
      if (first === undefined) first = t;
      else (others ??= []).push(t);
    }
    return others === undefined || first === undefined ? first : { ...first, others };
  };
}
