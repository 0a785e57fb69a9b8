/**
 * The path normaliser (src/proxy/path.ts): the fast path most requests take (nothing to decode), a
 * path with dot segments and escapes to decode, and node's WHATWG URL parser on the same inputs for
 * scale (it does not refuse what the normaliser refuses, so it is no replacement, only a yardstick).
 */
import { bench, do_not_optimize, summary } from 'mitata';
import { normalizePath } from '../../src/proxy/path.js';

const PLAIN = '/api/orders/12345/items?page=2&sort=desc';
const DECODED = '/api/./orders/%7Euser/../12345//items%2Dx?page=2';

export function register(): void {
  const plain = normalizePath(PLAIN);
  const decoded = normalizePath(DECODED);
  if (!plain.ok || plain.path !== '/api/orders/12345/items') throw new Error('path: fast path changed');
  if (!decoded.ok || decoded.path !== '/api/orders/12345/items-x')
    throw new Error(`path: decoding changed (${JSON.stringify(decoded)})`);

  summary(() => {
    bench('path: plain, new URL (yardstick)', () =>
      do_not_optimize(new URL(PLAIN, 'http://x').pathname),
    ).baseline(true);
    bench('path: plain, normalizePath', () => do_not_optimize(normalizePath(PLAIN)));
  });
  summary(() => {
    bench('path: dots and escapes, new URL (yardstick)', () =>
      do_not_optimize(new URL(DECODED, 'http://x').pathname),
    ).baseline(true);
    bench('path: dots and escapes, normalizePath', () => do_not_optimize(normalizePath(DECODED)));
  });
}
