import type { ServerResponse } from 'node:http';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { sendError, StoreUnavailableError } from '../errors.js';
import { sessionView } from '../sessions/device.js';
import type { LoginInput, SessionService } from '../sessions/service.js';
import {
  Exchange,
  type CompiledLoginRule,
  type CompiledLogoutRule,
  type CompiledRefreshRule,
  type TokenRule,
} from '../tokens/exchange.js';
import type { TokenIdOf } from '../tokens/token-id.js';
import { decodeBody } from './decode.js';
import type { SessionRecord } from '../model.js';
import type { FixationGuard } from './fixation.js';
import type { ResponseHead, ResponseTap } from './forward.js';
import { headerObject } from './headers.js';
import { writeResponseHead } from './http2.js';
import type { HeldLogins } from './held-logins.js';
import { isNavigation, type Rejections } from './rejection.js';
import type { LoginAttribute } from './login-attributes.js';
import type { RequestScope } from './scope.js';

/** Asks the app who the user of a new token is (SSO callbacks), or undefined. `login`: the exchange read. */
export type UserProbe = (
  rule: CompiledLoginRule,
  token: string,
  scope: RequestScope,
  login: Exchange,
) => Promise<string | undefined>;

export interface ExchangeTapDeps {
  readonly sessions: SessionService;
  readonly tokenIdOf: TokenIdOf;
  readonly rejections: Rejections;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly failMode: 'open' | 'closed';
  /** `report-only` never changes traffic: a login the limit would refuse is released (and counted). */
  readonly mode?: 'enforce' | 'report-only';
  readonly maxBody: number;
  readonly loginHeader: boolean;
  readonly locationHeader: string | undefined;
  readonly probe: UserProbe;
  /** sessions.groups.from: the groups a login names, for group limits and exemptions. */
  readonly groups?: LoginAttribute | undefined;
  /** sessions.seats.key: the tenant whose seat a login takes, and what a refusal for want of one says. */
  readonly seats?: (LoginAttribute & { readonly message: string }) | undefined;
  /**
   * notify.email.to read at login (a JWT claim, JSON field or header of the response): the address goes
   * straight to the e-mail notifier, never into the session or its events.
   */
  readonly recipient?: ((user: string, ex: Exchange, issued: readonly string[]) => void) | undefined;
  /**
   * The cookie tap of an ordinary response (a live session's rotation, or anonymous cookies under
   * `unknownTokens: reject`): a response that is not a registered login
   * (failed, or of a refresh/logout that issues nothing) may still rotate the session cookie.
   */
  readonly rotation?: ResponseTap;
  /**
   * Under `unknownTokens: reject`, the tap that remembers the cookies of anonymous requests: a logout
   * response sets the fresh session cookie of the now anonymous browser (Rails' reset_session), which
   * the page it redirects to must be let in with.
   */
  readonly anonymous?: ResponseTap;
  /** `sessions.fixation` (undefined under `off`). */
  readonly fixation?: FixationGuard | undefined;
  /**
   * `onLimit: ask`: where a login the limit refused is held, and the URL of its choice (under the
   * self-service prefix) by hold id.
   */
  readonly ask?: { readonly holds: HeldLogins; readonly chooseUrl: (holdId: string) => string } | undefined;
}

function release(res: ServerResponse, head: ResponseHead, body: Buffer, extra?: [string, string]): void {
  if (res.destroyed) return;
  const headers = extra ? [...head.headers, ...extra] : head.headers;
  writeResponseHead(res, head.status, head.statusText, headers);
  res.end(body);
}

function hasHeader(head: ResponseHead, name: string): boolean {
  for (let i = 0; i < head.headers.length; i += 2) {
    if ((head.headers[i] as string).toLowerCase() === name) return true;
  }
  return false;
}

function locationOf(head: ResponseHead): string | undefined {
  for (let i = 0; i < head.headers.length; i += 2) {
    if ((head.headers[i] as string).toLowerCase() === 'location') return head.headers[i + 1];
  }
  return undefined;
}

/**
 * The tap of a login, refresh or logout exchange: the response is held until the store has registered
 * what it carries, so a client never holds a token the store does not know.
 */
