/**
 * Shared test support: a tiny real upstream app and a real gateway in front of it, both on port 0, with
 * their cleanup registered at once.
 *
 *   const upstream = await startTestUpstream();
 *   const gw = await startGateway({ upstream: upstream.url, sessions: { limit: 2 } });
 *   const { token } = await gw.loginJson('alice');
 *   const res = await fetch(`${gw.url}/api/me`, { headers: bearer(token) });
 *
 * Cleanup: called inside a test, the servers close when that test finishes (onTestFinished); called in
 * a beforeAll/beforeEach hook, they close after the file's tests (an afterAll registered by this module).
 * `close()` may be called earlier; it is idempotent.
 *
 * Log lines of the gateway are captured in memory (pino JSON, `log.level` of the config, default
 * `info`) and parsed: `gw.logs.lines()`; nothing is written to stdout.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import {
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, onTestFinished } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { createGateway, type Gateway, type GatewayDeps } from '../../src/gateway.js';
import { createLogger } from '../../src/observability/logger.js';

export const TEST_SECRET = 'sessiongate-test-secret-0123456789';
export const TEST_ADMIN_TOKEN = 'sessiongate-test-admin-token-0123456789';

/** User-Agents for tests that look at devices. */
export const UA = {
  chromeWindows:
    'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36',
  safariIphone:
    'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1',
  firefoxLinux: 'Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0',
} as const;

// ---------------------------------------------------------------------------------------------------
// Cleanup

const open = new Set<() => Promise<void>>();

/** Registers a closer: per test when inside one, else at the end of the file. */
function registerCleanup(close: () => Promise<void>): void {
  open.add(close);
  try {
    onTestFinished(async () => {
      open.delete(close);
      await close();
    });
  } catch {
    // Not inside a test (a beforeAll hook, a describe body): the file-level afterAll below closes it.
  }
}

try {
  // Evaluated while the importing test file is collected, so this hook belongs to that file.
  afterAll(async () => {
    const closers = [...open];
    open.clear();
    await Promise.allSettled(closers.map((c) => c()));
  });
} catch {
  // Imported outside a vitest run (a script): callers close what they start.
}

function once_<T>(fn: () => Promise<T>): () => Promise<T> {
  let p: Promise<T> | undefined;
  return () => (p ??= fn());
}

async function listen(server: Server): Promise<string> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function closeServer(server: Server): Promise<void> {
  return new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

// ---------------------------------------------------------------------------------------------------
// The test upstream

/** One request the upstream saw. */
export interface SeenRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingMessage['headers'];
}

export interface TestUpstream {
  readonly url: string;
  readonly server: Server;
  /** Every request the app received, in order. */
  readonly requests: SeenRequest[];
  /** Live app sessions: token -> user (the app's own view; the gateway's is separate). */
  readonly sessions: Map<string, string>;
  close(): Promise<void>;
}

export function readBody(req: IncomingMessage, limit = 1 << 20): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= limit) chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

