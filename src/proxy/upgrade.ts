import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { clientResponseHeaders } from './headers.js';

/** WebSocket close codes 4001-4099 are the application's (RFC 6455 section 7.4.2). */
export const CLOSE_CODES: Readonly<Record<string, number>> = {
  session_superseded: 4001,
  session_expired: 4002,
  session_logged_out: 4003,
  session_ended: 4004,
  session_unknown: 4005,
  // RFC 6455 section 7.4.1: the gateway is shutting down; the client reconnects (to another replica).
  going_away: 1001,
};

/** The close reason of tunnels the gateway ends because it is shutting down. */
export const GOING_AWAY = 'going_away';

export interface UpgradeTarget {
  readonly host: string;
  readonly port: number;
  readonly tls: boolean;
  readonly connectTimeout: number;
  /** Until the upstream's answer to the upgrade request (101 or not); 504 when exceeded. @default 60s */
  readonly responseTimeout?: number;
  /** `cookies.harden`: the app's Set-Cookies on its answer (a 101 or not), rewritten in place. */
  readonly hardenCookies?: (headers: string[], req: IncomingMessage) => void;
}

export interface UpgradedConnection {
  /** Sends a close frame with the code for `reason` at the next frame boundary, then closes both sides. */
  close(reason: string): void;
  /** Resolves once both the client and the upstream socket are closed, whatever the path. */
  readonly closed: Promise<void>;
}

/** The `timeouts.response` default of the config schema. */
const DEFAULT_RESPONSE_TIMEOUT = 60_000;
/** After the gateway ended a refused upgrade, how long it keeps reading (and dropping) what the client still sends. */
const LINGER = 2_000;
/** After a close frame, how long the client has to answer it before the socket is destroyed. */
const CLOSE_GRACE = 1_000;

/** Writes a plain HTTP response on a socket that asked to upgrade, then closes it. */
export function rejectUpgrade(
  socket: Duplex,
  status: number,
  statusText: string,
  body: string,
  extra: string[] = [],
): void {
  if (socket.destroyed) return;
  socket.end(
    `HTTP/1.1 ${status} ${statusText}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nCache-Control: no-store\r\n${extra.map((h) => `${h}\r\n`).join('')}Connection: close\r\n\r\n${body}`,
  );
}

/**
 * Tunnels a WebSocket upgrade to the upstream, in two phases.
 *
 * Handshake: the request head goes upstream through node:http's client (a connection of its own,
 * `agent: false`), whose parser tells a 101 ('upgrade') from any other answer ('response', its body
 * framed by Content-Length, chunks or close). Until a 101, nothing the client sent after its request
 * head (`head`, or later bytes, left unread in the client socket) reaches the app: an app that answers
 * without switching would otherwise read those bytes as a second request the gateway never checked.
 * Any other answer is relayed as an ordinary response with `Connection: close`, and the client's extra
 * bytes are dropped.
 *
 * Tunnel: after the 101, bytes flow both ways. The server-to-client stream is followed frame by frame
 * (headers only, payloads pass untouched) so that a revocation can inject a close frame at a frame
 * boundary instead of corrupting a frame in flight.
 */
