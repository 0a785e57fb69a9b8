/**
 * Cookie reading without building maps: the hot path reads one cookie out of the `Cookie` header.
 * Cookie names in rules are exact (`sid`), anchored globs (`wordpress_logged_in_*`) or a regular
 * expression in slashes (`/^JSESSIONID\.[0-9a-f]+$/`); globs are anchored so `grafana_session` does not
 * also catch `grafana_session_expiry`.
 */
export interface CookieNameMatcher {
  readonly source: string;
  /** The exact name, when the rule is not a pattern (the fast path). */
  readonly exact: string | undefined;
  test(name: string): boolean;
}

export function compileCookieName(source: string): CookieNameMatcher {
  if (source.length > 2 && source.startsWith('/') && source.endsWith('/')) {
    const re = new RegExp(source.slice(1, -1));
    return { source, exact: undefined, test: (n) => re.test(n) };
  }
  if (source.includes('*')) {
    const re = new RegExp(`^${source.split('*').map(escapeRegExp).join('.*')}$`);
    return { source, exact: undefined, test: (n) => re.test(n) };
  }
  return { source, exact: source, test: (n) => n === source };
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The value of the first cookie called `name` in a `Cookie` header, or undefined. */
export function readCookie(header: string, name: string): string | undefined {
  let start = 0;
  const len = header.length;
  while (start < len) {
    while (start < len && (header.charCodeAt(start) === 32 || header.charCodeAt(start) === 59)) start++;
    let end = header.indexOf(';', start);
    if (end === -1) end = len;
    const eq = header.indexOf('=', start);
    if (eq !== -1 && eq < end && eq - start === name.length && header.startsWith(name, start)) {
      return unquote(header.slice(eq + 1, end).trim());
    }
    start = end + 1;
  }
  return undefined;
}

/** Every cookie of a `Cookie` header whose name the matcher accepts, in header order. */
export function readCookies(header: string, matcher: CookieNameMatcher): { name: string; value: string }[] {
  const out: { name: string; value: string }[] = [];
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq === -1) continue;
    const name = part.slice(0, eq).trim();
    if (matcher.test(name)) out.push({ name, value: unquote(part.slice(eq + 1).trim()) });
  }
  return out;
}

function unquote(v: string): string {
  return v.length >= 2 && v.charCodeAt(0) === 34 && v.charCodeAt(v.length - 1) === 34 ? v.slice(1, -1) : v;
}

export interface SetCookie {
  readonly name: string;
  readonly value: string;
  /** The cookie is being removed (empty value, Max-Age <= 0, or Expires in the past). */
  readonly clears: boolean;
  readonly path: string | undefined;
  readonly domain: string | undefined;
}

/** Parses one `Set-Cookie` header value (RFC 6265 section 5.2, leniently). */
export function parseSetCookie(header: string, now: number = Date.now()): SetCookie | undefined {
  const parts = header.split(';');
  const first = parts[0] as string;
  const eq = first.indexOf('=');
  if (eq <= 0) return undefined;
  const name = first.slice(0, eq).trim();
  const value = unquote(first.slice(eq + 1).trim());
  let clears = value === '';
  let path: string | undefined;
  let domain: string | undefined;
  for (let i = 1; i < parts.length; i++) {
    const attr = parts[i] as string;
    const aeq = attr.indexOf('=');
    const key = (aeq === -1 ? attr : attr.slice(0, aeq)).trim().toLowerCase();
    const val = aeq === -1 ? '' : attr.slice(aeq + 1).trim();
    if (key === 'max-age') {
      if (Number(val) <= 0) clears = true;
    } else if (key === 'expires') {
      const t = Date.parse(val);
      if (!Number.isNaN(t) && t <= now) clears = true;
    } else if (key === 'path') path = val;
    else if (key === 'domain') domain = val;
  }
  return { name, value, clears, path, domain };
}

/** A `Set-Cookie` value that removes a cookie. */
export function clearingCookie(name: string, path = '/'): string {
  return `${name}=; Path=${path}; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Lax`;
}
