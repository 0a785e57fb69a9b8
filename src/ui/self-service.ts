/**
 * The self-service sessions page, served by the gateway itself under a reserved prefix of the proxied
 * origin (default `/.sessiongate/`):
 *
 *   GET  {prefix}sessions                the signed-in user's live sessions (HTML, or JSON for
 *                                        `Accept: application/json`)
 *   POST {prefix}sessions/{id}/end       ends one of them
 *   POST {prefix}sessions/end-others     ends all but the one making the request
 *
 * The user is always the one the request's own token belongs to (never a URL or body value), so no
 * request can reach another user's sessions. The ending actions are CSRF-safe twice over: a token bound
 * to the caller's session (HMAC, hidden form field or `X-CSRF-Token`), and Fetch Metadata / `Origin`
 * checks that refuse cross-site requests outright.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { readCapped } from '../http/body.js';
import { ERRORS, rejectionOf, type ErrorCode, type RejectionCode } from '../errors.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CachedSession } from '../model.js';
import type { Logger } from '../observability/logger.js';
import { sessionView } from '../sessions/device.js';
import type { SessionService } from '../sessions/service.js';
import {
  PAGE_CSP,
  renderMessagePage,
  renderSessionsPage,
  renderSupersededPage,
  type SessionRow,
} from './pages.js';

export interface SelfServiceOptions {
  readonly sessions: SessionService;
  /** The reserved prefix, starting and ending with `/`. */
  readonly prefix: string;
  readonly logger: Logger;
  /** Epoch-millisecond clock. */
  readonly now: () => number;
  /**
   * Key of the CSRF tokens. Replicas behind one origin must share it (a page rendered by one replica
   * is posted to another), so the gateway should derive it from `secret`. @default random per process
   */
  readonly csrfKey?: string | Uint8Array;
  /** Where "sign in" links point. @default / */
  readonly loginUrl?: string;
  /**
   * The proxy's trusted proxies (`trustedProxies`): only their `X-Forwarded-Host` names this origin in
   * the CSRF `Origin` check, as only their forwarding headers reach the app. @default none
   */
  readonly trustedProxies?: { isTrusted(address: string | undefined): boolean };
  /**
   * The message of each rejection code: the proxy's own table, so a page says what a rejected request
   * is told (a configured `reject.supersededMessage` included). @default the registry's messages
   */
  readonly rejectionMessage?: (code: RejectionCode) => string;
  /** `Clear-Site-Data` when a user ends the session of the browser asking. @default none */
  readonly clearSiteData?: string | undefined;
}

/** What the proxy hands over for a request under the reserved prefix (a subset of its RequestScope). */
export interface SelfServiceRequest {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  /** HMAC id of the token the request carries, if any. */
  readonly tokenId: string | undefined;
  readonly clientIp: string;
  /** The normalised path (dot segments removed, no query). @default the path of `req.url` */
  readonly path?: string;
}

export const renderRejectionPage = renderSupersededPage;

/** Largest request body read for an action (a form with one hidden field needs well under 1 KiB). */
const MAX_BODY = 16 * 1024;
const SESSION_ACTION = /^sessions\/([^/]+)\/end$/;

type Live = { readonly session: CachedSession; readonly lastSeenAt: number };

class HttpProblem extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
    readonly title = 'Something went wrong',
    /** For a 401 of a session that ended: the record, so the page can say when and why. */
    readonly session?: CachedSession,
  ) {
    super(message);
  }
}

