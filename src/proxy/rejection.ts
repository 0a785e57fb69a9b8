import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import { TLSSocket } from 'node:tls';
import type { CachedSession } from '../model.js';
import { clearingCookie } from '../tokens/cookies.js';
import type { PresentedToken } from '../tokens/request-token.js';
import { html } from '../ui/html.js';
import type { CookieHardening } from './cookie-harden.js';
import { ERRORS, STATE_TO_CODE, statusOf, type RejectionCode } from '../errors.js';

export type { RejectionCode };

export { STATE_TO_CODE };

/** What a browser is shown when its session is gone (rendered by ui/, injected by the gateway). */
export type RejectionPageRenderer = (input: {
  code: RejectionCode;
  message: string;
  session: CachedSession | undefined;
  loginUrl: string | undefined;
}) => string;

/** The token cookies of the config: which a request carries, and how to delete each (token-cookies.ts). */
export interface TokenCookies {
  presentIn(cookieHeader: string): string[];
  /** `secure`: the request came over TLS, so the deletion is marked Secure too. */
  clearing(name: string, secure?: boolean): string;
}

export interface RejectionConfig {
  readonly supersededMessage: string;
  /** Where browsers are redirected (`reason=<code>` appended); unset: a page. */
  readonly redirect: string | undefined;
  readonly clearCookies: readonly string[];
  /** The token cookies (undefined when no token travels in a cookie). */
  readonly tokenCookies?: TokenCookies | undefined;
  readonly allowedOrigins: readonly string[];
  readonly renderPage: RejectionPageRenderer;
  /** `cookies.harden`: the deletions the gateway sends carry the attributes the app's cookies get. */
  readonly cookieHardening?: Pick<CookieHardening, 'value' | 'overTls'> | undefined;
  /** `Clear-Site-Data` for a session known to be over (not an unknown token, not a 503); undefined: none. */
  readonly clearSiteData?: string | undefined;
}

/** The rejections that tell a browser its session is over: its stored tokens are dead too. */
const ENDED: ReadonlySet<RejectionCode> = new Set([
  'session_superseded',
  'session_expired',
  'session_logged_out',
  'session_ended',
]);

/**
 * Rejections, compiled once: JSON bodies are serialised at startup. Every rejection is a 401 (503 for
 * an unreachable store, 409 for a refused login) with a stable code: never a 200, never a redirect for
 * a fetch/XHR that could not follow it to a login page.
 */
export class Rejections {
  readonly #config: RejectionConfig;
  readonly #messages: Record<RejectionCode, string>;
  readonly #bodies: Record<RejectionCode, string>;
  readonly #origins: ReadonlySet<string>;

