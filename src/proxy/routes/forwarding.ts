import { withoutCookies } from '../../tokens/cookies.js';
import { Exchange } from '../../tokens/exchange.js';
import type { PresentedToken } from '../../tokens/request-token.js';
import type { TrustedProxies } from '../client-address.js';
import type { LiveResponseListener, ResponseTap, Upstream } from '../forward.js';
import { upstreamRequestHeaders, type TokenHeaderOverrides } from '../headers.js';
import { rotationTap, type RotationDeps } from '../rotation-tap.js';
import type { RequestScope } from '../scope.js';
import { isDead } from '../verdict.js';

/** What every route needs to send a request on to the app. */
export interface ForwardingDeps {
  readonly upstream: Upstream;
  readonly trustedProxies: TrustedProxies;
  /** The token cookies the config watches (undefined: no token travels in a cookie). */
  readonly rotation: RotationDeps | undefined;
  /**
   * Under `unknownTokens: reject`, the tap that remembers the cookies issued to anonymous requests
   * (elsewhere they pass anyway); undefined otherwise.
   */
  readonly anonymous: ResponseTap | undefined;
  /** Streams of live sessions are tracked, to be closed on revocation. */
  readonly onLiveResponse: LiveResponseListener;
}

/** The request headers sent upstream: hop-by-hop removed, forwarding headers set, dead tokens left out. */
export function requestHeaders(scope: RequestScope, trustedProxies: TrustedProxies): string[] {
  return upstreamRequestHeaders(scope.req, scope.clientIp, trustedProxies, false, deadTokensRemoved(scope));
}

/**
 * The tap of a response that is not a registered login, chosen once at startup: a live cookie
 * session's rotation, or (under `unknownTokens: reject`) the cookies an anonymous request is issued;
 * undefined when neither applies.
 */
export type CookieTapOf = (scope: RequestScope) => ResponseTap | undefined;

export function compileCookieTap(deps: ForwardingDeps): CookieTapOf {
  const { rotation, anonymous } = deps;
  if (rotation === undefined) return () => undefined;
  return (scope) => {
    const token = scope.token;
    if (scope.decision?.state !== 'live') return anonymous;
    if (token !== undefined && token.carrier === 'cookie' && scope.tokenId !== undefined)
      return rotationTap(scope.tokenId, token.cookieNames ?? [], rotation);
    return undefined;
  };
}

/** The exchange a rule reads: the request as matched, with its (decoded) body when one was read. */
export function exchangeOf(scope: RequestScope, requestBody: Buffer | undefined): Exchange {
  return new Exchange({
    method: scope.req.method ?? 'GET',
    path: scope.path,
    params: scope.params,
    requestHeaders: scope.req.headers,
    requestBody,
  });
}

/** Sends the request on, its body as the client sent it (or as read, when a rule read it). */
export function forwardTo(
  upstream: Upstream,
  scope: RequestScope,
  headers: string[],
  tap: ResponseTap | undefined,
  body: Buffer | undefined = scope.body?.raw,
): void {
  upstream.forward(scope.req, scope.res, { headers, body: body ?? scope.req, tap });
}

/**
 * A dead token is never sent to the app, which might still honour it: on a login route the request's
 * own dead token passes (a superseded browser signs in again) with its cookie (or Authorization)
 * left out, and on every route so are the other tokens found dead (a dead remember-me cookie beside
 * a live session cookie).
 */
function deadTokensRemoved(scope: RequestScope): TokenHeaderOverrides {
  const dead: PresentedToken[] = [];
  if (scope.handler.kind === 'login' && scope.token !== undefined && isDead(scope.decision?.state))
    dead.push(scope.token);
  if (scope.deadOthers !== undefined) dead.push(...scope.deadOthers);
  if (dead.length === 0) return UNCHANGED;
  const names = dead.flatMap((t) => (t.carrier === 'cookie' ? (t.cookieNames ?? []) : []));
  const cookie = scope.req.headers.cookie;
  return {
    cookie: names.length > 0 && cookie !== undefined ? withoutCookies(cookie, names) : cookie,
    authorization: dead.some((t) => t.carrier === 'bearer') ? undefined : scope.req.headers.authorization,
  };
}

const UNCHANGED: TokenHeaderOverrides = Object.freeze({});
