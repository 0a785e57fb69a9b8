import type { RouteHandler } from '../scope.js';
import { compileCookieTap, requestHeaders, type ForwardingDeps } from './forwarding.js';

/**
 * Every request that is not a login, refresh or logout: forwarded as it came (its dead tokens left
 * out), a live session's cookie rotation tapped, its streams tracked to be closed on revocation.
 */
export function passthroughRoute(deps: ForwardingDeps): RouteHandler {
  const { upstream, trustedProxies, onLiveResponse } = deps;
  const cookieTapOf = compileCookieTap(deps);
  return {
    kind: 'passthrough',
    handle(scope) {
      const live = scope.decision?.state === 'live' ? scope.tokenId : undefined;
      upstream.forward(scope.req, scope.res, {
        headers: requestHeaders(scope, trustedProxies),
        body: scope.body?.raw ?? scope.req,
        tap: cookieTapOf(scope),
        liveTokenId: live,
        onLiveResponse,
      });
    },
  };
}
