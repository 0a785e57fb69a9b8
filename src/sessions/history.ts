/**
 * "New device, new place": a user's login history (the last HISTORY_MAX device/country pairs of the
 * last HISTORY_WINDOW, kept by the store) and how a login compares with it. Pure: no store, no HTTP.
 */
import { UAParser } from 'ua-parser-js';
import type { LoginHistoryEntry } from '../model.js';
import { deviceClass } from './device.js';

/** Distinct device/country pairs a user's history keeps (the oldest leave first). */
export const HISTORY_MAX = 20;
/** Milliseconds an entry counts: 90 days. */
export const HISTORY_WINDOW = 90 * 24 * 3_600_000;

/** Bounds of a name part: ua-parser-js takes some names from the agent itself. */
const PART_MAX = 40;

/** A name part as the history keeps it: no separators or control characters, bounded. */
function part(name: string | undefined): string {
  if (!name) return '?';
  // eslint-disable-next-line no-control-regex
  return name.replace(/[\u0000-\u001f\u007f/]/g, ' ').slice(0, PART_MAX);
}

const MEMO_MAX = 512;
const MEMO_MAX_KEY = 512;
const memo = new Map<string, string>();

/**
 * The device a login came from, coarse enough to stay the same across browser updates: browser family,
 * OS and device class (`Chrome/Windows/desktop`). Any string gives one (garbage gives `?/?/other`).
 * A parse costs about a millisecond (ua-parser-js 2, two parses with the class), so the answers for
 * the last few hundred agents are kept, as device.ts keeps its own (cleared wholesale when full).
 */
export function deviceFingerprint(userAgent: string): string {
  let fp = memo.get(userAgent);
  if (fp === undefined) {
    const r = new UAParser(userAgent).getResult();
    fp = `${part(r.browser.name)}/${part(r.os.name)}/${deviceClass(userAgent)}`;
    if (userAgent.length <= MEMO_MAX_KEY) {
      if (memo.size >= MEMO_MAX) memo.clear();
      memo.set(userAgent, fp);
    }
  }
  return fp;
}

/** What a login has that its user's history has not. */
export interface Unfamiliar {
  readonly newDevice: boolean;
  readonly newLocation: boolean;
}

const FAMILIAR: Unfamiliar = Object.freeze({ newDevice: false, newLocation: false });

/**
 * Compares a login with its user's history. Nothing is new for a user without history (a first login,
 * or none in the window): there is nothing to compare with. A country is new only when the history
 * knows some country (entries written before `geo.database` was set have none) and not this one.
 */
export function compareWithHistory(
  history: readonly LoginHistoryEntry[],
  login: { readonly device: string; readonly country?: string | undefined },
): Unfamiliar {
  if (history.length === 0) return FAMILIAR;
  let knownDevice = false;
  let anyCountry = false;
  let knownCountry = false;
  for (const e of history) {
    if (e.device === login.device) knownDevice = true;
    if (e.country !== undefined) {
      anyCountry = true;
      if (e.country === login.country) knownCountry = true;
    }
  }
  return {
    newDevice: !knownDevice,
    newLocation: login.country !== undefined && anyCountry && !knownCountry,
  };
}
