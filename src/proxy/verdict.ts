import type { TokenState } from '../sessions/service.js';
import type { RequestOutcome } from '../observability/metrics.js';
import { rejectionOf, STATE_TO_CODE, type RejectionCode } from '../errors.js';

/** What a request's route is, as far as judging its token goes. */
export type RouteKind = 'passthrough' | 'login' | 'refresh' | 'logout';

/** The deployment's answers to "what if": compiled once from the config. */
export interface VerdictPolicy {
  readonly failMode: 'open' | 'closed';
  readonly unknownTokens: 'pass' | 'reject';
}

export type Verdict = 'pass' | RejectionCode;

/**
 * Whether a request with a token in this state goes on, or the code it is rejected with. Pure: the
 * same (state, route, policy) always gives the same verdict. Report-only is not decided here: a
 * rejection under report-only is still a rejection, only not enforced (proxy/reject.ts).
 *
 * A login or logout may carry a dead token (a superseded browser signing in again, a stale tab
 * signing out): it passes, and its token is not forwarded (routes/forwarding.ts). A refresh may not:
 * a dead session must not be revived by its refresh token.
 */
export function verdictOf(state: TokenState, route: RouteKind, policy: VerdictPolicy): Verdict {
  const lenient = route === 'login' || route === 'logout';
  switch (state) {
    case 'live':
    case 'anonymous':
      return 'pass';
    case 'unknown':
      return policy.unknownTokens === 'pass' || lenient ? 'pass' : 'session_unknown';
    case 'unavailable':
      return policy.failMode === 'open' ? 'pass' : 'session_store_unavailable';
    default:
      return lenient ? 'pass' : STATE_TO_CODE[state];
  }
}

/** A session that ended: its tokens are refused (or, on login routes, passed but never forwarded). */
export function isDead(state: TokenState | undefined): boolean {
  return (
    state !== undefined &&
    state !== 'live' &&
    state !== 'unknown' &&
    state !== 'anonymous' &&
    state !== 'unavailable'
  );
}

/** The request counter a passed request is counted under (a dead state never passes uncounted). */
export function passedOutcome(state: TokenState): RequestOutcome {
  return PASSED[state as keyof typeof PASSED] ?? 'passed_unknown';
}

const PASSED = {
  live: 'passed_live',
  unavailable: 'passed_store_unavailable',
  anonymous: 'passed_anonymous',
} as const satisfies Partial<Record<TokenState, RequestOutcome>>;

/** The request counter a rejected request is counted under. */
export function rejectedOutcome(code: RejectionCode): RequestOutcome {
  return REJECTED[code as keyof typeof REJECTED] ?? 'rejected_store_unavailable';
}

const REJECTED = {
  session_superseded: 'rejected_superseded',
  session_expired: 'rejected_expired',
  session_logged_out: 'rejected_logged_out',
  session_ended: 'rejected_ended',
  session_unknown: 'rejected_unknown',
} as const satisfies Partial<Record<RejectionCode, RequestOutcome>>;

/** The rejection code of a dead state (the code a closed long-lived connection is told). */
export function deadCode(state: TokenState): RejectionCode {
  return rejectionOf(state) ?? 'session_superseded';
}
