/**
 * The one way tests start a gateway: a real gateway (both listeners on 127.0.0.1:0) in front of the test
 * app of upstreams.ts, or of an upstream of the test's own, with its cleanup registered at once; and the
 * helpers to talk to it.
 *
 *   const gw = await startGateway({ sessions: { limit: 2 } });            // starts the test app
 *   const { token } = await gw.loginJson('alice');
 *   const res = await get(`${gw.url}/api/me`, bearer(token));
 *
 *   const app = await jwtApp();                                            // an upstream of your own
 *   const gw = await startGateway({ upstream: app.url, login: JSON_LOGIN }, { now: clock.now });
 *
 * Cleanup: called inside a test, the gateway (and the test app it started) closes when that test
 * finishes (onTestFinished); called in a beforeAll/beforeEach hook, after the file's tests (an afterAll
 * registered by this module). `close()` may be called earlier; it is idempotent.
 *
 * Log lines of the gateway are captured in memory (pino JSON through the gateway's own createLogger, at
 * `log.level` of the config, default `info`) and parsed: `gw.logs.lines()`; nothing is written to stdout.
 */
import { Writable } from 'node:stream';
import { request } from 'undici';
import { afterAll, onTestFinished } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { TEST_LOGIN_RULES } from './login-rules.js';
import { createGateway, type Gateway, type GatewayDeps } from '../../src/gateway.js';
import { createLogger, type Logger } from '../../src/observability/logger.js';
import { testApp, type TestApp } from './upstreams.js';

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
// Clock

/** A clock for `deps.now`: stands still until advanced. */
export interface TestClock {
  now: () => number;
  advance(ms: number): void;
}

export function testClock(start = Date.parse('2026-11-23T10:00:00Z')): TestClock {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

// ---------------------------------------------------------------------------------------------------
// Logs

export interface CapturedLogs {
  /** The raw pino output. */
  text(): string;
  /** Every line, parsed. */
  lines(): Record<string, unknown>[];
  /** Lines of the audit log (`kind: "audit"`), optionally of one event type. */
  audit(event?: string): Record<string, unknown>[];
}

/** A logger as the gateway makes it (createLogger, JSON), writing to memory instead of stdout. */
export function captureLogs(level = 'info'): { logger: Logger; logs: CapturedLogs } {
  let raw = '';
  let parsed: Record<string, unknown>[] | undefined;
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      raw += chunk.toString();
      parsed = undefined;
      cb();
    },
  });
  const lines = () =>
    (parsed ??= raw
      .split('\n')
      .filter((l) => l.length > 0)
      .map((l) => JSON.parse(l) as Record<string, unknown>));
  return {
    logger: createLogger({ level, pretty: false }, sink),
    logs: {
      text: () => raw,
      lines,
      audit: (event) =>
        lines().filter((l) => l.kind === 'audit' && (event === undefined || l.event === event)),
    },
  };
}

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

function once<T>(fn: () => Promise<T>): () => Promise<T> {
  let p: Promise<T> | undefined;
  return () => (p ??= fn());
}

// ---------------------------------------------------------------------------------------------------
// The gateway

// test/store imports the login rules from here.

/**
 * Config of a test gateway: without `upstream`, the test app is started and its login rules are the
 * default; with an `upstream` of the test's own, `login` is required (and `tokens` defaults to the
 * schema's, `bearer`).
 */
export type TestGatewayConfig =
  | (Partial<ConfigInput> & { upstream?: undefined })
  | (Partial<ConfigInput> & Pick<ConfigInput, 'upstream' | 'login'>);

