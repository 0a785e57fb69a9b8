import { describe, expect, it } from 'vitest';
import type { SessionRecord } from '../../src/model.js';
import { deviceClass } from '../../src/sessions/device.js';
import { decideLogin } from '../../src/sessions/policy.js';

const NOW = 1_000_000;
const session = (id: string, createdAt: number, lastSeenAt = NOW - 1000, userAgent = ''): SessionRecord => ({
  id,
  user: 'u',
  state: 'live',
  createdAt,
  lastSeenAt,
  expiresAt: NOW + 3_600_000,
  ip: '',
  userAgent,
  tokenIds: [`t-${id}`],
});
const config = { limit: 1, onLimit: 'replace-oldest' as const, idleTimeout: 60_000 };

describe('the limit policy', () => {
  it('admits a first login without ending anything', () => {
    expect(decideLogin([], { at: NOW }, config)).toEqual({ kind: 'admit', end: [] });
  });

  it('supersedes the oldest beyond the limit', () => {
    const d = decideLogin([session('b', 20), session('a', 10)], { at: NOW }, { ...config, limit: 2 });
    expect(d).toEqual({ kind: 'admit', end: [{ sessionId: 'a', state: 'superseded', reason: 'limit' }] });
  });

  it('refuses under reject-new at the limit', () => {
    expect(decideLogin([session('a', 10)], { at: NOW }, { ...config, onLimit: 'reject-new' })).toEqual({
      kind: 'refuse',
      live: 1,
      reason: 'limit',
    });
  });

  it('never refuses a re-login that replaces the presented session', () => {
    const d = decideLogin(
      [session('a', 10)],
      { at: NOW, replacesSessionId: 'a' },
      { ...config, onLimit: 'reject-new' },
    );
    expect(d).toEqual({ kind: 'admit', end: [{ sessionId: 'a', state: 'superseded', reason: 'replaced' }] });
  });

  it('does not count a session idle past the timeout, and ends it as expired', () => {
    const d = decideLogin(
      [session('a', 10, NOW - 120_000)],
      { at: NOW },
      { ...config, onLimit: 'reject-new' },
    );
    expect(d).toEqual({ kind: 'admit', end: [{ sessionId: 'a', state: 'expired', reason: 'expired' }] });
  });

  it('applies a lowered limit exactly', () => {
    const d = decideLogin([session('a', 10), session('b', 20), session('c', 30)], { at: NOW }, config);
    expect(d.kind === 'admit' && d.end.map((e) => e.sessionId)).toEqual(['a', 'b', 'c']);
  });
});

const DESKTOP =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36';
const PHONE =
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1';
const ANDROID =
  'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36';
const victims = (d: ReturnType<typeof decideLogin>) =>
  d.kind === 'admit' ? d.end.map((e) => `${e.sessionId}:${e.state}:${e.reason}`) : d;

describe('victim choice', () => {
  it('replace-least-recent supersedes the session used longest ago, not the oldest login', () => {
    const d = decideLogin(
      [session('old-busy', 10, NOW - 1_000), session('new-idle', 20, NOW - 30_000)],
      { at: NOW },
      { ...config, limit: 2, onLimit: 'replace-least-recent' },
    );
    expect(victims(d)).toEqual(['new-idle:superseded:limit']);
  });

  it('replace-oldest supersedes the oldest login whatever its activity', () => {
    const d = decideLogin(
      [session('old-busy', 10, NOW - 1_000), session('new-idle', 20, NOW - 30_000)],
      { at: NOW },
      { ...config, limit: 2 },
    );
    expect(victims(d)).toEqual(['old-busy:superseded:limit']);
  });

  it('breaks ties by session id, whatever order the store listed them in', () => {
    for (const onLimit of ['replace-oldest', 'replace-least-recent'] as const) {
      const tied = [session('m', 10, NOW - 5), session('c', 10, NOW - 5), session('x', 10, NOW - 5)];
      expect(victims(decideLogin(tied, { at: NOW }, { ...config, limit: 3, onLimit }))).toEqual([
        'c:superseded:limit',
      ]);
      expect(
        victims(decideLogin([...tied].reverse(), { at: NOW }, { ...config, limit: 3, onLimit })),
      ).toEqual(['c:superseded:limit']);
    }
  });

  it('never chooses the session the login itself creates', () => {
    const d = decideLogin(
      [session('new', 5), session('a', 10)],
      { at: NOW, sessionId: 'new' },
      { ...config, limit: 1 },
    );
    expect(victims(d)).toEqual(['a:superseded:limit']);
  });
});

describe('group limits and exemptions', () => {
  it('applies the group limit instead of the default and says so', () => {
    const live = [session('a', 10), session('b', 20)];
    expect(victims(decideLogin(live, { at: NOW, groupLimit: 3 }, config))).toEqual([]);
    expect(victims(decideLogin(live, { at: NOW, groupLimit: 2 }, config))).toEqual([
      'a:superseded:group-limit',
    ]);
    expect(decideLogin(live, { at: NOW, groupLimit: 2 }, { ...config, onLimit: 'reject-new' })).toEqual({
      kind: 'refuse',
      live: 2,
      reason: 'group-limit',
    });
  });

  it('never counts nor ends the sessions of an exempt user, except those past their time', () => {
    const live = [session('a', 10), session('b', 20), session('idle', 5, NOW - 120_000)];
    expect(
      victims(decideLogin(live, { at: NOW, exempt: true }, { ...config, onLimit: 'reject-new' })),
    ).toEqual(['idle:expired:expired']);
  });
});

