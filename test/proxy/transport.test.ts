import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect } from 'node:net';
import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib';
import { request } from 'undici';
import { describe, expect, it, onTestFinished } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { bearer, get, postJson, startGateway } from '../support/gateway.js';
import { listenApp, readBody } from '../support/upstreams.js';
import { JSON_LOGIN_RULE } from '../support/login-rules.js';

const LOGIN_RULE = JSON_LOGIN_RULE;
const LOGIN = [LOGIN_RULE];

async function app(handler: Parameters<typeof listenApp>[0]) {
  const a = await listenApp(handler);
  onTestFinished(() => a.close());
  return a;
}

/** An app whose login response is compressed with the given encoding. */
async function compressedLoginApp(encoding: 'gzip' | 'br' | 'deflate') {
  let n = 0;
  return app((req, res) => {
    if (req.url === '/api/login') {
      const body = Buffer.from(
        JSON.stringify({ accessToken: `tok-${encoding}-${++n}`, user: { id: 'zoe' } }),
      );
      const compressed =
        encoding === 'gzip'
          ? gzipSync(body)
          : encoding === 'br'
            ? brotliCompressSync(body)
            : deflateSync(body);
      res.writeHead(200, {
        'content-type': 'application/json',
        'content-encoding': encoding,
        'content-length': compressed.length,
      });
      res.end(compressed);
      return;
    }
    res.end('ok');
  });
}

