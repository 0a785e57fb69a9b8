/**
 * `ui.liveSignOut`: an open tab is signed out the moment its session ends, not at its next click.
 * Served under the self-service prefix of the proxied origin:
 *
 *   GET {prefix}live.js      the script proxy/html-inject.ts puts into live sessions' pages (static,
 *                            cacheable): it opens an EventSource to {prefix}live and, told the session
 *                            ended, replaces the page with the signed-out page of the event
 *   GET {prefix}live         the event stream of the request's own session (its token as the proxy
 *                            reads it, never a URL value): comments as heartbeats, then one `ended`
 *                            event {reason, location} when the session ends, and the stream closes
 *   GET {prefix}signed-out   the signed-out page (when `reject.redirect` is unset): the proxy's
 *                            rejection of the request's dead token, cookies cleared
 *
 * A stream costs no store call while it is open: it is a long-lived connection of its token in the
 * proxy's registry (token id -> connections), which closes it when a revocation of this replica or of
 * the invalidation channel names that token, or when the channel was restored and the session is no
 * longer live (proxy/long-lived.ts).
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { rejectionOf, sendError, type RejectionCode } from '../errors.js';
import type { CachedSession } from '../model.js';
import type { Logger } from '../observability/logger.js';
import type { SessionService, TokenCheck } from '../sessions/service.js';

/** The proxy's long-lived connections by token id (proxy/connections.ts ConnectionRegistry is one). */
export interface LiveStreamRegistry {
  add(tokenId: string, conn: { readonly kind: 'stream'; close(code: string): void }): () => void;
}

export interface LiveSignOutOptions {
  readonly sessions: Pick<SessionService, 'check'>;
  /** The reserved prefix, starting and ending with `/`. */
  readonly prefix: string;
  readonly streams: LiveStreamRegistry;
  /** `sessions.unknownTokens`: under `pass` an unknown token is not a signed-out tab. */
  readonly unknownTokens: 'pass' | 'reject';
  /** `reject.redirect`: where a signed-out tab goes (`reason=` appended); unset: {prefix}signed-out. */
  readonly redirect: string | undefined;
  /** The signed-out page for a browser that no longer carries a token (no cookies cleared). */
  readonly renderPage: (code: RejectionCode) => string;
  /** Milliseconds between heartbeat comments (proxies close silent connections). @default 25000 */
  readonly heartbeat?: number;
  readonly logger: Logger;
}

/** A request under `{prefix}live` or `{prefix}signed-out` (a subset of the proxy's RequestScope). */
export interface LiveSignOutRequest {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  /** The normalised path. */
  readonly path: string;
  readonly tokenId: string | undefined;
}

/** Answers with the proxy's rejection of the request's own dead token (page, cookies cleared). */
export type RejectDead = (code: RejectionCode, session: CachedSession | undefined) => void;

export interface LiveSignOut {
  handle(request: LiveSignOutRequest, rejectDead: RejectDead): void;
  /** Open event streams. */
  readonly open: number;
  /**
   * Shutdown: every stream is ended without an event, so its EventSource reconnects (to another
   * replica) and the tab stays.
   */
  close(): void;
}

/**
 * Kept tiny and without configuration: the stream's URL is found from the script's own, and where to
 * go comes with the event. `replace`, so Back does not return to the dead page.
 */
export const LIVE_SCRIPT =
  '(function(){var s=document.currentScript;if(!s||!window.EventSource)return;' +
  "var e=new EventSource(new URL('live',s.src).href);" +
  "e.addEventListener('ended',function(m){e.close();var l;try{l=JSON.parse(m.data).location}catch(x){}" +
  "location.replace(l||'/')})})();\n";

const SCRIPT = Buffer.from(LIVE_SCRIPT);
const SCRIPT_ETAG = `"${createHash('sha256').update(SCRIPT).digest('base64url').slice(0, 22)}"`;
const HEARTBEAT = Buffer.from(':\n\n');
/** Sent first: the client reconnects after 3 s when a stream drops (a replica restarting). */
const OPENING = Buffer.from('retry: 3000\n:\n\n');
/** The store cannot answer now: try again later; a tab is not signed out by an outage. */
const RETRY_LATER = Buffer.from('retry: 5000\n\n');

/** The codes a signed-out page may be asked for (a browser's session that ended). */
const PAGE_CODES: ReadonlySet<string> = new Set<RejectionCode>([
  'session_superseded',
  'session_expired',
  'session_logged_out',
  'session_ended',
  'session_unknown',
]);

