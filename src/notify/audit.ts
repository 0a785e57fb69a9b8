import type { Logger } from '../observability/logger.js';
import { describeDevice } from '../sessions/device.js';
import type { SessionEvent } from '../sessions/events.js';

/**
 * The audit log: every session event as one pino line of its own kind (`kind: "audit"`), with the
 * fields PCI-DSS 10.2.2 asks for (who, what, when, where from, outcome). Never a raw token.
 */
export function createAuditSink(logger: Logger): (event: SessionEvent) => void {
  const audit = logger.child({ kind: 'audit' });
  return (e) => {
    audit.info(
      {
        event: e.type,
        user: e.user,
        sessionId: e.sessionId,
        ip: e.ip,
        device: e.userAgent !== undefined ? describeDevice(e.userAgent) : undefined,
        location: e.location,
        reason: e.reason,
        by: e.by,
        ended: e.ended,
        at: new Date(e.at).toISOString(),
      },
      e.type,
    );
  };
}
