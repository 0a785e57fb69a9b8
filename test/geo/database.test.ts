/**
 * `geo.database` on the real file of the @ip-location-db package: what it places and what it never
 * does (private addresses, garbage), a missing or corrupt file as a configuration error naming the key,
 * and the reload when the file is replaced (a bad replacement logged, the database in use kept).
 */
import { copyFileSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { geoOfRecord, openGeoDatabase, type GeoDatabase } from '../../src/geo/database.js';
import { locatableAddress } from '../../src/geo/addresses.js';
import { captureLogs } from '../support/gateway.js';
import { waitUntil } from '../support/wait.js';
import { addressIn, addressV6, GEO_DB_V4, GEO_DB_V6 } from './addresses.js';

function open(
  path: string,
  onReload?: () => void,
): { db: GeoDatabase; logs: ReturnType<typeof captureLogs>['logs'] } {
  const { logger, logs } = captureLogs();
  const db = openGeoDatabase({ path, logger, ...(onReload ? { onReload } : {}) });
  onTestFinished(() => db.stop());
  return { db, logs };
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sg-geo-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

describe('geo database', () => {
  it('places a German and a US address with country, region and city as the file has them', () => {
    const { db } = open(GEO_DB_V4);
    const de = addressIn('DE');
    const us = addressIn('US');
    expect(db.locate(de.ip)).toEqual(de.geo);
    expect(db.locate(de.ip)?.city).toMatch(/\S/);
    expect(db.locate(us.ip)?.country).toBe('US');
    // The IPv4-mapped form of the same address is the same place.
    expect(db.locate(`::ffff:${de.ip}`)).toEqual(de.geo);
  });

  it('places an IPv6 address with the IPv6 file, and none with the IPv4-only file', () => {
    const a = addressV6();
    expect(open(GEO_DB_V6).db.locate(a.ip)).toEqual(a.geo);
    expect(open(GEO_DB_V4).db.locate(a.ip)).toBeUndefined();
  });

  it.each([
    '10.1.2.3',
    '172.16.0.1',
    '192.168.1.1',
    '127.0.0.1',
    '169.254.10.10',
    '100.64.0.1',
    '0.0.0.0',
    '::1',
    '::',
    'fe80::1',
    'fd12:3456::1',
    'fc00::1',
    '::ffff:192.168.0.1',
  ])('gives the private, loopback or link-local address %s no location', (ip) => {
    expect(locatableAddress(ip)).toBeUndefined();
    expect(open(GEO_DB_V4).db.locate(ip)).toBeUndefined();
  });

  it.each([
    ['empty', ''],
    ['a word', 'not-an-ip'],
    ['an octet past 255', '999.1.1.1'],
    ['three octets', '1.2.3'],
    ['10 KB of text', 'x'.repeat(10_000)],
    ['bad IPv6', '2001:db8::zz'],
    ['a zone id', '1.2.3.4%eth0'],
  ])('never throws for an address that is %s', (_what, ip) => {
    expect(open(GEO_DB_V4).db.locate(ip)).toBeUndefined();
  });

  it('reads both record layouts: MaxMind names and ip-location-db flat fields', () => {
    expect(
      geoOfRecord({
        country: { iso_code: 'de', names: { en: 'Germany' } },
        subdivisions: [{ names: { en: 'Berlin' } }],
        city: { names: { en: 'Berlin' } },
      }),
    ).toEqual({ country: 'DE', region: 'Berlin', city: 'Berlin' });
    expect(geoOfRecord({ country_code: 'US', state1: '', city: '' })).toEqual({ country: 'US' });
    expect(geoOfRecord({ country_code: 'Germany' })).toBeUndefined();
    expect(geoOfRecord(null)).toBeUndefined();
  });

  /** The problems of the ConfigError `fn` throws (a test failure when it throws nothing else). */
  function configProblems(fn: () => unknown): ConfigError['problems'] {
    try {
      fn();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as ConfigError).problems;
    }
    throw new Error('expected a ConfigError, nothing was thrown');
  }

  it('refuses a missing file as a configuration error naming geo.database', () => {
    const { logger } = captureLogs();
    const path = join(tempDir(), 'missing.mmdb');
    expect(configProblems(() => openGeoDatabase({ path, logger }))).toEqual([
      { path: 'geo.database', message: `cannot read ${path}: ENOENT` },
    ]);
  });

  it('refuses a corrupt file as a configuration error naming geo.database', () => {
    const { logger } = captureLogs();
    const path = join(tempDir(), 'corrupt.mmdb');
    writeFileSync(path, 'this is not a MaxMind database'.repeat(100));
    const [problem, ...more] = configProblems(() => openGeoDatabase({ path, logger }));
    expect(more).toEqual([]);
    expect(problem?.path).toBe('geo.database');
    expect(problem?.message).toContain(`${path} is not a MaxMind database`);
  });

  it('reloads the file when it is replaced, and keeps the one in use when the replacement is corrupt', async () => {
    const dir = tempDir();
    const path = join(dir, 'city.mmdb');
    copyFileSync(GEO_DB_V4, path);
    let reloaded: () => void = () => {};
    const { db, logs } = open(path, () => reloaded());
    const de = addressIn('DE');
    expect(db.locate(de.ip)).toEqual(de.geo);

    // A corrupt file renamed over it (as an updater replaces it): logged, the old one still answers.
    writeFileSync(join(dir, 'bad.tmp'), 'garbage'.repeat(1000));
    renameSync(join(dir, 'bad.tmp'), path);
    const warning = await waitUntil('the reload warning', () =>
      logs.lines().find((l) => l.code === 'SG_WARN_GEO_RELOAD'),
    );
    expect(warning).toMatchObject({ level: 'warn', key: 'geo.database' });
    expect(String(warning.reason)).toContain('is not a MaxMind database');
    expect(db.locate(de.ip)).toEqual(de.geo);

    // The IPv6-only file renamed over it: used from then on (it does not know IPv4 addresses).
    const done = new Promise<void>((resolve) => (reloaded = resolve));
    copyFileSync(GEO_DB_V6, join(dir, 'next.tmp'));
    renameSync(join(dir, 'next.tmp'), path);
    await done;
    expect(db.locate(de.ip)).toBeUndefined();
    expect(db.locate(addressV6().ip)).toEqual(addressV6().geo);
    expect(logs.lines().find((l) => l.event === 'geo_reloaded')).toMatchObject({ key: 'geo.database', path });
  });
});
