/**
 * `onLimit: ask` for API clients, through real sockets, the test app and both stores: the 409 with the
 * sessions and the choice URL, `{"end": id}` answered with the held login response, cancel, timeout
 * (injected clock, and a short askTimeout waited on by its log event), a second choice, a session that is
 * not the user's, the CSRF checks, the per-user bound, and on Redis two replicas (the hold lives on the
 * replica that held it).
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { ConfigInput } from '../../src/config/schema.js';
import {
  bearer,
  get,
  postForm,
  postJson,
  startGateway,
  testClock,
  UA,
  type TestGateway,
} from '../support/gateway.js';
import { waitUntil } from '../support/wait.js';
import { suiteStores } from '../support/stores.js';
import { startFaultProxy } from '../support/fault-proxy.js';
import { MAX_HELD_LOGINS, MAX_HELD_PER_USER } from '../../src/proxy/held-logins.js';

const stores = suiteStores();

interface Listed {
  id: string;
  device: string;
  ip: string;
  userAgent: string;
  createdAt: string;
  lastSeenAt: string;
}
interface AskBody {
  error: string;
  message: string;
  sessions: Listed[];
  choose: string;
  expiresAt: string;
}

const ANDROID =
  'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile Safari/537.36';
/** The User-Agent of the held logins of these tests: a hold answers only its own client. */
const PHONE = { 'user-agent': UA.safariIphone };
const CHOOSE_URL = /^\/\.sessiongate\/choose\/[A-Za-z0-9_-]{32}$/;

async function sessionsOf(gw: TestGateway, user: string): Promise<Listed[]> {
  const res = await gw.admin(`/admin/users/${user}/sessions`);
  return ((await res.json()) as { sessions: Listed[] }).sessions;
}

/** A login over the limit: the 409 and its body. */
async function askedLogin(gw: TestGateway, user: string, ua: string = UA.safariIphone): Promise<AskBody> {
  const res = await postJson(`${gw.url}/api/login`, { username: user }, { 'user-agent': ua });
  expect(res.status).toBe(409);
  expect(res.headers.get('cache-control')).toBe('no-store');
  return (await res.json()) as AskBody;
}

async function heldCount(gw: TestGateway, outcome: string): Promise<number> {
  const text = await (await gw.admin('/metrics')).text();
  const line = text
    .split('\n')
    .find((l) => l.startsWith(`sessiongate_held_logins_total{outcome="${outcome}"}`));
  return line === undefined ? 0 : Number(line.split(' ').pop());
}

const statusOf = async (gw: TestGateway, token: string) => (await get(`${gw.url}/x`, bearer(token))).status;
const errorOf = async (gw: TestGateway, token: string) =>
  ((await (await get(`${gw.url}/x`, bearer(token))).json()) as { error?: string }).error;

