/**
 * Mass revocations put few messages on the invalidation channel: commits that end sessions while
 * others are in flight leave their message to the store, which publishes them batched (at most 1,000
 * token ids a message), while a lone revocation still publishes inside its script. Counted with a
 * real subscriber on a real redis-server; every replica refuses every ended token.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { SessionRecord } from '../../src/model.js';
import { decodeMessage } from '../../src/store/redis-codec.js';
import {
  InvalidationBatcher,
  MAX_IDS_PER_MESSAGE,
  packInvalidations,
} from '../../src/store/redis-publisher.js';
import { createRedisStore, type RedisSessionStore } from '../../src/store/redis.js';
import { createTokenIdOf } from '../../src/tokens/token-id.js';
import { bearer, get, TEST_SECRET, testClock, type TestGateway } from '../support/gateway.js';
import { haveRedis, type RedisHandle } from '../support/redis.js';
import { needTool } from '../support/tools.js';
import { waitUntil } from '../support/wait.js';
import { ownRedis, replicasOn } from '../sessions/replicas.js';
import { sessionRecord } from './contract.js';

const redisServer = needTool('redis-server', 'redis-server', haveRedis());
const tokenIdOf = createTokenIdOf(TEST_SECRET);

/** A subscriber of its own on every invalidation channel of the server: the messages as they arrive. */
async function channelCounter(redis: RedisHandle): Promise<{ messages: string[]; tokenIds: Set<string> }> {
  const sub = new Redis(redis.url);
  onTestFinished(() => void sub.disconnect());
  const messages: string[] = [];
  const tokenIds = new Set<string>();
  sub.on('pmessage', (_pattern: string, _channel: string, message: string) => {
    messages.push(message);
    for (const id of decodeMessage(message).invalidation?.tokenIds ?? []) tokenIds.add(id);
  });
  await sub.psubscribe('*invalidate');
  return { messages, tokenIds };
}

async function statusWith(gw: TestGateway, token: string): Promise<number> {
  const res = await get(`${gw.url}/api/me`, bearer(token));
  await res.arrayBuffer();
  return res.status;
}

/** Logs each user in through the gateway, 16 at a time; their tokens in order. */
async function tokensOf(gw: TestGateway, users: readonly string[]): Promise<string[]> {
  const tokens: string[] = new Array<string>(users.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      for (let i = next++; i < users.length; i = next++)
        tokens[i] = (await gw.loginJson(users[i] as string)).token;
    }),
  );
  return tokens;
}

/** How many of the tokens the gateway answers with `status`, 16 requests at a time (a shared machine). */
async function answered(gw: TestGateway, tokens: readonly string[], status: number): Promise<number> {
  let n = 0;
  const queue = [...tokens];
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      for (let t = queue.shift(); t !== undefined; t = queue.shift())
        if ((await statusWith(gw, t)) === status) n++;
    }),
  );
  return n;
}

