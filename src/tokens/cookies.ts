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

/**
 * A `Cookie` header read as the common parsers read it (jshttp `cookie`, used by express; PHP; Rack):
 * pairs split on `;`, names and values trimmed of spaces and tabs, a pair without `=` skipped, a
 * quoted value unquoted and the value percent-decoded. The token id is taken of the value the app
 * will see, so `s%3Aabc` and `s:abc` (or `%61bc` and `abc`) are one token, not a dead one and an
 * unknown one.
 *
 * Names compare as PHP compares them too: PHP turns `.`, space and `[` in a cookie name into `_`, so
 * `laravel.session` reaches a PHP app as `laravel_session`.
 *
 * A token cookie sent twice with two different values is ambiguous (stacks disagree on which one
 * wins): readers answer AMBIGUOUS and the request is refused. So is a token value whose
 * percent-encoding is malformed (jshttp keeps it raw, PHP decodes what it can).
 */
export const AMBIGUOUS: unique symbol = Symbol('ambiguous cookie');
export type CookieRead = string | undefined | typeof AMBIGUOUS;

function isSpace(code: number): boolean {
  return code === 32 || code === 9;
}

/** Does `header[start, end)` name the cookie `name` (exactly, or as PHP maps it)? */
function sameName(header: string, start: number, end: number, name: string): boolean {
  if (end - start !== name.length) return false;
  if (header.startsWith(name, start)) return true;
  for (let i = 0; i < name.length; i++) {
    const a = header.charCodeAt(start + i);
    const b = name.charCodeAt(i);
    if (a === b) continue;
    // '_' in the configured name matches '.', ' ' or '[' in the request (PHP's name mangling).
    if (b !== 95 || (a !== 46 && a !== 32 && a !== 91)) return false;
  }
  return true;
}

/** The value of `header[start, end)` as the app sees it: trimmed, unquoted, percent-decoded. */
function cookieValue(header: string, start: number, end: number): string | typeof AMBIGUOUS {
  while (start < end && isSpace(header.charCodeAt(start))) start++;
  while (end > start && isSpace(header.charCodeAt(end - 1))) end--;
  if (end - start >= 2 && header.charCodeAt(start) === 34 && header.charCodeAt(end - 1) === 34) {
    start++;
    end--;
  }
  const raw = header.slice(start, end);
  let value: string;
  if (raw.indexOf('%') === -1) value = raw;
  else {
    try {
      value = decodeURIComponent(raw);
    } catch {
      return AMBIGUOUS;
    }
  }
  return value.charCodeAt(0) === 106 && value.charCodeAt(1) === 58 ? jsonCookie(value) : value;
}

/**
 * express's cookie-parser JSON-decodes a value that starts with `j:`, so `sid=j:"abc"` reaches the
 * app as `abc`: the token is the decoded string. A `j:` value that is JSON but not a string is no
 * token the app would read as one (an object): it stays as sent.
 */
function jsonCookie(value: string): string {
  try {
    const parsed: unknown = JSON.parse(value.slice(2));
    return typeof parsed === 'string' ? parsed : value;
  } catch {
    return value;
  }
}

/**
 * The value of the cookie called `name` in a `Cookie` header: undefined when absent, AMBIGUOUS when
 * it is sent twice with different values or cannot be decoded. No allocation but the value itself.
 */
export function readCookie(header: string, name: string): CookieRead {
  let found: string | undefined;
  const len = header.length;
  let index = 0;
  while (index < len) {
    let end = header.indexOf(';', index);
    if (end === -1) end = len;
    const eq = header.indexOf('=', index);
    if (eq === -1) break;
    if (eq < end) {
      let s = index;
      let e = eq;
      while (s < e && isSpace(header.charCodeAt(s))) s++;
      while (e > s && isSpace(header.charCodeAt(e - 1))) e--;
      if (sameName(header, s, e, name)) {
        const value = cookieValue(header, eq + 1, end);
        if (value === AMBIGUOUS || (found !== undefined && found !== value)) return AMBIGUOUS;
        found = value;
      }
    }
    index = end + 1;
  }
  return found;
}

export interface CookiePair {
  /** The name as sent. */
  readonly name: string;
  /** The name as PHP reads it (`.`, space and `[` as `_`); equal to `name` for most names. */
  readonly canonical: string;
  readonly value: string | typeof AMBIGUOUS;
}

