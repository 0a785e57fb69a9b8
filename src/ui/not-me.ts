/**
 * The "not me" page of a new-login notification, under the self-service prefix of the proxied origin:
 *
 *   GET  {prefix}not-me/{link token}   a confirmation page; changes nothing (mail scanners and previews
 *                                      fetch every link of a message)
 *   POST {prefix}not-me/{link token}   `csrf=<token>` (form): ends every session of the link's user, the
 *                                      new one included (`session.not_me`), once
 *
 * Nothing ties the request to the user but the link (signed, expiring, single use: notify/not-me-link.ts
 * reads it, the store's `markUsed` spends it): the caller may be signed out, or on another device. A
 * browser signed in as another user gets a page that says so and changes nothing. The POST is CSRF-safe
 * twice, as the self-service actions are: a token bound to the link (HMAC with a key derived from
 * `secret`) and the Fetch Metadata / `Origin` check (`crossSiteReason`).
 */
import { createHmac } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { NotMeLinkRead } from '../model.js';
import { ERRORS } from '../errors.js';
import { readCapped } from '../http/body.js';
import { describeDevice } from '../sessions/device.js';
import { describePlace } from '../sessions/place.js';
import type { SessionService } from '../sessions/service.js';
import { html } from './html.js';
import {
  pageMethod,
  PageProblem,
  refuseCrossSite,
  safeEqual,
  type SelfServiceRequest,
  sendHtml,
  sendPageProblem,
  servePage,
  type PageOptions,
} from './page-http.js';
import { layout, renderMessagePage, timeHtml } from './pages.js';

/** The store's single-use markers (`SessionStore.markUsed` / `isUsed`). */
export interface UsedMarkers {
  markUsed(key: string, ttl: number): Promise<boolean>;
  isUsed(key: string): Promise<boolean>;
}

export interface NotMePageOptions extends PageOptions {
  readonly links: { read(token: string): NotMeLinkRead };
  readonly markers: UsedMarkers;
  /** `Clear-Site-Data` of the answer that ended this browser's session too. @default none */
  readonly clearSiteData?: string | undefined;
}

/** The link's path segment: the token, nothing more (a trailing slash or more segments: not a link). */
const TOKEN = /^not-me\/([A-Za-z0-9_.-]{1,4096})$/;
/** A form with one hidden field. */
const MAX_BODY = 4 * 1024;

/** What the "sign out everywhere" step needs: the page here and the `onLimit: warn` page share it. */
export interface SignOutEverywhereDeps {
  readonly sessions: SessionService;
  readonly loginUrl?: string;
  readonly clearSiteData?: string | undefined;
}

/**
 * The "No, sign out everywhere" step, after the caller checked its request (CSRF): every session of the
 * user ends, the one of this browser and the new login included, `session.not_me` is emitted (audit,
 * webhook), and the browser is told so, with `Clear-Site-Data` for what it keeps of its own session.
 */
export async function signOutEverywhereAndSay(
  scope: SelfServiceRequest,
  deps: SignOutEverywhereDeps,
  user: string,
  sessionId: string | undefined,
): Promise<void> {
  const ended = await deps.sessions.signOutEverywhere(user, {
    ...(sessionId !== undefined ? { sessionId } : {}),
    ip: scope.clientIp,
    userAgent: scope.req.headers['user-agent'] ?? '',
  });
  if (deps.clearSiteData !== undefined) scope.res.setHeader('clear-site-data', deps.clearSiteData);
  const n = ended.length;
  sendHtml(
    scope.res,
    200,
    renderMessagePage({
      title: 'Signed out everywhere',
      message: `${n} session${n === 1 ? '' : 's'} ended, this one included. Sign in again, then change your password: whoever signed in may know it.`,
      code: 'signed_out_everywhere',
      link: { href: deps.loginUrl ?? '/', text: 'Sign in again' },
    }),
  );
}

