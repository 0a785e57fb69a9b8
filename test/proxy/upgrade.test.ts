/**
 * WebSocket upgrades that cannot smuggle: nothing the client sends behind its upgrade request reaches
 * the app before a 101, an app that does not switch is relayed as an ordinary response that closes the
 * connection, and only GET `Upgrade: websocket` requests off the login/refresh/logout routes are
 * tunnelled. Raw `node:net` clients for the attacks, the `ws` package for real WebSockets.
 */
import { once } from 'node:events';
import { type IncomingMessage } from 'node:http';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { describe, expect, it, onTestFinished } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { tunnelUpgrade, type UpgradedConnection, type UpgradeTarget } from '../../src/proxy/upgrade.js';
import { get, startGateway } from '../support/gateway.js';
import { TEST_LOGIN_RULES } from '../support/login-rules.js';
import { listenApp, type ListeningApp } from '../support/upstreams.js';
import { JSON_LOGIN_RULE } from '../support/login-rules.js';

const LOGIN = [JSON_LOGIN_RULE];

/** The head of a WebSocket handshake (RFC 6455 section 4.1), with `extra` header lines. */
function upgradeHead(path: string, extra = '', method = 'GET', upgrade = 'websocket'): string {
  return (
    `${method} ${path} HTTP/1.1\r\nHost: gateway.test\r\nUpgrade: ${upgrade}\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`
  );
}

/** What a raw client received, read once the server closed the connection. */
interface RawResponse {
  readonly status: number;
  /** Lower-case names; repeated headers joined with ", ". */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

function parseResponse(text: string): RawResponse {
  const end = text.indexOf('\r\n\r\n');
  if (end === -1) throw new Error(`no complete response head in ${JSON.stringify(text)}`);
  const [statusLine, ...lines] = text.slice(0, end).split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  return { status: Number((statusLine ?? '').split(' ')[1]), headers, body: text.slice(end + 4) };
}

function rawClient(url: string): Socket {
  const socket = connect(Number(new URL(url).port), '127.0.0.1');
  socket.on('error', () => {
    // A reset rejects the test's once(socket, 'close'); this listener only keeps it from being uncaught.
  });
  onTestFinished(() => void socket.destroy());
  return socket;
}

/** Writes `bytes` on a new connection; everything the server sent, once it closed the connection. */
async function exchange(url: string, bytes: string): Promise<RawResponse> {
  const socket = rawClient(url);
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  const closed = once(socket, 'close');
  socket.write(bytes);
  await closed;
  return parseResponse(Buffer.concat(chunks).toString('latin1'));
}

/** Resolves with what `socket` received up to and including the first blank line. */
function readHead(socket: Socket): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    const onData = (c: Buffer) => {
      text += c.toString('latin1');
      if (text.includes('\r\n\r\n')) {
        socket.off('data', onData);
        resolve(text);
      }
    };
    socket.on('data', onData);
  });
}

async function app(handler: Parameters<typeof listenApp>[0]): Promise<ListeningApp> {
  const a = await listenApp(handler);
  onTestFinished(() => a.close());
  return a;
}

/** Sockets an app took over in its 'upgrade' handler are no longer the server's: destroyed at the end. */
function keepForCleanup(socket: Duplex): void {
  onTestFinished(() => void socket.destroy());
}

/** A plain HTTP app (no 'upgrade' listener, so Node hands it upgrade requests as ordinary ones). */
async function countingApp(answer: (res: Parameters<Parameters<typeof listenApp>[0]>[1]) => void) {
  const seen: IncomingMessage[] = [];
  const a = await app((req, res) => {
    seen.push(req);
    answer(res);
  });
  return { ...a, seen };
}

