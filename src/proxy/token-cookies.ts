import type { RequestCookieSource, RequestTokenSource } from '../config/sources.js';
import {
  clearingCookie,
  compileCookieName,
  cookiePairs,
  parseSetCookie,
  type CookieScope,
  type SetCookie,
} from '../tokens/cookies.js';
import { compileValueTransform, type ValueTransform } from '../tokens/value.js';
import type { ResponseHead } from './forward.js';

/** A token a response sets: the cookie(s) that carry it and its value (`null`: the app cleared it). */
export interface SetToken {
  readonly names: readonly string[];
  readonly value: string | null;
  /**
   * Of the first cookie source of `tokens`, the session cookie (PHPSESSID beside REMEMBERME): the app
   * clearing it ends the session; clearing another (a refused remember-me value) does not.
   */
  readonly session: boolean;
}

/**
 * The cookies that carry session tokens (the `cookie:` entries of `tokens`), compiled once: which
 * tokens a response sets (chunks joined, as the request reader joins them), which token cookies a
 * request carries, and how to delete one in the browser. A browser deletes a cookie only with a
 * Set-Cookie of the same name, Domain and Path, so the Path, Domain and Secure the app set each token
 * cookie with are remembered from the responses the gateway sees (logins, rotations), falling back to
 * what the config states (`path`, `domain`) for a replica that saw none yet.
 */
export interface WatchedCookies {
  /**
   * The tokens the response sets, the last Set-Cookie of each name winning (PHP sends a new id and
   * then its deletion); undefined when it sets none. Remembers how each cookie was set.
   * `requestPath`: the path the response answers, for a cookie set without a Path (its default-path).
   */
  tokensSet(head: ResponseHead, requestPath?: string): SetToken[] | undefined;
  /** Remembers how the response's token cookies were set (a login response's cookies). */
  learn(head: ResponseHead, requestUrl: string): void;
  /** Is a cookie of this name (as a Set-Cookie names it) one of the token cookies? */
  watches(name: string): boolean;
  /** The names (as sent) of every token cookie in a `Cookie` header. */
  presentIn(cookieHeader: string): string[];
  /** A Set-Cookie that deletes the cookie `name` where the app set it; `secure` adds Secure (TLS). */
  clearing(name: string, secure?: boolean): string;
  /** What a rotation does when the store cannot register its new value: `closed` refuses it (503). */
  readonly failMode: 'open' | 'closed';
}

export interface WatchedCookiesOptions {
  readonly failMode?: 'open' | 'closed';
}

interface Source {
  /** Is this a cookie of the source: -1 for a plain (or chunk base) name, n for chunk n, undefined if not. */
  readonly part: (name: string) => number | undefined;
  readonly chunked: boolean;
  readonly transform: ValueTransform;
  readonly configured: CookieScope | undefined;
  /** The last scope learned for any name of this source (a pattern's other names, chunks not seen). */
  learned: CookieScope | undefined;
}

/** Names of distinct cookies remembered; patterns (`JSESSIONID.<node>`) and chunks stay bounded. */
const MAX_LEARNED = 64;
const CHUNK = /^(?:C|\.)(\d+)$/;
/** ASP.NET Core's base cookie of a chunked value: it names the count, it is not the credential. */
const CHUNK_COUNT = /^chunks-\d+$/;

function compileSource(o: RequestCookieSource): Source {
  const name = o.name;
  const configured =
    o.path !== undefined || o.domain !== undefined ? { path: o.path, domain: o.domain } : undefined;
  const transform = compileValueTransform(o.value);
  if (o.chunked) {
    // As the request reader (`joinChunks`) and the login side read chunks: `Name`, `NameC1..N`, `Name.0..n`.
    const part = (n: string): number | undefined => {
      if (n === name) return -1;
      if (!n.startsWith(name)) return undefined;
      const m = CHUNK.exec(n.slice(name.length));
      return m === null ? undefined : Number(m[1]);
    };
    return { part, chunked: true, transform, configured, learned: undefined };
  }
  const matcher = compileCookieName(name);
  return {
    part: (n) => (matcher.test(n) ? -1 : undefined),
    chunked: false,
    transform,
    configured,
    learned: undefined,
  };
}

/** RFC 6265 section 5.1.4: the directory of the request path. */
function defaultPath(requestPath: string): string {
  if (!requestPath.startsWith('/')) return '/';
  const last = requestPath.lastIndexOf('/');
  return last <= 0 ? '/' : requestPath.slice(0, last);
}