export function cookieOf(cookieHeader: string | undefined, name: string): string | undefined {
  for (const part of (cookieHeader ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq !== -1 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

const escape = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/**
 * A tiny app with the two common login styles:
 *
 * - JSON API: `POST /api/login` `{"username","password"?}` -> 200 `{"accessToken","user":{"id"}}`
 *   (password `"wrong"` -> 401); `POST /api/logout`; the token travels as `Authorization: Bearer`.
 * - Browser form: `GET /login` (a form), `POST /login` (form `username`) -> 302 to `/app` with
 *   `Set-Cookie: sid=<token>; Path=/; HttpOnly; SameSite=Lax`; `POST /logout` clears it.
 *
 * Everything else: `GET /app` is an HTML page for the signed-in user (302 to /login without one); any
 * other path answers JSON `{ok, method, path, user}`. The app trusts its own tokens only: the gateway
 * is what enforces the limit.
 */
export async function startTestUpstream(
  options: { handler?: (req: IncomingMessage, res: ServerResponse) => boolean | Promise<boolean> } = {},
): Promise<TestUpstream> {
  const requests: SeenRequest[] = [];
  const sessions = new Map<string, string>();
  const newToken = () => randomBytes(24).toString('base64url');
  const server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://app');
      requests.push({ method: req.method ?? 'GET', path: url.pathname, headers: req.headers });
      if (options.handler && (await options.handler(req, res))) return;
      const json = (status: number, value: unknown) => {
        const body = JSON.stringify(value);
        res.writeHead(status, {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
        });
        res.end(body);
      };
      const html = (status: number, body: string) => {
        res.writeHead(status, { 'content-type': 'text/html; charset=utf-8' });
        res.end(
          `<!doctype html><html><head><meta charset="utf-8"><title>Test app</title></head><body>${body}</body></html>`,
        );
      };
      const auth = req.headers.authorization;
      const bearerToken = auth?.startsWith('Bearer ') ? auth.slice(7) : undefined;
      const token = bearerToken ?? cookieOf(req.headers.cookie, 'sid');
      const user = token === undefined ? undefined : sessions.get(token);

      if (req.method === 'POST' && url.pathname === '/api/login') {
        let body: { username?: unknown; password?: unknown };
        try {
          body = JSON.parse((await readBody(req)).toString()) as typeof body;
        } catch {
          return json(400, { error: 'bad json' });
        }
        if (typeof body.username !== 'string' || body.password === 'wrong')
          return json(401, { error: 'bad credentials' });
        const t = newToken();
        sessions.set(t, body.username);
        return json(200, { accessToken: t, user: { id: body.username } });
      }
      if (req.method === 'POST' && url.pathname === '/api/logout') {
        if (token) sessions.delete(token);
        return json(200, { ok: true });
      }
      if (req.method === 'GET' && url.pathname === '/login') {
        return html(
          200,
          '<h1>Sign in</h1><form method="post" action="/login"><label>User <input name="username"></label><button type="submit">Sign in</button></form>',
        );
      }
      if (req.method === 'POST' && url.pathname === '/login') {
        const username = new URLSearchParams((await readBody(req)).toString()).get('username');
        if (!username) {
          res.writeHead(302, { location: '/login?error=1' });
          res.end();
          return;
        }
        const t = newToken();
        sessions.set(t, username);
        res.writeHead(302, { location: '/app', 'set-cookie': `sid=${t}; Path=/; HttpOnly; SameSite=Lax` });
        res.end();
        return;
      }
      if (req.method === 'POST' && url.pathname === '/logout') {
        if (token) sessions.delete(token);
        res.writeHead(302, { location: '/login', 'set-cookie': 'sid=; Path=/; Max-Age=0' });
        res.end();
        return;
      }
      if (url.pathname === '/app') {
        if (!user) {
          res.writeHead(302, { location: '/login' });
          res.end();
          return;
        }
        return html(
          200,
          `<h1 id="hello">Hello ${escape(user)}</h1><p><a href="/.sessiongate/sessions">Your sessions</a></p>`,
        );
      }
      return json(200, { ok: true, method: req.method, path: url.pathname, user: user ?? null });
    })().catch(() => {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  const url = await listen(server);
  const close = once_(() => closeServer(server));
  registerCleanup(close);
  return { url, server, requests, sessions, close };
}

// ---------------------------------------------------------------------------------------------------
// The gateway

/** Login rules matching the test upstream: the JSON API and the cookie form. */
export const TEST_LOGIN_RULES: NonNullable<ConfigInput['login']> = [
  { match: 'POST /api/login', token: 'json:accessToken', user: 'json:user.id' },
  {
    match: 'POST /login',
    token: 'cookie:sid',
    user: 'request.form:username',
    success: { status: 302, location: '/app' },
  },
];

/** Config of a test gateway; `upstream` is optional (a test upstream is started when missing). */
export type TestGatewayConfig = Partial<ConfigInput>;

export interface CapturedLogs {
  /** The raw pino output. */
  text(): string;
  /** Every line, parsed. */
  lines(): Record<string, unknown>[];
  /** Lines of the audit log (`kind: "audit"`), optionally of one event type. */
  audit(event?: string): Record<string, unknown>[];
}

export interface TestGateway {
  readonly gateway: Gateway;
  /** The proxy's origin, `http://127.0.0.1:<port>`. */
  readonly url: string;
  /** The admin listener's origin. */
  readonly adminUrl: string;
  /** The upstream started for this gateway (undefined when a URL was given). */
  readonly upstream: TestUpstream | undefined;
  readonly logs: CapturedLogs;
  /** `POST /api/login` through the gateway; the token and the response. */
  loginJson(
    username: string,
    headers?: Record<string, string>,
  ): Promise<{ token: string; response: Response; body: Record<string, unknown> }>;
  /** `POST /login` (form) through the gateway; the `sid` cookie value and the response. */
  loginForm(username: string, headers?: Record<string, string>): Promise<{ sid: string; response: Response }>;
  /** fetch on the admin listener, with the admin token unless `auth: false` or another token is given. */
  admin(path: string, init?: RequestInit & { auth?: boolean | string }): Promise<Response>;
  close(): Promise<void>;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Top-level keys replace the defaults; plain objects (admin, sessions, notify...) merge one level deep. */
function merge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue;
    out[k] = isPlainObject(v) && isPlainObject(base[k]) ? { ...base[k], ...v } : v;
  }
  return out;
}

/**
 * Starts a real gateway (both listeners on 127.0.0.1:0) from `parseConfig` of the defaults below merged
 * with `overrides`: the test upstream (started here unless `upstream` is given), TEST_SECRET, the admin
 * API with TEST_ADMIN_TOKEN, TEST_LOGIN_RULES, tokens `bearer` then `cookie:sid`, and `log.level: info`
 * captured in memory. `deps` go to createGateway (`defaultMetrics: false` unless set); a `deps.logger`
 * replaces the captured one.
 */
export async function startGateway(
  overrides: TestGatewayConfig = {},
  deps: GatewayDeps = {},
): Promise<TestGateway> {
  const upstream = overrides.upstream === undefined ? await startTestUpstream() : undefined;
  const defaults: Record<string, unknown> = {
    listen: '127.0.0.1:0',
    upstream: upstream?.url,
    secret: TEST_SECRET,
    admin: { listen: '127.0.0.1:0', token: TEST_ADMIN_TOKEN },
    login: TEST_LOGIN_RULES,
    tokens: ['bearer', 'cookie:sid'],
    log: { level: 'info' },
  };
  const { config } = parseConfig(merge(defaults, overrides as Record<string, unknown>));

  let raw = '';
  let parsed: Record<string, unknown>[] | undefined;
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      raw += chunk.toString();
      parsed = undefined;
      cb();
    },
  });
  const logger = deps.logger ?? createLogger({ level: config.log.level, pretty: false }, sink);
  const lines = () =>
    (parsed ??= raw
      .split('\n')
      .filter((l) => l.length > 0)
      .map((l) => JSON.parse(l) as Record<string, unknown>));

  const gateway = await createGateway(config, { defaultMetrics: false, ...deps, logger });
  await gateway.listen();
  const url = gateway.url;
  const adminUrl = gateway.adminUrl;
  const close = once_(async () => {
    await gateway.close(200);
    await upstream?.close();
  });
  registerCleanup(close);

  return {
    gateway,
    url,
    adminUrl,
    upstream,
    logs: {
      text: () => raw,
      lines,
      audit: (event) =>
        lines().filter((l) => l.kind === 'audit' && (event === undefined || l.event === event)),
    },
    async loginJson(username, headers = {}) {
      const response = await fetch(`${url}/api/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify({ username }),
      });
      const body = (await response.json()) as Record<string, unknown>;
      return { token: String(body.accessToken), response, body };
    },
    async loginForm(username, headers = {}) {
      const response = await fetch(`${url}/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
        body: new URLSearchParams({ username }).toString(),
        redirect: 'manual',
      });
      await response.arrayBuffer();
      return { sid: setCookieValue(response, 'sid') ?? '', response };
    },
    admin(path, init = {}) {
      const { auth = true, ...rest } = init;
      const headers = new Headers(rest.headers);
      if (auth !== false) headers.set('authorization', `Bearer ${auth === true ? TEST_ADMIN_TOKEN : auth}`);
      return fetch(`${adminUrl}${path}`, { ...rest, headers, redirect: 'manual' });
    },
    close,
  };
}

