/**
 * `cookies.harden` on the answer to a WebSocket handshake: the app's Set-Cookie on its 101 (and on a
 * refusal of the upgrade) reaches the client hardened like any other response's, read off the socket.
 */
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway } from '../support/gateway.js';

/** An app answering a WebSocket handshake 101 on /ws (403 on /refused), each with a token Set-Cookie. */
async function upgradeApp(): Promise<{ url: string; server: Server; close: () => Promise<void> }> {
  const server = createServer((_req, res) => res.end('plain'));
  const sockets = new Set<Duplex>();
  server.on('upgrade', (req, socket: Duplex) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    if (req.url === '/refused') {
      socket.end(
        'HTTP/1.1 403 Forbidden\r\nSet-Cookie: sid=refused; Path=/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n',
      );
      return;
    }
    const accept = createHash('sha1')
      .update(`${String(req.headers['sec-websocket-key'])}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`)
      .digest('base64');
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\nSet-Cookie: sid=ws-1; Path=/\r\n\r\n`,
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    server,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** Sends a WebSocket handshake; resolves with the Set-Cookie lines of the answer's head. */
async function handshake(base: string, path: string): Promise<{ status: number; setCookies: string[] }> {
  const { hostname, port } = new URL(base);
  const socket = connect(Number(port), hostname);
  socket.write(
    `GET ${path} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
  );
  let text = '';
  for await (const chunk of socket) {
    text += (chunk as Buffer).toString('latin1');
    if (text.includes('\r\n\r\n')) break;
  }
  socket.destroy();
  const [statusLine, ...rest] = text.slice(0, text.indexOf('\r\n\r\n')).split('\r\n');
  return {
    status: Number((statusLine ?? '').split(' ')[1]),
    setCookies: rest.filter((l) => /^set-cookie:/i.test(l)).map((l) => l.slice(l.indexOf(':') + 2)),
  };
}

describe('cookies.harden on upgrades', () => {
  let app: Awaited<ReturnType<typeof upgradeApp>>;
  beforeAll(async () => void (app = await upgradeApp()));
  afterAll(() => app.close());

  const gateway = (harden: boolean) =>
    startGateway({
      upstream: app.url,
      login: [{ match: 'POST /login', token: 'cookie:sid', user: 'request.form:username' }],
      tokens: ['cookie:sid'],
      ...(harden && { cookies: { harden: {} } }),
    });

  it("hardens the token cookie of the app's 101", async () => {
    const answer = await handshake((await gateway(true)).url, '/ws');
    expect(answer.status).toBe(101);
    expect(answer.setCookies).toEqual(['sid=ws-1; Path=/; HttpOnly; SameSite=Lax']);
  });

  it("hardens the token cookie of the app's refusal of an upgrade", async () => {
    const answer = await handshake((await gateway(true)).url, '/refused');
    expect(answer.status).toBe(403);
    expect(answer.setCookies).toEqual(['sid=refused; Path=/; HttpOnly; SameSite=Lax']);
  });

  it('passes the 101 cookie as the app set it without cookies.harden', async () => {
    const answer = await handshake((await gateway(false)).url, '/ws');
    expect(answer.status).toBe(101);
    expect(answer.setCookies).toEqual(['sid=ws-1; Path=/']);
  });
});
