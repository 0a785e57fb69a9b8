/**
 * The token reader (src/tokens/request-token.ts): what a request's headers cost to turn into the one
 * presented token, for a bearer header, a session cookie among a browser's others, and both sources
 * configured at once (every source is read, so two tokens are seen as two).
 */
import type { IncomingHttpHeaders } from 'node:http';
import { bench, do_not_optimize, summary } from 'mitata';
import type { RequestTokenSource } from '../../src/config/sources.js';
import { compileRequestTokenReader } from '../../src/tokens/request-token.js';

const TOKEN = 'pAsStHrOuGh_tOkEn_32_bytes_base64url_012345';
const bearer: RequestTokenSource = { kind: 'bearer', value: {} };
const cookie: RequestTokenSource = { kind: 'cookie', name: 'sid', chunked: false, value: {} };

const bearerHeaders: IncomingHttpHeaders = {
  host: 'app.example',
  accept: '*/*',
  authorization: `Bearer ${TOKEN}`,
};
const cookieHeaders: IncomingHttpHeaders = {
  host: 'app.example',
  accept: 'text/html',
  cookie: `_ga=GA1.2.1234567890.1700000000; theme=dark; sid=${TOKEN}; consent=yes; _gid=GA1.2.987654321`,
};

export function register(): void {
  const readBearer = compileRequestTokenReader([bearer]);
  const readCookie = compileRequestTokenReader([cookie]);
  const readBoth = compileRequestTokenReader([bearer, cookie]);
  for (const [read, headers] of [
    [readBearer, bearerHeaders],
    [readCookie, cookieHeaders],
    [readBoth, cookieHeaders],
  ] as const) {
    const t = read(headers, '/');
    if (typeof t !== 'object' || t.value !== TOKEN) throw new Error('token-reader: the token was not read');
  }
  summary(() => {
    bench('token-reader: bearer', () => do_not_optimize(readBearer(bearerHeaders, '/')));
    bench('token-reader: cookie sid among 5', () => do_not_optimize(readCookie(cookieHeaders, '/')));
    bench('token-reader: bearer + cookie sources, cookie sent', () =>
      do_not_optimize(readBoth(cookieHeaders, '/')),
    );
  });
}
