/**
 * `ui.liveSignOut` on real sockets: the script tag in live sessions' HTML pages (plain, gzip, br,
 * deflate; streamed, never buffered; Content-Length and ETag; CSP), the pages and responses it leaves
 * byte for byte alone, and the event stream that tells a tab its session ended (memory and Redis).
 */
import { once } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  brotliCompressSync,
  brotliDecompressSync,
  deflateRawSync,
  deflateSync,
  gunzipSync,
  gzipSync,
  inflateSync,
} from 'node:zlib';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../../src/config/schema.js';
import { LIVE_SCRIPT } from '../../src/ui/live-signout.js';
import { FORM_LOGIN_RULE } from '../support/login-rules.js';
import { startGateway, type TestGateway } from '../support/gateway.js';
import { haveRedis, startRedis, type RedisHandle } from '../support/redis.js';
import { needTool } from '../support/tools.js';
import { listenApp, type ListeningApp } from '../support/upstreams.js';
import { waitUntil } from '../support/wait.js';

const TAG = '<script src="/.sessiongate/live.js" defer></script>';
const PAGE = '<!doctype html><html><head><title>Pay</title></head><body><p>Amount: 10 €</p></body></html>';
const WITH_TAG = PAGE.replace('</head>', `${TAG}</head>`);
const redisServer = needTool('redis-server', 'redis-server', haveRedis());
let redis: RedisHandle;

/** The second half of /streamed, written when the test says so. */
const releaseStreamed: (() => void)[] = [];