export interface TestGateway {
  readonly gateway: Gateway;
  /** The proxy's origin, `http://127.0.0.1:<port>`. */
  readonly url: string;
  /** The admin listener's origin. */
  readonly adminUrl: string;
  /** The test app started for this gateway (undefined when an `upstream` was given). */
  readonly upstream: TestApp | undefined;
  readonly logs: CapturedLogs;
  /** `POST /api/login` of the test app through the gateway; the token and the response. */
  loginJson(
    username: string,
    headers?: Record<string, string>,
  ): Promise<{ token: string; response: Response; body: Record<string, unknown> }>;
  /** `POST /login` (form) of the test app through the gateway; the `sid` cookie value and the response. */
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
 * Starts a real gateway from `parseConfig` of the defaults below merged with `config`: TEST_SECRET, the
 * admin API with TEST_ADMIN_TOKEN, `log.level: info` captured in memory, and, when no `upstream` is
 * given, the test app (started here) with TEST_LOGIN_RULES and tokens `bearer` then `cookie:sid`.
 * `deps` go to createGateway (`defaultMetrics: false` unless set; `now` for a testClock).
 */
export async function startGateway(
  config: TestGatewayConfig = {},
  deps: Omit<GatewayDeps, 'logger'> = {},
): Promise<TestGateway> {
  const upstream = config.upstream === undefined ? await testApp() : undefined;
  const defaults: Record<string, unknown> = {
    listen: '127.0.0.1:0',
    secret: TEST_SECRET,
    admin: { listen: '127.0.0.1:0', token: TEST_ADMIN_TOKEN },
    log: { level: 'info' },
    ...(upstream && { upstream: upstream.url, login: TEST_LOGIN_RULES, tokens: ['bearer', 'cookie:sid'] }),
  };
  // Registered at once, so a config that does not parse leaves nothing running.
  const closeUpstream = once(async () => upstream?.close());
  if (upstream) registerCleanup(closeUpstream);

  const { config: parsed } = parseConfig(merge(defaults, config as Record<string, unknown>));
  const { logger, logs } = captureLogs(parsed.log.level);
  const gateway = await createGateway(parsed, { defaultMetrics: false, ...deps, logger });
  await gateway.listen();
  const url = gateway.url;
  const adminUrl = gateway.adminUrl;
  const close = once(async () => {
    await gateway.close(200);
    await closeUpstream();
  });
  registerCleanup(close);

  return {
    gateway,
    url,
    adminUrl,
    upstream,
    logs,
    async loginJson(username, headers = {}) {
      const response = await postJson(`${url}/api/login`, { username }, headers);
      const body = (await response.json()) as Record<string, unknown>;
      return { token: String(body.accessToken), response, body };
    },
    async loginForm(username, headers = {}) {
      const response = await postForm(`${url}/login`, { username }, headers);
      await response.arrayBuffer();
      return { sid: setCookie(response, 'sid') ?? '', response };
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
// Requests

/**
 * A GET with exactly these headers, as a fetch Response; redirects are not followed. Node's fetch adds
 * its own `Sec-Fetch-Mode: cors`, so a browser navigation (`Sec-Fetch-Mode: navigate`, see NAVIGATE)
 * cannot be imitated with it.
 */
export async function get(url: string, headers: Record<string, string> = {}): Promise<Response> {
  const res = await request(url, { headers });
  const out = new Headers();
  for (const [k, v] of Object.entries(res.headers)) {
    if (Array.isArray(v)) for (const x of v) out.append(k, x);
    else if (v !== undefined) out.set(k, v);
  }
  const body = Buffer.from(await res.body.arrayBuffer());
  return new Response(res.statusCode === 204 || res.statusCode === 304 ? null : body, {
    status: res.statusCode,
    headers: out,
  });
}

/** A POST of a JSON body (fetch); redirects are not followed. */
export function postJson(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
    redirect: 'manual',
  });
}

/** A POST of a urlencoded form (fetch); redirects are not followed. */
export function postForm(
  url: string,
  form: Record<string, string>,
  headers: Record<string, string> = {},
): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(form).toString(),
    redirect: 'manual',
  });
}

/** Headers of a browser's top-level navigation (Fetch Metadata), for `get`. */
export const NAVIGATE: Readonly<Record<string, string>> = {
  accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8',
  'sec-fetch-mode': 'navigate',
  'sec-fetch-dest': 'document',
  'sec-fetch-site': 'same-origin',
};

export const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

/** The value of a cookie a response sets. */
export function setCookie(res: Response, name: string): string | undefined {
  for (const c of res.headers.getSetCookie()) {
    const pair = c.split(';')[0] as string;
    const eq = pair.indexOf('=');
    if (pair.slice(0, eq).trim() === name) return pair.slice(eq + 1);
  }
  return undefined;
}