/** The self-service sessions page under the reserved prefix (see ui/pages.ts for the HTML). */
export function createSelfService(options: SelfServiceOptions): (scope: SelfServiceRequest) => void {
  const { sessions, prefix, logger: log, now } = options;
  const csrfKey = options.csrfKey ?? randomBytes(32);
  const trustedProxies = options.trustedProxies ?? { isTrusted: () => false };
  const loginUrl = options.loginUrl ?? '/';
  const pageUrl = `${prefix}sessions`;
  const message = options.rejectionMessage ?? ((code: RejectionCode) => ERRORS[code].message);

  const csrfTokenOf = (sessionId: string): string =>
    createHmac('sha256', csrfKey).update(`sessiongate-csrf:${sessionId}`).digest('base64url');

  return (scope) => {
    handle(scope).catch((err: unknown) => {
      const problem =
        err instanceof HttpProblem
          ? err
          : (err as { code?: string }).code === 'SG_ERR_STORE_UNAVAILABLE'
            ? new HttpProblem(
                503,
                'session_store_unavailable',
                'Sessions cannot be checked right now. Please try again shortly.',
                'Try again shortly',
              )
            : new HttpProblem(500, 'SG_ERR_INTERNAL', 'The session page failed. Please try again.');
      if (problem.status >= 500)
        log.error(
          { code: (err as { code?: string }).code ?? problem.code, err: (err as Error).message },
          'self-service request failed',
        );
      sendProblem(scope, problem);
    });
  };

  async function handle(scope: SelfServiceRequest): Promise<void> {
    const { req } = scope;
    const path = scope.path ?? pathOf(req.url ?? '/');
    const rel = path.slice(prefix.length);
    const method = req.method ?? 'GET';
    let action: { kind: 'list' } | { kind: 'end'; sessionId: string } | { kind: 'end-others' };
    let allow: string;
    if (rel === 'sessions') {
      action = { kind: 'list' };
      allow = 'GET, HEAD';
    } else if (rel === 'sessions/end-others') {
      action = { kind: 'end-others' };
      allow = 'POST';
    } else {
      const m = SESSION_ACTION.exec(rel);
      if (!m) throw new HttpProblem(404, 'SG_ERR_NOT_FOUND', 'There is nothing here.', 'Not found');
      action = { kind: 'end', sessionId: m[1] as string };
      allow = 'POST';
    }
    if (!allow.split(', ').includes(method)) {
      scope.res.setHeader('allow', allow);
      throw new HttpProblem(405, 'SG_ERR_METHOD', `Use ${allow}.`, 'Method not allowed');
    }
    if (action.kind !== 'list') {
      // Refuse cross-site requests before anything else (Fetch Metadata, then Origin).
      const crossSite = crossSiteReason(req, trustedProxies.isTrusted(req.socket.remoteAddress));
      if (crossSite !== undefined) {
        log.warn({ code: 'SG_ERR_CSRF', reason: crossSite, ip: scope.clientIp }, 'cross-site action refused');
        throw new HttpProblem(403, 'SG_ERR_CSRF', `Cross-site request refused (${crossSite}).`, 'Refused');
      }
    }
    const live = await liveSession(scope);
    if (action.kind === 'list') return list(scope, live);

    const body = await readBody(req);
    const presented = csrfFrom(req, body);
    if (presented === undefined || !safeEqual(presented, csrfTokenOf(live.session.id))) {
      log.warn(
        { code: 'SG_ERR_CSRF', reason: 'csrf token', ip: scope.clientIp },
        'action without a valid CSRF token',
      );
      throw new HttpProblem(
        403,
        'SG_ERR_CSRF',
        'Missing or invalid CSRF token. Reload the page and try again.',
        'Refused',
      );
    }
    const user = live.session.user;
    const ended =
      action.kind === 'end'
        ? await sessions.endSessions(user, [action.sessionId], 'ended_by_user', { actor: 'user' })
        : await sessions.endSessions(user, undefined, 'ended_by_user', {
            exceptSessionId: live.session.id,
            actor: 'user',
          });
    if (action.kind === 'end' && ended.length === 0)
      throw new HttpProblem(
        404,
        'SG_ERR_SESSION_NOT_FOUND',
        'No such session among yours: it may have ended already.',
        'Session not found',
      );
    const ids = ended.map((s) => s.id);
    // This browser's own session ended: what it keeps of it (a SPA's stored token) goes too.
    if (options.clearSiteData !== undefined && ids.includes(live.session.id))
      scope.res.setHeader('clear-site-data', options.clearSiteData);
    if (wantsJson(req)) return sendJson(scope.res, 200, { ended: ids });
    // Post/redirect/get (303: the browser follows with GET).
    scope.res.writeHead(303, {
      location: `${pageUrl}?ended=${ids.length}`,
      'content-length': '0',
      'cache-control': 'no-store',
    });
    scope.res.end();
  }

  /** The caller's live session, or a 401 (503 when the store cannot say). */
  async function liveSession(scope: SelfServiceRequest): Promise<Live> {
    if (scope.tokenId === undefined) throw notLive('none');
    const d = await sessions.check(scope.tokenId);
    if (d.state === 'unavailable')
      throw new HttpProblem(
        503,
        'session_store_unavailable',
        message('session_store_unavailable'),
        'Try again shortly',
      );
    if (d.state !== 'live' || d.session === undefined) throw notLive(d.state, d.session);
    return { session: d.session, lastSeenAt: d.lastSeenAt };
  }

  function notLive(state: string, session?: CachedSession): HttpProblem {
    const code = state === 'none' ? 'session_required' : (rejectionOf(state) ?? 'session_unknown');
    return new HttpProblem(
      401,
      code,
      message(code),
      state === 'none' ? 'Sign in' : 'You are signed out',
      session,
    );
  }

  async function list(scope: SelfServiceRequest, live: Live): Promise<void> {
    const { req, res } = scope;
    const listed = await sessions.listSessions(live.session.user);
    // The caller's own session first, as the store has it (the cache keeps no address or device). It
    // is missing only when it ended between the check and the list.
    const current = listed.find((s) => s.id === live.session.id);
    if (current === undefined) throw notLive('unknown');
    const others = listed.filter((s) => s.id !== current.id);
    const rows: SessionRow[] = [
      { ...sessionView(current, live.lastSeenAt), current: true },
      ...others.map((s) => ({ ...sessionView(s), current: false })),
    ];
    const csrfToken = csrfTokenOf(current.id);
    res.setHeader('vary', 'Accept');
    if (wantsJson(req)) {
      return sendJson(res, 200, {
        user: current.user,
        currentSessionId: current.id,
        csrfToken,
        sessions: rows,
      });
    }
    const endedParam = new URL(req.url ?? '/', 'http://self').searchParams.get('ended');
    const n = endedParam !== null && /^\d{1,4}$/.test(endedParam) ? Number(endedParam) : undefined;
    const html = renderSessionsPage({
      user: current.user,
      sessions: rows,
      prefix,
      csrfToken,
      now: now(),
      ...(n !== undefined
        ? { notice: n === 0 ? 'No session was ended.' : `${n} session${n === 1 ? '' : 's'} ended.` }
        : {}),
    });
    sendHtml(res, 200, html);
  }

  function sendProblem(scope: SelfServiceRequest, p: HttpProblem): void {
    const { req, res } = scope;
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (wantsJson(req) || (req.method !== 'GET' && req.method !== 'HEAD' && !isFormPost(req))) {
      sendJson(res, p.status, { error: p.code, message: p.message });
      return;
    }
    if (p.status === 401 && p.session !== undefined) {
      // A session that ended: the same page as any other navigation of it (when, from which device).
      sendHtml(
        res,
        401,
        renderSupersededPage({ code: p.code, message: p.message, session: p.session, loginUrl }),
      );
      return;
    }
    const link =
      p.status === 401
        ? { href: loginUrl, text: 'Sign in' }
        : { href: pageUrl, text: 'Back to your sessions' };
    sendHtml(res, p.status, renderMessagePage({ title: p.title, message: p.message, code: p.code, link }));
  }
}

