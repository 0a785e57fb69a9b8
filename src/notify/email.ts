/**
 * New-login e-mails (`notify.email`): "New sign-in to <app> from Chrome on Windows in Berlin, DE at
 * 10:42 UTC", with the sessions page link and the "not me" link, sent by SMTP (nodemailer) off the
 * request path. A bounded queue, one message at a time, each retried with exponential backoff; a full
 * queue drops the new message (counted, logged). Nothing here ever blocks or fails a login.
 *
 * The recipient: a template of the user name, or an address the login itself named (a JWT claim, a
 * JSON field or a header of the login response, read by the exchange tap and handed to `remember`). Such
 * an address stays in this replica's memory, for a few minutes, keyed by user: never in an event, so
 * never in the audit log, the webhook or the store.
 */
import { readFileSync } from 'node:fs';
import { rootCertificates as tlsRootCertificates } from 'node:tls';
import nodemailer from 'nodemailer';
import { ConfigError } from '../errors.js';
import type { EmailConfig, EmailEventType } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { describeDevice } from '../sessions/device.js';
import type { SessionEvent } from '../sessions/events.js';
import { describePlace } from '../sessions/place.js';
import type { NotMeLink } from './not-me-link.js';

/** The placeholders of the templates (ui/mail.ts `LoginMailValues` is the same shape). */
export interface MailValues {
  readonly user: string;
  readonly device: string;
  readonly place: string;
  readonly time: string;
  readonly app: string;
  readonly sessionsUrl: string;
  readonly notMeUrl: string;
}

export interface MailMessage {
  readonly to: string;
  readonly subject: string;
  readonly text: string;
  readonly html: string;
}

/** Sends one message or throws (the SMTP transport; tests may wrap it). */
export type MailSender = (message: MailMessage) => Promise<void>;

export interface EmailNotifier {
  /** The address a login named for its user (read at login), kept for `recipientTtl`. */
  remember(user: string, address: string): void;
  /** Queues the e-mail of an event (when configured for it); never blocks, never throws. */
  enqueue(event: SessionEvent): void;
  /** Messages waiting or being sent. */
  readonly pending: number;
  /** Lets the message being sent finish (bounded), then stops. */
  close(): Promise<void>;
}

export interface EmailDeps {
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly now: () => number;
  /** `notify.baseUrl` + the self-service prefix + `sessions`. */
  readonly sessionsUrl: string;
  /** The "not me" link of a new-login event. */
  readonly notMeLink: (event: SessionEvent) => NotMeLink | undefined;
  /** The HTML body (ui/mail.ts), values escaped there. */
  readonly renderHtml: (values: MailValues, template?: string) => string;
  /** How long an address read at login is kept for the events of that login (held logins included). */
  readonly recipientTtl: number;
  /** @default SMTP through nodemailer, as `config.smtp` says */
  readonly send?: MailSender;
}

const DEFAULT_TEXT = `New sign-in to {app} from {device} in {place} at {time}.

If this was you, there is nothing to do. See where you are signed in: {sessionsUrl}

If this was not you, sign out everywhere (the link works once), then change your password:
{notMeUrl}
`;

