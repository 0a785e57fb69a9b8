import { describe, expect, it } from 'vitest';
import type { TokenState } from '../../src/sessions/service.js';
import {
  isDead,
  passedOutcome,
  rejectedOutcome,
  verdictOf,
  type VerdictPolicy,
} from '../../src/proxy/verdict.js';

const strict: VerdictPolicy = { failMode: 'closed', unknownTokens: 'reject' };
const lenient: VerdictPolicy = { failMode: 'open', unknownTokens: 'pass' };

describe('the verdict on a checked token', () => {
  it('passes a live session on every route', () => {
    for (const route of ['passthrough', 'login', 'refresh', 'logout'] as const)
      expect(verdictOf('live', route, strict)).toBe('pass');
  });

  it('rejects a superseded session on an ordinary route with its code', () => {
    expect(verdictOf('superseded', 'passthrough', lenient)).toBe('session_superseded');
  });

  it('names each dead state by its own code', () => {
    expect(verdictOf('expired', 'passthrough', strict)).toBe('session_expired');
    expect(verdictOf('logged_out', 'passthrough', strict)).toBe('session_logged_out');
    expect(verdictOf('ended_by_user', 'passthrough', strict)).toBe('session_ended');
    expect(verdictOf('ended_by_admin', 'passthrough', strict)).toBe('session_ended');
  });

  it('lets a dead token through on login and logout routes (a superseded browser signs in again)', () => {
    expect(verdictOf('superseded', 'login', strict)).toBe('pass');
    expect(verdictOf('expired', 'logout', strict)).toBe('pass');
  });

  it('never lets a dead token refresh its session', () => {
    expect(verdictOf('superseded', 'refresh', lenient)).toBe('session_superseded');
  });

  it('rejects an unknown token only under unknownTokens: reject, and never on a login', () => {
    expect(verdictOf('unknown', 'passthrough', strict)).toBe('session_unknown');
    expect(verdictOf('unknown', 'passthrough', lenient)).toBe('pass');
    expect(verdictOf('unknown', 'login', strict)).toBe('pass');
    expect(verdictOf('unknown', 'refresh', strict)).toBe('session_unknown');
  });

  it('passes an anonymous token (a cookie the app issued before any login)', () => {
    expect(verdictOf('anonymous', 'passthrough', strict)).toBe('pass');
  });

  it('follows failMode when the store cannot answer, on every route', () => {
    expect(verdictOf('unavailable', 'passthrough', strict)).toBe('session_store_unavailable');
    expect(verdictOf('unavailable', 'login', strict)).toBe('session_store_unavailable');
    expect(verdictOf('unavailable', 'passthrough', lenient)).toBe('pass');
  });
});

describe('what a verdict is counted as', () => {
  it('counts a pass by the state it passed in', () => {
    expect(passedOutcome('live')).toBe('passed_live');
    expect(passedOutcome('unavailable')).toBe('passed_store_unavailable');
    expect(passedOutcome('anonymous')).toBe('passed_anonymous');
    expect(passedOutcome('unknown')).toBe('passed_unknown');
  });

  it('counts a rejection by its code', () => {
    expect(rejectedOutcome('session_superseded')).toBe('rejected_superseded');
    expect(rejectedOutcome('session_unknown')).toBe('rejected_unknown');
    expect(rejectedOutcome('session_store_unavailable')).toBe('rejected_store_unavailable');
  });

  it('calls only ended sessions dead', () => {
    const notDead: TokenState[] = ['live', 'unknown', 'anonymous', 'unavailable'];
    expect(notDead.map(isDead)).toEqual([false, false, false, false]);
    expect(isDead('superseded')).toBe(true);
    expect(isDead(undefined)).toBe(false);
  });
});
