import { describe, expect, it } from 'vitest';
import { DecisionCache } from '../../src/cache/decision-cache.js';
import type { SessionRecord } from '../../src/model.js';
import { NOW, sessionRecord } from './fixtures/session-record.js';

function record(state: SessionRecord['state'], tokenIds: string[]): SessionRecord {
  return sessionRecord('s1', 'u1', state, tokenIds);
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

describe('decision cache: the tokens of one session', () => {
  it('share one record when their store reads say the same', () => {
    const cache = cacheWithLive(['t1', 't2', 't3']);
    const [a, b, c] = ['t1', 't2', 't3'].map((t) => cache.get(t, NOW)?.session);
    expect(a).toBeDefined();
    expect(b).toBe(a);
    expect(c).toBe(a);
  });

  it('keep their own record when a read lists other tokens (a rotation) or another state', () => {
    const cache = cacheWithLive(['t1']);
    cache.set('t2', cache.makeDecision('live', record('live', ['t1', 't2']), NOW));
    expect(cache.get('t2', NOW)?.session?.tokenIds).toEqual(['t1', 't2']);
    cache.set('t3', cache.makeDecision('superseded', record('superseded', ['t1']), NOW));
    expect(cache.get('t3', NOW)?.session?.state).toBe('superseded');
    expect(cache.get('t1', NOW)?.session?.state).toBe('live');
  });

  it('keep their own activity while sharing the record', () => {
    const cache = cacheWithLive(['t1', 't2']);
    cache.noteActivity('t1', NOW, NOW - 500);
    expect(cache.get('t1', NOW)?.lastSeenAt).toBe(NOW);
    expect(cache.get('t2', NOW)?.lastSeenAt).toBe(NOW - 500);
    expect(cache.get('t2', NOW)?.session).toBe(cache.get('t1', NOW)?.session);
  });

  it('are listed for their session until each leaves the cache', () => {
    const cache = new DecisionCache({ max: 2, maxStaleness: 1000, now: () => NOW });
    for (const id of ['t1', 't2'])
      cache.set(id, cache.makeDecision('live', record('live', ['t1', 't2']), NOW));
    expect([...cache.cachedTokensOf('s1')].sort()).toEqual(['t1', 't2']);
    cache.set('other', cache.makeDecision('unknown', undefined, NOW)); // evicts t1, the least recent
    expect(cache.cachedTokensOf('s1')).toEqual(['t2']);
    cache.set('other2', cache.makeDecision('unknown', undefined, NOW)); // evicts t2
    expect(cache.cachedTokensOf('s1')).toEqual([]);
  });
});

describe('decision cache: a live session whose record changed (onLimit: warn)', () => {
  const warning = { sessionId: 'new', at: NOW, device: 'Chrome on Windows' };

  it('stops trusting its live entries but keeps them for peek, so their activity carries over', () => {
    const cache = cacheWithLive(['t1']);
    const before = cache.peek('t1');
    cache.refresh(['t1']);
    expect(cache.get('t1', NOW)).toBeUndefined();
    expect(cache.peek('t1')).toEqual({ ...before, epoch: -1 });
  });

  it('voids a read in flight, so a record read before the change is not cached', () => {
    const cache = cacheWithLive([]);
    const ticket = cache.beginFill('t1');
    cache.refresh(['t1']);
    expect(cache.completeFill(ticket, cache.makeDecision('live', record('live', ['t1']), NOW))).toBe(false);
    expect(cache.get('t1', NOW)).toBeUndefined();
  });

  it("gives a token refilled with the marked record its own copy, not a sibling's unmarked one", () => {
    const cache = cacheWithLive(['t1', 't2']);
    cache.refresh(['t1', 't2']);
    const marked = { ...record('live', ['t1', 't2']), warning };
    const ticket = cache.beginFill('t1');
    expect(cache.completeFill(ticket, cache.makeDecision('live', marked, NOW))).toBe(true);
    expect(cache.get('t1', NOW)?.session?.warning).toEqual(warning);
  });
});
