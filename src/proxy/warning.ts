import type { IncomingHttpHeaders } from 'node:http';
import type { SessionWarning } from '../model.js';
import type { Logger } from '../observability/logger.js';
import { warningPageUrl } from '../ui/warning.js';
import type { RequestScope } from './scope.js';

export interface WarningGateDeps {
  /** The self-service prefix, where the warning page is (ui/warning.ts). */
  readonly prefix: string;
  readonly mode: 'enforce' | 'report-only';
  readonly logger: Logger;
}

/**
 * `onLimit: warn` on the request path, for a passed request whose session carries a warning (the one
 * field the check tests on a cache hit): a top-level navigation is sent to the warning page (303, with
 * the path and query it asked for), anything else (API, fetch, subresources) goes on with a
 * `Sessiongate-Warning` header naming the event, until the user has answered. Under report-only
 * nothing the client sees changes: the request goes on, and the would-be page is logged.
 */
export type WarningGate = (scope: RequestScope, warning: SessionWarning) => void;

export function compileWarningGate(deps: WarningGateDeps): WarningGate {
  const { prefix, logger } = deps;
  if (deps.mode === 'report-only')
    return (scope, warning) => {
      if (isTopLevelNavigation(scope.req.method, scope.req.headers))
        logger.info(
          { event: 'warning_page', sessionId: scope.decision?.session?.id, login: warning.sessionId },
          'would show the warning page (report-only, passed)',
        );
      scope.handler.handle(scope);
    };
  return (scope, warning) => {
    const { req, res } = scope;
    if (isTopLevelNavigation(req.method, req.headers)) {
      res.writeHead(303, {
        location: warningPageUrl(prefix, pathAndQuery(req.url)),
        'cache-control': 'no-store',
        'content-length': '0',
      });
      res.end();
      return;
    }
    res.setHeader('sessiongate-warning', warningHeader(warning));
    scope.handler.handle(scope);
  };
}

/**
 * A browser's top-level navigation: a GET (HEAD) with `Sec-Fetch-Mode: navigate` and, where sent,
 * `Sec-Fetch-Dest: document` (an iframe's navigation is not the user's tab); without Fetch Metadata, a
 * GET whose Accept prefers text/html, without `X-Requested-With` or a bearer token (only scripts send
 * those).
 */
export function isTopLevelNavigation(method: string | undefined, headers: IncomingHttpHeaders): boolean {
  if (method !== 'GET' && method !== 'HEAD') return false;
  const mode = headers['sec-fetch-mode'];
  if (mode !== undefined) {
    const dest = headers['sec-fetch-dest'];
    return mode === 'navigate' && (dest === undefined || dest === 'document');
  }
  if (headers['x-requested-with'] !== undefined) return false;
  if (headers.authorization !== undefined && /^bearer[ \t]/i.test(headers.authorization)) return false;
  return prefersHtml(headers.accept);
}

/** text/html is acceptable and nothing listed is preferred to it (RFC 9110 section 12.5.1 weights). */
export function prefersHtml(accept: string | undefined): boolean {
  if (accept === undefined) return false;
  let html = -1;
  let best = 0;
  for (const part of accept.split(',')) {
    const [type = '', ...params] = part.split(';');
    let q = 1;
    for (const p of params) {
      const [k, v] = p.split('=');
      if (k?.trim().toLowerCase() === 'q' && v !== undefined) q = Number(v.trim());
    }
    if (!Number.isFinite(q)) continue;
    const t = type.trim().toLowerCase();
    if (t === 'text/html') html = Math.max(html, q);
    // Wildcards accept anything; they say nothing of a preference for another type.
    else if (!t.endsWith('/*')) best = Math.max(best, q);
  }
  return html > 0 && html >= best;
}

/** The path and query a request asked for (an absolute-form target reduced to them). */
function pathAndQuery(url: string | undefined): string {
  if (url === undefined || url.startsWith('/')) return url ?? '/';
  try {
    const u = new URL(url);
    return `${u.pathname}${u.search}`;
  } catch {
    return '/';
  }
}

const HEADER_SAFE = /^[\x21-\x7e]+$/;
/** One header value per warning, made once (a warned session's requests repeat it). */
const headers = new WeakMap<SessionWarning, string>();

/** `session.warned; session=<new session id>; at=<ISO time>` (the session left out if not header-safe). */
export function warningHeader(warning: SessionWarning): string {
  let value = headers.get(warning);
  if (value === undefined) {
    const session =
      HEADER_SAFE.test(warning.sessionId) && !warning.sessionId.includes(';')
        ? `; session=${warning.sessionId}`
        : '';
    value = `session.warned${session}; at=${new Date(warning.at).toISOString()}`;
    headers.set(warning, value);
  }
  return value;
}
