/**
 * The TLS listener of the proxy: HTTP/2 offered by ALPN, HTTP/1.1 for clients that do not take it
 * (`allowHTTP1`: Node hands those sockets to its HTTP/1.1 server code, so they behave as on the plain
 * listener). What differs for HTTP/2 is kept here: the Host of a request is its `:authority`, a response
 * has no status text, and sessions (not sockets) are what idles and what a shutdown closes.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  createSecureServer,
  Http2ServerResponse,
  type Http2SecureServer,
  type ServerHttp2Session,
} from 'node:http2';
import type { TLSSocket } from 'node:tls';
import type { TlsMaterial } from '../tls.js';

export interface TlsListenerOptions {
  readonly material: TlsMaterial;
  /** Milliseconds an HTTP/1.1 keep-alive connection or an HTTP/2 session without streams stays open. */
  readonly keepAliveTimeout: number;
  /** HTTP/1.1 only (Node has no such timers for HTTP/2 streams). */
  readonly headersTimeout: number;
  readonly requestTimeout: number;
  readonly connectionsCheckingInterval: number;
}

export interface TlsListener {
  readonly server: Http2SecureServer;
  /** Idle HTTP/1.1 connections are closed; HTTP/2 sessions get a GOAWAY and close once their streams end. */
  closeIdleConnections(): void;
  /** Every connection is destroyed (past the shutdown grace). */
  closeAllConnections(): void;
}

export function createTlsListener(o: TlsListenerOptions): TlsListener {
  const server = createSecureServer({ allowHTTP1: true, cert: o.material.cert, key: o.material.key });
  // The HTTP/1.1 side reads these from the server object, as an http.Server's own.
  Object.assign(server, {
    keepAliveTimeout: o.keepAliveTimeout,
    headersTimeout: o.headersTimeout,
    requestTimeout: o.requestTimeout,
    connectionsCheckingInterval: o.connectionsCheckingInterval,
  });
  const sockets = new Set<TLSSocket>();
  server.on('secureConnection', (socket: TLSSocket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  const sessions = new Set<ServerHttp2Session>();
  server.on('session', (session: ServerHttp2Session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
    closeWhenIdle(session, o.keepAliveTimeout);
  });
  return {
    server,
    closeIdleConnections() {
      // Node's Http2SecureServer has it (for its HTTP/1.1 connections) but its types do not say so.
      const closeIdle: unknown = Reflect.get(server, 'closeIdleConnections');
      if (typeof closeIdle === 'function') Reflect.apply(closeIdle, server, []);
      for (const s of sessions) s.close();
    },
    closeAllConnections() {
      for (const s of sessions) s.destroy();
      for (const s of sockets) s.destroy();
    },
  };
}

/**
 * An HTTP/2 session without an open stream for `ms` is closed (GOAWAY), as an idle keep-alive
 * connection is. Node's own session timeout counts silence, which would also cut a quiet event stream.
 */
function closeWhenIdle(session: ServerHttp2Session, ms: number): void {
  let open = 0;
  let timer: NodeJS.Timeout | undefined;
  const idle = () => {
    timer = setTimeout(() => session.close(), ms);
    timer.unref();
  };
  session.on('stream', (stream) => {
    open++;
    clearTimeout(timer);
    stream.once('close', () => {
      if (--open === 0 && !session.closed) idle();
    });
  });
  session.once('close', () => clearTimeout(timer));
  idle();
}

/**
 * The request's Host, from `:authority` (RFC 9113 section 8.3.1: clients send it instead of Host) so the
 * rules, the self-service origin check and the app see what they see over HTTP/1.1; or why the request
 * is refused: no host at all, or a Host that names another origin than `:authority` (RFC 9113 section
 * 8.3.1 lets a server refuse it, and two answers to "which host" is how requests get smuggled).
 */
export function hostFromAuthority(req: IncomingMessage): string | undefined {
  const authority = req.headers[':authority'];
  const host = req.headers.host;
  if (typeof authority !== 'string' || authority === '')
    return host === undefined ? 'an HTTP/2 request without :authority or Host' : undefined;
  if (host === undefined) {
    req.headers.host = authority;
    return undefined;
  }
  return host.toLowerCase() === authority.toLowerCase() ? undefined : 'Host differs from :authority';
}

/** Writes a response head; HTTP/2 has no status text (RFC 9113 section 8.3.2), so none is sent there. */
export function writeResponseHead(
  res: ServerResponse,
  status: number,
  statusText: string,
  headers: string[],
): void {
  if (res instanceof Http2ServerResponse) res.writeHead(status, headers);
  else res.writeHead(status, statusText, headers);
}
