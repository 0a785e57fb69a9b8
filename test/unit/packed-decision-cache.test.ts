import { describe, expect, it } from 'vitest';
import { DecisionCache } from '../../src/cache/decision-cache.js';
import type { SessionRecord } from '../../src/model.js';
import { createTokenIdOf } from '../../src/tokens/token-id.js';
import { NOW, sessionRecord } from './fixtures/session-record.js';

// Token ids as the gateway makes them (43-character base64url digests: the packed, binary-key path).
const tokenIdOf = createTokenIdOf('packed-cache-test-secret');
const tid = (n: number) => tokenIdOf(`token-${n}`);

function record(id: string, tokenIds: string[], state: SessionRecord['state'] = 'live'): SessionRecord {
  return sessionRecord(id, `user-of-${id}`, state, tokenIds);
}

function fill(cache: DecisionCache, tokenId: string, s: SessionRecord | undefined): void {
  const ticket = cache.beginFill(tokenId);
  expect(cache.completeFill(ticket, cache.makeDecision(s?.state ?? 'unknown', s, NOW))).toBe(true);
}

describe('packed decision cache: keys', () => {
  it('keeps gateway token ids and other strings apart, and answers cachedTokensOf with the same strings', () => {
    const cache = new DecisionCache({ max: 10, maxStaleness: 1000 });
    const [a, b] = [tid(1), tid(2)];
    expect(a).toHaveLength(43);
    fill(cache, a, record('s1', [a, b]));
    fill(cache, b, record('s1', [a, b]));
    fill(cache, 'plain-key', record('s1', [a, b]));
    expect([...cache.cachedTokensOf('s1')].sort()).toEqual([a, b, 'plain-key'].sort());
    expect(cache.get(a, NOW)?.session?.tokenIds).toEqual([a, b]);
    // One character off (a different id, or a non-canonical spelling of the same bytes): not cached.
    const last = a.charAt(42) === 'A' ? 'E' : 'A';
    expect(cache.get(a.slice(0, 42) + last, NOW)).toBeUndefined();
    expect(cache.get(a.slice(0, 42) + String.fromCharCode(a.charCodeAt(42) + 1), NOW)).toBeUndefined();
  });

  it('gives a token listing only itself its own key back as the session tokenIds', () => {
    const cache = new DecisionCache({ max: 10, maxStaleness: 1000 });
    const a = tid(1);
    fill(cache, a, record('s1', [a]));
    expect(cache.get(a, NOW)?.session?.tokenIds).toEqual([a]);
    expect(cache.get(a, NOW)?.session).not.toHaveProperty('userAgent');
  });
});

describe('packed decision cache: slots and rows', () => {
  it('reuses the slot of an evicted entry, in LRU order, without losing the others', () => {
    const cache = new DecisionCache({ max: 3, maxStaleness: 1000 });
    const ids = [1, 2, 3, 4, 5].map(tid);
    for (const id of ids.slice(0, 3)) fill(cache, id, record(`s-${id}`, [id]));
    expect(cache.get(ids[0] ?? '', NOW)?.state).toBe('live'); // ids[1] is now the least recent
    fill(cache, ids[3] ?? '', record('s-new', [ids[3] ?? '']));
    expect(cache.size).toBe(3);
    expect(cache.peek(ids[1] ?? '')).toBeUndefined();
    expect(cache.cachedTokensOf(`s-${ids[1]}`)).toEqual([]);
    for (const id of [ids[0], ids[2], ids[3]]) expect(cache.get(id ?? '', NOW)?.state).toBe('live');
    expect(cache.get(ids[3] ?? '', NOW)?.session?.id).toBe('s-new');
    fill(cache, ids[4] ?? '', undefined); // evicts ids[0]
    expect(cache.peek(ids[0] ?? '')).toBeUndefined();
    expect(cache.get(ids[4] ?? '', NOW)?.state).toBe('unknown');
    expect(cache.get(ids[4] ?? '', NOW)?.session).toBeUndefined();
    expect(cache.capacity).toBe(3);
  });

  it("holds one row for a session's many tokens and lists them all", () => {
    const cache = new DecisionCache({ max: 1000, maxStaleness: 1000 });
    const ids = Array.from({ length: 50 }, (_, i) => tid(100 + i));
    for (const id of ids) fill(cache, id, record('s1', ids));
    expect(cache.rowCount).toBe(1);
    expect([...cache.cachedTokensOf('s1')].sort()).toEqual([...ids].sort());
    const first = cache.get(ids[0] ?? '', NOW)?.session;
    for (const id of ids) expect(cache.get(id, NOW)?.session).toBe(first);
    // Their session ends: every token becomes its tombstone, sharing the ended record.
    cache.bury([record('s1', ids, 'logged_out')], NOW);
    expect(cache.rowCount).toBe(1);
    for (const id of ids) expect(cache.get(id, NOW + 10_000)?.state).toBe('logged_out');
  });

  it("drops a session's row with its last token, by eviction or invalidation", () => {
    const cache = new DecisionCache({ max: 2, maxStaleness: 1000 });
    const [a, b, c, d] = [1, 2, 3, 4].map(tid) as [string, string, string, string];
    fill(cache, a, record('s1', [a, b]));
    fill(cache, b, record('s1', [a, b]));
    expect(cache.rowCount).toBe(1);
    fill(cache, c, record('s2', [c])); // evicts a
    expect(cache.rowCount).toBe(2);
    expect(cache.cachedTokensOf('s1')).toEqual([b]);
    fill(cache, d, undefined); // evicts b, the last of s1
    expect(cache.rowCount).toBe(1);
    expect(cache.cachedTokensOf('s1')).toEqual([]);
    cache.invalidate([c]);
    expect(cache.rowCount).toBe(0);
    expect(cache.size).toBe(1);
    expect(cache.cachedTokensOf('s2')).toEqual([]);
  });

  it('grows its arrays by doubling up to max, and keeps every entry across the growth', () => {
    const max = 5000;
    const cache = new DecisionCache({ max, maxStaleness: 1000 });
    expect(cache.capacity).toBe(1024);
    for (let i = 0; i < max; i++) fill(cache, tid(i), record(`s${i}`, [tid(i)]));
    expect(cache.capacity).toBe(max);
    expect(cache.size).toBe(max);
    for (let i = 0; i < max; i += 7) expect(cache.get(tid(i), NOW)?.session?.id).toBe(`s${i}`);
    fill(cache, tid(max), record('past-max', [tid(max)]));
    expect(cache.size).toBe(max);
    expect(cache.capacity).toBe(max);
    expect(cache.peek(tid(1))).toBeUndefined(); // the least recent (tid(0) was just read)
    expect(cache.get(tid(0), NOW)?.state).toBe('live');
  });

  it('keeps the activity of each token across refills of its slot', () => {
    const cache = new DecisionCache({ max: 10, maxStaleness: 1000 });
    const a = tid(1);
    fill(cache, a, record('s1', [a]));
    cache.noteActivity(a, NOW + 5, NOW + 1);
    const entry = cache.peek(a);
    expect(entry?.lastSeenAt).toBe(NOW + 5);
    expect(entry?.lastWrittenAt).toBe(NOW + 1);
    cache.noteActivity(tid(2), NOW, NOW); // not cached: nothing to note
    expect(cache.size).toBe(1);
  });
});

