/**
 * The common Node reverse proxy, as most apps deploy it: http-proxy 1.18 with a keep-alive agent (its
 * default agent opens a new upstream connection per request, which would measure TCP setup instead).
 *
 * Usage: node dist/bench/servers/http-proxy.js --port <port> --upstream http://127.0.0.1:<port>
 */
import { Agent, createServer, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { parseArgs } from 'node:util';
import httpProxy from 'http-proxy';

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
    upstream: { type: 'string' },
  },
});
if (!values.upstream) throw new Error('--upstream is required');

const agent = new Agent({ keepAlive: true, keepAliveMsecs: 60_000 });
const proxy = httpProxy.createProxyServer({ target: values.upstream, agent });

proxy.on('error', (_err: Error, _req: unknown, res: ServerResponse | Socket) => {
  if (!('writeHead' in res)) return void res.destroy();
  if (res.headersSent) return void res.destroy();
  res.writeHead(502, { 'content-type': 'text/plain' }).end('bad gateway\n');
});

const server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => proxy.web(req, res));
server.listen(Number(values.port ?? 0), values.host, () => {
  console.log(JSON.stringify({ msg: 'http-proxy listening', address: server.address() }));
});

process.once('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
  agent.destroy();
});
