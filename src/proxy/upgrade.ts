import type { IncomingMessage } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';

/** WebSocket close codes 4001-4099 are the application's (RFC 6455 section 7.4.2). */
export const CLOSE_CODES: Readonly<Record<string, number>> = {
  session_superseded: 4001,
  session_expired: 4002,
  session_logged_out: 4003,
  session_ended: 4004,
  session_unknown: 4005,
};

export interface UpgradeTarget {
  readonly host: string;
  readonly port: number;
  readonly tls: boolean;
  readonly connectTimeout: number;
}

export interface UpgradedConnection {
  /** Sends a close frame with the code for `reason` at the next frame boundary, then closes both sides. */
  close(reason: string): void;
  readonly closed: Promise<void>;
}

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
 * Tunnels an upgrade (WebSocket) to the upstream. The server-to-client byte stream is followed frame by
 * frame (headers only, payloads pass untouched) so that a revocation can inject a close frame at a frame
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
  const upstream: Socket = target.tls
    ? tlsConnect({ host: target.host, port: target.port, servername: target.host })
    : netConnect({ host: target.host, port: target.port });
  upstream.setTimeout(target.connectTimeout);
  upstream.once('timeout', () => upstream.destroy(new Error('upstream connect timeout')));
  upstream.setNoDelay(true);

  let lines = `${req.method} ${req.url} HTTP/1.1\r\n`;
  for (let i = 0; i < headers.length; i += 2) lines += `${headers[i]}: ${headers[i + 1]}\r\n`;
  upstream.once('connect', () => upstream.setTimeout(0));
  upstream.write(`${lines}\r\n`);
  if (head.length > 0) upstream.write(head);

  let headDone = false;
  let headBuf: Buffer | undefined;
  const frames = new FrameBoundary();
  let closeReason: string | undefined;
  let finished = false;

  const finish = () => {
    if (finished) return;
    finished = true;
    client.destroy();
    upstream.destroy();
    resolveClosed();
  };

  const sendClose = (reason: string) => {
    const code = CLOSE_CODES[reason] ?? 4000;
    const text = Buffer.from(JSON.stringify({ error: reason }).slice(0, 120));
    const frame = Buffer.alloc(4 + text.length);
    frame[0] = 0x88;
    frame[1] = 2 + text.length;
    frame.writeUInt16BE(code, 2);
    text.copy(frame, 4);
    upstream.destroy();
    client.end(frame);
    setTimeout(finish, 1000).unref();
  };

  upstream.on('data', (chunk: Buffer) => {
    if (closeReason !== undefined) return;
    if (!headDone) {
      headBuf = headBuf ? Buffer.concat([headBuf, chunk]) : chunk;
      const end = headBuf.indexOf('\r\n\r\n');
      if (end === -1) {
        if (headBuf.length > 64 * 1024) finish();
        return;
      }
      headDone = true;
      client.write(headBuf.subarray(0, end + 4));
      chunk = headBuf.subarray(end + 4);
      headBuf = undefined;
      if (chunk.length === 0) return;
    }
    frames.feed(chunk);
    if (!client.write(chunk)) upstream.pause();
  });
  client.on('drain', () => upstream.resume());
  client.on('data', (chunk: Buffer) => {
    if (closeReason === undefined && !upstream.write(chunk)) client.pause();
  });
  upstream.on('drain', () => client.resume());
  upstream.on('end', () => client.end());
  client.on('end', () => upstream.end());
  upstream.on('close', () => (closeReason === undefined ? finish() : undefined));
  client.on('close', finish);
  upstream.on('error', (err) => {
    if (!headDone && !client.destroyed) {
      rejectUpgrade(
        client,
        502,
        'Bad Gateway',
        JSON.stringify({ error: 'SG_ERR_UPSTREAM_CONNECT', message: 'the upstream could not be reached' }),
      );
    }
    onError(err);
    finish();
  });
  client.on('error', finish);

  return {
    closed,
    close(reason) {
      if (closeReason !== undefined || finished) return;
      closeReason = reason;
      if (!headDone) {
        finish();
        return;
      }
      if (frames.atBoundary()) {
        sendClose(reason);
        return;
      }
      // Finish the frame in flight, then close.
      upstream.removeAllListeners('data');
      upstream.on('data', (chunk: Buffer) => {
        const cut = frames.bytesToBoundary(chunk);
        client.write(cut === -1 ? chunk : chunk.subarray(0, cut));
        if (cut !== -1) sendClose(reason);
        else frames.feed(chunk);
      });
      upstream.resume();
    },
  };
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
