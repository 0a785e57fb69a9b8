/**
 * `onLimit: ask`: the page where a user whose login the limit refused chooses a session to end, under
 * the self-service prefix of the proxied origin:
 *
 *   GET  {prefix}choose/{hold id}   the user's live sessions the login could replace (HTML, or JSON for
 *                                   `Accept: application/json`), each with "End this one and continue"
 *   POST {prefix}choose/{hold id}   `end=<session id>` or `cancel=1` (form, with its CSRF token), or
 *                                   JSON `{"end": "<session id>"}` / `{"cancel": true}`
 *
 * The caller has no session yet, so nothing ties the request to a user but the hold id: one-time, 192
 * random bits, given only to the client that made the login (and answered only to a request from its
 * address with its User-Agent), and the user is the hold's (never a value of the request). So a caller can end only a session of the user who logged in, and only once. The form's
 * CSRF token is bound to the hold id (HMAC with a key derived from `secret`); a JSON POST needs none, as
 * a cross-site page cannot send `Content-Type: application/json` without a CORS preflight the gateway
 * never grants; and every POST passes the Fetch Metadata / `Origin` check of the self-service page.
 */
import { createHmac } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ERRORS } from '../errors.js';
import { readCapped } from '../http/body.js';
import { sessionView, type SessionView } from '../sessions/device.js';
import { html } from './html.js';
import {
  isFormPost,
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
import { layout, relativeHtml, renderMessagePage, timeHtml } from './pages.js';

/** The held logins, as the page needs them (proxy/held-logins.ts is one). */
/** The client asking (see proxy/held-logins.ts HoldClient): a hold answers only the one that made it. */
export interface ChoiceClient {
  readonly ip: string;
  readonly userAgent: string;
}

export interface LoginHoldDesk {
  view(
    id: string,
    client: ChoiceClient,
  ): { readonly user: string; readonly choices: readonly string[]; readonly expiresAt: number } | undefined;
  cancel(id: string, client: ChoiceClient): boolean;
  /** Ends the chosen session and registers the login; on `released` the held response is written. */
  choose(
    id: string,
    sessionId: string,
    res: ServerResponse,
    client: ChoiceClient,
  ): Promise<'released' | 'gone' | 'refused' | 'seat-refused'>;
}

export interface ChoosePageOptions extends PageOptions {
  readonly holds: LoginHoldDesk;
  /** What a login still over the limit after the choice is told (the proxy's message). */
  readonly limitMessage: string;
  /** What a login refused for want of a seat is told (`sessions.seats.message`). */
  readonly seatMessage?: string;
}

/** The path under the prefix: `choose/` and a hold id (base64url of 24 bytes). */
export const CHOOSE_PATH = /^choose\/([A-Za-z0-9_-]{32})$/;
/** A choice form carries one id and a token: well under 1 KiB. */
const MAX_BODY = 4 * 1024;

/** The choice page's handler, for a request whose path starts with `{prefix}choose/`. */
export function createChoosePage(o: ChoosePageOptions): (scope: SelfServiceRequest) => void {
  const loginUrl = o.loginUrl ?? '/';
  const trusted = o.trustedProxies ?? { isTrusted: () => false };
  const csrfOf = (holdId: string): string =>
    createHmac('sha256', o.csrfKey).update(`sessiongate-choose:${holdId}`).digest('base64url');
  const gone = (): PageProblem =>
    new PageProblem(410, 'SG_ERR_LOGIN_HOLD_GONE', ERRORS.SG_ERR_LOGIN_HOLD_GONE.message, 'Sign in again');

  const send = (scope: SelfServiceRequest, p: PageProblem): void =>
    sendPageProblem(scope, p, { href: loginUrl, text: 'Back to sign in' }, loginUrl);

  return servePage(handle, {
    logger: o.logger,
    failed: 'session choice failed',
    internalMessage: 'The choice could not be made. Please sign in again.',
    send,
  });

  async function handle(scope: SelfServiceRequest): Promise<void> {
    const { req, res } = scope;
    const path = scope.path ?? (req.url ?? '/').split('?')[0] ?? '/';
    const m = CHOOSE_PATH.exec(path.slice(o.prefix.length));
    if (!m) throw gone();
    const holdId = m[1] as string;
    if (pageMethod(req, res) === 'show') return show(scope, holdId);
    refuseCrossSite(scope, trusted, o.logger, 'choice');
    const action = await actionOf(req, holdId);
    if (action.kind === 'cancel') {
      if (!o.holds.cancel(holdId, clientOf(scope))) throw gone();
      if (wantsJson(req) || !isFormPost(req)) return sendJson(res, 200, { cancelled: true });
      return sendHtml(
        res,
        200,
        renderMessagePage({
          title: 'Sign-in cancelled',
          message: 'Nothing was changed: your other sessions go on, and this device is not signed in.',
          code: 'cancelled',
          link: { href: loginUrl, text: 'Back to sign in' },
        }),
      );
    }
    const result = await o.holds.choose(holdId, action.end, res, clientOf(scope));
    if (result === 'released') return;
    if (result === 'gone') throw gone();
    if (result === 'seat-refused')
      throw new PageProblem(
        409,
        'session_seat_limit_reached',
        o.seatMessage ?? ERRORS.session_seat_limit_reached.message,
        'Not signed in',
      );
    throw new PageProblem(409, 'session_limit_reached', o.limitMessage, 'Not signed in');
  }

  /** What the POST asks: end a session (its id) or cancel; a form must carry the hold's CSRF token. */
  async function actionOf(
    req: IncomingMessage,
    holdId: string,
  ): Promise<{ kind: 'end'; end: string } | { kind: 'cancel' }> {
    const raw = await readCapped(req, MAX_BODY);
    if (raw === 'too_large')
      throw new PageProblem(413, 'SG_ERR_BODY_TOO_LARGE', 'Request body too large.', 'Refused');
    if (raw === 'aborted')
      throw new PageProblem(400, 'SG_ERR_BAD_REQUEST', 'The request did not arrive whole.', 'Refused');
    const body = raw.toString('utf8');
    const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
    if (type === 'application/json') {
      let v: unknown;
      try {
        v = JSON.parse(body);
      } catch {
        v = undefined;
      }
      if (typeof v === 'object' && v !== null) {
        const fields = v as { end?: unknown; cancel?: unknown };
        if (fields.cancel === true) return { kind: 'cancel' };
        if (typeof fields.end === 'string' && fields.end !== '') return { kind: 'end', end: fields.end };
      }
      throw new PageProblem(
        400,
        'SG_ERR_BAD_REQUEST',
        'Send {"end": "<session id>"} or {"cancel": true}.',
        'Refused',
      );
    }
    if (type !== 'application/x-www-form-urlencoded')
      throw new PageProblem(400, 'SG_ERR_BAD_REQUEST', 'Send a form or JSON.', 'Refused');
    const form = new URLSearchParams(body);
    const csrf = (req.headers['x-csrf-token'] as string | undefined) ?? form.get('csrf') ?? undefined;
    if (csrf === undefined || !safeEqual(csrf, csrfOf(holdId))) {
      o.logger.warn({ code: 'SG_ERR_CSRF', reason: 'csrf token' }, 'choice without a valid CSRF token');
      throw new PageProblem(403, 'SG_ERR_CSRF', 'Missing or invalid CSRF token. Sign in again.', 'Refused');
    }
    if (form.get('cancel') !== null) return { kind: 'cancel' };
    const end = form.get('end');
    // An empty `end` (every offered session ended meanwhile): continue if there is room now.
    if (end !== null) return { kind: 'end', end };
    throw new PageProblem(400, 'SG_ERR_BAD_REQUEST', 'Choose a session to end, or cancel.', 'Refused');
  }

  async function show(scope: SelfServiceRequest, holdId: string): Promise<void> {
    const { req, res } = scope;
    const hold = o.holds.view(holdId, clientOf(scope));
    if (hold === undefined) throw gone();
    const live = await o.sessions.listSessions(hold.user);
    const offered = live.filter((s) => hold.choices.includes(s.id)).map((s) => sessionView(s));
    res.setHeader('vary', 'Accept');
    if (wantsJson(req))
      return sendJson(res, 200, {
        sessions: offered,
        csrfToken: csrfOf(holdId),
        expiresAt: new Date(hold.expiresAt).toISOString(),
      });
    sendHtml(
      res,
      200,
      renderChoosePage({
        action: `${o.prefix}choose/${holdId}`,
        sessions: offered,
        csrfToken: csrfOf(holdId),
        expiresAt: hold.expiresAt,
        now: o.now(),
      }),
    );
  }
}

function clientOf(scope: SelfServiceRequest): ChoiceClient {
  return { ip: scope.clientIp, userAgent: scope.req.headers['user-agent'] ?? '' };
}

/** The choice page: the sessions to end, one form each, and Cancel. */
export function renderChoosePage(input: {
  readonly action: string;
  readonly sessions: readonly SessionView[];
  readonly csrfToken: string;
  readonly expiresAt: number;
  readonly now: number;
}): string {
  const csrf = html`<input type="hidden" name="csrf" value="${input.csrfToken}">`;
  const rows = input.sessions.map((s) => {
    const location = s.location ? html`<dt>Location</dt><dd class="location">${s.location}</dd>` : undefined;
    return html`<li class="session" data-session-id="${s.id}">
<div><span class="device">${s.device}</span></div>
<dl>
<dt>IP address</dt><dd class="ip">${s.ip}</dd>
${location}<dt>Signed in</dt><dd class="created">${timeHtml(Date.parse(s.createdAt))}</dd>
<dt>Last active</dt><dd class="last-seen">${relativeHtml(Date.parse(s.lastSeenAt), input.now)}</dd>
</dl>
<form method="post" action="${input.action}">${csrf}<input type="hidden" name="end" value="${s.id}"><button type="submit" class="end" title="End the session on ${s.device} and sign in here">End this one and continue</button></form>
</li>
`;
  });
  const none =
    input.sessions.length === 0
      ? html`<div class="card"><p>Your other sessions have ended meanwhile.</p><form method="post" action="${input.action}">${csrf}<input type="hidden" name="end" value=""><button type="submit" class="end-all">Continue</button></form></div>`
      : undefined;
  return layout(
    'Too many active sessions',
    html`<div class="card">
<h1>Too many active sessions</h1>
<p id="message">Your account is already signed in on as many devices as it allows. End one of them to sign in here, or cancel.</p>
<p class="muted">This choice waits until ${timeHtml(input.expiresAt)}.</p>
</div>
<ul class="sessions">
${rows}</ul>
${none}
<div class="card"><form method="post" action="${input.action}">${csrf}<input type="hidden" name="cancel" value="1"><button type="submit" class="cancel">Cancel</button></form></div>`,
  );
}
