/**
 * The client's address (proxy/client-address.ts): the peer, unless the peer is a trusted proxy, then
 * the first untrusted hop of X-Forwarded-For counted from the right (RFC 7239 section 8.3: only the
 * hops our own proxies added can be believed).
 */
import { describe, expect, it } from 'vitest';
import { clientAddress, compileTrustedProxies } from '../../src/proxy/client-address.js';

const none = compileTrustedProxies([]);
const proxies = compileTrustedProxies(['10.0.0.0/8', '192.168.1.7', 'fd00::/8']);

describe('the client address', () => {
  it('is the peer when no proxy is trusted, whatever X-Forwarded-For says', () => {
    expect(clientAddress('198.51.100.4', '203.0.113.9', none)).toBe('198.51.100.4');
  });

  it('ignores a forged X-Forwarded-For from an untrusted peer', () => {
    expect(clientAddress('198.51.100.4', '1.2.3.4, 10.0.0.1', proxies)).toBe('198.51.100.4');
  });

  it('is the peer when a trusted proxy sent no X-Forwarded-For', () => {
    expect(clientAddress('10.1.2.3', undefined, proxies)).toBe('10.1.2.3');
  });

  it('is the last hop a trusted proxy names', () => {
    expect(clientAddress('10.1.2.3', '203.0.113.9', proxies)).toBe('203.0.113.9');
  });

  it('walks a chain from the right past every trusted hop (a CIDR range and a single address)', () => {
    expect(clientAddress('10.1.2.3', '203.0.113.9, 10.9.9.9, 192.168.1.7', proxies)).toBe('203.0.113.9');
  });

  it('stops at the first untrusted hop from the right, not the leftmost value the client may have forged', () => {
    expect(clientAddress('10.1.2.3', 'forged-by-client, 198.51.100.7, 10.0.0.5', proxies)).toBe(
      '198.51.100.7',
    );
  });

  it('is the leftmost hop when every hop is a trusted proxy', () => {
    expect(clientAddress('10.1.2.3', '10.0.0.9 , 10.0.0.8', proxies)).toBe('10.0.0.9');
  });

  it('skips empty and blank entries of a chain', () => {
    expect(clientAddress('10.1.2.3', ' , 203.0.113.9,, 10.0.0.8 ,', proxies)).toBe('203.0.113.9');
  });

  it('is the peer when a trusted proxy sent an empty X-Forwarded-For', () => {
    expect(clientAddress('10.1.2.3', ' , ', proxies)).toBe('10.1.2.3');
  });

  it('gives an IPv4-mapped peer in its IPv4 form, trusted or not', () => {
    expect(clientAddress('::ffff:198.51.100.4', undefined, none)).toBe('198.51.100.4');
    expect(clientAddress('::ffff:10.1.2.3', '203.0.113.9', proxies)).toBe('203.0.113.9');
  });

  it('matches IPv6 peers and hops against IPv6 ranges', () => {
    expect(clientAddress('fd00::1', '2001:db8::5, fd12::2', proxies)).toBe('2001:db8::5');
    expect(clientAddress('fe80::1', '2001:db8::5', proxies)).toBe('fe80::1');
  });

  it('treats an IPv4-mapped hop of the chain as the IPv4 address it maps', () => {
    expect(clientAddress('10.1.2.3', '203.0.113.9, ::ffff:10.0.0.4', proxies)).toBe('203.0.113.9');
  });

  it('is empty without a peer (a socket already gone)', () => {
    expect(clientAddress(undefined, '203.0.113.9', proxies)).toBe('');
  });
});

describe('trusted proxies', () => {
  it('trusts nobody when the list is empty', () => {
    expect(none.isTrusted('127.0.0.1')).toBe(false);
    expect(none.isTrusted(undefined)).toBe(false);
  });

  it('matches the edges of a CIDR range and nothing past them', () => {
    const range = compileTrustedProxies(['172.16.0.0/12']);
    expect(range.isTrusted('172.16.0.0')).toBe(true);
    expect(range.isTrusted('172.31.255.255')).toBe(true);
    expect(range.isTrusted('172.32.0.0')).toBe(false);
    expect(range.isTrusted('172.15.255.255')).toBe(false);
  });

  it('never trusts a value that is not an address (a hostname in a header)', () => {
    expect(proxies.isTrusted('proxy.internal')).toBe(false);
    expect(proxies.isTrusted('')).toBe(false);
  });
});