describe('packInvalidations', () => {
  const part = (ids: string[], at: number) => ({
    count: ids.length,
    tokenIds: ids.map((t) => JSON.stringify(t)).join(','),
    ended: ids.map((t) => JSON.stringify({ b: { id: `s-${t}` } })).join(','),
    changed: '',
    at,
  });

  it('joins commits into messages of at most the limit, never splitting one, stamped with the earliest', () => {
    const batch = [part(['a', 'b'], 5), part(['c'], 3), part(['d', 'e'], 9), part(['f', 'g', 'h', 'i'], 1)];
    const messages = packInvalidations(batch, 3).map((m) => JSON.parse(m) as Record<string, unknown>);
    expect(messages.map((m) => m.tokenIds)).toEqual([
      ['a', 'b', 'c'],
      ['d', 'e'],
      ['f', 'g', 'h', 'i'],
    ]);
    expect(messages.map((m) => m.at)).toEqual([3, 9, 1]);
    expect((messages[0]?.ended as unknown[]).length).toBe(3);
  });

  it('writes messages the receivers decode as one invalidation each', () => {
    const ids = Array.from({ length: 2 * MAX_IDS_PER_MESSAGE + 1 }, (_, i) => `t-${i}`);
    const messages = packInvalidations(ids.map((t) => ({ ...part([t], 7), ended: '' })));
    expect(messages).toHaveLength(3);
    const decoded = messages.map((m) => decodeMessage(m));
    expect(decoded.every((d) => d.problem === undefined)).toBe(true);
    expect(decoded.flatMap((d) => d.invalidation?.tokenIds ?? [])).toEqual(ids);
    expect(packInvalidations([])).toEqual([]);
  });

  it('carries the sessions a commit changed (onLimit: warn), also in a message that invalidates no token', () => {
    const warned = { count: 0, tokenIds: '', ended: '', changed: '{"id":"s1","t":["w1"]}', at: 4 };
    const messages = packInvalidations([{ ...part(['a'], 5), ended: '' }, warned]);
    expect(messages).toHaveLength(1);
    const [one] = messages.map((m) => decodeMessage(m));
    expect(one?.problem).toBeUndefined();
    expect(one?.invalidation?.tokenIds).toEqual(['a']);
    expect(one?.invalidation?.changed).toEqual([{ sessionId: 's1', tokenIds: ['w1'] }]);
    const alone = packInvalidations([warned]).map((m) => decodeMessage(m));
    expect(alone.map((d) => [d.invalidation?.tokenIds, d.invalidation?.changed?.length])).toEqual([[[], 1]]);
  });

  it('InvalidationBatcher: the first commit alone publishes itself; a batched PUBLISH that fails is tried again', async () => {
    const sent: string[] = [];
    const errors: unknown[] = [];
    let failures = 1;
    let delivered: () => void = () => {};
    const arrived = new Promise<void>((resolve) => (delivered = resolve));
    const batcher = new InvalidationBatcher({
      publish: (m) => {
        if (failures-- > 0) return Promise.reject(new Error('connection reconnecting'));
        sent.push(m);
        delivered();
        return Promise.resolve();
      },
      onError: (err) => errors.push(err),
    });
    expect(batcher.begin()).toBe(true);
    expect(batcher.begin()).toBe(false);
    batcher.finish();
    batcher.finish();
    batcher.add(part(['a', 'b'], 1));
    await arrived;
    expect(sent.map((m) => decodeMessage(m).invalidation?.tokenIds)).toEqual([['a', 'b']]);
    expect(errors).toEqual([]);
    await batcher.drain();
  });
});

describe.skipIf(!redisServer)('batched invalidations on a real redis-server', () => {
  async function store(redis: RedisHandle): Promise<RedisSessionStore> {
    // Hundreds of commits at once on a shared machine: a generous timeout, so none fails as unanswered.
    const s = createRedisStore({
      url: redis.url,
      keyPrefix: `b${randomUUID().slice(0, 8)}:`,
      commandTimeout: 5_000,
    });
    onTestFinished(() => s.close());
    await s.ready();
    return s;
  }

  async function loggedIn(s: RedisSessionStore, users: readonly string[]): Promise<SessionRecord[]> {
    const at = Date.now();
    return Promise.all(
      users.map(async (user) => {
        const session = sessionRecord(user, at);
        await s.commit({ user, expectedVersion: 0, create: session, end: [], at });
        return session;
      }),
    );
  }

  it('publishes a lone revocation in its own message, and 300 concurrent ones in far fewer', async () => {
    const redis = await ownRedis();
    const counter = await channelCounter(redis);
    const s = await store(redis);
    const users = Array.from({ length: 301 }, (_, i) => `mass-${i}`);
    const sessions = await loggedIn(s, users);
    const end = (x: SessionRecord) =>
      s.commit({
        user: x.user,
        expectedVersion: 1,
        end: [{ sessionId: x.id, state: 'ended_by_admin' }],
        at: Date.now(),
      });

    const [lone, ...rest] = sessions as [SessionRecord, ...SessionRecord[]];
    await end(lone);
    await waitUntil('the lone message', () => counter.messages.length === 1);
    expect(counter.tokenIds).toEqual(new Set(lone.tokenIds));

    await Promise.all(rest.map(end));
    const all = rest.flatMap((x) => x.tokenIds);
    await waitUntil('every ended token id on the channel', () => all.every((t) => counter.tokenIds.has(t)));
    // 600 token ids of 300 commits sent at once: a handful of messages, never one per commit.
    expect(counter.messages.length - 1).toBeLessThan(rest.length / 10);
    for (const m of counter.messages) {
      const decoded = decodeMessage(m);
      expect(decoded.problem).toBeUndefined();
      expect(decoded.invalidation?.tokenIds.length).toBeLessThanOrEqual(MAX_IDS_PER_MESSAGE);
      // The ended records travel with their token ids, so receivers bury them without a read.
      expect(decoded.invalidation?.ended?.length).toBe((decoded.invalidation?.tokenIds.length ?? 0) / 2);
    }
  });

  it('publishes what is pending before it closes', async () => {
    const redis = await ownRedis();
    const counter = await channelCounter(redis);
    const s = await store(redis);
    const sessions = await loggedIn(
      s,
      Array.from({ length: 50 }, (_, i) => `closing-${i}`),
    );
    await Promise.all(
      sessions.map((x) =>
        s.commit({
          user: x.user,
          expectedVersion: 1,
          end: [{ sessionId: x.id, state: 'logged_out' }],
          at: Date.now(),
        }),
      ),
    );
    await s.close();
    const all = sessions.flatMap((x) => x.tokenIds);
    await waitUntil('every token id published', () => all.every((t) => counter.tokenIds.has(t)));
  });
});

