import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { Server } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { LoginAttribute } from './login-attributes.js';
import type { SessionEvent } from '../sessions/events.js';
import type { SessionService, TokenCheck } from '../sessions/service.js';
import type { TokenRule } from '../tokens/exchange.js';
import type { RequestTokenReader } from '../tokens/request-token.js';
import type { CompiledProtect } from '../tokens/route.js';
import type { TokenIdOf } from '../tokens/token-id.js';
import type { TlsMaterial } from '../tls.js';
import { Answers } from './answers.js';
import { compileTokenCheck } from './check.js';
import type { TrustedProxies } from './client-address.js';
import { clientErrorHandler, connectHandler } from './client-errors.js';
import { ConnectionRegistry } from './connections.js';
import type { ExchangeTapDeps, UserProbe } from './exchange-tap.js';
import { compileFixationGuard } from './fixation.js';
import type { LiveResponseListener, Upstream } from './forward.js';
import { createTlsListener, hostFromAuthority } from './http2.js';
import { closeRevokedConnections, streamTracker } from './long-lived.js';
import { compilePrepare, isRefusal } from './prepare.js';
import type { Rejections } from './rejection.js';
import { anonymousTap, type RotationDeps, type WatchedCookies } from './rotation-tap.js';
import { exchangeOf, type ForwardingDeps } from './routes/forwarding.js';
import { exchangeRoute, type ExchangeRouteDeps } from './routes/exchange.js';
import { passthroughRoute } from './routes/passthrough.js';
import { refreshRoute } from './routes/refresh.js';
import { compileRuleBodyReader } from './routes/rule-body.js';
import { websocketRoute } from './routes/websocket.js';
import type { RequestScope, Route, RuleCandidate } from './scope.js';
import { GOING_AWAY, type UpgradedConnection, type UpgradeTarget } from './upgrade.js';
import { passedOutcome, verdictOf, type VerdictPolicy } from './verdict.js';
import type { WarningGate } from './warning.js';

/** Serves the reserved self-service paths on the proxied origin (implemented in ui/). */
export type SelfServiceHandler = (scope: RequestScope) => void;

export interface ProxyOptions {
  readonly upstream: Upstream;
  /** Serve HTTPS with this certificate (HTTP/2 by ALPN, else HTTP/1.1); undefined: plain HTTP/1.1. */
  readonly tls?: TlsMaterial | undefined;
  readonly upgradeTarget: UpgradeTarget;
  readonly sessions: SessionService;
  readonly tokenIdOf: TokenIdOf;
  readonly readToken: RequestTokenReader;
  /** Login, refresh and logout rules, in config order. */
  readonly rules: readonly TokenRule[];
  readonly protect: CompiledProtect;
  /** Rule and protect paths compare case-sensitively (`routes.caseSensitive`). */
  readonly caseSensitive: boolean;
  readonly trustedProxies: TrustedProxies;
  readonly rejections: Rejections;
  readonly watchedCookies: WatchedCookies | undefined;
  readonly mode: 'enforce' | 'report-only';
  readonly policy: VerdictPolicy;
  readonly ambiguousPaths: 'reject' | 'pass';
  /** `sessions.fixation`: a login that keeps the session id its request carried. @default off */
  readonly fixation?: 'off' | 'warn' | 'refuse';
  readonly login: {
    readonly maxBody: number;
    readonly loginHeader: boolean;
    readonly locationHeader: string | undefined;
    readonly probe: UserProbe;
    /** sessions.groups.from, read at each login. */
    readonly groups?: LoginAttribute | undefined;
    /** sessions.seats.key, read at each login, and the refusal's message. */
    readonly seats?: (LoginAttribute & { readonly message: string }) | undefined;
    /** onLimit: ask: the held logins and the URL of a hold's choice. */
    readonly ask?: ExchangeTapDeps['ask'];
    /** notify.email.to, read at each login. */
    readonly recipient?: ExchangeTapDeps['recipient'];
  };
  readonly timeouts: {
    readonly keepAlive: number;
    /** Milliseconds for the client's request head to arrive (slowloris); 408 past it. */
    readonly headers: number;
    /** Milliseconds for the whole client request, head and body; 408 past it. */
    readonly request: number;
  };
  readonly selfService: { readonly prefix: string; readonly handler: SelfServiceHandler } | undefined;
  /** `onLimit: warn`: what a warned session's requests get (proxy/warning.ts); undefined otherwise. */
  readonly warnings?: WarningGate | undefined;
  /**
   * `ui.liveSignOut`: inserts the script into live sessions' HTML pages (proxy/html-inject.ts);
   * undefined when off, so other responses pay nothing for it.
   */
  readonly injectHtml?: LiveResponseListener | undefined;
  /** Request outcomes worth an audit record (`request.rejected`). */
  readonly record: (event: SessionEvent) => void;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Epoch-millisecond clock of events. */
  readonly now: () => number;
}