export function tunnelUpgrade(
  req: IncomingMessage,
  client: Duplex,
  head: Buffer,
  headers: readonly string[],
  target: UpgradeTarget,
  onError: (err: Error) => void,
): UpgradedConnection {
  let resolveClosed: () => void = () => {};
  const closed = new Promise<void>((r) => (resolveClosed = r));
  let phase: 'handshake' | 'relay' | 'tunnel' | 'done' = 'handshake';
  let upstream: Socket | undefined;
  let closeReason: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  const frames = new FrameBoundary();

  // `closed` waits for the client socket, the upstream request and (once it has one) its socket.
  let clientGone = false;
  let requestGone = false;
  let upstreamSocket: Socket | undefined;
  let socketGone = false;
  const settle = () => {
    if (clientGone && requestGone && (upstreamSocket === undefined || socketGone)) resolveClosed();
  };
  whenClosed(client, () => {
    clientGone = true;
    settle();
  });

  let upReq: ClientRequest;
  try {
    upReq = (target.tls ? httpsRequest : httpRequest)({
      host: target.host,
      port: target.port,
      method: req.method,
      path: req.url,
      headers,
      agent: false,
      // SNI names the upstream, not the Host the client asked for (an IP address gets none).
      ...(target.tls && { servername: isIP(target.host) === 0 ? target.host : '' }),
    });
  } catch (err) {
    // node:http's client validates the path and headers itself; what its server let through should pass,
    // but a throw here would escape the 'upgrade' handler and end the process.
    onError(err as Error);
    requestGone = true;
    rejectUpgrade(
      client,
      400,
      'Bad Request',
      JSON.stringify({ error: 'SG_ERR_BAD_REQUEST', message: 'the upgrade request cannot be forwarded' }),
    );
    linger();
    return { closed, close: () => void client.destroy() };
  }
  upReq.once('close', () => {
    requestGone = true;
    settle();
  });
  upReq.once('socket', (s: Socket) => {
    upstreamSocket = s;
    whenClosed(s, () => {
      socketGone = true;
      settle();
    });
    s.setNoDelay(true);
    s.once(target.tls ? 'secureConnect' : 'connect', () => {
      if (phase !== 'handshake') return;
      clearTimeout(timer);
      timer = setTimeout(
        () =>
          refuse(
            504,
            'Gateway Timeout',
            'SG_ERR_UPSTREAM_TIMEOUT',
            'the upstream did not answer in time',
            new Error('upstream response timeout'),
          ),
        target.responseTimeout ?? DEFAULT_RESPONSE_TIMEOUT,
      );
    });
  });
  timer = setTimeout(
    () =>
      refuse(
        502,
        'Bad Gateway',
        'SG_ERR_UPSTREAM_CONNECT',
        'the upstream could not be reached',
        new Error('upstream connect timeout'),
      ),
    target.connectTimeout,
  );
  upReq.on('error', (err: NodeJS.ErrnoException) => {
    if (phase === 'handshake') {
      const unreachable =
        err.code === 'ECONNREFUSED' || err.code === 'ENOTFOUND' || err.code === 'EHOSTUNREACH';
      refuse(
        502,
        'Bad Gateway',
        unreachable ? 'SG_ERR_UPSTREAM_CONNECT' : 'SG_ERR_UPSTREAM',
        unreachable ? 'the upstream could not be reached' : 'the upstream connection failed',
        err,
      );
      return;
    }
    // After the handshake the request's own errors (the hang-up of our own destroy()) mean nothing.
    if (phase === 'relay') {
      onError(err);
      destroyAll();
    }
  });
  upReq.on('upgrade', (res: IncomingMessage, socket: Socket, bodyHead: Buffer) => {
    if (phase !== 'handshake') {
      socket.destroy();
      return;
    }
    if ((res.headers.upgrade ?? '').toLowerCase() !== 'websocket') {
      socket.destroy();
      const message = 'the upstream switched to another protocol than websocket';
      refuse(502, 'Bad Gateway', 'SG_ERR_UPSTREAM', message, new Error(message));
      return;
    }
    openTunnel(res, socket, bodyHead);
  });
  upReq.on('response', (res: IncomingMessage) => {
    if (phase !== 'handshake') {
      res.destroy();
      return;
    }
    // A 101 without `Upgrade` and `Connection: upgrade` is no switch Node's parser (or a client) can follow.
    if (res.statusCode === 101) {
      const message = 'the upstream answered 101 without an upgrade';
      refuse(502, 'Bad Gateway', 'SG_ERR_UPSTREAM', message, new Error(message));
      return;
    }
    relay(res);
  });
  client.on('error', destroyAll);
  client.once('close', () => {
    // The client left during the handshake or the relay: the upstream request goes too.
    if (phase === 'handshake' || phase === 'relay') destroyAll();
  });
  if (client.destroyed) destroyAll();
  else upReq.end();

  return {
    closed,
    close(reason) {
      if (closeReason !== undefined || phase === 'done') return;
      closeReason = reason;
      if (phase === 'handshake') {
        // Shutting down while the app was still answering: nothing was switched yet, so just drop it.
        if (reason === GOING_AWAY) return destroyAll();
        // Revoked while the app was still answering: a clear refusal rather than a dropped socket.
        refuse(401, 'Unauthorized', reason, 'the session ended');
        return;
      }
      if (phase === 'relay') {
        destroyAll();
        return;
      }
      if (frames.atBoundary()) {
        sendClose(reason);
        return;
      }
      // The frame in flight is finished first (onUpstreamData); an upstream that stalls inside it
      // does not keep a revoked connection open.
      setTimeout(() => {
        if (phase === 'tunnel') destroyAll();
      }, CLOSE_GRACE).unref();
    },
  };

  /** Destroys both sides at once. */
  function destroyAll(): void {
    phase = 'done';
    clearTimeout(timer);
    upReq.destroy();
    upstream?.destroy();
    client.destroy();
  }

  /**
   * Answers the client with a JSON error and ends the upstream request. The client socket is ended, not
   * destroyed: what the client still sends is read and dropped for a while (a lingering close), since a
   * socket closed with unread bytes sends a reset that can wipe the answer before the client reads it.
   */
  function refuse(status: number, statusText: string, code: string, message: string, err?: Error): void {
    if (phase !== 'handshake') return;
    phase = 'done';
    clearTimeout(timer);
    if (err !== undefined) onError(err);
    upReq.destroy();
    rejectUpgrade(client, status, statusText, JSON.stringify({ error: code, message }));
    linger();
  }

  function linger(): void {
    client.on('data', () => {});
    client.on('end', () => client.destroy());
    client.resume();
    setTimeout(() => client.destroy(), LINGER).unref();
  }

  /** Relays a non-101 answer as an ordinary response that closes the connection. */
  function relay(res: IncomingMessage): void {
    phase = 'relay';
    clearTimeout(timer);
    const raw = res.rawHeaders.map((h) => Buffer.from(h, 'latin1'));
    const out = clientResponseHeaders(raw);
    target.hardenCookies?.(out, req);
    let lines = `HTTP/1.1 ${res.statusCode ?? 502} ${res.statusMessage ?? ''}\r\n`;
    for (let i = 0; i < out.length; i += 2) lines += `${out[i] as string}: ${out[i + 1] as string}\r\n`;
    client.write(`${lines}Connection: close\r\n\r\n`, 'latin1');
    // Node's parser has taken off the chunked framing: the body ends at its Content-Length or at close.
    res.on('data', (chunk: Buffer) => {
      if (!client.write(chunk)) res.pause();
    });
    client.on('drain', () => res.resume());
    res.once('end', () => {
      if (phase !== 'relay') return;
      phase = 'done';
      upReq.destroy();
      client.end();
      linger();
    });
    res.once('close', () => {
      if (phase !== 'relay' || res.complete) return;
      // Cut short: a reset, so the client does not take a close-delimited body for a complete one.
      onError(new Error('the upstream response to an upgrade request was cut short'));
      destroyAll();
    });
  }

  function openTunnel(res: IncomingMessage, socket: Socket, bodyHead: Buffer): void {
    phase = 'tunnel';
    clearTimeout(timer);
    upstream = socket;
    socket.setTimeout(0);
    const raw = res.rawHeaders.map((h) => Buffer.from(h, 'latin1'));
    const out = clientResponseHeaders(raw);
    target.hardenCookies?.(out, req);
    let lines = `HTTP/1.1 101 ${res.statusMessage || 'Switching Protocols'}\r\n`;
    for (let i = 0; i < out.length; i += 2) lines += `${out[i] as string}: ${out[i + 1] as string}\r\n`;
    client.write(`${lines}Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n`, 'latin1');
    // Only now may the app read what the client sent behind its request head.
    if (head.length > 0) socket.write(head);

    socket.on('data', onUpstreamData);
    if (bodyHead.length > 0) onUpstreamData(bodyHead);
    client.on('drain', () => socket.resume());
    client.on('data', (chunk: Buffer) => {
      if (closeReason === undefined && !socket.write(chunk)) client.pause();
    });
    socket.on('drain', () => client.resume());
    socket.on('end', () => {
      if (phase === 'tunnel' && closeReason === undefined) client.end();
    });
    client.on('end', () => socket.end());
    // Once the close frame is out (phase 'done'), the client gets CLOSE_GRACE to answer it.
    socket.on('close', () => {
      if (phase === 'tunnel') destroyAll();
    });
    socket.on('error', (err) => {
      onError(err);
      destroyAll();
    });
    client.on('close', () => destroyAll());
  }

  function onUpstreamData(chunk: Buffer): void {
    if (phase !== 'tunnel') return;
    if (closeReason !== undefined) {
      // Closing: finish the frame in flight, then the close frame.
      const cut = frames.bytesToBoundary(chunk);
      client.write(cut === -1 ? chunk : chunk.subarray(0, cut));
      if (cut === -1) frames.feed(chunk);
      else sendClose(closeReason);
      return;
    }
    frames.feed(chunk);
    if (!client.write(chunk)) upstream?.pause();
  }

  function sendClose(reason: string): void {
    const code = CLOSE_CODES[reason] ?? 4000;
    const text = Buffer.from(JSON.stringify({ error: reason }).slice(0, 120));
    const frame = Buffer.alloc(4 + text.length);
    frame[0] = 0x88;
    frame[1] = 2 + text.length;
    frame.writeUInt16BE(code, 2);
    text.copy(frame, 4);
    phase = 'done';
    upstream?.destroy();
    client.end(frame);
    setTimeout(() => client.destroy(), CLOSE_GRACE).unref();
  }
}

