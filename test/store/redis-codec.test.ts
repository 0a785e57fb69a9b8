/** The Redis store's record codec: pure, so tested without a server. */
import { describe, expect, it } from 'vitest';
import type { SessionRecord } from '../../src/model.js';
import { createTokenIdOf } from '../../src/tokens/token-id.js';
import {
  agentRef,
  agentRefOf,
  decodeMessage,
  decodeSession,
  decodeStatus,
  decodeIndexValue,
  decodeTokens,
  encodeAnonymous,
  encodeEnd,
  encodeSession,
  encodeStatus,
  encodeTokenRef,
  encodeTokens,
  encodeTombstone,
  encodeWarning,
  INDEX_BUCKETS,
  indexSlot,
  joinJson,
  MAX_CHUNK,
  sessionKey,
  splitJson,
  type EncodedSession,
  type StoredSession,
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

/** The fields an encoded session is stored as, read back with this state, end and warning. */
function stored(
  s: EncodedSession,
  state: string | null,
  end = '',
  warning?: string,
  base: string | null = s.base,
): StoredSession {
  return {
    sid: s.sid,
    user: s.user,
    base,
    state,
    lastSeenAt: s.lastSeenAt,
    expiresAt: Number(s.expiresAt),
    end,
    tokens: s.tokens,
    warning,
  };
}

/** The User-Agent texts an encoded session refers to, as the store reads them from their keys. */
function agentsOf(s: EncodedSession): Map<string, string> {
  return new Map(s.agent ? [[s.agent.ref, s.agent.text]] : []);
}

describe('Redis record codec', () => {
  it('round-trips a session through its stored fields', () => {
    const s = encodeSession(record);
    expect(decodeSession(stored(s, s.state, ''), agentsOf(s))).toEqual(record);
  });

  it('adds endedAt and endedBy from the end field', () => {
    const s = encodeSession(record);
    const endedBy = { sessionId: 'newer', ip: '198.51.100.1' };
    const end = encodeEnd(1_700_000_100_000, endedBy);
    expect(decodeSession(stored(s, 'superseded', end), agentsOf(s))).toEqual({
      ...record,
      state: 'superseded',
      endedAt: 1_700_000_100_000,
      endedBy,
    });
  });

  it('decodes nothing from a missing session id or an unknown state', () => {
    const s = encodeSession(record);
    expect(decodeSession({ ...stored(s, 'live'), sid: null })).toBeUndefined();
    expect(decodeSession(stored(s, 'zombie', ''))).toBeUndefined();
  });

  it('keeps token ids one per line whatever they contain, and an empty list empty', () => {
    const lines = encodeTokens(record.tokenIds);
    expect(lines.split('\n')).toHaveLength(3);
    expect(decodeTokens(lines)).toEqual(record.tokenIds);
    expect(decodeTokens(encodeTokens([]))).toEqual([]);
  });

  it('round-trips a token reference in 43 bytes, within a listpack value', () => {
    const tag = userTag('alice');
    const key = sessionKey(record.id);
    const value = encodeTokenRef(tag, key, 1_700_003_600_000);
    expect(value.length).toBe(43);
    expect(decodeIndexValue(value)).toEqual({ tag, key, expiresAt: 1_700_003_600_000 });
  });

  it('shortens a tombstone to 12 bytes, read as dead from its expiresAt', () => {
    const value = encodeTombstone(1_700_003_600_000);
    expect(value.length).toBe(12);
    expect(decodeIndexValue(value)).toEqual({ tombstoneFrom: 1_700_003_600_000 });
  });

  it("shapes a tombstone as a session's reference, so a reader that predates it finds no record", () => {
    const [tag, key, end] = encodeTombstone(1_700_003_600_000).split('\n');
    expect(end).toBe((1_700_003_600_000).toString(36));
    // Never a real user's tag (22 characters) or session key (11).
    expect([tag?.length, key?.length]).toEqual([1, 1]);
    expect([userTag('-').length, sessionKey('-').length]).toEqual([22, 11]);
  });

  it('round-trips an anonymous entry and its end', () => {
    expect(decodeIndexValue(encodeAnonymous(1_700_003_600_000.5))).toEqual({
      anonymousUntil: 1_700_003_600_001,
    });
  });

  it('reads no entry from a value that is none', () => {
    expect(decodeIndexValue('no-newline')).toBeUndefined();
    expect(decodeIndexValue(`${userTag('alice')}\n${sessionKey(record.id)}`)).toBeUndefined();
    expect(decodeIndexValue(`${userTag('alice')}\n${sessionKey(record.id)}\n!`)).toBeUndefined();
  });

  it('places a token id by its first 16 bits, under 20 of its characters', () => {
    const id = 'AB_' + 'x'.repeat(40);
    // A, B: 0 and 1 of base64url; _ is 63, whose top four bits are 15.
    expect(indexSlot(id)).toEqual({
      bucket: 'ABf',
      field: '_' + 'x'.repeat(19),
      n: (0 << 10) | (1 << 4) | 15,
    });
    expect(indexSlot('__' + '_'.repeat(41)).n).toBe(INDEX_BUCKETS - 1);
  });

  it('places any other string by its hash, in fields no canonical id has', () => {
    const odd = indexSlot('t-alice-1');
    expect(odd.field).toMatch(/^\.[A-Za-z0-9_-]{43}$/);
    expect(odd.bucket).toBe(
      odd.field.slice(1, 3) +
        (
          'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'.indexOf(odd.field.charAt(3)) >> 2
        ).toString(16),
    );
    expect(indexSlot('t-alice-2').field).not.toBe(odd.field);
    // Lone surrogates are hashed as UTF-16, so two of them never meet as one replacement character.
    expect(indexSlot('\ud800').field).not.toBe(indexSlot('\udc00').field);
  });

  it('spreads canonical token ids over the buckets as uniformly random ones would', () => {
    const hit = new Uint8Array(INDEX_BUCKETS);
    const tokenIdOf = createTokenIdOf('spread');
    for (let i = 0; i < INDEX_BUCKETS; i++) hit[indexSlot(tokenIdOf(String(i))).n] = 1;
    // As many ids as buckets, uniformly: 1 - 1/e of the buckets get one (63.2 %, give or take 0.4).
    const share = hit.reduce((n, x) => n + x, 0) / INDEX_BUCKETS;
    expect(share).toBeGreaterThan(0.62);
    expect(share).toBeLessThan(0.645);
  });

  it('gives sessions distinct 11-character base64url keys, whatever their ids', () => {
    const keys = ['s1', 's2', record.id, '\ud800', 'x'.repeat(1000)].map(sessionKey);
    expect(new Set(keys).size).toBe(5);
    for (const k of keys) expect(k).toMatch(/^[A-Za-z0-9_-]{11}$/);
  });

  it('splits JSON into lines of at most 64 bytes of valid UTF-8, and joins it back', () => {
    const json = JSON.stringify({ userAgent: `Mozilla/5.0 ${'é€😀'.repeat(40)} \ud800 end` });
    const lines = splitJson(json).split('\n');
    expect(lines.length).toBeGreaterThan(5);
    for (const line of lines) {
      const bytes = Buffer.from(line, 'utf8');
      expect(bytes.length).toBeLessThanOrEqual(MAX_CHUNK);
      // Cut between code points only: each line survives a UTF-8 round trip on its own.
      expect(bytes.toString('utf8')).toBe(line);
    }
    expect(joinJson(splitJson(json))).toBe(json);
    expect(splitJson('')).toBe('');
  });

  it('round-trips a session with a long location, its base in lines of at most 64 bytes', () => {
    const long = { ...record, location: `Berlin, ${'é'.repeat(200)}` };
    const s = encodeSession(long);
    for (const line of s.base.split('\n')) expect(Buffer.byteLength(line)).toBeLessThanOrEqual(MAX_CHUNK);
    expect(decodeSession(stored(s, 'live'), agentsOf(s))).toEqual(long);
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

  it('stores a User-Agent as a reference to its text, the same for every session that has it', () => {
    const s = encodeSession(record);
    expect(s.agent).toEqual({ ref: agentRef('Mozilla/5.0'), text: 'Mozilla/5.0' });
    expect(s.agent?.ref).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(s.base).not.toContain('Mozilla');
    expect(agentRefOf(s.base)).toBe(s.agent?.ref);
    expect(encodeSession({ ...record, id: 'other' }).agent?.ref).toBe(s.agent?.ref);
    expect(agentRef('Mozilla/5.1')).not.toBe(s.agent?.ref);
  });

  it('stores the fixed fields under one-letter names, and reads them back by their own', () => {
    const s = encodeSession({ ...record, tenant: 'acme', geo: { country: 'DE' }, newDevice: true });
    expect(joinJson(s.base)).toBe(
      `"c":1700000000000,"i":"203.0.113.7","p":1,"t":"acme","g":{"country":"DE"},"d":true,"a":"${agentRef('Mozilla/5.0')}"`,
    );
    expect(decodeSession(stored(s, 'live'), agentsOf(s))).toEqual({
      ...record,
      tenant: 'acme',
      geo: { country: 'DE' },
      newDevice: true,
    });
  });

  it('keeps an empty User-Agent inline, with no reference', () => {
    const s = encodeSession({ ...record, userAgent: '' });
    expect(s.agent).toBeUndefined();
    expect(agentRefOf(s.base)).toBeUndefined();
    expect(decodeSession(stored(s, 'live'))?.userAgent).toBe('');
  });

  it('reads a User-Agent whose text it was not given as empty (an unknown device)', () => {
    const s = encodeSession(record);
    expect(decodeSession(stored(s, 'live'))).toEqual({ ...record, userAgent: '' });
  });

  it('ignores an end field while the session is live (left by an earlier session of the id)', () => {
    const s = encodeSession(record);
    expect(decodeSession(stored(s, 'live', encodeEnd(5, undefined)), agentsOf(s))).toEqual(record);
  });
});

describe('Redis invalidation message codec', () => {
  it('drops the User-Agent reference of an ended session: a cached decision keeps none', () => {
    // As COMMIT splices it: id, user and expiresAt by their names, then the stored base.
    const b = { id: 's1', user: 'u', expiresAt: 9, c: 1, i: '', a: agentRef('Mozilla/5.0') };
    const message = JSON.stringify({
      tokenIds: ['t1'],
      ended: [{ b, s: 'superseded', e: {}, l: 3, t: ['t1'] }],
    });
    const [ended] = decodeMessage(message).invalidation?.ended ?? [];
    expect(ended).toEqual({
      id: 's1',
      user: 'u',
      createdAt: 1,
      expiresAt: 9,
      ip: '',
      userAgent: '',
      state: 'superseded',
      lastSeenAt: 3,
      tokenIds: ['t1'],
    });
  });

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
    expect(decodeSession(stored(s, 'live', '', w))?.warning).toEqual(warning);
    expect(decodeSession(stored(s, 'live', '', encodeWarning(null)))?.warning).toBeUndefined();
    expect(decodeSession(stored(s, 'live', '', '{"at":"x"}'))?.warning).toBeUndefined();
    expect(decodeSession(stored(s, 'live', '', 'not json'))?.warning).toBeUndefined();
    expect(decodeSession(stored(s, 'superseded', '{}', w))?.warning).toBeUndefined();
  });
});
