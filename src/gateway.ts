/**
 * The composition root: createGateway(config) wires the parts. The only module that imports everything;
 * tests use it too, with an injected clock, registry and logger.
 */
import { clearSiteDataHeader } from './http/clear-site-data.js';
import { createHmac } from 'node:crypto';
import { once } from 'node:events';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { createAdminServer, type Readiness } from './admin/server.js';
import { DecisionCache } from './cache/decision-cache.js';
import { shutdownGraceOf, type Config, type UserSourceConfig } from './config/schema.js';
import { createLogger, type Logger } from './observability/logger.js';
import { Metrics } from './observability/metrics.js';
import { compileTrustedProxies } from './proxy/client-address.js';
import { compileCookieHardening } from './proxy/cookie-harden.js';
import { Upstream } from './proxy/forward.js';
import { compileAttributeReader } from './proxy/login-attributes.js';
import { createUserProbe, defaultPresentAs } from './proxy/probe.js';
import { plainRejectionPage, Rejections, type RejectionPageRenderer } from './proxy/rejection.js';
import { compileWatchedCookies } from './proxy/rotation-tap.js';
import { createProxyServer, type ProxyServer, type SelfServiceHandler } from './proxy/server.js';
import { SessionEvents, type SessionEvent } from './sessions/events.js';
import { SessionService } from './sessions/service.js';
import type { SessionStore } from './store/contract.js';
import { createStore } from './store/index.js';
import {
  compileLoginRule,
  compileLogoutRule,
  compileRefreshRule,
  type Exchange,
  type TokenRule,
} from './tokens/exchange.js';
import { compileRequestTokenReader } from './tokens/request-token.js';
import { compileProtect } from './tokens/route.js';
import { createTokenIdOf } from './tokens/token-id.js';
import { readTlsFiles, watchCertificates, type CertificateWatcher } from './tls.js';
import { openGeoDatabase } from './geo/database.js';
import { createAuditSink } from './notify/audit.js';
import { createWebhookNotifier, type WebhookNotifier } from './notify/webhook.js';
import { createEmailNotifier, type EmailNotifier } from './notify/email.js';
import { createNotMeLinks, NOT_ME_PATH } from './notify/not-me-link.js';
import { createNotMePage } from './ui/not-me.js';
import { renderLoginMailHtml } from './ui/mail.js';
import { createSelfService, renderRejectionPage } from './ui/self-service.js';
import { createChoosePage } from './ui/choose.js';
import { createWarningPage, WARNING_PATH } from './ui/warning.js';
import { compileWarningGate } from './proxy/warning.js';
import { HeldLogins } from './proxy/held-logins.js';
import { compileHtmlInjection } from './proxy/html-inject.js';
import { createLiveSignOut } from './ui/live-signout.js';
import { sendError } from './errors.js';

/** While closing, how often connections that finished their last request are dropped (milliseconds). */
const IDLE_SWEEP = 50;

export interface GatewayDeps {
  /** Epoch-millisecond clock (sessions, cache, store). @default Date.now */
  readonly now?: () => number;
  readonly registry?: Registry;
  readonly logger?: Logger;
  /** A store to use instead of the configured one (tests). */
  readonly store?: SessionStore;
  /** Collect Node process metrics. @default true */
  readonly defaultMetrics?: boolean;
}

export interface Gateway {
  readonly config: Config;
  readonly sessions: SessionService;
  readonly store: SessionStore;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly proxy: ProxyServer;
  readonly admin: Server;
  /** Starts both listeners; resolves with their addresses. */
  listen(): Promise<{ proxy: AddressInfo; admin: AddressInfo }>;
  /** `http://host:port` (`https://` with `tls`) of the proxy and admin listeners (after listen). */
  readonly url: string;
  readonly adminUrl: string;
  /** Reads the certificate files of the TLS listeners now (SIGHUP); they are also watched. */
  reloadCertificates(): void;
  isReady(): boolean;
  /**
   * Takes the gateway out of rotation: /readyz answers 503 from now on while everything keeps being
   * served (SIGTERM, for `shutdown.delay`, so load balancers stop sending before the listener closes).
   */
  drain(): void;
  /**
   * Drains, stops accepting, lets in-flight requests finish within `grace` ms (default
   * `shutdown.grace`), then closes the store.
   */
  close(grace?: number): Promise<void>;
}

