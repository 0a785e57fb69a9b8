/**
 * The limit policies through real sockets, a real upstream app and both stores: group limits (from a
 * JWT claim and from a form field), exemptions, both victim orders, idle reclaim, device classes, the
 * audit reasons and the policy metric; and, on Redis, a changed limit that evicts nobody at startup.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { ConfigError } from '../../src/errors.js';
import {
  bearer,
  get,
  postForm,
  postJson,
  setCookie,
  startGateway,
  testClock,
  UA,
  type TestClock,
  type TestGateway,
} from '../support/gateway.js';
import { waitUntil } from '../support/wait.js';
import { suiteStores } from '../support/stores.js';
import { JWT_KEY, listenApp, readBody } from '../support/upstreams.js';
import type { RunningApp } from '../support/running-app.js';

const run = promisify(execFile);
const LOGIN = [{ match: 'POST /api/login', token: 'json:accessToken', user: 'json:user.id' }];
const ANDROID =
  'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile Safari/537.36';

/**
 * A JSON login that issues a JWT with the claims the request asks for (`role`, `tenant`), so a test
 * chooses a user's groups; `groups` is also echoed in the body for `json:` sources.
 */
async function claimsApp(): Promise<RunningApp> {
  return listenApp((req, res) => {
    void (async () => {
      const body = (await readBody(req)).toString();
      const json = (status: number, value: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(value));
      };
      if (req.method === 'POST' && req.url === '/api/login') {
        const { username, claims = {} } = JSON.parse(body) as {
          username: string;
          claims?: Record<string, unknown>;
        };
        const token = await new SignJWT({ ...claims, jti: randomBytes(8).toString('hex') })
          .setProtectedHeader({ alg: 'HS256' })
          .setSubject(username)
          .sign(JWT_KEY);
        return json(200, { accessToken: token, user: { id: username }, groups: claims.role ?? null });
      }
      return json(200, { ok: true });
    })();
  });
}

const stores = suiteStores();

let app: RunningApp;
beforeAll(async () => {
  app = await claimsApp();
});
afterAll(async () => {
  await app.close();
});

const login = async (
  gw: TestGateway,
  username: string,
  claims: Record<string, unknown> = {},
  headers: Record<string, string> = {},
) => {
  const res = await postJson(`${gw.url}/api/login`, { username, claims }, headers);
  const body = (await res.json()) as { accessToken?: string; error?: string };
  return { status: res.status, token: body.accessToken ?? '', body };
};
const statusOf = async (gw: TestGateway, token: string) => (await get(`${gw.url}/x`, bearer(token))).status;
const errorOf = async (gw: TestGateway, token: string) =>
  ((await (await get(`${gw.url}/x`, bearer(token))).json()) as { error?: string }).error;

/** The value of sessiongate_policy_outcomes_total{outcome,reason} on the admin listener (0 if absent). */
async function policyCount(gw: TestGateway, outcome: string, reason: string): Promise<number> {
  const text = await (await gw.admin('/metrics')).text();
  const line = text
    .split('\n')
    .find((l) => l.startsWith(`sessiongate_policy_outcomes_total{outcome="${outcome}",reason="${reason}"}`));
  return line === undefined ? 0 : Number(line.split(' ').pop());
}