/** The handler of `{prefix}not-me/...`. */
export function createNotMePage(o: NotMePageOptions): (scope: SelfServiceRequest) => void {
  const loginUrl = o.loginUrl ?? '/';
  const trusted = o.trustedProxies ?? { isTrusted: () => false };
  const csrfOf = (token: string): string =>
    createHmac('sha256', o.csrfKey).update(`sessiongate-not-me:${token}`).digest('base64url');

  // Pages only: a mail client's browser opens the link, and the form posts back here.
  const send = (scope: SelfServiceRequest, p: PageProblem): void =>
    sendPageProblem(scope, p, { href: loginUrl, text: 'Go to sign in' }, loginUrl);

  return servePage(handle, {
    logger: o.logger,
    failed: 'not-me page failed',
    internalMessage: ERRORS.SG_ERR_INTERNAL.message,
    send,
  });

  async function handle(scope: SelfServiceRequest): Promise<void> {
    const { req, res } = scope;
    const path = scope.path ?? (req.url ?? '/').split('?')[0] ?? '/';
    const m = TOKEN.exec(path.slice(o.prefix.length));
    const method = pageMethod(req, res);
    if (method === 'post') refuseCrossSite(scope, trusted, o.logger, 'not-me');
    const token = m?.[1];
    const link = token === undefined ? undefined : await usable(scope, token);
    if (token === undefined || link === undefined) throw forged(scope);
    if (method === 'show') return confirm(scope, token, link.user, link.sessionId);

    const csrf = await csrfFrom(req);
    if (csrf === undefined || !safeEqual(csrf, csrfOf(token))) {
      o.logger.warn({ code: 'SG_ERR_CSRF', reason: 'csrf token', ip: scope.clientIp }, 'not-me without CSRF');
      throw new PageProblem(403, 'SG_ERR_CSRF', ERRORS.SG_ERR_CSRF.message, 'Refused');
    }
    // Spent before acting: of two POSTs of one link (two replicas, a double click), one acts.
    if (!(await o.markers.markUsed(link.id, link.expiresAt - o.now() + 60_000))) throw used(scope);
    o.logger.info({ event: 'not_me', ip: scope.clientIp }, 'a user signed out everywhere from a not-me link');
    await signOutEverywhereAndSay(
      scope,
      { sessions: o.sessions, loginUrl, clearSiteData: o.clearSiteData },
      link.user,
      link.sessionId,
    );
  }

  /** The link, when it may be acted on now: signed, not expired, not used, not another user's. */
  async function usable(
    scope: SelfServiceRequest,
    token: string,
  ): Promise<{ user: string; sessionId: string; expiresAt: number; id: string } | undefined> {
    const link = o.links.read(token);
    if (link.kind === 'forged') return undefined;
    if (link.kind === 'expired') {
      o.logger.info({ code: 'SG_ERR_NOT_ME_EXPIRED', ip: scope.clientIp }, 'expired not-me link');
      throw new PageProblem(
        410,
        'SG_ERR_NOT_ME_EXPIRED',
        ERRORS.SG_ERR_NOT_ME_EXPIRED.message,
        'This link has expired',
      );
    }
    if (await o.markers.isUsed(link.id)) throw used(scope);
    // A browser signed in as someone else: the link is not for it (a forwarded message, a shared device).
    if (scope.tokenId !== undefined) {
      const d = await o.sessions.check(scope.tokenId);
      if (d.state === 'live' && d.session !== undefined && d.session.user !== link.user) {
        o.logger.warn({ code: 'SG_ERR_NOT_ME_OTHER_USER', ip: scope.clientIp }, "another user's not-me link");
        throw new PageProblem(
          403,
          'SG_ERR_NOT_ME_OTHER_USER',
          ERRORS.SG_ERR_NOT_ME_OTHER_USER.message,
          'This link is for another account',
        );
      }
    }
    return link;
  }

  function used(scope: SelfServiceRequest): PageProblem {
    o.logger.info({ code: 'SG_ERR_NOT_ME_USED', ip: scope.clientIp }, 'used not-me link');
    return new PageProblem(
      410,
      'SG_ERR_NOT_ME_USED',
      ERRORS.SG_ERR_NOT_ME_USED.message,
      'This link was used already',
    );
  }

  function forged(scope: SelfServiceRequest): PageProblem {
    o.logger.warn({ code: 'SG_ERR_NOT_ME_FORGED', ip: scope.clientIp }, 'not-me link with a bad signature');
    return new PageProblem(
      404,
      'SG_ERR_NOT_ME_FORGED',
      ERRORS.SG_ERR_NOT_ME_FORGED.message,
      'This link is not valid',
    );
  }

  async function confirm(
    scope: SelfServiceRequest,
    token: string,
    user: string,
    sessionId: string,
  ): Promise<void> {
    // The sign-in the message was about, if it is still live: where and when, so the user can judge.
    const live = await o.sessions.listSessions(user);
    const s = live.find((x) => x.id === sessionId);
    const login =
      s === undefined
        ? undefined
        : { device: describeDevice(s.userAgent), place: describePlace(s.geo, s.location), at: s.createdAt };
    sendHtml(
      scope.res,
      200,
      renderNotMePage({ action: `${o.prefix}not-me/${token}`, csrfToken: csrfOf(token), user, login }),
    );
  }
}

async function csrfFrom(req: IncomingMessage): Promise<string | undefined> {
  const header = req.headers['x-csrf-token'];
  if (typeof header === 'string' && header !== '') return header;
  const body = await readCapped(req, MAX_BODY);
  if (body === 'too_large' || body === 'aborted') return undefined;
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') return undefined;
  return new URLSearchParams(body.toString('utf8')).get('csrf') ?? undefined;
}

/** The confirmation page: what the sign-in was, and one button that signs out everywhere. */
export function renderNotMePage(input: {
  readonly action: string;
  readonly csrfToken: string;
  readonly user: string;
  readonly login:
    { readonly device: string; readonly place: string | undefined; readonly at: number } | undefined;
}): string {
  const l = input.login;
  const what = l
    ? html`<p id="login">A sign-in from <strong class="device">${l.device}</strong>${l.place ? html` in <strong class="place">${l.place}</strong>` : undefined} on ${timeHtml(l.at)}.</p>`
    : html`<p id="login" class="muted">That sign-in has ended already; your other sessions may still be open.</p>`;
  return layout(
    'Was this not you?',
    html`<div class="card">
<h1>Was this not you?</h1>
<p>Account <strong id="user">${input.user}</strong>.</p>
${what}
<p id="message">Signing out everywhere ends every session of this account, on every device, this one included. Nothing changes until you press the button.</p>
<form method="post" action="${input.action}"><input type="hidden" name="csrf" value="${input.csrfToken}"><button type="submit" class="end-all">Sign out everywhere</button></form>
</div>`,
  );
}