describe('packed decision cache: ids that share their first characters', () => {
  // Canonical ids whose first bytes agree: the same set of the front (two ways), so a third id pushes
  // one out and a freed slot must leave it.
  const sibling = (n: number) => {
    const bytes = Buffer.alloc(32, 7);
    bytes[31] = n;
    return bytes.toString('base64url');
  };

  it('finds each of three after they took turns in the front, and none once its slot is freed', () => {
    const cache = new DecisionCache({ max: 3, maxStaleness: 1000 });
    const ids = [1, 2, 3].map(sibling);
    for (const id of ids) fill(cache, id, record(`s-${id}`, [id]));
    for (let round = 0; round < 3; round++)
      for (const id of ids) expect(cache.get(id, NOW)?.session?.id).toBe(`s-${id}`);
    cache.invalidate([ids[2] ?? '']);
    const fourth = sibling(4);
    fill(cache, fourth, record('s-fourth', [fourth])); // takes the freed slot
    expect(cache.get(ids[2] ?? '', NOW)).toBeUndefined();
    expect(cache.get(fourth, NOW)?.session?.id).toBe('s-fourth');
    for (const id of ids.slice(0, 2)) expect(cache.get(id, NOW)?.session?.id).toBe(`s-${id}`);
  });
});

describe('packed decision cache: against a plain LRU model', () => {
  it('agrees on what is cached, and in which order it is evicted, over random operations', () => {
    const max = 64;
    const cache = new DecisionCache({ max, maxStaleness: 1_000_000 });
    // The model: a Map in recency order (last = most recent), token -> session id or undefined.
    const model = new Map<string, string | undefined>();
    const touch = (k: string, v: string | undefined) => {
      model.delete(k);
      model.set(k, v);
      if (model.size > max) model.delete(model.keys().next().value ?? '');
    };
    let seed = 12345;
    const rand = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    const keys = Array.from({ length: 200 }, (_, i) => (i % 10 === 0 ? `odd-${i}` : tid(1000 + i)));
    for (let step = 0; step < 20_000; step++) {
      const k = keys[rand(keys.length)] ?? '';
      const op = rand(10);
      if (op < 4) {
        const sid = rand(3) === 0 ? undefined : `s${rand(40)}`;
        cache.set(k, cache.makeDecision(sid ? 'live' : 'unknown', sid ? record(sid, [k]) : undefined, NOW));
        touch(k, sid);
      } else if (op < 8) {
        const hit = cache.get(k, NOW);
        expect(hit?.session?.id).toBe(model.get(k));
        expect(hit === undefined).toBe(!model.has(k));
        if (model.has(k)) touch(k, model.get(k));
      } else {
        cache.invalidate([k]);
        model.delete(k);
      }
      if (step % 1000 === 0) {
        expect(cache.size).toBe(model.size);
        for (const [key, sid] of model) expect(cache.peek(key)?.session?.id).toBe(sid);
        const bySession = new Map<string, string[]>();
        for (const [key, sid] of model) if (sid) bySession.set(sid, [...(bySession.get(sid) ?? []), key]);
        for (let s = 0; s < 40; s++)
          expect([...cache.cachedTokensOf(`s${s}`)].sort()).toEqual((bySession.get(`s${s}`) ?? []).sort());
      }
    }
  });
});
