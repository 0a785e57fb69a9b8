/**
 * `onLimit: warn` through real sockets, the test app and both stores: a login past the limit is let in
 * and marks every other live session of the user once (device, place, time of the new login); a warned
 * session's navigation is sent to the warning page, its API requests go on with `Sessiongate-Warning`;
 * "Yes, continue" goes back to exactly the asked page and clears the mark for that login only; "No,
 * sign out everywhere" ends every session; CSRF and open-redirect attempts are refused; seats still
 * refuse; report-only changes nothing a client sees; on Redis, two replicas (login through B, the
 * warned browser on A).
 */
import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import type { ConfigInput } from '../../src/config/schema.js';
import {
  bearer,
  get,
  NAVIGATE,
  postForm,
  postJson,
  startGateway,
  testClock,
  UA,
  type TestGateway,
} from '../support/gateway.js';
import { JSON_LOGIN_RULE, TEST_LOGIN_RULES } from '../support/login-rules.js';
import { listenApp, readBody } from '../support/upstreams.js';
import { haveRedis, startRedis, type RedisHandle } from '../support/redis.js';
import { needTool } from '../support/tools.js';
import { waitUntil } from '../support/wait.js';

const redisServer = needTool('redis-server', 'redis-server', haveRedis());
let redis: RedisHandle | undefined;
beforeAll(async () => {
  if (redisServer) redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

type StoreCase = { name: string; store: () => ConfigInput['store'] };
const stores: StoreCase[] = [
  { name: 'memory', store: () => 'memory' },
  ...(redisServer
    ? [
        {
          name: 'redis',
          store: () => ({
            url: (redis as RedisHandle).url,
            keyPrefix: `w${randomBytes(4).toString('hex')}:`,
          }),
        },
      ]
    : []),
];

const PAGE = '/.sessiongate/warning';
const cookie = (sid: string) => ({ cookie: `sid=${sid}` });

interface WarningJson {
  warning: {
    event: string;
    session: string;
    at: string;
    device: string;
    place: string | null;
    message: string;
  };
  csrfToken: string;
  next: string;
}

async function warningJson(gw: TestGateway, sid: string, next = '/app'): Promise<WarningJson> {
  const res = await get(`${gw.url}${PAGE}?next=${encodeURIComponent(next)}`, {
    ...cookie(sid),
    accept: 'application/json',
  });
  expect(res.status).toBe(200);
  expect(res.headers.get('cache-control')).toBe('no-store');
  return (await res.json()) as WarningJson;
}

/** The id of the user's newest live session (the login just made). */
async function newest(gw: TestGateway, user: string): Promise<string> {
  const [s] = await gw.gateway.sessions.listSessions(user);
  return s?.id ?? '';
}

for (const { name, store } of stores) {
  describe(`onLimit: warn (${name} store)`, () => {
    let clock = testClock();
    const gateway = async (
      sessions: NonNullable<ConfigInput['sessions']> = {},
      extra: Omit<Partial<ConfigInput>, 'upstream'> = {},
    ): Promise<TestGateway> => {
      clock = testClock();
      const gw = await startGateway(
        {
          store: store(),
          locationHeader: 'CF-IPCountry',
          sessions: { limit: 1, onLimit: 'warn', ...sessions },
          ...extra,
        },
        { now: () => clock.now() },
      );
      await waitUntil('the store', () => gw.gateway.isReady());
      return gw;
    };
    // A second apart, so the newest session is the last login's.
    const form = (gw: TestGateway, user: string, headers: Record<string, string>) => {
      clock.advance(1_000);
      return gw.loginForm(user, headers);
    };
    const json = (gw: TestGateway, user: string, headers: Record<string, string> = {}) => {
      clock.advance(1_000);
      return gw.loginJson(user, headers);
    };

    it('lets a login past the limit in, ends nothing, and marks the other session once, naming the new login', async () => {
      const gw = await gateway();
      const laptop = await form(gw, 'alice', { 'user-agent': UA.firefoxLinux });
      const firstId = await newest(gw, 'alice');
      const phone = await form(gw, 'alice', { 'user-agent': UA.chromeWindows, 'cf-ipcountry': 'DE' });
      expect(phone.response.status).toBe(302);
      const secondId = await newest(gw, 'alice');
      expect(secondId).not.toBe(firstId);

      const live = await gw.gateway.sessions.listSessions('alice');
      expect(live.map((s) => s.id).sort()).toEqual([firstId, secondId].sort());
      const first = live.find((s) => s.id === firstId);
      expect(first?.warning).toEqual({
        sessionId: secondId,
        at: clock.now(),
        device: 'Chrome on Windows',
        place: 'DE',
      });
      expect(live.find((s) => s.id === secondId)?.warning).toBeUndefined();

      const warned = gw.logs.audit('session.warned');
      expect(warned).toHaveLength(1);
      expect(warned[0]).toMatchObject({
        sessionId: firstId,
        reason: 'warned',
        policy: 'limit',
        by: { sessionId: secondId, actor: 'login' },
      });
      expect(gw.logs.audit('session.superseded')).toEqual([]);
      // The new session is not warned: its requests go on untouched.
      const fresh = await get(`${gw.url}/api/orders`, cookie(phone.sid));
      expect(fresh.status).toBe(200);
      expect(fresh.headers.get('sessiongate-warning')).toBeNull();
      expect(laptop.sid).not.toBe(phone.sid);
    });

    it("sends the warned session's navigation to the warning page with the asked path and query; its API and fetch requests go on with the header", async () => {
      const gw = await gateway();
      const laptop = await form(gw, 'alice', { 'user-agent': UA.firefoxLinux });
      await form(gw, 'alice', { 'user-agent': UA.chromeWindows });
      const secondId = await newest(gw, 'alice');
      const at = new Date(clock.now()).toISOString();

      const nav = await get(`${gw.url}/app?tab=2&q=a%20b`, { ...NAVIGATE, ...cookie(laptop.sid) });
      expect(nav.status).toBe(303);
      expect(nav.headers.get('location')).toBe(`${PAGE}?next=${encodeURIComponent('/app?tab=2&q=a%20b')}`);
      expect(nav.headers.get('cache-control')).toBe('no-store');
      // Without Fetch Metadata, an Accept that prefers HTML is a navigation too.
      const old = await get(`${gw.url}/app`, { accept: 'text/html,*/*;q=0.8', ...cookie(laptop.sid) });
      expect(old.status).toBe(303);

      const before = gw.upstream?.requests.length ?? 0;
      const fetches: Record<string, string>[] = [
        { accept: 'application/json' },
        { 'sec-fetch-mode': 'cors', 'sec-fetch-dest': 'empty', accept: '*/*' },
        // An iframe's navigation is not the tab's.
        { ...NAVIGATE, 'sec-fetch-dest': 'iframe' },
        { accept: 'text/html', 'x-requested-with': 'XMLHttpRequest' },
      ];
      for (const headers of fetches) {
        const res = await get(`${gw.url}/api/orders`, { ...headers, ...cookie(laptop.sid) });
        expect(res.status).toBe(200);
        expect(res.headers.get('sessiongate-warning')).toMatch(
          new RegExp(`^session\\.warned; session=${secondId}; at=${at.replace(/\./g, '\\.')}$`),
        );
        expect(((await res.json()) as { user: string }).user).toBe('alice');
      }
      // A POST is never sent away either.
      const post = await postJson(`${gw.url}/api/orders`, { n: 1 }, cookie(laptop.sid));
      expect(post.status).toBe(200);
      expect(post.headers.get('sessiongate-warning')).toMatch(/^session\.warned; session=/);
      expect((gw.upstream?.requests.length ?? 0) - before).toBe(fetches.length + 1);
    });

    it('keeps an API client (bearer token) going: its requests carry the header, none is a navigation', async () => {
      const gw = await gateway();
      const first = await json(gw, 'bob', { 'user-agent': UA.firefoxLinux });
      const second = await json(gw, 'bob', { 'user-agent': UA.safariIphone });
      expect(second.response.status).toBe(200);
      const res = await get(`${gw.url}/api/me`, { ...bearer(first.token), accept: 'text/html' });
      expect(res.status).toBe(200);
      expect(res.headers.get('sessiongate-warning')).toMatch(/^session\.warned; session=[^;]+; at=/);
      const mine = await get(`${gw.url}/api/me`, bearer(second.token));
      expect(mine.headers.get('sessiongate-warning')).toBeNull();
    });

    it('shows who signed in, from where and when, with both answers as POST forms carrying a CSRF token', async () => {
      const gw = await gateway();
      const laptop = await form(gw, 'alice', { 'user-agent': UA.firefoxLinux });
      await form(gw, 'alice', { 'user-agent': UA.chromeWindows, 'cf-ipcountry': 'DE' });
      const page = await get(`${gw.url}${PAGE}?next=%2Fapp`, { ...NAVIGATE, ...cookie(laptop.sid) });
      expect(page.status).toBe(200);
      expect(page.headers.get('cache-control')).toBe('no-store');
      expect(page.headers.get('content-security-policy')).toContain("form-action 'self'");
      const text = await page.text();
      expect(text).toContain(
        'A new sign-in to your account from Chrome on Windows in DE at 10:00 UTC. Was this you?',
      );
      expect(text.match(/<form method="post" action="\/\.sessiongate\/warning">/g)).toHaveLength(2);
      expect(text).toContain('Yes, continue');
      expect(text).toContain('No, sign out everywhere');
      const json = await warningJson(gw, laptop.sid);
      expect(json.warning).toMatchObject({
        event: 'session.warned',
        device: 'Chrome on Windows',
        place: 'DE',
      });
      expect(text).toContain(`name="csrf" value="${json.csrfToken}"`);
      expect(text).toContain('name="next" value="/app"');
    });

    it('"Yes, continue" goes back to exactly the asked page and clears the mark for that login only; a later login warns again', async () => {
      const gw = await gateway();
      const laptop = await form(gw, 'alice', { 'user-agent': UA.firefoxLinux });
      await form(gw, 'alice', { 'user-agent': UA.chromeWindows });
      const login = await newest(gw, 'alice');
      const asked = '/app?tab=2&q=a%20b';
      const { csrfToken } = await warningJson(gw, laptop.sid, asked);

      const yes = await postForm(
        `${gw.url}${PAGE}`,
        { csrf: csrfToken, login, next: asked, answer: 'continue' },
        { ...cookie(laptop.sid), 'sec-fetch-site': 'same-origin' },
      );
      expect(yes.status).toBe(303);
      expect(yes.headers.get('location')).toBe(asked);
      const back = await get(`${gw.url}${asked}`, { ...NAVIGATE, ...cookie(laptop.sid) });
      expect(back.status).toBe(200);
      expect(await back.text()).toContain('Hello alice');
      const api = await get(`${gw.url}/api/orders`, cookie(laptop.sid));
      expect(api.headers.get('sessiongate-warning')).toBeNull();
      // The page itself, asked for again, sends the answered session on.
      const again = await get(`${gw.url}${PAGE}?next=%2Fapp`, { ...NAVIGATE, ...cookie(laptop.sid) });
      expect(again.status).toBe(303);
      expect(again.headers.get('location')).toBe('/app');
      expect(gw.logs.lines().filter((l) => l.event === 'warning_answered')).toHaveLength(1);

      clock.advance(60_000);
      await form(gw, 'alice', { 'user-agent': UA.safariIphone });
      const third = await newest(gw, 'alice');
      const nav = await get(`${gw.url}/app`, { ...NAVIGATE, ...cookie(laptop.sid) });
      expect(nav.status).toBe(303);
      const json = await warningJson(gw, laptop.sid);
      expect(json.warning.session).toBe(third);
      expect(json.warning.device).toBe('Mobile Safari on iOS');
    });

    it('"Yes, continue" for an older login leaves a newer mark in place', async () => {
      const gw = await gateway({ limit: 1 });
      const laptop = await form(gw, 'alice', { 'user-agent': UA.firefoxLinux });
      await form(gw, 'alice', { 'user-agent': UA.chromeWindows });
      const older = await newest(gw, 'alice');
      const { csrfToken } = await warningJson(gw, laptop.sid);
      clock.advance(1_000);
      await form(gw, 'alice', { 'user-agent': UA.safariIphone });
      const newer = await newest(gw, 'alice');
      const yes = await postForm(
        `${gw.url}${PAGE}`,
        { csrf: csrfToken, login: older, next: '/app', answer: 'continue' },
        cookie(laptop.sid),
      );
      expect(yes.status).toBe(303);
      expect((await warningJson(gw, laptop.sid)).warning.session).toBe(newer);
    });

    it('"No, sign out everywhere" ends every session of the user, the new one included, and says so', async () => {
      const gw = await gateway({}, { notify: { loginHeader: true } });
      const laptop = await form(gw, 'alice', { 'user-agent': UA.firefoxLinux });
      const phone = await form(gw, 'alice', { 'user-agent': UA.chromeWindows });
      const { csrfToken } = await warningJson(gw, laptop.sid);
      const no = await postForm(
        `${gw.url}${PAGE}`,
        { csrf: csrfToken, next: '/app', answer: 'sign-out' },
        cookie(laptop.sid),
      );
      expect(no.status).toBe(200);
      // This browser's session ended too: what it keeps goes (reject.clearSiteData, by default).
      expect(no.headers.get('clear-site-data')).toBe('"cookies", "storage"');
      expect(await no.text()).toContain('2 sessions of your account ended, this one included.');
      expect(await gw.gateway.sessions.listSessions('alice')).toEqual([]);
      for (const sid of [laptop.sid, phone.sid]) {
        const res = await get(`${gw.url}/api/orders`, { ...cookie(sid), accept: 'application/json' });
        expect(res.status).toBe(401);
        expect(((await res.json()) as { error: string }).error).toBe('session_ended');
      }
      expect(gw.logs.audit('session.not_me')).toHaveLength(1);
      expect(gw.logs.audit('session.ended')).toHaveLength(2);
    });

    it('refuses answers without the CSRF token, cross-site ones, and never sends anyone to another origin', async () => {
      const gw = await gateway({}, { reject: { clearSiteData: ['cookies'] } });
      const laptop = await form(gw, 'alice', { 'user-agent': UA.firefoxLinux });
      await form(gw, 'alice', { 'user-agent': UA.chromeWindows });
      const { csrfToken } = await warningJson(gw, laptop.sid);
      const signOut = { csrf: csrfToken, next: '/app', answer: 'sign-out' };

      const noToken = await postForm(`${gw.url}${PAGE}`, { ...signOut, csrf: 'forged' }, cookie(laptop.sid));
      expect(noToken.status).toBe(403);
      const crossSite = await postForm(`${gw.url}${PAGE}`, signOut, {
        ...cookie(laptop.sid),
        'sec-fetch-site': 'cross-site',
      });
      expect(crossSite.status).toBe(403);
      const otherOrigin = await postForm(`${gw.url}${PAGE}`, signOut, {
        ...cookie(laptop.sid),
        origin: 'https://evil.example',
      });
      expect(otherOrigin.status).toBe(403);
      const noSession = await postForm(`${gw.url}${PAGE}`, signOut, {});
      expect(noSession.status).toBe(401);
      const badAnswer = await postForm(
        `${gw.url}${PAGE}`,
        { ...signOut, answer: 'maybe' },
        cookie(laptop.sid),
      );
      expect(badAnswer.status).toBe(400);
      expect(await gw.gateway.sessions.listSessions('alice')).toHaveLength(2);

      for (const next of ['https://evil.example/', '//evil.example/x', '/\\evil.example', '/ok\r\nx: y']) {
        const yes = await postForm(
          `${gw.url}${PAGE}`,
          { csrf: csrfToken, next, answer: 'continue' },
          cookie(laptop.sid),
        );
        expect(yes.status).toBe(303);
        expect(yes.headers.get('location')).toBe('/');
      }
      const nav = await get(`${gw.url}${PAGE}?next=${encodeURIComponent('//evil.example')}`, {
        ...NAVIGATE,
        ...cookie(laptop.sid),
      });
      expect(nav.headers.get('location')).toBe('/');

      // Signing out everywhere clears what reject.clearSiteData names.
      await form(gw, 'alice', { 'user-agent': UA.safariIphone });
      const { csrfToken: again } = await warningJson(gw, laptop.sid);
      const no = await postForm(`${gw.url}${PAGE}`, { ...signOut, csrf: again }, cookie(laptop.sid));
      expect(no.status).toBe(200);
      expect(no.headers.get('clear-site-data')).toBe('"cookies"');
    });

    it('answers JSON clients (an SPA reading the header) with JSON, the CSRF token in X-CSRF-Token', async () => {
      const gw = await gateway();
      const laptop = await form(gw, 'alice', { 'user-agent': UA.firefoxLinux });
      await form(gw, 'alice', { 'user-agent': UA.chromeWindows });
      const { csrfToken, warning } = await warningJson(gw, laptop.sid);
      const yes = await postJson(
        `${gw.url}${PAGE}`,
        { answer: 'continue', login: warning.session, next: '/app' },
        { ...cookie(laptop.sid), 'x-csrf-token': csrfToken },
      );
      expect(yes.status).toBe(200);
      expect(await yes.json()).toEqual({ continued: true, cleared: true, next: '/app' });
      const api = await get(`${gw.url}/api/orders`, cookie(laptop.sid));
      expect(api.headers.get('sessiongate-warning')).toBeNull();
    });

    it('still refuses a login past the seats of its tenant: seats are a licence count', async () => {
      const gw = await gateway({ limit: 1, seats: { key: 'request.json:tenant', max: 1 } });
      const login = async (username: string) => {
        clock.advance(1_000);
        const res = await postJson(`${gw.url}/api/login`, { username, tenant: 'acme' });
        return { status: res.status, body: (await res.json()) as Record<string, unknown> };
      };
      expect((await login('carol')).status).toBe(200);
      const other = await login('dave');
      expect(other.status).toBe(409);
      expect(other.body.error).toBe('session_seat_limit_reached');
      // carol's second login needs a second seat of acme's: refused too, and nobody is warned.
      expect((await login('carol')).status).toBe(409);
      expect(gw.logs.audit('session.warned')).toEqual([]);
      expect(gw.logs.audit('session.refused').map((e) => e.policy)).toEqual(['seat-limit', 'seat-limit']);
    });

    it('warns for a device-class limit and a group limit too, with the limit that was passed', async () => {
      const gw = await gateway({ limit: 5, devices: { mobile: 1 } });
      await json(gw, 'erin', { 'user-agent': UA.safariIphone });
      await json(gw, 'erin', { 'user-agent': UA.firefoxLinux });
      await json(gw, 'erin', { 'user-agent': UA.safariIphone });
      const warned = gw.logs.audit('session.warned');
      expect(warned).toHaveLength(2);
      expect(warned.every((e) => e.policy === 'device-limit')).toBe(true);
      expect(await gw.gateway.sessions.listSessions('erin')).toHaveLength(3);
    });

    it('under report-only marks and records the warning but changes nothing a client sees', async () => {
      const gw = await gateway({}, { mode: 'report-only' });
      const laptop = await form(gw, 'alice', { 'user-agent': UA.firefoxLinux });
      await form(gw, 'alice', { 'user-agent': UA.chromeWindows });
      expect(gw.logs.audit('session.warned')).toHaveLength(1);
      const nav = await get(`${gw.url}/app`, { ...NAVIGATE, ...cookie(laptop.sid) });
      expect(nav.status).toBe(200);
      expect(nav.headers.get('sessiongate-warning')).toBeNull();
      expect(
        gw.logs.lines().filter((l) => l.event === 'warning_page' && typeof l.login === 'string'),
      ).toHaveLength(1);
      const api = await get(`${gw.url}/api/orders`, cookie(laptop.sid));
      expect(api.headers.get('sessiongate-warning')).toBeNull();
    });

    it('sends session.warned to the webhook under its default events, by the new login, and counts it as warned, not ended', async () => {
      const received: Record<string, unknown>[] = [];
      const receiver = await listenApp((req, res) => {
        void readBody(req).then((b) => {
          received.push(JSON.parse(b.toString()) as Record<string, unknown>);
          res.end('ok');
        });
      });
      onTestFinished(() => receiver.close());
      // No `events`: the defaults send a warning as they send a supersession.
      const gw = await gateway({}, { notify: { webhook: { url: receiver.url, secret: 'w'.repeat(32) } } });
      await form(gw, 'alice', { 'user-agent': UA.firefoxLinux });
      const firstId = await newest(gw, 'alice');
      await form(gw, 'alice', { 'user-agent': UA.chromeWindows });
      const secondId = await newest(gw, 'alice');
      await waitUntil('both logins and the warning delivered', () => received.length === 3);
      expect(received.map((r) => r.type).sort()).toEqual([
        'session.created',
        'session.created',
        'session.warned',
      ]);
      const warned = received.filter((r) => r.type === 'session.warned');
      expect(warned[0]).toMatchObject({
        type: 'session.warned',
        user: 'alice',
        sessionId: firstId,
        device: 'Firefox on Linux',
        reason: 'warned',
        by: { sessionId: secondId, device: 'Chrome on Windows' },
        text: 'Session on Firefox on Linux was warned of a new login from Chrome on Windows past the session limit',
      });
      const metrics = await (await gw.admin('/metrics')).text();
      expect(metrics).toContain('sessiongate_policy_outcomes_total{outcome="warned",reason="limit"} 1');
      expect(metrics).not.toMatch(/sessiongate_sessions_ended_total\{reason="warned"\}/);
    });

    it("keeps a warned session's open stream flowing: a warning revokes nothing", async () => {
      let n = 0;
      let feed: ServerResponse | undefined;
      let opened: () => void = () => {};
      const open = new Promise<void>((r) => (opened = r));
      const app = await listenApp((req, res) => {
        void readBody(req).then(() => {
          if (req.url === '/api/login') {
            res.writeHead(200, { 'content-type': 'application/json' });
            res.end(
              JSON.stringify({
                accessToken: `t-${++n}-${randomBytes(4).toString('hex')}`,
                user: { id: 'sam' },
              }),
            );
            return;
          }
          if (req.url === '/feed') {
            res.writeHead(200, { 'content-type': 'application/x-ndjson' });
            res.write('{"i":1}\n');
            feed = res;
            opened();
            return;
          }
          res.end('{}');
        });
      });
      onTestFinished(() => app.close());
      const gw = await startGateway({
        upstream: app.url,
        login: [JSON_LOGIN_RULE],
        store: store(),
        sessions: { limit: 1, onLimit: 'warn' },
      });
      await waitUntil('the store', () => gw.gateway.isReady());
      const token = async () =>
        ((await (await postJson(`${gw.url}/api/login`, {})).json()) as { accessToken: string }).accessToken;
      const first = await token();
      const stream = await request(`${gw.url}/feed`, { headers: bearer(first) });
      await open;
      let text = '';
      let got: (line: string) => void = () => {};
      const lines = (async () => {
        for await (const c of stream.body) {
          text += String(c);
          got(text);
        }
      })();
      await token();
      // This replica has the mark (its next request says so); the stream is still the app's.
      await waitUntil('the warning on this replica', async () =>
        (await get(`${gw.url}/api/x`, bearer(first))).headers.get('sessiongate-warning'),
      );
      const second = new Promise<void>((r) => (got = (t) => t.includes('{"i":2}') && r()));
      feed?.write('{"i":2}\n');
      await second;
      feed?.end();
      await lines;
      expect(text).toBe('{"i":1}\n{"i":2}\n');
      expect(
        await gw.gateway.metrics.registry.getSingleMetricAsString('sessiongate_connections_closed_total'),
      ).not.toContain('kind="stream"');
    });

    it('leaves reject-new as it was: the login past the limit is refused and nobody is warned', async () => {
      const gw = await gateway({ onLimit: 'reject-new' });
      await json(gw, 'frank');
      const second = await json(gw, 'frank');
      expect(second.response.status).toBe(409);
      expect(gw.logs.audit('session.warned')).toEqual([]);
    });
  });
}

describe.skipIf(!redisServer)('onLimit: warn on two replicas of one Redis', () => {
  it('a login through B warns the browser on A at its next navigation; "Yes, continue" posted to B lets it through on A', async () => {
    const shared = { url: (redis as RedisHandle).url, keyPrefix: `r${randomBytes(4).toString('hex')}:` };
    const config = { store: shared, sessions: { limit: 1, onLimit: 'warn' as const } };
    const a = await startGateway(config);
    const b = await startGateway({
      ...config,
      upstream: a.upstream?.url ?? '',
      login: TEST_LOGIN_RULES,
      tokens: ['bearer', 'cookie:sid'],
    });
    await waitUntil('the store', () => a.gateway.isReady() && b.gateway.isReady());
    const laptop = await a.loginForm('alice', { 'user-agent': UA.firefoxLinux });
    // A has the session cached as live (unmarked).
    expect((await get(`${a.url}/app`, { ...NAVIGATE, ...cookie(laptop.sid) })).status).toBe(200);

    await b.loginForm('alice', { 'user-agent': UA.chromeWindows });
    const login = await newest(b, 'alice');
    const nav = await waitUntil('A sends the warned navigation to the page', async () => {
      const res = await get(`${a.url}/app?x=1`, { ...NAVIGATE, ...cookie(laptop.sid) });
      return res.status === 303 ? res : undefined;
    });
    expect(nav.headers.get('location')).toBe(`${PAGE}?next=${encodeURIComponent('/app?x=1')}`);
    expect(b.logs.audit('session.warned')).toHaveLength(1);
    expect(a.logs.audit('session.warned')).toEqual([]);
    // B serves the warned session the header as well.
    const onB = await get(`${b.url}/api/orders`, cookie(laptop.sid));
    expect(onB.headers.get('sessiongate-warning')).toMatch(
      new RegExp(`^session\\.warned; session=${login}; at=`),
    );

    const { csrfToken } = await warningJson(a, laptop.sid);
    // The CSRF key is derived from the shared secret: either replica takes the answer.
    const yes = await postForm(
      `${b.url}${PAGE}`,
      { csrf: csrfToken, login, next: '/app?x=1', answer: 'continue' },
      cookie(laptop.sid),
    );
    expect(yes.status).toBe(303);
    expect(yes.headers.get('location')).toBe('/app?x=1');
    // Whether or not A has heard of the answer yet, the navigation ends on the page asked for: a stale
    // A sends it to the page, which reads the store and sends it straight back.
    let url = '/app?x=1';
    for (let hop = 0; hop < 3; hop++) {
      const res = await get(`${a.url}${url}`, { ...NAVIGATE, ...cookie(laptop.sid) });
      if (res.status !== 303) {
        expect(res.status).toBe(200);
        expect(await res.text()).toContain('Hello alice');
        break;
      }
      url = res.headers.get('location') ?? '';
      expect(url === '/app?x=1' || url.startsWith(`${PAGE}?next=`)).toBe(true);
    }
    expect(url).toBe('/app?x=1');
    await waitUntil('A lets the answered session through', async () => {
      const res = await get(`${a.url}/api/orders`, cookie(laptop.sid));
      return res.headers.get('sessiongate-warning') === null;
    });
    const back = await get(`${a.url}/app?x=1`, { ...NAVIGATE, ...cookie(laptop.sid) });
    expect(back.status).toBe(200);
    expect(await a.gateway.sessions.listSessions('alice')).toHaveLength(2);
  });
});
