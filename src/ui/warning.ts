/**
 * `onLimit: warn`: the page a warned session's next top-level navigation is sent to (proxy/warning.ts),
 * under the self-service prefix of the proxied origin:
 *
 *   GET  {prefix}warning?next=<path>   "A new sign-in to your account from Chrome on Windows in Berlin, DE
 *                                      at 10:42 UTC. Was this you?" (HTML, or JSON for
 *                                      `Accept: application/json`); a session with no mark (answered
 *                                      already) is sent straight on to `next`
 *   POST {prefix}warning               `answer=continue` ("Yes, continue": the mark is cleared for that
 *                                      login only, then 303 to `next`) or `answer=sign-out` ("No, sign out
 *                                      everywhere": every session of the user ends), with `login` (the
 *                                      login the page named), `next` and `csrf` (form), or the same as JSON
 *
 * The user is the one the request's own token belongs to, read from the store (not the cache, which may
 * lag another replica's answer by up to maxStaleness). The POSTs are CSRF-safe as the sessions page's
 * are: a token bound to the caller's session (HMAC with a key derived from `secret`, so every replica
 * agrees) and the Fetch Metadata / `Origin` check (`crossSiteReason`). `next` is only ever a same-origin
 * path and query (`sameOriginPath`), never an absolute URL, so the page cannot be made an open redirect.
 */
import { createHmac } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { ERRORS, rejectionOf, type RejectionCode } from '../errors.js';
import { readCapped } from '../http/body.js';
import type { CachedSession, SessionWarning } from '../model.js';
import { html } from './html.js';
import {
  pageMethod,
  PageProblem,
  refuseCrossSite,
  safeEqual,
  type SelfServiceRequest,
  sendHtml,
  sendJson,
  sendPageProblem,
  servePage,
  wantsJson,
  type PageOptions,
} from './page-http.js';
import { layout, renderMessagePage } from './pages.js';

export interface WarningPageOptions extends PageOptions {
  /** `Clear-Site-Data` of "sign out everywhere" (this browser's session ends too). @default none */
  readonly clearSiteData?: string | undefined;
  /** The message of each rejection code (the proxy's). @default the registry's messages */
  readonly rejectionMessage?: (code: RejectionCode) => string;
}

/** The page's path under the prefix. */
export const WARNING_PATH = 'warning';
/** A form of four short fields and a path: well under 16 KiB, `next` included. */
const MAX_BODY = 16 * 1024;
/** Longer asked-for URLs are not carried back (the user lands on `/` instead). */
const MAX_NEXT = 8 * 1024;
/**
 * `value` when it is a path (and query) of this origin, else undefined: it starts with one `/` (not
 * `//` nor `/\`, which browsers read as another host) and holds no control character, space or backslash.
 */
export function sameOriginPath(value: string | null | undefined): string | undefined {
  if (!value || value.length > MAX_NEXT || value[0] !== '/' || value[1] === '/') return undefined;
  for (let i = 0; i < value.length; i++) {
    // Controls, space, backslash and DEL: a path a browser could read as another origin or another path.
    const c = value.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f || c === 0x5c) return undefined;
  }
  return value;
}

/** The URL of the warning page for a navigation that asked for `next` (a same-origin path, or `/`). */
export function warningPageUrl(prefix: string, next: string | undefined): string {
  return `${prefix}${WARNING_PATH}?next=${encodeURIComponent(sameOriginPath(next) ?? '/')}`;
}

const TIME = new Intl.DateTimeFormat('en-GB', { timeStyle: 'short', timeZone: 'UTC' });
const DAY_TIME = new Intl.DateTimeFormat('en-GB', {
  dateStyle: 'medium',
  timeStyle: 'short',
  timeZone: 'UTC',
});

/**
 * "A new sign-in to your account from Chrome on Windows in Berlin, DE at 10:42 UTC." (the date too
 * when the login was not today, UTC).
 */
export function warningSentence(warning: SessionWarning, now: number): string {
  const sameDay =
    new Date(warning.at).toISOString().slice(0, 10) === new Date(now).toISOString().slice(0, 10);
  const when = `${(sameDay ? TIME : DAY_TIME).format(warning.at)} UTC`;
  const where = warning.place !== undefined ? ` in ${warning.place}` : '';
  return `A new sign-in to your account from ${warning.device}${where} at ${when}.`;
}

type Answer = { readonly kind: 'continue' | 'sign-out'; readonly login?: string; readonly next?: string };

