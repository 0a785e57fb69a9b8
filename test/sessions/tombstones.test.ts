/**
 * Dead stays dead: a superseded or expired token is still refused once its session record is dropped
 * (twice maxAge after the login), for `sessions.tombstoneRetention`; only after that is it "unknown"
 * (and `unknownTokens: pass` lets it in). Through real gateways on an injected clock: replica A signs
 * the user in, replica B has never seen the token, so B's answer is the store's.
 */
import { describe, expect, it } from 'vitest';
import { testClock } from '../support/gateway.js';
import { haveRedis } from '../support/redis.js';
import { needTool } from '../support/tools.js';
import { DAY, HOUR, ownRedis, replicasOn, status } from './replicas.js';

/** Two replicas on a real redis-server. */
const redisServer = needTool('redis-server', 'redis-server', haveRedis());

const SESSIONS = { maxAge: '1h', idleTimeout: '30m', tombstoneRetention: '2d' };

describe.skipIf(!redisServer)('tombstones of dead tokens', () => {
  it('refuses a superseded token after its record is dropped, within tombstoneRetention', async () => {
    const clock = testClock();
    const [a, b] = await replicasOn(await ownRedis(), clock, SESSIONS);
    const first = await a.loginJson('fay');
    await a.loginJson('fay');
    // Long past maxAge and the record's retention (the same again): the record is gone, the tombstone
    // (until expiresAt + 2d) is not.
    clock.advance(HOUR + 2 * DAY - 1);
    expect(await status(b, first.token)).toEqual({ status: 401, error: 'session_expired' });
  });

  it('refuses a token that expired unused after its record is dropped', async () => {
    const clock = testClock();
    const [a, b] = await replicasOn(await ownRedis(), clock, SESSIONS);
    const { token } = await a.loginJson('gus');
    clock.advance(2 * HOUR + 1);
    expect(await status(b, token)).toEqual({ status: 401, error: 'session_expired' });
  });

  it('forgets a dead token once tombstoneRetention after its session end is over', async () => {
    const clock = testClock();
    const [a, b] = await replicasOn(await ownRedis(), clock, SESSIONS);
    const first = await a.loginJson('hal');
    await a.loginJson('hal');
    // expiresAt (login + 1h) + 2d: unknown, and unknown tokens pass by default.
    clock.advance(HOUR + 2 * DAY);
    expect(await status(b, first.token)).toEqual({ status: 200 });
  });
});
