/**
 * `sessiongate_live_sessions` is the store's count at scrape time: the same on every replica, and it
 * drops when sessions reach maxAge with nothing ending them. Two real gateways on one Redis, on an
 * injected clock.
 */
import { describe, expect, it } from 'vitest';
import { testClock, type TestGateway } from '../support/gateway.js';
import { haveRedis } from '../support/redis.js';
import { needTool } from '../support/tools.js';
import { HOUR, ownRedis, replicasOn } from '../sessions/replicas.js';

async function liveSessions(gw: TestGateway): Promise<number> {
  const res = await gw.admin('/metrics');
  const m = /^sessiongate_live_sessions (\d+)$/m.exec(await res.text());
  if (!m) throw new Error('no sessiongate_live_sessions in /metrics');
  return Number(m[1]);
}

/** Two replicas on a real redis-server. */
const redisServer = needTool('redis-server', 'redis-server', haveRedis());

describe.skipIf(!redisServer)('the live sessions gauge', () => {
  it("counts every replica's sessions and drops them at maxAge", async () => {
    const clock = testClock();
    const [a, b] = await replicasOn(await ownRedis(), clock, { maxAge: '1h', limit: 2 });
    await a.loginJson('pia');
    await a.loginJson('pia');
    await a.loginJson('quinn');
    // A replica sends its own pending counts before it answers; the others' are at most a second old
    // (the count is batched off the login path), so A is asked first and B then sees what A sent.
    expect(await liveSessions(a)).toBe(3);
    expect(await liveSessions(b)).toBe(3);
    clock.advance(HOUR);
    // A login resets A's few-second memo of the count: the three sessions past maxAge are gone from it.
    await a.loginJson('rae');
    expect(await liveSessions(a)).toBe(1);
  });
});
