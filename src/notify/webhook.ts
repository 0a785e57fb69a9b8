import { createHmac, randomUUID } from 'node:crypto';
import { request } from 'undici';
import type { WebhookEventType } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { describeDevice } from '../sessions/device.js';
import type { SessionEvent, SessionEventType } from '../sessions/events.js';
import { describePlace } from '../sessions/place.js';
import type { Geo } from '../model.js';
import type { NotMeLink } from './not-me-link.js';

// The config's list of webhook events is the session event types, no more, no less: a compile error
// here means WEBHOOK_EVENTS (config/schema.ts) and SessionEventType (sessions/events.ts) drifted apart.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const eventListsAgree: Same<WebhookEventType, SessionEventType> = true;
void eventListsAgree;

export interface WebhookConfig {
  /** The receiver's whole URL (path and query are kept; `user:password@` is sent as Basic auth). */
  readonly url: string;
  readonly secret: string;
  readonly events: readonly SessionEventType[];
  /** Milliseconds per attempt. */
  readonly timeout: number;
  readonly attempts: number;
  readonly maxQueue: number;
}

export interface WebhookNotifier {
  /** Queues an event (if configured for it); never blocks, never throws. */
  enqueue(event: SessionEvent): void;
  /** Pending deliveries. */
  readonly pending: number;
  /** Waits for the queue to drain (bounded), then stops. */
  close(): Promise<void>;
}

/** The body of a webhook delivery. */
export interface WebhookPayload {
  readonly id: string;
  readonly type: string;
  readonly time: string;
  readonly user: string;
  readonly sessionId: string | null;
  readonly ip: string | null;
  readonly device: string | null;
  readonly location: string | null;
  /** From `geo.database` at login (see the admin API's Session.geo). */
  readonly geo: Geo | null;
  /** "Berlin, DE": describePlace(geo, location), or null. */
  readonly place: string | null;
  /** The login's device or country was not in the user's login history (never on a first login). */
  readonly newDevice: boolean;
  readonly newLocation: boolean;
  readonly reason: string | null;
  readonly text: string;
  readonly by: {
    readonly sessionId: string | null;
    readonly device: string | null;
    readonly ip: string | null;
  } | null;
  /** New-login events, with `notify.baseUrl`: the signed, single-use "not me" link (notify/not-me-link.ts). */
  readonly notMe?: { readonly url: string; readonly expiresAt: string };
}

/**
 * Signature header: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` (the Stripe scheme), so a
 * receiver can reject replays by the timestamp and forgeries by the MAC.
 */
export function signWebhook(secret: string, body: string, timestampSeconds: number): string {
  const mac = createHmac('sha256', secret).update(`${timestampSeconds}.${body}`).digest('hex');
  return `t=${timestampSeconds},v1=${mac}`;
}

function textOf(e: SessionEvent, device: string | null, place: string | null): string {
  const where = place !== null ? ` in ${place}` : '';
  switch (e.type) {
    case 'session.created':
      return `New login from ${device ?? 'an unknown device'}${where}${e.ended ? `; ${e.ended} other session(s) ended` : ''}`;
    case 'session.new_device': {
      const what = [e.newDevice && 'a new device', e.newLocation && 'a new location']
        .filter(Boolean)
        .join(' and ');
      return `New login from ${device ?? 'an unknown device'}${where} (${what})`;
    }
    case 'session.superseded':
      return `Session on ${device ?? 'an unknown device'} was ended by a new login${e.by?.userAgent ? ` from ${describeDevice(e.by.userAgent)}` : ''}`;
    case 'session.replaced':
      return `Session on ${device ?? 'an unknown device'} was replaced by a new login from the same browser`;
    case 'session.refused':
      return `Login from ${device ?? 'an unknown device'} refused: the session limit is reached`;
    case 'session.ended':
      return `Session on ${device ?? 'an unknown device'} was ended${e.by?.actor === 'admin' ? ' by an administrator' : e.by?.actor === 'user' ? ' by the user' : ''}`;
    case 'session.logged_out':
      return `Session on ${device ?? 'an unknown device'} logged out`;
    case 'session.expired':
      return `Session on ${device ?? 'an unknown device'} expired`;
    case 'session.warned':
      return `Session on ${device ?? 'an unknown device'} was warned of a new login${e.by?.userAgent ? ` from ${describeDevice(e.by.userAgent)}` : ''} past the session limit`;
    default:
      return `${e.type} (${e.reason ?? ''})`;
  }
}

/**
 * The URL to POST to and its credentials: undici silently drops the `user:password@` of a URL, while
 * whoever wrote one there (as curl takes it) expects HTTP Basic auth.
 */
function receiverOf(configured: string): { url: string; authorization: string | undefined } {
  const u = new URL(configured);
  if (u.username === '' && u.password === '') return { url: configured, authorization: undefined };
  const credentials = `${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`;
  u.username = '';
  u.password = '';
  return { url: u.href, authorization: `Basic ${Buffer.from(credentials).toString('base64')}` };
}

