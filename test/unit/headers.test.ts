/**
 * Header building (proxy/headers.ts): what goes upstream and what goes back to the client. The request
 * side reads a real IncomingMessage, so each case writes a raw request head over a real socket to a
 * local server that builds the upstream headers and answers them as JSON.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileTrustedProxies, type TrustedProxies } from '../../src/proxy/client-address.js';
import {
  clientResponseHeaders,
  headerObject,
  upstreamRequestHeaders,
  type TokenHeaderOverrides,
} from '../../src/proxy/headers.js';

interface Build {
  readonly trusted: TrustedProxies;
  readonly keepUpgrade: boolean;
  readonly overrides?: TokenHeaderOverrides;
}

const untrusted = compileTrustedProxies([]);
const loopbackTrusted = compileTrustedProxies(['127.0.0.0/8', '::1']);

const servers: { host: string; server: Server; build: Build[] }[] = [];

async function listen(host: string): Promise<(typeof servers)[number]> {
  const build: Build[] = [];
  const server = createServer((req: IncomingMessage, res) => {
    const b = build.shift() as Build;
    const out = upstreamRequestHeaders(
      req,
      req.socket.remoteAddress ?? '',
      b.trusted,
      b.keepUpgrade,
      b.overrides,
    );
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(out));
  });
  server.listen(0, host);
  await once(server, 'listening');
  const entry = { host, server, build };
  servers.push(entry);
  return entry;
}

let v4: (typeof servers)[number];
let v6: (typeof servers)[number];
beforeAll(async () => {
  v4 = await listen('127.0.0.1');
  v6 = await listen('::1');
});
afterAll(async () => {
  for (const { server } of servers) {
    server.closeAllConnections();
    server.close();
    await once(server, 'close');
  }
});

/** Sends `lines` as a request head over a fresh socket; the upstream header list built for it. */
async function upstreamHeaders(
  lines: readonly string[],
  build: Partial<Build> = {},
  at: (typeof servers)[number] = v4,
): Promise<[string, string][]> {
  at.build.push({ trusted: untrusted, keepUpgrade: false, ...build });
  const { port } = at.server.address() as AddressInfo;
  const socket = connect(port, at.host);
  await once(socket, 'connect');
  // One request per socket: closed after it, unless the case sends its own Connection header.
  const close = lines.some((l) => /^connection:/i.test(l)) ? [] : ['Connection: close'];
  socket.write(['GET /x HTTP/1.1', ...lines, ...close, '', ''].join('\r\n'));
  let raw = '';
  socket.setEncoding('latin1');
  const body = await new Promise<string>((resolve, reject) => {
    socket.on('error', reject);
    socket.on('data', (c: string) => {
      raw += c;
      const end = raw.indexOf('\r\n\r\n');
      const length = /content-length: (\d+)/i.exec(raw);
      if (end === -1 || length === null) return;
      const text = raw.slice(end + 4);
      if (Buffer.byteLength(text, 'latin1') >= Number(length[1])) resolve(text);
    });
  });
  socket.destroy();
  const flat = JSON.parse(body) as string[];
  const pairs: [string, string][] = [];
  for (let i = 0; i < flat.length; i += 2) pairs.push([flat[i] as string, flat[i + 1] as string]);
  return pairs;
}

const names = (pairs: readonly [string, string][]): string[] => pairs.map(([n]) => n.toLowerCase());
const valueOf = (pairs: readonly [string, string][], name: string): string[] =>
  pairs.filter(([n]) => n.toLowerCase() === name).map(([, v]) => v);

