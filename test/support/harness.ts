/** Starts real gateways for tests, with an injectable clock, and registers their cleanup at once. */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { request } from 'undici';
import { onTestFinished } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { createGateway, type Gateway, type GatewayDeps } from '../../src/gateway.js';

export interface TestClock {
  now: () => number;
  advance(ms: number): void;
}

export function testClock(start = Date.parse('2026-11-23T10:00:00Z')): TestClock {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

/** Log lines captured from a gateway, parsed. */
export interface CapturedLogs {
  readonly lines: Record<string, unknown>[];
  readonly text: () => string;
}

export interface TestGateway {
  readonly gateway: Gateway;
  readonly url: string;
  readonly adminUrl: string;
  readonly logs: CapturedLogs;
}

export const TEST_SECRET = 'test-secret-0123456789abcdef';

export async function startGateway(
  upstream: string,
  config: Partial<ConfigInput> & Pick<ConfigInput, 'login'>,
  deps: Omit<GatewayDeps, 'logger'> & { register?: boolean } = {},
): Promise<TestGateway> {
  const lines: Record<string, unknown>[] = [];
  let raw = '';
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      raw += chunk.toString();
      for (const l of chunk.toString().split('\n'))
        if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  const { config: parsed } = parseConfig({
    listen: '127.0.0.1:0',
    upstream,
    secret: TEST_SECRET,
    admin: { listen: '127.0.0.1:0', token: 'test-admin-token-0123456789' },
    ...config,
  });
  const logger = pino({ level: 'debug' }, sink);
  const gateway = await createGateway(parsed, { defaultMetrics: false, ...deps, logger });
  await gateway.listen();
  if (deps.register !== false) onTestFinished(() => gateway.close(100));
  return { gateway, url: gateway.url, adminUrl: gateway.adminUrl, logs: { lines, text: () => raw } };
}

/**
 * A GET with exactly these headers (fetch would add `Sec-Fetch-Mode: cors`), as a fetch Response;
 * redirects are not followed.
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

/** The value of a cookie set by a response. */
export function setCookie(res: Response, name: string): string | undefined {
  for (const c of res.headers.getSetCookie()) {
    const [pair] = c.split(';');
    const eq = (pair as string).indexOf('=');
    if ((pair as string).slice(0, eq) === name) return (pair as string).slice(eq + 1);
  }
  return undefined;
}

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