export function compileWatchedCookies(
  sources: readonly RequestTokenSource[],
  options: WatchedCookiesOptions = {},
): WatchedCookies | undefined {
  const compiled: Source[] = [];
  for (const s of sources) if (s.kind === 'cookie') compiled.push(compileSource(s));
  if (compiled.length === 0) return undefined;
  const byName = new Map<string, CookieScope>();

  const match = (name: string): { source: Source; part: number } | undefined => {
    for (const source of compiled) {
      const part = source.part(name);
      if (part !== undefined) return { source, part };
    }
    return undefined;
  };

  const remember = (c: SetCookie, source: Source, requestPath: string | undefined) => {
    if (c.clears) return;
    const known = byName.get(c.name);
    const path =
      c.path !== undefined && c.path.startsWith('/')
        ? c.path
        : requestPath !== undefined
          ? defaultPath(requestPath)
          : known?.path;
    const scope: CookieScope = { path, domain: c.domain, secure: c.secure, partitioned: c.partitioned };
    source.learned = scope;
    if (
      known !== undefined &&
      known.path === path &&
      known.domain === c.domain &&
      known.secure === c.secure &&
      known.partitioned === c.partitioned
    )
      return;
    byName.delete(c.name);
    if (byName.size >= MAX_LEARNED) {
      const oldest = byName.keys().next();
      if (oldest.done !== true) byName.delete(oldest.value);
    }
    byName.set(c.name, scope);
  };

  const tokensSet = (head: ResponseHead, requestPath?: string): SetToken[] | undefined => {
    let last: Map<string, { source: Source; part: number; value: string | null }> | undefined;
    const h = head.headers;
    for (let i = 0; i < h.length; i += 2) {
      const name = h[i] as string;
      if (name.length !== 10 || name.toLowerCase() !== 'set-cookie') continue;
      const c = parseSetCookie(h[i + 1] as string);
      if (c === undefined) continue;
      const m = match(c.name);
      if (m === undefined) continue;
      remember(c, m.source, requestPath);
      (last ??= new Map()).set(c.name, { ...m, value: c.clears ? null : c.value });
    }
    if (last === undefined) return undefined;
    const out: SetToken[] = [];
    let groups:
      | Map<Source, { names: string[]; base: string | null | undefined; chunks: [number, string][] }>
      | undefined;
    for (const [name, e] of last) {
      if (!e.source.chunked) {
        out.push({
          names: [name],
          value: e.value === null ? null : (e.source.transform(e.value) ?? null),
          session: e.source === compiled[0],
        });
        continue;
      }
      groups ??= new Map();
      let g = groups.get(e.source);
      if (g === undefined) {
        g = { names: [], base: undefined, chunks: [] };
        groups.set(e.source, g);
      }
      g.names.push(name);
      if (e.part === -1) g.base = e.value;
      else if (e.value !== null) g.chunks.push([e.part, e.value]);
    }
    for (const [source, g] of groups ?? []) {
      // Joined as the next request will present them; the base's `chunks-N` is only their count.
      let joined: string | null;
      if (g.chunks.length > 0)
        joined = g.chunks
          .sort((a, b) => a[0] - b[0])
          .map((c) => c[1])
          .join('');
      else if (g.base === undefined || g.base === null) joined = null;
      else if (CHUNK_COUNT.test(g.base)) continue;
      else joined = g.base;
      out.push({
        names: g.names,
        value: joined === null ? null : (source.transform(joined) ?? null),
        session: source === compiled[0],
      });
    }
    return out;
  };

  return {
    failMode: options.failMode ?? 'closed',
    tokensSet,
    learn(head, requestUrl) {
      const q = requestUrl.indexOf('?');
      tokensSet(head, q === -1 ? requestUrl : requestUrl.slice(0, q));
    },
    watches: (name) => match(name) !== undefined,
    presentIn(header) {
      const names: string[] = [];
      for (const p of cookiePairs(header)) {
        if (names.includes(p.name)) continue;
        if (match(p.name) !== undefined || (p.canonical !== p.name && match(p.canonical) !== undefined))
          names.push(p.name);
      }
      return names;
    },
    clearing(name, secure = false) {
      const source = match(name)?.source ?? match(name.replace(/[. []/g, '_'))?.source;
      const learned = byName.get(name);
      const scope =
        learned !== undefined
          ? { ...learned, path: learned.path ?? source?.configured?.path }
          : (source?.configured ?? source?.learned);
      return clearingCookie(name, secure ? { ...scope, secure } : scope);
    },
  };
}
