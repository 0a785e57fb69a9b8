import { BlockList, isIP } from 'node:net';

/**
 * Which peers may tell us the client's address. Client-sent X-Forwarded-* / Forwarded headers are
 * dropped unless the peer is a trusted proxy; the gateway then sets its own (RFC 7239 section 8.3).
 */
export interface TrustedProxies {
  isTrusted(address: string | undefined): boolean;
}

export function compileTrustedProxies(entries: readonly string[]): TrustedProxies {
  if (entries.length === 0) return { isTrusted: () => false };
  const list = new BlockList();
  for (const e of entries) {
    const [addr, bits] = e.split('/') as [string, string | undefined];
    const family = isIP(addr) === 6 ? 'ipv6' : 'ipv4';
    if (bits !== undefined) list.addSubnet(addr, Number(bits), family);
    else list.addAddress(addr, family);
  }
  return {
    isTrusted(address) {
      if (address === undefined) return false;
      const a = address.startsWith('::ffff:') ? address.slice(7) : address;
      return list.check(a, isIP(a) === 6 ? 'ipv6' : 'ipv4');
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
