/** The Redis store against a real 3-master Redis Cluster. */
import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import { createRedisStore } from '../../src/store/redis.js';
import {
  haveRedis,
  haveRedisCli,
  keysWithPrefix,
  redisCommand,
  redisStoreHarness,
  startRedisCluster,
  type RedisClusterHandle,
} from '../support/redis.js';
import { needTool } from '../support/tools.js';
import { describeStoreContract, recordingListener, sessionRecord } from './contract.js';

/** Three redis-servers made a Cluster by redis-cli (Debian's redis-tools, which redis-server brings). */
const redisCluster =
  needTool('redis-server', 'redis-server', haveRedis()) &&
  needTool('redis-cli', 'redis-tools', haveRedisCli());

let cluster: RedisClusterHandle;
beforeAll(async () => {
  cluster = await startRedisCluster();
  return () => cluster.stop();
});

describeStoreContract(
  'redis cluster',
  redisStoreHarness(() => ({ cluster: cluster.seeds })),
  { skip: !redisCluster },
);

describe.skipIf(!redisCluster)('RedisSessionStore on a Redis Cluster', () => {
  it('gives every key it writes a TTL, on every node', async () => {
    const prefix = `sg:${randomUUID().slice(0, 8)}:`;
    const store = createRedisStore({ cluster: cluster.seeds, keyPrefix: prefix, commandTimeout: 1_000 });
    onTestFinished(() => store.close());
    await store.ready();
    for (let i = 0; i < 12; i++) {
      const user = `user-${i}`;
      const session = sessionRecord(user, Date.now());
      await store.commit({ user, expectedVersion: 0, create: session, end: [], at: Date.now() });
      await store.addTokens(user, session.id, [`t-${randomUUID()}`], 8);
    }
    const keys = await keysWithPrefix(cluster.ports, prefix);
    // Users and token ids spread over the slots: every node holds some of them.
    expect(new Set(keys.values()).size).toBe(3);
    for (const [key, port] of keys) {
      const ttl = Number(await redisCommand(port, 'PTTL', key));
      expect({ key, positive: ttl > 0 }).toEqual({ key, positive: true });
    }
  });

  it('keeps all keys of one user in one slot', async () => {
    const prefix = `sg:${randomUUID().slice(0, 8)}:`;
    const store = createRedisStore({ cluster: cluster.seeds, keyPrefix: prefix, commandTimeout: 1_000 });
    onTestFinished(() => store.close());
    await store.ready();
    const user = `}{\n${randomUUID()}`;
    const session = sessionRecord(user, Date.now());
    await store.commit({ user, expectedVersion: 0, create: session, end: [], at: Date.now() });
    // Layout v4: one hash per user, whose slot is its tag's (the user string cannot break the braces).
    const userKeys = [...(await keysWithPrefix(cluster.ports, prefix)).keys()].filter((k) =>
      k.includes(':u:{'),
    );
    expect(userKeys).toHaveLength(1);
    const key = userKeys[0] as string;
    const tag = /\{([^}]*)\}$/.exec(key)?.[1];
    expect(tag).toMatch(/^[A-Za-z0-9_-]{22}$/);
    const slots = await Promise.all(
      [key, `{${tag}}`].map((k) => redisCommand(cluster.ports[0] as number, 'CLUSTER', 'KEYSLOT', k)),
    );
    expect(new Set(slots).size).toBe(1);
  });

  it('delivers an invalidation published on any node', async () => {
    const store = createRedisStore({
      cluster: cluster.seeds,
      keyPrefix: `sg:${randomUUID().slice(0, 8)}:`,
      commandTimeout: 1_000,
    });
    onTestFinished(() => store.close());
    await store.ready();
    const listener = recordingListener();
    onTestFinished(store.watch(listener));
    // Many users: their commits run on all three masters, whichever one the subscriber is on.
    const tokens: string[] = [];
    for (let i = 0; i < 12; i++) {
      const user = `user-${i}`;
      const session = sessionRecord(user, Date.now());
      await store.commit({ user, expectedVersion: 0, create: session, end: [], at: Date.now() });
      await store.commit({
        user,
        expectedVersion: 1,
        end: [{ sessionId: session.id, state: 'logged_out' }],
        at: Date.now(),
      });
      tokens.push(...session.tokenIds);
    }
    await vi.waitFor(() => expect(listener.invalidated).toEqual(expect.arrayContaining(tokens)), {
      timeout: 5_000,
    });
  });
});