/** Calls `fn` once the stream has emitted 'close' (at once if it already has). */
function whenClosed(stream: Duplex, fn: () => void): void {
  if (stream.closed) fn();
  else stream.once('close', fn);
}

/** Tracks WebSocket frame boundaries (RFC 6455 section 5.2) in a byte stream without copying payloads. */
export class FrameBoundary {
  #payloadLeft = 0;
  #header: number[] = [];

  atBoundary(): boolean {
    return this.#payloadLeft === 0 && this.#header.length === 0;
  }

  feed(chunk: Buffer): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.#payloadLeft > 0) {
        const take = Math.min(this.#payloadLeft, chunk.length - i);
        this.#payloadLeft -= take;
        i += take;
        continue;
      }
      this.#header.push(chunk[i] as number);
      i++;
      const need = headerLength(this.#header);
      if (need !== undefined && this.#header.length === need) {
        this.#payloadLeft = payloadLength(this.#header);
        this.#header = [];
      }
    }
  }

  /** Bytes of `chunk` up to the end of the current frame, or -1 if the frame goes on past it. */
  bytesToBoundary(chunk: Buffer): number {
    if (this.atBoundary()) return 0;
    const probe = new FrameBoundary();
    probe.#payloadLeft = this.#payloadLeft;
    probe.#header = [...this.#header];
    for (let i = 0; i < chunk.length; i++) {
      probe.feed(chunk.subarray(i, i + 1));
      if (probe.atBoundary()) return i + 1;
    }
    return -1;
  }
}

function headerLength(h: readonly number[]): number | undefined {
  if (h.length < 2) return undefined;
  const len7 = (h[1] as number) & 0x7f;
  const masked = ((h[1] as number) & 0x80) !== 0;
  return 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (masked ? 4 : 0);
}

function payloadLength(h: readonly number[]): number {
  const len7 = (h[1] as number) & 0x7f;
  if (len7 < 126) return len7;
  if (len7 === 126) return ((h[2] as number) << 8) | (h[3] as number);
  let n = 0;
  for (let i = 2; i < 10; i++) n = n * 256 + (h[i] as number);
  return n;
}
