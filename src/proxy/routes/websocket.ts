import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { errorBody } from '../../errors.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import type { SessionService, TokenCheck } from '../../sessions/service.js';
import type { Answers } from '../answers.js';
import type { TrustedProxies } from '../client-address.js';
import type { ConnectionRegistry } from '../connections.js';
import { upstreamRequestHeaders } from '../headers.js';
import { isRefusal, type Prepare } from '../prepare.js';
import type { Rejections } from '../rejection.js';
import { rejectUpgrade, tunnelUpgrade, type UpgradedConnection, type UpgradeTarget } from '../upgrade.js';
import { passedOutcome, rejectedOutcome, verdictOf, type VerdictPolicy } from '../verdict.js';

export interface WebSocketRouteDeps {
  readonly prepare: Prepare;
  readonly sessions: SessionService;
  readonly policy: VerdictPolicy;
  readonly mode: 'enforce' | 'report-only';
  readonly answers: Answers;
  readonly rejections: Rejections;
  readonly connections: ConnectionRegistry;
  /** Every open tunnel, with or without a session, so a shutdown can close them all. */
  readonly tunnels: Set<UpgradedConnection>;
  readonly upgradeTarget: UpgradeTarget;
  readonly trustedProxies: TrustedProxies;
  readonly metrics: Metrics;
  readonly logger: Logger;
}

/**
 * An `Upgrade` request: a WebSocket handshake is checked like any request, then tunnelled once the app
 * answers 101, and its tunnel closed when its session ends. Anything else is refused: an `h2c` upgrade
 * or a request with a body is one the gateway could not follow once switched.
 */
export function websocketRoute(
  deps: WebSocketRouteDeps,
): (req: IncomingMessage, socket: Duplex, head: Buffer) => void {
  const { prepare, sessions, policy, answers, rejections, connections, metrics, logger } = deps;

  const refuse = (socket: Duplex, message: string) => {
    answers.count('bad_request');
    logger.warn({ code: 'SG_ERR_UPGRADE_REFUSED', reason: message }, 'upgrade refused');
    rejectUpgrade(socket, 400, 'Bad Request', errorBody('SG_ERR_UPGRADE_REFUSED', message));
  };

  return (req, socket, head) => {
    socket.on('error', () => socket.destroy());
    const refusal = upgradeRefusal(req);
    if (refusal !== undefined) return refuse(socket, refusal);
    const scope = prepare(req, undefined);
    if (isRefusal(scope)) {
      answers.refuse(undefined, scope.refused, scope.message);
      rejectUpgrade(socket, 400, 'Bad Request', errorBody(scope.refused, scope.message));
      return;
    }
    // A login, refresh or logout is an exchange the taps must see; tunnelled, its token would reach the
    // client unregistered (`POST /login` with `Upgrade: websocket`).
    if (scope.rule !== undefined) return refuse(socket, `a ${scope.rule.kind} route is never upgraded`);

    const tunnel = (check: TokenCheck | undefined) => {
      const headers = upstreamRequestHeaders(req, scope.clientIp, deps.trustedProxies, true);
      const conn = tunnelUpgrade(req, socket, head, headers, deps.upgradeTarget, (err) => {
        metrics.upstreamErrors.labels('upgrade').inc();
        logger.warn({ code: 'SG_ERR_UPSTREAM_UPGRADE', err: err.message }, 'upgrade tunnel failed');
      });
      deps.tunnels.add(conn);
      void conn.closed.then(() => deps.tunnels.delete(conn));
      if (check?.state === 'live' && scope.tokenId !== undefined) {
        const remove = connections.add(scope.tokenId, {
          kind: 'websocket',
          close: (code) => conn.close(code),
        });
        void conn.closed.then(remove);
      }
    };
    const open = (check: TokenCheck | undefined) => {
      const verdict = check === undefined ? 'pass' : verdictOf(check.state, 'passthrough', policy);
      if (verdict === 'pass') {
        answers.count(check === undefined ? 'passed_no_token' : passedOutcome(check.state));
        return tunnel(check);
      }
      if (check !== undefined && deps.mode === 'report-only')
        // Counted and logged as the would-be rejection it is; reject() then only passes.
        return answers.reject(scope, verdict, check, () => tunnel(check));
      answers.count(rejectedOutcome(verdict));
      const status = verdict === 'session_store_unavailable' ? 503 : 401;
      rejectUpgrade(
        socket,
        status,
        status === 503 ? 'Service Unavailable' : 'Unauthorized',
        JSON.stringify({ error: verdict, message: rejections.message(verdict) }),
      );
    };
    if (scope.tokenId === undefined || !scope.protected) return open(undefined);
    const check = sessions.check(scope.tokenId);
    if (!(check instanceof Promise)) return open(check);
    check.then(open).catch((err: unknown) => {
      logger.error({ code: 'SG_ERR_INTERNAL', err: (err as Error).message }, 'upgrade check failed');
      socket.destroy();
    });
  };
}

/**
 * Why an upgrade request is refused, or undefined. Only a WebSocket handshake (RFC 6455 section 4.1: a
 * GET without a body) is tunnelled: an `h2c` upgrade or a request with a body is one the gateway could
 * not follow once switched, and a body would sit in the tunnel as unchecked bytes.
 */
function upgradeRefusal(req: IncomingMessage): string | undefined {
  const upgrade = (req.headers.upgrade ?? '').trim().toLowerCase();
  if (upgrade === 'h2c') return 'h2c upgrades are refused: only websocket is supported';
  if (upgrade !== 'websocket') return 'only websocket upgrades are supported';
  if (req.method !== 'GET') return 'a websocket upgrade must be a GET';
  const length = req.headers['content-length'];
  if ((length !== undefined && Number(length) !== 0) || req.headers['transfer-encoding'] !== undefined)
    return 'an upgrade request carries no body';
  return undefined;
}
