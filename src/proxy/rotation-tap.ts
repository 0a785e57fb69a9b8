import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { SessionService } from '../sessions/service.js';
import type { TokenIdOf } from '../tokens/token-id.js';
import type { HeadAction, HeldHead, ResponseTap } from './forward.js';
import type { WatchedCookies } from './token-cookies.js';

export { compileWatchedCookies, type WatchedCookies } from './token-cookies.js';

export interface RotationDeps {
  readonly sessions: SessionService;
  readonly tokenIdOf: TokenIdOf;
  readonly watched: WatchedCookies;
  readonly metrics: Metrics;
  readonly logger: Logger;
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
      const set = deps.watched.tokensSet(head);
      if (set === undefined) return 'stream';
      const ids: string[] = [];
      for (const t of set) if (t.value !== null) ids.push(deps.tokenIdOf(t.value));
      if (ids.length === 0) return 'stream';
      return deps.sessions.rememberAnonymous(ids).then(
        (): HeldHead => {
          deps.metrics.tokenUpdates.labels('anonymous').inc();
          return 'release';
        },
        (err: unknown): HeldHead => {
          // Released anyway: the next request with the value is refused as unknown, never let in.
          deps.metrics.storeErrors.inc();
          deps.logger.error(
            { code: 'SG_ERR_ROTATION', err: (err as Error).message },
            'could not remember an anonymous token',
          );
          return 'release';
        },
      );
    },
    onBody: () => Promise.resolve(),
    onOverflow: () => true,
  };
}

/**
 * Rotating session cookies (signed-cookie stores, `session_regenerate_id`, remember-me re-logins):
 * a response that sets a watched token for a request that carried a live one adds the new value to
 * that session before the response is released; a response that only clears it ends the session.
 * Responses that set no watched cookie pass at once and pay one scan of their header names.
 *
 * A new value the store could not register is never released under `failMode: closed` (the client
 * would hold a token the store does not know, and lose its session on the next request anyway): the
 * response is refused with 503, as a login is. Under `open` it is released, logged and counted.
 */
export function rotationTap(
  presentedTokenId: string,
  presentedCookies: readonly string[],
  deps: RotationDeps,
): ResponseTap {
  const failMode = deps.watched.failMode;
  return {
    onHead(head): HeadAction {
      const set = deps.watched.tokensSet(head);
      if (set === undefined) return 'stream';
      let added: string[] | undefined;
      let refused = false;
      let cleared = false;
      for (const t of set) {
        if (t.value !== null) (added ??= []).push(deps.tokenIdOf(t.value));
        else if (t.names.some((n) => presentedCookies.includes(n))) {
          refused = true;
          if (t.session) cleared = true;
        }
      }
      // The app cleared the very cookie this request was let in by (a logout, or a refused remember-me
      // value): whatever else it sets (an anonymous session id) is not a rotation of that session. Only
      // the session cookie's clearing ends the session: a remember-me value the app refuses may be an
      // old one replayed after its rotation, while the browser holds the current values.
      if (refused) added = undefined;
      if (added !== undefined) {
        const ids = added.filter((id) => id !== presentedTokenId);
        if (ids.length === 0) return 'stream';
        return deps.sessions.addTokens(presentedTokenId, ids).then(
          (session): HeldHead => {
            deps.metrics.tokenUpdates.labels(session ? 'rotation' : 'rotation_unlinked').inc();
            return 'release';
          },
          (err: unknown): HeldHead => {
            deps.metrics.storeErrors.inc();
            deps.logger.error(
              { code: 'SG_ERR_ROTATION', failMode, err: (err as Error).message },
              failMode === 'closed'
                ? 'could not register a rotated token: response refused (503)'
                : 'could not register a rotated token: response released (failMode open)',
            );
            return failMode === 'closed' ? 'refuse' : 'release';
          },
        );
      }
      if (cleared) {
        // Released either way: the client drops the cookie, so no unregistered value escapes.
        return deps.sessions.endByToken(presentedTokenId, 'logged_out').then(
          (ended): HeldHead => {
            if (ended) deps.metrics.tokenUpdates.labels('cleared').inc();
            return 'release';
          },
          (err: unknown): HeldHead => {
            deps.metrics.storeErrors.inc();
            deps.logger.error(
              { code: 'SG_ERR_ROTATION', err: (err as Error).message },
              'could not end a session whose cookie was cleared',
            );
            return 'release';
          },
        );
      }
      return 'stream';
    },
    onBody: () => Promise.resolve(),
    onOverflow: () => true,
  };
}
