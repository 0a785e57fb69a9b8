import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Writable } from 'node:stream';
import { Pool, type Dispatcher } from 'undici';
import { sendError, UpstreamError } from '../errors.js';
import { clientResponseHeaders } from './headers.js';
import { writeResponseHead } from './http2.js';

/** The upstream's response head, headers as a flat [name, value, ...] list, hop-by-hop removed. */
export interface ResponseHead {
  readonly status: number;
  readonly statusText: string;
  headers: string[];
}

/**
 * What to do with a response once its head arrives:
 * - `stream`: write it through now (every ordinary response);
 * - `buffer`: collect the body (up to the cap) and call `onBody` (login, refresh, logout);
 * - a promise: hold the head until it settles (a rotated token being registered), then stream it
 *   (`release`) or answer 503 instead and drop the app's response (`refuse`: the token could not be
 *   registered, and a client must not hold a token the store does not know).
 */
export type HeadAction = 'stream' | 'buffer' | Promise<HeldHead>;
export type HeldHead = 'release' | 'refuse';

export interface ResponseTap {
  onHead(head: ResponseHead): HeadAction;
  /** The whole body as the upstream sent it (maybe compressed). Writes the response itself. */
  onBody(head: ResponseHead, body: Buffer, res: ServerResponse): Promise<void>;
  /** The body passed the cap: true streams it through unread; false refuses it (the tap wrote nothing). */
  onOverflow(head: ResponseHead): boolean;
}

export interface UpstreamOptions {
  readonly origin: string;
  /** Milliseconds. */
  readonly connectTimeout: number;
  readonly responseTimeout: number;
  /** Largest body a tap buffers. */
  readonly maxBufferedBody: number;
  readonly onError?: (err: UpstreamError) => void;
  /** The head of a response a tap buffers (login, refresh, logout): its token cookies are learned. */
  readonly onBufferedHead?: (head: ResponseHead, requestUrl: string) => void;
  /**
   * `cookies.harden`: rewrites the Set-Cookie headers of every response, in place, before any tap reads
   * them or the client gets them (so a deletion the gateway builds from what it learned carries them too).
   */
  readonly hardenCookies?: (headers: string[], req: IncomingMessage) => void;
  /**
   * Answers a request whose held response a tap refused (`session_store_unavailable`); unset: a plain
   * 503 JSON error.
   */
  readonly onRefused?: (req: IncomingMessage, res: ServerResponse) => void;
}

export type RequestBody = IncomingMessage | Buffer | AsyncIterable<Buffer> | null;

/**
 * A live session's response started (streams are tracked, to be closed on revocation). It may edit the
 * head and return the stream its body is written to instead of `res` (which that stream ends):
 * `ui.liveSignOut` inserting its script into a page.
 */
export type LiveResponseListener = (
  res: ServerResponse,
  head: ResponseHead,
  tokenId: string,
  req: IncomingMessage,
) => Writable | undefined;

/** One request to forward: what goes upstream, and what watches the response. */
export interface ForwardRequest {
  /** The request headers as sent upstream (a flat [name, value, ...] list). */
  readonly headers: string[];
  readonly body: RequestBody;
  readonly tap?: ResponseTap | undefined;
  /** The request carried this live token: its response is reported to `onLiveResponse`. */
  readonly liveTokenId?: string | undefined;
  readonly onLiveResponse?: LiveResponseListener | undefined;
}

const NO_BODY_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'DELETE', 'TRACE']);

/** The connection pool to the app: HTTP/1.1 keep-alive, bodies streamed both ways. */
export class Upstream {
  readonly pool: Pool;
  readonly #options: UpstreamOptions;

  constructor(options: UpstreamOptions) {
    this.#options = options;
    this.pool = new Pool(options.origin, {
      connect: { timeout: options.connectTimeout },
      headersTimeout: options.responseTimeout,
      // Streams (SSE, long polls, large downloads) may be silent for long: no body timeout.
      bodyTimeout: 0,
      keepAliveTimeout: 30_000,
      pipelining: 1,
    });
  }

