/**
 * The path the upstream will act on, for matching login, logout and protect rules: dot segments
 * removed (RFC 3986 section 5.2.4), repeated slashes collapsed and servlet path parameters
 * (`;jsessionid=...`) dropped. Otherwise `POST /api//login` or `/api/./login` would register nothing.
 *
 * Only the gateway matches on this path; the app gets `req.url` as sent. Rule patterns are written
 * decoded (`/login`), so escapes of plain path characters are decoded: the unreserved characters
 * (RFC 3986 section 2.3) and the other characters the fast path takes as they are (`!$&'()*+,=:@`):
 * to the rules `/log%69n` is `/login` and `/a%2Cb` is `/a,b`, as to the many apps that decode their
 * path before routing (for one that does not, matching more is safe). Every other escape is kept
 * (its hex upper-cased), so the result is a fixed point: normalising it again gives it back, and
 * `%3F` never becomes a `?` that a later stage reads as the query.
 *
 * Refused, because servers disagree on what they mean: an encoded slash, backslash, NUL or `;`
 * (Tomcat keeps `%3B` in the segment, a server that decodes before splitting off path parameters
 * reads `/admin%3Bx` as `/admin`), an encoded `%` before two hex digits (`%252e`: one decode gives
 * `%2e`, two give a dot segment), malformed escapes or UTF-8 (overlong `%C0%AE` is a dot to lenient
 * decoders), a raw backslash, and request targets other than origin-form, `*` and http(s)
 * absolute-form (RFC 9112 section 3.2).
 */
export type NormalizedPath =
  { readonly ok: true; readonly path: string } | { readonly ok: false; readonly reason: string };

const SIMPLE_PATH = /^\/[A-Za-z0-9\-._~!$&'()*+,=:@/]*$/;

/** Authority of an absolute-form target; an empty host is invalid for http(s) (RFC 9110 section 4.2). */
const ABSOLUTE_FORM = /^https?:\/\/[^/]+/i;

/** Bytes whose escape is decoded: SIMPLE_PATH's characters but `/`. */
const PLAIN = new Uint8Array(128);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,=:@")
  PLAIN[c.charCodeAt(0)] = 1;

const HEX = '0123456789ABCDEF';

function hexValue(code: number): number {
  if (code >= 48 && code <= 57) return code - 48;
  const lower = code | 0x20;
  return lower >= 97 && lower <= 102 ? lower - 87 : -1;
}

function refuse(reason: string): NormalizedPath {
  return { ok: false, reason };
}

export function normalizePath(rawUrl: string): NormalizedPath {
  const q = rawUrl.indexOf('?');
  let path = q === -1 ? rawUrl : rawUrl.slice(0, q);
  const hash = path.indexOf('#');
  if (hash !== -1) path = path.slice(0, hash);
  // Fast path: nothing to decode, no dot segments, no repeated slashes.
  if (SIMPLE_PATH.test(path) && !path.includes('//') && !path.includes('/.')) return { ok: true, path };
  // Before any parsing: WHATWG URL parsers (and so some servers) read `\` as `/` in http(s) URLs.
  if (path.includes('\\')) return refuse('backslash in path');
  if (!path.startsWith('/')) {
    if (path === '*') return { ok: true, path: '*' };
    const authority = ABSOLUTE_FORM.exec(path);
    if (authority === null) return refuse('request target is not a path');
    path = path.slice(authority[0].length);
    if (path === '') path = '/';
  }
  let decoded = path;
  let pct = path.indexOf('%');
  if (pct !== -1) {
    decoded = '';
    let copied = 0;
    while (pct !== -1) {
      const hi = hexValue(path.charCodeAt(pct + 1));
      const lo = hexValue(path.charCodeAt(pct + 2));
      if (hi < 0 || lo < 0) return refuse('malformed percent-encoding in path');
      const byte = hi * 16 + lo;
      decoded += path.slice(copied, pct);
      if (byte < 128 && PLAIN[byte] === 1) decoded += String.fromCharCode(byte);
      else if (byte === 0x2f || byte === 0x5c || byte === 0)
        return refuse('encoded slash, backslash or NUL in path');
      else if (byte === 0x3b) return refuse('encoded semicolon in path');
      else decoded += `%${HEX[hi]}${HEX[lo]}`;
      copied = pct + 3;
      pct = path.indexOf('%', copied);
    }
    decoded += path.slice(copied);
    // Checked on the result: `%25%32%65` decodes to `%252e` too.
    if (/%25[0-9A-F]{2}/i.test(decoded)) return refuse('encoded percent sign before two hex digits in path');
    try {
      // What is left is valid escapes, so this throws only on malformed UTF-8.
      decodeURIComponent(decoded);
    } catch {
      return refuse('malformed UTF-8 in the percent-encoding of the path');
    }
  }
  if (decoded.includes('\0')) return refuse('NUL in path');
  const out: string[] = [];
  for (let seg of decoded.split('/')) {
    const semi = seg.indexOf(';');
    if (semi !== -1) seg = seg.slice(0, semi);
    if (seg === '' || seg === '.') continue;
    if (seg === '..') out.pop();
    else out.push(seg);
  }
  const trailing = decoded.endsWith('/') && out.length > 0 ? '/' : '';
  return { ok: true, path: `/${out.join('/')}${trailing}` };
}