describe.each(stores.cases)('limit policies on the $name store', ({ store }) => {
  let clock: TestClock;
  const gateway = async (sessions: NonNullable<ConfigInput['sessions']>) => {
    clock = testClock(Date.now());
    const gw = await startGateway(
      { upstream: app.url, login: LOGIN, store: store(), sessions },
      { now: clock.now },
    );
    await waitUntil('the store', () => gw.gateway.isReady());
    return gw;
  };

  it('gives each group its limit from a JWT claim, the smallest for a user in several', async () => {
    const gw = await gateway({ limit: 2, groups: { from: 'jwt:role', limits: { admin: 1, staff: 3 } } });
    const staff = [];
    for (let i = 0; i < 3; i++) {
      clock.advance(1000);
      staff.push(await login(gw, 'sam', { role: 'staff' }));
    }
    for (const s of staff) expect(await statusOf(gw, s.token)).toBe(200);
    clock.advance(1000);
    const fourth = await login(gw, 'sam', { role: 'staff' });
    expect(fourth.status).toBe(200);
    expect(await errorOf(gw, staff[0]!.token)).toBe('session_superseded');
    expect(await statusOf(gw, fourth.token)).toBe(200);

    // In both groups: admin's 1 wins over staff's 3.
    const first = await login(gw, 'ada', { role: ['staff', 'admin'] });
    clock.advance(1000);
    const second = await login(gw, 'ada', { role: ['staff', 'admin'] });
    expect(await errorOf(gw, first.token)).toBe('session_superseded');
    expect(await statusOf(gw, second.token)).toBe(200);

    const superseded = gw.logs.audit('session.superseded');
    expect(superseded.map((e) => [e.user, e.policy])).toEqual([
      ['sam', 'group-limit'],
      ['ada', 'group-limit'],
    ]);
    expect(await policyCount(gw, 'ended', 'group-limit')).toBe(2);
  });

  it('gives a user in no limited group the default limit, and says it was the limit', async () => {
    const gw = await gateway({ limit: 1, groups: { from: 'jwt:role', limits: { staff: 3 } } });
    const a = await login(gw, 'una', { role: 'guest' });
    clock.advance(1000);
    await login(gw, 'una', { role: 'guest' });
    expect(await errorOf(gw, a.token)).toBe('session_superseded');
    expect(gw.logs.audit('session.superseded').map((e) => e.policy)).toEqual(['limit']);
  });

  it('logs, counts and defaults a missing or non-string group claim; refuses it when told to', async () => {
    const gw = await gateway({ limit: 1, groups: { from: 'jwt:role', limits: { staff: 3 } } });
    const a = await login(gw, 'nia', {});
    clock.advance(1000);
    const b = await login(gw, 'nia', { role: 42 });
    expect(b.status).toBe(200);
    expect(await errorOf(gw, a.token)).toBe('session_superseded');
    const warnings = gw.logs.lines().filter((l) => l.code === 'SG_ERR_LOGIN_NO_GROUP');
    expect(warnings.map((l) => l.why)).toEqual(['missing', 'invalid']);
    expect(await policyCount(gw, 'defaulted', 'group-missing')).toBe(1);
    expect(await policyCount(gw, 'defaulted', 'group-invalid')).toBe(1);

    const strict = await gateway({
      limit: 1,
      groups: { from: 'jwt:role', limits: { staff: 3 }, onMissing: 'refuse' },
    });
    const refused = await login(strict, 'nia', {});
    expect(refused.status).toBe(403);
    expect(refused.body).toEqual({
      error: 'SG_ERR_LOGIN_NO_GROUP',
      message: 'the login names no group the gateway can read (sessions.groups.onMissing: refuse)',
    });
    expect(refused.token).toBe('');
    expect(await policyCount(strict, 'refused', 'group-missing')).toBe(1);
  });

  it('never counts nor ends the sessions of exempt users and groups', async () => {
    const gw = await gateway({
      limit: 1,
      onLimit: 'reject-new',
      groups: { from: 'jwt:role', limits: {} },
      exempt: { users: ['svc-backup'], groups: ['service'] },
    });
    const byName = [];
    const byGroup = [];
    for (let i = 0; i < 3; i++) {
      clock.advance(1000);
      byName.push(await login(gw, 'svc-backup'));
      byGroup.push(await login(gw, 'svc-report', { role: ['reader', 'service'] }));
    }
    for (const s of [...byName, ...byGroup]) {
      expect(s.status).toBe(200);
      expect(await statusOf(gw, s.token)).toBe(200);
    }
    // Everyone else keeps the limit.
    expect((await login(gw, 'eve')).status).toBe(200);
    expect((await login(gw, 'eve')).status).toBe(409);
    expect(gw.logs.audit('session.refused').map((e) => [e.user, e.policy])).toEqual([['eve', 'limit']]);
    expect(await policyCount(gw, 'refused', 'limit')).toBe(1);
  });

  it.each([
    ['replace-oldest', 'first'],
    ['replace-least-recent', 'second'],
  ] as const)('%s ends the %s login when the first one was used since', async (onLimit, victim) => {
    const gw = await gateway({ limit: 2, onLimit, activityInterval: '1s' });
    const first = await login(gw, 'vic');
    clock.advance(10_000);
    const second = await login(gw, 'vic');
    clock.advance(10_000);
    expect(await statusOf(gw, first.token)).toBe(200); // the first is now the most recently used
    clock.advance(10_000);
    const third = await login(gw, 'vic');
    const ended = victim === 'first' ? first : second;
    const kept = victim === 'first' ? second : first;
    expect(await errorOf(gw, ended.token)).toBe('session_superseded');
    expect(await statusOf(gw, kept.token)).toBe(200);
    expect(await statusOf(gw, third.token)).toBe(200);
  });

  it('reclaims a session idle past reclaimIdleAfter only when a new login needs its slot', async () => {
    const gw = await gateway({
      limit: 1,
      onLimit: 'reject-new',
      reclaimIdleAfter: '5m',
      idleTimeout: '30m',
    });
    const forgotten = await login(gw, 'rey');
    clock.advance(60_000);
    expect((await login(gw, 'rey')).status).toBe(409);
    clock.advance(5 * 60_000);
    const fresh = await login(gw, 'rey');
    expect(fresh.status).toBe(200);
    expect(await errorOf(gw, forgotten.token)).toBe('session_expired');
    expect(await statusOf(gw, fresh.token)).toBe(200);
    const expired = gw.logs.audit('session.expired');
    expect(expired.map((e) => [e.user, e.reason, e.policy])).toEqual([['rey', 'expired', 'idle-reclaimed']]);
    expect(await policyCount(gw, 'ended', 'idle-reclaimed')).toBe(1);
  });

  it('leaves an idle session alone while the user has room', async () => {
    const gw = await gateway({ limit: 2, onLimit: 'reject-new', reclaimIdleAfter: '5m' });
    const idle = await login(gw, 'ida');
    clock.advance(10 * 60_000);
    const second = await login(gw, 'ida');
    expect(second.status).toBe(200);
    expect(await statusOf(gw, idle.token)).toBe(200);
    expect(gw.logs.audit('session.expired')).toEqual([]);
  });

  it('refuses a login beyond the tenant seats with 409 and the configured message, whatever onLimit says', async () => {
    const gw = await gateway({
      limit: 2,
      onLimit: 'replace-oldest',
      seats: { key: 'jwt:tenant', max: 2, message: 'Acme is full.' },
    });
    const ann = await login(gw, 'ann', { tenant: 'acme' });
    clock.advance(1000);
    await login(gw, 'bob', { tenant: 'acme' });
    clock.advance(1000);
    const cid = await login(gw, 'cid', { tenant: 'acme' });
    expect(cid.status).toBe(409);
    expect(cid.body).toEqual({ error: 'session_seat_limit_reached', message: 'Acme is full.' });
    // Another tenant, and a login without a tenant, take no seat of acme's.
    expect((await login(gw, 'cid', { tenant: 'globex' })).status).toBe(200);
    expect((await login(gw, 'dan')).status).toBe(200);
    // ann's re-login (replace-oldest, limit 2) needs a second seat: refused; her first stays.
    expect((await login(gw, 'ann', { tenant: 'acme' })).status).toBe(409);
    expect(await statusOf(gw, ann.token)).toBe(200);
    expect(gw.logs.audit('session.refused').map((e) => [e.user, e.policy])).toEqual([
      ['cid', 'seat-limit'],
      ['ann', 'seat-limit'],
    ]);
    expect(await policyCount(gw, 'refused', 'seat-limit')).toBe(2);
    expect(await policyCount(gw, 'defaulted', 'tenant-missing')).toBe(1);
  });

  it('a second phone ends the first phone, never the desktop', async () => {
    const gw = await gateway({ limit: 2, devices: { desktop: 1, mobile: 1 } });
    const desktop = await login(gw, 'dev', {}, { 'user-agent': UA.chromeWindows });
    clock.advance(1000);
    const phone = await login(gw, 'dev', {}, { 'user-agent': UA.safariIphone });
    clock.advance(1000);
    const phone2 = await login(gw, 'dev', {}, { 'user-agent': ANDROID });
    expect(await errorOf(gw, phone.token)).toBe('session_superseded');
    expect(await statusOf(gw, desktop.token)).toBe(200);
    expect(await statusOf(gw, phone2.token)).toBe(200);
    expect(gw.logs.audit('session.superseded').map((e) => e.policy)).toEqual(['device-limit']);

    const strict = await gateway({ limit: 2, onLimit: 'reject-new', devices: { mobile: 1 } });
    await login(strict, 'dev', {}, { 'user-agent': UA.safariIphone });
    const refused = await login(strict, 'dev', {}, { 'user-agent': ANDROID });
    expect(refused.status).toBe(409);
    expect((await login(strict, 'dev', {}, { 'user-agent': UA.chromeWindows })).status).toBe(200);
    expect(strict.logs.audit('session.refused').map((e) => e.policy)).toEqual(['device-limit']);
  });
});

