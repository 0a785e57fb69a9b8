/**
 * The path the upstream will act on, for matching login, logout and protect rules: percent-decoded
 * (unreserved characters only), dot segments removed (RFC 3986 section 5.2.4), repeated slashes
 * collapsed and servlet path parameters (`;jsessionid=...`) dropped. Otherwise `POST /api//login`
 * or `/api/./login` would register nothing. Ambiguous forms (an encoded slash or backslash, a raw
 * backslash, NUL) mean different paths to different servers, so they are refused.
 */
export type NormalizedPath =
  { readonly ok: true; readonly path: string } | { readonly ok: false; readonly reason: string };

const SIMPLE_PATH = /^\/[A-Za-z0-9\-._~!$&'()*+,=:@/]*$/;

export function normalizePath(rawUrl: string): NormalizedPath {
  const q = rawUrl.indexOf('?');
  let path = q === -1 ? rawUrl : rawUrl.slice(0, q);
  const hash = path.indexOf('#');
  if (hash !== -1) path = path.slice(0, hash);
  // Fast path: nothing to decode, no dot segments, no repeated slashes.
  if (SIMPLE_PATH.test(path) && !path.includes('//') && !path.includes('/.')) return { ok: true, path };
  if (!path.startsWith('/')) {
    if (path === '*') return { ok: true, path: '*' };
    // Absolute-form request target (RFC 9112 section 3.2.2).
    try {
      path = new URL(path).pathname;
    } catch {
      return { ok: false, reason: 'request target is not a path' };
    }
  }
  if (path.includes('\\')) return { ok: false, reason: 'backslash in path' };
  if (/%(2f|5c|00)/i.test(path)) return { ok: false, reason: 'encoded slash, backslash or NUL in path' };
  let decoded: string;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    return { ok: false, reason: 'malformed percent-encoding in path' };
  }
  if (decoded.includes('\0')) return { ok: false, reason: 'NUL in path' };
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
