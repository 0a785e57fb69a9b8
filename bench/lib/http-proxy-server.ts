/**
 * The bare http-proxy-style passthrough the hot path is compared with: node:http in front of a
 * library with http-proxy's API (http-proxy itself, or http-proxy-3), as most apps deploy it, with a
 * keep-alive agent: the libraries' default agent opens a new upstream connection per request, which
 * would measure TCP setup instead. Errors are answered with 502.
 *
 * Reads `--port`, `--host` and `--upstream` from argv (bench/servers/http-proxy*.ts are the entries).
 */
import { Agent, createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { passthroughArgs } from './passthrough-args.js';

/** The part of http-proxy's API both libraries share and the bench uses. */
export interface HttpProxyLike {
  web(req: IncomingMessage, res: ServerResponse): unknown;
}

/** What the proxy calls on a failed exchange (`proxy.on('error', ...)`; the entries wire it). */
export type ProxyErrorHandler = (err: Error, req: unknown, res: ServerResponse | Socket) => void;

export function serveHttpProxy(
  name: string,
  createProxy: (options: { target: string; agent: Agent }, onError: ProxyErrorHandler) => HttpProxyLike,
): void {
  const args = passthroughArgs();

  const agent = new Agent({ keepAlive: true, keepAliveMsecs: 60_000 });
  const proxy = createProxy({ target: args.upstream, agent }, (_err, _req, res) => {
    if (!('writeHead' in res)) return void res.destroy();
    if (res.headersSent) return void res.destroy();
    res.writeHead(502, { 'content-type': 'text/plain' }).end('bad gateway\n');
  });

  const server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => void proxy.web(req, res));
  server.listen(args.port, args.host, () => {
    console.log(JSON.stringify({ msg: `${name} listening`, address: server.address() }));
  });

  process.once('SIGTERM', () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
    agent.destroy();
  });
}