describe('an app that answers an upgrade request without switching', () => {
  it('relays its 404 with Connection: close and never forwards a request pipelined behind it', async () => {
    const upstream = await countingApp((res) => {
      res.writeHead(404, { 'content-type': 'text/plain', 'content-length': '9', 'keep-alive': 'timeout=5' });
      res.end('no socket');
    });
    const { url } = await startGateway({ upstream: upstream.url, login: LOGIN });
    const smuggled =
      'GET /admin/delete-all HTTP/1.1\r\nHost: gateway.test\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n';

    const res = await exchange(url, upgradeHead('/socket') + smuggled);

    expect(res.status).toBe(404);
    expect(res.headers.connection).toBe('close');
    expect(res.headers['keep-alive']).toBeUndefined();
    expect(res.body).toBe('no socket');
    expect(upstream.seen.map((r) => r.url)).toEqual(['/socket']);
  });

  it('relays a chunked 426 de-chunked, delimited by the close, without its hop-by-hop headers', async () => {
    const upstream = await countingApp((res) => {
      res.writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket', connection: 'upgrade' });
      res.write('upgrade ');
      res.end('required');
    });
    const { url } = await startGateway({ upstream: upstream.url, login: LOGIN });

    const res = await exchange(url, upgradeHead('/socket'));

    expect(res.status).toBe(426);
    expect(res.headers).toMatchObject({ connection: 'close', 'content-type': 'text/plain' });
    expect(res.headers['transfer-encoding']).toBeUndefined();
    expect(res.headers.upgrade).toBeUndefined();
    expect(res.body).toBe('upgrade required');
  });
});

describe('bytes the client sends before the 101', () => {
  it('reach the app only after it switched protocols', async () => {
    let release: () => void = () => {};
    const released = new Promise<void>((r) => (release = r));
    let upgraded: () => void = () => {};
    const upgradeSeen = new Promise<void>((r) => (upgraded = r));
    const seen = { headBytes: -1, beforeSwitch: '', afterSwitch: '' };
    let allArrived: () => void = () => {};
    const bytesArrived = new Promise<void>((r) => (allArrived = r));
    const upstream = await app((_req, res) => res.end('pong'));
    upstream.server.on('upgrade', (_req: IncomingMessage, socket: Duplex, head: Buffer) => {
      keepForCleanup(socket);
      seen.headBytes = head.length;
      let switched = false;
      socket.on('data', (c: Buffer) => {
        if (!switched) seen.beforeSwitch += c.toString('latin1');
        else {
          seen.afterSwitch += c.toString('latin1');
          if (seen.afterSwitch.includes('LATER-BYTES')) allArrived();
        }
      });
      upgraded();
      void released.then(() => {
        socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
        switched = true;
      });
    });
    const { url } = await startGateway({ upstream: upstream.url, login: LOGIN });
    const client = rawClient(url);
    const switchedHead = readHead(client);

    // Behind the request head in the same write (the gateway's `head`), then once the app has the request.
    client.write(`${upgradeHead('/socket')}EARLY-BYTES`);
    await upgradeSeen;
    client.write('LATER-BYTES');
    // A full round trip through the gateway and the app: had the gateway forwarded these bytes as they
    // came (as it once did), the app would have read them by the time this answers.
    expect(await (await get(`${url}/ping`)).text()).toBe('pong');
    release();

    expect(await switchedHead).toMatch(/^HTTP\/1\.1 101 /);
    await bytesArrived;
    expect(seen.headBytes).toBe(0);
    expect(seen.beforeSwitch).toBe('');
    expect(seen.afterSwitch).toBe('EARLY-BYTESLATER-BYTES');
  });
});