describe('the forwarding path', () => {
  for (const encoding of ['gzip', 'br', 'deflate'] as const) {
    it(`reads a ${encoding} login body and delivers the bytes the app sent`, async () => {
      const upstream = await compressedLoginApp(encoding);
      const { url } = await startGateway({ upstream: upstream.url, login: LOGIN });
      const first = await request(`${url}/api/login`, { method: 'POST', body: '{}' });
      const raw = Buffer.from(await first.body.arrayBuffer());
      expect(first.headers['content-encoding']).toBe(encoding);
      const direct = await request(`${upstream.url}/api/login`, { method: 'POST', body: '{}' });
      expect(raw.length).toBe(Buffer.from(await direct.body.arrayBuffer()).length);
      await request(`${url}/api/login`, { method: 'POST', body: '{}' }).then((r) => r.body.dump());
      const res = await get(`${url}/x`, bearer(`tok-${encoding}-1`));
      expect(res.status).toBe(401);
    });
  }

  it('streams a large upload and download byte-identical', async () => {
    const payload = randomBytes(24 * 1024 * 1024);
    const digest = createHash('sha256').update(payload).digest('hex');
    const upstream = await app((req, res) => {
      if (req.method === 'PUT') {
        const h = createHash('sha256');
        req.on('data', (c: Buffer) => h.update(c));
        req.on('end', () => res.end(h.digest('hex')));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      // Written in chunks, without a content-length: chunked through the gateway.
      let off = 0;
      const pump = () => {
        while (off < payload.length) {
          const chunk = payload.subarray(off, off + 65536);
          off += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    });
    const { url } = await startGateway({ upstream: upstream.url, login: LOGIN });
    const up = await request(`${url}/upload`, { method: 'PUT', body: payload });
    expect(await up.body.text()).toBe(digest);
    const down = await request(`${url}/download`);
    const h = createHash('sha256');
    for await (const c of down.body) h.update(c as Buffer);
    expect(h.digest('hex')).toBe(digest);
  });

  it('passes a WebSocket through the gateway', async () => {
    const upstream = await app((_req, res) => res.end('ok'));
    const wss = new WebSocketServer({ server: upstream.server });
    wss.on('connection', (ws) => ws.on('message', (m) => ws.send(`echo:${String(m)}`)));
    const { url } = await startGateway({ upstream: upstream.url, login: LOGIN });
    const ws = new WebSocket(`${url.replace('http', 'ws')}/socket`);
    onTestFinished(() => ws.terminate());
    await once(ws, 'open');
    ws.send('hello');
    const [msg] = (await once(ws, 'message')) as [Buffer];
    expect(String(msg)).toBe('echo:hello');
  });

  it('checks a WebSocket upgrade like any request', async () => {
    const upstream = await app((req, res) => {
      if (req.url === '/api/login') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ accessToken: `t${Math.random()}`, user: { id: 'ann' } }));
        return;
      }
      res.end('ok');
    });
    new WebSocketServer({ server: upstream.server });
    const { url } = await startGateway({ upstream: upstream.url, login: LOGIN });
    const first = (await (await postJson(`${url}/api/login`, {})).json()) as { accessToken: string };
    await postJson(`${url}/api/login`, {});
    const ws = new WebSocket(`${url.replace('http', 'ws')}/socket`, { headers: bearer(first.accessToken) });
    const [, res] = (await once(ws, 'unexpected-response')) as [unknown, { statusCode: number }];
    expect(res.statusCode).toBe(401);
  });

  it('answers 502 with a clear body when the upstream is down', async () => {
    const upstream = await app((_req, res) => res.end('ok'));
    await upstream.close();
    const { url } = await startGateway({ upstream: upstream.url, login: LOGIN });
    const res = await get(`${url}/x`);
    expect(res.status).toBe(502);
    expect(await res.json()).toMatchObject({ error: 'SG_ERR_UPSTREAM_CONNECT' });
  });

  it('answers 504 when the upstream does not answer in time', async () => {
    const upstream = await app(() => {
      /* never answers */
    });
    const { url } = await startGateway({
      upstream: upstream.url,
      login: LOGIN,
      timeouts: { response: '300ms' },
    });
    const res = await get(`${url}/slow`);
    expect(res.status).toBe(504);
    expect(await res.json()).toMatchObject({ error: 'SG_ERR_UPSTREAM_TIMEOUT' });
  });

  it('cancels the upstream request when the client aborts', async () => {
    let upstreamClosed: () => void = () => {};
    const closed = new Promise<void>((r) => (upstreamClosed = r));
    const upstream = await app((req, res) => {
      res.writeHead(200);
      res.write('start');
      res.on('close', upstreamClosed);
      req.on('close', upstreamClosed);
    });
    const { url } = await startGateway({ upstream: upstream.url, login: LOGIN });
    const controller = new AbortController();
    const res = await request(`${url}/stream`, { signal: controller.signal });
    controller.abort();
    await expect(res.body.text()).rejects.toThrow();
    await closed;
  });

  it('drops client-sent forwarding headers and sets its own', async () => {
    const upstream = await app((req, res) => res.end(JSON.stringify(req.headers)));
    const { url } = await startGateway({ upstream: upstream.url, login: LOGIN });
    const res = await get(`${url}/h`, {
      'x-forwarded-for': '6.6.6.6',
      forwarded: 'for=6.6.6.6',
      'x-forwarded-host': 'evil',
    });
    const seen = (await res.json()) as Record<string, string>;
    expect(seen['x-forwarded-for']).toBe('127.0.0.1');
    expect(seen.forwarded).toBeUndefined();
    expect(seen['x-forwarded-host']).not.toBe('evil');
    expect(seen['x-forwarded-proto']).toBe('http');
  });

  it('keeps forwarding headers from a trusted proxy', async () => {
    const upstream = await app((req, res) => res.end(JSON.stringify(req.headers)));
    const { url } = await startGateway({
      upstream: upstream.url,
      login: LOGIN,
      trustedProxies: ['127.0.0.1'],
    });
    const seen = (await (await get(`${url}/h`, { 'x-forwarded-for': '203.0.113.9' })).json()) as Record<
      string,
      string
    >;
    expect(seen['x-forwarded-for']).toBe('203.0.113.9, 127.0.0.1');
  });

  it('removes hop-by-hop headers in both directions', async () => {
    const upstream = await app((req, res) => {
      res.setHeader('x-secret-hop', 'yes');
      res.setHeader('connection', 'x-secret-hop');
      res.end(JSON.stringify(req.headers));
    });
    const { url } = await startGateway({ upstream: upstream.url, login: LOGIN });
    // A raw request: HTTP clients rewrite their own Connection header.
    const sock = connect(Number(new URL(url).port), '127.0.0.1');
    sock.write(
      'GET /h HTTP/1.1\r\nHost: x\r\nConnection: close, x-drop-me\r\nX-Drop-Me: 1\r\nProxy-Authorization: Basic abc\r\n\r\n',
    );
    let raw = '';
    sock.on('data', (d: Buffer) => (raw += d.toString()));
    await once(sock, 'close');
    const [head, body] = raw.split('\r\n\r\n') as [string, string];
    const seen = JSON.parse(body) as Record<string, string>;
    expect(seen['x-drop-me']).toBeUndefined();
    expect(seen['proxy-authorization']).toBeUndefined();
    expect(head.toLowerCase()).not.toContain('x-secret-hop');
  });

  it('refuses an encoded slash in the path with 400', async () => {
    const upstream = await app((_req, res) => res.end('ok'));
    const { url } = await startGateway({ upstream: upstream.url, login: LOGIN });
    const res = await get(`${url}/api%2flogin`);
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: 'SG_ERR_AMBIGUOUS_PATH' });
  });

  it('answers a smuggling attempt (Content-Length with Transfer-Encoding) with 400 and stays up', async () => {
    const upstream = await app((_req, res) => res.end('ok'));
    const { url } = await startGateway({ upstream: upstream.url, login: LOGIN });
    const port = Number(new URL(url).port);
    const sock = connect(port, '127.0.0.1');
    sock.write(
      'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    );
    let raw = '';
    sock.on('data', (d: Buffer) => (raw += d.toString()));
    await once(sock, 'close');
    expect(raw).toMatch(/^HTTP\/1\.1 400/);
    expect((await get(`${url}/ok`)).status).toBe(200);
  });

  it('answers huge headers with 431', async () => {
    const upstream = await app((_req, res) => res.end('ok'));
    const { url } = await startGateway({ upstream: upstream.url, login: LOGIN });
    const res = await get(`${url}/x`, { cookie: 'a'.repeat(20_000) }).catch((e: Error) => e);
    expect(res instanceof Response ? res.status : 431).toBe(431);
  });

  it('refuses a login with a truncated JSON body (502), never delivering it', async () => {
    const upstream = await app(async (req, res) => {
      await readBody(req);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"accessToken":"abc","us');
    });
    const { url } = await startGateway({ upstream: upstream.url, login: LOGIN });
    const res = await postJson(`${url}/api/login`, {});
    expect(res.status).toBe(502);
    const body = await res.text();
    expect(JSON.parse(body)).toMatchObject({ error: 'SG_ERR_LOGIN_UNREADABLE' });
    expect(body).not.toContain('abc');
  });

  it('refuses an oversized login response (502), never delivering it', async () => {
    const upstream = await app((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ accessToken: 'big', user: { id: 'u' }, pad: 'x'.repeat(70_000) }));
    });
    const { url } = await startGateway({ upstream: upstream.url, login: LOGIN, maxLoginBody: '64kb' });
    const res = await postJson(`${url}/api/login`, {});
    expect(res.status).toBe(502);
    expect(await res.json()).toMatchObject({ error: 'SG_ERR_LOGIN_UNREADABLE' });
  });

  it('passes a login with a truncated JSON body unregistered under onUnreadable: pass', async () => {
    const upstream = await app(async (req, res) => {
      await readBody(req);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"accessToken":"abc","us');
    });
    const { url, logs } = await startGateway({
      upstream: upstream.url,
      login: [{ ...LOGIN_RULE, onUnreadable: 'pass' }],
    });
    const res = await postJson(`${url}/api/login`, {});
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('{"accessToken":"abc","us');
    expect(logs.lines().some((l) => l.code === 'SG_ERR_LOGIN_UNREADABLE')).toBe(true);
  });

  it('passes an oversized login response through unregistered under onUnreadable: pass', async () => {
    const big = 'x'.repeat(70_000);
    const upstream = await app((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ accessToken: 'big', user: { id: 'u' }, pad: big }));
    });
    const { url, logs } = await startGateway({
      upstream: upstream.url,
      login: [{ ...LOGIN_RULE, onUnreadable: 'pass' }],
      maxLoginBody: '64kb',
    });
    const res = await postJson(`${url}/api/login`, {});
    expect((await res.text()).length).toBeGreaterThan(70_000);
    expect(logs.lines().some((l) => l.code === 'SG_ERR_LOGIN_BODY_TOO_LARGE')).toBe(true);
  });
});
