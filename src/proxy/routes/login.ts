import type { CompiledLoginRule, CompiledLogoutRule } from '../../tokens/exchange.js';
import type { RouteHandler } from '../scope.js';
import { exchangeRoute, type ExchangeRouteDeps } from './exchange.js';

/**
 * A login route: the app's answer is held until its new token is registered under the limit (or the
 * login refused); a dead token the request carries passes (a superseded browser signs in again) but
 * never reaches the app.
 */
export function loginRoute(rule: CompiledLoginRule, deps: ExchangeRouteDeps): RouteHandler {
  return exchangeRoute(rule, deps);
}

/** A logout route: a successful answer ends the session of the token it names or carries. */
export function logoutRoute(rule: CompiledLogoutRule, deps: ExchangeRouteDeps): RouteHandler {
  return exchangeRoute(rule, deps);
}