/** The warning page's handler, for a request whose path starts with `{prefix}warning`. */
export function createWarningPage(o: WarningPageOptions): (scope: SelfServiceRequest) => void {
  const loginUrl = o.loginUrl ?? '/';
  const trusted = o.trustedProxies ?? { isTrusted: () => false };
  const message = o.rejectionMessage ?? ((code: RejectionCode) => ERRORS[code].message);
  const pagePath = `${o.prefix}${WARNING_PATH}`;
  const csrfOf = (sessionId: string): string =>
    createHmac('sha256', o.csrfKey).update(`sessiongate-warning:${sessionId}`).digest('base64url');

  const send = (scope: SelfServiceRequest, p: PageProblem): void =>
    sendPageProblem(scope, p, { href: loginUrl, text: 'Sign in' }, loginUrl);

  return servePage(handle, {
    logger: o.logger,
    failed: 'warning page failed',
    internalMessage: 'The answer could not be taken. Please try again.',
    unavailableMessage: message('session_store_unavailable'),
    send,
  });

  async function handle(scope: SelfServiceRequest): Promise<void> {
    const { req, res } = scope;
    const url = new URL(req.url ?? '/', 'http://gateway.invalid');
    if ((scope.path ?? url.pathname) !== pagePath)
      throw new PageProblem(404, 'SG_ERR_NOT_FOUND', 'There is nothing here.', 'Not found');
    if (pageMethod(req, res) === 'show') return show(scope, sameOriginPath(url.searchParams.get('next')));
    refuseCrossSite(scope, trusted, o.logger, 'answer');
    const { fields, csrf } = await fieldsOf(req);
    const session = await liveSession(scope);
    if (csrf === undefined || !safeEqual(csrf, csrfOf(session.id))) {
      o.logger.warn(
        { code: 'SG_ERR_CSRF', reason: 'csrf token', ip: scope.clientIp },
        'answer without a valid CSRF token',
      );
      throw new PageProblem(
        403,
        'SG_ERR_CSRF',
        'Missing or invalid CSRF token. Reload the page and try again.',
        'Refused',
      );
    }
    const answer = answerOf(fields);
    const next = sameOriginPath(answer.next) ?? '/';
    if (answer.kind === 'continue') {
      // The login the page named: a newer login's mark is not answered by a page that did not show it.
      const login = answer.login ?? session.warning?.sessionId;
      const cleared =
        login !== undefined && (await o.sessions.acknowledgeWarning(session.user, session.id, login));
      o.logger.info(
        { event: 'warning_answered', answer: 'continue', sessionId: session.id, login, cleared },
        'warning answered: it was me',
      );
      if (wantsJson(req)) return sendJson(res, 200, { continued: true, cleared, next });
      res.writeHead(303, { location: next, 'content-length': '0', 'cache-control': 'no-store' });
      res.end();
      return;
    }
    const ended = await o.sessions.signOutEverywhere(session.user, {
      sessionId: session.id,
      ip: scope.clientIp,
      userAgent: req.headers['user-agent'] ?? '',
    });
    o.logger.info(
      { event: 'warning_answered', answer: 'sign-out', sessionId: session.id, ended: ended.length },
      'warning answered: it was not me',
    );
    // This browser's own session ended with the others: what it keeps of it (a SPA's stored token) goes too.
    if (o.clearSiteData !== undefined) res.setHeader('clear-site-data', o.clearSiteData);
    if (wantsJson(req)) return sendJson(res, 200, { ended: ended.map((s) => s.id) });
    sendHtml(
      res,
      200,
      renderMessagePage({
        title: 'Signed out everywhere',
        message: `${ended.length} session${ended.length === 1 ? '' : 's'} of your account ended, this one included. Sign in again, and change your password if the new sign-in was not yours.`,
        code: 'signed_out_everywhere',
        link: { href: loginUrl, text: 'Sign in again' },
      }),
    );
  }

  async function show(scope: SelfServiceRequest, next: string | undefined): Promise<void> {
    const { req, res } = scope;
    const session = await liveSession(scope);
    const warning = session.warning;
    if (warning === undefined) {
      // Answered already (here or on another replica): on to the page asked for.
      res.writeHead(303, { location: next ?? '/', 'content-length': '0', 'cache-control': 'no-store' });
      res.end();
      return;
    }
    const csrfToken = csrfOf(session.id);
    res.setHeader('vary', 'Accept');
    if (wantsJson(req))
      return sendJson(res, 200, {
        warning: {
          event: 'session.warned',
          session: warning.sessionId,
          at: new Date(warning.at).toISOString(),
          device: warning.device,
          place: warning.place ?? null,
          message: `${warningSentence(warning, o.now())} Was this you?`,
        },
        csrfToken,
        next: next ?? '/',
      });
    sendHtml(
      res,
      200,
      renderWarningPage({ action: pagePath, warning, csrfToken, next: next ?? '/', now: o.now() }),
    );
  }

  /** The caller's live session as the store has it now, or a 401 (503 when the store cannot say). */
  async function liveSession(scope: SelfServiceRequest): Promise<CachedSession> {
    if (scope.tokenId === undefined)
      throw new PageProblem(401, 'session_required', message('session_required'), 'Sign in');
    const d = await o.sessions.checkFresh(scope.tokenId);
    if (d.state === 'unavailable')
      throw new PageProblem(
        503,
        'session_store_unavailable',
        message('session_store_unavailable'),
        'Try again shortly',
      );
    if (d.state !== 'live' || d.session === undefined) {
      const code = rejectionOf(d.state) ?? 'session_unknown';
      throw new PageProblem(401, code, message(code), 'You are signed out', d.session);
    }
    return d.session;
  }
}