describe('the request headers sent upstream', () => {
  it('drops hop-by-hop headers and keeps end-to-end ones', async () => {
    const out = await upstreamHeaders([
      'Host: app.test',
      'Keep-Alive: timeout=5',
      'Proxy-Authorization: Basic Zm9vOmJhcg==',
      'TE: trailers',
      'Upgrade: h2c',
      'Proxy-Connection: keep-alive',
      'Accept: text/html',
      'X-Custom: kept',
    ]);
    for (const hop of [
      'connection',
      'keep-alive',
      'proxy-authorization',
      'te',
      'upgrade',
      'proxy-connection',
    ])
      expect(names(out)).not.toContain(hop);
    expect(valueOf(out, 'accept')).toEqual(['text/html']);
    expect(valueOf(out, 'x-custom')).toEqual(['kept']);
    expect(valueOf(out, 'host')).toEqual(['app.test']);
  });

  it('drops the headers the client named in Connection', async () => {
    const out = await upstreamHeaders([
      'Host: app.test',
      'Connection: X-Secret, x-other',
      'X-Secret: s',
      'X-Other: o',
      'X-Third: t',
    ]);
    expect(names(out)).not.toContain('x-secret');
    expect(names(out)).not.toContain('x-other');
    expect(valueOf(out, 'x-third')).toEqual(['t']);
  });

  it('keeps Upgrade and Connection for a WebSocket handshake', async () => {
    const out = await upstreamHeaders(['Host: app.test', 'Upgrade: websocket', 'Connection: Upgrade'], {
      keepUpgrade: true,
    });
    expect(valueOf(out, 'upgrade')).toEqual(['websocket']);
    expect(valueOf(out, 'connection')).toEqual(['Upgrade']);
  });

  it('sets X-Forwarded-For, -Proto and -Host from the connection, dropping what an untrusted peer sent', async () => {
    const out = await upstreamHeaders([
      'Host: app.test',
      'X-Forwarded-For: 203.0.113.9',
      'X-Forwarded-Proto: https',
      'X-Forwarded-Host: evil.test',
      'X-Real-IP: 203.0.113.9',
      'Forwarded: for=203.0.113.9',
    ]);
    expect(valueOf(out, 'x-forwarded-for')).toEqual(['127.0.0.1']);
    expect(valueOf(out, 'x-forwarded-proto')).toEqual(['http']);
    expect(valueOf(out, 'x-forwarded-host')).toEqual(['app.test']);
    expect(names(out)).not.toContain('x-real-ip');
    expect(names(out)).not.toContain('forwarded');
  });

  it('appends the peer to the X-Forwarded-For chain of a trusted proxy and keeps its proto and host', async () => {
    const out = await upstreamHeaders(
      [
        'Host: internal:8080',
        'X-Forwarded-For: 203.0.113.9, 10.0.0.2',
        'X-Forwarded-For: 10.0.0.3',
        'X-Forwarded-Proto: https',
        'X-Forwarded-Host: www.example.test',
        'X-Real-IP: 203.0.113.9',
      ],
      { trusted: loopbackTrusted },
    );
    expect(valueOf(out, 'x-forwarded-for')).toEqual(['203.0.113.9, 10.0.0.2, 10.0.0.3, 127.0.0.1']);
    expect(valueOf(out, 'x-forwarded-proto')).toEqual(['https']);
    expect(valueOf(out, 'x-forwarded-host')).toEqual(['www.example.test']);
    expect(valueOf(out, 'x-real-ip')).toEqual(['203.0.113.9']);
  });

  it('names an IPv6 peer in X-Forwarded-For as the socket reports it', async () => {
    const out = await upstreamHeaders(['Host: app.test'], {}, v6);
    expect(valueOf(out, 'x-forwarded-for')).toEqual(['::1']);
  });

  it('sends one Cookie header, the client lines joined, and one Authorization', async () => {
    const out = await upstreamHeaders([
      'Host: app.test',
      'Cookie: a=1',
      'Cookie: b=2',
      'Authorization: Bearer first',
      'Authorization: Bearer second',
    ]);
    expect(valueOf(out, 'cookie')).toEqual(['a=1; b=2']);
    expect(valueOf(out, 'authorization')).toEqual(['Bearer first']);
  });

  it('leaves out a dead token: an override replaces the Cookie and removes the Authorization', async () => {
    const out = await upstreamHeaders(
      ['Host: app.test', 'Cookie: sid=dead; theme=dark', 'Authorization: Bearer dead'],
      { overrides: { cookie: 'theme=dark', authorization: undefined } },
    );
    expect(valueOf(out, 'cookie')).toEqual(['theme=dark']);
    expect(names(out)).not.toContain('authorization');
  });

  it('drops the Cookie header when the dead token was its only cookie', async () => {
    const out = await upstreamHeaders(['Host: app.test', 'Cookie: sid=dead', 'Authorization: Bearer live'], {
      overrides: { cookie: undefined },
    });
    expect(names(out)).not.toContain('cookie');
    expect(valueOf(out, 'authorization')).toEqual(['Bearer live']);
  });
});

const raw = (...pairs: string[]): Buffer[] => pairs.map((p) => Buffer.from(p, 'latin1'));

describe('the response headers sent to the client', () => {
  it('drops hop-by-hop headers of the app', () => {
    const out = clientResponseHeaders(
      raw(
        'Content-Type',
        'text/plain',
        'Transfer-Encoding',
        'chunked',
        'Keep-Alive',
        'timeout=5',
        'Connection',
        'keep-alive',
        'Proxy-Authenticate',
        'Basic',
        'Set-Cookie',
        'a=1',
      ),
    );
    expect(out).toEqual(['Content-Type', 'text/plain', 'Set-Cookie', 'a=1']);
  });

  it('drops the headers the app named in Connection, wherever they come', () => {
    const out = clientResponseHeaders(
      raw('X-Before', 'b', 'Connection', 'close, X-Before, x-after', 'X-After', 'a', 'X-Kept', 'k'),
    );
    expect(out).toEqual(['X-Kept', 'k']);
  });

  it('keeps repeated headers in their order', () => {
    const out = clientResponseHeaders(raw('Set-Cookie', 'a=1', 'Set-Cookie', 'b=2'));
    expect(out).toEqual(['Set-Cookie', 'a=1', 'Set-Cookie', 'b=2']);
  });
});

describe('a header list as an object', () => {
  it('lower-cases names, gathers repeats into arrays and always gives Set-Cookie as an array', () => {
    const obj = headerObject(['Content-Type', 'text/html', 'X-A', '1', 'x-a', '2', 'Set-Cookie', 'sid=1']);
    expect(obj['content-type']).toBe('text/html');
    expect(obj['x-a']).toEqual(['1', '2']);
    expect(obj['set-cookie']).toEqual(['sid=1']);
  });

  it('treats __proto__ and constructor as ordinary header names', () => {
    const obj = headerObject(['__proto__', 'x', 'constructor', 'y']);
    expect(obj['__proto__']).toBe('x');
    expect(obj['constructor']).toBe('y');
    expect(Object.getPrototypeOf(obj)).toBe(null);
  });
});