export interface ProxyServer {
  /** An http.Server, or with `tls` the HTTP/2 secure server (which serves HTTP/1.1 too). */
  readonly server: Server;
  readonly connections: ConnectionRegistry;
  /** New connections get this certificate; open ones keep theirs. A no-op without `tls`. */
  setSecureContext(material: TlsMaterial): void;
  /** Closes idle keep-alive connections; HTTP/2 sessions are sent a GOAWAY (their streams finish). */
  closeIdleConnections(): void;
  closeAllConnections(): void;
  /**
   * Closes every WebSocket tunnel (close code 1001, at a frame boundary): they never finish by
   * themselves, and the listener cannot close (nor a shutdown end) while one is open.
   */
  closeTunnels(): void;
}

/**
 * The gateway's HTTP server. Each request goes prepare -> route -> check -> handler:
 * - prepare reads it as the app will (path, route, token), or refuses it (prepare.ts);
 * - route: a rule with form conditions is chosen on the request body;
 * - check asks the session service about its token (a cache hit is synchronous; check.ts), and the
 *   verdict (verdict.ts) lets it on or rejects it (answers.ts);
 * - the route's handler, built once at startup per rule (routes/), forwards it and taps its response.
 */
export function createProxyServer(o: ProxyOptions): ProxyServer {
  const { sessions, metrics, logger, policy, warnings } = o;
  const connections = new ConnectionRegistry();
  const answers = new Answers({
    rejections: o.rejections,
    metrics,
    logger,
    mode: o.mode,
    now: o.now,
    record: o.record,
  });

  const rotation: RotationDeps | undefined = o.watchedCookies && {
    sessions,
    tokenIdOf: o.tokenIdOf,
    watched: o.watchedCookies,
    metrics,
    logger,
  };
  const forwarding: ForwardingDeps = {
    upstream: o.upstream,
    trustedProxies: o.trustedProxies,
    rotation,
    // Anonymous cookies matter only where unknown tokens are refused; elsewhere they pass anyway.
    anonymous:
      rotation !== undefined && policy.unknownTokens === 'reject' ? anonymousTap(rotation) : undefined,
    onLiveResponse: withInjection(streamTracker(connections), o.injectHtml),
  };
  const readBody = compileRuleBodyReader({ maxBody: o.login.maxBody, answers, metrics, logger });
  const exchange: ExchangeRouteDeps = {
    ...forwarding,
    readBody,
    answers,
    tap: {
      sessions,
      tokenIdOf: o.tokenIdOf,
      rejections: o.rejections,
      metrics,
      logger,
      failMode: policy.failMode,
      mode: o.mode,
      maxBody: o.login.maxBody,
      loginHeader: o.login.loginHeader,
      locationHeader: o.login.locationHeader,
      probe: o.login.probe,
      fixation: compileFixationGuard(o.fixation ?? 'off', { metrics, logger, record: o.record, now: o.now }),
      groups: o.login.groups,
      seats: o.login.seats,
      ask: o.login.ask,
      recipient: o.login.recipient,
    },
  };
  // The rule kind is switched on here, once: each request then calls its route's handler.
  const routes: Route[] = o.rules.map((rule) => ({
    rule,
    handler:
      rule.kind === 'refresh'
        ? refreshRoute(rule, { ...exchange, sessions, tokenIdOf: o.tokenIdOf, policy })
        : exchangeRoute(rule, exchange),
  }));
  const prepare = compilePrepare({
    routes,
    passthrough: passthroughRoute(forwarding),
    readToken: o.readToken,
    protect: o.protect,
    caseSensitive: o.caseSensitive,
    trustedProxies: o.trustedProxies,
    ambiguousPaths: o.ambiguousPaths,
    tokenIdOf: o.tokenIdOf,
    selfServicePrefix: o.selfService?.prefix,
  });
  const checkToken = compileTokenCheck({ sessions, tokenIdOf: o.tokenIdOf, metrics });
  closeRevokedConnections({ sessions, connections, mode: o.mode, metrics, logger });

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const scope = prepare(req, res);
    if (isRefusal(scope)) return answers.refuse(res, scope.refused, scope.message);
    if (scope.selfService && o.selfService !== undefined) {
      answers.count('self_service');
      return o.selfService.handler(scope);
    }
    if (scope.candidates === undefined) return check(scope);
    routeByForm(scope, scope.candidates).catch((err: unknown) =>
      answers.fail(res, err, 'reading a request body failed'),
    );
  };

  /**
   * Rules with form conditions (front-controller apps: `op=login` in the body) are decided on the body:
   * read it (capped, decoded), take the first candidate whose conditions hold, then check as usual.
   */
  const routeByForm = async (scope: RequestScope, candidates: readonly RuleCandidate[]): Promise<void> => {
    const body = await readBody(scope);
    if (body === undefined) return;
    const ex = exchangeOf(scope, body.decoded);
    for (const c of candidates) {
      const m = c.route.rule.matchForm?.(ex) ?? 'match';
      if (m === 'no_match') continue;
      if (m !== 'match')
        return answers.refuse(scope.res, 'SG_ERR_AMBIGUOUS_REQUEST', `refused: ${m.ambiguous}`);
      scope.rule = c.route.rule;
      scope.handler = c.route.handler;
      scope.params = c.params;
      break;
    }
    check(scope);
  };

  /** Checks the request's token where it matters, then hands the request to its route's handler. */
  const check = (scope: RequestScope): void => {
    if (scope.token === undefined || scope.tokenId === undefined || !scope.protected) {
      answers.count(scope.token === undefined ? 'passed_no_token' : 'passed_unprotected');
      return scope.handler.handle(scope);
    }
    const result = checkToken(scope, scope.tokenId);
    if (!(result instanceof Promise)) return decide(scope, result);
    result.then(
      (c) => decide(scope, c),
      (err: unknown) => answers.fail(scope.res, err, 'session check failed'),
    );
  };

  const decide = (scope: RequestScope, check: TokenCheck): void => {
    scope.decision = check;
    const verdict = verdictOf(check.state, scope.handler.kind, policy);
    if (verdict !== 'pass') return answers.reject(scope, verdict, check, () => scope.handler.handle(scope));
    answers.count(passedOutcome(check.state));
    if (check.state === 'unavailable')
      logger.warn(
        { code: 'SG_ERR_STORE_UNAVAILABLE', failMode: 'open' },
        'store unavailable: request passed',
      );
    // onLimit: warn. On a cache hit one field test: the mark is on the cached session.
    const warning = check.session?.warning;
    if (warning !== undefined && warnings !== undefined && scope.handler.kind === 'passthrough')
      return warnings(scope, warning);
    scope.handler.handle(scope);
  };

  const timeouts = {
    keepAliveTimeout: o.timeouts.keepAlive,
    headersTimeout: o.timeouts.headers,
    requestTimeout: o.timeouts.request,
    // Node checks the two timeouts only every interval (30 s by default): check often enough that a
    // timed-out request is answered within about its configured time.
    connectionsCheckingInterval: Math.max(10, Math.min(1000, Math.floor(o.timeouts.headers / 2))),
  };
  const tls = o.tls === undefined ? undefined : createTlsListener({ material: o.tls, ...timeouts });
  const listener = tls ?? plainListener(timeouts);
  const server: Server = listener.server;

  server.on(
    'request',
    (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse) => {
      if (req instanceof Http2ServerRequest) {
        // Node's HTTP/2 compatibility objects have the members the request path uses (headers,
        // rawHeaders, url, method, socket, the stream events; writeHead, write, end, destroy,
        // headersSent): they go down it as the HTTP/1.1 objects, the few differences handled where they
        // arise (http2.ts: Host, status text; headers.ts: pseudo-headers).
        const h1req = req as unknown as IncomingMessage;
        const h1res = res as unknown as ServerResponse;
        const wrongHost = hostFromAuthority(h1req);
        if (wrongHost !== undefined) answers.refuse(h1res, 'SG_ERR_BAD_REQUEST', `refused: ${wrongHost}`);
        else onRequest(h1req, h1res);
        return;
      }
      if (res instanceof Http2ServerResponse) return; // Unreachable: an HTTP/1.1 request has an HTTP/1.1 response.
      onRequest(req, res);
    },
  );
  const tunnels = new Set<UpgradedConnection>();
  const onUpgrade = websocketRoute({
    tunnels,
    prepare,
    sessions,
    policy,
    mode: o.mode,
    answers,
    rejections: o.rejections,
    connections,
    upgradeTarget: o.upgradeTarget,
    trustedProxies: o.trustedProxies,
    metrics,
    logger,
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => onUpgrade(req, socket, head));
  server.on('clientError', clientErrorHandler(answers, logger));
  if (tls !== undefined) {
    server.on('connect', connectHandler(answers, logger));
    // A failed handshake (a client refusing the certificate, a scanner) is no malformed request.
    server.removeAllListeners('tlsClientError');
    server.on('tlsClientError', (err: Error, socket: TLSSocket) => {
      logger.debug({ err: err.message }, 'TLS handshake failed');
      socket.destroy();
    });
  }

  return {
    server,
    connections,
    setSecureContext(material) {
      tls?.server.setSecureContext({ cert: material.cert, key: material.key });
    },
    closeIdleConnections: () => listener.closeIdleConnections(),
    closeAllConnections: () => listener.closeAllConnections(),
    closeTunnels: () => {
      for (const t of tunnels) t.close(GOING_AWAY);
    },
  };
}

/** The stream tracker, then (with `ui.liveSignOut`) the page rewrite; chosen once at startup. */
function withInjection(
  track: LiveResponseListener,
  inject: LiveResponseListener | undefined,
): LiveResponseListener {
  if (inject === undefined) return track;
  return (res, head, tokenId, req) => {
    // The rewrite edits the head (Content-Length removed), so the tracker sees the head as sent.
    const rewrite = inject(res, head, tokenId, req);
    track(res, head, tokenId, req);
    return rewrite;
  };
}

/** The plain HTTP/1.1 listener. */
function plainListener(options: Parameters<typeof createServer>[0]) {
  const server = createServer(options);
  return {
    server,
    closeIdleConnections: () => server.closeIdleConnections(),
    closeAllConnections: () => server.closeAllConnections(),
  };
}
