import { UAParser } from 'ua-parser-js';
import type { SessionRecord } from '../model.js';

/** A readable device from a User-Agent: "Chrome on Windows", "Safari on iOS", or "Unknown device". */
export function describeDevice(userAgent: string): string {
  if (!userAgent) return 'Unknown device';
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
  };
}
