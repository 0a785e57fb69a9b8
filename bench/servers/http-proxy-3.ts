/**
 * http-proxy-3 1.23, the maintained TypeScript rewrite of http-proxy (used by Vite), set up exactly
 * as http-proxy (bench/lib/http-proxy-server.ts). Its 2.x needs Node 22. Measured so that the
 * forwarding library is chosen by measurement (undici vs http-proxy vs http-proxy-3); the targets'
 * baseline stays http-proxy.
 *
 * Usage: node dist/bench/servers/http-proxy-3.js --port <port> --upstream http://127.0.0.1:<port>
 */
import { createProxyServer } from 'http-proxy-3';
import { serveHttpProxy } from '../lib/http-proxy-server.js';

serveHttpProxy('http-proxy-3', (options, onError) => {
  const proxy = createProxyServer(options);
  proxy.on('error', onError);
  return proxy;
});