describe('upgrades the gateway refuses', () => {
  it('refuses POST /login with Upgrade: websocket, before the app sees it', async () => {
    const gw = await startGateway();
    const body = 'username=mallory';
    const res = await exchange(
      gw.url,
      upgradeHead(
        '/login',
        `Content-Type: application/x-www-form-urlencoded\r\nContent-Length: ${body.length}\r\n`,
        'POST',
      ) + body,
    );

    expect(res.status).toBe(400);
    expect(JSON.parse(res.body)).toMatchObject({ error: 'SG_ERR_UPGRADE_REFUSED' });
    expect(gw.upstream?.requests).toEqual([]);
  });

  it('refuses an upgrade on a GET login route, counted as a bad request and logged', async () => {
    const gw = await startGateway({
      login: [
        ...TEST_LOGIN_RULES,
        { match: 'GET /sso/callback', token: 'cookie:sid', user: 'header:x-user' },
      ],
    });

    const res = await exchange(gw.url, upgradeHead('/sso/callback?code=abc'));

    expect(res.status).toBe(400);
    expect(JSON.parse(res.body)).toEqual({
      error: 'SG_ERR_UPGRADE_REFUSED',
      message: 'a login route is never upgraded',
    });
    expect(gw.upstream?.requests).toEqual([]);
    expect(await gw.gateway.metrics.registry.getSingleMetricAsString('sessiongate_requests_total')).toContain(
      'outcome="bad_request"} 1',
    );
    expect(gw.logs.lines()).toContainEqual(
      expect.objectContaining({ level: 'warn', code: 'SG_ERR_UPGRADE_REFUSED' }),
    );
  });

  it('refuses Upgrade: h2c, naming it', async () => {
    const gw = await startGateway();
    const res = await exchange(
      gw.url,
      'GET / HTTP/1.1\r\nHost: gateway.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n',
    );

    expect(res.status).toBe(400);
    const body = JSON.parse(res.body) as { error: string; message: string };
    expect(body.error).toBe('SG_ERR_UPGRADE_REFUSED');
    expect(body.message).toContain('h2c');
    expect(gw.upstream?.requests).toEqual([]);
  });

  it.each([
    ['another protocol', upgradeHead('/socket', '', 'GET', 'irc/6.9')],
    ['a method other than GET', upgradeHead('/socket', '', 'PUT')],
    ['a Content-Length body', `${upgradeHead('/socket', 'Content-Length: 5\r\n')}hello`],
    ['a chunked body', `${upgradeHead('/socket', 'Transfer-Encoding: chunked\r\n')}5\r\nhello\r\n0\r\n\r\n`],
  ])('refuses an upgrade with %s', async (_what, request) => {
    const gw = await startGateway();

    const res = await exchange(gw.url, request);

    expect(res.status).toBe(400);
    expect(JSON.parse(res.body)).toMatchObject({ error: 'SG_ERR_UPGRADE_REFUSED' });
    expect(gw.upstream?.requests).toEqual([]);
  });
});

describe('WebSockets through the gateway', () => {
  it('negotiates a subprotocol and carries the first server message and an echo', async () => {
    const upstream = await app((_req, res) => res.end('ok'));
    const wss = new WebSocketServer({ server: upstream.server, handleProtocols: () => 'chat.v2' });
    onTestFinished(() => wss.close());
    wss.on('connection', (ws) => {
      ws.send('welcome');
      ws.on('message', (m: Buffer) => ws.send(`echo:${String(m)}`));
    });
    const { url } = await startGateway({ upstream: upstream.url, login: LOGIN });
    const ws = new WebSocket(`${url.replace('http', 'ws')}/socket`, ['chat.v1', 'chat.v2']);
    onTestFinished(() => ws.terminate());
    const messages: string[] = [];
    const echoed = new Promise<void>((resolve) =>
      ws.on('message', (m: Buffer) => {
        messages.push(String(m));
        if (String(m).startsWith('echo:')) resolve();
      }),
    );

    await once(ws, 'open');
    expect(ws.protocol).toBe('chat.v2');
    ws.send('hello');
    await echoed;
    expect(messages).toEqual(['welcome', 'echo:hello']);
  });

  it('answers 502 JSON on the upgrade socket and closes it when the upstream is down', async () => {
    const upstream = await app((_req, res) => res.end('ok'));
    await upstream.close();
    const { url } = await startGateway({ upstream: upstream.url, login: LOGIN });

    const res = await exchange(url, upgradeHead('/socket'));

    expect(res.status).toBe(502);
    expect(res.headers['content-type']).toBe('application/json');
    expect(JSON.parse(res.body)).toMatchObject({ error: 'SG_ERR_UPSTREAM_CONNECT' });
  });
});

