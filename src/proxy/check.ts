import type { Metrics } from '../observability/metrics.js';
import type { SessionService, TokenCheck } from '../sessions/service.js';
import type { PresentedToken } from '../tokens/request-token.js';
import type { TokenIdOf } from '../tokens/token-id.js';
import type { RequestScope } from './scope.js';
import { isDead } from './verdict.js';

export interface TokenCheckDeps {
  readonly sessions: SessionService;
  readonly tokenIdOf: TokenIdOf;
  readonly metrics: Metrics;
}

/**
 * Checks the token of a request that has one on a path that needs it: synchronous on a cache hit (the
 * hot path: no promise, no allocation), a promise otherwise.
 */
export type CheckToken = (scope: RequestScope, tokenId: string) => TokenCheck | Promise<TokenCheck>;

export function compileTokenCheck(deps: TokenCheckDeps): CheckToken {
  const { sessions, tokenIdOf, metrics } = deps;

  /**
   * A request with several tokens (a session cookie and a remember-me cookie): the app may revive a
   * session from any of them, so each is checked. A dead one is never forwarded; and unless another
   * token is live, it decides the request as if it were the only one (`scope.token` becomes it).
   */
  const checkAll = async (
    scope: RequestScope,
    tokenId: string,
    others: readonly PresentedToken[],
  ): Promise<TokenCheck> => {
    const [check, rest] = await Promise.all([
      sessions.check(tokenId),
      Promise.all(others.map((t) => sessions.check(tokenIdOf(t.value)))),
    ]);
    const dead = others.filter((_t, i) => isDead(rest[i]?.state));
    if (dead.length > 0) scope.deadOthers = dead;
    const firstDead = rest.findIndex((r) => isDead(r.state));
    const deadCheck = rest[firstDead];
    if (deadCheck !== undefined && check.state !== 'live' && !isDead(check.state)) {
      scope.token = others[firstDead];
      return deadCheck;
    }
    return check;
  };

  return (scope, tokenId) => {
    if (scope.token?.others !== undefined) return checkAll(scope, tokenId, scope.token.others);
    const check = sessions.check(tokenId);
    if (!(check instanceof Promise)) {
      metrics.cacheHits.inc();
      return check;
    }
    metrics.cacheMisses.inc();
    const end = metrics.checkSeconds.startTimer();
    return check.then((c) => {
      end();
      return c;
    });
  };
}
