import { describe, expect, it } from 'vitest';
import type { SessionRecord } from '../../src/model.js';
import { decideLogin } from '../../src/sessions/policy.js';

const NOW = 1_000_000;
const session = (id: string, createdAt: number, userAgent = ''): SessionRecord => ({
  id,
  user: 'u',
  state: 'live',
  createdAt,
  lastSeenAt: NOW - 1000,
  expiresAt: NOW + 3_600_000,
  ip: '',
  userAgent,
  tokenIds: [`t-${id}`],
});
const ask = { limit: 1, onLimit: 'ask' as const, idleTimeout: 60_000 };
const PHONE = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) Mobile/15E148';

describe('the limit policy under onLimit: ask', () => {
  it('refuses like reject-new until the user has chosen', () => {
    expect(decideLogin([session('a', 10)], { at: NOW }, ask)).toEqual({
      kind: 'refuse',
      live: 1,
      reason: 'limit',
    });
  });

  it('supersedes the chosen session, not the oldest, with reason chosen-by-user', () => {
    const d = decideLogin(
      [session('old', 10), session('new', 20)],
      { at: NOW, chosenSessionId: 'new' },
      { ...ask, limit: 2 },
    );
    expect(d).toEqual({
      kind: 'admit',
      end: [{ sessionId: 'new', state: 'superseded', reason: 'chosen-by-user' }],
    });
  });

  it('frees nothing for an id that is not among the live sessions, and refuses', () => {
    expect(decideLogin([session('a', 10)], { at: NOW, chosenSessionId: 'someone-else' }, ask)).toEqual({
      kind: 'refuse',
      live: 1,
      reason: 'limit',
    });
  });

  it('still refuses when ending the chosen session does not make room (a device class of its own)', () => {
    const d = decideLogin(
      [session('desk', 10), session('phone', 20, PHONE)],
      { at: NOW, chosenSessionId: 'desk', device: 'mobile' },
      { ...ask, limit: 3, devices: { mobile: 1 } },
    );
    expect(d).toEqual({ kind: 'refuse', live: 1, reason: 'device-limit' });
  });

  it('never ends the session the login creates, whatever was chosen', () => {
    const d = decideLogin([session('me', 10)], { at: NOW, sessionId: 'me', chosenSessionId: 'me' }, ask);
    expect(d).toEqual({ kind: 'admit', end: [] });
  });
});
