import { Duplex } from 'node:stream';
import { Http2ServerResponse } from 'node:http2';
import { errorBody } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { Answers } from './answers.js';

/**
 * Malformed requests (bad headers, smuggling attempts, oversized headers, a head or body too slow): a
 * clean 400/408/431 written to the socket, never a crash. A client resetting its idle keep-alive
 * connection, or closing mid-request (an aborted upload), is not one.
 */
export function clientErrorHandler(answers: Answers, logger: Logger) {
  return (err: NodeJS.ErrnoException, socket: Duplex): void => {
    if (err.code === 'ECONNRESET' || err.code === 'EPIPE' || err.code === 'HPE_INVALID_EOF_STATE') {
      logger.debug({ err: err.code }, 'client closed the connection mid-request');
      socket.destroy();
      return;
    }
    const timedOut = err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
    answers.count('bad_request');
    if (timedOut) logger.warn({ code: 'SG_ERR_REQUEST_TIMEOUT' }, 'request not received in time: 408');
    else logger.warn({ code: 'SG_ERR_BAD_REQUEST', err: err.code ?? err.message }, 'malformed request');
    // As Node itself does: answer unless a response to this request has started (its bytes would be corrupted).
    const inFlight = (socket as { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
    if (!socket.writable || inFlight?.headersSent === true) {
      socket.destroy();
      return;
    }
    const status = timedOut
      ? '408 Request Timeout'
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? '431 Request Header Fields Too Large'
        : '400 Bad Request';
    const body = timedOut ? errorBody('SG_ERR_REQUEST_TIMEOUT') : errorBody('SG_ERR_BAD_REQUEST');
    socket.end(
      `HTTP/1.1 ${status}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
    );
  };
}

/**
 * A CONNECT over HTTP/2 (RFC 8441's WebSocket over HTTP/2 is one) is not tunnelled: WebSockets are for
 * HTTP/1.1, which every browser falls back to when the server does not offer RFC 8441 (it does not: no
 * SETTINGS_ENABLE_CONNECT_PROTOCOL). Over HTTP/1.1, a CONNECT is dropped as on the plain listener.
 */
export function connectHandler(answers: Answers, logger: Logger) {
  return (_req: unknown, second: unknown): void => {
    if (second instanceof Http2ServerResponse) {
      answers.count('bad_request');
      const message = 'CONNECT is not supported: WebSockets are served over HTTP/1.1';
      logger.warn({ code: 'SG_ERR_UPGRADE_REFUSED', reason: 'CONNECT over HTTP/2' }, 'upgrade refused');
      const body = errorBody('SG_ERR_UPGRADE_REFUSED', message);
      second.writeHead(405, {
        'content-type': 'application/json',
        'content-length': String(Buffer.byteLength(body)),
        'cache-control': 'no-store',
        allow: 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS',
      });
      second.end(body);
    } else if (second instanceof Duplex) second.destroy();
  };
}