// ---------------------------------------------------------------------------------------------------
// Small HTTP helpers

export const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

/** The value of a cookie a response sets. */
export function setCookieValue(res: Response, name: string): string | undefined {
  for (const c of res.headers.getSetCookie()) {
    const pair = c.split(';')[0] as string;
    const eq = pair.indexOf('=');
    if (pair.slice(0, eq).trim() === name) return pair.slice(eq + 1);
  }
  return undefined;
}

/** Polls `check` until it returns a value other than undefined (or throws after `timeout` ms). */
export async function eventually<T>(
  check: () => T | undefined | Promise<T | undefined>,
  timeout = 5000,
): Promise<T> {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeout} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * A request through node:http, headers exactly as given. Node's fetch (undici) adds its own
 * `Sec-Fetch-Mode: cors`, so a browser navigation (`Sec-Fetch-Mode: navigate`) cannot be imitated with it.
 */
export function rawRequest(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      { method: options.method ?? 'GET', headers: options.headers ?? {} },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

/** Headers of a browser's top-level navigation (Fetch Metadata). */
export const NAVIGATE: Readonly<Record<string, string>> = {
  accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8',
  'sec-fetch-mode': 'navigate',
  'sec-fetch-dest': 'document',
  'sec-fetch-site': 'same-origin',
};
