import { UAParser } from 'ua-parser-js';

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