/** The app: a form login setting `sid`, and one page per case the rewrite must get right. */
function pageApp(): Promise<ListeningApp> {
  let n = 0;
  return listenApp((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://app');
    const html = { 'content-type': 'text/html; charset=utf-8' };
    const page = Buffer.from(PAGE);
    const send = (headers: Record<string, string>, body: Buffer, status = 200) => {
      res.writeHead(status, { ...headers, 'content-length': String(body.length) });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    switch (url.pathname) {
      case '/login':
        req.resume();
        res.writeHead(302, { location: '/app', 'set-cookie': `sid=s${++n}-${Date.now()}; Path=/; HttpOnly` });
        return void res.end();
      case '/plain':
        return send({ ...html, etag: '"v1"' }, page);
      case '/weak':
        return send({ ...html, etag: 'W/"v1"', 'content-md5': 'bogus' }, page);
      case '/gzip':
        return send({ ...html, 'content-encoding': 'gzip' }, gzipSync(page));
      case '/br':
        return send({ ...html, 'content-encoding': 'br' }, brotliCompressSync(page));
      case '/deflate':
        return send({ ...html, 'content-encoding': 'deflate' }, deflateSync(page));
      case '/raw-deflate':
        return send({ ...html, 'content-encoding': 'deflate' }, deflateRawSync(page));
      case '/zstd':
        return send({ ...html, 'content-encoding': 'zstd' }, page);
      case '/corrupt-gzip':
        return send({ ...html, 'content-encoding': 'gzip' }, Buffer.from('not gzip at all, not at all'));
      case '/json':
        return send({ 'content-type': 'application/json' }, Buffer.from(JSON.stringify({ html: PAGE })));
      case '/xhtml':
        return send({ 'content-type': 'text/htmlx' }, page);
      case '/no-transform':
        return send({ ...html, 'cache-control': 'public, no-transform' }, page);
      case '/range':
        return send({ ...html, 'content-range': `bytes 0-9/${page.length}` }, page.subarray(0, 10), 206);
      case '/not-found':
        return send(html, page, 404);
      case '/not-modified':
        res.writeHead(304, { etag: '"v1"' });
        return void res.end();
      case '/csp':
        return send({ ...html, 'content-security-policy': url.searchParams.get('policy') ?? '' }, page);
      case '/csp-report-only':
        return send({ ...html, 'content-security-policy-report-only': "script-src 'none'" }, page);
      case '/streamed':
        // The head end tag cut in two: the first half must reach the client before the second is sent.
        res.writeHead(200, html);
        res.write(PAGE.slice(0, PAGE.indexOf('</head>') + 4));
        releaseStreamed.push(() => res.end(PAGE.slice(PAGE.indexOf('</head>') + 4)));
        return;
      default:
        return send({ 'content-type': 'text/plain' }, Buffer.from('ok'));
    }
  });
}

let app: ListeningApp;
beforeAll(async () => {
  app = await pageApp();
});
afterAll(() => app?.close());

async function gatewayOf(extra: Partial<ConfigInput> = {}): Promise<TestGateway> {
  const gw = await startGateway({
    upstream: app.url,
    login: [FORM_LOGIN_RULE],
    tokens: ['cookie:sid'],
    ui: { liveSignOut: true },
    ...extra,
  });
  // A Redis store (and its invalidation channel) connects after the listeners open.
  await waitUntil('the gateway ready', () => gw.gateway.isReady());
  return gw;
}

/** Signs `user` in through the gateway; the `Cookie` header of the session. */
async function signIn(gw: TestGateway, user: string): Promise<string> {
  const res = await request(`${gw.url}/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: `username=${user}`,
  });
  await res.body.dump();
  expect(res.statusCode).toBe(302);
  const set = String(res.headers['set-cookie']);
  return set.slice(0, set.indexOf(';'));
}

interface Raw {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** A GET (or HEAD) through the gateway, the body's bytes as sent (nothing decompressed). */
async function raw(
  url: string,
  headers: Record<string, string> = {},
  method: 'GET' | 'HEAD' = 'GET',
): Promise<Raw> {
  const res = await request(url, { method, headers });
  return { status: res.statusCode, headers: res.headers, body: Buffer.from(await res.body.arrayBuffer()) };
}

/** The same path straight from the app: the bytes a page left alone must have. */
const fromApp = (path: string, headers: Record<string, string> = {}, method: 'GET' | 'HEAD' = 'GET') =>
  raw(`${app.url}${path}`, headers, method);

async function pageCount(gw: TestGateway, outcome: string): Promise<number> {
  const metric = await gw.gateway.metrics.registry
    .getSingleMetric('sessiongate_live_signout_pages_total')
    ?.get();
  return metric?.values.find((v) => v.labels.outcome === outcome)?.value ?? 0;
}

describe('the script tag in live pages', () => {
  let gw: TestGateway;
  let cookie: string;
  beforeAll(async () => {
    gw = await gatewayOf();
    cookie = await signIn(gw, 'alice');
  });

  it('goes before </head>; Content-Length removed (chunked), a strong ETag made weak', async () => {
    const res = await raw(`${gw.url}/plain`, { cookie });
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe(WITH_TAG);
    expect(res.headers['content-length']).toBeUndefined();
    expect(res.headers['transfer-encoding']).toBe('chunked');
    expect(res.headers.etag).toBe('W/"v1"');
    expect(await pageCount(gw, 'injected_identity')).toBeGreaterThan(0);
  });

  it('keeps a weak ETag and drops a digest of the old bytes', async () => {
    const res = await raw(`${gw.url}/weak`, { cookie });
    expect(res.body.toString()).toBe(WITH_TAG);
    expect(res.headers.etag).toBe('W/"v1"');
    expect(res.headers['content-md5']).toBeUndefined();
  });

  it.each([
    ['gzip', gunzipSync],
    ['br', brotliDecompressSync],
    ['deflate', inflateSync],
  ] as const)('decodes a %s page, inserts, and encodes it again', async (encoding, decode) => {
    const before = await pageCount(gw, `injected_${encoding}`);
    const res = await raw(`${gw.url}/${encoding}`, { cookie, 'accept-encoding': encoding });
    expect(res.status).toBe(200);
    expect(res.headers['content-encoding']).toBe(encoding);
    expect(res.headers['content-length']).toBeUndefined();
    expect(decode(res.body).toString()).toBe(WITH_TAG);
    expect(await pageCount(gw, `injected_${encoding}`)).toBe(before + 1);
  });

  it('reads a raw deflate body too (sent zlib-wrapped, as RFC 9110 says)', async () => {
    const res = await raw(`${gw.url}/raw-deflate`, { cookie, 'accept-encoding': 'deflate' });
    expect(res.headers['content-encoding']).toBe('deflate');
    expect(inflateSync(res.body).toString()).toBe(WITH_TAG);
  });

  it('streams: the bytes before a head end tag cut by a chunk boundary arrive before the rest is sent', async () => {
    releaseStreamed.length = 0;
    const res = await request(`${gw.url}/streamed`, { headers: { cookie } });
    const cut = PAGE.indexOf('</head>');
    let received = '';
    const firstPart = new Promise<void>((resolve) => {
      res.body.on('data', (c: Buffer) => {
        received += c.toString();
        // Everything before `</he`: the inserter holds only the four bytes that may begin the tag.
        if (received.length >= cut) resolve();
      });
    });
    await firstPart;
    expect(received).toBe(PAGE.slice(0, cut));
    expect(releaseStreamed).toHaveLength(1);
    releaseStreamed.pop()?.();
    await once(res.body, 'end');
    expect(received).toBe(WITH_TAG);
  });

  it('carries the policy nonce where the CSP allows scripts by nonce only', async () => {
    const policy = "script-src 'nonce-Zm9vYmFy' 'strict-dynamic'; connect-src 'self'";
    const res = await raw(`${gw.url}/csp?policy=${encodeURIComponent(policy)}`, { cookie });
    expect(res.body.toString()).toBe(
      PAGE.replace('</head>', '<script src="/.sessiongate/live.js" nonce="Zm9vYmFy" defer></script></head>'),
    );
    expect(res.headers['content-security-policy']).toBe(policy);
  });

  it("inserts under a CSP that allows 'self', and under a report-only one that would not", async () => {
    const self = await raw(`${gw.url}/csp?policy=${encodeURIComponent("default-src 'self'")}`, { cookie });
    expect(self.body.toString()).toBe(WITH_TAG);
    const reportOnly = await raw(`${gw.url}/csp-report-only`, { cookie });
    expect(reportOnly.body.toString()).toBe(WITH_TAG);
  });

  it('leaves a page whose CSP forbids the script byte-identical, and logs it once', async () => {
    const path = `/csp?policy=${encodeURIComponent("script-src 'self' https://cdn.example; connect-src 'none'")}`;
    const before = await pageCount(gw, 'skipped_csp');
    const first = await raw(`${gw.url}${path}`, { cookie });
    const second = await raw(`${gw.url}${path}`, { cookie });
    const original = await fromApp(path);
    expect(first.body.equals(original.body)).toBe(true);
    expect(second.body.equals(original.body)).toBe(true);
    expect(first.headers['content-length']).toBe(String(original.body.length));
    expect(await pageCount(gw, 'skipped_csp')).toBe(before + 2);
    const warned = gw.logs.lines().filter((l) => l.code === 'SG_WARN_LIVE_SIGNOUT_CSP');
    expect(warned).toHaveLength(1);
    expect(warned[0]?.directive).toBe('connect-src');
  });

  it.each([
    ['a JSON body', '/json'],
    ['a type that only starts like text/html', '/xhtml'],
    ['Cache-Control: no-transform', '/no-transform'],
    ['a range (206)', '/range'],
    ['an unknown encoding', '/zstd'],
  ])('leaves %s byte for byte as the app sent it', async (_what, path) => {
    const through = await raw(`${gw.url}${path}`, { cookie });
    const original = await fromApp(path);
    expect(through.status).toBe(original.status);
    expect(through.body.equals(original.body)).toBe(true);
    expect(through.headers['content-length']).toBe(original.headers['content-length']);
  });

  it('counts the pages it leaves alone by why', async () => {
    const before = [await pageCount(gw, 'skipped_encoding'), await pageCount(gw, 'skipped_no_transform')];
    await raw(`${gw.url}/zstd`, { cookie });
    await raw(`${gw.url}/no-transform`, { cookie });
    expect([await pageCount(gw, 'skipped_encoding'), await pageCount(gw, 'skipped_no_transform')]).toEqual([
      (before[0] ?? 0) + 1,
      (before[1] ?? 0) + 1,
    ]);
  });

  it('inserts into an error page (404) too, but never into HEAD or a 304', async () => {
    expect((await raw(`${gw.url}/not-found`, { cookie })).body.toString()).toBe(WITH_TAG);
    const head = await raw(`${gw.url}/plain`, { cookie }, 'HEAD');
    expect(head.headers['content-length']).toBe(String(Buffer.byteLength(PAGE)));
    expect(head.headers.etag).toBe('"v1"');
    const notModified = await raw(`${gw.url}/not-modified`, { cookie });
    expect(notModified.status).toBe(304);
    expect(notModified.headers.etag).toBe('"v1"');
  });

  it("leaves HTML a browser fetched for a script or a frame alone (Sec-Fetch-Dest), and a document's not", async () => {
    for (const dest of ['empty', 'iframe']) {
      const res = await raw(`${gw.url}/plain`, { cookie, 'sec-fetch-dest': dest });
      expect(res.body.toString()).toBe(PAGE);
      expect(res.headers['content-length']).toBe(String(Buffer.byteLength(PAGE)));
    }
    const page = await raw(`${gw.url}/plain`, { cookie, 'sec-fetch-dest': 'document' });
    expect(page.body.toString()).toBe(WITH_TAG);
  });

  it('leaves the pages of requests without a live session alone', async () => {
    const anonymous = await raw(`${gw.url}/plain`);
    expect(anonymous.body.toString()).toBe(PAGE);
    expect(anonymous.headers['content-length']).toBe(String(Buffer.byteLength(PAGE)));
  });

  it('cuts a compressed page that does not decode, and counts it', async () => {
    const before = await pageCount(gw, 'corrupt');
    await expect(raw(`${gw.url}/corrupt-gzip`, { cookie })).rejects.toThrow();
    expect(await pageCount(gw, 'corrupt')).toBe(before + 1);
  });
});

describe('with ui.liveSignOut off', () => {
  it('passes live pages untouched and serves nothing under {prefix}live', async () => {
    const gw = await gatewayOf({ ui: { liveSignOut: false } });
    const cookie = await signIn(gw, 'bob');
    const res = await raw(`${gw.url}/plain`, { cookie });
    expect(res.body.toString()).toBe(PAGE);
    expect(res.headers['content-length']).toBe(String(Buffer.byteLength(PAGE)));
    expect(res.headers.etag).toBe('"v1"');
    expect((await raw(`${gw.url}/.sessiongate/live.js`)).status).toBe(404);
  });
});

describe('the script', () => {
  it('is served under the prefix, cacheable, with an ETag that answers 304', async () => {
    const gw = await gatewayOf();
    const res = await raw(`${gw.url}/.sessiongate/live.js`);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(res.headers['cache-control']).toBe('public, max-age=86400');
    expect(res.body.toString()).toBe(LIVE_SCRIPT);
    expect(res.body.length).toBeLessThan(400);
    const again = await raw(`${gw.url}/.sessiongate/live.js`, { 'if-none-match': String(res.headers.etag) });
    expect(again.status).toBe(304);
    expect(again.body.length).toBe(0);
  });
});

/** An open event stream of the gateway, its text as it arrives. */
interface EventStream {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  /** Resolves with the text so far once it matches. */
  until(pattern: RegExp): Promise<string>;
  /** Resolves with the whole text when the gateway ends the stream. */
  readonly ended: Promise<string>;
}

async function openStream(url: string, headers: Record<string, string> = {}): Promise<EventStream> {
  const res = await request(url, { headers: { accept: 'text/event-stream', ...headers } });
  let text = '';
  const waiters: { pattern: RegExp; resolve: (t: string) => void }[] = [];
  res.body.on('data', (c: Buffer) => {
    text += c.toString();
    for (const w of [...waiters])
      if (w.pattern.test(text)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(text);
      }
  });
  const ended = once(res.body, 'end').then(() => text);
  return {
    status: res.statusCode,
    headers: res.headers,
    until: (pattern) =>
      pattern.test(text)
        ? Promise.resolve(text)
        : new Promise((resolve) => waiters.push({ pattern, resolve })),
    ended,
  };
}

const ENDED = (reason: string, location: string) =>
  `event: ended\ndata: ${JSON.stringify({ reason, location })}\n\n`;

describe.each([
  ['memory', () => ({})],
  ['redis', () => ({ store: { url: redis.url, keyPrefix: `ls${Math.random().toString(36).slice(2)}:` } })],
] as const)('the event stream (%s store)', (kind, storeOf) => {
  beforeAll(async () => {
    if (kind === 'redis' && redisServer) redis = await startRedis();
  });
  afterAll(() => redis?.stop());
  const skip = kind === 'redis' && !redisServer;

  it.skipIf(skip)(
    "ends with the reason when the session is superseded, and leaves the proxy's registry",
    async () => {
      const gw = await gatewayOf(storeOf());
      const cookie = await signIn(gw, 'carol');
      const stream = await openStream(`${gw.url}/.sessiongate/live`, { cookie });
      expect(stream.status).toBe(200);
      expect(stream.headers['content-type']).toBe('text/event-stream; charset=utf-8');
      expect(stream.headers['cache-control']).toBe('no-store');
      await stream.until(/^retry: 3000\n:\n\n$/);
      expect(gw.gateway.proxy.connections.size).toBe(1);
      await signIn(gw, 'carol');
      const text = await stream.ended;
      expect(text).toBe(
        `retry: 3000\n:\n\n${ENDED('session_superseded', '/.sessiongate/signed-out?reason=session_superseded')}`,
      );
      expect(gw.gateway.proxy.connections.size).toBe(0);
    },
  );

  it.skipIf(skip)(
    'answers the end at once for a token that is no longer live, to the configured redirect',
    async () => {
      const gw = await gatewayOf({ ...storeOf(), reject: { redirect: '/signin?from=gate' } });
      const old = await signIn(gw, 'dave');
      await signIn(gw, 'dave');
      const stream = await openStream(`${gw.url}/.sessiongate/live`, { cookie: old });
      expect(await stream.ended).toBe(
        `retry: 3000\n:\n\n${ENDED('session_superseded', '/signin?from=gate&reason=session_superseded')}`,
      );
    },
  );

  it.skipIf(skip)('ends on logout through the admin API with session_ended', async () => {
    const gw = await gatewayOf(storeOf());
    const cookie = await signIn(gw, 'erin');
    const stream = await openStream(`${gw.url}/.sessiongate/live`, { cookie });
    await stream.until(/retry/);
    const res = await gw.admin('/admin/users/erin/sessions', { method: 'DELETE' });
    expect(res.status).toBe(200);
    expect(await stream.ended).toContain(
      ENDED('session_ended', '/.sessiongate/signed-out?reason=session_ended'),
    );
  });
});

describe('the stream without a session, on shutdown, and the signed-out page', () => {
  it('answers 204 to a request without a token (an EventSource stops reconnecting), in both unknownTokens modes', async () => {
    for (const unknownTokens of ['reject', 'pass'] as const) {
      const gw = await gatewayOf({ sessions: { unknownTokens } });
      const res = await raw(`${gw.url}/.sessiongate/live`, { accept: 'text/event-stream' });
      expect(res.status).toBe(204);
      expect(res.body.length).toBe(0);
      expect(gw.gateway.proxy.connections.size).toBe(0);
    }
  });

  it('ends at once for a token that is not known, under unknownTokens: reject', async () => {
    const gw = await gatewayOf({ sessions: { unknownTokens: 'reject' } });
    const stream = await openStream(`${gw.url}/.sessiongate/live`, { cookie: 'sid=never-issued' });
    expect(await stream.ended).toBe(
      `retry: 3000\n:\n\n${ENDED('session_unknown', '/.sessiongate/signed-out?reason=session_unknown')}`,
    );
  });

  it('is ended without an event when the gateway shuts down, so the tab reconnects elsewhere', async () => {
    const gw = await gatewayOf();
    const cookie = await signIn(gw, 'frank');
    const stream = await openStream(`${gw.url}/.sessiongate/live`, { cookie });
    await stream.until(/retry/);
    const closing = gw.close();
    expect(await stream.ended).toBe('retry: 3000\n:\n\n');
    await closing;
  });

  it('refuses other methods and unknown sub-paths', async () => {
    const gw = await gatewayOf();
    const post = await request(`${gw.url}/.sessiongate/live`, { method: 'POST', body: '' });
    await post.body.dump();
    expect(post.statusCode).toBe(405);
    expect((await raw(`${gw.url}/.sessiongate/lively`)).status).toBe(404);
  });

  it("the signed-out page is the proxy's rejection for a dead token: 401, cookie deleted, Clear-Site-Data", async () => {
    const gw = await gatewayOf();
    const old = await signIn(gw, 'gina');
    const current = await signIn(gw, 'gina');
    const nav = { 'sec-fetch-mode': 'navigate', accept: 'text/html' };
    const dead = await raw(`${gw.url}/.sessiongate/signed-out?reason=session_superseded`, {
      ...nav,
      cookie: old,
    });
    expect(dead.status).toBe(401);
    expect(String(dead.headers['set-cookie'])).toMatch(/^sid=; /);
    expect(dead.headers['clear-site-data']).toBe('"cookies", "storage"');
    expect(dead.body.toString()).toContain('Another session has been started using your account.');
    // Without a token: the page only, nothing cleared (a link cannot wipe a browser's storage).
    const none = await raw(`${gw.url}/.sessiongate/signed-out?reason=session_superseded`, nav);
    expect(none.status).toBe(200);
    expect(none.headers['clear-site-data']).toBeUndefined();
    expect(none.body.toString()).toContain('Another session has been started using your account.');
    // A live session following the link is sent back to the app, still signed in.
    const live = await raw(`${gw.url}/.sessiongate/signed-out?reason=session_superseded`, {
      ...nav,
      cookie: current,
    });
    expect(live.status).toBe(303);
    expect(live.headers.location).toBe('/');
    expect((await raw(`${gw.url}/plain`, { cookie: current })).status).toBe(200);
  });
});