  /** Forwards one request; the response (or a 502/504) is written to `res`. */
  forward(req: IncomingMessage, res: ServerResponse, request: ForwardRequest): void {
    const { headers, body } = request;
    const hasBody =
      body !== null &&
      (body instanceof Buffer
        ? body.length > 0
        : req.headers['content-length'] !== undefined ||
          req.headers['transfer-encoding'] !== undefined ||
          !NO_BODY_METHODS.has(req.method ?? 'GET'));
    const handler = new ForwardHandler(req, res, request, this.#options);
    this.pool.dispatch(
      {
        origin: this.#options.origin,
        method: req.method ?? 'GET',
        path: req.url ?? '/',
        headers,
        body: hasBody ? (body as Dispatcher.DispatchOptions['body']) : null,
      },
      handler,
    );
  }

  close(): Promise<void> {
    return this.pool.close();
  }

  destroy(): Promise<void> {
    return this.pool.destroy();
  }
}

/**
 * One forwarded exchange (undici's dispatch handler: the legacy callbacks are undici 7's native path and
 * skip a wrapper and a header parse). Backpressure both ways; a client abort aborts the upstream request.
 */
class ForwardHandler implements Dispatcher.DispatchHandler {
  readonly #req: IncomingMessage;
  readonly #res: ServerResponse;
  /** Where the streamed body goes: `res`, or the rewrite a live response listener returned. */
  #out: Writable;
  readonly #tap: ResponseTap | undefined;
  readonly #options: UpstreamOptions;
  #abort: ((err?: Error) => void) | undefined;
  #resume: (() => void) | undefined;
  #head: ResponseHead | undefined;
  /** Body chunks held while buffering or while the head is held. */
  #chunks: Buffer[] | undefined;
  #size = 0;
  #mode: 'stream' | 'buffer' | 'hold' | 'discard' = 'stream';
  #completed = false;
  #done = false;
  readonly #request: ForwardRequest;

