/**
 * Helpers of the session lifetime suites: gateways sharing one redis-server of the test's own, on the
 * test's clock, and a request's status and rejection code.
 */
import { randomBytes } from 'node:crypto';
import { onTestFinished } from 'vitest';
import { bearer, get, startGateway, type TestGateway } from '../support/gateway.js';
import { redisCommand, startRedis, type RedisHandle } from '../support/redis.js';
import { waitUntil } from '../support/wait.js';

export const MIN = 60_000;
export const HOUR = 60 * MIN;
export const DAY = 24 * HOUR;

/** `GET /api/x` of the test app with the token: the status and, when rejected, the code. */
export async function status(gw: TestGateway, token: string): Promise<{ status: number; error?: string }> {
  const res = await get(`${gw.url}/api/x`, bearer(token));
  const body = (await res.json()) as { error?: string };
  return { status: res.status, ...(body.error !== undefined ? { error: body.error } : {}) };
}

/** A redis-server of the test's own, stopped when it ends. */
export async function ownRedis(): Promise<RedisHandle> {
  const r = await startRedis();
  onTestFinished(() => r.stop());
  return r;
}

/** How many commands of one kind the Redis server has run (INFO commandstats). */
export async function commandCalls(redis: RedisHandle, command: string): Promise<number> {
  const info = String(await redisCommand(redis.port, 'INFO', 'commandstats'));
  const m = new RegExp(`^cmdstat_${command}:calls=(\\d+)`, 'm').exec(info);
  return m ? Number(m[1]) : 0;
}

/** Two gateways on one Redis (a key prefix of their own), on the clock, subscribed before use. */
export async function replicasOn(
  redis: RedisHandle,
  clock: { now: () => number },
  sessions: Record<string, unknown>,
): Promise<[TestGateway, TestGateway]> {
  const keyPrefix = `t${randomBytes(4).toString('hex')}:`;
  const start = () =>
    startGateway(
      { store: { url: redis.url, keyPrefix, pingInterval: '200ms' }, sessions },
      { now: clock.now },
    );
  const a = await start();
  const b = await start();
  await waitUntil('subscribed', () => a.gateway.isReady() && b.gateway.isReady());
  return [a, b];
}
