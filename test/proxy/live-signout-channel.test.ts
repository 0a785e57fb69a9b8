/**
 * `ui.liveSignOut` streams when the invalidation channel loses a message: replica A's subscriber goes
 * half-open (through a fault proxy), the user signs in again through replica B, and A never hears of
 * it; once A's PING deadline notices the loss and the channel is back, A re-checks the sessions of its
 * open streams and ends the one that was superseded. Plus the heartbeat comments of an idle stream.
 */
import { createServer, request as httpRequest, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { request } from 'undici';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createLogger } from '../../src/observability/logger.js';
import { createLiveSignOut } from '../../src/ui/live-signout.js';
import { startFaultProxy } from '../support/fault-proxy.js';
import { startGateway, type TestGateway } from '../support/gateway.js';
import { haveRedis, startRedis } from '../support/redis.js';
import { needTool } from '../support/tools.js';
import { waitUntil } from '../support/wait.js';

const redisServer = needTool('redis-server', 'redis-server', haveRedis());

async function login(gw: TestGateway, user: string): Promise<string> {
  const { token, response } = await gw.loginJson(user);
  expect(response.status).toBe(200);
  return token;
}

/** An open event stream (a bearer token, as a non-browser client sends it); its text as it arrives. */
async function openStream(url: string, token: string) {
  const res = await request(url, {
    headers: { accept: 'text/event-stream', authorization: `Bearer ${token}` },
  });
  let text = '';
  res.body.on('data', (c: Buffer) => (text += c.toString()));
  const ended = once(res.body, 'end').then(() => text);
  await once(res.body, 'data');
  return { ended };
}

describe.skipIf(!redisServer)('a live sign-out stream and a lost invalidation', () => {
  it('is ended after the channel comes back, when its session ended while the message was lost', async () => {
    const redis = await startRedis();
    onTestFinished(() => redis.stop());
    const proxy = await startFaultProxy(redis.port);
    onTestFinished(() => proxy.close());
    const keyPrefix = `lsch${randomBytes(3).toString('hex')}:`;
    const config = {
      ui: { liveSignOut: true },
      // An hour of staleness: only the channel's restoration can tell A.
      cache: { maxStaleness: '1h' },
    };
    const a = await startGateway({ ...config, store: { url: proxy.url, keyPrefix, pingInterval: '200ms' } });
    const b = await startGateway({ ...config, store: { url: redis.url, keyPrefix, pingInterval: '200ms' } });
    await waitUntil('both replicas ready', () => a.gateway.isReady() && b.gateway.isReady());

    const old = await login(a, 'hana');
    const stream = await openStream(`${a.url}/.sessiongate/live`, old);
    const subscriber = await proxy.connection((c) => c.sent().toLowerCase().includes('subscribe'));
    const restored = new Promise<void>((resolve) => a.gateway.sessions.onChannelRestored(resolve));
    subscriber.halfOpen();
    await login(b, 'hana'); // supersedes `old`; the message to A is dropped
    await restored;
    expect(await stream.ended).toContain(
      `event: ended\ndata: ${JSON.stringify({ reason: 'session_superseded', location: '/.sessiongate/signed-out?reason=session_superseded' })}\n\n`,
    );
    expect(a.gateway.proxy.connections.size).toBe(0);
  });
});

describe('an idle live sign-out stream', () => {
  it('gets a heartbeat comment every interval, one timer for all streams', async () => {
    const live = createLiveSignOut({
      // A session that stays live: only heartbeats can arrive.
      sessions: { check: () => ({ state: 'live', session: undefined, lastSeenAt: 0 }) },
      prefix: '/.sessiongate/',
      streams: { add: () => () => undefined },
      unknownTokens: 'pass',
      redirect: undefined,
      renderPage: () => '',
      heartbeat: 30,
      logger: createLogger({ level: 'silent', pretty: false }),
    });
    const server = createServer((req, res) =>
      live.handle({ req, res, path: '/.sessiongate/live', tokenId: 'token-id' }, () => undefined),
    );
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    onTestFinished(async () => {
      live.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    });
    const { port } = server.address() as AddressInfo;
    const texts = await Promise.all(
      [0, 1].map(
        () =>
          new Promise<string>((resolve) => {
            httpRequest({ port, host: '127.0.0.1', path: '/.sessiongate/live' }, (res: IncomingMessage) => {
              let text = '';
              res.on('data', (c: Buffer) => {
                text += c.toString();
                // The opening, then two heartbeats.
                if (text.split(':\n\n').length - 1 >= 3) resolve(text);
              });
            }).end();
          }),
      ),
    );
    for (const t of texts) expect(t).toMatch(/^retry: 3000\n:\n\n(:\n\n){2,}$/);
    expect(live.open).toBe(2);
    live.close();
    expect(live.open).toBe(0);
  });
});
