import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { Server } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { Duplex } from 'node:stream';
import type { Decision } from '../cache/decision-cache.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics, RequestOutcome } from '../observability/metrics.js';
import type { SessionService } from '../sessions/service.js';
import { Exchange, type CompiledTokenRule } from '../tokens/exchange.js';
import { withoutCookies } from '../tokens/cookies.js';
import { AMBIGUOUS, type PresentedToken, type RequestTokenReader } from '../tokens/request-token.js';
import type { CompiledProtect } from '../tokens/route.js';
import type { TokenIdOf } from '../tokens/token-id.js';
import type { TlsMaterial } from '../tls.js';
import { clientAddress, type TrustedProxies } from './client-address.js';
import { ConnectionRegistry } from './connections.js';
import { decodeBody } from './decode.js';
import { exchangeTap, type UserProbe } from './exchange-tap.js';
import { Upstream, type ResponseHead, type ResponseTap } from './forward.js';
import { upstreamRequestHeaders } from './headers.js';
import { createTlsListener, hostFromAuthority } from './http2.js';
import { normalizePath } from './path.js';
import { STATE_TO_CODE, sendError, type Rejections, type RejectionCode } from './rejection.js';
import { anonymousTap, rotationTap, type RotationDeps, type WatchedCookies } from './rotation-tap.js';
import type { RequestScope, RuleBody, RuleCandidate } from './scope.js';
import { CLOSE_CODES, rejectUpgrade, tunnelUpgrade, type UpgradeTarget } from './upgrade.js';

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
  readonly rules: readonly CompiledTokenRule[];
  readonly protect: CompiledProtect;
  /** Rule and protect paths compare case-sensitively (`routes.caseSensitive`). */
  readonly caseSensitive: boolean;
  readonly trustedProxies: TrustedProxies;
  readonly rejections: Rejections;
  readonly watchedCookies: WatchedCookies | undefined;
  readonly mode: 'enforce' | 'report-only';
  readonly failMode: 'open' | 'closed';
  readonly unknownTokens: 'pass' | 'reject';
  readonly ambiguousPaths: 'reject' | 'pass';
  readonly maxLoginBody: number;
  readonly loginHeader: boolean;
  readonly locationHeader: string | undefined;
  readonly keepAliveTimeout: number;
  /** Milliseconds for the client's request head to arrive (slowloris); 408 past it. */
  readonly headersTimeout: number;
  /** Milliseconds for the whole client request, head and body; 408 past it. */
  readonly requestTimeout: number;
  readonly selfServicePrefix: string | undefined;
  readonly selfService: SelfServiceHandler | undefined;
  readonly probe: UserProbe;
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
}

type Verdict = 'pass' | RejectionCode;

/**
 * The gateway's HTTP server. Per request: normalise the path, read the token, check it (a cache hit
 * is synchronous), then forward, reject, or tap a login/refresh/logout exchange.
 */