/** The body's fields (a form, or a JSON object of strings) and the CSRF token (also `X-CSRF-Token`). */
async function fieldsOf(
  req: IncomingMessage,
): Promise<{ fields: ReadonlyMap<string, string>; csrf: string | undefined }> {
  const raw = await readCapped(req, MAX_BODY);
  if (raw === 'too_large')
    throw new PageProblem(413, 'SG_ERR_BODY_TOO_LARGE', 'Request body too large.', 'Refused');
  if (raw === 'aborted')
    throw new PageProblem(400, 'SG_ERR_BAD_REQUEST', 'The request did not arrive whole.', 'Refused');
  const body = raw.toString('utf8');
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  const fields = new Map<string, string>();
  if (type === 'application/x-www-form-urlencoded') {
    // The first of a repeated field, as URLSearchParams.get reads it.
    for (const [k, v] of new URLSearchParams(body)) if (!fields.has(k)) fields.set(k, v);
  } else if (type === 'application/json') {
    let v: unknown;
    try {
      v = JSON.parse(body);
    } catch {
      v = undefined;
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v))
      throw new PageProblem(400, 'SG_ERR_BAD_REQUEST', 'Send a JSON object.', 'Refused');
    for (const [k, x] of Object.entries(v)) if (typeof x === 'string') fields.set(k, x);
  } else throw new PageProblem(400, 'SG_ERR_BAD_REQUEST', 'Send a form or JSON.', 'Refused');
  const header = req.headers['x-csrf-token'];
  return { fields, csrf: typeof header === 'string' && header !== '' ? header : fields.get('csrf') };
}

function answerOf(fields: ReadonlyMap<string, string>): Answer {
  const kind = fields.get('answer');
  if (kind !== 'continue' && kind !== 'sign-out')
    throw new PageProblem(400, 'SG_ERR_BAD_REQUEST', 'Answer "continue" or "sign-out".', 'Refused');
  const login = fields.get('login');
  const next = fields.get('next');
  return { kind, ...(login ? { login } : {}), ...(next !== undefined ? { next } : {}) };
}

/** The warning page: the sentence, "Yes, continue" and "No, sign out everywhere", one form each. */
export function renderWarningPage(input: {
  readonly action: string;
  readonly warning: SessionWarning;
  readonly csrfToken: string;
  readonly next: string;
  readonly now: number;
}): string {
  const hidden = html`<input type="hidden" name="csrf" value="${input.csrfToken}"><input type="hidden" name="login" value="${input.warning.sessionId}"><input type="hidden" name="next" value="${input.next}">`;
  return layout(
    'New sign-in to your account',
    html`<div class="card">
<h1>New sign-in to your account</h1>
<p id="message" data-code="session.warned">${warningSentence(input.warning, input.now)} Was this you?</p>
<form method="post" action="${input.action}">${hidden}<input type="hidden" name="answer" value="continue"><button type="submit" class="continue">Yes, continue</button></form>
<form method="post" action="${input.action}">${hidden}<input type="hidden" name="answer" value="sign-out"><button type="submit" class="end-all">No, sign out everywhere</button></form>
<p class="muted">Signing out everywhere ends every session of your account, the new one included.</p>
</div>`,
  );
}
