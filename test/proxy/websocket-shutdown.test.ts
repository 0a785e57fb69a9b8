/**
 * A shutdown with WebSockets open: they never finish on their own, so the gateway tells each client
 * "going away" (close code 1001) and its close completes, with or without a session on the socket.
 */
import { once } from 'node:events';
import { describe, expect, it, onTestFinished } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { bearer, startGateway } from '../support/gateway.js';
import { listenApp } from '../support/upstreams.js';

async function echoApp() {
  const upstream = await listenApp((req, res) => {
    if (req.url === '/api/login') {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ accessToken: `tok-${Math.random()}`, user: { id: 'wendy' } }));
      return;
    }
    res.end('ok');
  });
  const wss = new WebSocketServer({ server: upstream.server });
  wss.on('connection', (ws) => ws.on('message', (m: Buffer) => ws.send(`echo:${String(m)}`)));
  onTestFinished(() => wss.close());
  return upstream;
}

/** A WebSocket through the gateway, open and echoing. */
async function openSocket(url: string, headers: Record<string, string> = {}): Promise<WebSocket> {
  const ws = new WebSocket(`${url.replace('http', 'ws')}/socket`, { headers });
  onTestFinished(() => ws.terminate());
  await once(ws, 'open');
  const echoed = once(ws, 'message');
  ws.send('ping');
  expect(String((await echoed)[0])).toBe('echo:ping');
  return ws;
}

describe('a shutdown with WebSockets open', () => {
  it('closes each with 1001 (going away) and completes', async () => {
    const upstream = await echoApp();
    const gw = await startGateway({
      upstream: upstream.url,
      login: [{ match: 'POST /api/login', token: 'json:accessToken', user: 'json:user.id' }],
      tokens: ['bearer'],
    });
    const { token } = await gw.loginJson('wendy');
    const withSession = await openSocket(gw.url, bearer(token));
    const anonymous = await openSocket(gw.url);
    const closes = [withSession, anonymous].map((ws) => once(ws, 'close'));

    await gw.close();

    const codes = (await Promise.all(closes)).map(([code]) => code as number);
    expect(codes).toEqual([1001, 1001]);
  });
});
