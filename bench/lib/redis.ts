/**
 * A throwaway redis-server for one bench run: a free port (never 6379, so a developer's Redis is never
 * touched), no persistence, killed at the end.
 */
import { execFileSync } from 'node:child_process';
import { Redis } from 'ioredis';
import { freePort, spawnChild, waitForTcp, type Child } from './proc.js';

export interface BenchRedis {
  readonly url: string;
  readonly port: number;
  readonly child: Child;
  /** An admin connection for INFO / FLUSHALL / DBSIZE (not used on any measured path). */
  readonly admin: Redis;
  stop(): Promise<void>;
}

/** Why Redis scenarios cannot run here, or undefined when `redis-server` is on the PATH. */
export function redisUnavailableReason(): string | undefined {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return 'redis-server is not on the PATH (install redis to run the Redis scenarios)';
  }
}

export async function startRedis(name = 'redis', cpus?: string): Promise<BenchRedis> {
  let port = await freePort();
  while (port === 6379) port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  const child = spawnChild(name, 'redis-server', args, cpus ? { cpus } : {});
  await waitForTcp(child, port, 'PING\r\n', '+PONG', 10_000);
  const admin = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 1 });
  await admin.connect();
  return {
    url: `redis://127.0.0.1:${port}/0`,
    port,
    child,
    admin,
    stop: async () => {
      admin.disconnect();
      await child.stop();
    },
  };
}

/** A numeric field of `INFO <section>` (e.g. used_memory). */
export async function infoField(redis: Redis, section: string, field: string): Promise<number> {
  const info = await redis.info(section);
  const match = new RegExp(`^${field}:(\\d+)`, 'm').exec(info);
  if (!match?.[1]) throw new Error(`INFO ${section} has no ${field}`);
  return Number(match[1]);
}

/** The one redis-server of a scenario bench, started when the first Redis scenario needs it. */
export interface RedisHolder {
  redis: BenchRedis | undefined;
}

/** The holder's redis-server, started on first call; a string, the reason to skip, without redis-server. */
export async function ensureRedis(holder: RedisHolder, cpus?: string): Promise<BenchRedis | string> {
  if (holder.redis) return holder.redis;
  const missing = redisUnavailableReason();
  if (missing) return missing;
  holder.redis = await startRedis('redis', cpus);
  return holder.redis;
}