describe('idle reclaim', () => {
  const reclaim = { ...config, onLimit: 'reject-new' as const, limit: 2, reclaimIdleAfter: 10_000 };

  it('ends a session idle past reclaimIdleAfter as expired when the new login needs its slot', () => {
    const live = [session('busy', 10, NOW - 1_000), session('idle', 20, NOW - 20_000)];
    expect(victims(decideLogin(live, { at: NOW }, reclaim))).toEqual(['idle:expired:idle-reclaimed']);
  });

  it('leaves an idle session alone while there is room', () => {
    const live = [session('idle', 20, NOW - 20_000)];
    expect(victims(decideLogin(live, { at: NOW }, reclaim))).toEqual([]);
  });

  it('still refuses under reject-new when no session is idle long enough', () => {
    const live = [session('a', 10, NOW - 9_000), session('b', 20, NOW - 1_000)];
    expect(decideLogin(live, { at: NOW }, reclaim)).toEqual({ kind: 'refuse', live: 2, reason: 'limit' });
  });

  it('reclaims the most idle first, then replaces under replace-oldest', () => {
    const live = [
      session('a', 10, NOW - 1_000),
      session('b', 20, NOW - 15_000),
      session('c', 30, NOW - 25_000),
    ];
    const d = decideLogin(live, { at: NOW }, { ...reclaim, onLimit: 'replace-oldest', limit: 1 });
    expect(victims(d)).toEqual([
      'c:expired:idle-reclaimed',
      'b:expired:idle-reclaimed',
      'a:superseded:limit',
    ]);
  });
});

describe('device classes', () => {
  const devices = { ...config, limit: 2, devices: { desktop: 1, mobile: 1 } };

  it('a second phone replaces the first phone, never the desktop', () => {
    // The desktop is the oldest: the user's limit alone would have chosen it.
    const live = [session('desk', 5, NOW - 1_000, DESKTOP), session('phone', 10, NOW - 1_000, PHONE)];
    const d = decideLogin(live, { at: NOW, device: 'mobile' }, devices);
    expect(victims(d)).toEqual(['phone:superseded:device-limit']);
  });

  it('refuses a second phone under reject-new and says it was the device limit', () => {
    const live = [session('phone', 10, NOW - 1_000, ANDROID)];
    expect(decideLogin(live, { at: NOW, device: 'mobile' }, { ...devices, onLimit: 'reject-new' })).toEqual({
      kind: 'refuse',
      live: 1,
      reason: 'device-limit',
    });
  });

  it('admits a phone beside a desktop within the user limit', () => {
    const live = [session('desk', 5, NOW - 1_000, DESKTOP)];
    expect(victims(decideLogin(live, { at: NOW, device: 'mobile' }, devices))).toEqual([]);
  });

  it('applies the user limit after the class limit', () => {
    const live = [session('desk', 5, NOW - 1_000, DESKTOP), session('tab', 8, NOW - 1_000, 'curl/8')];
    const d = decideLogin(live, { at: NOW, device: 'mobile' }, devices);
    expect(victims(d)).toEqual(['desk:superseded:limit']);
  });

  it('classifies user agents', () => {
    expect([DESKTOP, PHONE, ANDROID, 'curl/8.0', ''].map(deviceClass)).toEqual([
      'desktop',
      'mobile',
      'mobile',
      'other',
      'other',
    ]);
  });

  describe('onLimit: warn', () => {
    const warn = { ...config, onLimit: 'warn' as const };

    it('admits a login past the limit, ends nothing, and names every other live session to warn', () => {
      const d = decideLogin(
        [session('b', 20), session('a', 10)],
        { at: NOW, sessionId: 'new' },
        { ...warn, limit: 2 },
      );
      expect(d).toEqual({ kind: 'admit', end: [], warn: { sessionIds: ['b', 'a'], reason: 'limit' } });
    });

    it('warns nobody while the login is within the limit', () => {
      expect(decideLogin([session('a', 10)], { at: NOW }, { ...warn, limit: 2 })).toEqual({
        kind: 'admit',
        end: [],
      });
    });

    it('still ends expired sessions, and reclaims idle ones before warning anyone', () => {
      const live = [session('old', 1, NOW - 60_000), session('idle', 2, NOW - 30_000), session('a', 3)];
      const d = decideLogin(live, { at: NOW }, { ...warn, limit: 2, reclaimIdleAfter: 20_000 });
      expect(d).toEqual({
        kind: 'admit',
        end: [
          { sessionId: 'old', state: 'expired', reason: 'expired' },
          { sessionId: 'idle', state: 'expired', reason: 'idle-reclaimed' },
        ],
      });
    });

    it('warns for a group limit and a device limit, naming the first limit passed', () => {
      expect(decideLogin([session('a', 10)], { at: NOW, groupLimit: 1 }, { ...warn, limit: 5 })).toEqual({
        kind: 'admit',
        end: [],
        warn: { sessionIds: ['a'], reason: 'group-limit' },
      });
      const devices = { ...warn, limit: 5, devices: { mobile: 1 } };
      const live = [session('phone', 10, NOW - 1000, PHONE), session('desk', 11, NOW - 1000, DESKTOP)];
      expect(decideLogin(live, { at: NOW, device: 'mobile' }, devices)).toEqual({
        kind: 'admit',
        end: [],
        warn: { sessionIds: ['phone', 'desk'], reason: 'device-limit' },
      });
    });

    it('warns no session of an exempt user, and never the one a re-login replaces', () => {
      expect(decideLogin([session('a', 10)], { at: NOW, exempt: true }, warn)).toEqual({
        kind: 'admit',
        end: [],
      });
      const d = decideLogin([session('a', 10), session('b', 20)], { at: NOW, replacesSessionId: 'b' }, warn);
      expect(d).toEqual({
        kind: 'admit',
        end: [{ sessionId: 'b', state: 'superseded', reason: 'replaced' }],
        warn: { sessionIds: ['a'], reason: 'limit' },
      });
    });
  });
});
