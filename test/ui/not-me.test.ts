/**
 * The "not me" link over real sockets, on the memory store and on a real Redis: the link comes from the
 * new login's webhook (`notMe`), GET confirms and changes nothing, the POST (CSRF-safe) ends every
 * session of the user once; a used, expired, forged or other user's link gets a page that says so and
 * changes nothing; single use holds across two replicas of one Redis.
 */
import { describe, expect, it } from 'vitest';
import type { WebhookPayload } from '../../src/notify/webhook.js';
import { freePort } from '../support/ports.js';
import { suiteStores } from '../support/stores.js';
import {
  bearer,
  get,
  startGateway,
  testClock,
  UA,
  type TestClock,
  type TestGateway,
  type TestGatewayConfig,
} from '../support/gateway.js';
import { listenApp, readBody } from '../support/upstreams.js';
import { waitUntil } from '../support/wait.js';

const WEBHOOK_SECRET = 'webhook-secret-0123456789abcdef';
const DAY = 86_400_000;

interface Receiver {
  readonly url: string;
  readonly payloads: WebhookPayload[];
}

async function startReceiver(): Promise<Receiver> {
  const payloads: WebhookPayload[] = [];
  const app = await listenApp((req, res) => {
    void readBody(req).then((b) => {
      payloads.push(JSON.parse(b.toString()) as WebhookPayload);
      res.writeHead(200);
      res.end();
    });
  });
  return { url: app.url, payloads };
}

interface Setup {
  readonly gw: TestGateway;
  readonly baseUrl: string;
  readonly receiver: Receiver;
  readonly clock: TestClock;
}

/** A gateway whose `notify.baseUrl` is its own origin, with a webhook receiver of its new logins. */
async function setup(store: StoreConfig, more: TestGatewayConfig = {}, receiver?: Receiver): Promise<Setup> {
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  const r = receiver ?? (await startReceiver());
  const clock = testClock(Date.now());
  const gw = await startGateway(
    {
      listen: `127.0.0.1:${port}`,
      store,
      sessions: { limit: 3 },
      ...more,
      notify: {
        baseUrl,
        webhook: {
          url: `${r.url}/hook`,
          secret: WEBHOOK_SECRET,
          events: ['session.created', 'session.not_me'],
        },
        ...more.notify,
      },
    },
    { now: clock.now },
  );
  await waitUntil('the gateway ready', () => gw.gateway.isReady());
  return { gw, baseUrl, receiver: r, clock };
}

/** A login and the "not me" link its webhook carries. */
async function loginWithLink(s: Setup, user: string, ua: string = UA.chromeWindows) {
  const { token } = await s.gw.loginJson(user, { 'user-agent': ua });
  const me = await get(`${s.gw.url}/api/me`, bearer(token));
  expect(me.status).toBe(200);
  const payload = await waitUntil(`the webhook of ${user}'s login`, () =>
    s.receiver.payloads.find((p) => p.type === 'session.created' && p.user === user),
  );
  s.receiver.payloads.splice(s.receiver.payloads.indexOf(payload), 1);
  expect(payload.notMe).toBeDefined();
  return { token, payload, link: payload.notMe!.url };
}

async function status(s: Setup, token: string): Promise<number> {
  return (await get(`${s.gw.url}/api/me`, bearer(token))).status;
}

/** The page's code (`data-code`) and CSRF token. */
async function page(
  res: Response,
): Promise<{ code: string | undefined; csrf: string | undefined; html: string }> {
  const html = await res.text();
  return {
    html,
    code: /data-code="([^"]+)"/.exec(html)?.[1],
    csrf: /name="csrf" value="([^"]+)"/.exec(html)?.[1],
  };
}

function confirm(link: string, csrf: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(link, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      'sec-fetch-site': 'same-origin',
      ...headers,
    },
    body: new URLSearchParams({ csrf }).toString(),
    redirect: 'manual',
  });
}

type StoreConfig = TestGatewayConfig['store'];
/** Memory, and Redis when installed (each gateway its own key prefix: users of one test are not another's). */
const stores = suiteStores();

