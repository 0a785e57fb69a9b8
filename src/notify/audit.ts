import type { Logger } from '../observability/logger.js';
import { describeDevice } from '../sessions/device.js';
import type { SessionEvent, SessionEventType } from '../sessions/events.js';
import { describePlace } from '../sessions/place.js';

/** The reason of events that carry none of their own. */
const DEFAULT_REASON: Partial<Record<SessionEventType, string>> = {
  'session.created': 'login',
  'session.new_device': 'login',
};

/**
 * The audit log: every session event as one pino line of its own kind (`kind: "audit"`), with the
 * fields PCI-DSS 10.2.2 asks for: who (`user`, `sessionId`), what (`event`, `reason`), when (`at`, the
 * event's time; pino's `time` is the line's), where from (`ip`, `device`, `location`, `geo`, `place`; `newDevice` / `newLocation` when the login's
 * device or country was not in the user's history), and who caused it
 * (`by`). Never a raw token: events carry none, and the logger redacts token-bearing fields besides.
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
        geo: e.geo,
        place: describePlace(e.geo, e.location),
        newDevice: e.newDevice,
        newLocation: e.newLocation,
        reason: e.reason ?? DEFAULT_REASON[e.type],
        rule: e.rule,
        policy: e.policy,
        by: e.by
          ? {
              actor: e.by.actor,
              sessionId: e.by.sessionId,
              ip: e.by.ip,
              device: e.by.userAgent !== undefined ? describeDevice(e.by.userAgent) : undefined,
            }
          : undefined,
        ended: e.ended,
        reportOnly: e.reportOnly,
        at: new Date(e.at).toISOString(),
      },
      e.type,
    );
  };
}
