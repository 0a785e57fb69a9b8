import { BlockList, isIP } from 'node:net';
import { parseAddressRange } from '../config/addresses.js';
import { ConfigError } from '../errors.js';

/**
 * Which peers may tell us the client's address. Client-sent X-Forwarded-* / Forwarded headers are
 * dropped unless the peer is a trusted proxy; the gateway then sets its own (RFC 7239 section 8.3).
 */
export interface TrustedProxies {
  isTrusted(address: string | undefined): boolean;
}

/**
 * Entries as `trustedProxies` takes them (IPs and CIDR ranges, parsed by the config's own parser, so
 * what `check` accepts is exactly what compiles). A bad entry is a ConfigError with its key path, for
 * callers that did not go through the schema.
 */
export function compileTrustedProxies(entries: readonly string[]): TrustedProxies {
  if (entries.length === 0) return { isTrusted: () => false };
  const list = new BlockList();
  const problems = entries.flatMap((entry, i) => {
    const range = parseAddressRange(entry);
    if (typeof range === 'string') return [{ path: `trustedProxies[${i}]`, message: range }];
    if (range.prefix !== undefined) list.addSubnet(range.address, range.prefix, range.family);
    else list.addAddress(range.address, range.family);
    return [];
  });
  if (problems.length > 0) throw new ConfigError(problems);
  return {
    isTrusted(address) {
      if (address === undefined) return false;
      const a = address.startsWith('::ffff:') ? address.slice(7) : address;
      const version = isIP(a);
      return version !== 0 && list.check(a, version === 6 ? 'ipv6' : 'ipv4');
    },
  };
}

/** The client's address: the first untrusted hop of X-Forwarded-For when the peer is trusted. */
export function clientAddress(
  peer: string | undefined,
  forwardedFor: string | undefined,
  trusted: TrustedProxies,
): string {
  const p = peer?.startsWith('::ffff:') ? peer.slice(7) : (peer ?? '');
  if (forwardedFor === undefined || !trusted.isTrusted(p)) return p;
  const hops = forwardedFor
    .split(',')
    .map((h) => h.trim())
    .filter(Boolean);
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hops[i] as string;
    if (!trusted.isTrusted(hop)) return hop;
  }
  return hops[0] ?? p;
}