describe.each(stores.cases)('the "not me" link ($name store)', ({ store: storeOf }) => {
  it("comes in the new login's webhook, on the configured origin, expiring after notify.notMe.ttl", async () => {
    const s = await setup(storeOf());
    const { payload, link } = await loginWithLink(s, 'alice');
    expect(link.startsWith(`${s.baseUrl}/.sessiongate/not-me/v1.`)).toBe(true);
    expect(Date.parse(payload.notMe!.expiresAt)).toBe(s.clock.now() + DAY);
  });

  it('GET shows a confirmation page and ends nothing, however often it is fetched', async () => {
    const s = await setup(storeOf());
    const first = await loginWithLink(s, 'alice', UA.firefoxLinux);
    const second = await loginWithLink(s, 'alice', UA.chromeWindows);
    for (let i = 0; i < 3; i++) {
      const res = await fetch(second.link);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-security-policy')).toMatch(/form-action 'self'/);
      const p = await page(res);
      expect(p.csrf).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(p.html).toContain('<strong id="user">alice</strong>');
      expect(p.html).toContain('<strong class="device">Chrome on Windows</strong>');
    }
    expect(await status(s, first.token)).toBe(200);
    expect(await status(s, second.token)).toBe(200);
    expect(s.gw.logs.audit('session.not_me')).toHaveLength(0);
  });

  it('POST ends every session of the user, the new one included, once: audit, webhook, Clear-Site-Data', async () => {
    const s = await setup(storeOf());
    const first = await loginWithLink(s, 'alice', UA.firefoxLinux);
    const second = await loginWithLink(s, 'alice', UA.chromeWindows);
    const bob = await loginWithLink(s, 'bob');
    const { csrf } = await page(await fetch(second.link));

    const res = await confirm(second.link, csrf!, bearer(first.token));
    expect(res.status).toBe(200);
    expect(res.headers.get('clear-site-data')).toBe('"cookies", "storage"');
    const done = await page(res);
    expect(done.code).toBe('signed_out_everywhere');
    expect(done.html).toContain('2 sessions ended');
    expect(await status(s, first.token)).toBe(401);
    expect(await status(s, second.token)).toBe(401);
    expect(await status(s, bob.token)).toBe(200);

    const audit = s.gw.logs.audit('session.not_me');
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ user: 'alice', sessionId: second.payload.sessionId, reason: 'not-me' });
    const hook = await waitUntil('the not_me webhook', () =>
      s.receiver.payloads.find((p) => p.type === 'session.not_me'),
    );
    expect(hook).toMatchObject({ user: 'alice', sessionId: second.payload.sessionId, reason: 'not-me' });
    // Not a new login: no link of its own.
    expect(hook.notMe).toBeUndefined();

    // Used: the page says so, and a POST with the same token changes nothing (a new login stays live).
    const later = await loginWithLink(s, 'alice');
    const again = await fetch(second.link);
    expect(again.status).toBe(410);
    expect((await page(again)).code).toBe('SG_ERR_NOT_ME_USED');
    const replay = await confirm(second.link, csrf!);
    expect(replay.status).toBe(410);
    expect((await page(replay)).code).toBe('SG_ERR_NOT_ME_USED');
    expect(await status(s, later.token)).toBe(200);
    expect(s.gw.logs.audit('session.not_me')).toHaveLength(1);
  });

  it('an expired link gets a page that says so and changes nothing (injected clock)', async () => {
    const s = await setup(storeOf(), { notify: { notMe: { ttl: '10m' } } });
    const { token, link } = await loginWithLink(s, 'carol');
    const { csrf } = await page(await fetch(link));
    s.clock.advance(10 * 60_000);
    const res = await fetch(link);
    expect(res.status).toBe(410);
    expect((await page(res)).code).toBe('SG_ERR_NOT_ME_EXPIRED');
    const post = await confirm(link, csrf!);
    expect(post.status).toBe(410);
    expect((await page(post)).code).toBe('SG_ERR_NOT_ME_EXPIRED');
    expect(await status(s, token)).toBe(200);
  });

  it('a forged link (changed user, changed signature, another key) gets a page that says so and changes nothing', async () => {
    const s = await setup(storeOf());
    const { token, link } = await loginWithLink(s, 'dave');
    const [head, payload, mac] = link.split('/').at(-1)!.split('.') as [string, string, string];
    const [, sessionId, expiresAt] = JSON.parse(Buffer.from(payload, 'base64url').toString()) as unknown[];
    const otherUser = Buffer.from(JSON.stringify(['erin', sessionId, expiresAt])).toString('base64url');
    const base = `${s.baseUrl}/.sessiongate/not-me/`;
    const flipped = mac.slice(0, -2) + (mac.endsWith('AA') ? 'BB' : 'AA');
    for (const forged of [
      `${base}${head}.${otherUser}.${mac}`,
      `${base}${head}.${payload}.${flipped}`,
      `${base}${head}.${payload}`,
      `${base}v2.${payload}.${mac}`,
      `${base}${'x'.repeat(5000)}`,
    ]) {
      const res = await fetch(forged);
      expect(res.status, forged.slice(0, 80)).toBe(404);
      expect((await page(res)).code).toBe('SG_ERR_NOT_ME_FORGED');
      const post = await confirm(forged, 'x');
      expect(post.status).toBe(404);
    }
    // A link another deployment (another secret) issued is forged here too.
    const other = await setup(storeOf(), { secret: 'another-deployment-secret-0123456789' });
    const theirs = await loginWithLink(other, 'dave');
    const tail = theirs.link.split('/').at(-1)!;
    expect((await fetch(`${base}${tail}`)).status).toBe(404);
    expect(await status(s, token)).toBe(200);
    expect(s.gw.logs.audit('session.not_me')).toHaveLength(0);
  }, 20_000);

  it("another user's browser gets a page that says so and changes nothing", async () => {
    const s = await setup(storeOf());
    const frank = await loginWithLink(s, 'frank');
    const grace = await loginWithLink(s, 'grace');
    const res = await fetch(frank.link, { headers: bearer(grace.token) });
    expect(res.status).toBe(403);
    expect((await page(res)).code).toBe('SG_ERR_NOT_ME_OTHER_USER');
    const { csrf } = await page(await fetch(frank.link));
    const post = await confirm(frank.link, csrf!, bearer(grace.token));
    expect(post.status).toBe(403);
    expect((await page(post)).code).toBe('SG_ERR_NOT_ME_OTHER_USER');
    expect(await status(s, frank.token)).toBe(200);
    expect(await status(s, grace.token)).toBe(200);
    // Signed out (or as frank himself), the link still works.
    expect((await confirm(frank.link, csrf!, bearer(frank.token))).status).toBe(200);
    expect(await status(s, frank.token)).toBe(401);
  });

  it("refuses a cross-site POST and one without the link's CSRF token, changing nothing", async () => {
    const s = await setup(storeOf());
    const { token, link } = await loginWithLink(s, 'heidi');
    const { csrf } = await page(await fetch(link));
    const cross = await confirm(link, csrf!, { 'sec-fetch-site': 'cross-site' });
    expect(cross.status).toBe(403);
    expect((await page(cross)).code).toBe('SG_ERR_CSRF');
    const foreign = await confirm(link, csrf!, { 'sec-fetch-site': 'none', origin: 'https://evil.example' });
    expect(foreign.status).toBe(403);
    const none = await confirm(link, '');
    expect(none.status).toBe(403);
    // Another link's token is not this link's.
    const other = await loginWithLink(s, 'heidi');
    const { csrf: otherCsrf } = await page(await fetch(other.link));
    expect((await confirm(link, otherCsrf!)).status).toBe(403);
    expect(await status(s, token)).toBe(200);
    // The refusals spent nothing: the real confirmation still works.
    expect((await confirm(link, csrf!)).status).toBe(200);
    expect(await status(s, token)).toBe(401);
  });
});

