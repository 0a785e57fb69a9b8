import type { Geo } from '../model.js';

/**
 * A readable place for messages and pages: "Berlin, DE", "Bavaria, DE", "DE", or the `locationHeader`
 * value when there is no geo answer; undefined when nothing is known.
 */
export function describePlace(geo: Geo | undefined, location?: string): string | undefined {
  if (geo?.country) {
    const near = geo.city ?? geo.region;
    return near ? `${near}, ${geo.country}` : geo.country;
  }
  return location || undefined;
}

/**
 * The location a login records: the geo database's answer, with the `locationHeader` country winning
 * when the header holds one (two letters; anything else is left to `location` alone and never breaks a
 * login). A header country other than the database's keeps no region or city of the database's.
 */
export function loginGeo(found: Geo | undefined, header: string | undefined): Geo | undefined {
  const code = header?.trim();
  if (code === undefined || !/^[A-Za-z]{2}$/.test(code)) return found;
  const country = code.toUpperCase();
  return found?.country === country ? found : { country };
}
