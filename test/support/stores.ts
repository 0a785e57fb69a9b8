/**
 * The stores a suite runs its cases on: memory always, Redis when redis-server is installed (one server
 * for the file, started before its tests and stopped after them; a fresh key prefix per gateway).
 *
 *   const stores = suiteStores();
 *   describe.each(stores.cases)('on $name', ({ store }) => { ... startGateway({ store: store() }) ... });
 *   describe.skipIf(!stores.haveRedis)('on Redis only', () => { ... stores.redis().url ... });
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll } from 'vitest';
import type { ConfigInput } from '../../src/config/schema.js';
import { haveRedis, startRedis, type RedisHandle } from './redis.js';
import { needTool } from './tools.js';

export interface StoreCase {
  readonly name: 'memory' | 'redis';
  /** The `store` config of one gateway (Redis: a key prefix of its own, so cases never share keys). */
  readonly store: () => ConfigInput['store'];
}

export interface SuiteStores {
  readonly haveRedis: boolean;
  readonly cases: readonly StoreCase[];
  /** The file's redis-server (only inside tests, and only when `haveRedis`). */
  redis(): RedisHandle;
  /** A Redis store config with a fresh key prefix. */
  redisStore(): ConfigInput['store'];
}

/** Registers the file's beforeAll/afterAll for its redis-server; call it at the top level of a test file. */
export function suiteStores(): SuiteStores {
  const available = needTool('redis-server', 'redis-server', haveRedis());
  let server: RedisHandle | undefined;
  beforeAll(async () => {
    if (available) server = await startRedis();
  });
  afterAll(async () => {
    await server?.stop();
  });
  const redis = (): RedisHandle => {
    if (server === undefined) throw new Error('no redis-server for this suite (check stores.haveRedis)');
    return server;
  };
  const redisStore = (): ConfigInput['store'] => ({
    url: redis().url,
    keyPrefix: `t${randomBytes(4).toString('hex')}:`,
  });
  const cases: StoreCase[] = [{ name: 'memory', store: () => 'memory' }];
  if (available) cases.push({ name: 'redis', store: redisStore });
  return { haveRedis: available, cases, redis, redisStore };
}
