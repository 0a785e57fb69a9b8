/**
 * The token id (src/tokens/token-id.ts): HMAC-SHA256 over precomputed pads with one-shot
 * `crypto.hash`, against the implementation it replaced, node's `createHmac` per call, and with the
 * memo (a token seen before skips the HMAC).
 */
import { createHmac, randomBytes } from 'node:crypto';
import { bench, do_not_optimize, summary } from 'mitata';
import { createTokenIdOf } from '../../src/tokens/token-id.js';
import { BENCH_SECRET } from '../lib/gateway.js';

/** 43 characters: the shape of the bench upstream's access tokens (32 random bytes, base64url). */
const tokens = Array.from({ length: 1024 }, () => randomBytes(32).toString('base64url'));
const JWT = `eyJhbGciOiJIUzI1NiJ9.${randomBytes(600).toString('base64url')}.${randomBytes(32).toString('base64url')}`;

export function register(): void {
  const current = createTokenIdOf(BENCH_SECRET);
  const memo = createTokenIdOf(BENCH_SECRET, { memo: 10_000 });
  const previous = (token: string) => createHmac('sha256', BENCH_SECRET).update(token).digest('base64url');
  // The same ids, or the comparison would be between different functions.
  const sample = tokens[0] as string;
  if (current(sample) !== previous(sample) || memo(sample) !== previous(sample))
    throw new Error('token-id: createTokenIdOf disagrees with createHmac');

  let i = 0;
  const next = () => tokens[i++ & 1023] as string;
  summary(() => {
    bench('token-id: createHmac per call (previous)', () => do_not_optimize(previous(next()))).baseline(true);
    bench('token-id: createTokenIdOf, no memo', () => do_not_optimize(current(next())));
    bench('token-id: createTokenIdOf, memo hit', () => do_not_optimize(memo(next())));
  });
  summary(() => {
    bench('token-id: 800-byte JWT, createHmac (previous)', () => do_not_optimize(previous(JWT))).baseline(
      true,
    );
    bench('token-id: 800-byte JWT, createTokenIdOf', () => do_not_optimize(current(JWT)));
  });
}