export function createProxyServer(options: ProxyOptions): ProxyServer {
  const o = options;
  const connections = new ConnectionRegistry();
  o.upstream.onLiveResponse = trackStream;
  const timeouts = {
    keepAliveTimeout: o.keepAliveTimeout,
    headersTimeout: o.headersTimeout,
    requestTimeout: o.requestTimeout,
    // Node checks the two timeouts only every interval (30 s by default): check often enough that a
    // timed-out request is answered within about its configured time.
    connectionsCheckingInterval: Math.max(10, Math.min(1000, Math.floor(o.headersTimeout / 2))),
  };
  const tls = o.tls === undefined ? undefined : createTlsListener({ material: o.tls, ...timeouts });
  const listener = tls ?? plainListener(timeouts);
  const server: Server = listener.server;
  const tapDeps = {
    sessions: o.sessions,
    tokenIdOf: o.tokenIdOf,
    rejections: o.rejections,
    metrics: o.metrics,
    logger: o.logger,
    failMode: o.failMode,
    mode: o.mode,
    maxBody: o.maxLoginBody,
    loginHeader: o.loginHeader,
    locationHeader: o.locationHeader,
    probe: o.probe,
  };
  const log = o.logger;
  const rotationDeps: RotationDeps | undefined = o.watchedCookies && {
    sessions: o.sessions,
    tokenIdOf: o.tokenIdOf,
    watched: o.watchedCookies,
    metrics: o.metrics,
    logger: o.logger,
  };
  // Anonymous cookies matter only where unknown tokens are refused; elsewhere they pass anyway.
  const anonymous =
    rotationDeps !== undefined && o.unknownTokens === 'reject' ? anonymousTap(rotationDeps) : undefined;

  // Long-lived connections were checked once, when they opened: close those whose session ended,
  // on revocations made here or received from other replicas, and after the channel was restored
  // (messages may have been lost meanwhile). In report-only mode they stay open: logged and counted
  // (passed_report_only) once per token, which `reported` remembers while its connections last.
  const reported = new Set<string>();
  const closeIfDead = (tokenIds: readonly string[]) => {
    for (const r of reported) if (!connections.has(r)) reported.delete(r);
    for (const id of tokenIds) {
      if (!connections.has(id)) continue;
      void Promise.resolve(o.sessions.check(id))
        .then((d) => {
          if (
            d.state === 'live' ||
            d.state === 'unknown' ||
            d.state === 'anonymous' ||
            d.state === 'unavailable'
          )
            return;
          if (o.mode === 'report-only') {
            if (reported.has(id) || !connections.has(id)) return;
            reported.add(id);
            count('passed_report_only');
            log.info(
              { code: codeOf(d), sessionId: d.session?.id, reportOnly: true },
              'would close the long-lived connections of a revoked token (report-only)',
            );
            return;
          }
          for (const c of connections.close([id], () => codeOf(d)))
            o.metrics.connectionsClosed.labels(c.kind).inc();
        })
        .catch((err: unknown) =>
          log.error(
            { code: 'SG_ERR_INTERNAL', err: (err as Error).message },
            'closing a revoked connection failed',
          ),
        );
    }
  };
  o.sessions.onRevoked(closeIfDead);
  o.sessions.onChannelRestored(() => closeIfDead(connections.tokenIds()));

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
        if (wrongHost !== undefined) refuse(h1res, 400, 'SG_ERR_BAD_REQUEST', `refused: ${wrongHost}`);
        else onRequest(h1req, h1res);
        return;
      }
      if (res instanceof Http2ServerResponse) return; // Unreachable: an HTTP/1.1 request has an HTTP/1.1 response.
      onRequest(req, res);
    },
  );

  function onRequest(req: IncomingMessage, res: ServerResponse): void {
    const scope = prepare(req, res);
    if (scope === undefined) return;
    if (scope.candidates !== undefined) {
      selectByForm(scope, scope.candidates).catch((err: unknown) =>
        internalError(res, err, 'reading a request body failed'),
      );
      return;
    }
    check(scope);
  }

  /** Checks the request's token (a cache hit is synchronous), then forwards or rejects. */
  function check(scope: RequestScope): void {
    const { res } = scope;
    if (scope.token === undefined || scope.tokenId === undefined || !scope.protected) {
      count(scope.token === undefined ? 'passed_no_token' : 'passed_unprotected');
      forward(scope);
      return;
    }
    if (scope.token.others !== undefined) {
      checkAll(scope, scope.tokenId, scope.token.others).catch((err: unknown) =>
        internalError(res, err, 'session check failed'),
      );
      return;
    }
    const decision = o.sessions.check(scope.tokenId);
    if (decision instanceof Promise) {
      o.metrics.cacheMisses.inc();
      const end = o.metrics.checkSeconds.startTimer();
      decision
        .then((d) => {
          end();
          decide(scope, d);
        })
        .catch((err: unknown) => internalError(res, err, 'session check failed'));
    } else {
      o.metrics.cacheHits.inc();
      decide(scope, decision);
    }
  }

  /**
   * A request with several tokens (a session cookie and a remember-me cookie): the app may revive a
   * session from any of them, so each is checked. A dead one is never forwarded; and unless another
   * token is live, it decides the request as if it were the only one.
   */
  async function checkAll(
    scope: RequestScope,
    tokenId: string,
    others: readonly PresentedToken[],
  ): Promise<void> {
    const [primary, ...rest] = await Promise.all([
      o.sessions.check(tokenId),
      ...others.map((t) => o.sessions.check(o.tokenIdOf(t.value))),
    ]);
    const d = primary as Decision;
    const dead = others.filter((_t, i) => isDead((rest[i] as Decision).state));
    if (dead.length > 0) scope.deadOthers = dead;
    const firstDead = rest.find((r) => isDead(r.state));
    if (firstDead !== undefined && d.state !== 'live' && !isDead(d.state)) {
      const deadToken = others[rest.indexOf(firstDead)] as PresentedToken;
      decide({ ...scope, token: deadToken }, firstDead);
      return;
    }
    decide(scope, d);
  }

  /** Refuses a request the gateway cannot read as the app would: 400 (or 413/415) with a code. */
  function refuse(res: ServerResponse | undefined, status: number, code: string, message: string): void {
    count('bad_request');
    log.warn({ code, reason: message }, 'request refused');
    if (res) sendError(res, status, code, message);
  }

  /**
   * Rules with form conditions (front-controller apps: `op=login` in the body) are decided on the body:
   * read it (capped, decoded), take the first candidate whose conditions hold, then check as usual.
   */
  async function selectByForm(scope: RequestScope, candidates: readonly RuleCandidate[]): Promise<void> {
    const body = await readRuleBody(scope);
    if (body === undefined) return;
    const ex = exchangeOf(scope, body.decoded);
    for (const c of candidates) {
      const m = c.rule.matchForm?.(ex) ?? 'match';
      if (m === 'no_match') continue;
      if (m !== 'match') {
        refuse(scope.res, 400, 'SG_ERR_AMBIGUOUS_REQUEST', `refused: ${m.ambiguous}`);
        return;
      }
      scope.rule = c.rule;
      scope.params = c.params;
      break;
    }
    scope.body = body;
    check(scope);
  }

  /**
   * The body of a rule route, read up to the cap and decoded as the app's body parser would
   * (`Content-Encoding` gzip, deflate, br), or the request is refused and undefined returned.
   */
  async function readRuleBody(scope: RequestScope): Promise<RuleBody | undefined> {
    if (scope.body !== undefined) return scope.body;
    const { req, res } = scope;
    const buffered = await readCapped(req, o.maxLoginBody);
    if (buffered === 'aborted') {
      log.debug({ code: 'SG_ERR_CLIENT_ABORTED', path: scope.path }, 'client went away during its upload');
      return undefined;
    }
    if (buffered === 'too_large') {
      o.metrics.logins.body_too_large.inc();
      refuse(res, 413, 'SG_ERR_LOGIN_BODY_TOO_LARGE', `the request body is over ${o.maxLoginBody} bytes`);
      // Read and drop the rest, so the answer reaches a client still sending.
      req.resume();
      return undefined;
    }
    const encoding = req.headers['content-encoding']?.trim().toLowerCase();
    if (encoding === undefined || encoding === '' || encoding === 'identity')
      return { raw: buffered, decoded: buffered };
    const decoded = DECODABLE.has(encoding)
      ? await decodeBody(buffered, encoding, o.maxLoginBody)
      : undefined;
    if (decoded === undefined) {
      refuse(
        res,
        415,
        'SG_ERR_UNSUPPORTED_ENCODING',
        `cannot read a request body in Content-Encoding ${encoding}`,
      );
      return undefined;
    }
    return { raw: buffered, decoded };
  }

  function exchangeOf(scope: RequestScope, requestBody: Buffer | undefined): Exchange {
    return new Exchange({
      method: scope.req.method ?? 'GET',
      path: scope.path,
      params: scope.params,
      requestHeaders: scope.req.headers,
      requestBody,
    });
  }

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => onUpgrade(req, socket, head));

  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    // Malformed requests (bad headers, smuggling attempts, oversized headers): a clean 400/431, never a crash.
    // A client resetting its idle keep-alive connection, or closing mid-request (an aborted upload), is not one.
    if (err.code === 'ECONNRESET' || err.code === 'EPIPE' || err.code === 'HPE_INVALID_EOF_STATE') {
      log.debug({ err: err.code }, 'client closed the connection mid-request');
      socket.destroy();
      return;
    }
    const timedOut = err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
    o.metrics.requests.bad_request.inc();
    if (timedOut) log.warn({ code: 'SG_ERR_REQUEST_TIMEOUT' }, 'request not received in time: 408');
    else log.warn({ code: 'SG_ERR_BAD_REQUEST', err: err.code ?? err.message }, 'malformed request');
    // As Node itself does: answer unless a response to this request has started (its bytes would be corrupted).
    const inFlight = (socket as { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
    if (!socket.writable || inFlight?.headersSent === true) {
      socket.destroy();
      return;
    }
    const status = timedOut
      ? '408 Request Timeout'
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? '431 Request Header Fields Too Large'
        : '400 Bad Request';
    const body = timedOut
      ? JSON.stringify({ error: 'SG_ERR_REQUEST_TIMEOUT', message: 'the request did not arrive in time' })
      : JSON.stringify({ error: 'SG_ERR_BAD_REQUEST', message: 'malformed HTTP request' });
    socket.end(
      `HTTP/1.1 ${status}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
    );
  });

  if (tls !== undefined) {
    // A CONNECT over HTTP/2 (RFC 8441's WebSocket over HTTP/2 is one) is not tunnelled: WebSockets are
    // for HTTP/1.1, which every browser falls back to when the server does not offer RFC 8441 (it does
    // not: no SETTINGS_ENABLE_CONNECT_PROTOCOL). Over HTTP/1.1, a CONNECT is dropped as on the plain listener.
    server.on('connect', (_req: unknown, second: unknown) => {
      if (second instanceof Http2ServerResponse) {
        count('bad_request');
        log.warn({ code: 'SG_ERR_UPGRADE_REFUSED', reason: 'CONNECT over HTTP/2' }, 'upgrade refused');
        const body = JSON.stringify({
          error: 'SG_ERR_UPGRADE_REFUSED',
          message: 'CONNECT is not supported: WebSockets are served over HTTP/1.1',
        });
        second.writeHead(405, {
          'content-type': 'application/json',
          'content-length': String(Buffer.byteLength(body)),
          'cache-control': 'no-store',
          allow: 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS',
        });
        second.end(body);
      } else if (second instanceof Duplex) second.destroy();
    });
    // A failed handshake (a client refusing the certificate, a scanner) is no malformed request.
    server.removeAllListeners('tlsClientError');
    server.on('tlsClientError', (err: Error, socket: TLSSocket) => {
      log.debug({ err: err.message }, 'TLS handshake failed');
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
  };

  /** A failure of the gateway itself: logged with its code, a clean 500, never an unhandled rejection. */
  function internalError(res: ServerResponse, err: unknown, what: string): void {
    log.error({ code: 'SG_ERR_INTERNAL', err: (err as Error).message }, what);
    sendError(res, 500, 'SG_ERR_INTERNAL', `the gateway failed: ${what}`);
  }

  function count(outcome: RequestOutcome): void {
    o.metrics.requests[outcome].inc();
  }

  function isSelfService(path: string): boolean {
    return o.selfServicePrefix !== undefined && path.startsWith(o.selfServicePrefix);
  }

  /** Builds the request scope, or answers the request itself (bad path, self-service) and returns undefined. */
  function prepare(req: IncomingMessage, res: ServerResponse | undefined): RequestScope | undefined {
    const url = req.url ?? '/';
    const normalized = normalizePath(url);
    let path: string;
    if (!normalized.ok) {
      if (o.ambiguousPaths === 'reject') {
        count('bad_request');
        log.warn({ code: 'SG_ERR_AMBIGUOUS_PATH', reason: normalized.reason }, 'ambiguous path refused');
        if (res) sendError(res, 400, 'SG_ERR_AMBIGUOUS_PATH', `refused: ${normalized.reason}`);
        return undefined;
      }
      path = url;
    } else path = normalized.path;
    const folded = o.caseSensitive ? path : path.toLowerCase();
    const method = req.method ?? 'GET';
    let rule: CompiledTokenRule | undefined;
    let params: Readonly<Record<string, string>> = NO_PARAMS;
    let candidates: RuleCandidate[] | undefined;
    for (const r of o.rules) {
      const m = r.route.matches(method, path, folded);
      if (m === undefined) continue;
      const q = r.matchQuery(url);
      if (q === 'no_match') continue;
      if (q !== 'match') {
        refuse(res, 400, 'SG_ERR_AMBIGUOUS_REQUEST', `refused: ${q.ambiguous}`);
        return undefined;
      }
      // A rule with form conditions is decided on the body; the first rule without them ends the list.
      if (r.matchForm !== undefined || candidates !== undefined) {
        (candidates ??= []).push({ rule: r, params: m });
        if (r.matchForm !== undefined) continue;
        break;
      }
      rule = r;
      params = m;
      break;
    }
    const token = o.readToken(req.headers, url);
    if (token === AMBIGUOUS) {
      refuse(
        res,
        400,
        'SG_ERR_AMBIGUOUS_TOKEN',
        'refused: a token sent twice with different values (a cookie, header or query field), or undecodable',
      );
      return undefined;
    }
    const isProtected = o.protect.covers(path, folded);
    const scope: RequestScope = {
      req,
      res: res as ServerResponse,
      path,
      clientIp: clientAddress(
        req.socket.remoteAddress,
        req.headers['x-forwarded-for'] as string | undefined,
        o.trustedProxies,
      ),
      rule,
      params,
      candidates,
      protected: isProtected,
      body: undefined,
      token,
      // The HMAC is paid only where the token id is used (protected paths, token routes, self-service).
      tokenId:
        token !== undefined &&
        (rule !== undefined || candidates !== undefined || isProtected || isSelfService(path))
          ? o.tokenIdOf(token.value)
          : undefined,
      decision: undefined,
      deadOthers: undefined,
    };
    if (res && o.selfService && isSelfService(path)) {
      count('self_service');
      o.selfService(scope);
      return undefined;
    }
    return scope;
  }

  function verdictOf(scope: RequestScope, d: Decision): Verdict {
    // A login or logout request may carry a dead token (a superseded browser signing in again): it passes.
    const lenient = scope.rule !== undefined && scope.rule.kind !== 'refresh';
    switch (d.state) {
      case 'live':
        return 'pass';
      case 'unknown':
        return o.unknownTokens === 'pass' || lenient ? 'pass' : 'session_unknown';
      case 'anonymous':
        return 'pass';
      case 'unavailable':
        return o.failMode === 'open' ? 'pass' : 'session_store_unavailable';
      default:
        return lenient ? 'pass' : STATE_TO_CODE[d.state];
    }
  }

  function decide(scope: RequestScope, d: Decision): void {
    scope.decision = d;
    const verdict = verdictOf(scope, d);
    if (verdict === 'pass') {
      count(
        d.state === 'live'
          ? 'passed_live'
          : d.state === 'unavailable'
            ? 'passed_store_unavailable'
            : d.state === 'anonymous'
              ? 'passed_anonymous'
              : 'passed_unknown',
      );
      if (d.state === 'unavailable')
        log.warn({ code: 'SG_ERR_STORE_UNAVAILABLE', failMode: 'open' }, 'store unavailable: request passed');
      forward(scope);
      return;
    }
    reject(scope, verdict, d, () => forward(scope));
  }

  /** Rejects (or, in report-only mode, logs and calls `pass`). */
  function reject(scope: RequestScope, verdict: RejectionCode, d: Decision, pass: () => void): void {
    const session = d.session;
    o.sessions.events.emit({
      type: 'request.rejected',
      at: o.now(),
      user: session?.user ?? '',
      ...(session ? { sessionId: session.id } : {}),
      ip: scope.clientIp,
      userAgent: scope.req.headers['user-agent'] ?? '',
      reason: verdict,
      ...(o.mode === 'report-only' ? { reportOnly: true as const } : {}),
    });
    if (o.mode === 'report-only') {
      count('passed_report_only');
      log.info(
        { code: verdict, path: scope.path, sessionId: session?.id, reportOnly: true },
        'would reject (report-only)',
      );
      pass();
      return;
    }
    count(outcomeOf(verdict));
    o.rejections.send(scope.res, scope.req.headers, verdict, scope.token, session);
  }

  function forward(scope: RequestScope): void {
    const { req, res, rule } = scope;
    const headers = upstreamRequestHeaders(
      req,
      scope.clientIp,
      o.trustedProxies,
      false,
      deadTokensRemoved(scope),
    );
    if (rule !== undefined) {
      forwardExchange(scope, rule, headers);
      return;
    }
    const live = scope.decision?.state === 'live' && scope.tokenId !== undefined;
    o.upstream.forward(
      req,
      res,
      headers,
      scope.body?.raw ?? req,
      cookieTap(scope),
      live ? scope.tokenId : undefined,
    );
  }

  /**
   * The tap of a response that is not a registered login: a live cookie session's rotation, or (under
   * `unknownTokens: reject`) the cookies an anonymous request is issued; undefined when neither applies.
   */
  function cookieTap(scope: RequestScope): ResponseTap | undefined {
    if (rotationDeps === undefined) return undefined;
    const token = scope.token;
    if (scope.decision?.state === 'live' && token !== undefined && token.carrier === 'cookie')
      return rotationTap(scope.tokenId as string, token.cookieNames ?? [], rotationDeps);
    if (scope.decision?.state === 'live') return undefined;
    return anonymous;
  }

  /**
   * A dead token is never sent to the app, which might still honour it: on a login route the request's
   * own dead token passes (a superseded browser signs in again) with its cookie (or Authorization)
   * left out, and on every route so are the other tokens found dead (a dead remember-me cookie beside
   * a live session cookie).
   */
  function deadTokensRemoved(scope: RequestScope): TokenHeaders {
    const dead: PresentedToken[] = [];
    if (scope.rule?.kind === 'login' && scope.token !== undefined && isDead(scope.decision?.state))
      dead.push(scope.token);
    if (scope.deadOthers !== undefined) dead.push(...scope.deadOthers);
    if (dead.length === 0) return UNCHANGED;
    const names = dead.flatMap((t) => (t.carrier === 'cookie' ? (t.cookieNames ?? []) : []));
    const cookie = scope.req.headers.cookie;
    return {
      cookie: names.length > 0 && cookie !== undefined ? withoutCookies(cookie, names) : cookie,
      authorization: dead.some((t) => t.carrier === 'bearer') ? undefined : scope.req.headers.authorization,
    };
  }

  /**
   * A streamed response of a live session (SSE; NDJSON, a long poll or any body without a
   * Content-Length) is closed when the session is revoked. An event stream is ended (EventSource sees
   * the stream close); any other is cut, so a client cannot take a partial body for a whole one.
   */
  function trackStream(res: ServerResponse, head: ResponseHead, tokenId: string): void {
    const stream = isStream(head);
    if (stream === undefined) return;
    const remove = connections.add(tokenId, {
      kind: 'stream',
      close: stream === 'events' ? () => res.end() : () => res.destroy(),
    });
    res.once('close', remove);
  }

  function forwardExchange(scope: RequestScope, rule: CompiledTokenRule, headers: string[]): void {
    const { req, res } = scope;
    const rotation = cookieTap(scope);
    const deps =
      rotation === undefined && (anonymous === undefined || rule.kind !== 'logout')
        ? tapDeps
        : { ...tapDeps, rotation, anonymous };
    if (!rule.needsRequestBody) {
      o.upstream.forward(
        req,
        res,
        headers,
        scope.body?.raw ?? req,
        exchangeTap(scope, exchangeOf(scope, undefined), deps),
      );
      return;
    }
    readRuleBody(scope)
      .then((body) => {
        if (body === undefined) return undefined;
        const ex = exchangeOf(scope, body.decoded);
        // Read the request as the app will, or refuse it: a login charged to the wrong user lets anyone
        // sign anyone out.
        const ambiguity = rule.checkRequest(ex);
        if (ambiguity !== undefined) {
          refuse(
            res,
            400,
            rule.kind === 'login' ? 'SG_ERR_AMBIGUOUS_LOGIN' : 'SG_ERR_AMBIGUOUS_REQUEST',
            `refused: ${ambiguity}`,
          );
          return undefined;
        }
        const send = () => o.upstream.forward(req, res, headers, body.raw, exchangeTap(scope, ex, deps));
        // The presented token of a refresh may be in the body: a dead one is refused before the app sees it.
        const presented = rule.kind === 'refresh' ? rule.readPresented?.(ex) : undefined;
        if (presented === undefined) {
          send();
          return undefined;
        }
        return Promise.resolve(o.sessions.check(o.tokenIdOf(presented))).then((d) => {
          const verdict = d.state === 'unknown' || d.state === 'anonymous' ? 'pass' : verdictOf(scope, d);
          if (verdict === 'pass') send();
          else reject({ ...scope, token: undefined }, verdict, d, send);
        });
      })
      .catch((err: unknown) => internalError(res, err, 'login exchange failed'));
  }

  function onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    const refusal = upgradeRefusal(req);
    if (refusal !== undefined) {
      refuseUpgrade(socket, refusal);
      return;
    }
    const scope = prepare(req, undefined);
    if (scope === undefined) {
      rejectUpgrade(
        socket,
        400,
        'Bad Request',
        JSON.stringify({ error: 'SG_ERR_AMBIGUOUS_PATH', message: 'ambiguous path refused' }),
      );
      return;
    }
    // A login, refresh or logout is an exchange the taps must see; tunnelled, its token would reach the
    // client unregistered (`POST /login` with `Upgrade: websocket`).
    if (scope.rule !== undefined) {
      refuseUpgrade(socket, `a ${scope.rule.kind} route is never upgraded`);
      return;
    }
    const open = (d: Decision | undefined) => {
      const verdict = d === undefined ? 'pass' : verdictOf(scope, d);
      if (verdict !== 'pass' && o.mode === 'enforce') {
        count(outcomeOf(verdict));
        const status = verdict === 'session_store_unavailable' ? 503 : 401;
        rejectUpgrade(
          socket,
          status,
          status === 503 ? 'Service Unavailable' : 'Unauthorized',
          JSON.stringify({ error: verdict, message: o.rejections.message(verdict) }),
        );
        return;
      }
      // report-only: counted and logged as the would-be rejection it is (reject() then only passes).
      if (d !== undefined && verdict !== 'pass') return reject(scope, verdict, d, () => tunnel(d));
      count(d === undefined ? 'passed_no_token' : 'passed_live');
      tunnel(d);
    };
    const tunnel = (d: Decision | undefined) => {
      const headers = upstreamRequestHeaders(req, scope.clientIp, o.trustedProxies, true);
      const conn = tunnelUpgrade(req, socket, head, headers, o.upgradeTarget, (err) => {
        o.metrics.upstreamErrors.labels('upgrade').inc();
        log.warn({ code: 'SG_ERR_UPSTREAM_UPGRADE', err: err.message }, 'upgrade tunnel failed');
      });
      if (d?.state === 'live' && scope.tokenId !== undefined) {
        const remove = connections.add(scope.tokenId, {
          kind: 'websocket',
          close: (code) => conn.close(code),
        });
        void conn.closed.then(remove);
      }
    };
    if (scope.tokenId === undefined || !scope.protected) {
      open(undefined);
      return;
    }
    const d = o.sessions.check(scope.tokenId);
    if (d instanceof Promise)
      d.then(open).catch((err: unknown) => {
        log.error({ code: 'SG_ERR_INTERNAL', err: (err as Error).message }, 'upgrade check failed');
        socket.destroy();
      });
    else open(d);
  }

  /** Answers a refused upgrade with 400, counted and logged like any bad request. */
  function refuseUpgrade(socket: Duplex, message: string): void {
    count('bad_request');
    log.warn({ code: 'SG_ERR_UPGRADE_REFUSED', reason: message }, 'upgrade refused');
    rejectUpgrade(socket, 400, 'Bad Request', JSON.stringify({ error: 'SG_ERR_UPGRADE_REFUSED', message }));
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

const NO_PARAMS: Readonly<Record<string, string>> = Object.freeze({});
const DECODABLE = new Set(['gzip', 'x-gzip', 'deflate', 'br']);

/** The token-bearing headers sent upstream. */
interface TokenHeaders {
  readonly cookie?: string | undefined;
  readonly authorization?: string | undefined;
}
const UNCHANGED: TokenHeaders = Object.freeze({});

/** A session that ended: its tokens are refused (or, on login routes, passed but never forwarded). */
function isDead(state: Decision['state'] | undefined): boolean {
  return (
    state !== undefined &&
    state !== 'live' &&
    state !== 'unknown' &&
    state !== 'anonymous' &&
    state !== 'unavailable'
  );
}

function outcomeOf(code: RejectionCode): RequestOutcome {
  switch (code) {
    case 'session_superseded':
      return 'rejected_superseded';
    case 'session_expired':
      return 'rejected_expired';
    case 'session_logged_out':
      return 'rejected_logged_out';
    case 'session_ended':
      return 'rejected_ended';
    case 'session_unknown':
      return 'rejected_unknown';
    default:
      return 'rejected_store_unavailable';
  }
}

function codeOf(d: Decision): string {
  return d.state in STATE_TO_CODE
    ? STATE_TO_CODE[d.state as keyof typeof STATE_TO_CODE]
    : 'session_superseded';
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

/**
 * Reads a request body up to `max` bytes. Past the cap, or when the client goes away mid-upload (a
 * client's doing, not the gateway's failure), there is nothing to read.
 */
function readCapped(req: IncomingMessage, max: number): Promise<Buffer | 'too_large' | 'aborted'> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer) => {
      chunks.push(c);
      size += c.length;
      if (size > max) {
        req.off('data', onData);
        req.pause();
        resolve('too_large');
      }
    };
    req.on('data', onData);
    req.on('end', () => resolve(Buffer.concat(chunks, size)));
    req.on('error', () => resolve('aborted'));
    req.on('close', () => {
      if (!req.complete) resolve('aborted');
    });
  });
}

export { CLOSE_CODES };
