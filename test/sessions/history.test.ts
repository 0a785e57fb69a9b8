/**
 * "New device, new place" end to end, on the memory store and on a real redis-server: logins through a
 * real gateway (the test app's JSON login, client addresses by X-Forwarded-For from a trusted proxy,
 * located with the real geo database) are compared with the user's login history and flagged on the
 * session list, the audit log, `session.new_device` and the metric; a user's first login never is.
 * Plus the pure parts: the fingerprint and the comparison.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemorySessionStore } from '../../src/store/memory.js';
import { compareWithHistory, deviceFingerprint, HISTORY_WINDOW } from '../../src/sessions/history.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { bearer, startGateway, testClock, UA, type TestGateway } from '../support/gateway.js';
import { haveRedis, startRedis, type RedisHandle } from '../support/redis.js';
import { needTool } from '../support/tools.js';
import { waitUntil } from '../support/wait.js';
import { addressIn, GEO_DB_V4 } from '../geo/addresses.js';

interface Row {
  id: string;
  current: boolean;
  device: string;
  geo: { country?: string; city?: string } | null;
  place: string | null;
  newDevice: boolean;
  newLocation: boolean;
}

async function rows(gw: TestGateway, token: string): Promise<Row[]> {
  const res = await fetch(`${gw.url}/.sessiongate/sessions`, {
    headers: { ...bearer(token), accept: 'application/json' },
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { sessions: Row[] }).sessions;
}

async function counter(gw: TestGateway, kind: 'device' | 'location'): Promise<number> {
  const text = await (await gw.admin('/metrics')).text();
  const line = text
    .split('\n')
    .find((l) => l.startsWith(`sessiongate_unfamiliar_logins_total{kind="${kind}"}`));
  return Number(line?.split(' ')[1] ?? NaN);
}

describe('device fingerprints and the comparison', () => {
  it('is browser family, OS and device class, the same across browser versions', () => {
    expect(deviceFingerprint(UA.chromeWindows)).toBe('Chrome/Windows/desktop');
    expect(deviceFingerprint(UA.chromeWindows.replace('124.0.0.0', '131.0.6778.85'))).toBe(
      'Chrome/Windows/desktop',
    );
    expect(deviceFingerprint(UA.safariIphone)).toBe('Mobile Safari/iOS/mobile');
    expect(deviceFingerprint(UA.firefoxLinux)).toBe('Firefox/Linux/desktop');
  });

  it('gives garbage, empty and 10 KB agents a bounded fingerprint without separators', () => {
    for (const ua of [
      '',
      '\u0000\n/garbage/\r\n',
      'x'.repeat(10_240),
      `${UA.chromeWindows}${'y'.repeat(10_000)}`,
    ]) {
      const fp = deviceFingerprint(ua);
      expect(fp.split('/')).toHaveLength(3);
      expect([...fp].some((c) => c.charCodeAt(0) < 0x20)).toBe(false);
      expect(fp.length).toBeLessThanOrEqual(90);
    }
  });

  it('flags nothing without history, a device or a country not in it, a country only once one is known', () => {
    const at = 0;
    const seen = [{ device: 'Chrome/Windows/desktop', country: 'DE', at }];
    expect(compareWithHistory([], { device: 'x/y/z', country: 'US' })).toEqual({
      newDevice: false,
      newLocation: false,
    });
    expect(compareWithHistory(seen, { device: 'Chrome/Windows/desktop', country: 'DE' })).toEqual({
      newDevice: false,
      newLocation: false,
    });
    expect(compareWithHistory(seen, { device: 'Firefox/Linux/desktop', country: 'US' })).toEqual({
      newDevice: true,
      newLocation: true,
    });
    expect(compareWithHistory(seen, { device: 'Chrome/Windows/desktop' })).toEqual({
      newDevice: false,
      newLocation: false,
    });
    expect(compareWithHistory([{ device: 'a/b/c', at }], { device: 'a/b/c', country: 'US' })).toEqual({
      newDevice: false,
      newLocation: false,
    });
  });
});

let redis: RedisHandle | undefined;
const withRedis = needTool('redis-server', 'redis-server', haveRedis());
beforeAll(async () => {
  if (withRedis) redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

const stores: [string, () => Partial<ConfigInput> & { upstream?: undefined }, boolean][] = [
  ['memory', () => ({}), false],
  [
    'redis',
    () => ({ store: { url: redis?.url ?? '', keyPrefix: `h${randomUUID().slice(0, 8)}:` } }),
    !withRedis,
  ],
];

describe.each(stores)('login history on the %s store', (_name, storeConfig, skip) => {
  const de = () => addressIn('DE');
  const us = () => addressIn('US');

  async function gateway(clock = testClock(Date.now())) {
    const gw = await startGateway(
      {
        ...storeConfig(),
        sessions: { limit: 5 },
        geo: { database: GEO_DB_V4 },
        trustedProxies: ['127.0.0.1'],
        notify: { loginHeader: true },
      },
      { now: clock.now },
    );
    await waitUntil('the store', () => gw.gateway.isReady());
    return { gw, clock };
  }

  const from = (ua: string, ip: string) => ({ 'user-agent': ua, 'x-forwarded-for': ip });

  it.skipIf(skip)(
    "never flags a user's first login, flags a new device and a new country after it",
    async () => {
      const { gw } = await gateway();
      const user = `hist-${randomUUID()}`;
      const first = await gw.loginJson(user, from(UA.chromeWindows, de().ip));
      expect(first.response.status).toBe(200);
      const [row] = await rows(gw, first.token);
      expect(row).toMatchObject({ newDevice: false, newLocation: false, geo: de().geo });
      expect(gw.logs.audit('session.new_device')).toEqual([]);

      // Same device and country (another address of the same country would do): nothing new.
      const again = await gw.loginJson(user, from(UA.chromeWindows, de().ip));
      expect((await rows(gw, again.token)).find((r) => r.current)).toMatchObject({
        newDevice: false,
        newLocation: false,
      });

      const phone = await gw.loginJson(user, from(UA.safariIphone, de().ip));
      expect((await rows(gw, phone.token)).find((r) => r.current)).toMatchObject({
        newDevice: true,
        newLocation: false,
      });

      const abroad = await gw.loginJson(user, from(UA.chromeWindows, us().ip));
      const listed = await rows(gw, abroad.token);
      expect(listed.find((r) => r.current)).toMatchObject({
        newDevice: false,
        newLocation: true,
        geo: { country: 'US' },
      });
      // The earlier rows keep their own flags.
      expect(listed.filter((r) => r.newDevice).map((r) => r.id)).toHaveLength(1);

      const both = await gw.loginJson(user, from(UA.firefoxLinux, us().ip.replace(/\.1$/, '.2')));
      expect(both.response.status).toBe(200);
      const flagged = gw.logs.audit('session.new_device');
      expect(flagged.map((l) => [l.newDevice ?? false, l.newLocation ?? false])).toEqual([
        [true, false],
        [false, true],
        [true, false],
      ]);
      expect(flagged[1]).toMatchObject({
        user,
        place: expect.stringMatching(/, US$/) as unknown,
        geo: { country: 'US' },
      });
      const created = gw.logs.audit('session.created');
      expect(created).toHaveLength(5);
      expect(created[0]).not.toHaveProperty('newDevice');
      expect(created[2]).toMatchObject({ newDevice: true });
      expect(await counter(gw, 'device')).toBe(2);
      expect(await counter(gw, 'location')).toBe(1);
    },
  );

  it.skipIf(skip)(
    'forgets a device after 90 days without it: the history window, on an injected clock',
    async () => {
      const { gw, clock } = await gateway();
      const user = `hist-${randomUUID()}`;
      await gw.loginJson(user, from(UA.chromeWindows, de().ip));
      await gw.loginJson(user, from(UA.safariIphone, de().ip));
      clock.advance(HISTORY_WINDOW - 60_000);
      // The phone's entry (recorded at the same time) is still in the window: not new.
      const phone = await gw.loginJson(user, from(UA.safariIphone, de().ip));
      expect((await rows(gw, phone.token)).find((r) => r.current)).toMatchObject({ newDevice: false });
      clock.advance(120_000);
      // Chrome's last login is now more than 90 days ago: new again (the phone, seen a minute ago, is not).
      const chrome = await gw.loginJson(user, from(UA.chromeWindows, de().ip));
      expect((await rows(gw, chrome.token)).find((r) => r.current)).toMatchObject({
        newDevice: true,
        newLocation: false,
      });
    },
  );

  it.skipIf(skip)('does not record a refused login: its device stays new', async () => {
    const clock = testClock(Date.now());
    const gw = await startGateway(
      {
        ...storeConfig(),
        sessions: { limit: 1, onLimit: 'reject-new' },
        geo: { database: GEO_DB_V4 },
        trustedProxies: ['127.0.0.1'],
      },
      { now: clock.now },
    );
    await waitUntil('the store', () => gw.gateway.isReady());
    const user = `hist-${randomUUID()}`;
    expect((await gw.loginJson(user, from(UA.chromeWindows, de().ip))).response.status).toBe(200);
    expect((await gw.loginJson(user, from(UA.safariIphone, de().ip))).response.status).toBe(409);
    expect((await gw.admin(`/admin/users/${user}/sessions`, { method: 'DELETE' })).status).toBe(200);
    const phone = await gw.loginJson(user, from(UA.safariIphone, de().ip));
    expect(phone.response.status).toBe(200);
    expect((await rows(gw, phone.token)).find((r) => r.current)).toMatchObject({ newDevice: true });
  });
});

describe("the memory store's login history", () => {
  it('is forgotten by the sweep once its newest entry is past the window, so memory stays bounded', async () => {
    const clock = { value: Date.now() };
    const store = new MemorySessionStore({ now: () => clock.value });
    const bounds = { max: 20, window: HISTORY_WINDOW };
    await store.history.record('old', { device: 'a/b/c', at: clock.value }, bounds);
    clock.value += HISTORY_WINDOW / 2;
    await store.history.record('recent', { device: 'a/b/c', at: clock.value }, bounds);
    store.sweep();
    expect(store.history.size()).toBe(2);
    clock.value += HISTORY_WINDOW / 2;
    store.sweep();
    expect(store.history.size()).toBe(1);
    expect(await store.history.read('recent', 0)).toHaveLength(1);
    expect(await store.history.read('old', 0)).toEqual([]);
    await store.close();
  });
});
