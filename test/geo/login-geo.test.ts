/**
 * Where a login came from, through a real gateway in front of the test app: the client address the
 * trusted proxy names (never one a client forges) located with the real geo database, the
 * `locationHeader` country winning, and the location on the session list, the admin API, audit lines
 * and webhook payloads. Bad input (garbage and 10 KB User-Agents, IPv6 clients, a header country that
 * is not two letters) never breaks a login.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { ConfigInput } from '../../src/config/schema.js';
import { bearer, startGateway, UA, type TestGateway } from '../support/gateway.js';
import { listenApp } from '../support/upstreams.js';
import { waitUntil } from '../support/wait.js';
import { addressIn, addressV6, GEO_DB_V4, GEO_DB_V6 } from './addresses.js';

interface Row {
  current: boolean;
  ip: string;
  location: string | null;
  geo: { country?: string; region?: string; city?: string } | null;
  place: string | null;
}

async function current(gw: TestGateway, token: string): Promise<Row> {
  const res = await fetch(`${gw.url}/.sessiongate/sessions`, {
    headers: { ...bearer(token), accept: 'application/json' },
  });
  expect(res.status).toBe(200);
  const row = ((await res.json()) as { sessions: Row[] }).sessions.find((r) => r.current);
  if (!row) throw new Error('no current session listed');
  return row;
}

function geoGateway(config: Partial<ConfigInput> & { upstream?: undefined } = {}): Promise<TestGateway> {
  return startGateway({
    sessions: { limit: 5 },
    geo: { database: GEO_DB_V4 },
    trustedProxies: ['127.0.0.1'],
    ...config,
  });
}

async function body(req: IncomingMessage): Promise<string> {
  let s = '';
  for await (const chunk of req) s += String(chunk);
  return s;
}

describe('where a login came from', () => {
  it('records the country, region and city of the address the trusted proxy names', async () => {
    const gw = await geoGateway();
    const de = addressIn('DE');
    const { token } = await gw.loginJson('ada', { 'x-forwarded-for': de.ip, 'user-agent': UA.chromeWindows });
    const row = await current(gw, token);
    expect(row).toMatchObject({ ip: de.ip, geo: de.geo, place: `${de.geo.city}, DE`, location: null });

    const admin = await gw.admin('/admin/users/ada/sessions');
    const listed = ((await admin.json()) as { sessions: Row[] }).sessions;
    expect(listed).toHaveLength(1);
    expect(listed[0]).toMatchObject({
      geo: de.geo,
      place: `${de.geo.city}, DE`,
      newDevice: false,
      newLocation: false,
    });

    expect(gw.logs.audit('session.created')[0]).toMatchObject({
      ip: de.ip,
      geo: de.geo,
      place: `${de.geo.city}, DE`,
    });
  });

  it('never takes the address from a header the client could forge', async () => {
    // No trusted proxy: X-Forwarded-For is the client's own claim, the peer (loopback) has no location.
    const gw = await geoGateway({ trustedProxies: [] });
    const { token } = await gw.loginJson('bea', { 'x-forwarded-for': addressIn('DE').ip });
    expect(await current(gw, token)).toMatchObject({ ip: '127.0.0.1', geo: null, place: null });
  });

  it("lets the locationHeader's two-letter country win, keeping the database's city only when they agree", async () => {
    const gw = await geoGateway({ locationHeader: 'cf-ipcountry' });
    const de = addressIn('DE');
    const fr = await gw.loginJson('cy', { 'x-forwarded-for': de.ip, 'cf-ipcountry': 'fr' });
    expect(await current(gw, fr.token)).toMatchObject({
      geo: { country: 'FR' },
      place: 'FR',
      location: 'fr',
    });
    const same = await gw.loginJson('cy', { 'x-forwarded-for': de.ip, 'cf-ipcountry': 'DE' });
    expect((await current(gw, same.token)).geo).toEqual(de.geo);
    // Not a country code: kept as the header's value, ignored for the country.
    const odd = await gw.loginJson('cy', { 'x-forwarded-for': de.ip, 'cf-ipcountry': 'Germany!' });
    expect(await current(gw, odd.token)).toMatchObject({ geo: de.geo, location: 'Germany!' });
  });

  it('sends the location, a place text and the flags in webhook payloads, and session.new_device', async () => {
    const received: Record<string, unknown>[] = [];
    const receiver = await listenApp((req, res) => {
      void body(req).then((b) => {
        received.push(JSON.parse(b) as Record<string, unknown>);
        res.writeHead(200).end('ok');
      });
    });
    onTestFinished(() => receiver.close());
    const gw = await geoGateway({
      notify: {
        webhook: {
          url: `${receiver.url}/hook`,
          secret: 'a-webhook-secret-0123456789',
          events: ['session.created', 'session.new_device'],
        },
      },
    });
    const de = addressIn('DE');
    const us = addressIn('US');
    const user = `wh-${randomUUID()}`;
    await gw.loginJson(user, { 'x-forwarded-for': de.ip, 'user-agent': UA.chromeWindows });
    await gw.loginJson(user, { 'x-forwarded-for': us.ip, 'user-agent': UA.firefoxLinux });
    await waitUntil('three deliveries', () => received.length >= 3);
    expect(received.map((p) => p.type)).toEqual(['session.created', 'session.created', 'session.new_device']);
    expect(received[0]).toMatchObject({
      geo: de.geo,
      place: `${de.geo.city}, DE`,
      newDevice: false,
      newLocation: false,
      text: `New login from Chrome on Windows in ${de.geo.city}, DE`,
    });
    const usPlace = `${us.geo.city ?? us.geo.region ?? ''}, US`.replace(/^, /, '');
    expect(received[2]).toMatchObject({
      user,
      geo: us.geo,
      place: usPlace,
      newDevice: true,
      newLocation: true,
      text: `New login from Firefox on Linux in ${usPlace} (a new device and a new location)`,
    });
    expect(received[1]).toMatchObject({ newDevice: true, newLocation: true });
  });

  it.each([
    ['a garbage User-Agent', { 'user-agent': '((( ;;; ))) <script>"\\ \u00ff\u00fe/0/0/0' }],
    ['a 10 KB User-Agent', { 'user-agent': `${UA.chromeWindows} ${'x'.repeat(10_240)}` }],
    ['a header country that is not two letters', { 'cf-ipcountry': 'XX-not-a-country' }],
    ['a header country of one letter', { 'cf-ipcountry': 'D' }],
    ['a forwarded address that is not one', { 'x-forwarded-for': 'not-an-address' }],
  ])('never breaks a login over %s', async (_what, headers) => {
    const gw = await geoGateway({ locationHeader: 'cf-ipcountry' });
    const user = `bad-${randomUUID()}`;
    await gw.loginJson(user, { 'user-agent': UA.safariIphone });
    const { token, response } = await gw.loginJson(user, headers);
    expect(response.status).toBe(200);
    const row = await current(gw, token);
    expect(row.geo).toBeNull();
    expect((await fetch(`${gw.url}/api/me`, { headers: bearer(token) })).status).toBe(200);
  });

  it('locates an IPv6 client with an IPv6 database, and an IPv6 client of an IPv4 database has no location', async () => {
    const v6 = addressV6();
    const gw6 = await geoGateway({ geo: { database: GEO_DB_V6 } });
    const a = await gw6.loginJson('dee', { 'x-forwarded-for': v6.ip });
    expect(a.response.status).toBe(200);
    expect(await current(gw6, a.token)).toMatchObject({ ip: v6.ip, geo: v6.geo });

    const gw4 = await geoGateway();
    const b = await gw4.loginJson('dee', { 'x-forwarded-for': v6.ip });
    expect(b.response.status).toBe(200);
    expect(await current(gw4, b.token)).toMatchObject({ ip: v6.ip, geo: null });
    const c = await gw4.loginJson('dee', { 'x-forwarded-for': 'fe80::1' });
    expect(c.response.status).toBe(200);
    expect((await current(gw4, c.token)).geo).toBeNull();
  });
});
