/**
 * Each route handler (proxy/routes/) on its own, built from a compiled rule as server.ts builds it, in
 * front of a fake upstream: a real local HTTP server standing in for the app. A small front server
 * reads the request's token and asks the session service, as the check step does, then hands the
 * scope to the handler under test; requests reach it over real sockets.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { DecisionCache } from '../../src/cache/decision-cache.js';
import { parseConfig } from '../../src/config/load.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { Metrics } from '../../src/observability/metrics.js';
import { Answers } from '../../src/proxy/answers.js';
import { compileTrustedProxies } from '../../src/proxy/client-address.js';
import { Upstream } from '../../src/proxy/forward.js';
import { createUserProbe } from '../../src/proxy/probe.js';
import { plainRejectionPage, Rejections } from '../../src/proxy/rejection.js';
import { exchangeRoute, type ExchangeRouteDeps } from '../../src/proxy/routes/exchange.js';
import type { ForwardingDeps } from '../../src/proxy/routes/forwarding.js';
import { passthroughRoute } from '../../src/proxy/routes/passthrough.js';
import { refreshRoute } from '../../src/proxy/routes/refresh.js';
import { compileRuleBodyReader } from '../../src/proxy/routes/rule-body.js';
import type { RequestScope, RouteHandler } from '../../src/proxy/scope.js';
import { SessionService } from '../../src/sessions/service.js';
import { MemorySessionStore } from '../../src/store/memory.js';
import {
  compileLoginRule,
  compileRefreshRule,
  type CompiledLoginRule,
  type CompiledRefreshRule,
} from '../../src/tokens/exchange.js';
import { compileRequestTokenReader } from '../../src/tokens/request-token.js';
import { createTokenIdOf } from '../../src/tokens/token-id.js';
import { captureLogs, TEST_SECRET } from '../support/gateway.js';
import { JSON_LOGIN_RULE } from '../support/login-rules.js';
import { listenApp, readBody } from '../support/upstreams.js';
import type { RunningApp } from '../support/running-app.js';

interface SeenRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
}

/** The app: JSON logins (password `pw`), refreshes that issue a new token, and an echo of anything else. */
async function fakeApp(): Promise<RunningApp & { seen: SeenRequest[] }> {
  const seen: SeenRequest[] = [];
  let issued = 0;
  const json = (res: ServerResponse, status: number, body: unknown): void => {
    res.writeHead(status, { 'content-type': 'application/json', 'x-app': 'fake' });
    res.end(JSON.stringify(body));
  };
  const app = await listenApp((req, res) => {
    void readBody(req).then((raw) => {
      const body = raw.toString('utf8');
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      if (req.url === '/api/login') {
        const { username, password } = JSON.parse(body) as { username: string; password: string };
        if (password !== 'pw') return json(res, 401, { error: 'bad credentials' });
        if (username === 'tokenless') return json(res, 200, { user: { id: username } });
        return json(res, 200, { accessToken: `access-${++issued}`, user: { id: username } });
      }
      if (req.url === '/api/refresh') return json(res, 200, { accessToken: `refreshed-${++issued}` });
      json(res, 200, { echo: true, method: req.method, url: req.url, body });
    });
  });
  return { ...app, seen };
}

