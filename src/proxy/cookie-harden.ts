import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { CookieHardenConfig } from '../config/schema.js';
import type { Tally } from '../observability/metrics.js';
import type { TrustedProxies } from './client-address.js';

/**
 * `cookies.harden`, compiled once: the session cookies the app sets get the attributes the checklist
 * asks for (HttpOnly, Secure over TLS, SameSite) on their way to the client, as nginx's
 * `proxy_cookie_flags` does. Only the attributes named change: the value and every other attribute
 * pass byte for byte, and a Set-Cookie already as asked passes as the same string.
 */
export interface CookieHardening {
  /**
   * Rewrites, in place, the Set-Cookie headers of a response to `req` (a flat [name, value, ...]
   * list). A response without Set-Cookie costs one scan of its header names.
   */
  headers(headers: string[], req: IncomingMessage): void;
  /** One Set-Cookie the gateway itself sends (a token cookie's deletion), for a client over TLS or not. */
  value(setCookie: string, overTls: boolean): string;
  /** Whether the client came over TLS: the listener's own, or X-Forwarded-Proto: https from a trusted proxy. */
  overTls(
    socket: { readonly encrypted?: boolean; readonly remoteAddress?: string | undefined },
    headers: IncomingHttpHeaders,
  ): boolean;
}

export interface CookieHardeningDeps {
  /** Is this cookie name a watched token cookie (the `cookie:` sources of `tokens` and of the rules)? */
  readonly isTokenCookie: (name: string) => boolean;
  readonly trustedProxies: TrustedProxies;
  readonly hardened: Tally;
  readonly unparseable: Tally;
}

const SAME_SITE = { strict: 'Strict', lax: 'Lax', none: 'None' } as const;

export function compileCookieHardening(
  config: CookieHardenConfig,
  deps: CookieHardeningDeps,
): CookieHardening {
  const { isTokenCookie, trustedProxies, hardened, unparseable } = deps;
  const watches = config.all ? () => true : isTokenCookie;
  const sameSite = config.sameSite === 'keep' ? undefined : SAME_SITE[config.sameSite];

  const overTls: CookieHardening['overTls'] = (socket, headers) => {
    if (socket.encrypted === true) return true;
    const proto = headers['x-forwarded-proto'];
    if (proto === undefined || !trustedProxies.isTrusted(socket.remoteAddress)) return false;
    // The first entry is what the client-facing proxy saw.
    const first = (Array.isArray(proto) ? (proto[0] ?? '') : proto).split(',')[0] as string;
    return first.trim().toLowerCase() === 'https';
  };

  /** The Set-Cookie with the configured attributes, the same string when it has them; undefined: unparseable. */
  const rewrite = (setCookie: string, tls: boolean, all: boolean): string | undefined => {
    const parts = setCookie.split(';');
    const pair = parts[0] as string;
    const eq = pair.indexOf('=');
    const name = eq === -1 ? '' : pair.slice(0, eq).trim();
    if (name === '' || !isToken(name)) return undefined;
    if (!all && !watches(name)) return setCookie;
    let httpOnly = false;
    let secure = false;
    let sameSiteAt = -1;
    let sameSiteValue = '';
    for (let i = 1; i < parts.length; i++) {
      const attr = parts[i] as string;
      const aeq = attr.indexOf('=');
      const key = (aeq === -1 ? attr : attr.slice(0, aeq)).trim().toLowerCase();
      if (key === 'httponly') httpOnly = true;
      else if (key === 'secure') secure = true;
      else if (key === 'samesite') {
        sameSiteAt = i;
        sameSiteValue =
          aeq === -1
            ? ''
            : attr
                .slice(aeq + 1)
                .trim()
                .toLowerCase();
      }
    }
    const addSecure = !secure && (config.secure === true || (config.secure === 'auto' && tls));
    const willBeSecure = secure || addSecure;
    // SameSite=None without Secure is refused by browsers (or read as Lax): never added so.
    const wantSameSite = sameSite === 'None' && !willBeSecure ? undefined : sameSite;
    const setSameSite = wantSameSite !== undefined && sameSiteValue !== wantSameSite.toLowerCase();
    const addHttpOnly = config.httpOnly && !httpOnly;
    if (!addSecure && !setSameSite && !addHttpOnly) return setCookie;
    if (setSameSite && sameSiteAt !== -1) {
      // In place, with the spacing the app used, so the other attributes keep their order and bytes.
      const old = parts[sameSiteAt] as string;
      const lead = old.length - old.trimStart().length;
      parts[sameSiteAt] = `${old.slice(0, lead)}SameSite=${wantSameSite as string}`;
    }
    let out = parts.join(';');
    if (addHttpOnly) out += '; HttpOnly';
    if (addSecure) out += '; Secure';
    if (setSameSite && sameSiteAt === -1) out += `; SameSite=${wantSameSite as string}`;
    return out;
  };

  return {
    overTls,
    headers(headers, req) {
      let tls: boolean | undefined;
      for (let i = 0; i < headers.length; i += 2) {
        const name = headers[i] as string;
        // Length and first letter before any lower-casing: most responses set no cookie at all.
        if (name.length !== 10 || (name.charCodeAt(0) | 32) !== 115 || name.toLowerCase() !== 'set-cookie')
          continue;
        tls ??= overTls(req.socket as { encrypted?: boolean; remoteAddress?: string }, req.headers);
        const value = headers[i + 1] as string;
        const out = rewrite(value, tls, false);
        if (out === undefined) {
          // Passed as the app sent it (the client's parser may read it; the gateway cannot), counted.
          unparseable.inc();
          continue;
        }
        if (out !== value) {
          headers[i + 1] = out;
          hardened.inc();
        }
      }
    },
    value(setCookie, tls) {
      return rewrite(setCookie, tls, true) ?? setCookie;
    },
  };
}

/** RFC 6265 section 4.1.1: a cookie name is an RFC 9110 token. */
function isToken(name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c <= 32 || c >= 127 || SEPARATORS.includes(name[i] as string)) return false;
  }
  return true;
}

const SEPARATORS = '()<>@,;:\\"/[]?={}';