describe.each(stores.cases)('onLimit: ask on the $name store', ({ store }) => {
  const gateway = async (sessions: NonNullable<ConfigInput['sessions']> = {}, deps = {}) => {
    const gw = await startGateway(
      { store: store(), sessions: { limit: 1, onLimit: 'ask', ...sessions } },
      deps,
    );
    await waitUntil('the store', () => gw.gateway.isReady());
    return gw;
  };

  it('answers 409 with the live sessions and a choice URL; {"end": id} there answers with the held login, and the ended session is superseded', async () => {
    const gw = await gateway();
    const first = await gw.loginJson('alice', { 'user-agent': UA.chromeWindows });
    expect(first.response.status).toBe(200);
    const [old] = await sessionsOf(gw, 'alice');

    const asked = await askedLogin(gw, 'alice');
    expect(asked.error).toBe('session_limit_reached');
    expect(asked.choose).toMatch(CHOOSE_URL);
    expect(asked.sessions.map((s) => [s.id, s.device, s.ip])).toEqual([
      [old?.id, 'Chrome on Windows', '127.0.0.1'],
    ]);
    // Nothing registered, nothing ended yet.
    expect(await sessionsOf(gw, 'alice')).toHaveLength(1);
    expect(await statusOf(gw, first.token)).toBe(200);

    const chosen = await postJson(`${gw.url}${asked.choose}`, { end: old?.id }, PHONE);
    expect(chosen.status).toBe(200);
    expect(chosen.headers.get('content-type')).toBe('application/json');
    const released = (await chosen.json()) as { accessToken: string; user: { id: string } };
    expect(released.user.id).toBe('alice');
    expect(released.accessToken).toMatch(/^[A-Za-z0-9_-]{32}$/);

    expect(await statusOf(gw, released.accessToken)).toBe(200);
    expect(await errorOf(gw, first.token)).toBe('session_superseded');
    const now = await sessionsOf(gw, 'alice');
    expect(now.map((s) => s.userAgent)).toEqual([UA.safariIphone]);
    const superseded = gw.logs.audit('session.superseded');
    expect(superseded.map((e) => [e.sessionId, e.policy])).toEqual([[old?.id, 'chosen-by-user']]);
    expect(await heldCount(gw, 'held')).toBe(1);
    expect(await heldCount(gw, 'chosen')).toBe(1);

    // The id was for one choice: a second one releases nothing.
    const again = await postJson(`${gw.url}${asked.choose}`, { end: now[0]?.id }, PHONE);
    expect(again.status).toBe(410);
    expect(((await again.json()) as { error: string }).error).toBe('SG_ERR_LOGIN_HOLD_GONE');
    expect(await statusOf(gw, released.accessToken)).toBe(200);
  });

  it('a cancel releases nothing: the held token is never registered and the other session goes on', async () => {
    const gw = await gateway();
    const first = await gw.loginJson('alice', { 'user-agent': UA.chromeWindows });
    const asked = await askedLogin(gw, 'alice');
    const cancelled = await postJson(`${gw.url}${asked.choose}`, { cancel: true }, PHONE);
    expect(cancelled.status).toBe(200);
    const body = await cancelled.text();
    expect(JSON.parse(body)).toEqual({ cancelled: true });
    // The app issued a second token (it does not know the gateway held it); none reached the client.
    const issued = [...(gw.upstream?.sessions.keys() ?? [])];
    expect(issued).toHaveLength(2);
    expect(issued.filter((t) => t !== first.token).some((t) => body.includes(t))).toBe(false);
    expect(await sessionsOf(gw, 'alice')).toHaveLength(1);
    expect(await statusOf(gw, first.token)).toBe(200);
    const late = await postJson(`${gw.url}${asked.choose}`, { end: asked.sessions[0]?.id }, PHONE);
    expect(late.status).toBe(410);
    expect(await statusOf(gw, first.token)).toBe(200);
    expect(await heldCount(gw, 'cancelled')).toBe(1);
  });

  it('past askTimeout (an injected clock) the choice releases nothing and the other session goes on', async () => {
    const clock = testClock();
    const gw = await gateway({ askTimeout: '5m' }, { now: clock.now });
    const first = await gw.loginJson('alice', { 'user-agent': UA.chromeWindows });
    const asked = await askedLogin(gw, 'alice');
    expect(Date.parse(asked.expiresAt)).toBe(clock.now() + 5 * 60_000);
    clock.advance(5 * 60_000);
    const late = await postJson(`${gw.url}${asked.choose}`, { end: asked.sessions[0]?.id }, PHONE);
    expect(late.status).toBe(410);
    expect(await sessionsOf(gw, 'alice')).toHaveLength(1);
    expect(await statusOf(gw, first.token)).toBe(200);
    expect(await heldCount(gw, 'expired')).toBe(1);
  });

  it('a short askTimeout frees the hold when it passes (waited on by its log event)', async () => {
    const gw = await gateway({ askTimeout: '150ms' });
    const first = await gw.loginJson('alice', { 'user-agent': UA.chromeWindows });
    const asked = await askedLogin(gw, 'alice');
    await waitUntil('the hold to expire', () =>
      gw.logs.lines().find((l) => l.event === 'login_hold_ended' && l.outcome === 'expired'),
    );
    const late = await postJson(`${gw.url}${asked.choose}`, { end: asked.sessions[0]?.id }, PHONE);
    expect(late.status).toBe(410);
    expect(await statusOf(gw, first.token)).toBe(200);
    expect(await sessionsOf(gw, 'alice')).toHaveLength(1);
  });

  it("cannot end another user's session: the login is refused, both sessions go on, and the id is spent", async () => {
    const gw = await gateway();
    const bob = await gw.loginJson('bob');
    const [bobs] = await sessionsOf(gw, 'bob');
    const alice = await gw.loginJson('alice', { 'user-agent': UA.chromeWindows });
    const asked = await askedLogin(gw, 'alice');
    const res = await postJson(`${gw.url}${asked.choose}`, { end: bobs?.id }, PHONE);
    expect(res.status).toBe(409);
    expect(((await res.json()) as { error: string }).error).toBe('session_limit_reached');
    expect(await statusOf(gw, bob.token)).toBe(200);
    expect(await statusOf(gw, alice.token)).toBe(200);
    expect(await sessionsOf(gw, 'alice')).toHaveLength(1);
    const again = await postJson(`${gw.url}${asked.choose}`, { end: asked.sessions[0]?.id }, PHONE);
    expect(again.status).toBe(410);
    expect(await statusOf(gw, alice.token)).toBe(200);
  });

  it('refuses a cross-site POST and a form without the hold’s CSRF token, and the hold still waits', async () => {
    const gw = await gateway();
    await gw.loginJson('alice', { 'user-agent': UA.chromeWindows });
    const asked = await askedLogin(gw, 'alice');
    const id = asked.sessions[0]?.id as string;
    const crossSite = await postJson(
      `${gw.url}${asked.choose}`,
      { end: id },
      { ...PHONE, 'sec-fetch-site': 'cross-site' },
    );
    expect(crossSite.status).toBe(403);
    const foreignOrigin = await postJson(
      `${gw.url}${asked.choose}`,
      { end: id },
      { ...PHONE, origin: 'https://evil.example' },
    );
    expect(foreignOrigin.status).toBe(403);
    const noToken = await postForm(`${gw.url}${asked.choose}`, { end: id }, PHONE);
    expect(noToken.status).toBe(403);
    const wrongToken = await postForm(`${gw.url}${asked.choose}`, { end: id, csrf: 'x'.repeat(43) }, PHONE);
    expect(wrongToken.status).toBe(403);
    expect(await sessionsOf(gw, 'alice')).toHaveLength(1);
    // The page's own token (JSON view of the page) works in a form.
    const page = await get(`${gw.url}${asked.choose}`, { ...PHONE, accept: 'application/json' });
    const { csrfToken } = (await page.json()) as { csrfToken: string };
    const ok = await postForm(`${gw.url}${asked.choose}`, { end: id, csrf: csrfToken }, PHONE);
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { user: { id: string } }).user.id).toBe('alice');
  });

  it('answers only the client that made the login: another User-Agent is told the hold is gone, and it still waits', async () => {
    const gw = await gateway();
    const first = await gw.loginJson('alice', { 'user-agent': UA.chromeWindows });
    const asked = await askedLogin(gw, 'alice');
    const end = { end: asked.sessions[0]?.id };
    const other = await postJson(`${gw.url}${asked.choose}`, end, { 'user-agent': UA.firefoxLinux });
    expect(other.status).toBe(410);
    expect((await get(`${gw.url}${asked.choose}`, { 'user-agent': UA.firefoxLinux })).status).toBe(410);
    expect(await statusOf(gw, first.token)).toBe(200);
    const own = await postJson(`${gw.url}${asked.choose}`, end, PHONE);
    expect(own.status).toBe(200);
    expect(await errorOf(gw, first.token)).toBe('session_superseded');
  });

  it("offers only the sessions of the login's device class when a device limit refused it", async () => {
    const gw = await gateway({ limit: 3, devices: { mobile: 1 } });
    const desktop = await gw.loginJson('alice', { 'user-agent': UA.chromeWindows });
    const phone = await gw.loginJson('alice', { 'user-agent': UA.safariIphone });
    const asked = await askedLogin(gw, 'alice', ANDROID);
    expect(asked.sessions.map((s) => s.userAgent)).toEqual([UA.safariIphone]);
    const chosen = await postJson(
      `${gw.url}${asked.choose}`,
      { end: asked.sessions[0]?.id },
      { 'user-agent': ANDROID },
    );
    expect(chosen.status).toBe(200);
    expect(await errorOf(gw, phone.token)).toBe('session_superseded');
    expect(await statusOf(gw, desktop.token)).toBe(200);
  });

  it('holds nothing under mode: report-only: the login is released, registered, and counted as a would-be refusal', async () => {
    const gw = await startGateway({
      store: store(),
      mode: 'report-only',
      sessions: { limit: 1, onLimit: 'ask' },
    });
    await waitUntil('the store', () => gw.gateway.isReady());
    const first = await gw.loginJson('alice', { 'user-agent': UA.chromeWindows });
    const second = await gw.loginJson('alice', PHONE);
    expect(second.response.status).toBe(200);
    expect(await statusOf(gw, first.token)).toBe(200);
    expect(await statusOf(gw, second.token)).toBe(200);
    expect(await sessionsOf(gw, 'alice')).toHaveLength(2);
    expect(await heldCount(gw, 'held')).toBe(0);
    expect(gw.logs.lines().filter((l) => l.reportOnly === true)).toHaveLength(1);
  });

  it("keeps at most four waiting logins per user: a fifth drops that user's oldest", async () => {
    const gw = await gateway();
    await gw.loginJson('alice', { 'user-agent': UA.chromeWindows });
    const holds: AskBody[] = [];
    for (let i = 0; i < 5; i++) holds.push(await askedLogin(gw, 'alice'));
    const oldest = await postJson(`${gw.url}${holds[0]?.choose}`, { cancel: true }, PHONE);
    expect(oldest.status).toBe(410);
    expect(await heldCount(gw, 'dropped')).toBe(1);
    const newest = await postJson(`${gw.url}${holds[4]?.choose}`, { cancel: true }, PHONE);
    expect(newest.status).toBe(200);
  });
});