interface Bench {
  readonly url: string;
  readonly app: Awaited<ReturnType<typeof fakeApp>>;
  readonly sessions: SessionService;
  readonly tokenIdOf: (token: string) => string;
  /** POST a JSON body (optionally with a bearer token); status and parsed body. */
  post(path: string, body: unknown, token?: string): Promise<{ status: number; body: unknown }>;
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

type HandlerOf = (
  rules: { login: CompiledLoginRule; refresh: CompiledRefreshRule | undefined },
  deps: ExchangeRouteDeps,
) => RouteHandler;

/** The handler `handlerOf` builds, behind a front server, in front of the fake app. */
async function bench(config: Partial<ConfigInput>, handlerOf: HandlerOf): Promise<Bench> {
  const app = await fakeApp();
  cleanups.push(() => app.close());
  const { config: c } = parseConfig({
    upstream: app.url,
    secret: TEST_SECRET,
    login: [JSON_LOGIN_RULE],
    ...config,
  });
  const store = new MemorySessionStore({ retention: c.sessions.maxAge });
  const sessions = new SessionService({
    store,
    cache: new DecisionCache({ max: 1000, maxStaleness: c.cache.maxStaleness }),
    config: { ...c.sessions, consistency: c.consistency },
  });
  cleanups.push(() => sessions.close());
  const { logger } = captureLogs();
  const metrics = new Metrics({ registry: new Registry(), defaultMetrics: false });
  const upstream = new Upstream({
    origin: app.url,
    connectTimeout: c.timeouts.connect,
    responseTimeout: c.timeouts.response,
    maxBufferedBody: c.maxLoginBody,
  });
  cleanups.push(() => upstream.pool.close());
  const rejections = new Rejections({
    supersededMessage: c.reject.message,
    redirect: undefined,
    clearCookies: [],
    allowedOrigins: [],
    renderPage: plainRejectionPage,
  });
  const answers = new Answers({
    rejections,
    metrics,
    logger,
    mode: 'enforce',
    now: Date.now,
    record: () => {},
  });
  const tokenIdOf = createTokenIdOf(TEST_SECRET);
  const forwarding: ForwardingDeps = {
    upstream,
    trustedProxies: compileTrustedProxies([]),
    rotation: undefined,
    anonymous: undefined,
    onLiveResponse: () => undefined,
  };
  const deps: ExchangeRouteDeps = {
    ...forwarding,
    readBody: compileRuleBodyReader({ maxBody: c.maxLoginBody, answers, metrics, logger }),
    answers,
    tap: {
      sessions,
      tokenIdOf,
      rejections,
      metrics,
      logger,
      failMode: c.failMode,
      mode: 'enforce',
      maxBody: c.maxLoginBody,
      loginHeader: false,
      locationHeader: undefined,
      probe: createUserProbe(upstream.pool, app.url, { kind: 'bearer' }, logger, c.maxLoginBody),
    },
  };
  const login = compileLoginRule(c.login[0] as (typeof c.login)[number], 0);
  const refreshConfig = c.refresh[0];
  const refresh = refreshConfig === undefined ? undefined : compileRefreshRule(refreshConfig, 0);
  const handler = handlerOf({ login, refresh }, deps);
  const rule = handler.kind === 'login' ? login : handler.kind === 'refresh' ? refresh : undefined;
  const readToken = compileRequestTokenReader(c.tokens);

  const front: Server = createServer((req, res) => {
    void (async () => {
      const read = readToken(req.headers, req.url ?? '/');
      const token = typeof read === 'object' ? read : undefined;
      const tokenId = token === undefined ? undefined : tokenIdOf(token.value);
      const scope: RequestScope = {
        req,
        res,
        path: new URL(req.url ?? '/', 'http://front').pathname,
        clientIp: req.socket.remoteAddress ?? '',
        rule,
        handler,
        params: {},
        candidates: undefined,
        protected: true,
        selfService: false,
        body: undefined,
        token,
        tokenId,
        decision: tokenId === undefined ? undefined : await sessions.check(tokenId),
        deadOthers: undefined,
      };
      handler.handle(scope);
    })();
  });
  front.listen(0, '127.0.0.1');
  await once(front, 'listening');
  cleanups.push(async () => {
    front.closeAllConnections();
    front.close();
    await once(front, 'close');
  });
  const url = `http://127.0.0.1:${(front.address() as AddressInfo).port}`;
  return {
    url,
    app,
    sessions,
    tokenIdOf,
    async post(path, body, token) {
      const res = await fetch(url + path, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(token && { authorization: `Bearer ${token}` }) },
        body: typeof body === 'string' ? body : JSON.stringify(body),
      });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        // a non-JSON body stays text
      }
      return { status: res.status, body: parsed };
    },
  };
}

