import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Request outcomes: a fixed set, so no request value ever becomes a label. */
export const REQUEST_OUTCOMES = [
  'passed_live',
  'passed_no_token',
  'passed_unprotected',
  'passed_unknown',
  'passed_anonymous',
  'passed_store_unavailable',
  'passed_report_only',
  'rejected_superseded',
  'rejected_expired',
  'rejected_logged_out',
  'rejected_ended',
  'rejected_unknown',
  'rejected_store_unavailable',
  'bad_request',
  'self_service',
] as const;
export type RequestOutcome = (typeof REQUEST_OUTCOMES)[number];

export const LOGIN_OUTCOMES = [
  'created',
  'existing',
  'refused',
  'failed_login',
  'no_token',
  'no_user',
  'unreadable',
  'body_too_large',
  'store_unavailable',
  'probe_failed',
  'held',
] as const;
export type LoginOutcomeLabel = (typeof LOGIN_OUTCOMES)[number];

/** How a login judged a session-fixation risk was handled, and which case it was. */
export const FIXATION_OUTCOMES = ['warned', 'refused'] as const;
/**
 * `first_login`: the login made the pre-login id the session's; `relogin`: a login of a live session's
 * browser kept its id (a step-up).
 */
export const FIXATION_CASES = ['first_login', 'relogin'] as const;
export type FixationOutcome = (typeof FIXATION_OUTCOMES)[number];
export type FixationCase = (typeof FIXATION_CASES)[number];

/**
 * What became of a login held under `onLimit: ask`: held; chosen (a session ended, the login released);
 * refused (chosen, but still over the limit or a seat); cancelled; expired (askTimeout); dropped (the
 * user's oldest hold, past the per-user bound); full (not held: the bounds of all holds were reached).
 */
export const HELD_LOGIN_OUTCOMES = [
  'held',
  'chosen',
  'refused',
  'cancelled',
  'expired',
  'dropped',
  'full',
] as const;
export type HeldLoginOutcome = (typeof HELD_LOGIN_OUTCOMES)[number];

/** What became of a new-login e-mail (notify/email.ts): a fixed set. */
export const EMAIL_RESULTS = ['sent', 'retried', 'failed', 'dropped', 'no_recipient'] as const;
/**
 * `ui.liveSignOut`: what became of a live session's HTML page: the script inserted (by the body's
 * encoding), left alone (its CSP forbids the script; an encoding not decoded; `no-transform`), or cut
 * (a compressed body that did not decode).
 */
export const LIVE_SIGNOUT_PAGE_OUTCOMES = [
  'injected_identity',
  'injected_gzip',
  'injected_br',
  'injected_deflate',
  'skipped_csp',
  'skipped_encoding',
  'skipped_no_transform',
  'corrupt',
] as const;
export type LiveSignOutPageOutcome = (typeof LIVE_SIGNOUT_PAGE_OUTCOMES)[number];

/** A counter the request path can bump with one field increment. */
export interface Tally {
  inc(): void;
}

/**
 * Counts in a plain number and hands the sum to prom-client when it is scraped: `Counter.inc` builds a
 * label hash and an object per call, which the request path should not pay on every request.
 */
class PendingCount implements Tally {
  pending = 0;
  inc(): void {
    this.pending++;
  }
  take(): number {
    const n = this.pending;
    this.pending = 0;
    return n;
  }
}

/**
 * Every metric of sessiongate, on an injected registry (no module-level singletons). The per-request
 * counters (`requests`, `cacheHits`) are tallies folded into their prom-client counters at scrape time;
 * the others are label children created once here, so nothing looks a label up per event.
 */