describe.skipIf(!stores.haveRedis)('onLimit: ask with Redis stalled at the choice', () => {
  it('answers the choice 503 and keeps the hold: once Redis answers again the same choice releases the login', async () => {
    const proxy = await startFaultProxy(stores.redis().port);
    onTestFinished(() => proxy.close());
    const gw = await startGateway({
      store: {
        url: proxy.url,
        keyPrefix: `s${randomBytes(4).toString('hex')}:`,
        commandTimeout: '200ms',
        pingInterval: '200ms',
      },
      sessions: { limit: 1, onLimit: 'ask' },
    });
    await waitUntil('the store', () => gw.gateway.isReady());
    const first = await gw.loginJson('alice', { 'user-agent': UA.chromeWindows });
    const asked = await askedLogin(gw, 'alice');
    const end = { end: asked.sessions[0]?.id };
    proxy.stall();
    const stalled = await postJson(`${gw.url}${asked.choose}`, end, PHONE);
    expect(stalled.status).toBe(503);
    expect(((await stalled.json()) as { error: string }).error).toBe('session_store_unavailable');
    proxy.heal();
    await waitUntil('the store again', () => gw.gateway.isReady());
    const retried = await postJson(`${gw.url}${asked.choose}`, end, PHONE);
    expect(retried.status).toBe(200);
    const { accessToken } = (await retried.json()) as { accessToken: string };
    expect(await statusOf(gw, accessToken)).toBe(200);
    expect(await errorOf(gw, first.token)).toBe('session_superseded');
  });
});

