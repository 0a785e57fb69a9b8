import { UAParser } from 'ua-parser-js';
import type { Geo, SessionRecord } from '../model.js';
import { describePlace } from './place.js';

const MEMO_MAX = 512;
const MEMO_MAX_KEY = 512;
const memo = new Map<string, string>();

/**
 * A readable device from a User-Agent: "Chrome on Windows", "Safari on iOS", or "Unknown device".
 * Parsing costs tens of microseconds and audit lines of rejected requests ask for it, so the last few
 * hundred answers are kept (a pure function's memo: cleared wholesale when full, so at most
 * 512 x 512 characters, and the same few agents repeat).
 */
export function describeDevice(userAgent: string): string {
  if (!userAgent) return 'Unknown device';
  if (userAgent.length > MEMO_MAX_KEY) return parseDevice(userAgent);
  let d = memo.get(userAgent);
  if (d === undefined) {
    if (memo.size >= MEMO_MAX) memo.clear();
    d = parseDevice(userAgent);
    memo.set(userAgent, d);
  }
  return d;
}

/** The device classes a limit can be set per (`sessions.devices`). */
export const DEVICE_CLASSES = ['desktop', 'mobile', 'tablet', 'other'] as const;
export type DeviceClass = (typeof DEVICE_CLASSES)[number];

const classMemo = new Map<string, DeviceClass>();

/**
 * The device class of a User-Agent: `mobile` and `tablet` as ua-parser-js types them, `desktop` for a
 * browser on a desktop OS (ua-parser-js leaves its type unset), `other` for the rest (no agent, a
 * script, a TV). Read at login only; memoised like describeDevice.
 */
export function deviceClass(userAgent: string): DeviceClass {
  if (!userAgent) return 'other';
  let c = classMemo.get(userAgent);
  if (c === undefined) {
    c = parseClass(userAgent);
    if (userAgent.length <= MEMO_MAX_KEY) {
      if (classMemo.size >= MEMO_MAX) classMemo.clear();
      classMemo.set(userAgent, c);
    }
  }
  return c;
}

const DESKTOP_OS =
  /^(windows|mac os|macos|linux|ubuntu|debian|fedora|chrome os|chromium os|freebsd|openbsd)/i;

function parseClass(userAgent: string): DeviceClass {
  const r = new UAParser(userAgent).getResult();
  if (r.device.type === 'mobile') return 'mobile';
  if (r.device.type === 'tablet') return 'tablet';
  if (r.device.type === undefined && r.browser.name && r.os.name && DESKTOP_OS.test(r.os.name))
    return 'desktop';
  return 'other';
}

function parseDevice(userAgent: string): string {
  const r = new UAParser(userAgent).getResult();
  const browser = r.browser.name;
  const os = r.os.name;
  if (browser && os) return `${browser} on ${os}`;
  if (browser) return browser;
  if (os) return os;
  return userAgent.length > 40 ? `${userAgent.slice(0, 40)}…` : userAgent;
}

/**
 * The JSON view of a session, shared by the admin API and the self-service page (both may import
 * `sessions/`, neither may import the other's layer). Times are ISO 8601; never a token id.
 */
export interface SessionView {
  readonly id: string;
  readonly user: string;
  readonly createdAt: string;
  readonly lastSeenAt: string;
  readonly expiresAt: string;
  readonly ip: string;
  readonly userAgent: string;
  /** describeDevice(userAgent). */
  readonly device: string;
  /** From the configured `locationHeader` at login (a CDN's country header), or null. */
  readonly location: string | null;
  /** From `geo.database` at login (the header's two-letter country winning), or null. */
  readonly geo: Geo | null;
  /** describePlace(geo, location): "Berlin, DE", or null when nothing is known. */
  readonly place: string | null;
  /** The login's device or country was not in the user's login history. */
  readonly newDevice: boolean;
  readonly newLocation: boolean;
}

export function sessionView(s: SessionRecord, lastSeenAt: number = s.lastSeenAt): SessionView {
  return {
    id: s.id,
    user: s.user,
    createdAt: new Date(s.createdAt).toISOString(),
    lastSeenAt: new Date(Math.max(lastSeenAt, s.lastSeenAt)).toISOString(),
    expiresAt: new Date(s.expiresAt).toISOString(),
    ip: s.ip,
    userAgent: s.userAgent,
    device: describeDevice(s.userAgent),
    location: s.location ?? null,
    geo: s.geo ?? null,
    place: describePlace(s.geo, s.location) ?? null,
    newDevice: s.newDevice === true,
    newLocation: s.newLocation === true,
  };
}
