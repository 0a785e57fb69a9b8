/**
 * http-proxy 1.18, the common Node reverse proxy, with a keep-alive agent (bench/lib/http-proxy-server.ts).
 *
 * Usage: node dist/bench/servers/http-proxy.js --port <port> --upstream http://127.0.0.1:<port>
 */
import httpProxy from 'http-proxy';
import { serveHttpProxy } from '../lib/http-proxy-server.js';

serveHttpProxy('http-proxy', (options, onError) => {
  const proxy = httpProxy.createProxyServer(options);
  proxy.on('error', onError);
  return proxy;
});
