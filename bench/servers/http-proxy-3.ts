/**
 * http-proxy-3 1.23 (the maintained TypeScript rewrite of http-proxy, used by Vite), set up exactly as
 * bench/servers/http-proxy.ts: a keep-alive agent, errors answered with 502. Its 2.x needs Node 22.
 * Measured so that the forwarding library is chosen by measurement (issue #2: undici vs http-proxy vs
 * http-proxy-3); it is not one of the targets' baselines.
 *
 * Usage: node dist/bench/servers/http-proxy-3.js --port <port> --upstream http://127.0.0.1:<port>
 */
import { Agent, createServer, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { parseArgs } from 'node:util';
import { createProxyServer } from 'http-proxy-3';

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
    upstream: { type: 'string' },
  },
});
if (!values.upstream) throw new Error('--upstream is required');

const agent = new Agent({ keepAlive: true, keepAliveMsecs: 60_000 });
const proxy = createProxyServer({ target: values.upstream, agent });

proxy.on('error', (_err: Error, _req: unknown, res: ServerResponse | Socket) => {
  if (!('writeHead' in res)) return void res.destroy();
  if (res.headersSent) return void res.destroy();
  res.writeHead(502, { 'content-type': 'text/plain' }).end('bad gateway\n');
});

const server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => void proxy.web(req, res));
server.listen(Number(values.port ?? 0), values.host, () => {
  console.log(JSON.stringify({ msg: 'http-proxy-3 listening', address: server.address() }));
});

process.once('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
  agent.destroy();
});
