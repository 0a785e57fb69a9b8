/** The Redis store's record codec: pure, so tested without a server. */
import { describe, expect, it } from 'vitest';
import type { SessionRecord } from '../../src/model.js';
import {
  decodeMessage,
  decodeSession,
  decodeStatus,
  decodeTokenRef,
  decodeTokens,
  encodeEnd,
  encodeSession,
  encodeStatus,
  encodeTokenRef,
  encodeTokens,
  encodeWarning,
  userTag,
} from '../../src/store/redis-codec.js';

const record: SessionRecord = {
  id: 'sid "1"\nwith|bar',
  user: 'alice',
  state: 'live',
  createdAt: 1_700_000_000_000,
  lastSeenAt: 1_700_000_000_500,
  expiresAt: 1_700_003_600_000,
  ip: '203.0.113.7',
  userAgent: 'Mozilla/5.0',
  tokenIds: ['t1', 'line\nbreak', '\ud800 lone'],
  pinned: 1,
};

describe('Redis record codec', () => {
  it('round-trips a session through its stored fields', () => {
    const s = encodeSession(record);
    expect(decodeSession(s.base, s.state, s.lastSeenAt, '', s.tokens)).toEqual(record);
  });

  it('adds endedAt and endedBy from the end field', () => {
    const s = encodeSession(record);
    const endedBy = { sessionId: 'newer', ip: '198.51.100.1' };
    const end = encodeEnd(1_700_000_100_000, endedBy);
    expect(decodeSession(s.base, 'superseded', s.lastSeenAt, end, s.tokens)).toEqual({
      ...record,
      state: 'superseded',
      endedAt: 1_700_000_100_000,
      endedBy,
    });
  });

  it('decodes nothing from a missing base or an unknown state', () => {
    const s = encodeSession(record);
    expect(decodeSession(null, 'live', s.lastSeenAt, '', s.tokens)).toBeUndefined();
    expect(decodeSession(s.base, 'zombie', s.lastSeenAt, '', s.tokens)).toBeUndefined();
  });

  it('keeps token ids one per line whatever they contain, and an empty list empty', () => {
    const lines = encodeTokens(record.tokenIds);
    expect(lines.split('\n')).toHaveLength(3);
    expect(decodeTokens(lines)).toEqual(record.tokenIds);
    expect(decodeTokens(encodeTokens([]))).toEqual([]);
  });

  it('round-trips a token reference, and reads one written before tombstones without an expiry', () => {
    const value = encodeTokenRef('ab12', '"sid"', 1_700_003_600_000);
    expect(decodeTokenRef(value)).toEqual({ tag: 'ab12', sid: '"sid"', expiresAt: 1_700_003_600_000 });
    expect(decodeTokenRef('ab12\n"sid"')).toEqual({ tag: 'ab12', sid: '"sid"', expiresAt: undefined });
    expect(decodeTokenRef('no-newline')).toBeUndefined();
  });

  it('gives users distinct 22-character base64url tags (128 bits), lone surrogates included', () => {
    const tags = ['a', 'b', '\ud800', '\udc00', '}{\n'].map(userTag);
    expect(new Set(tags).size).toBe(5);
    for (const t of tags) expect(t).toMatch(/^[A-Za-z0-9_-]{22}$/);
  });

  it('reads a status field, and nothing from a malformed one', () => {
    expect(decodeStatus(encodeStatus('live', 1_700_000_000_500, 1_700_003_600_000))).toEqual({
      state: 'live',
      lastSeenAt: '1700000000500',
      expiresAt: 1_700_003_600_000,
    });
    expect(decodeStatus('live 1')).toBeUndefined();
    expect(decodeStatus(null)).toBeUndefined();
  });

  it('ignores an end field while the session is live (left by an earlier session of the id)', () => {
    const s = encodeSession(record);
    expect(decodeSession(s.base, 'live', s.lastSeenAt, encodeEnd(5, undefined), s.tokens)).toEqual(record);
  });
});

describe('Redis invalidation message codec', () => {
  it('reads token ids, the publication stamp and the ended sessions', () => {
    const base = { id: 's1', user: 'u', createdAt: 1, expiresAt: 9, ip: '', userAgent: '' };
    const message = JSON.stringify({
      tokenIds: ['t1'],
      at: 12.5,
      ended: [{ b: base, s: 'superseded', e: { endedAt: 5 }, l: 3, t: ['t1'] }],
    });
    expect(decodeMessage(message)).toEqual({
      invalidation: {
        tokenIds: ['t1'],
        ended: [{ ...base, state: 'superseded', endedAt: 5, lastSeenAt: 3, tokenIds: ['t1'] }],
      },
      at: 12.5,
    });
  });

  it('applies a message with malformed ended sessions as a plain invalidation, saying so', () => {
    const decoded = decodeMessage(JSON.stringify({ tokenIds: ['t1'], ended: [{ s: 'live' }] }));
    expect(decoded).toEqual({
      invalidation: { tokenIds: ['t1'] },
      at: undefined,
      problem: 'malformed ended sessions in an invalidation message',
    });
  });

  it('refuses a message that is not JSON or lacks token ids', () => {
    expect(decodeMessage('{').invalidation).toBeUndefined();
    expect(decodeMessage('{').problem).toBeTruthy();
    expect(decodeMessage(JSON.stringify({ tokenIds: [1] }))).toEqual({
      problem: 'malformed invalidation message',
    });
  });

  it('reads the live sessions a message says changed (onLimit: warn), and drops a malformed list with a problem', () => {
    const changed = decodeMessage('{"tokenIds":[],"at":1,"changed":[{"id":"s1","t":["a","b"]}]}');
    expect(changed).toEqual({
      invalidation: { tokenIds: [], changed: [{ sessionId: 's1', tokenIds: ['a', 'b'] }] },
      at: 1,
    });
    const bad = decodeMessage('{"tokenIds":["x"],"changed":[{"id":1}]}');
    expect(bad.invalidation).toEqual({ tokenIds: ['x'] });
    expect(bad.problem).toMatch(/changed sessions/);
  });

  it('reads a warning field back, and none from an empty, malformed or ended one', () => {
    const warning = { sessionId: 'n', at: 5, device: 'Chrome on Windows', place: 'DE' };
    const s = encodeSession(record);
    const w = encodeWarning(warning);
    expect(decodeSession(s.base, 'live', s.lastSeenAt, '', s.tokens, w)?.warning).toEqual(warning);
    expect(
      decodeSession(s.base, 'live', s.lastSeenAt, '', s.tokens, encodeWarning(null))?.warning,
    ).toBeUndefined();
    expect(decodeSession(s.base, 'live', s.lastSeenAt, '', s.tokens, '{"at":"x"}')?.warning).toBeUndefined();
    expect(decodeSession(s.base, 'live', s.lastSeenAt, '', s.tokens, 'not json')?.warning).toBeUndefined();
    expect(decodeSession(s.base, 'superseded', s.lastSeenAt, '{}', s.tokens, w)?.warning).toBeUndefined();
  });
});
