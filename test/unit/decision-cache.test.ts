import { describe, expect, it } from 'vitest';
import { DecisionCache } from '../../src/cache/decision-cache.js';
import type { SessionRecord } from '../../src/model.js';

const NOW = 1_700_000_000_000;

function record(state: SessionRecord['state'], tokenIds: string[]): SessionRecord {
  return {
    id: 's1',
    user: 'u1',
    state,
    createdAt: NOW - 1000,
    lastSeenAt: NOW - 500,
    expiresAt: NOW + 3_600_000,
    ip: '192.0.2.1',
    userAgent: 'test',
    tokenIds,
  };
}

function cacheWithLive(tokenIds: string[]): DecisionCache {
  const cache = new DecisionCache({ max: 100, maxStaleness: 1000, now: () => NOW });
  for (const id of tokenIds) cache.set(id, cache.makeDecision('live', record('live', tokenIds), NOW));
  return cache;
}

describe('decision cache: ended sessions carried by an invalidation', () => {
  it('turns a cached live token into the tombstone of its ended session', () => {
    const cache = cacheWithLive(['t1']);
    cache.bury([record('superseded', ['t1'])], NOW);
    expect(cache.get('t1', NOW)?.state).toBe('superseded');
    expect(cache.get('t1', NOW)?.session?.state).toBe('superseded');
  });

  it('keeps the tombstone past maxStaleness and past the session expiry (no store read for it)', () => {
    const cache = cacheWithLive(['t1']);
    cache.bury([record('logged_out', ['t1'])], NOW);
    expect(cache.get('t1', NOW + 60_000)?.state).toBe('logged_out');
    expect(cache.get('t1', NOW + 3_600_000)?.state).toBe('logged_out');
  });

  it('adds nothing for tokens this replica has not cached', () => {
    const cache = cacheWithLive(['t1']);
    cache.bury([record('superseded', ['t1', 'never-seen'])], NOW);
    expect(cache.get('never-seen', NOW)).toBeUndefined();
    expect(cache.size).toBe(1);
  });

  it('voids a store read in flight, so a stale "live" is not cached after it', () => {
    const cache = new DecisionCache({ max: 100, maxStaleness: 1000, now: () => NOW });
    const ticket = cache.beginFill('t1');
    cache.bury([record('superseded', ['t1'])], NOW);
    const staleLive = cache.makeDecision('live', record('live', ['t1']), NOW);
    expect(cache.completeFill(ticket, staleLive)).toBe(false);
    expect(cache.get('t1', NOW)).toBeUndefined();
  });
});
