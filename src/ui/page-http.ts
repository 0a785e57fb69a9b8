/**
 * The HTTP of the gateway's own pages under the prefix (sessions, choose, not-me, warning, live
 * sign-out): the request a page gets, the cross-site check of its POSTs, its JSON and HTML answers with
 * their security headers, and one problem type for what a page answers instead of its content (JSON to
 * API clients, a page to browsers), with one mapping of unexpected failures. Each page keeps its own
 * routes and texts.
 */
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ERRORS, type ErrorCode } from '../errors.js';
import type { CachedSession } from '../model.js';
import type { Logger } from '../observability/logger.js';
import type { SessionService } from '../sessions/service.js';
import { PAGE_CSP, renderMessagePage, renderSupersededPage } from './pages.js';

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

export function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
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

/** What every page with a form under the prefix is built with (each page adds its own). */
export interface PageOptions {
  readonly sessions: SessionService;
  /** The reserved prefix, starting and ending with `/`. */
  readonly prefix: string;
  readonly logger: Logger;
  readonly now: () => number;
  /** Key of the CSRF tokens (derived from `secret`, so every replica agrees). */
  readonly csrfKey: string | Uint8Array;
  readonly trustedProxies?: { isTrusted(address: string | undefined): boolean };
  /** Where "sign in again" links point. @default / */
  readonly loginUrl?: string;
}

/** A page's answer in place of its content: a status, a registry code, what the user reads. */
export class PageProblem extends Error {
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

export interface PageServing {
  readonly logger: Logger;
  /** The log message of an unexpected failure ("warning page failed"). */
  readonly failed: string;
  /** What the user reads on one (500). */
  readonly internalMessage: string;
  /** What the user reads when the store cannot answer (503). @default the registry's */
  readonly unavailableMessage?: string;
  readonly send: (scope: SelfServiceRequest, problem: PageProblem) => void;
}

/**
 * Runs a page's handler: a PageProblem it throws is sent as it is, a store that cannot answer becomes
 * 503 `session_store_unavailable`, anything else 500 `SG_ERR_INTERNAL`, logged with its code.
 */
export function servePage(
  handle: (scope: SelfServiceRequest) => Promise<void>,
  o: PageServing,
): (scope: SelfServiceRequest) => void {
  return (scope) => {
    handle(scope).catch((err: unknown) => {
      const code = (err as { code?: string }).code;
      const problem =
        err instanceof PageProblem
          ? err
          : code === 'SG_ERR_STORE_UNAVAILABLE'
            ? new PageProblem(
                503,
                'session_store_unavailable',
                o.unavailableMessage ?? ERRORS.session_store_unavailable.message,
                'Try again shortly',
              )
            : new PageProblem(500, 'SG_ERR_INTERNAL', o.internalMessage);
      if (problem.status >= 500)
        o.logger.error({ code: code ?? problem.code, err: (err as Error).message }, o.failed);
      o.send(scope, problem);
    });
  };
}

/** Throws 405 unless GET, HEAD or POST; says which it is. */
export function pageMethod(req: IncomingMessage, res: ServerResponse): 'show' | 'post' {
  const method = req.method ?? 'GET';
  if (method === 'GET' || method === 'HEAD') return 'show';
  if (method === 'POST') return 'post';
  res.setHeader('allow', 'GET, HEAD, POST');
  throw new PageProblem(405, 'SG_ERR_METHOD', 'Use GET or POST.', 'Method not allowed');
}

/** Refuses a POST another site's page made (403 `SG_ERR_CSRF`, logged with `what`). */
export function refuseCrossSite(
  scope: SelfServiceRequest,
  trustedProxies: { isTrusted(address: string | undefined): boolean },
  logger: Logger,
  what: string,
): void {
  const crossSite = crossSiteReason(scope.req, trustedProxies.isTrusted(scope.req.socket.remoteAddress));
  if (crossSite === undefined) return;
  logger.warn({ code: 'SG_ERR_CSRF', reason: crossSite, ip: scope.clientIp }, `cross-site ${what} refused`);
  throw new PageProblem(403, 'SG_ERR_CSRF', `Cross-site request refused (${crossSite}).`, 'Refused');
}

/**
 * Sends a problem: JSON (`{error, message}`) to a client that asks for it or posts no form, else a
 * page: an ended session's (when, from which device) for its 401, a message with `link` otherwise. A
 * response already started is cut (its client sees a broken response, never a spliced one).
 */
export function sendPageProblem(
  scope: SelfServiceRequest,
  p: PageProblem,
  link: { readonly href: string; readonly text: string },
  loginUrl: string,
): void {
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
    sendHtml(
      res,
      401,
      renderSupersededPage({ code: p.code, message: p.message, session: p.session, loginUrl }),
    );
    return;
  }
  sendHtml(res, p.status, renderMessagePage({ title: p.title, message: p.message, code: p.code, link }));
}
