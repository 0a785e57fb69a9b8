import type { Logger } from '../observability/logger.js';
import type { FixationCase, Metrics } from '../observability/metrics.js';
import type { SessionEvent } from '../sessions/events.js';
import type { CompiledLoginRule } from '../tokens/exchange.js';
import type { PresentedToken } from '../tokens/request-token.js';
import type { RequestScope } from './scope.js';
import { isDead } from './verdict.js';

/**
 * `sessions.fixation`: a login whose registered session token is one the login request already
 * carried. The app authenticated the session id the browser had before (no `session_regenerate_id()`,
 * no `req.session.regenerate()`), so whoever planted or read that id before the login rides the
 * signed-in session. Built once at startup; undefined under `off`.
 */
export interface FixationGuard {
  readonly mode: 'warn' | 'refuse';
  /**
   * The token cookie of the login request the app may have kept: a cookie of the rule's token cookie
   * that was forwarded to the app (a dead one is left out of the request, so the app never saw it).
   */
  keepable(rule: CompiledLoginRule, scope: RequestScope): PresentedToken | undefined;
  /**
   * A login that registers the request's own token: logged (SG_WARN_SESSION_FIXATION), audited
   * (`session.fixation_risk`) and counted. True when it is to be refused (`refuse`, and not report-only).
   */
  judge(rule: CompiledLoginRule, scope: RequestScope, user: string, reportOnly: boolean): boolean;
}

export interface FixationDeps {
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** To the audit log and webhooks (request outcomes, not session events). */
  readonly record: (event: SessionEvent) => void;
  readonly now: () => number;
}

export function compileFixationGuard(
  mode: 'off' | 'warn' | 'refuse',
  deps: FixationDeps,
): FixationGuard | undefined {
  if (mode === 'off') return undefined;
  const { metrics, logger, record, now } = deps;
  return {
    mode,
    keepable(rule, scope) {
      const t = scope.token;
      if (t === undefined || t.carrier !== 'cookie' || isDead(scope.decision?.state)) return undefined;
      return t.cookieNames?.some((n) => rule.isTokenCookie(n)) === true ? t : undefined;
    },
    judge(rule, scope, user, reportOnly) {
      // A step-up: the browser's live session of this user, signed in again under the same id.
      const d = scope.decision;
      const which: FixationCase = d?.state === 'live' && d.session?.user === user ? 'relogin' : 'first_login';
      const refuse = mode === 'refuse' && !reportOnly;
      metrics.fixation[refuse ? 'refused' : 'warned'][which].inc();
      logger.warn(
        {
          code: 'SG_WARN_SESSION_FIXATION',
          rule: rule.name,
          case: which,
          mode,
          ...(reportOnly && mode === 'refuse' ? { reportOnly: true } : {}),
        },
        refuse
          ? 'login kept the session id the request carried (session fixation): refused'
          : 'login kept the session id the request carried (session fixation risk): registered',
      );
      record({
        type: 'session.fixation_risk',
        at: now(),
        user,
        ...(which === 'relogin' && d?.session ? { sessionId: d.session.id } : {}),
        ip: scope.clientIp,
        userAgent: scope.req.headers['user-agent'] ?? '',
        rule: rule.name,
        // What became of the login: the registered session, or none (refused).
        reason: refuse ? 'refused' : 'registered',
        ...(reportOnly && mode === 'refuse' ? { reportOnly: true as const } : {}),
      });
      return refuse;
    },
  };
}
