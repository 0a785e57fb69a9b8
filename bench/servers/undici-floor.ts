/**
 * The Node floor: the cheapest correct passthrough we know how to write with node:http and undici.
 * No checks, no parsing beyond what node:http does anyway, bodies streamed both ways. The gateway's
 * CPU per request is judged against this (DESIGN.md "The hot path").
 *
 * It uses undici's raw-header handler callbacks (onHeaders/onData/onComplete): the newer
 * onResponseStart API parses every response header into an object first, and a floor should not pay
 * for work a proxy can avoid.
 *
 * Usage: node dist/bench/servers/undici-floor.js --port <port> --upstream http://127.0.0.1:<port>
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { Pool, type Dispatcher } from 'undici';
import { passthroughArgs } from '../lib/passthrough-args.js';

const args = passthroughArgs();

/**
 * Hop-by-hop headers (RFC 9110 section 7.6.1) describe one connection and must not be forwarded.
 * A complete proxy also drops the headers the Connection header names; the floor skips that scan.
 */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'transfer-encoding',
  'upgrade',
]);

const pool = new Pool(args.upstream, { keepAliveTimeout: 60_000 });

/** Request headers to forward, as the flat [name, value, ...] list undici takes without copying into an object. */
function requestHeaders(raw: readonly string[]): { headers: string[]; hasBody: boolean } {
  const headers: string[] = [];
  let hasBody = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = (raw[i] as string).toLowerCase();
    if (name === 'content-length' || name === 'transfer-encoding') hasBody ||= raw[i + 1] !== '0';
    if (HOP_BY_HOP.has(name)) continue;
    headers.push(raw[i] as string, raw[i + 1] as string);
  }
  return { headers, hasBody };
}

/** Response headers from undici's raw buffers to the flat list `writeHead` accepts. */
function responseHeaders(raw: readonly Buffer[]): string[] {
  const headers: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = (raw[i] as Buffer).toString('latin1');
    if (HOP_BY_HOP.has(name.toLowerCase())) continue;
    headers.push(name, (raw[i + 1] as Buffer).toString('latin1'));
  }
  return headers;
}

/** Streams one upstream response into `res`, with backpressure and client-abort propagation. */
class Forward implements Dispatcher.DispatchHandler {
  readonly #res: ServerResponse;
  #abort: ((err?: Error) => void) | undefined;
  #resume: (() => void) | undefined;

  constructor(res: ServerResponse) {
    this.#res = res;
    // A client that goes away must free the upstream request too (no leaked sockets).
    res.once('close', () => {
      if (!res.writableFinished) this.#abort?.(new Error('client closed'));
    });
  }

  onConnect(abort: (err?: Error) => void): void {
    this.#abort = abort;
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    if (statusCode < 200) return true; // 1xx: node:http handles 100-continue itself
    this.#res.writeHead(statusCode, responseHeaders(rawHeaders));
    this.#resume = resume;
    return true;
  }

  onData(chunk: Buffer): boolean {
    const flowing = this.#res.write(chunk);
    // false pauses undici's socket; the client's 'drain' resumes it (listener added only when needed).
    if (!flowing && this.#resume) this.#res.once('drain', this.#resume);
    return flowing;
  }

  onComplete(): void {
    this.#res.end();
  }

  onError(err: Error): void {
    if (this.#res.headersSent) {
      this.#res.destroy(err);
      return;
    }
    this.#res.writeHead(502, { 'content-type': 'text/plain' }).end('bad gateway\n');
  }
}

function handle(req: IncomingMessage, res: ServerResponse): void {
  const { headers, hasBody } = requestHeaders(req.rawHeaders);
  pool.dispatch(
    {
      path: req.url ?? '/',
      method: req.method as Dispatcher.HttpMethod,
      headers,
      body: hasBody ? req : null,
    },
    new Forward(res),
  );
}

const server = createServer({ keepAliveTimeout: 65_000 }, handle);
server.listen(args.port, args.host, () => {
  console.log(JSON.stringify({ msg: 'undici-floor listening', address: server.address() }));
});

process.once('SIGTERM', () => {
  server.close(() => void pool.close().then(() => process.exit(0)));
  server.closeAllConnections();
});