describe('group limits read from a form field of a browser login', () => {
  it('limits an admin to one session and lets staff keep three', async () => {
    const gw = await startGateway({
      sessions: { limit: 2, groups: { from: 'request.form:role', limits: { admin: 1, staff: 3 } } },
    });
    const form = async (username: string, role: string) => {
      const res = await postForm(`${gw.url}/login`, { username, role });
      await res.arrayBuffer();
      return setCookie(res, 'sid') ?? '';
    };
    const cookie = (sid: string) => ({ cookie: `sid=${sid}` });
    const admin1 = await form('root', 'admin');
    const admin2 = await form('root', 'admin');
    expect((await get(`${gw.url}/x`, cookie(admin1))).status).toBe(401);
    expect((await get(`${gw.url}/x`, cookie(admin2))).status).toBe(200);
    const staff = [await form('sue', 'staff'), await form('sue', 'staff'), await form('sue', 'staff')];
    for (const sid of staff) expect((await get(`${gw.url}/x`, cookie(sid))).status).toBe(200);
    expect(gw.logs.audit('session.superseded').map((e) => [e.user, e.policy])).toEqual([
      ['root', 'group-limit'],
    ]);
  });
});

describe.skipIf(!stores.haveRedis)('a changed limit on a live deployment', () => {
  it('evicts nobody at startup, and applies exactly at the next login', async () => {
    const store = { url: stores.redis().url, keyPrefix: `c${randomBytes(4).toString('hex')}:` };
    const before = await startGateway({ upstream: app.url, login: LOGIN, store, sessions: { limit: 3 } });
    await waitUntil('the store', () => before.gateway.isReady());
    const tokens = [];
    for (let i = 0; i < 3; i++) tokens.push((await login(before, 'lee')).token);
    await before.close();

    const after = await startGateway({ upstream: app.url, login: LOGIN, store, sessions: { limit: 1 } });
    await waitUntil('the store', () => after.gateway.isReady());
    for (const t of tokens) expect(await statusOf(after, t)).toBe(200);
    const next = await login(after, 'lee');
    for (const t of tokens) expect(await errorOf(after, t)).toBe('session_superseded');
    expect(await statusOf(after, next.token)).toBe(200);
  });
});