describe('without notify.baseUrl', () => {
  it('issues no links and serves no not-me page', async () => {
    const r = await startReceiver();
    const gw = await startGateway({
      notify: { webhook: { url: `${r.url}/hook`, secret: WEBHOOK_SECRET, events: ['session.created'] } },
    });
    await gw.loginJson('judy');
    const payload = await waitUntil('the webhook', () => r.payloads[0]);
    expect(payload.type).toBe('session.created');
    expect(payload.notMe).toBeUndefined();
    const res = await fetch(`${gw.url}/.sessiongate/not-me/v1.a.b`, {
      headers: { accept: 'application/json' },
    });
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: string }).error).toBe('SG_ERR_NOT_FOUND');
  });
});

describe.skipIf(!stores.haveRedis)('the "not me" link on two replicas of one Redis', () => {
  it('works once across replicas: used on one, refused on the other', async () => {
    const store = stores.redisStore();
    const a = await setup(store);
    const b = await setup(store, {}, a.receiver);
    const { token, link } = await loginWithLink(a, 'ivan');
    const { csrf } = await page(await fetch(link));
    const onB = link.replace(a.baseUrl, b.baseUrl);
    const [x, y] = await Promise.all([confirm(link, csrf!), confirm(onB, csrf!)]);
    expect([x.status, y.status].sort()).toEqual([200, 410]);
    expect(await status(a, token)).toBe(401);
    expect(a.gw.logs.audit('session.not_me').length + b.gw.logs.audit('session.not_me').length).toBe(1);
  });
});