/** A front server handing every upgrade to tunnelUpgrade with `target`, as the gateway does. */
async function tunnelFront(target: UpgradeTarget) {
  const connections: UpgradedConnection[] = [];
  const errors: string[] = [];
  let opened: (c: UpgradedConnection) => void = () => {};
  const firstConnection = new Promise<UpgradedConnection>((r) => (opened = r));
  const front = await app((_req, res) => res.end());
  front.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const conn = tunnelUpgrade(req, socket, head, req.rawHeaders, target, (err) => errors.push(err.message));
    connections.push(conn);
    opened(conn);
  });
  return { url: front.url, connections, errors, firstConnection };
}

/** A TCP server that accepts connections and never says a word. */
async function silentServer(): Promise<number> {
  const sockets: Socket[] = [];
  const server = createServer((s) => sockets.push(s));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  onTestFinished(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return (server.address() as AddressInfo).port;
}

describe('tunnelUpgrade', () => {
  it('answers 502 SG_ERR_UPSTREAM_CONNECT when the connection is not up within connectTimeout', async () => {
    // TCP connects, but the TLS handshake never completes: the connection is not usable in time.
    const port = await silentServer();
    const front = await tunnelFront({ host: '127.0.0.1', port, tls: true, connectTimeout: 150 });

    const res = await exchange(front.url, upgradeHead('/socket'));

    expect(res.status).toBe(502);
    expect(JSON.parse(res.body)).toMatchObject({ error: 'SG_ERR_UPSTREAM_CONNECT' });
    expect(front.errors).toEqual(['upstream connect timeout']);
    await (
      await front.firstConnection
    ).closed;
  });

  it('answers 504 SG_ERR_UPSTREAM_TIMEOUT when the app does not answer within responseTimeout', async () => {
    const port = await silentServer();
    const front = await tunnelFront({
      host: '127.0.0.1',
      port,
      tls: false,
      connectTimeout: 5_000,
      responseTimeout: 150,
    });

    const res = await exchange(front.url, upgradeHead('/socket'));

    expect(res.status).toBe(504);
    expect(JSON.parse(res.body)).toMatchObject({ error: 'SG_ERR_UPSTREAM_TIMEOUT' });
    await (
      await front.firstConnection
    ).closed;
  });

  it('refuses with 401 and the reason when closed before the app answered', async () => {
    const port = await silentServer();
    const front = await tunnelFront({ host: '127.0.0.1', port, tls: false, connectTimeout: 5_000 });
    const client = rawClient(front.url);
    const chunks: Buffer[] = [];
    client.on('data', (c: Buffer) => chunks.push(c));
    const clientClosed = once(client, 'close');
    client.write(upgradeHead('/socket'));

    const conn = await front.firstConnection;
    conn.close('session_superseded');
    await clientClosed;

    const res = parseResponse(Buffer.concat(chunks).toString('latin1'));
    expect(res.status).toBe(401);
    expect(JSON.parse(res.body)).toMatchObject({ error: 'session_superseded' });
    await conn.closed;
  });

  it('resolves closed once a relayed refusal and its upstream are both gone', async () => {
    const upstream = await countingApp((res) => {
      res.writeHead(403, { 'content-type': 'text/plain' });
      res.end('forbidden');
    });
    const front = await tunnelFront({
      host: '127.0.0.1',
      port: Number(new URL(upstream.url).port),
      tls: false,
      connectTimeout: 5_000,
    });

    const res = await exchange(front.url, upgradeHead('/socket'));

    expect(res.status).toBe(403);
    expect(res.body).toBe('forbidden');
    await (
      await front.firstConnection
    ).closed;
    expect(front.errors).toEqual([]);
  });
});
