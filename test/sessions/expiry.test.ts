/**
 * Absolute and idle expiry through a real gateway, on an injected clock: the `session.expired` event,
 * the store reads a dead token costs, and idle expiry that never fires before `idleTimeout` of real
 * inactivity (activity this replica has not written yet, or another replica has not written yet).
 */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { startGateway, testClock } from '../support/gateway.js';
import { waitUntil } from '../support/wait.js';
import { haveRedis } from '../support/redis.js';
import { needTool } from '../support/tools.js';
import { commandCalls, MIN, ownRedis, replicasOn, status } from './replicas.js';
import { JSON_LOGIN_RULE } from '../support/login-rules.js';

/** The tests on two replicas start a redis-server; the others run anywhere. */
const onRedis = it.skipIf(!needTool('redis-server', 'redis-server', haveRedis()));

describe('absolute expiry (maxAge)', () => {
  it('records session.expired once, however many requests come after maxAge', async () => {
    const clock = testClock();
    const gw = await startGateway({ sessions: { maxAge: '1h', idleTimeout: '30m' } }, { now: clock.now });
    const { token } = await gw.loginJson('ana');
    for (let i = 0; i < 2; i++) {
      clock.advance(20 * MIN);
      expect(await status(gw, token)).toEqual({ status: 200 });
    }
    clock.advance(21 * MIN);
    expect(await status(gw, token)).toEqual({ status: 401, error: 'session_expired' });
    await waitUntil('the session.expired audit line', () =>
      gw.logs.audit('session.expired').length > 0 ? true : undefined,
    );
    for (let i = 0; i < 3; i++) {
      clock.advance(MIN);
      expect(await status(gw, token)).toEqual({ status: 401, error: 'session_expired' });
    }
    // A later audit line: anything the requests above set off has been written by now.
    await gw.loginJson('other-user');
    expect(gw.logs.audit('session.created')).toHaveLength(2);
    const expired = gw.logs.audit('session.expired');
    expect(expired).toHaveLength(1);
    expect(expired[0]).toMatchObject({ user: 'ana', reason: 'expired' });
  });

  onRedis('refuses a token past maxAge from the expiresAt it cached, with no store read', async () => {
    const redis = await ownRedis();
    const clock = testClock();
    const [gw] = await replicasOn(redis, clock, { maxAge: '1h', idleTimeout: '2h', activityInterval: '1m' });
    const { token } = await gw.loginJson('bo');
    clock.advance(61 * MIN);
    const before = await commandCalls(redis, 'hget');
    for (let i = 0; i < 5; i++) {
      expect(await status(gw, token)).toEqual({ status: 401, error: 'session_expired' });
      clock.advance(10 * MIN);
    }
    expect((await commandCalls(redis, 'hget')) - before).toBe(0);
  });

  onRedis(
    'asks the store at most once for a token past maxAge that it never saw (Redis index reads)',
    async () => {
      const redis = await ownRedis();
      const clock = testClock();
      const [a, b] = await replicasOn(redis, clock, {
        maxAge: '1h',
        idleTimeout: '2h',
        activityInterval: '1m',
      });
      const { token } = await a.loginJson('bo');
      clock.advance(61 * MIN);
      const before = await commandCalls(redis, 'hget');
      for (let i = 0; i < 5; i++) {
        expect(await status(b, token)).toEqual({ status: 401, error: 'session_expired' });
        clock.advance(10 * MIN);
      }
      expect((await commandCalls(redis, 'hget')) - before).toBe(1);
    },
  );
});

describe('idle expiry', () => {
  it('counts activity this replica saw but has not written yet (a cache refill keeps it)', async () => {
    const clock = testClock();
    const gw = await startGateway(
      { sessions: { idleTimeout: '10m', activityInterval: '5m' } },
      { now: clock.now },
    );
    const { token } = await gw.loginJson('cy');
    clock.advance(4 * MIN);
    expect(await status(gw, token)).toEqual({ status: 200 });
    // 9 minutes since the last request, 13 since the last activity written to the store.
    clock.advance(9 * MIN);
    expect(await status(gw, token)).toEqual({ status: 200 });
    clock.advance(11 * MIN);
    expect(await status(gw, token)).toEqual({ status: 401, error: 'session_expired' });
  });

  onRedis("counts another replica's activity it has not written yet (Redis)", async () => {
    const redis = await ownRedis();
    const clock = testClock();
    const [a, b] = await replicasOn(redis, clock, { idleTimeout: '10m', activityInterval: '5m' });
    const { token } = await a.loginJson('dee');
    clock.advance(4 * MIN);
    // B sees activity at +4m; its interval has not passed, so the store still says +0m.
    expect(await status(b, token)).toEqual({ status: 200 });
    clock.advance(9 * MIN);
    expect(await status(a, token)).toEqual({ status: 200 });
  });

  onRedis(
    'expires a session idle past idleTimeout plus at most activityInterval on another replica',
    async () => {
      const redis = await ownRedis();
      const clock = testClock();
      const [a, b] = await replicasOn(redis, clock, { idleTimeout: '10m', activityInterval: '1m' });
      const { token } = await a.loginJson('eve');
      clock.advance(3 * MIN);
      expect(await status(b, token)).toEqual({ status: 200 });
      // B wrote +3m; A never saw a request after the login: idle is measured from the store's +3m.
      clock.advance(11 * MIN + 1);
      expect(await status(a, token)).toEqual({ status: 401, error: 'session_expired' });
    },
  );

  it('refuses an activityInterval not shorter than idleTimeout, naming sessions.activityInterval', () => {
    const raw = {
      upstream: 'http://127.0.0.1:3000',
      secret: 'a-secret-of-sixteen+',
      login: [JSON_LOGIN_RULE],
      sessions: { idleTimeout: '5m', activityInterval: '5m' },
    };
    let problems: readonly { path: string; message: string }[] = [];
    try {
      parseConfig(raw, {});
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      problems = err.problems;
    }
    expect(problems).toEqual([
      { path: 'sessions.activityInterval', message: expect.stringContaining('idleTimeout') as string },
    ]);
  });
});
