import type { SessionService } from '../../sessions/service.js';
import type { CompiledRefreshRule } from '../../tokens/exchange.js';
import type { TokenIdOf } from '../../tokens/token-id.js';
import type { RouteHandler } from '../scope.js';
import { verdictOf, type VerdictPolicy } from '../verdict.js';
import { exchangeRoute, type BeforeSend, type ExchangeRouteDeps } from './exchange.js';

export interface RefreshRouteDeps extends ExchangeRouteDeps {
  readonly sessions: SessionService;
  readonly tokenIdOf: TokenIdOf;
  readonly policy: VerdictPolicy;
}

/**
 * A refresh route: the new token the app issues is added to the session of the presented one. A
 * presented token in the request body (RFC 6749 `refresh_token`) is checked before the app sees it:
 * a dead session is never revived by its refresh token.
 */
export function refreshRoute(rule: CompiledRefreshRule, deps: RefreshRouteDeps): RouteHandler {
  const readPresented = rule.readPresented;
  if (readPresented === undefined) return exchangeRoute(rule, deps);
  const { sessions, tokenIdOf, policy, answers } = deps;
  const checkPresented: BeforeSend = async (scope, ex, send) => {
    const presented = readPresented(ex);
    if (presented === undefined) return send();
    const check = await sessions.check(tokenIdOf(presented));
    // A body token no login was seen for is the app's to judge (it may predate the gateway).
    const verdict =
      check.state === 'unknown' || check.state === 'anonymous'
        ? 'pass'
        : verdictOf(check.state, 'refresh', policy);
    if (verdict === 'pass') send();
    else answers.reject(scope, verdict, check, send, undefined);
  };
  return exchangeRoute(rule, deps, checkPresented);
}
