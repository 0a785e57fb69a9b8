/**
 * Network addresses of the configuration: trusted-proxy entries (IPs and CIDR ranges), `host:port`
 * lists (Redis Sentinel and Cluster) and full http(s) URLs. Parsed here once, so `sessiongate check`
 * reports a bad entry with its key path and startup can never meet one (`proxy/client-address.ts`
 * compiles trusted proxies with the same parser).
 */
import { isIP } from 'node:net';
import { z } from 'zod';

/** One trusted-proxy entry: an address, or a range when `prefix` is set. */
export interface AddressRange {
  readonly address: string;
  readonly family: 'ipv4' | 'ipv6';
  readonly prefix: number | undefined;
}

const MAPPED_V4 = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i;

/**
 * `10.0.0.1`, `10.0.0.0/8`, `::1`, `fd00::/8`; the range's host bits may be set (`10.0.0.1/8` is
 * `10.0.0.0/8`). An IPv4-mapped IPv6 entry (`::ffff:10.0.0.1`, `::ffff:10.0.0.0/104`) becomes its
 * IPv4 form, because peers are compared in that form. A message when the entry is none of these.
 */
export function parseAddressRange(entry: string): AddressRange | string {
  const slash = entry.indexOf('/');
  const addr = slash === -1 ? entry : entry.slice(0, slash);
  const bits = slash === -1 ? undefined : entry.slice(slash + 1);
  const version = isIP(addr);
  // isIP accepts zone ids (`fe80::1%eth0`); a peer address compared against it never carries one.
  if (version === 0 || addr.includes('%'))
    return `expected an IP address or a CIDR range (10.0.0.0/8, fd00::/8), got ${JSON.stringify(entry)}`;
  let family: AddressRange['family'] = version === 6 ? 'ipv6' : 'ipv4';
  const max = family === 'ipv6' ? 128 : 32;
  // Digits only: Number('') is 0, and "10.0.0.0/" must not mean "every address".
  if (bits !== undefined && (!/^\d{1,3}$/.test(bits) || Number(bits) > max))
    return `expected a prefix length from 0 to ${max} after "/", got ${JSON.stringify(entry)}`;
  let address = addr;
  let prefix = bits === undefined ? undefined : Number(bits);
  const mapped = MAPPED_V4.exec(addr);
  if (mapped && (prefix === undefined || prefix >= 96)) {
    family = 'ipv4';
    address = mapped[1] as string;
    if (prefix !== undefined) prefix -= 96;
  }
  return { address, family, prefix };
}

export const addressRange = z.string().superRefine((v, ctx) => {
  const parsed = parseAddressRange(v);
  if (typeof parsed === 'string') ctx.addIssue({ code: 'custom', message: parsed });
});

/** A DNS name (letters, digits, `-`, `_` as container names have, dots), an IPv4 address or `[IPv6]`. */
const HOST_PORT = /^(\[[^\]]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$/;

/**
 * `redis-1:26379`, `10.0.0.5:6379`, `[fd00::5]:6379`. A bare IPv6 address is refused: in `::1:6379`
 * the port cannot be told from the address.
 */
export const hostPort = z.string().superRefine((v, ctx) => {
  const m = HOST_PORT.exec(v);
  const host = m?.[1] ?? '';
  const port = Number(m?.[2]);
  const bracketed = host.startsWith('[');
  if (!m || port < 1 || port > 65535 || (bracketed && isIP(host.slice(1, -1)) !== 6)) {
    ctx.addIssue({
      code: 'custom',
      message: `expected "host:port" (redis-1:6379, 10.0.0.5:6379, [fd00::5]:6379), got ${JSON.stringify(v)}`,
    });
  }
});

/**
 * An http(s) URL kept whole (path and query included; a `#fragment` is never sent, so it is dropped).
 * Compare `upstream`, of which only the origin counts.
 */
export const fullHttpUrl = z.string().transform((v, ctx) => {
  let u: URL | undefined;
  try {
    u = new URL(v);
  } catch {
    // Reported below.
  }
  if (u === undefined || (u.protocol !== 'http:' && u.protocol !== 'https:')) {
    ctx.addIssue({
      code: 'custom',
      message: `expected an http:// or https:// URL, got ${JSON.stringify(v)}`,
    });
    return z.NEVER;
  }
  u.hash = '';
  return u.href;
});