/** Every pair of a `Cookie` header, in order, read as `readCookie` reads one. */
export function cookiePairs(header: string): CookiePair[] {
  const out: CookiePair[] = [];
  const len = header.length;
  let index = 0;
  while (index < len) {
    let end = header.indexOf(';', index);
    if (end === -1) end = len;
    const eq = header.indexOf('=', index);
    if (eq === -1) break;
    if (eq < end) {
      const name = header.slice(index, eq).replace(/^[ \t]+|[ \t]+$/g, '');
      out.push({ name, canonical: name.replace(/[. []/g, '_'), value: cookieValue(header, eq + 1, end) });
    }
    index = end + 1;
  }
  return out;
}

/**
 * Every cookie whose name the matcher accepts (as sent or as PHP reads it), one entry per name; a
 * name sent twice with different values, or undecodable, is AMBIGUOUS.
 */
export function readCookies(
  header: string,
  matcher: CookieNameMatcher,
): { name: string; value: string }[] | typeof AMBIGUOUS {
  const out: { name: string; value: string }[] = [];
  for (const p of cookiePairs(header)) {
    if (!matcher.test(p.name) && !(p.canonical !== p.name && matcher.test(p.canonical))) continue;
    if (p.value === AMBIGUOUS) return AMBIGUOUS;
    const prev = out.find((c) => c.name === p.canonical || c.name === p.name);
    if (prev !== undefined) {
      if (prev.value !== p.value) return AMBIGUOUS;
      continue;
    }
    out.push({ name: p.name, value: p.value });
  }
  return out;
}

/**
 * The `Cookie` header without the pairs named (as sent or as PHP reads them): a dead token is never
 * forwarded to the app. Undefined when nothing is left.
 */
export function withoutCookies(header: string, names: readonly string[]): string | undefined {
  const kept: string[] = [];
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq !== -1) {
      const name = part.slice(0, eq).replace(/^[ \t]+|[ \t]+$/g, '');
      const canonical = name.replace(/[. []/g, '_');
      if (names.some((n) => n === name || n === canonical || n.replace(/[. []/g, '_') === canonical))
        continue;
    }
    const trimmed = part.replace(/^[ \t]+|[ \t]+$/g, '');
    if (trimmed !== '') kept.push(trimmed);
  }
  return kept.length > 0 ? kept.join('; ') : undefined;
}

function unquote(v: string): string {
  return v.length >= 2 && v.charCodeAt(0) === 34 && v.charCodeAt(v.length - 1) === 34 ? v.slice(1, -1) : v;
}

/** A value the app set, as the client will send it back and the app will read it. */
function setCookieValue(raw: string): string {
  const v = unquote(raw);
  let value = v;
  if (v.indexOf('%') !== -1) {
    try {
      value = decodeURIComponent(v);
    } catch {
      value = v;
    }
  }
  return value.startsWith('j:') ? jsonCookie(value) : value;
}

export interface SetCookie {
  readonly name: string;
  readonly value: string;
  /** The cookie is being removed (empty value, Max-Age <= 0, or Expires in the past). */
  readonly clears: boolean;
  readonly path: string | undefined;
  readonly domain: string | undefined;
  readonly secure: boolean;
  /** CHIPS: a partitioned cookie is deleted only by a partitioned Set-Cookie. */
  readonly partitioned: boolean;
}

/** Parses one `Set-Cookie` header value (RFC 6265 section 5.2, leniently). */
export function parseSetCookie(header: string, now: number = Date.now()): SetCookie | undefined {
  const parts = header.split(';');
  const first = parts[0] as string;
  const eq = first.indexOf('=');
  if (eq <= 0) return undefined;
  const name = first.slice(0, eq).trim();
  const value = setCookieValue(first.slice(eq + 1).trim());
  let clears = value === '';
  let path: string | undefined;
  let domain: string | undefined;
  let secure = false;
  let partitioned = false;
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
    else if (key === 'secure') secure = true;
    else if (key === 'partitioned') partitioned = true;
  }
  return { name, value, clears, path, domain, secure, partitioned };
}

const HOST_PREFIX = /^__host-/i;
const SECURE_PREFIX = /^__secure-/i;

/** Where a cookie lives: a browser deletes it only with a Set-Cookie of the same name, Domain and Path. */
export interface CookieScope {
  readonly path?: string | undefined;
  /** Unset: a host-only cookie (a Set-Cookie with a Domain would be another cookie). */
  readonly domain?: string | undefined;
  readonly secure?: boolean;
  readonly partitioned?: boolean;
}

/**
 * A `Set-Cookie` value that removes a cookie set with `scope` (RFC 6265 section 5.3 step 11: same name,
 * domain and path). Prefixed names are only accepted as the prefix demands (RFC 6265bis section 4.1.3):
 * `__Host-` with Secure, Path=/ and no Domain, `__Secure-` with Secure; otherwise the browser ignores
 * the deletion and keeps the dead cookie.
 */
export function clearingCookie(name: string, scope: CookieScope = {}): string {
  // Browsers match the prefixes case-insensitively, as RFC 6265bis now specifies.
  const host = HOST_PREFIX.test(name);
  const path = host ? '/' : (scope.path ?? '/');
  const domain = host ? undefined : scope.domain;
  const secure = host || SECURE_PREFIX.test(name) || scope.secure === true || scope.partitioned === true;
  let out = `${name}=; Path=${path}`;
  if (domain !== undefined) out += `; Domain=${domain}`;
  out += '; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT';
  if (secure) out += '; Secure';
  if (scope.partitioned === true) out += '; Partitioned';
  return `${out}; HttpOnly; SameSite=Lax`;
}
