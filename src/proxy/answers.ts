import type { ServerResponse } from 'node:http';
import { sendError, type AnsweredCode, type RejectionCode } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics, RequestOutcome } from '../observability/metrics.js';
import type { SessionEvent } from '../sessions/events.js';
import type { TokenCheck } from '../sessions/service.js';
import type { PresentedToken } from '../tokens/request-token.js';
import type { Rejections } from './rejection.js';
import type { Scope } from './scope.js';
import { rejectedOutcome } from './verdict.js';

export interface AnswersDeps {
  readonly rejections: Rejections;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly mode: 'enforce' | 'report-only';
  readonly now: () => number;
  /** Request outcomes worth an audit record (`request.rejected`): to the audit log and webhooks. */
  readonly record: (event: SessionEvent) => void;
}

/**
 * The gateway's own answers to a request, each counted and logged with its code: a refusal (a request
 * it cannot read as the app would), a rejection (a session that is not live) and a failure of its own.
 */
export class Answers {
  readonly #d: AnswersDeps;

  constructor(deps: AnswersDeps) {
    this.#d = deps;
  }

  count(outcome: RequestOutcome): void {
    this.#d.metrics.requests[outcome].inc();
  }

  /** Refuses a request the gateway cannot read as the app would: 400 (or 413/415) with its code. */
  refuse(res: ServerResponse | undefined, code: AnsweredCode, message?: string): void {
    this.count('bad_request');
    this.#d.logger.warn({ code, reason: message }, 'request refused');
    if (res) sendError(res, code, message);
  }

  /** A failure of the gateway itself: logged with its code, a clean 500, never an unhandled rejection. */
  fail(res: ServerResponse, err: unknown, what: string): void {
    this.#d.logger.error({ code: 'SG_ERR_INTERNAL', err: (err as Error).message }, what);
    sendError(res, 'SG_ERR_INTERNAL', `the gateway failed: ${what}`);
  }

  /**
   * Rejects a request whose session is not live; in report-only mode logs and counts it as a would-be
   * rejection and calls `pass` instead. `token`: the token whose cookies the rejection clears.
   */
  reject<Res extends ServerResponse | undefined>(
    scope: Scope<Res>,
    verdict: RejectionCode,
    check: TokenCheck,
    pass: () => void,
    token: PresentedToken | undefined = scope.token,
  ): void {
    const d = this.#d;
    const session = check.session;
    d.record({
      type: 'request.rejected',
      at: d.now(),
      user: session?.user ?? '',
      ...(session ? { sessionId: session.id } : {}),
      ip: scope.clientIp,
      userAgent: scope.req.headers['user-agent'] ?? '',
      reason: verdict,
      ...(d.mode === 'report-only' ? { reportOnly: true as const } : {}),
    });
    if (d.mode === 'report-only') {
      this.count('passed_report_only');
      d.logger.info(
        { code: verdict, path: scope.path, sessionId: session?.id, reportOnly: true },
        'would reject (report-only)',
      );
      pass();
      return;
    }
    this.count(rejectedOutcome(verdict));
    if (scope.res !== undefined) d.rejections.send(scope.res, scope.req.headers, verdict, token, session);
  }
}
