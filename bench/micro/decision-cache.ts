/**
 * The decision cache get (src/cache/decision-cache.ts), the one lookup every request with a token
 * makes: a hit on a live decision in a cache of 100,000 entries (the default `cache.max`), a stale
 * entry (past maxStaleness: undefined, the store is asked) and a miss; then the same hit with token ids
 * as the gateway makes them (43-character HMAC digests: the packed cache keeps those as bytes, any
 * other string in a Map). Cycling through all 100,000 gateway ids misses the CPU caches and the
 * cache's front of recent ids: that get, and a peek.
 */
import { bench, do_not_optimize, summary } from 'mitata';
import { DecisionCache } from '../../src/cache/decision-cache.js';
import type { SessionRecord } from '../../src/model.js';
import { createTokenIdOf } from '../../src/tokens/token-id.js';

const ENTRIES = 100_000;
const NOW = Date.UTC(2026, 11, 2);

function session(i: number, tokenId = `tid-${i}`): SessionRecord {
  return {
    id: `s-${i}`,
    user: `u-${i}`,
    state: 'live',
    createdAt: NOW,
    lastSeenAt: NOW,
    expiresAt: NOW + 864e5,
    ip: '127.0.0.1',
    userAgent: 'bench',
    tokenIds: [tokenId],
  };
}

export function register(): void {
  const cache = new DecisionCache({ max: ENTRIES, maxStaleness: 1000, now: () => NOW });
  for (let i = 0; i < ENTRIES; i++) {
    const s = session(i);
    const ticket = cache.beginFill(`tid-${i}`);
    cache.completeFill(ticket, cache.makeDecision('live', s, NOW));
  }
  if (cache.get('tid-7', NOW)?.state !== 'live' || cache.get('tid-7', NOW + 1000) !== undefined)
    throw new Error('decision-cache: the filled entries are not where the bench expects them');

  let i = 0;
  const next = () => `tid-${(i = (i + 7919) % ENTRIES)}`;
  const ids = Array.from({ length: 4096 }, next);
  let j = 0;
  summary(() => {
    bench('decision-cache: get, live hit', () => do_not_optimize(cache.get(ids[j++ & 4095] as string, NOW)));
    bench('decision-cache: get, stale (past maxStaleness)', () =>
      do_not_optimize(cache.get(ids[j++ & 4095] as string, NOW + 1000)),
    );
    bench('decision-cache: get, miss', () => do_not_optimize(cache.get('tid-absent', NOW)));
  });

  const tokenIdOf = createTokenIdOf('micro-bench-secret');
  const real = new DecisionCache({ max: ENTRIES, maxStaleness: 1000, now: () => NOW });
  const realIds = Array.from({ length: ENTRIES }, (_, n) => tokenIdOf(`token-${n}`));
  realIds.forEach((id, n) => {
    const ticket = real.beginFill(id);
    real.completeFill(ticket, real.makeDecision('live', session(n, id), NOW));
  });
  const picked = ids.map((_, n) => realIds[(n * 7919) % ENTRIES] as string);
  if (real.get(picked[1] as string, NOW)?.state !== 'live')
    throw new Error('decision-cache: the token ids filled are not where the bench expects them');
  const absent = tokenIdOf('absent');
  let k = 0;
  summary(() => {
    bench('decision-cache: get, live hit (gateway token ids)', () =>
      do_not_optimize(real.get(picked[k++ & 4095] as string, NOW)),
    );
    bench('decision-cache: get, live hit (gateway token ids, all 100,000 in turn)', () =>
      do_not_optimize(real.get(realIds[(k = (k + 7919) % ENTRIES)] as string, NOW)),
    );
    bench('decision-cache: peek (gateway token ids, all 100,000 in turn)', () =>
      do_not_optimize(real.peek(realIds[(k = (k + 7919) % ENTRIES)] as string)),
    );
    bench('decision-cache: get, miss (gateway token ids)', () => do_not_optimize(real.get(absent, NOW)));
  });
}
