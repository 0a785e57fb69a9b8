import { describe, expect, it } from 'vitest';
import type { SessionRecord } from '../../src/model.js';
import { decideLogin } from '../../src/sessions/policy.js';

const NOW = 1_000_000;
const session = (id: string, createdAt: number, lastSeenAt = NOW - 1000): SessionRecord => ({
  id,
  user: 'u',
  state: 'live',
  createdAt,
  lastSeenAt,
  expiresAt: NOW + 3_600_000,
  ip: '',
  userAgent: '',
  tokenIds: [`t-${id}`],
});
const config = { limit: 1, onLimit: 'replace-oldest' as const, idleTimeout: 60_000 };

describe('the limit policy', () => {
  it('admits a first login without ending anything', () => {
    expect(decideLogin([], { at: NOW }, config)).toEqual({ kind: 'admit', end: [] });
  });

  it('supersedes the oldest beyond the limit', () => {
    const d = decideLogin([session('b', 20), session('a', 10)], { at: NOW }, { ...config, limit: 2 });
    expect(d).toEqual({ kind: 'admit', end: [{ sessionId: 'a', state: 'superseded' }] });
  });

  it('refuses under reject-new at the limit', () => {
    expect(decideLogin([session('a', 10)], { at: NOW }, { ...config, onLimit: 'reject-new' })).toEqual({
      kind: 'refuse',
      live: 1,
    });
  });

  it('never refuses a re-login that replaces the presented session', () => {
    const d = decideLogin(
      [session('a', 10)],
      { at: NOW, replacesSessionId: 'a' },
      { ...config, onLimit: 'reject-new' },
    );
    expect(d).toEqual({ kind: 'admit', end: [{ sessionId: 'a', state: 'superseded' }] });
  });

  it('does not count a session idle past the timeout, and ends it as expired', () => {
    const d = decideLogin(
      [session('a', 10, NOW - 120_000)],
      { at: NOW },
      { ...config, onLimit: 'reject-new' },
    );
    expect(d).toEqual({ kind: 'admit', end: [{ sessionId: 'a', state: 'expired' }] });
  });

  it('applies a lowered limit exactly', () => {
    const d = decideLogin([session('a', 10), session('b', 20), session('c', 30)], { at: NOW }, config);
    expect(d.kind === 'admit' && d.end.map((e) => e.sessionId)).toEqual(['a', 'b', 'c']);
  });
});