export function createLiveSignOut(o: LiveSignOutOptions): LiveSignOut {
  const scriptPath = `${o.prefix}live.js`;
  const streamPath = `${o.prefix}live`;
  const pagePath = `${o.prefix}signed-out`;
  const heartbeatEvery = o.heartbeat ?? 25_000;
  const open = new Set<ServerResponse>();
  let heartbeat: NodeJS.Timeout | undefined;

  const locationOf = (code: RejectionCode): string => {
    // As proxy/rejection.ts redirects a rejected navigation.
    if (o.redirect === undefined) return `${pagePath}?reason=${code}`;
    if (o.redirect.includes('reason=')) return o.redirect;
    return `${o.redirect}${o.redirect.includes('?') ? '&' : '?'}reason=${code}`;
  };
  const endedEvent = (code: RejectionCode): string =>
    `event: ended\ndata: ${JSON.stringify({ reason: code, location: locationOf(code) })}\n\n`;

  // One timer for every stream, running only while one is open.
  const beat = () => {
    for (const res of open) res.write(HEARTBEAT);
  };
  const track = (res: ServerResponse) => {
    open.add(res);
    if (heartbeat === undefined) {
      heartbeat = setInterval(beat, heartbeatEvery);
      heartbeat.unref();
    }
  };
  const untrack = (res: ServerResponse) => {
    open.delete(res);
    if (open.size === 0 && heartbeat !== undefined) {
      clearInterval(heartbeat);
      heartbeat = undefined;
    }
  };

  /** What a stream's session state means for the tab: stay, go (with the code), or ask again later. */
  const outcomeOf = (check: TokenCheck): 'live' | 'later' | RejectionCode => {
    switch (check.state) {
      case 'live':
        return 'live';
      case 'unavailable':
        return 'later';
      case 'unknown':
      case 'anonymous':
        return o.unknownTokens === 'pass' ? 'live' : 'session_unknown';
      default:
        return rejectionOf(check.state) ?? 'session_ended';
    }
  };

  const stream = (request: LiveSignOutRequest): void => {
    const { req, res, tokenId } = request;
    if (tokenId === undefined) {
      // No token: not a signed-out tab for sure (a cookie whose Path does not cover the prefix is not
      // sent here). 204 tells an EventSource to stop reconnecting (HTML Living Standard, 9.2.3): the
      // tab stays as it is, without live sign-out.
      res.writeHead(204, { 'cache-control': 'no-store' });
      return void res.end();
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      // nginx and others buffer responses unless told not to.
      'x-accel-buffering': 'no',
      'x-content-type-options': 'nosniff',
    });
    res.write(OPENING);
    let ended = false;
    const end = (code: RejectionCode | undefined) => {
      if (ended) return;
      ended = true;
      remove();
      untrack(res);
      res.end(code === undefined ? undefined : endedEvent(code));
    };
    // Registered before the check, so a revocation while the store answers is not missed.
    const remove = o.streams.add(tokenId, {
      kind: 'stream',
      close: (code) => end(asPageCode(code)),
    });
    track(res);
    res.once('close', () => {
      ended = true;
      remove();
      untrack(res);
    });
    req.once('error', () => res.destroy());
    const decide = (check: TokenCheck) => {
      const outcome = outcomeOf(check);
      if (outcome === 'live') return;
      if (outcome === 'later') {
        if (!ended) res.write(RETRY_LATER);
        return end(undefined);
      }
      end(outcome);
    };
    const check = o.sessions.check(tokenId);
    if (!(check instanceof Promise)) return decide(check);
    check.then(decide, (err: unknown) => {
      o.logger.warn({ code: 'SG_ERR_INTERNAL', err: (err as Error).message }, 'live sign-out check failed');
      end(undefined);
    });
  };

  const page = (request: LiveSignOutRequest, rejectDead: RejectDead): void => {
    const { req, res, tokenId } = request;
    const asked = new URL(req.url ?? '/', 'http://gateway').searchParams.get('reason') ?? '';
    const fallback = asPageCode(asked);
    const render = () => {
      const body = o.renderPage(fallback);
      res.writeHead(200, {
        'content-type': 'text/html; charset=utf-8',
        'content-length': String(Buffer.byteLength(body)),
        'cache-control': 'no-store',
        'x-content-type-options': 'nosniff',
      });
      res.end(body);
    };
    if (tokenId === undefined) return render();
    const decide = (check: TokenCheck) => {
      const outcome = outcomeOf(check);
      // A live session is not signed out by following a link: back to the app.
      if (outcome === 'live' || outcome === 'later') {
        res.writeHead(303, { location: '/', 'cache-control': 'no-store', 'content-length': '0' });
        return void res.end();
      }
      if (check.state === 'unknown' || check.state === 'anonymous') return render();
      rejectDead(outcome, check.session);
    };
    const check = o.sessions.check(tokenId);
    if (!(check instanceof Promise)) return decide(check);
    check.then(decide, () => render());
  };

  return {
    handle(request, rejectDead) {
      const { req, res, path } = request;
      const known = path === scriptPath || path === streamPath || path === pagePath;
      if (!known) return sendError(res, 'SG_ERR_NOT_FOUND');
      const readOnly = req.method === 'GET' || (req.method === 'HEAD' && path !== streamPath);
      if (!readOnly) return sendError(res, 'SG_ERR_METHOD');
      if (path === scriptPath) return script(req, res);
      if (path === pagePath) return page(request, rejectDead);
      stream(request);
    },
    get open() {
      return open.size;
    },
    close() {
      if (heartbeat !== undefined) clearInterval(heartbeat);
      heartbeat = undefined;
      const all = [...open];
      open.clear();
      for (const res of all) res.end();
    },
  };
}

/** A code a signed-out page may show; anything else asked for is the generic "ended". */
function asPageCode(code: string): RejectionCode {
  return PAGE_CODES.has(code) ? (code as RejectionCode) : 'session_ended';
}

function script(req: IncomingMessage, res: ServerResponse): void {
  const headers = {
    'content-type': 'text/javascript; charset=utf-8',
    // The same bytes for every page and user: browsers and shared caches keep it for a day.
    'cache-control': 'public, max-age=86400',
    etag: SCRIPT_ETAG,
    'x-content-type-options': 'nosniff',
  };
  if (req.headers['if-none-match'] === SCRIPT_ETAG) {
    res.writeHead(304, headers);
    return void res.end();
  }
  res.writeHead(200, { ...headers, 'content-length': String(SCRIPT.length) });
  res.end(req.method === 'HEAD' ? undefined : SCRIPT);
}
