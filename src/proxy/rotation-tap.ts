import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { SessionService } from '../sessions/service.js';
import { compileCookieName, parseSetCookie } from '../tokens/cookies.js';
import { compileValueTransform, type ValueOptions, type ValueTransform } from '../tokens/value.js';
import type { RequestTokenSourceConfig } from '../config/schema.js';
import type { TokenIdOf } from '../tokens/token-id.js';
import type { HeadAction, ResponseHead, ResponseTap } from './forward.js';

/** The cookies that carry session tokens, compiled once; responses that set one are rotations. */
export interface WatchedCookies {
  /**
   * The cookie a `Set-Cookie` of a watched cookie sets and the token value it carries (`null` if it
   * clears it); undefined if the cookie is not watched.
   */
  read(setCookie: string): { readonly name: string; readonly value: string | null } | undefined;
}

export function compileWatchedCookies(
  sources: readonly RequestTokenSourceConfig[],
): WatchedCookies | undefined {
  const watched: { test: (n: string) => boolean; transform: ValueTransform }[] = [];
  for (const s of sources) {
    const o: { from: string } & ValueOptions = typeof s === 'string' ? { from: s } : s;
    if (!o.from.startsWith('cookie:')) continue;
    watched.push({ test: compileCookieName(o.from.slice(7)).test, transform: compileValueTransform(o) });
  }
  if (watched.length === 0) return undefined;
  return {
    read(header) {
      const c = parseSetCookie(header);
      if (!c) return undefined;
      for (const w of watched) {
        if (!w.test(c.name)) continue;
        return { name: c.name, value: c.clears ? null : (w.transform(c.value) ?? null) };
      }
      return undefined;
    },
  };
}

export interface RotationDeps {
  readonly sessions: SessionService;
  readonly tokenIdOf: TokenIdOf;
  readonly watched: WatchedCookies;
  readonly metrics: Metrics;
  readonly logger: Logger;
}

/**
 * Rotating session cookies (signed-cookie stores, `session_regenerate_id`, remember-me re-logins):
 * a response that sets a watched token for a request that carried a live one adds the new value to
 * that session before the response is released; a response that only clears it ends the session.
 * Responses that set no watched cookie pass at once and pay one scan of their header names.
 */
/** The last value the response sets for each watched cookie (`null`: cleared); undefined if none. */
function lastSetCookies(head: ResponseHead, watched: WatchedCookies): Map<string, string | null> | undefined {
  // The browser keeps the last Set-Cookie of each name: PHP sends a new id and then its deletion.
  let last: Map<string, string | null> | undefined;
  const h = head.headers;
  for (let i = 0; i < h.length; i += 2) {
    const name = h[i] as string;
    if (name.length !== 10 || name.toLowerCase() !== 'set-cookie') continue;
    const set = watched.read(h[i + 1] as string);
    if (set !== undefined) (last ??= new Map()).set(set.name, set.value);
  }
  return last;
}

/**
 * Cookies issued before login (Rails' cookie store, Laravel and PHP apps set their session cookie on
 * the anonymous login page, with the CSRF secret in it): a response to a request without a live token
 * that sets a watched cookie has its values remembered as anonymous before it is released, so that
 * `unknownTokens: reject` lets the page's own assets and the login POST through. One tap, shared by
 * every such request; built only under `unknownTokens: reject`.
 */
export function anonymousTap(deps: RotationDeps): ResponseTap {
  return {
    onHead(head): HeadAction {
      const last = lastSetCookies(head, deps.watched);
      if (last === undefined) return 'stream';
      const ids: string[] = [];
      for (const value of last.values()) if (value !== null) ids.push(deps.tokenIdOf(value));
      if (ids.length === 0) return 'stream';
      return deps.sessions.rememberAnonymous(ids).then(
        () => deps.metrics.tokenUpdates.labels('anonymous').inc(),
        (err: unknown) => {
          // Released anyway: the next request with the value is refused as unknown, never let in.
          deps.metrics.storeErrors.inc();
          deps.logger.error(
            { code: 'SG_ERR_ROTATION', err: (err as Error).message },
            'could not remember an anonymous token',
          );
        },
      );
    },
    onBody: () => Promise.resolve(),
    onOverflow: () => true,
  };
}

export function rotationTap(
  presentedTokenId: string,
  presentedCookies: readonly string[],
  deps: RotationDeps,
): ResponseTap {
  return {
    onHead(head): HeadAction {
      const last = lastSetCookies(head, deps.watched);
      if (last === undefined) return 'stream';
      let added: string[] | undefined;
      let cleared = false;
      for (const [name, value] of last) {
        if (value !== null) (added ??= []).push(deps.tokenIdOf(value));
        else if (presentedCookies.includes(name)) cleared = true;
      }
      // The app cleared the very cookie this request was let in by (a logout, or a refused remember-me
      // value): whatever else it sets (an anonymous session id) is not a rotation of that session.
      if (cleared) added = undefined;
      if (added !== undefined) {
        const ids = added.filter((id) => id !== presentedTokenId);
        if (ids.length === 0) return 'stream';
        return deps.sessions.addTokens(presentedTokenId, ids).then(
          (session) => {
            deps.metrics.tokenUpdates.labels(session ? 'rotation' : 'rotation_unlinked').inc();
          },
          (err: unknown) => {
            deps.metrics.storeErrors.inc();
            deps.logger.error(
              { code: 'SG_ERR_ROTATION', err: (err as Error).message },
              'could not register a rotated token',
            );
          },
        );
      }
      if (cleared) {
        return deps.sessions.endByToken(presentedTokenId, 'logged_out').then(
          (ended) => {
            if (ended) deps.metrics.tokenUpdates.labels('cleared').inc();
          },
          (err: unknown) => {
            deps.metrics.storeErrors.inc();
            deps.logger.error(
              { code: 'SG_ERR_ROTATION', err: (err as Error).message },
              'could not end a session whose cookie was cleared',
            );
          },
        );
      }
      return 'stream';
    },
    onBody: () => Promise.resolve(),
    onOverflow: () => true,
  };
}