export function exchangeTap(
  rule: TokenRule,
  scope: RequestScope,
  ex: Exchange,
  deps: ExchangeTapDeps,
): ResponseTap {
  const log = deps.logger;
  return {
    onHead(head) {
      if (!rule.isSuccess(head.status, locationOf(head))) {
        // A failed login never ends or creates anything, even when the app sets a fresh cookie; but the
        // live session's own cookie may rotate on it, as on any route.
        if (rule.kind === 'login') deps.metrics.logins.failed_login.inc();
        return deps.rotation?.onHead(head) ?? 'stream';
      }
      return 'buffer';
    },
    onOverflow() {
      deps.metrics.logins.body_too_large.inc();
      if (rule.onUnreadable === 'refuse' && rule.kind === 'login') {
        deps.metrics.logins.unreadable.inc();
        log.warn(
          { rule: rule.name, code: 'SG_ERR_LOGIN_UNREADABLE', max: deps.maxBody },
          'login response body over the cap: refused',
        );
        return false;
      }
      log.warn(
        { rule: rule.name, code: 'SG_ERR_LOGIN_BODY_TOO_LARGE', max: deps.maxBody },
        'response body over the cap: passed through unregistered',
      );
      return true;
    },
    async onBody(head, body, res) {
      ex.status = head.status;
      ex.responseHeaders = headerObject(head.headers);
      if (rule.needsResponseBody) {
        const decoded = await decodeBody(body, ex.responseHeader('content-encoding'), deps.maxBody);
        if (decoded === undefined) {
          log.warn(
            { rule: rule.name, code: 'SG_ERR_LOGIN_BODY_UNREADABLE' },
            'could not decode the response body',
          );
          if (rule.kind === 'login') {
            unreadable(rule, head, body, res, 'the response body could not be decoded');
            return;
          }
        }
        ex.responseBody = decoded;
        if (rule.kind === 'login' && decoded !== undefined && ex.responseJsonInvalid) {
          unreadable(rule, head, body, res, 'the response body is not JSON');
          return;
        }
      }
      try {
        if (rule.kind === 'login') await onLogin(rule, head, body, res);
        else if (rule.kind === 'refresh') await onRefresh(rule, head, body, res);
        else await onLogout(rule, head, body, res);
      } catch (err) {
        if (!(err instanceof StoreUnavailableError)) throw err;
        deps.metrics.storeErrors.inc();
        deps.metrics.logins.store_unavailable.inc();
        log.error(
          { rule: rule.name, code: err.code, err: err.message },
          'session store unavailable during a login exchange',
        );
        // A logout is never released unrecorded, whatever failMode says: the client would believe it
        // signed out while the session stays live. Held and answered 503, it is retried.
        if (deps.failMode === 'open' && rule.kind !== 'logout') release(res, head, body);
        else deps.rejections.send(res, scope.req.headers, 'session_store_unavailable', undefined, undefined);
      }
    },
  };

  async function onLogin(
    rule: CompiledLoginRule,
    head: ResponseHead,
    body: Buffer,
    res: ServerResponse,
  ): Promise<void> {
    let tokens = rule.readTokens(ex);
    const kept = deps.fixation?.keepable(rule, scope);
    if (tokens.length === 0 && kept !== undefined) {
      // PHP resends its cookie only when the id changes: the app signed in the id the request carried.
      tokens = [kept.value];
    }
    // The session's token is one the request carried: the app kept the pre-login id.
    const fixated = kept !== undefined && deps.tokenIdOf(tokens[0] as string) === scope.tokenId;
    if (tokens.length === 0) {
      deps.metrics.logins.no_token.inc();
      log.warn(
        { rule: rule.name, code: 'SG_ERR_LOGIN_NO_TOKEN', status: head.status },
        'login response without a token: passed through unregistered',
      );
      release(res, head, body);
      return;
    }
    let user = rule.readUser(ex, tokens);
    if (user === undefined && rule.config.probe) {
      user = await deps.probe(rule, tokens[0] as string, scope, ex);
      if (user === undefined) {
        deps.metrics.logins.probe_failed.inc();
        log.warn({ rule: rule.name, code: 'SG_ERR_LOGIN_PROBE_FAILED' }, 'the who-am-i probe gave no user');
        if (rule.config.probe.onFailure === 'pass') release(res, head, body);
        // 503 (the app's answer about who logged in is missing, not the store): the client may retry.
        else
          sendError(res, 'SG_ERR_LOGIN_PROBE_FAILED', 'the gateway could not learn who signed in; try again');
        return;
      }
    }
    if (user !== undefined) user = rule.normalize(user);
    if (user === undefined || user === '') {
      deps.metrics.logins.no_user.inc();
      log.warn(
        { rule: rule.name, code: 'SG_ERR_LOGIN_NO_USER', status: head.status },
        'login response without a user',
      );
      unreadable(rule, head, body, res, 'the login names no user');
      return;
    }
    const groups = deps.groups && readAttribute(deps.groups, 'group', tokens, res);
    if (groups === null) return;
    const tenants = deps.seats && readAttribute(deps.seats, 'tenant', tokens, res);
    if (tenants === null) return;
    // A tenant is one name: an array of several is as unreadable as a number.
    const tenant = tenants?.length === 1 ? tenants[0] : undefined;
    deps.recipient?.(user, ex, tokens);
    const location = deps.locationHeader ? scope.req.headers[deps.locationHeader] : undefined;
    const reportOnly = deps.mode === 'report-only';
    if (fixated && deps.fixation?.judge(rule, scope, user, reportOnly) === true) {
      // Nothing registered, and the app's answer (its redirect to the signed-in page) never released.
      deps.rejections.send(res, scope.req.headers, 'session_fixation', scope.token, undefined);
      return;
    }
    const input: LoginInput = {
      user,
      tokenIds: tokens.map(deps.tokenIdOf),
      ...(scope.tokenId !== undefined ? { presentedTokenId: scope.tokenId } : {}),
      ip: scope.clientIp,
      userAgent: scope.req.headers['user-agent'] ?? '',
      ...(typeof location === 'string' ? { location } : {}),
      ...(groups !== undefined ? { groups } : {}),
      ...(tenant !== undefined ? { tenant } : {}),
      ...(reportOnly ? { reportOnly } : {}),
    };
    const outcome = await deps.sessions.login(input);
    if (outcome.kind === 'choose') {
      holdForChoice(input, outcome.sessions, head, body, res);
      return;
    }
    const wouldRefuse = outcome.kind === 'created' && outcome.wouldRefuse === true;
    // A would-be refusal counts as `refused`: the question report-only answers is how many there would be.
    deps.metrics.logins[wouldRefuse ? 'refused' : outcome.kind].inc();
    if (outcome.kind === 'refused' || wouldRefuse) {
      if (reportOnly) {
        log.info(
          { rule: rule.name, code: 'session_limit_reached', reportOnly: true },
          'would refuse the login (report-only): released',
        );
      } else if (outcome.kind === 'refused' && outcome.reason === 'seat-limit' && deps.seats) {
        // Whatever onLimit says: the tenant is full, and the token never reaches the client.
        sendError(res, 'session_seat_limit_reached', deps.seats.message);
        return;
      } else {
        // reject-new: the token never reaches the client.
        deps.rejections.send(res, scope.req.headers, 'session_limit_reached', undefined, undefined);
        return;
      }
    }
    // Other devices only: a session this browser replaced (a re-login) is not one.
    const ended =
      outcome.kind === 'created' ? outcome.ended.filter((s) => s.state === 'superseded').length : 0;
    release(res, head, body, deps.loginHeader ? ['sessiongate-ended-sessions', String(ended)] : undefined);
  }

  /**
   * `onLimit: ask`: the login is held (its response not released, its token not registered) and the
   * caller is asked which session to end: a navigation is sent to the choice page (303), anything else
   * gets 409 `session_limit_reached` with the sessions and the URL to POST `{"end": id}` to.
   */
  function holdForChoice(
    input: LoginInput,
    sessions: readonly SessionRecord[],
    head: ResponseHead,
    body: Buffer,
    res: ServerResponse,
  ): void {
    const held = deps.ask?.holds.hold(
      input,
      head,
      body,
      sessions.map((s) => s.id),
    );
    if (deps.ask === undefined || held === undefined) {
      deps.metrics.logins.refused.inc();
      if (deps.ask === undefined)
        deps.rejections.send(res, scope.req.headers, 'session_limit_reached', undefined, undefined);
      else sendError(res, 'SG_ERR_LOGIN_HOLDS_FULL');
      return;
    }
    deps.metrics.logins.held.inc();
    const url = deps.ask.chooseUrl(held.id);
    if (res.destroyed) return;
    if (isNavigation(scope.req.headers)) {
      res.writeHead(303, { location: url, 'content-length': '0', 'cache-control': 'no-store' });
      res.end();
      return;
    }
    const text = JSON.stringify({
      error: 'session_limit_reached',
      message: deps.rejections.message('session_limit_reached'),
      sessions: sessions.map((s) => sessionView(s)),
      choose: url,
      expiresAt: new Date(held.expiresAt).toISOString(),
    });
    res.writeHead(409, {
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(text)),
      'cache-control': 'no-store',
    });
    res.end(text);
  }

  /**
   * The groups or tenant a login names; undefined when it names none (logged, counted, and the default
   * applies), null when it names none and the config says refuse (answered 403 here).
   */
  function readAttribute(
    attribute: LoginAttribute,
    what: 'group' | 'tenant',
    tokens: readonly string[],
    res: ServerResponse,
  ): readonly string[] | undefined | null {
    const read = attribute.read(ex, tokens);
    if (read.kind === 'names' && (what === 'group' || read.names.length === 1)) return read.names;
    const why = read.kind === 'names' ? 'invalid' : read.kind;
    const refuse = attribute.onMissing === 'refuse';
    const code = what === 'group' ? 'SG_ERR_LOGIN_NO_GROUP' : 'SG_ERR_LOGIN_NO_TENANT';
    deps.metrics.policyOutcomes.labels(refuse ? 'refused' : 'defaulted', `${what}-${why}`).inc();
    log.warn(
      { rule: rule.name, code, why },
      refuse
        ? `the login names no readable ${what}: refused`
        : `the login names no readable ${what}: ${what === 'group' ? 'the default limit applies' : 'no seat taken'}`,
    );
    if (!refuse) return undefined;
    sendError(res, code);
    return null;
  }

  /**
   * A successful login the gateway cannot read: never delivered (`onUnreadable: refuse`, the default),
   * since a token the store does not know would escape the limit; or passed unregistered.
   */
  function unreadable(
    rule: CompiledLoginRule,
    head: ResponseHead,
    body: Buffer,
    res: ServerResponse,
    why: string,
  ): void {
    if (rule.onUnreadable === 'pass') {
      log.warn(
        { rule: rule.name, code: 'SG_ERR_LOGIN_UNREADABLE', why },
        'login passed through unregistered',
      );
      release(res, head, body);
      return;
    }
    deps.metrics.logins.unreadable.inc();
    log.warn({ rule: rule.name, code: 'SG_ERR_LOGIN_UNREADABLE', why }, 'unreadable login refused');
    sendError(res, 'SG_ERR_LOGIN_UNREADABLE', `the gateway could not read the login response: ${why}`);
  }

  async function onRefresh(
    rule: CompiledRefreshRule,
    head: ResponseHead,
    body: Buffer,
    res: ServerResponse,
  ): Promise<void> {
    const tokens = rule.readTokens(ex);
    const presented = rule.readPresented?.(ex);
    const presentedId = presented !== undefined ? deps.tokenIdOf(presented) : scope.tokenId;
    if (tokens.length > 0 && presentedId !== undefined) {
      const session = await deps.sessions.addTokens(presentedId, tokens.map(deps.tokenIdOf));
      deps.metrics.tokenUpdates.labels(session ? 'refresh' : 'refresh_unlinked').inc();
      if (!session)
        log.warn(
          { rule: rule.name, code: 'SG_ERR_REFRESH_UNLINKED' },
          'refresh for a token that is not live: new token not registered',
        );
    }
    release(res, head, body);
  }

  async function onLogout(
    rule: CompiledLogoutRule,
    head: ResponseHead,
    body: Buffer,
    res: ServerResponse,
  ): Promise<void> {
    const presented = rule.readPresented?.(ex);
    const presentedId = presented !== undefined ? deps.tokenIdOf(presented) : scope.tokenId;
    if (presentedId !== undefined) await deps.sessions.endByToken(presentedId, 'logged_out');
    const remembered = deps.anonymous?.onHead(head);
    if (remembered instanceof Promise) await remembered;
    // The app's own Clear-Site-Data, if it sends one, says what it wants cleared.
    const clear = hasHeader(head, 'clear-site-data') ? undefined : rule.clearSiteData;
    release(res, head, body, clear !== undefined ? ['clear-site-data', clear] : undefined);
  }
}