/**
 * Webhook delivery off the request path: a bounded queue (the oldest is dropped and counted when full),
 * one delivery at a time, retried with exponential backoff; failures counted and logged.
 */
export function createWebhookNotifier(
  config: WebhookConfig,
  deps: {
    logger: Logger;
    metrics: Metrics;
    now?: () => number;
    backoffBase?: number;
    notMeLink?: (event: SessionEvent) => NotMeLink | undefined;
  },
): WebhookNotifier {
  const wanted = new Set(config.events);
  const { url, authorization } = receiverOf(config.url);
  const queue: WebhookPayload[] = [];
  const now = deps.now ?? Date.now;
  const backoffBase = deps.backoffBase ?? 500;
  let inFlight: WebhookPayload | undefined;
  let closed = false;
  let idle: (() => void) | undefined;

  /** One attempt; true when the receiver answered 2xx. */
  const attempt = async (payload: WebhookPayload): Promise<boolean> => {
    const body = JSON.stringify(payload);
    try {
      const res = await request(url, {
        method: 'POST',
        headers: {
          ...(authorization !== undefined && { authorization }),
          'content-type': 'application/json',
          'user-agent': 'sessiongate-webhook',
          'x-sessiongate-event': payload.type,
          'x-sessiongate-delivery': payload.id,
          'x-sessiongate-signature': signWebhook(config.secret, body, Math.floor(now() / 1000)),
        },
        body,
        headersTimeout: config.timeout,
        bodyTimeout: config.timeout,
      });
      await res.body.dump();
      if (res.statusCode >= 200 && res.statusCode < 300) return true;
      deps.logger.warn(
        { code: 'SG_ERR_WEBHOOK_STATUS', status: res.statusCode, event: payload.type, delivery: payload.id },
        'webhook refused',
      );
    } catch (err) {
      deps.logger.warn(
        { code: 'SG_ERR_WEBHOOK', err: (err as Error).message, event: payload.type, delivery: payload.id },
        'webhook delivery failed',
      );
    }
    return false;
  };

  // The payload being delivered is taken off the queue first, so a full queue dropping its oldest entry
  // never drops (or double-counts) the one in flight.
  const pump = async (): Promise<void> => {
    if (inFlight !== undefined) return;
    while (!closed && (inFlight = queue.shift()) !== undefined) {
      const payload = inFlight;
      deps.metrics.webhookQueue.set(queue.length + 1);
      for (let n = 1; ; n++) {
        if (await attempt(payload)) {
          deps.metrics.webhookDeliveries.labels('delivered').inc();
          break;
        }
        if (n >= config.attempts || closed) {
          deps.metrics.webhookDeliveries.labels('failed').inc();
          deps.logger.error(
            { code: 'SG_ERR_WEBHOOK_GAVE_UP', event: payload.type, delivery: payload.id, attempts: n },
            'webhook delivery abandoned',
          );
          break;
        }
        deps.metrics.webhookDeliveries.labels('retried').inc();
        await new Promise((r) => setTimeout(r, backoffBase * 2 ** (n - 1)).unref());
      }
    }
    inFlight = undefined;
    deps.metrics.webhookQueue.set(queue.length);
    idle?.();
  };

  return {
    get pending() {
      return queue.length + (inFlight === undefined ? 0 : 1);
    },
    enqueue(e) {
      if (closed || !wanted.has(e.type)) return;
      const device = e.userAgent !== undefined ? describeDevice(e.userAgent) : null;
      const place = describePlace(e.geo, e.location) ?? null;
      const notMe = deps.notMeLink?.(e);
      const payload: WebhookPayload = {
        id: randomUUID(),
        type: e.type,
        time: new Date(e.at).toISOString(),
        user: e.user,
        sessionId: e.sessionId ?? null,
        ip: e.ip ?? null,
        device,
        location: e.location ?? null,
        geo: e.geo ?? null,
        place,
        newDevice: e.newDevice === true,
        newLocation: e.newLocation === true,
        reason: e.reason ?? null,
        text: textOf(e, device, place),
        by: e.by
          ? {
              sessionId: e.by.sessionId ?? null,
              ip: e.by.ip ?? null,
              device: e.by.userAgent ? describeDevice(e.by.userAgent) : null,
            }
          : null,
        ...(notMe && { notMe: { url: notMe.url, expiresAt: new Date(notMe.expiresAt).toISOString() } }),
      };
      if (queue.length >= config.maxQueue) {
        queue.shift();
        deps.metrics.webhookDeliveries.labels('dropped').inc();
      }
      queue.push(payload);
      deps.metrics.webhookQueue.set(queue.length + (inFlight === undefined ? 0 : 1));
      void pump();
    },
    async close() {
      if (inFlight !== undefined) {
        await Promise.race([
          new Promise<void>((r) => (idle = r)),
          new Promise((r) => setTimeout(r, 2000).unref()),
        ]);
      }
      closed = true;
    },
  };
}