export class Metrics {
  readonly registry: Registry;
  readonly requests: Record<RequestOutcome, Tally>;
  readonly checkSeconds: Histogram;
  readonly cacheHits: Tally;
  readonly cacheMisses: Counter;
  readonly storeErrors: Counter;
  readonly logins: Record<LoginOutcomeLabel, Counter.Internal>;
  readonly tokenUpdates: Counter<'kind'>;
  readonly sessionsEnded: Counter<'reason'>;
  /** Limit policy outcomes: `outcome` ended | refused | warned | defaulted, `reason` a fixed policy reason. */
  readonly policyOutcomes: Counter<'outcome' | 'reason'>;
  /** `onLimit: ask` holds, by outcome (HELD_LOGIN_OUTCOMES: a fixed set). */
  readonly heldLogins: Record<HeldLoginOutcome, Counter.Internal>;
  /** Logins from a device or a country not in the user's history (`kind`: a fixed set). */
  readonly unfamiliarLogins: { readonly device: Counter.Internal; readonly location: Counter.Internal };
  readonly liveSessions: Gauge;
  #countLiveSessions: (() => Promise<number>) | undefined;
  readonly invalidations: Counter;
  readonly invalidationLagSeconds: Histogram;
  readonly channelLost: Counter;
  readonly storeRecoveries: Counter<'part'>;
  readonly connectionsClosed: Counter<'kind'>;
  readonly upstreamErrors: Counter<'code'>;
  readonly webhookDeliveries: Counter<'result'>;
  readonly webhookQueue: Gauge;
  /** New-login e-mails by result: sent, retried, failed, dropped (queue full), no_recipient. */
  readonly emailDeliveries: Counter<'result'>;
  readonly emailQueue: Gauge;
  readonly storeAvailable: Gauge;
  /** Set-Cookie headers whose attributes `cookies.harden` changed. */
  readonly cookiesHardened: Tally;
  /** Set-Cookie headers `cookies.harden` could not parse: passed through unchanged. */
  readonly setCookieUnparseable: Tally;
  readonly fixation: Record<FixationOutcome, Record<FixationCase, Counter.Internal>>;
  readonly liveSignOutPages: Record<LiveSignOutPageOutcome, Counter.Internal>;
  #countLiveStreams: (() => number) | undefined;

  /** Where `sessiongate_live_signout_streams` comes from (the open live sign-out event streams). */
  countLiveStreamsWith(count: () => number): void {
    this.#countLiveStreams = count;
  }

  /** Where `sessiongate_live_sessions` comes from (the session service's store count). */
  countLiveSessionsWith(count: () => Promise<number>): void {
    this.#countLiveSessions = count;
  }