export async function createGateway(config: Config, deps: GatewayDeps = {}): Promise<Gateway> {
  const now = deps.now ?? Date.now;
  // Before anything connects: a missing certificate is a configuration error (exit code 2).
  const proxyTls = config.tls && readTlsFiles(config.tls, 'tls');
  const adminTls = config.admin.tls && readTlsFiles(config.admin.tls, 'admin.tls');
  const logger = deps.logger ?? createLogger(config.log);
  // Before anything connects too: a missing or corrupt database is a configuration error naming the key.
  const geo = config.geo && openGeoDatabase({ path: config.geo.database, logger });
  const registry = deps.registry ?? new Registry();
  const metrics = new Metrics({ registry, defaultMetrics: deps.defaultMetrics ?? true });
  let storeWasLost = false;
  let channelWasLost = false;
  const store =
    deps.store ??
    (await createStore(config.store, {
      now,
      retention: config.sessions.maxAge,
      tombstoneRetention: config.sessions.tombstoneRetention,
      onError: (err, what) =>
        logger.warn(
          { code: (err as { code?: string }).code ?? 'SG_ERR_STORE', what, err: (err as Error).message },
          'store error',
        ),
      onAvailability: (up) => {
        metrics.storeAvailable.set(up ? 1 : 0);
        // A recovery is the store coming back after it was lost, not its first connection.
        if (up && storeWasLost) metrics.storeRecoveries.labels('commands').inc();
        storeWasLost = !up;
        logger[up ? 'info' : 'error'](
          up ? { event: 'store_up' } : { code: 'SG_ERR_STORE_UNAVAILABLE' },
          up ? 'session store reachable' : 'session store unreachable',
        );
      },
      onChannel: (state) => {
        if (state === 'lost') metrics.channelLost.inc();
        else if (channelWasLost) metrics.storeRecoveries.labels('channel').inc();
        channelWasLost = state === 'lost';
        logger[state === 'lost' ? 'warn' : 'info'](
          state === 'lost' ? { code: 'SG_ERR_CHANNEL_LOST' } : { event: 'channel_restored' },
          `invalidation channel ${state}`,
        );
      },
      onInvalidation: (lagMs) => {
        metrics.invalidations.inc();
        if (lagMs !== undefined) metrics.invalidationLagSeconds.observe(Math.max(0, lagMs) / 1000);
      },
    }));
  metrics.storeAvailable.set(store.isAvailable() ? 1 : 0);
  const cache = new DecisionCache({ max: config.cache.max, maxStaleness: config.cache.maxStaleness, now });
  const events = new SessionEvents();
  events.onListenerError((err) =>
    logger.error({ code: 'SG_ERR_EVENT_LISTENER', err: (err as Error).message }, 'event listener failed'),
  );
  const sessions = new SessionService({
    store,
    cache,
    now,
    events,
    config: { ...config.sessions, consistency: config.consistency },
    ...(geo ? { locate: geo.locate } : {}),
    onSharedToken: () =>
      logger.warn(
        { code: 'SG_WARN_SHARED_TOKEN' },
        'a login issued a secondary token (e.g. remember-me) that already belongs to another session: it is not linked to the new session',
      ),
    onBackgroundError: (err, what) => {
      metrics.storeErrors.inc();
      logger.warn(
        { code: (err as { code?: string }).code ?? 'SG_ERR_STORE', what, err: (err as Error).message },
        'background store operation failed',
      );
    },
  });

  // Audit log and counters, fed by session events.
  const audit = createAuditSink(logger);
  events.on(audit);
  events.on((e) => {
    // A warned session (onLimit: warn) goes on: not an end.
    const warned = e.type === 'session.warned';
    if (
      e.type !== 'session.created' &&
      e.type !== 'request.rejected' &&
      e.type !== 'session.refused' &&
      e.type !== 'session.new_device' &&
      // One announcement of a "not me": its sessions' own session.ended were counted.
      e.type !== 'session.not_me' &&
      !warned
    )
      metrics.sessionsEnded.labels(String(e.reason ?? e.type)).inc();
    // Policy reasons are a fixed set (PolicyReason), never a user or group name.
    if (e.policy !== undefined)
      metrics.policyOutcomes
        .labels(e.type === 'session.refused' ? 'refused' : warned ? 'warned' : 'ended', e.policy)
        .inc();
    if (e.type === 'session.new_device') {
      if (e.newDevice) metrics.unfamiliarLogins.device.inc();
      if (e.newLocation) metrics.unfamiliarLogins.location.inc();
    }
  });
  metrics.countLiveSessionsWith(() => sessions.countLive());
  // "Not me" links of new-login e-mails and webhooks, on the configured origin (never a request's Host).
  const baseUrl = config.notify.baseUrl;
  const notMeLinks =
    baseUrl === undefined
      ? undefined
      : createNotMeLinks({
          secret: config.secret,
          baseUrl,
          prefix: config.selfService.prefix,
          ttl: config.notify.notMe.ttl,
          now,
        });
  const notMeLink = notMeLinks && ((e: SessionEvent) => notMeLinks.forEvent(e));
  let webhook: WebhookNotifier | undefined;
  if (config.notify.webhook) {
    webhook = createWebhookNotifier(config.notify.webhook, {
      logger,
      metrics,
      now,
      ...(notMeLink && { notMeLink }),
    });
    events.on((e) => webhook?.enqueue(e));
  }
  const emailConfig = config.notify.email;
  let email: EmailNotifier | undefined;
  if (emailConfig && baseUrl !== undefined && notMeLink) {
    email = createEmailNotifier(emailConfig, emailConfig.app ?? new URL(baseUrl).host, {
      logger,
      metrics,
      now,
      sessionsUrl: `${baseUrl}${config.selfService.prefix}sessions`,
      notMeLink,
      renderHtml: renderLoginMailHtml,
      // An address read at login serves that login's events, a held one's (onLimit: ask) too.
      recipientTtl: config.sessions.askTimeout + 60_000,
    });
    events.on((e) => email?.enqueue(e));
  }
  // Not a policy source: a login whose answer is not JSON must never be refused for an e-mail address,
  // so a `json:` address is read only where the login rule reads the response JSON anyway.
  const emailTo = emailConfig?.to.kind === 'template' ? undefined : emailConfig?.to;

  const tokenIdOf = createTokenIdOf(config.secret, { memo: config.cache.tokenIdMemo });
  const paths = { caseSensitive: config.routes.caseSensitive };
  const groupsConfig = config.sessions.groups;
  const seatsConfig = config.sessions.seats;
  const policySources = [
    ...(groupsConfig ? [groupsConfig.from] : []),
    ...(seatsConfig ? [seatsConfig.key] : []),
  ];
  const rules: TokenRule[] = [
    ...config.login.map((r, i) => compileLoginRule(r, i, paths, policySources)),
    ...config.refresh.map((r, i) => compileRefreshRule(r, i, paths)),
    ...config.logout.map((r, i) => compileLogoutRule(r, i, paths)),
  ];
  const watchedCookies = compileWatchedCookies(config.tokens, { failMode: config.failMode });
  const trustedProxies = compileTrustedProxies(config.trustedProxies);
  const hardenConfig = config.cookies.harden;
  const cookieHardening =
    hardenConfig &&
    compileCookieHardening(hardenConfig, {
      // The token cookies of `tokens` and those the login and refresh rules read.
      isTokenCookie: (name) =>
        watchedCookies?.watches(name) === true || rules.some((r) => r.isTokenCookie(name)),
      trustedProxies,
      hardened: metrics.cookiesHardened,
      unparseable: metrics.setCookieUnparseable,
    });
  const upstream = new Upstream({
    origin: config.upstream,
    connectTimeout: config.timeouts.connect,
    responseTimeout: config.timeouts.response,
    maxBufferedBody: config.maxLoginBody,
    onError: (err) => {
      metrics.upstreamErrors.labels(err.code).inc();
      logger.warn({ code: err.code, err: (err.cause as Error | undefined)?.message }, err.message);
    },
    // Logins set the token cookies: remember their Path and Domain, so a rejection can delete them.
    ...(watchedCookies && { onBufferedHead: (head, url) => watchedCookies.learn(head, url) }),
    ...(cookieHardening && { hardenCookies: cookieHardening.headers }),
    // A rotated token the store could not register (failMode closed) is answered as a store outage.
    onRefused: (req, res) =>
      rejections.send(res, req.headers, 'session_store_unavailable', undefined, undefined),
  });
  const upstreamUrl = new URL(config.upstream);
  const renderPage: RejectionPageRenderer = renderRejectionPage ?? plainRejectionPage;
  const rejections = new Rejections({
    supersededMessage: config.reject.message,
    redirect: config.reject.redirect,
    clearCookies: config.reject.clearCookies,
    tokenCookies: watchedCookies,
    allowedOrigins: config.cors.allowedOrigins,
    renderPage,
    cookieHardening,
    clearSiteData: clearSiteDataHeader(config.reject.clearSiteData),
  });
  const readToken = compileRequestTokenReader(config.tokens);
  const selfService: SelfServiceHandler | undefined = config.selfService.enabled
    ? createSelfService({
        sessions,
        prefix: config.selfService.prefix,
        logger,
        now,
        // One key for every replica: a page rendered by one replica may be posted to another.
        csrfKey: createHmac('sha256', config.secret).update('sessiongate:self-service-csrf').digest(),
        loginUrl: config.reject.redirect,
        trustedProxies,
        rejectionMessage: (code) => rejections.message(code),
        clearSiteData: clearSiteDataHeader(config.reject.clearSiteData),
      })
    : undefined;
  // onLimit: ask: logins held in this replica's memory, and the page (or JSON) where their users choose.
  const holds =
    config.sessions.onLimit === 'ask'
      ? new HeldLogins({
          sessions,
          timeout: config.sessions.askTimeout,
          now,
          metrics,
          logger,
          loginHeader: config.notify.loginHeader,
        })
      : undefined;
  const prefix = config.selfService.prefix;
  const choosePage =
    holds &&
    createChoosePage({
      sessions,
      holds,
      prefix,
      logger,
      now,
      csrfKey: createHmac('sha256', config.secret).update('sessiongate:choose-csrf').digest(),
      trustedProxies,
      ...(config.reject.redirect !== undefined ? { loginUrl: config.reject.redirect } : {}),
      limitMessage: rejections.message('session_limit_reached'),
      ...(seatsConfig ? { seatMessage: seatsConfig.message } : {}),
    });
  const choosePrefix = `${prefix}choose/`;
  // Pages of the gateway's own under the prefix, by sub-path; served even with the sessions page
  // disabled (ask needs its choice page). Matched in order, before the sessions page.
  const reservedPages: { readonly prefix: string; readonly handler: SelfServiceHandler }[] = [];
  if (choosePage !== undefined) reservedPages.push({ prefix: choosePrefix, handler: choosePage });
  if (notMeLinks !== undefined)
    reservedPages.push({
      prefix: `${prefix}${NOT_ME_PATH}`,
      handler: createNotMePage({
        sessions,
        links: notMeLinks,
        markers: store,
        prefix,
        logger,
        now,
        csrfKey: createHmac('sha256', config.secret).update('sessiongate:not-me-csrf').digest(),
        trustedProxies,
        ...(config.reject.redirect !== undefined ? { loginUrl: config.reject.redirect } : {}),
        clearSiteData: clearSiteDataHeader(config.reject.clearSiteData),
      }),
    });
  // onLimit: warn: the page a warned session's navigation is sent to, and its answers.
  const warnings = config.sessions.onLimit === 'warn';
  if (warnings)
    reservedPages.push({
      prefix: `${prefix}${WARNING_PATH}`,
      handler: createWarningPage({
        sessions,
        prefix,
        logger,
        now,
        csrfKey: createHmac('sha256', config.secret).update('sessiongate:warning-csrf').digest(),
        trustedProxies,
        ...(config.reject.redirect !== undefined ? { loginUrl: config.reject.redirect } : {}),
        clearSiteData: clearSiteDataHeader(config.reject.clearSiteData),
        rejectionMessage: (code) => rejections.message(code),
      }),
    });
  // ui.liveSignOut: the script, its event streams and the signed-out page, beside the proxy's
  // long-lived connections (closed on revocation like any other).
  const liveSignOut = !config.ui.liveSignOut
    ? undefined
    : createLiveSignOut({
        sessions,
        prefix,
        streams: { add: (tokenId, conn) => proxy.connections.add(tokenId, conn) },
        unknownTokens: config.sessions.unknownTokens,
        redirect: config.reject.redirect,
        renderPage: (code) =>
          renderPage({
            code,
            message: rejections.message(code),
            session: undefined,
            loginUrl: config.reject.redirect,
          }),
        logger,
      });
  if (liveSignOut) {
    const handler: SelfServiceHandler = (scope) =>
      liveSignOut.handle(scope, (code, session) =>
        rejections.send(scope.res, scope.req.headers, code, scope.token, session),
      );
    reservedPages.push({ prefix: `${prefix}live`, handler }, { prefix: `${prefix}signed-out`, handler });
    metrics.countLiveStreamsWith(() => liveSignOut.open);
  }
  const reservedHandler: SelfServiceHandler | undefined =
    reservedPages.length === 0
      ? selfService
      : (scope) => {
          for (const page of reservedPages)
            if (scope.path.startsWith(page.prefix)) return page.handler(scope);
          if (selfService !== undefined) return selfService(scope);
          sendError(scope.res, 'SG_ERR_NOT_FOUND');
        };
  const proxy = createProxyServer({
    upstream,
    tls: proxyTls,
    upgradeTarget: {
      // URL keeps the brackets of an IPv6 literal (`[::1]`); sockets want the bare address.
      host: upstreamUrl.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: Number(upstreamUrl.port || (upstreamUrl.protocol === 'https:' ? 443 : 80)),
      tls: upstreamUrl.protocol === 'https:',
      connectTimeout: config.timeouts.connect,
      responseTimeout: config.timeouts.response,
      ...(cookieHardening && { hardenCookies: cookieHardening.headers }),
    },
    sessions,
    tokenIdOf,
    readToken,
    rules,
    protect: compileProtect(config.protect.paths, config.protect.except, paths.caseSensitive),
    caseSensitive: paths.caseSensitive,
    trustedProxies,
    rejections,
    watchedCookies,
    mode: config.mode,
    policy: { failMode: config.failMode, unknownTokens: config.sessions.unknownTokens },
    ambiguousPaths: config.ambiguousPaths,
    fixation: config.sessions.fixation,
    login: {
      maxBody: config.maxLoginBody,
      loginHeader: config.notify.loginHeader,
      locationHeader: config.locationHeader?.toLowerCase(),
      probe: createUserProbe(
        upstream.pool,
        config.upstream,
        defaultPresentAs(config.tokens[0]),
        logger,
        config.maxLoginBody,
      ),
      groups: groupsConfig && {
        read: compileAttributeReader(groupsConfig.from),
        onMissing: groupsConfig.onMissing,
      },
      seats: seatsConfig && {
        read: compileAttributeReader(seatsConfig.key),
        onMissing: seatsConfig.onMissing,
        message: seatsConfig.message,
      },
      ask: holds && { holds, chooseUrl: (id: string) => `${choosePrefix}${id}` },
      recipient: email && emailTo && recipientReader(emailTo, email),
    },
    timeouts: {
      keepAlive: config.timeouts.keepAlive,
      headers: config.timeouts.headers,
      request: config.timeouts.body,
    },
    selfService: reservedHandler && { prefix, handler: reservedHandler },
    warnings: warnings ? compileWarningGate({ prefix, mode: config.mode, logger }) : undefined,
    injectHtml:
      liveSignOut &&
      compileHtmlInjection({
        scriptUrl: `${prefix}live.js`,
        onInjected: (encoding) => metrics.liveSignOutPages[`injected_${encoding}`].inc(),
        onSkipped: (why) => metrics.liveSignOutPages[`skipped_${why}`].inc(),
        onCorrupt: () => metrics.liveSignOutPages.corrupt.inc(),
        logger,
      }),
    // Request outcomes are observability's, not session events: straight to the audit log and webhook.
    record: (event) => {
      try {
        audit(event);
        webhook?.enqueue(event);
      } catch (err) {
        logger.error({ code: 'SG_ERR_EVENT_LISTENER', err: (err as Error).message }, 'event listener failed');
      }
    },
    metrics,
    logger,
    now,
  });

  let draining = false;
  // Readiness follows what the store can do now: commands answered and, when cached decisions rely on
  // it, the invalidation channel (without it another replica's revocation would go unheard).
  const readiness = (): Readiness => {
    if (draining) return { ready: false, reason: 'draining' };
    // Under failMode: open the gateway serves through a store outage: taking every replica out of its
    // Service then would turn "fail open" into "fail closed" for the whole app.
    if (config.failMode === 'open') return { ready: true };
    const health = store.health();
    if (!health.commands || (config.consistency === 'cached' && !health.channel))
      return { ready: false, reason: health.reason ?? 'session store unhealthy' };
    return { ready: true };
  };
  const isReady = () => readiness().ready;
  const admin = createAdminServer({
    sessions,
    registry,
    logger,
    token: config.admin.token,
    open: config.admin.open,
    readiness,
    userNormalizations: config.login.map((r) => r.normalize),
    tls: adminTls,
  });
  const watchers: CertificateWatcher[] = [];
  if (config.tls && proxyTls)
    watchers.push(
      watchCertificates({
        files: config.tls,
        key: 'tls',
        current: proxyTls,
        apply: (m) => proxy.setSecureContext(m),
        logger,
      }),
    );
  if (config.admin.tls && adminTls)
    watchers.push(
      watchCertificates({
        files: config.admin.tls,
        key: 'admin.tls',
        current: adminTls,
        apply: (m) => {
          if (admin instanceof HttpsServer) admin.setSecureContext({ cert: m.cert, key: m.key });
        },
        logger,
      }),
    );

  let proxyAddress: AddressInfo | undefined;
  let adminAddress: AddressInfo | undefined;
  const hostOf = (a: AddressInfo) =>
    a.family === 'IPv6' ? `[${a.address}]` : a.address === '0.0.0.0' ? '127.0.0.1' : a.address;

  return {
    config,
    sessions,
    store,
    metrics,
    logger,
    proxy,
    admin,
    isReady,
    get url() {
      if (!proxyAddress) throw new Error('not listening');
      return `${proxyTls === undefined ? 'http' : 'https'}://${hostOf(proxyAddress)}:${proxyAddress.port}`;
    },
    get adminUrl() {
      if (!adminAddress) throw new Error('not listening');
      return `${adminTls === undefined ? 'http' : 'https'}://${hostOf(adminAddress)}:${adminAddress.port}`;
    },
    reloadCertificates() {
      for (const w of watchers) w.reload();
    },
    async listen() {
      proxy.server.listen(config.listen.port, config.listen.host);
      await once(proxy.server, 'listening');
      admin.listen(config.admin.listen.port, config.admin.listen.host);
      await once(admin, 'listening');
      proxyAddress = proxy.server.address() as AddressInfo;
      adminAddress = admin.address() as AddressInfo;
      logger.info(
        {
          listen: proxyAddress,
          admin: adminAddress,
          upstream: config.upstream,
          store: store.kind,
          mode: config.mode,
        },
        'sessiongate listening',
      );
      return { proxy: proxyAddress, admin: adminAddress };
    },
    drain() {
      draining = true;
    },
    async close(grace = shutdownGraceOf(config)) {
      draining = true;
      for (const w of watchers) w.stop();
      geo?.stop();
      const closing = new Promise<void>((resolve) => proxy.server.close(() => resolve()));
      // WebSockets never finish on their own: told "going away" now, their clients reconnect elsewhere.
      proxy.closeTunnels();
      // Live sign-out streams too: their tabs reconnect to another replica.
      if (liveSignOut) liveSignOut.close();
      // close() drops the idle keep-alive connections once; one whose request is still in flight would
      // stay open until its keep-alive timeout after answering. Requests that arrive meanwhile on such a
      // connection are answered with `Connection: close`, and the finished ones are dropped as they idle.
      proxy.server.on('request', (_req: IncomingMessage, res: ServerResponse) => {
        res.shouldKeepAlive = false;
      });
      const idle = setInterval(() => proxy.closeIdleConnections(), IDLE_SWEEP);
      const timer = setTimeout(() => proxy.closeAllConnections(), grace);
      timer.unref();
      await closing;
      clearInterval(idle);
      clearTimeout(timer);
      await new Promise<void>((resolve) => admin.close(() => resolve()));
      admin.closeAllConnections();
      // Streams still open past the grace period are cut.
      const drained = await Promise.race([
        upstream.close().then(() => true),
        new Promise<boolean>((r) => setTimeout(() => r(false), grace).unref()),
      ]).catch(() => false);
      if (!drained) await upstream.destroy();
      holds?.close();
      // Before the notifiers: the last background writes (a session seen expired) emit their events.
      await sessions.close();
      await webhook?.close();
      await email?.close();
      if (!deps.store) await store.close();
    },
  };
}

/** notify.email.to of a login (a claim, JSON field or header of its response), handed to the notifier. */
function recipientReader(
  source: UserSourceConfig,
  email: EmailNotifier,
): (user: string, ex: Exchange, issued: readonly string[]) => void {
  const read = compileAttributeReader(source);
  return (user, ex, issued) => {
    const r = read(ex, issued);
    if (r.kind === 'names' && r.names.length === 1) email.remember(user, r.names[0] as string);
  };
}