describe.skipIf(!stores.haveRedis)('onLimit: ask on two replicas of one Redis', () => {
  it('the hold lives on the replica that held it: the choice posted to the other finds nothing; on its own it supersedes the session on the other', async () => {
    const shared = { url: stores.redis().url, keyPrefix: `r${randomBytes(4).toString('hex')}:` };
    const config = { store: shared, sessions: { limit: 1, onLimit: 'ask' as const } };
    const a = await startGateway(config);
    const b = await startGateway(config);
    await waitUntil('the store', () => a.gateway.isReady() && b.gateway.isReady());
    const first = await b.loginJson('alice', { 'user-agent': UA.chromeWindows });
    expect(await statusOf(b, first.token)).toBe(200);
    const asked = await askedLogin(a, 'alice');
    expect(asked.sessions).toHaveLength(1);

    const elsewhere = await postJson(`${b.url}${asked.choose}`, { end: asked.sessions[0]?.id }, PHONE);
    expect(elsewhere.status).toBe(410);
    const here = await postJson(`${a.url}${asked.choose}`, { end: asked.sessions[0]?.id }, PHONE);
    expect(here.status).toBe(200);
    const { accessToken } = (await here.json()) as { accessToken: string };
    expect(await statusOf(a, accessToken)).toBe(200);
    await waitUntil('the other replica rejects the chosen session', async () =>
      (await errorOf(b, first.token)) === 'session_superseded' ? true : undefined,
    );
    expect(await statusOf(b, accessToken)).toBe(200);
  });
});

