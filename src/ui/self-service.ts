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
import { createHmac, randomBytes } from 'node:crypto';
import { readCapped } from '../http/body.js';
import { ERRORS, rejectionOf, type RejectionCode } from '../errors.js';
import type { IncomingMessage } from 'node:http';
import type { CachedSession } from '../model.js';
import type { Logger } from '../observability/logger.js';
import { sessionView } from '../sessions/device.js';
import type { SessionService } from '../sessions/service.js';
import {
  PageProblem,
  refuseCrossSite,
  safeEqual,
  sendHtml,
  sendJson,
  sendPageProblem,
  servePage,
  wantsJson,
  type SelfServiceRequest,
} from './page-http.js';
import { renderSessionsPage, renderSupersededPage, type SessionRow } from './pages.js';

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

export const renderRejectionPage = renderSupersededPage;

/** Largest request body read for an action (a form with one hidden field needs well under 1 KiB). */
const MAX_BODY = 16 * 1024;
const SESSION_ACTION = /^sessions\/([^/]+)\/end$/;

type Live = { readonly session: CachedSession; readonly lastSeenAt: number };

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

  return servePage(handle, {
    logger: log,
    failed: 'self-service request failed',
    internalMessage: 'The session page failed. Please try again.',
    unavailableMessage: 'Sessions cannot be checked right now. Please try again shortly.',
    send: sendProblem,
  });

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
      if (!m) throw new PageProblem(404, 'SG_ERR_NOT_FOUND', 'There is nothing here.', 'Not found');
      action = { kind: 'end', sessionId: m[1] as string };
      allow = 'POST';
    }
    if (!allow.split(', ').includes(method)) {
      scope.res.setHeader('allow', allow);
      throw new PageProblem(405, 'SG_ERR_METHOD', `Use ${allow}.`, 'Method not allowed');
    }
    if (action.kind !== 'list') {
      // Refuse cross-site requests before anything else (Fetch Metadata, then Origin).
      refuseCrossSite(scope, trustedProxies, log, 'action');
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
      throw new PageProblem(
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
      throw new PageProblem(
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
      throw new PageProblem(
        503,
        'session_store_unavailable',
        message('session_store_unavailable'),
        'Try again shortly',
      );
    if (d.state !== 'live' || d.session === undefined) throw notLive(d.state, d.session);
    return { session: d.session, lastSeenAt: d.lastSeenAt };
  }

  function notLive(state: string, session?: CachedSession): PageProblem {
    const code = state === 'none' ? 'session_required' : (rejectionOf(state) ?? 'session_unknown');
    return new PageProblem(
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

  function sendProblem(scope: SelfServiceRequest, p: PageProblem): void {
    const link =
      p.status === 401
        ? { href: loginUrl, text: 'Sign in' }
        : { href: pageUrl, text: 'Back to your sessions' };
    sendPageProblem(scope, p, link, loginUrl);
  }
}

function pathOf(url: string): string {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
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

async function readBody(req: IncomingMessage): Promise<string> {
  const body = await readCapped(req, MAX_BODY);
  if (body === 'too_large') throw new PageProblem(413, 'SG_ERR_BODY_TOO_LARGE', 'Request body too large.');
  if (body === 'aborted')
    throw new PageProblem(400, 'SG_ERR_BAD_REQUEST', 'The request did not arrive whole.');
  return body.toString('utf8');
}