describe.skipIf(!redisServer)('a mass revocation through two gateway replicas', () => {
  it('a bulk end of 200 users goes out in few messages and both replicas refuse every token', async () => {
    const redis = await ownRedis();
    const [a, b] = await replicasOn(redis, testClock(), { limit: 1 });
    const users = Array.from({ length: 200 }, (_, i) => `bulk-${i}`);
    const tokens = await tokensOf(a, users);
    // Both replicas cache every token as live.
    for (const gw of [a, b]) expect(await answered(gw, tokens, 200)).toBe(200);
    const counter = await channelCounter(redis);

    const res = await a.admin('/admin/sessions', {
      method: 'DELETE',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ users }),
    });
    expect(((await res.json()) as { ended: number }).ended).toBe(200);
    const ids = tokens.map((t) => tokenIdOf(t));
    await waitUntil('every ended token on the channel', () => ids.every((id) => counter.tokenIds.has(id)));
    expect(counter.messages.length).toBeLessThan(users.length / 4);
    for (const gw of [a, b]) expect(await answered(gw, tokens, 401)).toBe(200);
  });

  it('one admin call per user, 20 at a time, also goes out in fewer messages than users', async () => {
    const redis = await ownRedis();
    const [a, b] = await replicasOn(redis, testClock(), { limit: 1 });
    const users = Array.from({ length: 200 }, (_, i) => `each-${i}`);
    const tokens = await tokensOf(a, users);
    expect(await answered(b, tokens, 200)).toBe(200);
    const counter = await channelCounter(redis);

    const queue = [...users];
    await Promise.all(
      Array.from({ length: 20 }, async () => {
        for (let u = queue.shift(); u !== undefined; u = queue.shift()) {
          const res = await a.admin(`/admin/users/${u}/sessions`, { method: 'DELETE' });
          expect(res.status).toBe(200);
          await res.arrayBuffer();
        }
      }),
    );
    const ids = tokens.map((t) => tokenIdOf(t));
    await waitUntil('every ended token on the channel', () => ids.every((id) => counter.tokenIds.has(id)));
    expect(counter.messages.length).toBeLessThan(users.length / 2);
    for (const gw of [a, b]) expect(await answered(gw, tokens, 401)).toBe(200);
  });

  it('sessions expiring in the same second are refused by every replica from the expiresAt it holds, before any message', async () => {
    const redis = await ownRedis();
    const clock = testClock();
    const [a, b] = await replicasOn(redis, clock, { limit: 1, maxAge: '1h', idleTimeout: '2h' });
    const users = Array.from({ length: 100 }, (_, i) => `exp-${i}`);
    const tokens = await tokensOf(a, users);
    for (const gw of [a, b]) expect(await answered(gw, tokens, 200)).toBe(100);
    const counter = await channelCounter(redis);

    clock.advance(60 * 60_000);
    // Nothing has ended them in the store when B is asked: B refuses each from the expiresAt it holds.
    expect(counter.messages).toEqual([]);
    const onB = await Promise.all(tokens.map((t) => b.gateway.sessions.check(tokenIdOf(t))));
    expect(onB.filter((c) => c.state === 'expired')).toHaveLength(100);
    for (const gw of [b, a]) expect(await answered(gw, tokens, 401)).toBe(100);
    // The ends are still committed (by whichever replica gets there first) and published, so long-lived
    // connections on other replicas close too: batched like any mass revocation.
    const ids = tokens.map((t) => tokenIdOf(t));
    await waitUntil('every expired token on the channel', () => ids.every((id) => counter.tokenIds.has(id)));
    expect(counter.messages.length).toBeLessThan(users.length / 4);
  });
});