  constructor(req: IncomingMessage, res: ServerResponse, request: ForwardRequest, options: UpstreamOptions) {
    this.#request = request;
    this.#req = req;
    this.#res = res;
    this.#out = res;
    this.#tap = request.tap;
    this.#options = options;
    res.on('close', () => {
      // The client is gone (or the gateway ended a revoked stream): stop the upstream request too.
      if (!this.#done) this.#abort?.(new Error('client closed the connection'));
    });
  }

  onConnect(abort: (err?: Error) => void): void {
    this.#abort = abort;
    if (this.#res.destroyed) abort(new Error('client closed the connection'));
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode < 200) return true; // 1xx: Node answers 100-continue itself; others are not relayed.
    this.#resume = resume;
    const head: ResponseHead = { status: statusCode, statusText, headers: clientResponseHeaders(rawHeaders) };
    this.#options.hardenCookies?.(head.headers, this.#req);
    this.#head = head;
    const action = this.#tap ? this.#tap.onHead(head) : 'stream';
    if (action === 'stream') {
      this.#trackLive(head);
      this.#writeHead(head);
      return true;
    }
    if (action === 'buffer') {
      this.#mode = 'buffer';
      this.#chunks = [];
      this.#options.onBufferedHead?.(head, this.#req.url ?? '/');
      return true;
    }
    this.#mode = 'hold';
    this.#chunks = [];
    action.then(
      (held) => (held === 'refuse' ? this.#refuse() : this.#release()),
      () => this.#release(),
    );
    return false;
  }

  onData(chunk: Buffer): boolean {
    if (this.#mode === 'discard') return true;
    if (this.#mode === 'stream') {
      const flowing = this.#out.write(chunk);
      // Backpressure: undici pauses the upstream socket; the client's drain resumes it.
      if (!flowing && this.#resume) this.#out.once('drain', this.#resume);
      return flowing;
    }
    (this.#chunks as Buffer[]).push(chunk);
    this.#size += chunk.length;
    if (this.#mode === 'buffer' && this.#size > this.#options.maxBufferedBody) {
      if (this.#tap?.onOverflow(this.#head as ResponseHead) === false) {
        // Refused: the held head and body are dropped and the rest of the body is read and discarded
        // (aborting would also destroy the client's request stream, and with it this answer).
        this.#mode = 'discard';
        this.#chunks = undefined;
        sendError(
          this.#res,
          'SG_ERR_LOGIN_UNREADABLE',
          'the login response is over the size the gateway reads',
        );
        return true;
      }
      this.#mode = 'stream';
      this.#writeHead(this.#head as ResponseHead);
      let ok = true;
      for (const c of this.#chunks as Buffer[]) ok = this.#res.write(c);
      this.#chunks = undefined;
      if (!ok && this.#resume) this.#res.once('drain', this.#resume);
      return ok;
    }
    return this.#mode === 'buffer';
  }

  onComplete(): void {
    this.#completed = true;
    if (this.#mode === 'discard') {
      this.#done = true;
      return;
    }
    if (this.#mode === 'stream') {
      this.#done = true;
      this.#out.end();
      return;
    }
    if (this.#mode === 'buffer') {
      this.#done = true;
      const body = Buffer.concat(this.#chunks as Buffer[], this.#size);
      this.#chunks = undefined;
      (this.#tap as ResponseTap).onBody(this.#head as ResponseHead, body, this.#res).catch((err: unknown) => {
        sendError(
          this.#res,
          'SG_ERR_INTERNAL',
          `the gateway failed to process the response: ${(err as Error).message}`,
          502,
        );
      });
    }
    // hold: #release ends the response.
  }

  onError(err: Error): void {
    // The gateway refused the response and answered itself already.
    if (this.#mode === 'discard') return;
    this.#done = true;
    if (this.#res.headersSent || this.#res.destroyed) {
      this.#res.destroy();
      return;
    }
    const code = (err as { code?: string }).code;
    if (code === 'UND_ERR_ABORTED' || this.#req.destroyed) {
      this.#res.destroy();
      return;
    }
    const upstreamError =
      code === 'UND_ERR_HEADERS_TIMEOUT'
        ? new UpstreamError('SG_ERR_UPSTREAM_TIMEOUT', 'the upstream did not answer in time', {
            cause: err,
          })
        : code === 'UND_ERR_CONNECT_TIMEOUT' ||
            code === 'ECONNREFUSED' ||
            code === 'ENOTFOUND' ||
            code === 'EHOSTUNREACH'
          ? new UpstreamError('SG_ERR_UPSTREAM_CONNECT', 'the upstream could not be reached', {
              cause: err,
            })
          : new UpstreamError('SG_ERR_UPSTREAM', 'the upstream connection failed', { cause: err });
    this.#options.onError?.(upstreamError);
    sendError(this.#res, upstreamError.code, upstreamError.message);
  }

  #writeHead(head: ResponseHead): void {
    if (this.#res.destroyed) return;
    writeResponseHead(this.#res, head.status, head.statusText, head.headers);
  }

  /**
   * The held head is not delivered: the gateway answers instead, and the rest of the app's body is read
   * and dropped (as for a refused login body; the client's answer does not wait for it).
   */
  #refuse(): void {
    if (this.#mode !== 'hold') return;
    this.#mode = 'discard';
    this.#chunks = undefined;
    if (this.#completed) this.#done = true;
    if (this.#options.onRefused !== undefined) this.#options.onRefused(this.#req, this.#res);
    else sendError(this.#res, 'session_store_unavailable');
    if (!this.#completed) this.#resume?.();
  }

  /**
   * A live session's response is reported (streams are tracked, to be closed on revocation) once it is
   * released: a held response whose own tap ended the session (the app cleared the cookie) is that
   * session's last answer and is never cut.
   */
  #trackLive(head: ResponseHead): void {
    const { liveTokenId, onLiveResponse } = this.#request;
    if (liveTokenId === undefined || onLiveResponse === undefined) return;
    const rewrite = onLiveResponse(this.#res, head, liveTokenId, this.#req);
    if (rewrite !== undefined) this.#out = rewrite;
  }

  #release(): void {
    if (this.#mode !== 'hold') return;
    this.#trackLive(this.#head as ResponseHead);
    this.#mode = 'stream';
    this.#writeHead(this.#head as ResponseHead);
    for (const c of this.#chunks as Buffer[]) this.#out.write(c);
    this.#chunks = undefined;
    if (this.#completed) {
      this.#done = true;
      this.#out.end();
    } else this.#resume?.();
  }
}
