/**
 * The hold of `onLimit: ask` on its own (src/proxy/held-logins.ts), over a real SessionService and the
 * memory store: its bounds in count and bytes, and a released response written exactly as held, over a
 * real socket.
 */
import { Registry } from 'prom-client';
import { describe, expect, it, onTestFinished } from 'vitest';
import { DecisionCache } from '../../src/cache/decision-cache.js';
import { Metrics } from '../../src/observability/metrics.js';
import { HeldLogins } from '../../src/proxy/held-logins.js';
import { SessionService, type LoginInput } from '../../src/sessions/service.js';
import { MemorySessionStore } from '../../src/store/memory.js';
import { captureLogs } from '../support/gateway.js';
import { listenApp } from '../support/upstreams.js';

function setup(bounds: { maxHolds?: number; maxBytes?: number } = {}) {
  const store = new MemorySessionStore();
  const sessions = new SessionService({
    store,
    cache: new DecisionCache({ max: 1000, maxStaleness: 1000 }),
    config: {
      limit: 1,
      onLimit: 'ask',
      idleTimeout: 1_800_000,
      maxAge: 43_200_000,
      maxTokensPerSession: 8,
      activityInterval: 30_000,
      consistency: 'cached',
    },
  });
  const registry = new Registry();
  const metrics = new Metrics({ registry, defaultMetrics: false });
  const { logger, logs } = captureLogs();
  const holds = new HeldLogins({
    sessions,
    timeout: 60_000,
    now: Date.now,
    metrics,
    logger,
    loginHeader: true,
    ...bounds,
  });
  onTestFinished(async () => {
    holds.close();
    await sessions.close();
  });
  const count = async (outcome: string) =>
    (await registry.getSingleMetric('sessiongate_held_logins_total')?.get())?.values.find(
      (v) => v.labels.outcome === outcome,
    )?.value ?? 0;
  return { sessions, holds, logs, count };
}

const login = (user: string, token: string): LoginInput => ({
  user,
  tokenIds: [token],
  ip: '127.0.0.1',
  userAgent: 'test',
});
const CLIENT = { ip: '127.0.0.1', userAgent: 'test' };
const HEAD = { status: 200, statusText: 'OK', headers: ['content-type', 'application/json'] };

describe('held logins', () => {
  it('refuses a hold past the count bound, and takes one again once a hold is gone', async () => {
    const { holds, count } = setup({ maxHolds: 2 });
    const a = holds.hold(login('a', 't1'), HEAD, Buffer.from('{}'), []);
    const b = holds.hold(login('b', 't2'), HEAD, Buffer.from('{}'), []);
    expect(a).toBeDefined();
    expect(b).toBeDefined();
    expect(holds.hold(login('c', 't3'), HEAD, Buffer.from('{}'), [])).toBeUndefined();
    expect(await count('full')).toBe(1);
    expect(holds.cancel(a?.id as string, CLIENT)).toBe(true);
    expect(holds.hold(login('c', 't3'), HEAD, Buffer.from('{}'), [])).toBeDefined();
    expect(holds.size).toBe(2);
  });

  it('refuses a hold past the byte bound (bodies and headers), and frees the bytes of a cancelled one', async () => {
    const { holds, count } = setup({ maxBytes: 3000 });
    const big = Buffer.alloc(2000, 'x');
    const first = holds.hold(login('a', 't1'), HEAD, big, []);
    expect(first).toBeDefined();
    expect(holds.hold(login('b', 't2'), HEAD, big, [])).toBeUndefined();
    expect(await count('full')).toBe(1);
    holds.cancel(first?.id as string, CLIENT);
    expect(holds.hold(login('b', 't2'), HEAD, big, [])).toBeDefined();
  });

  it('writes the held response exactly as the app sent it: status, every header, repeated Set-Cookie, body', async () => {
    const { sessions, holds } = setup();
    const first = await sessions.login(login('alice', 'old'));
    expect(first.kind).toBe('created');
    const input = login('alice', 'new');
    const asked = await sessions.login(input);
    expect(asked.kind).toBe('choose');
    const head = {
      status: 302,
      statusText: 'Found',
      headers: [
        'Location',
        '/home?x=1',
        'Set-Cookie',
        'sid=new; Path=/',
        'Set-Cookie',
        'csrf=z; Path=/',
        'X-App',
        'kept',
      ],
    };
    const held = holds.hold(input, head, Buffer.from('moved'), [
      first.kind === 'created' ? first.session.id : '',
    ]);
    const endId = first.kind === 'created' ? first.session.id : '';
    const app = await listenApp((_req, res) => {
      void holds.choose(held?.id as string, endId, res, CLIENT).then((result) => {
        if (result !== 'released') res.writeHead(410).end(result);
      });
    });
    onTestFinished(() => app.close());
    const res = await fetch(app.url, { redirect: 'manual' });
    expect(res.status).toBe(302);
    expect(res.headers.get('location')).toBe('/home?x=1');
    expect(res.headers.getSetCookie()).toEqual(['sid=new; Path=/', 'csrf=z; Path=/']);
    expect(res.headers.get('x-app')).toBe('kept');
    expect(res.headers.get('sessiongate-ended-sessions')).toBe('1');
    await expect(res.text()).resolves.toBe('moved');
    expect((await sessions.listSessions('alice')).map((s) => s.tokenIds)).toEqual([['new']]);
    // Taken once: a second choice finds nothing.
    const again = await fetch(app.url, { redirect: 'manual' });
    expect(again.status).toBe(410);
    await expect(again.text()).resolves.toBe('gone');
  });
});