/** Addresses kept at most (one per user who logged in within `recipientTtl`). */
const MAX_RECIPIENTS = 10_000;
/** Logins already mailed, so a login that is new and supersedes another sends one message, not two. */
const MAX_MAILED = 10_000;
/** Recent logins by session id, for the events about the sessions they ended (read in the same tick). */
const MAX_LOGINS = 1_000;
const MAX_BACKOFF = 5 * 60_000;
/** One address, nothing a header could be split on: no list, no display name, no line break. */
const ADDRESS = /^[^\s@<>,;:"()[\]\\]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/;

/** "10:42 UTC". */
const TIME = new Intl.DateTimeFormat('en-GB', { timeStyle: 'short', timeZone: 'UTC' });

/** `notify.email.ca`, read at startup: a missing or non-PEM file is a configuration error naming the key. */
function readCa(path: string): string {
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError([
      { path: 'notify.email.ca', message: `cannot read ${path}: ${(err as Error).message}` },
    ]);
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----'))
    throw new ConfigError([{ path: 'notify.email.ca', message: `${path} holds no PEM certificate` }]);
  return pem;
}

/** The SMTP sender of `notify.email.smtp`: `smtps://` is TLS from the start, `smtp://` STARTTLS if offered. */
export function smtpSender(config: EmailConfig): MailSender {
  const u = new URL(config.smtp);
  const ca = config.ca === undefined ? undefined : readCa(config.ca);
  const transport = nodemailer.createTransport({
    host: u.hostname.replace(/^\[(.*)\]$/, '$1'),
    ...(u.port !== '' ? { port: Number(u.port) } : {}),
    secure: u.protocol === 'smtps:',
    ...(config.user !== undefined
      ? { auth: { user: config.user, pass: config.password ?? '' } }
      : u.username !== ''
        ? { auth: { user: decodeURIComponent(u.username), pass: decodeURIComponent(u.password) } }
        : {}),
    // Beside the system's CAs (Node's default), not in place of them.
    ...(ca !== undefined ? { tls: { ca: [...tlsRootCertificates, ca] } } : {}),
    connectionTimeout: config.timeout,
    greetingTimeout: config.timeout,
    socketTimeout: config.timeout,
  });
  return async (m) => {
    await transport.sendMail({ from: config.from, to: m.to, subject: m.subject, text: m.text, html: m.html });
  };
}

/** `{name}` placeholders replaced by their values; a line break in a value (a subject) becomes a space. */
function fill(template: string, values: MailValues, oneLine: boolean): string {
  return template.replace(/\{(\w+)\}/g, (whole, name: string) => {
    if (!Object.hasOwn(values, name)) return whole;
    const v = values[name as keyof MailValues];
    return oneLine ? v.replace(/[\r\n]+/g, ' ') : v;
  });
}

/** What a message says of the new login. */
interface NewLogin {
  readonly sessionId: string | undefined;
  readonly userAgent?: string;
  readonly place?: string;
}

/** The login of a `session.created` or `session.new_device` event: its own fields. */
function loginOf(e: SessionEvent): NewLogin {
  const place = describePlace(e.geo, e.location);
  return {
    sessionId: e.sessionId,
    ...(e.userAgent !== undefined ? { userAgent: e.userAgent } : {}),
    ...(place !== undefined ? { place } : {}),
  };
}

/** Events about another session, whose new login is `by` (its place is only in the login's own event). */
function isAboutOther(e: SessionEvent): boolean {
  return e.type === 'session.superseded' || e.type === 'session.warned';
}

/** Bounded insertion-ordered collections: past `max`, the oldest entry goes. */
function trim(c: Map<string, unknown> | Set<string>, max: number): void {
  if (c.size <= max) return;
  const oldest = c.keys().next().value;
  if (oldest !== undefined) c.delete(oldest);
}

export function createEmailNotifier(config: EmailConfig, app: string, deps: EmailDeps): EmailNotifier {
  const wanted: ReadonlySet<string> = new Set<EmailEventType>(config.events);
  const send = deps.send ?? smtpSender(config);
  const log = deps.logger;
  const text = config.text ?? DEFAULT_TEXT;
  const recipients = new Map<string, { address: string; until: number }>();
  const mailed = new Set<string>();
  const logins = new Map<string, NewLogin>();
  const queue: MailMessage[] = [];
  let sending: MailMessage | undefined;
  let closed = false;
  let idle: (() => void) | undefined;

  const addressOf = (user: string): string | undefined => {
    if (config.to.kind === 'template') return config.to.template.replaceAll('{user}', user);
    const known = recipients.get(user);
    if (known === undefined || known.until <= deps.now()) return undefined;
    return known.address;
  };

  const count = () => deps.metrics.emailQueue.set(queue.length + (sending === undefined ? 0 : 1));

  const pump = async (): Promise<void> => {
    if (sending !== undefined) return;
    while (!closed && (sending = queue.shift()) !== undefined) {
      const message = sending;
      count();
      for (let n = 1; ; n++) {
        try {
          await send(message);
          deps.metrics.emailDeliveries.labels('sent').inc();
          break;
        } catch (err) {
          // The SMTP host's answer, never the message or its address (the address is the user's).
          const why = (err as Error).message;
          if (n >= config.attempts || closed) {
            deps.metrics.emailDeliveries.labels('failed').inc();
            log.error({ code: 'SG_ERR_EMAIL_GAVE_UP', attempts: n, err: why }, 'e-mail dropped');
            break;
          }
          deps.metrics.emailDeliveries.labels('retried').inc();
          log.warn({ code: 'SG_ERR_EMAIL', attempt: n, err: why }, 'e-mail not sent: retrying');
          const wait = Math.min(config.backoff * 2 ** (n - 1), MAX_BACKOFF);
          await new Promise((r) => setTimeout(r, wait).unref());
        }
      }
    }
    sending = undefined;
    count();
    idle?.();
  };

  /** The message of an event, queued: one per new login, whichever of its events come. */
  function build(e: SessionEvent): void {
    if (closed) return;
    const by = e.by?.sessionId;
    const login: NewLogin = isAboutOther(e)
      ? ((by !== undefined ? logins.get(by) : undefined) ?? {
          sessionId: by,
          ...(e.by?.userAgent !== undefined ? { userAgent: e.by.userAgent } : {}),
        })
      : loginOf(e);
    if (login.sessionId !== undefined) {
      if (mailed.has(login.sessionId)) return;
      mailed.add(login.sessionId);
      trim(mailed, MAX_MAILED);
    }
    const to = addressOf(e.user);
    if (to === undefined || !ADDRESS.test(to)) {
      deps.metrics.emailDeliveries.labels('no_recipient').inc();
      log.warn(
        { code: 'SG_ERR_EMAIL_NO_RECIPIENT', event: e.type, why: to === undefined ? 'unknown' : 'invalid' },
        'no e-mail address for the user',
      );
      return;
    }
    if (queue.length >= config.maxQueue) {
      deps.metrics.emailDeliveries.labels('dropped').inc();
      log.error({ code: 'SG_ERR_EMAIL_QUEUE_FULL', max: config.maxQueue }, 'e-mail dropped: queue full');
      return;
    }
    const values: MailValues = {
      user: e.user,
      device: login.userAgent !== undefined ? describeDevice(login.userAgent) : 'an unknown device',
      place: login.place ?? 'an unknown place',
      time: `${TIME.format(e.at)} UTC`,
      app,
      sessionsUrl: deps.sessionsUrl,
      notMeUrl: deps.notMeLink(e)?.url ?? deps.sessionsUrl,
    };
    queue.push({
      to,
      subject: fill(config.subject, values, true),
      text: fill(text, values, false),
      html: deps.renderHtml(values, config.html),
    });
    count();
    void pump();
  }

  return {
    get pending() {
      return queue.length + (sending === undefined ? 0 : 1);
    },
    remember(user, address) {
      recipients.delete(user);
      recipients.set(user, { address, until: deps.now() + deps.recipientTtl });
      trim(recipients, MAX_RECIPIENTS);
    },
    enqueue(e) {
      if (closed) return;
      if ((e.type === 'session.created' || e.type === 'session.new_device') && e.sessionId !== undefined) {
        logins.set(e.sessionId, loginOf(e));
        trim(logins, MAX_LOGINS);
      }
      if (!wanted.has(e.type)) return;
      // Built after the login's response is on its way (about 60 us of User-Agent parsing, HMAC and
      // templates per message, measured on this machine), and after the login's own session.created,
      // which a login emits just after the ends of the sessions it superseded: its device and place.
      setImmediate(() => build(e));
    },
    async close() {
      if (sending !== undefined) {
        await Promise.race([
          new Promise<void>((r) => (idle = r)),
          new Promise((r) => setTimeout(r, 2000).unref()),
        ]);
      }
      closed = true;
    },
  };
}