const passthrough: HandlerOf = (_, deps) => passthroughRoute(deps);
const loginHandler: HandlerOf = ({ login }, deps) => exchangeRoute(login, deps);
const refreshHandler: HandlerOf = ({ refresh }, deps) => {
  if (refresh === undefined) throw new Error('the bench config has no refresh rule');
  return refreshRoute(refresh, {
    ...deps,
    sessions: deps.tap.sessions,
    tokenIdOf: deps.tap.tokenIdOf,
    policy: { failMode: 'closed', unknownTokens: 'pass' },
  });
};

/** A session registered through the service directly (the login route is not under test there). */
async function loggedIn(b: Bench, user: string, token: string): Promise<void> {
  const outcome = await b.sessions.login({
    user,
    tokenIds: [b.tokenIdOf(token)],
    ip: '127.0.0.1',
    userAgent: 'test',
  });
  expect(outcome.kind).toBe('created');
}

describe('the passthrough route', () => {
  it('forwards the method, path and body as sent and relays the app answer', async () => {
    const b = await bench({}, passthrough);
    const res = await b.post('/orders?id=7', { item: 'book' });
    expect(res).toEqual({
      status: 200,
      body: { echo: true, method: 'POST', url: '/orders?id=7', body: '{"item":"book"}' },
    });
  });

  it('passes a live token on to the app with the forwarding headers the gateway sets', async () => {
    const b = await bench({}, passthrough);
    await loggedIn(b, 'ana', 'live-token');
    await b.post('/x', {}, 'live-token');
    expect(b.app.seen[0]?.headers).toMatchObject({
      authorization: 'Bearer live-token',
      'x-forwarded-for': '127.0.0.1',
      'x-forwarded-proto': 'http',
    });
  });

  it('answers 502 with an upstream error code when the app is gone', async () => {
    const b = await bench({}, passthrough);
    await b.app.close();
    const res = await b.post('/x', {});
    expect(res.status).toBe(502);
    expect(res.body).toMatchObject({ error: expect.stringMatching(/^SG_ERR_UPSTREAM/) });
  });
});