  constructor(config: RejectionConfig) {
    this.#config = config;
    this.#messages = {
      session_superseded: config.supersededMessage,
      session_expired: ERRORS.session_expired.message,
      session_logged_out: ERRORS.session_logged_out.message,
      session_ended: ERRORS.session_ended.message,
      session_unknown: ERRORS.session_unknown.message,
      session_store_unavailable: ERRORS.session_store_unavailable.message,
      session_limit_reached: ERRORS.session_limit_reached.message,
      session_seat_limit_reached: ERRORS.session_seat_limit_reached.message,
      session_required: ERRORS.session_required.message,
      session_fixation: ERRORS.session_fixation.message,
    };
    this.#bodies = Object.fromEntries(
      Object.entries(this.#messages).map(([code, message]) => [
        code,
        JSON.stringify({ error: code, message }),
      ]),
    ) as Record<RejectionCode, string>;
    this.#origins = new Set(config.allowedOrigins);
  }

  message(code: RejectionCode): string {
    return this.#messages[code];
  }

  /**
   * Answers a request whose session is not live (or cannot be checked).
   * Cookies are cleared only for a known-dead session: a 503 leaves them alone. A session judged by a
   * cookie loses every token cookie the request carries (its remember-me cookie too, or the browser
   * would come back with it), each deleted where the app set it.
   */
  send(
    res: ServerResponse,
    headers: IncomingHttpHeaders,
    code: RejectionCode,
    token: PresentedToken | undefined,
    session: CachedSession | undefined,
  ): void {
    const status = statusOf(code);
    const out: Record<string, string | string[]> = { 'cache-control': 'no-store' };
    // A refused fixation clears too: the browser must not keep an id the app has just signed in.
    if ((status === 401 || code === 'session_fixation') && token) {
      const cookies = this.#cookiesToClear(headers, token);
      if (cookies.length > 0) {
        const tc = this.#config.tokenCookies;
        // Over TLS the deletion is Secure: a browser may refuse to let a non-Secure Set-Cookie overwrite
        // (here: delete) a Secure cookie (RFC 6265bis section 5.7, "cookie overwriting").
        const secure = res.socket instanceof TLSSocket;
        const cleared = cookies.map((c) =>
          tc === undefined ? clearingCookie(c, { secure }) : tc.clearing(c, secure),
        );
        const h = this.#config.cookieHardening;
        if (h === undefined) out['set-cookie'] = cleared;
        else {
          const tls = res.socket !== null && h.overTls(res.socket, headers);
          out['set-cookie'] = cleared.map((c) => h.value(c, tls));
        }
      }
      if (status === 401 && token.carrier === 'bearer') {
        // RFC 6750 section 3.1.
        out['www-authenticate'] = `Bearer error="invalid_token", error_description="${code}"`;
      }
    }
    if (this.#config.clearSiteData !== undefined && ENDED.has(code))
      out['clear-site-data'] = this.#config.clearSiteData;
    if (status === 503) out['retry-after'] = '5';
    this.#cors(headers, out);
    if (isNavigation(headers)) {
      if (this.#config.redirect !== undefined && status === 401) {
        const sep = this.#config.redirect.includes('?') ? '&' : '?';
        const location = this.#config.redirect.includes('reason=')
          ? this.#config.redirect
          : `${this.#config.redirect}${sep}reason=${code}`;
        res.writeHead(302, { ...out, location, 'content-length': '0' });
        res.end();
        return;
      }
      const html = this.#config.renderPage({
        code,
        message: this.#messages[code],
        session,
        loginUrl: this.#config.redirect,
      });
      res.writeHead(status, {
        ...out,
        'content-type': 'text/html; charset=utf-8',
        'content-length': String(Buffer.byteLength(html)),
      });
      res.end(html);
      return;
    }
    const body = this.#bodies[code];
    res.writeHead(status, {
      ...out,
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(body)),
    });
    res.end(body);
  }

  #cookiesToClear(headers: IncomingHttpHeaders, token: PresentedToken): string[] {
    const names = new Set(token.cookieNames);
    const tc = this.#config.tokenCookies;
    if (token.carrier === 'cookie' && tc !== undefined && headers.cookie !== undefined)
      for (const n of tc.presentIn(headers.cookie)) names.add(n);
    for (const n of this.#config.clearCookies) names.add(n);
    return [...names];
  }

  #cors(headers: IncomingHttpHeaders, out: Record<string, string | string[]>): void {
    const origin = headers.origin;
    if (origin === undefined || !this.#origins.has(origin)) return;
    out['access-control-allow-origin'] = origin;
    out['access-control-allow-credentials'] = 'true';
    out['access-control-expose-headers'] = 'WWW-Authenticate';
    out.vary = 'Origin';
  }
}

/**
 * A top-level navigation gets a page or redirect; everything else gets JSON. A request with a bearer
 * token is never one: browsers attach no bearer token to a navigation, only a script does (which needs
 * the 401, not a redirect it cannot follow). Otherwise `Sec-Fetch-Mode` is authoritative where sent
 * (Fetch Metadata), else `Accept: text/html` without `X-Requested-With`.
 */
export function isNavigation(headers: IncomingHttpHeaders): boolean {
  const auth = headers.authorization;
  // RFC 6750 section 2.1, the scheme case-insensitive (RFC 9110 section 11.1), as the bearer reader reads it.
  if (auth !== undefined && BEARER.test(auth)) return false;
  const mode = headers['sec-fetch-mode'];
  if (mode !== undefined) return mode === 'navigate';
  if (headers['x-requested-with'] !== undefined) return false;
  const accept = headers.accept;
  return accept !== undefined && accept.includes('text/html');
}

const BEARER = /^bearer[ \t]/i;

/** A minimal page, used when no renderer is injected. */
// Prettier would reformat the `html` template as HTML, changing the page's bytes.
export const plainRejectionPage: RejectionPageRenderer = ({ message, loginUrl }) =>
  html`<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Signed out</title></head><body><main><h1>You have been signed out</h1><p>${message}</p>${loginUrl ? html`<p><a href="${loginUrl}">Sign in again</a></p>` : undefined}</main></body></html>`.toString();
