import type { Exchange, TokenRule } from '../../tokens/exchange.js';
import type { Answers } from '../answers.js';
import { exchangeTap, type ExchangeTapDeps } from '../exchange-tap.js';
import type { ResponseTap } from '../forward.js';
import type { RequestScope, RouteHandler } from '../scope.js';
import {
  compileCookieTap,
  exchangeOf,
  forwardTo,
  requestHeaders,
  type ForwardingDeps,
} from './forwarding.js';
import type { RuleBodyReader } from './rule-body.js';

/** What the exchange of a login, refresh or logout needs: its tap's and the forwarding's. */
export interface ExchangeRouteDeps extends ForwardingDeps {
  readonly tap: ExchangeTapDeps;
  readonly readBody: RuleBodyReader;
  readonly answers: Answers;
}

/**
 * A check of the read request before it is sent (a refresh's presented token in its body): calls
 * `send` to go on, or answers the request itself. Only rules that read the request body have one.
 */
export type BeforeSend = (scope: RequestScope, ex: Exchange, send: () => void) => void | Promise<void>;

/**
 * The handler of a login, refresh or logout route: the request is read (its body when the rule reads
 * it, and refused when it cannot be read as the app would), forwarded, and its response held by the
 * exchange tap until the store has registered what it carries (exchange-tap.ts: the probe, the
 * extraction, the limit and the release).
 */
export function exchangeRoute(
  rule: TokenRule,
  deps: ExchangeRouteDeps,
  beforeSend?: BeforeSend,
): RouteHandler {
  const { upstream, trustedProxies, answers, readBody } = deps;
  const cookieTapOf = compileCookieTap(deps);
  // A logout response may set the fresh session cookie of the now anonymous browser (Rails'
  // reset_session), which the page it redirects to must be let in with.
  const anonymousOnLogout = rule.kind === 'logout' ? deps.anonymous : undefined;
  const ambiguousCode = rule.kind === 'login' ? 'SG_ERR_AMBIGUOUS_LOGIN' : 'SG_ERR_AMBIGUOUS_REQUEST';

  const tapDepsOf = (scope: RequestScope): ExchangeTapDeps => {
    const rotation: ResponseTap | undefined = cookieTapOf(scope);
    if (rotation === undefined && anonymousOnLogout === undefined) return deps.tap;
    return { ...deps.tap, rotation, anonymous: deps.anonymous };
  };

  const handleRead = async (scope: RequestScope, headers: string[]): Promise<void> => {
    const body = await readBody(scope);
    if (body === undefined) return;
    const ex = exchangeOf(scope, body.decoded);
    // Read the request as the app will, or refuse it: a login charged to the wrong user lets anyone
    // sign anyone out.
    const ambiguity = rule.checkRequest(ex);
    if (ambiguity !== undefined) {
      answers.refuse(scope.res, ambiguousCode, `refused: ${ambiguity}`);
      return;
    }
    const send = () =>
      forwardTo(upstream, scope, headers, exchangeTap(rule, scope, ex, tapDepsOf(scope)), body.raw);
    if (beforeSend === undefined) send();
    else await beforeSend(scope, ex, send);
  };

  return {
    kind: rule.kind,
    handle(scope) {
      const headers = requestHeaders(scope, trustedProxies);
      if (!rule.needsRequestBody) {
        forwardTo(
          upstream,
          scope,
          headers,
          exchangeTap(rule, scope, exchangeOf(scope, undefined), tapDepsOf(scope)),
        );
        return;
      }
      handleRead(scope, headers).catch((err: unknown) =>
        answers.fail(scope.res, err, 'login exchange failed'),
      );
    },
  };
}
