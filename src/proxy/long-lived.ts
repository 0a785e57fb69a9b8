import type { ServerResponse } from 'node:http';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { SessionService } from '../sessions/service.js';
import type { ConnectionRegistry } from './connections.js';
import type { LiveResponseListener, ResponseHead } from './forward.js';
import { deadCode, isDead } from './verdict.js';

export interface RevocationCloserDeps {
  readonly sessions: SessionService;
  readonly connections: ConnectionRegistry;
  readonly mode: 'enforce' | 'report-only';
  readonly metrics: Metrics;
  readonly logger: Logger;
}

/**
 * Long-lived connections (WebSockets, streams) were checked once, when they opened: close those whose
 * session ended, on revocations made here or received from other replicas, and after the channel was
 * restored (messages may have been lost meanwhile). In report-only mode they stay open: logged and
 * counted (passed_report_only) once per token, which `reported` remembers while its connections last.
 */
export function closeRevokedConnections(deps: RevocationCloserDeps): void {
  const { sessions, connections, metrics, logger } = deps;
  const reported = new Set<string>();
  const closeIfDead = (tokenIds: readonly string[]) => {
    for (const r of reported) if (!connections.has(r)) reported.delete(r);
    for (const id of tokenIds) {
      if (!connections.has(id)) continue;
      void Promise.resolve(sessions.check(id))
        .then((check) => {
          if (!isDead(check.state)) return;
          const code = deadCode(check.state);
          if (deps.mode === 'report-only') {
            if (reported.has(id) || !connections.has(id)) return;
            reported.add(id);
            metrics.requests.passed_report_only.inc();
            logger.info(
              { code, sessionId: check.session?.id, reportOnly: true },
              'would close the long-lived connections of a revoked token (report-only)',
            );
            return;
          }
          for (const c of connections.close([id], () => code)) metrics.connectionsClosed.labels(c.kind).inc();
        })
        .catch((err: unknown) =>
          logger.error(
            { code: 'SG_ERR_INTERNAL', err: (err as Error).message },
            'closing a revoked connection failed',
          ),
        );
    }
  };
  sessions.onRevoked(closeIfDead);
  sessions.onChannelRestored(() => closeIfDead(connections.tokenIds()));
}

/**
 * A streamed response of a live session (SSE; NDJSON, a long poll or any body without a
 * Content-Length) is closed when the session is revoked. An event stream is ended (EventSource sees
 * the stream close); any other is cut, so a client cannot take a partial body for a whole one.
 */
export function streamTracker(connections: ConnectionRegistry): LiveResponseListener {
  return (res: ServerResponse, head: ResponseHead, tokenId: string) => {
    const stream = isStream(head);
    if (stream === undefined) return undefined;
    const remove = connections.add(tokenId, {
      kind: 'stream',
      close: stream === 'events' ? () => res.end() : () => res.destroy(),
    });
    res.once('close', remove);
    return undefined;
  };
}

/**
 * `events` for an event stream, `body` for a body of unknown length (sent chunked or until close:
 * NDJSON, long polls), undefined for a response of known length or without a body (204, 304).
 */
function isStream(head: ResponseHead): 'events' | 'body' | undefined {
  if (head.status === 204 || head.status === 304) return undefined;
  let sized = false;
  for (let i = 0; i < head.headers.length; i += 2) {
    const name = head.headers[i] as string;
    if (name.length === 12 && name.toLowerCase() === 'content-type') {
      if ((head.headers[i + 1] as string).startsWith('text/event-stream')) return 'events';
    } else if (name.length === 14 && name.toLowerCase() === 'content-length') sized = true;
  }
  return sized ? undefined : 'body';
}
