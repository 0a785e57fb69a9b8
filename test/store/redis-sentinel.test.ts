/** The Redis store through Sentinel (1 master, 1 replica, 3 sentinels), including a failover. */
import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import type { SessionRecord } from '../../src/model.js';
import { createRedisStore } from '../../src/store/redis.js';
import {
  haveRedis,
  redisCommand,
  redisStoreHarness,
  startRedisSentinel,
  type RedisSentinelHandle,
} from '../support/redis.js';
import { waitUntil } from '../support/wait.js';
import { needTool } from '../support/tools.js';
import { describeStoreContract, recordingListener, sessionRecord } from './contract.js';

/** Every suite here starts redis-servers: a master, a replica, three sentinels. */
const redisServer = needTool('redis-server', 'redis-server', haveRedis());

let sentinel: RedisSentinelHandle;
beforeAll(async () => {
  sentinel = await startRedisSentinel();
  return () => sentinel.stop();
});

describeStoreContract(
  'redis sentinel',
  redisStoreHarness(() => ({ sentinels: sentinel.sentinelAddresses, sentinelName: sentinel.masterName })),
  { skip: !redisServer },
);

async function masterPort(): Promise<number> {
  const port = sentinel.sentinels[0]?.port as number;
  const reply = (await redisCommand(
    port,
    'SENTINEL',
    'GET-MASTER-ADDR-BY-NAME',
    sentinel.masterName,
  )) as string[];
  return Number(reply[1]);
}

// Runs last in this file: it moves the master, which the contract tests above do not expect.
describe.skipIf(!redisServer)('RedisSessionStore through Sentinel', () => {
  it('commits, looks up and invalidates after a failover without being recreated', async () => {
    const store = createRedisStore({
      sentinels: sentinel.sentinelAddresses,
      sentinelName: sentinel.masterName,
      keyPrefix: `sg:${randomUUID().slice(0, 8)}:`,
      commandTimeout: 500,
      pingInterval: 250,
    });
    onTestFinished(() => store.close());
    await store.ready();
    const listener = recordingListener();
    onTestFinished(store.watch(listener));
    const user = `user-${randomUUID()}`;
    const commitNew = async (): Promise<SessionRecord> => {
      const { version } = await store.readUser(user);
      const session = sessionRecord(user, Date.now());
      await store.commit({ user, expectedVersion: version, create: session, end: [], at: Date.now() });
      return session;
    };
    await commitNew();
    expect(await masterPort()).toBe(sentinel.master.port);

    await redisCommand(sentinel.sentinels[0]?.port as number, 'SENTINEL', 'FAILOVER', sentinel.masterName);
    await waitUntil(
      'the replica promoted',
      async () => (await masterPort()) === sentinel.replica.port,
      20_000,
    );
    await waitUntil(
      'the old master demoted',
      async () => String(await redisCommand(sentinel.master.port, 'ROLE')).startsWith('slave'),
      20_000,
    );

    const session = await waitUntil(
      'a commit on the new master',
      () => commitNew().catch(() => undefined),
      20_000,
    );
    expect(String(await redisCommand(sentinel.replica.port, 'ROLE'))).toMatch(/^master/);
    expect((await store.lookup(session.tokenIds[0] as string))?.session.state).toBe('live');

    // The demotion closes the old master's connections, the subscriber's too, and a message published
    // while it resubscribes is lost (pub/sub is at-most-once). So: end a session and wait for its
    // invalidation; a message that does not come must have been announced (channel down when it was
    // published, or a lost event since); then retry, within a bound.
    const deadline = Date.now() + 20_000;
    for (;;) {
      expect(Date.now()).toBeLessThan(deadline);
      const lostBefore = listener.events.filter((e) => e === 'lost').length;
      const s = await waitUntil('a commit', () => commitNew().catch(() => undefined), 10_000);
      const upAtPublish = store.isWatching();
      const { version } = await store.readUser(user);
      await store.commit({
        user,
        expectedVersion: version,
        end: [{ sessionId: s.id, state: 'logged_out' }],
        at: Date.now(),
      });
      const delivered = await vi
        .waitFor(() => expect(listener.invalidated).toContain(s.tokenIds[0]), { timeout: 2_000 })
        .then(
          () => true,
          () => false,
        );
      if (delivered) break;
      const announced = !upAtPublish || listener.events.filter((e) => e === 'lost').length > lostBefore;
      expect(announced).toBe(true);
    }
    expect(store.isWatching()).toBe(true);
  });
});