describe('a bad policy configuration', () => {
  const base = { upstream: 'http://127.0.0.1:3000', secret: 'a-secret-of-sixteen+', login: LOGIN };
  const problems = (sessions: Record<string, unknown>): string[] => {
    try {
      parseConfig({ ...base, sessions }, {});
    } catch (err) {
      if (err instanceof ConfigError) return err.problems.map((p) => p.path);
      throw err;
    }
    return [];
  };

  it('names the key path of each problem', () => {
    expect(problems({ groups: { from: 'cookie:role', limits: { admin: 0 } } })).toEqual([
      'sessions.groups.from',
      'sessions.groups.limits.admin',
    ]);
    expect(problems({ exempt: { groups: ['service'] } })).toEqual(['sessions.exempt.groups']);
    expect(problems({ devices: { phone: 1 } })).toEqual(['sessions.devices.phone']);
    expect(problems({ reclaimIdleAfter: '1h', idleTimeout: '30m' })).toEqual(['sessions.reclaimIdleAfter']);
    expect(problems({ seats: { key: 'jwt:tenant' } })).toEqual(['sessions.seats.max']);
    expect(problems({ onLimit: 'replace-least-recent', seats: { key: 'jwt:tenant', max: 3 } })).toEqual([]);
  });

  it('makes the CLI exit 2', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sg-policy-'));
    const file = join(dir, 'bad.yaml');
    writeFileSync(
      file,
      `upstream: http://127.0.0.1:3000\nsecret: a-secret-of-sixteen+\nsessions:\n  groups:\n    from: jwt:role\n    limits: { admin: -1 }\nlogin:\n  - match: POST /api/login\n    token: json:accessToken\n    user: json:user.id\n`,
    );
    const cli = join(import.meta.dirname, '../../dist/src/cli.js');
    const err = (await run('node', [cli, 'check', '--config', file]).catch((e: unknown) => e)) as {
      code: number;
      stderr: string;
    };
    expect(err.code).toBe(2);
    expect(err.stderr).toContain('sessions.groups.limits.admin');
  });
});