describe('the login route', () => {
  it('registers the session of the token the app issued, for the user the response names', async () => {
    const b = await bench({}, loginHandler);
    const res = await b.post('/api/login', { username: 'ana', password: 'pw' });
    expect(res.status).toBe(200);
    const check = await b.sessions.check(b.tokenIdOf('access-1'));
    expect(check.state).toBe('live');
    expect(check.session?.user).toBe('ana');
  });

  it('releases the app response to the client as the app sent it', async () => {
    const b = await bench({}, loginHandler);
    const res = await fetch(`${b.url}/api/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'ana', password: 'pw' }),
    });
    expect(res.headers.get('x-app')).toBe('fake');
    expect(await res.json()).toEqual({ accessToken: 'access-1', user: { id: 'ana' } });
  });

  it('forwards the request body to the app as the client sent it', async () => {
    const b = await bench({}, loginHandler);
    await b.post('/api/login', '{"username":"ana",  "password":"pw"}');
    expect(b.app.seen[0]?.body).toBe('{"username":"ana",  "password":"pw"}');
  });

  it('registers nothing for a failed login and relays its answer', async () => {
    const b = await bench({}, loginHandler);
    const res = await b.post('/api/login', { username: 'ana', password: 'wrong' });
    expect(res).toEqual({ status: 401, body: { error: 'bad credentials' } });
    expect(await b.sessions.listSessions('ana')).toEqual([]);
  });

  it('passes a successful response without a token through unregistered', async () => {
    const b = await bench({}, loginHandler);
    const res = await b.post('/api/login', { username: 'tokenless', password: 'pw' });
    expect(res).toEqual({ status: 200, body: { user: { id: 'tokenless' } } });
    expect(await b.sessions.listSessions('tokenless')).toEqual([]);
  });

  it('refuses a login body over maxLoginBody with 413, before the app sees it (a rule that reads it)', async () => {
    const readsBody = { ...JSON_LOGIN_RULE, user: 'request.json:username' };
    const b = await bench({ maxLoginBody: '1kb', login: [readsBody] }, loginHandler);
    const res = await b.post('/api/login', { username: 'ana', password: 'pw', pad: 'x'.repeat(4096) });
    expect(res.status).toBe(413);
    expect(res.body).toMatchObject({ error: 'SG_ERR_LOGIN_BODY_TOO_LARGE' });
    expect(b.app.seen).toEqual([]);
  });

  it('refuses a login past the limit under reject-new and keeps its token unregistered', async () => {
    const b = await bench({ sessions: { limit: 1, onLimit: 'reject-new' } }, loginHandler);
    expect((await b.post('/api/login', { username: 'ana', password: 'pw' })).status).toBe(200);
    const second = await b.post('/api/login', { username: 'ana', password: 'pw' });
    expect(second.status).toBe(409);
    expect(second.body).toMatchObject({ error: 'session_limit_reached' });
    expect((await b.sessions.check(b.tokenIdOf('access-2'))).state).toBe('unknown');
    expect((await b.sessions.check(b.tokenIdOf('access-1'))).state).toBe('live');
  });

  it('supersedes the older session past the limit under replace-oldest', async () => {
    const b = await bench({ sessions: { limit: 1, onLimit: 'replace-oldest' } }, loginHandler);
    await b.post('/api/login', { username: 'ana', password: 'pw' });
    expect((await b.post('/api/login', { username: 'ana', password: 'pw' })).status).toBe(200);
    expect((await b.sessions.check(b.tokenIdOf('access-1'))).state).toBe('superseded');
    expect((await b.sessions.check(b.tokenIdOf('access-2'))).state).toBe('live');
  });
});

const REFRESH_IN_BODY = {
  refresh: [
    { match: 'POST /api/refresh', token: 'json:accessToken', presented: 'request.json:refreshToken' },
  ],
};
const REFRESH_BY_BEARER = { refresh: [{ match: 'POST /api/refresh', token: 'json:accessToken' }] };

describe('the refresh route', () => {
  it('adds the token the app issues to the session of the token presented in the body', async () => {
    const b = await bench(REFRESH_IN_BODY, refreshHandler);
    await loggedIn(b, 'ana', 'old-token');
    const res = await b.post('/api/refresh', { refreshToken: 'old-token' });
    expect(res).toEqual({ status: 200, body: { accessToken: 'refreshed-1' } });
    const check = await b.sessions.check(b.tokenIdOf('refreshed-1'));
    expect(check.state).toBe('live');
    expect(check.session?.user).toBe('ana');
  });

  it('adds the new token to the session of the request bearer token when no body token is configured', async () => {
    const b = await bench(REFRESH_BY_BEARER, refreshHandler);
    await loggedIn(b, 'ana', 'bearer-token');
    await b.post('/api/refresh', {}, 'bearer-token');
    expect((await b.sessions.check(b.tokenIdOf('refreshed-1'))).session?.user).toBe('ana');
  });

  it('rejects a body token of a dead session before the app sees it', async () => {
    const b = await bench({ ...REFRESH_IN_BODY, sessions: { limit: 1 } }, refreshHandler);
    await loggedIn(b, 'ana', 'first');
    await loggedIn(b, 'ana', 'second');
    const res = await b.post('/api/refresh', { refreshToken: 'first' });
    expect(res.status).toBe(401);
    expect(res.body).toMatchObject({ error: 'session_superseded' });
    expect(b.app.seen).toEqual([]);
  });

  it('lets the app judge a body token no login was seen for, and links the new token to nothing', async () => {
    const b = await bench(REFRESH_IN_BODY, refreshHandler);
    const res = await b.post('/api/refresh', { refreshToken: 'from-before-the-gateway' });
    expect(res.status).toBe(200);
    expect(b.app.seen).toHaveLength(1);
    expect((await b.sessions.check(b.tokenIdOf('refreshed-1'))).state).toBe('unknown');
  });
});