describe('onLimit: ask at its bounds, through the gateway', () => {
  const gateway = async () => {
    const gw = await startGateway({ store: 'memory', sessions: { limit: 1, onLimit: 'ask' } });
    await waitUntil('the store', () => gw.gateway.isReady());
    return gw;
  };

  it(`a user's ${MAX_HELD_PER_USER + 1}th held login drops that user's oldest hold: its choice URL answers 410`, async () => {
    const gw = await gateway();
    await gw.loginJson('alice', { 'user-agent': UA.chromeWindows });
    const asked: AskBody[] = [];
    for (let i = 0; i <= MAX_HELD_PER_USER; i++) asked.push(await askedLogin(gw, 'alice'));
    const [oldest, ...kept] = asked;
    const gone = await postJson(`${gw.url}${oldest?.choose}`, { cancel: true }, PHONE);
    expect(gone.status).toBe(410);
    expect(((await gone.json()) as { error: string }).error).toBe('SG_ERR_LOGIN_HOLD_GONE');
    for (const a of kept)
      expect((await postJson(`${gw.url}${a.choose}`, { cancel: true }, PHONE)).status).toBe(200);
  });

  it(`with ${MAX_HELD_LOGINS} logins held, the next login past the limit is answered 503 SG_ERR_LOGIN_HOLDS_FULL and its token never reaches the client`, async () => {
    const gw = await gateway();
    const users = Array.from({ length: MAX_HELD_LOGINS + 1 }, (_, i) => `u${i}`);
    await inBatches(users, 16, async (u) => {
      await gw.loginJson(u, { 'user-agent': UA.chromeWindows });
    });
    const held = users.slice(0, MAX_HELD_LOGINS);
    await inBatches(held, 16, async (u) => {
      await askedLogin(gw, u);
    });
    const last = users[MAX_HELD_LOGINS] ?? '';
    const refused = await postJson(`${gw.url}/api/login`, { username: last }, PHONE);
    expect(refused.status).toBe(503);
    const body = await refused.text();
    expect((JSON.parse(body) as { error: string }).error).toBe('SG_ERR_LOGIN_HOLDS_FULL');
    const issued = [...(gw.upstream?.sessions.keys() ?? [])];
    expect(issued).toHaveLength(2 * MAX_HELD_LOGINS + 1 + 1);
    expect(issued.some((t) => body.includes(t))).toBe(false);
    // The user's first session goes on; nothing was registered for the refused login.
    expect(await sessionsOf(gw, last)).toHaveLength(1);
  });
});

async function inBatches<T>(
  items: readonly T[],
  width: number,
  each: (item: T) => Promise<void>,
): Promise<void> {
  for (let i = 0; i < items.length; i += width) await Promise.all(items.slice(i, i + width).map(each));
}
