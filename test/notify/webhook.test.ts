/** Webhook delivery to a real receiver: signed, retried after a failure, and the login notice header. */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { describe, expect, it, onTestFinished } from 'vitest';
import { startGateway, UA } from '../support/gateway.js';
import { waitUntil } from '../support/wait.js';
import { listenApp, readBody } from '../support/upstreams.js';

const WEBHOOK_SECRET = 'webhook-secret-0123456789abcdef';

interface Received {
  /** The request target as it arrived (path and query). */
  readonly target: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  readonly status: number;
}

/**
 * A real receiver at `target` (path and query of its URL); `statuses` are answered in order (then 200).
 * Answers wait while `held`.
 */
async function startReceiver(
  statuses: number[] = [],
  target = '/hooks/sessiongate',
): Promise<{ url: string; received: Received[]; arrived: () => number; hold(): void; release(): void }> {
  const received: Received[] = [];
  let arrived = 0;
  let gate: Promise<void> = Promise.resolve();
  let open: () => void = () => {};
  const app = await listenApp((req, res) => {
    arrived++;
    void readBody(req)
      .then(async (b) => {
        await gate;
        return b;
      })
      .then((b) => {
        const status = statuses.shift() ?? 200;
        received.push({ target: req.url ?? '', headers: req.headers, body: b.toString(), status });
        res.writeHead(status, { 'content-type': 'text/plain' });
        res.end(status === 200 ? 'ok' : 'try again');
      });
  });
  onTestFinished(() => {
    open();
    return app.close();
  });
  return {
    url: `${app.url}${target}`,
    received,
    arrived: () => arrived,
    hold() {
      gate = new Promise<void>((r) => (open = r));
    },
    release: () => open(),
  };
}

/** What a receiver should do: check the timestamp window and the HMAC of "<t>.<raw body>" in constant time. */
function verifySignature(
  header: string | undefined,
  body: string,
  secret: string,
  toleranceSeconds = 300,
): boolean {
  const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header ?? '');
  if (!m) return false;
  const t = Number(m[1]);
  if (Math.abs(Date.now() / 1000 - t) > toleranceSeconds) return false;
  const expected = createHmac('sha256', secret).update(`${t}.${body}`).digest();
  const got = Buffer.from(m[2] as string, 'hex');
  return got.length === expected.length && timingSafeEqual(got, expected);
}

