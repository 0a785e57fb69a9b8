/** The "not me" link, pure: issued on the configured origin, read back, expiring, forgeries refused. */
import { describe, expect, it } from 'vitest';
import { createNotMeLinks } from '../../src/notify/not-me-link.js';
import type { SessionEvent } from '../../src/sessions/events.js';
import { testClock } from '../support/gateway.js';

const SECRET = 'not-me-link-secret-0123456789';

function links(clock = testClock(), secret = SECRET) {
  return createNotMeLinks({
    secret,
    baseUrl: 'https://app.example.test',
    prefix: '/.sessiongate/',
    ttl: 60_000,
    now: clock.now,
  });
}

const tokenOf = (url: string): string => url.slice('https://app.example.test/.sessiongate/not-me/'.length);

describe('not-me links', () => {
  it('are issued on the configured origin and read back with their user, session and expiry', () => {
    const clock = testClock();
    const l = links(clock);
    const link = l.issue('alice', 's-1');
    expect(link.url).toMatch(/^https:\/\/app\.example\.test\/\.sessiongate\/not-me\/v1\.[\w-]+\.[\w-]{43}$/);
    expect(link.expiresAt).toBe(clock.now() + 60_000);
    const read = l.read(tokenOf(link.url));
    expect(read).toMatchObject({ kind: 'valid', user: 'alice', sessionId: 's-1', expiresAt: link.expiresAt });
    // Another replica with the same secret reads it too.
    expect(links(clock).read(tokenOf(link.url)).kind).toBe('valid');
  });

  it('expire at their expiresAt, by the injected clock', () => {
    const clock = testClock();
    const l = links(clock);
    const token = tokenOf(l.issue('alice', 's-1').url);
    clock.advance(59_999);
    expect(l.read(token).kind).toBe('valid');
    clock.advance(1);
    expect(l.read(token).kind).toBe('expired');
  });

  it('refuse anything but what they signed: other secret, changed payload, truncated, odd, huge', () => {
    const l = links();
    const token = tokenOf(l.issue('alice', 's-1').url);
    const [v, payload, mac] = token.split('.') as [string, string, string];
    const bob = Buffer.from(JSON.stringify(['bob', 's-1', 9e15])).toString('base64url');
    for (const forged of [
      tokenOf(links(testClock(), 'another-secret-0123456789abc').issue('alice', 's-1').url),
      `${v}.${bob}.${mac}`,
      `${v}.${payload}.${mac.slice(0, 20)}`,
      `${v}.${payload}`,
      `v2.${payload}.${mac}`,
      `${token}.x`,
      '',
      'x'.repeat(10_000),
    ])
      expect(l.read(forged)).toEqual({ kind: 'forged' });
  });

  it("are given for new-login events only, naming the new login's session", () => {
    const l = links();
    const at = Date.now();
    const of = (e: Partial<SessionEvent> & Pick<SessionEvent, 'type'>) => {
      const link = l.forEvent({ at, user: 'alice', ...e });
      return link && l.read(tokenOf(link.url));
    };
    expect(of({ type: 'session.created', sessionId: 'new' })).toMatchObject({ sessionId: 'new' });
    expect(of({ type: 'session.new_device', sessionId: 'new' })).toMatchObject({ sessionId: 'new' });
    expect(of({ type: 'session.superseded', sessionId: 'old', by: { sessionId: 'new' } })).toMatchObject({
      sessionId: 'new',
    });
    expect(of({ type: 'session.ended', sessionId: 'old' })).toBeUndefined();
    expect(of({ type: 'session.not_me', sessionId: 'new' })).toBeUndefined();
  });
});