function pathOf(url: string): string {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

/**
 * Why a state-changing request is cross-site, or undefined. `Sec-Fetch-Site` (Fetch Metadata, sent by
 * every current browser) must be `same-origin` or `none` (typed or bookmarked); `same-site` is refused
 * too, since a sibling subdomain is not necessarily ours. Without it, an `Origin` must name this host
 * (RFC 6454 section 7.3; browsers send it on every cross-origin POST): `Host`, or `X-Forwarded-Host`
 * when the peer is a trusted proxy (anyone else could name any host there, the Origin's own included).
 */
export function crossSiteReason(req: IncomingMessage, peerTrusted: boolean): string | undefined {
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') return `Sec-Fetch-Site: ${site}`;
  const origin = req.headers.origin;
  if (origin === undefined) return undefined;
  if (origin === 'null') return 'opaque Origin';
  let o: URL;
  try {
    o = new URL(origin);
  } catch {
    return 'malformed Origin';
  }
  const hosts = [req.headers.host, peerTrusted ? firstValue(req.headers['x-forwarded-host']) : undefined];
  for (const h of hosts) {
    if (!h) continue;
    try {
      if (new URL(`${o.protocol}//${h}`).host === o.host) return undefined;
    } catch {
      // A malformed Host matches nothing.
    }
  }
  return 'Origin does not match Host';
}

function firstValue(v: string | string[] | undefined): string | undefined {
  const s = Array.isArray(v) ? v[0] : v;
  return s?.split(',')[0]?.trim();
}

/** The CSRF token from `X-CSRF-Token`, a form field `csrf`, or a JSON body `{"csrf": ...}`. */
function csrfFrom(req: IncomingMessage, body: string): string | undefined {
  const header = req.headers['x-csrf-token'];
  if (typeof header === 'string' && header) return header;
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type === 'application/x-www-form-urlencoded') return new URLSearchParams(body).get('csrf') ?? undefined;
  if (type === 'application/json') {
    try {
      const v = (JSON.parse(body) as { csrf?: unknown }).csrf;
      return typeof v === 'string' ? v : undefined;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

export function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

async function readBody(req: IncomingMessage): Promise<string> {
  const body = await readCapped(req, MAX_BODY);
  if (body === 'too_large') throw new HttpProblem(413, 'SG_ERR_BODY_TOO_LARGE', 'Request body too large.');
  if (body === 'aborted')
    throw new HttpProblem(400, 'SG_ERR_BAD_REQUEST', 'The request did not arrive whole.');
  return body.toString('utf8');
}

/** JSON for SPAs and API clients: `Accept: application/json`, or an `X-CSRF-Token` (only scripts send it). */
export function wantsJson(req: IncomingMessage): boolean {
  const accept = req.headers.accept ?? '';
  if (accept.includes('application/json') && !accept.includes('text/html')) return true;
  return req.headers['x-csrf-token'] !== undefined || req.headers['x-requested-with'] !== undefined;
}

export function isFormPost(req: IncomingMessage): boolean {
  return (req.headers['content-type'] ?? '').toLowerCase().startsWith('application/x-www-form-urlencoded');
}

const SECURITY_HEADERS = {
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'same-origin',
} as const;

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(text)),
  });
  res.end(text);
}

export function sendHtml(res: ServerResponse, status: number, html: string): void {
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    'content-type': 'text/html; charset=utf-8',
    'content-length': String(Buffer.byteLength(html)),
    'content-security-policy': PAGE_CSP,
    // Clickjacking: the End buttons must not be framed (CSP frame-ancestors for current browsers).
    'x-frame-options': 'DENY',
  });
  res.end(html);
}