describe('webhook notifications', () => {
  it('delivers session.created and session.superseded, signed; a 500 is retried', async () => {
    const receiver = await startReceiver([500]);
    const gw = await startGateway({
      notify: { webhook: { url: receiver.url, secret: WEBHOOK_SECRET, attempts: 3 } },
    });
    const first = await gw.loginJson('frank', { 'user-agent': UA.chromeWindows });
    const second = await gw.loginJson('frank', { 'user-agent': UA.safariIphone });
    // The new-login notice on the login response (notify.loginHeader, on by default).
    expect(first.response.headers.get('sessiongate-ended-sessions')).toBe('0');
    expect(second.response.headers.get('sessiongate-ended-sessions')).toBe('1');

    // created (500, then retried), then the second login's superseded and created, one at a time.
    const delivered = await waitUntil('three deliveries answered 200', () => {
      const ok = receiver.received.filter((r) => r.status === 200);
      return ok.length >= 3 ? ok : undefined;
    });
    expect(receiver.received[0]?.status).toBe(500);
    // The retry is the same delivery (same id and body), signed again.
    expect(receiver.received[1]?.headers['x-sessiongate-delivery']).toBe(
      receiver.received[0]?.headers['x-sessiongate-delivery'],
    );
    expect(receiver.received[1]?.body).toBe(receiver.received[0]?.body);

    for (const r of receiver.received) {
      expect(r.headers['content-type']).toBe('application/json');
      expect(verifySignature(r.headers['x-sessiongate-signature'] as string, r.body, WEBHOOK_SECRET)).toBe(
        true,
      );
      // A tampered body or another secret does not verify.
      expect(
        verifySignature(r.headers['x-sessiongate-signature'] as string, `${r.body} `, WEBHOOK_SECRET),
      ).toBe(false);
      expect(
        verifySignature(r.headers['x-sessiongate-signature'] as string, r.body, 'another-secret-0123456789'),
      ).toBe(false);
      expect(r.body).not.toContain(first.token);
      expect(r.body).not.toContain(second.token);
    }
    const events = delivered.map((r) => JSON.parse(r.body) as Record<string, unknown>);
    expect(events.map((e) => e.type).sort()).toEqual([
      'session.created',
      'session.created',
      'session.superseded',
    ]);
    expect(delivered.map((r) => r.headers['x-sessiongate-event'])).toEqual(events.map((e) => e.type));
    const [created1, created2] = events.filter((e) => e.type === 'session.created');
    const superseded = events.find((e) => e.type === 'session.superseded');
    expect(created1).toMatchObject({
      user: 'frank',
      ip: '127.0.0.1',
      device: 'Chrome on Windows',
      text: 'New login from Chrome on Windows',
    });
    expect(created2).toMatchObject({ device: 'Mobile Safari on iOS' });
    expect(created2?.text).toContain('1 other session(s) ended');
    expect(superseded).toMatchObject({
      user: 'frank',
      sessionId: created1?.sessionId,
      device: 'Chrome on Windows',
      reason: 'superseded',
      by: { sessionId: created2?.sessionId, device: 'Mobile Safari on iOS', ip: '127.0.0.1' },
    });
    expect(superseded?.text).toBe(
      'Session on Chrome on Windows was ended by a new login from Mobile Safari on iOS',
    );
    expect(Date.parse(String(superseded?.time))).toBeGreaterThan(Date.now() - 60_000);

    const metrics = await (await gw.admin('/metrics')).text();
    expect(metrics).toContain('sessiongate_webhook_deliveries_total{result="retried"} 1');
    expect(metrics).toContain('sessiongate_webhook_deliveries_total{result="delivered"} 3');
    // Delivery failures are logged with a code.
    expect(gw.logs.lines().some((l) => l.code === 'SG_ERR_WEBHOOK_STATUS' && l.status === 500)).toBe(true);
  });

  it('gives up after the configured attempts, counts it, and never holds up the login', async () => {
    const receiver = await startReceiver([503, 503, 503, 503]);
    const gw = await startGateway({
      notify: { webhook: { url: receiver.url, secret: WEBHOOK_SECRET, attempts: 2 } },
    });
    receiver.hold();
    const login = await gw.loginJson('gina');
    expect(login.response.status).toBe(200);
    // The login was answered while its delivery is still waiting on the (held) receiver.
    await waitUntil('the first delivery to arrive', () => (receiver.arrived() === 1 ? true : undefined));
    expect(receiver.received).toHaveLength(0);
    receiver.release();
    await waitUntil('the webhook to give up', () =>
      gw.logs.lines().some((l) => l.code === 'SG_ERR_WEBHOOK_GAVE_UP') ? true : undefined,
    );
    expect(receiver.received).toHaveLength(2);
    const metrics = await (await gw.admin('/metrics')).text();
    expect(metrics).toContain('sessiongate_webhook_deliveries_total{result="failed"} 1');
  });

  it('keeps at most maxQueue deliveries while the receiver is stuck, dropping the oldest and counting it', async () => {
    const receiver = await startReceiver();
    const gw = await startGateway({
      notify: {
        webhook: { url: receiver.url, secret: WEBHOOK_SECRET, maxQueue: 2, events: ['session.created'] },
      },
    });
    receiver.hold();
    for (const user of ['q1', 'q2', 'q3', 'q4', 'q5'])
      expect((await gw.loginJson(user)).response.status).toBe(200);
    const metrics = await (await gw.admin('/metrics')).text();
    // One delivery in flight (q1) plus two waiting: q2 and q3 were dropped for q4 and q5.
    expect(metrics).toContain('sessiongate_webhook_queue 3');
    expect(metrics).toContain('sessiongate_webhook_deliveries_total{result="dropped"} 2');
    receiver.release();
    await waitUntil('three deliveries', () => (receiver.received.length === 3 ? true : undefined));
    const users = receiver.received.map((r) => (JSON.parse(r.body) as { user: string }).user);
    expect(users).toEqual(['q1', 'q4', 'q5']);
  });

  it('sends only the configured events', async () => {
    const receiver = await startReceiver();
    const gw = await startGateway({
      notify: { webhook: { url: receiver.url, secret: WEBHOOK_SECRET, events: ['session.superseded'] } },
    });
    await gw.loginJson('hank');
    await gw.loginJson('hank');
    await gw.loginJson('hank');
    // Deliveries go out one at a time in event order, so once the second superseded has arrived, any
    // session.created sent before it would have arrived too.
    const got = await waitUntil('two deliveries', () =>
      receiver.received.length >= 2 ? receiver.received : undefined,
    );
    expect(got.map((r) => (JSON.parse(r.body) as { type: string }).type)).toEqual([
      'session.superseded',
      'session.superseded',
    ]);
  });

  it('posts to the configured path and query, not only to the origin', async () => {
    const receiver = await startReceiver([], '/hooks/sg?tenant=a');
    const gw = await startGateway({
      notify: { webhook: { url: receiver.url, secret: WEBHOOK_SECRET, events: ['session.created'] } },
    });
    await gw.loginJson('jill');
    const [delivery] = await waitUntil('a delivery', () =>
      receiver.received.length >= 1 ? receiver.received : undefined,
    );
    expect(delivery?.target).toBe('/hooks/sg?tenant=a');
    expect(JSON.parse(delivery?.body ?? '{}')).toMatchObject({ type: 'session.created', user: 'jill' });
  });

  it('sends the credentials of a user:password@ URL as HTTP Basic auth', async () => {
    const receiver = await startReceiver();
    const url = new URL(receiver.url);
    url.username = 'hook';
    url.password = 'p@ss:word';
    const gw = await startGateway({
      notify: { webhook: { url: url.href, secret: WEBHOOK_SECRET, events: ['session.created'] } },
    });
    await gw.loginJson('kate');
    const [delivery] = await waitUntil('a delivery', () =>
      receiver.received.length >= 1 ? receiver.received : undefined,
    );
    expect(delivery?.headers.authorization).toBe(`Basic ${Buffer.from('hook:p@ss:word').toString('base64')}`);
    expect(delivery?.target).toBe('/hooks/sessiongate');
  });

  it('omits the login notice header when notify.loginHeader is false', async () => {
    const gw = await startGateway({ notify: { loginHeader: false } });
    await gw.loginJson('ivan');
    const second = await gw.loginJson('ivan');
    expect(second.response.headers.get('sessiongate-ended-sessions')).toBeNull();
  });
});
