/**
 * `geo.database`: a MaxMind-format file (GeoLite2/GeoIP2 City or Country, DB-IP lite, the
 * ip-location-db files) read with the `maxmind` package at startup (a problem is a configuration error
 * naming the key), then watched and read again when it changes; a changed file that cannot be read is
 * logged and the one in use kept. A lookup never throws: a bad address, a private one or a database
 * that does not know it has no location.
 */
import { readFileSync, statSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { Reader, type Response } from 'maxmind';
import { ConfigError } from '../errors.js';
import type { Geo } from '../model.js';
import type { Logger } from '../observability/logger.js';
import { locatableAddress } from './addresses.js';

const KEY = 'geo.database';

/** Why a read failed, short: the errno code (`ENOENT`), else the message. */
function reason(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? (err as Error).message;
}

/** The file's identity for "has it changed": size and modification time (no read of 30 MB per poll). */
function stampOf(path: string): string | undefined {
  try {
    const st = statSync(path);
    return `${st.size}:${st.mtimeMs}:${st.ino}`;
  } catch {
    return undefined;
  }
}

/** Reads and opens the file, or says what is wrong with it. */
function tryOpen(path: string): Reader<Response> | string {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    return `cannot read ${path}: ${reason(err)}`;
  }
  try {
    const reader = new Reader<Response>(bytes);
    // A file whose metadata parses but whose tree does not fails here, not on the first login.
    reader.get('8.8.8.8');
    return reader;
  } catch (err) {
    return `${path} is not a MaxMind database: ${(err as Error).message}`;
  }
}

/** One part of a record: a string, or the English name of a MaxMind `names` object. */
function text(value: unknown): string | undefined {
  if (typeof value === 'string') return value.length > 0 && value.length <= 100 ? value : undefined;
  if (typeof value === 'object' && value !== null) {
    const names = (value as { names?: unknown }).names;
    if (typeof names === 'object' && names !== null) return text((names as { en?: unknown }).en);
  }
  return undefined;
}

/**
 * The Geo of a record in either layout: MaxMind's (`country.iso_code`, `subdivisions[0].names`,
 * `city.names`) or ip-location-db's flat one (`country_code`, `state1`, `city`). Only what it has.
 */
export function geoOfRecord(record: unknown): Geo | undefined {
  if (typeof record !== 'object' || record === null) return undefined;
  const r = record as Record<string, unknown>;
  const iso =
    text(r.country_code) ??
    (typeof r.country === 'object' && r.country !== null
      ? text((r.country as { iso_code?: unknown }).iso_code)
      : undefined);
  const country = iso !== undefined && /^[A-Za-z]{2}$/.test(iso) ? iso.toUpperCase() : undefined;
  const subdivisions = Array.isArray(r.subdivisions) ? (r.subdivisions as unknown[]) : [];
  const region = text(r.state1) ?? text(subdivisions[0]);
  const city = text(r.city);
  if (country === undefined) return undefined;
  return { country, ...(region !== undefined ? { region } : {}), ...(city !== undefined ? { city } : {}) };
}

export interface GeoDatabase {
  /** Where the address is, as far as the file knows; undefined for private addresses. Never throws. */
  locate(address: string): Geo | undefined;
  /**
   * Reads the file again if it changed (its watch and poll call this); keeps the one in use when the
   * new one is unusable.
   */
  reload(): void;
  stop(): void;
}

export interface GeoDatabaseOptions {
  readonly path: string;
  readonly logger: Logger;
  /** Milliseconds between two reads of the file's modification, behind the directory watch. @default 60000 */
  readonly interval?: number;
  /** Called after each reload that replaced the reader (tests wait on it). */
  readonly onReload?: () => void;
}

/** Change events come in bursts (a file written in parts, then renamed over the old one). */
const SETTLE = 100;

/**
 * Opens the database (a ConfigError naming `geo.database` when it cannot) and watches its directory
 * (an updater such as geoipupdate renames a new file over the old one, which a watch on the file
 * itself would miss), with a poll as the backstop for file systems without change events.
 */
export function openGeoDatabase(options: GeoDatabaseOptions): GeoDatabase {
  const { path, logger: log } = options;
  const first = tryOpen(path);
  if (typeof first === 'string') throw new ConfigError([{ path: KEY, message: first }]);
  let reader = first;
  let stamp = stampOf(path);
  let failed: string | undefined;
  let settle: NodeJS.Timeout | undefined;

  const reload = () => {
    const now = stampOf(path);
    // Unchanged since the last read, good or bad: nothing to do (the poll's usual case).
    if (now !== undefined && now === stamp) return;
    stamp = now;
    const got = tryOpen(path);
    if (typeof got === 'string') {
      // Once per distinct problem: the poll would repeat it every interval.
      if (got !== failed)
        log.warn({ code: 'SG_WARN_GEO_RELOAD', key: KEY, reason: got }, 'geo database not reloaded');
      failed = got;
      return;
    }
    failed = undefined;
    reader = got;
    log.info({ event: 'geo_reloaded', key: KEY, path }, 'geo database reloaded');
    options.onReload?.();
  };
  const soon = () => {
    clearTimeout(settle);
    settle = setTimeout(reload, SETTLE);
    settle.unref();
  };

  let watcher: FSWatcher | undefined;
  try {
    const name = basename(path);
    watcher = watch(dirname(path), { persistent: false }, (_event, file) => {
      if (file === null || file === name) soon();
    });
    // A directory that goes away (an unmounted volume) leaves the poll to notice what comes back.
    watcher.on('error', () => watcher?.close());
  } catch (err) {
    log.warn(
      { code: 'SG_WARN_GEO_RELOAD', key: KEY, reason: `cannot watch: ${reason(err)}` },
      'polling only',
    );
  }
  const poll = setInterval(reload, options.interval ?? 60_000);
  poll.unref();

  return {
    locate(address) {
      const a = locatableAddress(address);
      if (a === undefined) return undefined;
      // An IPv4-only file (ip-location-db ships one per family) answers an IPv6 address from the bits
      // of some IPv4 network: a wrong place, not a missing one.
      if (reader.metadata.ipVersion === 4 && a.includes(':')) return undefined;
      try {
        return geoOfRecord(reader.get(a));
      } catch {
        // A record the library cannot decode (a damaged file that passed the first lookup): no location.
        return undefined;
      }
    },
    reload,
    stop() {
      clearInterval(poll);
      clearTimeout(settle);
      watcher?.close();
    },
  };
}

/** Whether the file opens (`sessiongate check`), as a ConfigError naming `geo.database` when not. */
export function checkGeoDatabase(path: string): void {
  const got = tryOpen(path);
  if (typeof got === 'string') throw new ConfigError([{ path: KEY, message: got }]);
}
