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
