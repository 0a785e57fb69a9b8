/**
 * The header builder (src/proxy/headers.ts): the upstream request headers of a real request (captured
 * from a node:http server, a browser's dozen headers) from an untrusted and from a trusted peer, and
 * the client response headers from undici's raw buffers.
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { bench, do_not_optimize, summary } from 'mitata';
import { Client } from 'undici';
import { compileTrustedProxies } from '../../src/proxy/client-address.js';
import { clientResponseHeaders, upstreamRequestHeaders } from '../../src/proxy/headers.js';

const BROWSER = {
  'user-agent':
    'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36',
  accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8',
  'accept-language': 'en-GB,en;q=0.9',
  'accept-encoding': 'gzip, deflate, br',
  cookie: 'theme=dark; sid=pAsStHrOuGh_tOkEn_32_bytes_base64url_012345',
  authorization: 'Bearer pAsStHrOuGh_tOkEn_32_bytes_base64url_012345',
  'x-forwarded-for': '203.0.113.7',
  'sec-fetch-mode': 'navigate',
  referer: 'https://app.example/orders',
};
const RESPONSE = [
  'content-type',
  'text/html',
  'content-length',
  '100',
  'connection',
  'keep-alive',
  'etag',
  '"abc"',
].map((s) => Buffer.from(s, 'latin1'));

/**
 * One real request as node:http parsed it, its connection kept open (the builder reads the peer
 * address from the socket) until `close`.
 */
async function capture(): Promise<{ req: IncomingMessage; close: () => Promise<void> }> {
  let seen: IncomingMessage | undefined;
  const server = createServer((req, res) => {
    seen = req;
    res.end();
  });
  server.keepAliveTimeout = 0;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const client = new Client(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, {
    keepAliveTimeout: 600_000,
  });
  const res = await client.request({ path: '/orders', method: 'GET', headers: BROWSER });
  await res.body.dump();
  if (!seen) throw new Error('headers: no request captured');
  const close = async () => {
    await client.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return { req: seen, close };
}

export async function register(): Promise<() => Promise<void>> {
  const { req, close } = await capture();
  const untrusted = compileTrustedProxies([]);
  const trusted = compileTrustedProxies(['127.0.0.1']);
  const out = upstreamRequestHeaders(req, '127.0.0.1', trusted, false);
  if (!out.includes('203.0.113.7, 127.0.0.1'))
    throw new Error('headers: the trusted x-forwarded-for was not kept');
  summary(() => {
    bench('headers: upstream request, untrusted peer', () =>
      do_not_optimize(upstreamRequestHeaders(req, '127.0.0.1', untrusted, false)),
    );
    bench('headers: upstream request, trusted peer', () =>
      do_not_optimize(upstreamRequestHeaders(req, '127.0.0.1', trusted, false)),
    );
    bench('headers: client response (4 headers)', () => do_not_optimize(clientResponseHeaders(RESPONSE)));
  });
  return close;
}
