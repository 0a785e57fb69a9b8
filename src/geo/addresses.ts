import { BlockList, isIP } from 'node:net';

/**
 * Addresses that are nowhere on the map: private (RFC 1918, RFC 6598 shared), loopback, link-local,
 * unspecified, unique-local and documentation-free special ranges of IPv4 and IPv6. Built once.
 */
const NOWHERE = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.168.0.0', 16],
] as const)
  NOWHERE.addSubnet(net, prefix, 'ipv4');
for (const [net, prefix] of [
  ['::', 128],
  ['::1', 128],
  ['fe80::', 10],
  ['fc00::', 7],
] as const)
  NOWHERE.addSubnet(net, prefix, 'ipv6');

/**
 * The address as the geo database is asked for it (an IPv4-mapped IPv6 address as IPv4), or undefined
 * when it has no location: not an IP address, or one of the ranges above.
 */
export function locatableAddress(address: string): string | undefined {
  const a = address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
  const version = isIP(a);
  if (version === 0) return undefined;
  return NOWHERE.check(a, version === 6 ? 'ipv6' : 'ipv4') ? undefined : a;
}