  constructor(options: { registry?: Registry; defaultMetrics?: boolean } = {}) {
    const registry = options.registry ?? new Registry();
    this.registry = registry;
    if (options.defaultMetrics !== false)
      collectDefaultMetrics({ register: registry, prefix: 'sessiongate_' });
    const requestCounts = Object.fromEntries(REQUEST_OUTCOMES.map((o) => [o, new PendingCount()])) as Record<
      RequestOutcome,
      PendingCount
    >;
    this.requests = requestCounts;
    const requests: Counter<'outcome'> = new Counter({
      name: 'sessiongate_requests_total',
      help: 'Proxied requests by outcome of the session check.',
      labelNames: ['outcome'],
      registers: [registry],
      collect() {
        for (const outcome of REQUEST_OUTCOMES) requests.labels(outcome).inc(requestCounts[outcome].take());
      },
    });
    this.checkSeconds = new Histogram({
      name: 'sessiongate_store_check_seconds',
      help: 'Session checks that had to ask the store (cache misses and strict mode), in seconds.',
      buckets: [0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    });
    const cacheHits = new PendingCount();
    this.cacheHits = cacheHits;
    new Counter({
      name: 'sessiongate_cache_hits_total',
      help: 'Session checks answered from the LRU.',
      registers: [registry],
      collect() {
        this.inc(cacheHits.take());
      },
    });
    this.cacheMisses = new Counter({
      name: 'sessiongate_cache_misses_total',
      help: 'Session checks that asked the store.',
      registers: [registry],
    });
    this.storeErrors = new Counter({
      name: 'sessiongate_store_errors_total',
      help: 'Store operations that failed.',
      registers: [registry],
    });
    const logins = new Counter({
      name: 'sessiongate_logins_total',
      help: 'Login responses seen, by outcome.',
      labelNames: ['outcome'],
      registers: [registry],
    });
    this.logins = Object.fromEntries(LOGIN_OUTCOMES.map((o) => [o, logins.labels(o)])) as Record<
      LoginOutcomeLabel,
      Counter.Internal
    >;
    this.tokenUpdates = new Counter({
      name: 'sessiongate_token_updates_total',
      help: 'Tokens added to live sessions (refresh, rotation) or sessions ended by the app clearing the token.',
      labelNames: ['kind'],
      registers: [registry],
    });
    this.sessionsEnded = new Counter({
      name: 'sessiongate_sessions_ended_total',
      help: 'Sessions ended, by reason (superseded is the supersession count).',
      labelNames: ['reason'],
      registers: [registry],
    });
    const held = new Counter({
      name: 'sessiongate_held_logins_total',
      help: 'Logins held under onLimit: ask, by outcome (held, chosen, refused, cancelled, expired, dropped, full).',
      labelNames: ['outcome'],
      registers: [registry],
    });
    const unfamiliar = new Counter({
      name: 'sessiongate_unfamiliar_logins_total',
      help: "Logins flagged as from a device (kind=device) or a country (kind=location) not in the user's login history of the last 90 days (a user's first login is never flagged).",
      labelNames: ['kind'],
      registers: [registry],
    });
    this.unfamiliarLogins = { device: unfamiliar.labels('device'), location: unfamiliar.labels('location') };
    this.heldLogins = Object.fromEntries(HELD_LOGIN_OUTCOMES.map((o) => [o, held.labels(o)])) as Record<
      HeldLoginOutcome,
      Counter.Internal
    >;
    this.policyOutcomes = new Counter({
      name: 'sessiongate_policy_outcomes_total',
      help: 'Limit policy outcomes at logins: sessions ended, warned (onLimit: warn) or logins refused, by reason (limit, group-limit, device-limit, seat-limit, idle-reclaimed, chosen-by-user); defaulted: a login whose group or tenant claim was missing or unreadable.',
      labelNames: ['outcome', 'reason'],
      registers: [registry],
    });
    // Counted by the store at scrape time, so every replica reports the same exact number (a tally
    // of this replica's own events drifted, and never dropped at maxAge).
    const countLive = () => this.#countLiveSessions;
    this.liveSessions = new Gauge({
      name: 'sessiongate_live_sessions',
      help: 'Live sessions in the session store (not ended, within maxAge; idle ones until ended), counted at scrape time (reused for up to 5 s).',
      registers: [registry],
      async collect() {
        const count = countLive();
        if (count === undefined) return;
        try {
          this.set(await count());
        } catch {
          // The store cannot answer: the last value stands (sessiongate_store_available says why).
        }
      },
    });
    this.invalidations = new Counter({
      name: 'sessiongate_invalidations_total',
      help: 'Invalidation messages received.',
      registers: [registry],
    });
    this.invalidationLagSeconds = new Histogram({
      name: 'sessiongate_invalidation_lag_seconds',
      help: 'From a revocation being committed to this replica applying it.',
      // Down to 0.1 ms: on loopback the channel's own floor is about 0.2 ms (bench/results/revocation.md).
      buckets: [
        0.0001, 0.00015, 0.0002, 0.0003, 0.0004, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.01,
        0.05, 0.1, 0.5, 1,
      ],
      registers: [registry],
    });
    this.channelLost = new Counter({
      name: 'sessiongate_invalidation_channel_lost_total',
      help: 'Times the invalidation channel was lost (cached live decisions distrusted).',
      registers: [registry],
    });
    this.storeRecoveries = new Counter({
      name: 'sessiongate_store_recoveries_total',
      help: 'Recoveries after a store fault, by part: commands (the store reachable again) or channel (invalidations resubscribed).',
      labelNames: ['part'],
      registers: [registry],
    });
    this.connectionsClosed = new Counter({
      name: 'sessiongate_connections_closed_total',
      help: 'Long-lived connections (websocket, stream) closed because their session was revoked.',
      labelNames: ['kind'],
      registers: [registry],
    });
    this.upstreamErrors = new Counter({
      name: 'sessiongate_upstream_errors_total',
      help: 'Upstream failures by error code.',
      labelNames: ['code'],
      registers: [registry],
    });
    this.webhookDeliveries = new Counter({
      name: 'sessiongate_webhook_deliveries_total',
      help: 'Webhook delivery attempts by result.',
      labelNames: ['result'],
      registers: [registry],
    });
    this.webhookQueue = new Gauge({
      name: 'sessiongate_webhook_queue',
      help: 'Webhook deliveries pending.',
      registers: [registry],
    });
    this.emailDeliveries = new Counter({
      name: 'sessiongate_email_deliveries_total',
      help: 'New-login e-mails by result: sent, retried (an attempt failed), failed (gave up), dropped (queue full), no_recipient.',
      labelNames: ['result'],
      registers: [registry],
    });
    // Every result at 0 from the start, so a rate over a quiet replica is 0 rather than absent.
    for (const r of EMAIL_RESULTS) this.emailDeliveries.labels(r).inc(0);
    this.emailQueue = new Gauge({
      name: 'sessiongate_email_queue',
      help: 'New-login e-mails waiting to be sent (the one being sent included).',
      registers: [registry],
    });
    this.storeAvailable = new Gauge({
      name: 'sessiongate_store_available',
      help: '1 while the session store is reachable.',
      registers: [registry],
    });
    const hardened = new PendingCount();
    this.cookiesHardened = hardened;
    new Counter({
      name: 'sessiongate_cookies_hardened_total',
      help: 'Set-Cookie headers of the app whose attributes cookies.harden changed.',
      registers: [registry],
      collect() {
        this.inc(hardened.take());
      },
    });
    const unparseable = new PendingCount();
    this.setCookieUnparseable = unparseable;
    new Counter({
      name: 'sessiongate_set_cookie_unparseable_total',
      help: 'Set-Cookie headers of the app cookies.harden could not parse (passed through unchanged).',
      registers: [registry],
      collect() {
        this.inc(unparseable.take());
      },
    });
    const fixation = new Counter({
      name: 'sessiongate_session_fixation_total',
      help: 'Logins whose registered token the login request already carried (session fixation), by outcome (warned, refused) and case (first_login, relogin).',
      labelNames: ['outcome', 'case'],
      registers: [registry],
    });
    this.fixation = Object.fromEntries(
      FIXATION_OUTCOMES.map((o) => [
        o,
        Object.fromEntries(FIXATION_CASES.map((c) => [c, fixation.labels(o, c)])),
      ]),
    ) as Record<FixationOutcome, Record<FixationCase, Counter.Internal>>;
    const liveSignOutPages = new Counter({
      name: 'sessiongate_live_signout_pages_total',
      help: "Live sessions' HTML pages under ui.liveSignOut, by outcome: injected_<encoding>, skipped_<why> (csp, encoding, no_transform), corrupt.",
      labelNames: ['outcome'],
      registers: [registry],
    });
    this.liveSignOutPages = Object.fromEntries(
      LIVE_SIGNOUT_PAGE_OUTCOMES.map((o) => [o, liveSignOutPages.labels(o)]),
    ) as Record<LiveSignOutPageOutcome, Counter.Internal>;
    const countLiveStreams = () => this.#countLiveStreams?.() ?? 0;
    new Gauge({
      name: 'sessiongate_live_signout_streams',
      help: 'Open live sign-out event streams (ui.liveSignOut) on this replica.',
      registers: [registry],
      collect() {
        this.set(countLiveStreams());
      },
    });
  }
}
