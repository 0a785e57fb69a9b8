/**
 * The Redis store against a real standalone redis-server: the contract suite, then what only Redis
 * has (TTLs, key prefixes, outages, the subscriber connection). Tests that kill or freeze Redis start
 * their own server.
 */
import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import { StoreUnavailableError } from '../../src/errors.js';
import type { SessionStore } from '../../src/store/contract.js';
import type { SessionRecord } from '../../src/model.js';
import {
  createRedisStore,
  INDEX_PRUNE_MS,
  INDEX_SLACK_MS,
  LIVE_BUCKET_MS,
  LIVE_FLUSH_MS,
  type RedisSessionStore,
  type RedisStoreOptions,
} from '../../src/store/redis.js';
import {
  haveRedis,
  keysWithPrefix,
  redisCommand,
  redisStoreHarness,
  startRedis,
  startTcpProxy,
  type RedisHandle,
} from '../support/redis.js';
import { agentRef, encodeTombstone, indexSlot, userTag } from '../../src/store/redis-codec.js';
import { waitUntil } from '../support/wait.js';
import { needTool } from '../support/tools.js';
import { describeStoreContract, recordingListener, sessionRecord } from './contract.js';

/** Every suite here starts redis-servers (test/support/redis.ts). */
const redisServer = needTool('redis-server', 'redis-server', haveRedis());

let redis: RedisHandle;
beforeAll(async () => {
  redis = await startRedis();
  return () => redis.stop();
});

describeStoreContract(
  'redis standalone',
  redisStoreHarness(() => ({ url: redis.url })),
  { skip: !redisServer },
);

/** A store with its own prefix, closed when the test ends; connected and subscribed. */
async function openStore(options: RedisStoreOptions): Promise<RedisSessionStore> {
  const store = createRedisStore({ keyPrefix: `sg:${randomUUID().slice(0, 8)}:`, ...options });
  onTestFinished(() => store.close());
  await store.ready();
  return store;
}

/** A redis-server of the test's own, stopped when it ends. */
async function ownRedis(): Promise<RedisHandle> {
  const r = await startRedis();
  onTestFinished(() => r.stop());
  return r;
}

async function login(store: SessionStore, user: string, at = Date.now()): Promise<SessionRecord> {
  const { version } = await store.readUser(user);
  const session = sessionRecord(user, at);
  await store.commit({ user, expectedVersion: version, create: session, end: [], at });
  return session;
}

async function endAll(store: SessionStore, user: string, at = Date.now()): Promise<void> {
  const { version, live } = await store.readUser(user);
  await store.commit({
    user,
    expectedVersion: version,
    end: live.map((s) => ({ sessionId: s.id, state: 'logged_out' as const })),
    at,
  });
}

/** Rejects with the error, and how long it took. */
async function timedFailure(call: () => Promise<unknown>): Promise<{ error: unknown; ms: number }> {
  const started = performance.now();
  const error = await call().then(
    () => undefined,
    (err: unknown) => err,
  );
  return { error, ms: performance.now() - started };
}

describe.skipIf(!redisServer)('RedisSessionStore on a standalone Redis', () => {
  it('gives every key it writes a TTL', async () => {
    const prefix = `sg:${randomUUID().slice(0, 8)}:`;
    const store = await openStore({ url: redis.url, keyPrefix: prefix });
    const users = ['alice', 'bob', 'carol'];
    for (const user of users) {
      const a = await login(store, user);
      await login(store, user);
      await store.addTokens(user, a.id, ['t-extra-' + user, 't-more-' + user], 2);
      await store.touch(user, a.id, Date.now() + 1_000);
    }
    await endAll(store, 'bob');
    // A commit that loses its compare-and-set still leaves index keys behind; they expire too.
    await store
      .commit({
        user: 'carol',
        expectedVersion: 0,
        create: sessionRecord('carol', Date.now()),
        end: [],
        at: 0,
      })
      .catch(() => {});
    const keys = await keysWithPrefix([redis.port], prefix);
    expect(keys.size).toBeGreaterThan(10);
    for (const key of keys.keys()) {
      const ttl = Number(await redisCommand(redis.port, 'PTTL', key));
      expect({ key, positive: ttl > 0 }).toEqual({ key, positive: true });
    }
  });

  it('keeps the keys of a session for the retention after its expiresAt', async () => {
    const prefix = `sg:${randomUUID().slice(0, 8)}:`;
    const retention = 2 * 3_600_000;
    const store = await openStore({ url: redis.url, keyPrefix: prefix, retention });
    const session = await login(store, 'kim');
    await store.addTokens('kim', session.id, ['t-kim'], 8);
    // The live-session count is written in batches: counting sends this store's.
    expect(await store.countLive()).toBe(1);
    const keys = await keysWithPrefix([redis.port], prefix);
    // Layout v4: the user's hash, the index buckets of the three token ids, the live-session count,
    // the User-Agent's text.
    const buckets = new Set(
      [...session.tokenIds, 't-kim'].map((t) => `${prefix}v4:t:${indexSlot(t).bucket}`),
    );
    expect([...keys.keys()].sort()).toEqual(
      [
        ...buckets,
        `${prefix}v4:live`,
        `${prefix}v4:u:{${userTag('kim')}}`,
        `${prefix}v4:a:${agentRef(session.userAgent)}`,
      ].sort(),
    );
    keys.delete(`${prefix}v4:live`);
    for (const key of keys.keys()) {
      const ttl = Number(await redisCommand(redis.port, 'PTTL', key));
      // The session ends in an hour; its keys stay for the retention after that.
      expect({ key, ttl: ttl > 3_600_000 + retention - 60_000 }).toEqual({ key, ttl: true });
    }
    // The live-session count forgets the session at the end of its expiry's bucket (a minute).
    const live = Number(await redisCommand(redis.port, 'PTTL', `${prefix}v4:live`));
    expect(live).toBeGreaterThan(3_600_000 - 60_000);
    expect(live).toBeLessThanOrEqual(3_600_000 + LIVE_BUCKET_MS);
  });

  it('keeps the index entry of a token id, its tombstone, for tombstoneRetention after the session end', async () => {
    const prefix = `sg:${randomUUID().slice(0, 8)}:`;
    const tombstoneRetention = 30 * 24 * 3_600_000;
    const store = await openStore({
      url: redis.url,
      keyPrefix: prefix,
      retention: 3_600_000,
      tombstoneRetention,
    });
    const session = await login(store, 'lou');
    await store.addTokens('lou', session.id, ['t-lou-rotated'], 8);
    for (const t of [...session.tokenIds, 't-lou-rotated']) {
      const ttl = Number(await redisCommand(redis.port, 'PTTL', `${prefix}v4:t:${indexSlot(t).bucket}`));
      expect(ttl).toBeGreaterThan(3_600_000 + tombstoneRetention - 60_000);
      expect(ttl).toBeLessThanOrEqual(3_600_000 + tombstoneRetention + INDEX_SLACK_MS);
    }
  });

  describe('User-Agent texts', () => {
    it('stores each User-Agent once, for every session that has it', async () => {
      const prefix = `sg:${randomUUID().slice(0, 8)}:`;
      const store = await openStore({ url: redis.url, keyPrefix: prefix });
      const userAgent = `Mozilla/5.0 (X11; Linux x86_64) ${randomUUID()}`;
      for (const user of ['ann', 'ben', 'cat']) {
        const { version } = await store.readUser(user);
        const at = Date.now();
        await store.commit({
          user,
          expectedVersion: version,
          create: sessionRecord(user, at, { userAgent }),
          end: [],
          at,
        });
      }
      const keys = [...(await keysWithPrefix([redis.port], prefix)).keys()].filter((k) => k.includes(':a:'));
      expect(keys).toEqual([`${prefix}v4:a:${agentRef(userAgent)}`]);
      expect(await redisCommand(redis.port, 'GET', keys[0] as string)).toBe(userAgent);
      const hash = String(await redisCommand(redis.port, 'HVALS', `${prefix}v4:u:{${userTag('ann')}}`));
      expect(hash).not.toContain('X11');
    });

    it('reads the User-Agent of a session another replica registered', async () => {
      const prefix = `sg:${randomUUID().slice(0, 8)}:`;
      const a = await openStore({ url: redis.url, keyPrefix: prefix });
      const b = await openStore({ url: redis.url, keyPrefix: prefix });
      const session = await login(a, 'dan');
      expect((await b.readUser('dan')).live.map((s) => s.userAgent)).toEqual([session.userAgent]);
      expect((await b.lookup(session.tokenIds[0] as string))?.session.userAgent).toBe(session.userAgent);
    });

    it('reads a User-Agent whose key is gone as empty, the rest of the session intact', async () => {
      const prefix = `sg:${randomUUID().slice(0, 8)}:`;
      const a = await openStore({ url: redis.url, keyPrefix: prefix });
      const session = await login(a, 'eve');
      await redisCommand(redis.port, 'DEL', `${prefix}v4:a:${agentRef(session.userAgent)}`);
      const b = await openStore({ url: redis.url, keyPrefix: prefix });
      expect((await b.readUser('eve')).live).toEqual([{ ...session, userAgent: '' }]);
    });
  });

  describe('the login history', () => {
    const DAY = 24 * 3_600_000;
    const bounds = { max: 20, window: 90 * DAY };
    const calls = async (port: number): Promise<Record<string, number>> => {
      const info = String(await redisCommand(port, 'INFO', 'commandstats'));
      const out: Record<string, number> = {};
      for (const m of info.matchAll(/^cmdstat_(zadd|zremrangebyscore|zremrangebyrank|pexpire):calls=(\d+)/gm))
        out[m[1] as string] = Number(m[2]);
      return out;
    };
    const delta = (a: Record<string, number>, b: Record<string, number>): Record<string, number> =>
      Object.fromEntries(
        Object.keys(b)
          .map((k) => [k, (b[k] ?? 0) - (a[k] ?? 0)])
          .filter(([, n]) => n !== 0),
      );

    it("trims and sets the TTL only when the login's read saw they are needed", async () => {
      const own = await ownRedis();
      // Noon UTC, so the logins below stay within one day.
      const clock = { value: Math.floor(Date.now() / DAY) * DAY + DAY / 2 };
      const store = await openStore({ url: own.url, keyPrefix: 'sg:', now: () => clock.value });
      const login = async (device: string): Promise<Record<string, number>> => {
        const before = await calls(own.port);
        await store.history.read('ann', clock.value - bounds.window);
        await store.history.record('ann', { device, at: clock.value }, bounds);
        return delta(before, await calls(own.port));
      };
      // The first: nothing to trim, the TTL set to the day's end plus the window.
      expect(await login('a/?/desktop')).toEqual({ zadd: 1, pexpire: 1 });
      const ttl = Number(await redisCommand(own.port, 'PTTL', `sg:v4:h:{${userTag('ann')}}`));
      expect(ttl).toBeGreaterThanOrEqual(bounds.window);
      expect(ttl).toBeLessThanOrEqual(bounds.window + DAY / 2);
      // Later the same day: the TTL reaches far enough already.
      clock.value += 3_600_000;
      expect(await login('b/?/desktop')).toEqual({ zadd: 1 });
      // The next day: set again.
      clock.value += DAY;
      expect(await login('b/?/desktop')).toEqual({ zadd: 1, pexpire: 1 });
      // Past max distinct pairs: the oldest one goes.
      for (let i = 0; i < 18; i++) await login(`c${i}/?/desktop`);
      expect(await login('d/?/desktop')).toEqual({ zadd: 1, zremrangebyrank: 1 });
      expect((await store.history.read('ann', 0)).map((e) => e.device)).not.toContain('a/?/desktop');
    });

    it('trims and sets the TTL on a record that follows no read', async () => {
      const own = await ownRedis();
      const store = await openStore({ url: own.url });
      const before = await calls(own.port);
      await store.history.record('ann', { device: 'a/?/desktop', at: Date.now() }, bounds);
      expect(delta(before, await calls(own.port))).toEqual({
        zadd: 1,
        zremrangebyscore: 1,
        zremrangebyrank: 1,
        pexpire: 1,
      });
    });
  });

  describe('the token index buckets', () => {
    /** Canonical token ids (43 characters of base64url) that all land in bucket `AA0`. */
    const sameBucket = (n: number): string[] =>
      Array.from(
        { length: n },
        (_, i) => `AAA${String(i).padStart(4, '0')}${randomUUID().replaceAll('-', '').slice(0, 32)}___a`,
      );

    function clockStore(prefix: string, clock: { value: number }): Promise<RedisSessionStore> {
      return openStore({ url: redis.url, keyPrefix: prefix, now: () => clock.value });
    }

    async function loginWith(
      store: SessionStore,
      user: string,
      tokenIds: string[],
      at: number,
    ): Promise<void> {
      const { version } = await store.readUser(user);
      await store.commit({
        user,
        expectedVersion: version,
        create: sessionRecord(user, at, { tokenIds }),
        end: [],
        at,
      });
    }

    const bucketTtl = (prefix: string): Promise<number> =>
      redisCommand(redis.port, 'PTTL', `${prefix}v4:t:AA0`).then(Number);

    it('holds the entries of many token ids in one compact hash', async () => {
      const prefix = `sg:${randomUUID().slice(0, 8)}:`;
      const store = await openStore({ url: redis.url, keyPrefix: prefix });
      const ids = sameBucket(40);
      for (let i = 0; i < ids.length; i += 2)
        await loginWith(store, `u${i}`, ids.slice(i, i + 2), Date.now());
      expect(Number(await redisCommand(redis.port, 'HLEN', `${prefix}v4:t:AA0`))).toBe(40);
      expect(await redisCommand(redis.port, 'OBJECT', 'ENCODING', `${prefix}v4:t:AA0`)).toBe('listpack');
      for (const t of ids) expect((await store.lookup(t))?.tokenId).toBe(t);
    });

    it("extends a bucket's TTL only for entries ending past what it reaches", async () => {
      const own = await ownRedis();
      const clock = { value: Date.now() };
      const store = await openStore({ url: own.url, now: () => clock.value });
      const pexpires = async (): Promise<number> => {
        const info = String(await redisCommand(own.port, 'INFO', 'commandstats'));
        return Number(/cmdstat_pexpire:calls=(\d+)/.exec(info)?.[1] ?? 0);
      };
      const [a, b, c] = sameBucket(3) as [string, string, string];
      // Each commit sets its user's hash's TTL: one PEXPIRE. A new bucket gets one too.
      let before = await pexpires();
      await loginWith(store, 'ann', [a], clock.value);
      expect((await pexpires()) - before).toBe(2);
      // Half the slack later: the entry ends within the TTL the bucket got, which stays.
      clock.value += INDEX_SLACK_MS / 2;
      before = await pexpires();
      await loginWith(store, 'ben', [b], clock.value);
      expect((await pexpires()) - before).toBe(1);
      // Past the slack: extended, and so is the key of the User-Agent the three share (same slack).
      clock.value += INDEX_SLACK_MS;
      before = await pexpires();
      await loginWith(store, 'cat', [c], clock.value);
      expect((await pexpires()) - before).toBe(3);
    });

    it('never shortens a TTL another replica set', async () => {
      const prefix = `sg:${randomUUID().slice(0, 8)}:`;
      const long = await openStore({ url: redis.url, keyPrefix: prefix, tombstoneRetention: 24 * 3_600_000 });
      const short = await openStore({ url: redis.url, keyPrefix: prefix });
      const [a, b] = sameBucket(2) as [string, string];
      await loginWith(long, 'ann', [a], Date.now());
      const set = await bucketTtl(prefix);
      expect(set).toBeGreaterThan(25 * 3_600_000 - 60_000);
      // A replica that has not written this bucket yet (its memo says nothing) asks for less.
      await loginWith(short, 'ben', [b], Date.now());
      expect(await bucketTtl(prefix)).toBeGreaterThan(25 * 3_600_000 - 60_000);
    });

    it('prunes the dead entries of a bucket on a write once INDEX_PRUNE_MS has passed', async () => {
      const prefix = `sg:${randomUUID().slice(0, 8)}:`;
      const clock = { value: Date.now() };
      const store = await clockStore(prefix, clock);
      const [a, b, c] = sameBucket(3) as [string, string, string];
      await loginWith(store, 'ann', [a], clock.value);
      await loginWith(store, 'ben', [b], clock.value + 2 * 3_600_000);
      // Ann's session ended an hour ago (no retention), but the last prune was just now: still there.
      clock.value += 2 * 3_600_000;
      expect(await store.find(a)).toBeUndefined();
      expect(Number(await redisCommand(redis.port, 'HLEN', `${prefix}v4:t:AA0`))).toBe(2);
      clock.value += INDEX_PRUNE_MS;
      await loginWith(store, 'cat', [c], clock.value);
      const fields = String(await redisCommand(redis.port, 'HKEYS', `${prefix}v4:t:AA0`)).split(',');
      expect(fields.sort()).toEqual([indexSlot(b).field, indexSlot(c).field].sort());
    });

    describe("an entry whose session's record is gone", () => {
      const HOUR = 3_600_000;
      const hget = (port: number, field: string): Promise<string> =>
        redisCommand(port, 'HGET', `sg:v4:t:AA0`, field).then(String);
      const hmgets = async (port: number): Promise<number> => {
        const info = String(await redisCommand(port, 'INFO', 'commandstats'));
        return Number(/cmdstat_hmget:calls=(\d+)/.exec(info)?.[1] ?? 0);
      };

      /** Ann's session ends at t0 + 1 h, Ben's at t0 + 2.5 h; records are kept 1 h past their end. */
      async function twoSessions(): Promise<{
        port: number;
        store: RedisSessionStore;
        clock: { value: number };
        ann: string;
        ben: string;
        t0: number;
      }> {
        const own = await ownRedis();
        const t0 = Date.now();
        const clock = { value: t0 };
        const store = await openStore({
          url: own.url,
          keyPrefix: 'sg:',
          now: () => clock.value,
          retention: HOUR,
          tombstoneRetention: 24 * HOUR,
        });
        const [ann, ben] = sameBucket(2) as [string, string];
        await loginWith(store, 'ann', [ann], t0);
        return { port: own.port, store, clock, ann, ben, t0 };
      }

      it('keeps its tag and key while the record is kept, so a late token still learns why', async () => {
        const { port, store, clock, ann, ben, t0 } = await twoSessions();
        // Half an hour past Ann's end, with the bucket's prune due: her record is still kept.
        clock.value = t0 + 90 * 60_000;
        await loginWith(store, 'ben', [ben], clock.value);
        expect(await hget(port, indexSlot(ann).field)).toMatch(new RegExp(`^${userTag('ann')}\n`));
        expect(await store.find(ann)).toMatchObject({ tokenId: ann, session: { user: 'ann' } });
      });

      it("shortens to a 12-byte tombstone at the bucket's next prune, answered dead without a read of the user", async () => {
        const { port, store, clock, ann, ben, t0 } = await twoSessions();
        clock.value = t0 + 90 * 60_000;
        await loginWith(store, 'ben', [ben], clock.value);
        // Past Ann's end and her record's hour, and INDEX_PRUNE_MS past the last prune: the next write prunes.
        clock.value = t0 + 2 * HOUR + INDEX_PRUNE_MS;
        await store.rememberAnonymous([sameBucket(1)[0] as string], 60_000);
        expect(await hget(port, indexSlot(ann).field)).toBe(encodeTombstone(t0 + HOUR));
        const before = await hmgets(port);
        expect(await store.find(ann)).toBe('dead');
        expect((await hmgets(port)) - before).toBe(0);
        // Ben's session has not ended: his entry is whole.
        expect(await hget(port, indexSlot(ben).field)).toMatch(new RegExp(`^${userTag('ben')}\n`));
        expect(await store.find(ben)).toMatchObject({ tokenId: ben, session: { user: 'ben' } });
      });

      it('is dead until the tombstone retention ends, then unknown, as the whole entry was', async () => {
        const { store, clock, ann, t0 } = await twoSessions();
        clock.value = t0 + 2 * HOUR + INDEX_PRUNE_MS;
        await store.rememberAnonymous([sameBucket(1)[0] as string], 60_000);
        clock.value = t0 + HOUR + 24 * HOUR - 1;
        expect(await store.find(ann)).toBe('dead');
        clock.value = t0 + HOUR + 24 * HOUR;
        expect(await store.find(ann)).toBeUndefined();
      });
    });

    it("makes a token id anonymous where its entry has ended, never where it is a session's", async () => {
      const prefix = `sg:${randomUUID().slice(0, 8)}:`;
      const clock = { value: Date.now() };
      const store = await clockStore(prefix, clock);
      const [a, b] = sameBucket(2) as [string, string];
      await loginWith(store, 'ann', [a], clock.value);
      await loginWith(store, 'ben', [b], clock.value + 2 * 3_600_000);
      await store.rememberAnonymous([a, b], 60_000);
      expect((await store.find(b)) === 'anonymous').toBe(false);
      clock.value += 2 * 3_600_000;
      await store.rememberAnonymous([a, b], 60_000);
      expect(await store.find(a)).toBe('anonymous');
      expect(await store.find(b)).toMatchObject({ tokenId: b });
      clock.value += 60_000;
      expect(await store.find(a)).toBeUndefined();
    });
  });

  it('removes all keys of a user once the last of their sessions expires', async () => {
    const prefix = `sg:${randomUUID().slice(0, 8)}:`;
    const clock = { value: Date.now() };
    const store = await openStore({ url: redis.url, keyPrefix: prefix, now: () => clock.value });
    await login(store, 'dave', clock.value);
    clock.value += 2 * 3_600_000;
    await endAll(store, 'dave', clock.value);
    const keys = [...(await keysWithPrefix([redis.port], prefix)).keys()];
    expect(keys.filter((k) => k.includes(':u:{'))).toEqual([]);
  });

  it('keeps two stores with different key prefixes apart on one Redis', async () => {
    const a = await openStore({ url: redis.url });
    const b = await openStore({ url: redis.url });
    const listenerB = recordingListener();
    onTestFinished(b.watch(listenerB));
    const listenerA = recordingListener();
    onTestFinished(a.watch(listenerA));
    const session = await login(a, 'erin');
    expect(await b.readUser('erin')).toEqual({ user: 'erin', version: 0, live: [] });
    expect(await b.lookup(session.tokenIds[0] as string)).toBeUndefined();
    await endAll(a, 'erin');
    await vi.waitFor(() => expect(listenerA.invalidated).toContain(session.tokenIds[0]), { timeout: 5_000 });
    expect(listenerB.invalidated).toEqual([]);
  });

  it("counts another replica's sessions once it sends its batch, within LIVE_FLUSH_MS, with no command of its own per login", async () => {
    const r = await ownRedis();
    const keyPrefix = `sg:${randomUUID().slice(0, 8)}:`;
    const a = await openStore({ url: r.url, keyPrefix });
    const b = await openStore({ url: r.url, keyPrefix });
    await login(a, 'noa');
    // The replica that committed counts its own at once (it sends its batch before counting).
    expect(await a.countLive()).toBe(1);
    const increments = async (): Promise<number> => {
      const stats = String(await redisCommand(r.port, 'INFO', 'commandstats'));
      return Number(/cmdstat_hincrby:calls=(\d+)/.exec(stats)?.[1] ?? 0);
    };
    const before = await increments();
    await login(a, 'ola');
    await login(a, 'pia');
    expect(await increments()).toBe(before);
    await vi.waitFor(async () => expect(await b.countLive()).toBe(3), { timeout: LIVE_FLUSH_MS * 5 });
    // One batch: a HINCRBY per expiry minute the sessions fall in (one, or two across a minute's end).
    expect((await increments()) - before).toBeGreaterThanOrEqual(1);
    expect((await increments()) - before).toBeLessThanOrEqual(2);
    await endAll(a, 'noa');
    await vi.waitFor(async () => expect(await b.countLive()).toBe(2), { timeout: LIVE_FLUSH_MS * 5 });
  });

  it('keeps working after SCRIPT FLUSH empties the server script cache (EVAL on NOSCRIPT)', async () => {
    const r = await ownRedis();
    const store = await openStore({ url: r.url });
    const first = await login(store, 'mia');
    await store.addTokens('mia', first.id, ['t-mia-1'], 8);
    await store.touch('mia', first.id, Date.now() + 1_000);
    expect(await store.countLive()).toBe(1);
    // Every script has run on this connection, so each is next sent by its SHA and answered NOSCRIPT.
    expect(await redisCommand(r.port, 'SCRIPT', 'FLUSH')).toBe('OK');
    const at = Date.now();
    const second = await login(store, 'mia', at);
    const added = await store.addTokens('mia', second.id, ['t-mia-2'], 8);
    await store.touch('mia', second.id, at + 5_000);
    expect(added?.tokenIds).toContain('t-mia-2');
    expect((await store.lookup('t-mia-2'))?.session.lastSeenAt).toBe(at + 5_000);
    expect((await store.readUser('mia')).live.map((s) => s.id)).toEqual([first.id, second.id]);
    expect(await store.countLive()).toBe(2);
  });

  it('shares one subscriber connection between all watchers of a store', async () => {
    const r = await ownRedis();
    const store = await openStore({ url: r.url });
    for (let i = 0; i < 5; i++) onTestFinished(store.watch(recordingListener()));
    const clients = String(await redisCommand(r.port, 'CLIENT', 'LIST', 'TYPE', 'pubsub'));
    expect(clients.trim().split('\n')).toHaveLength(1);
  });

  it('fails calls fast with SG_ERR_STORE_UNAVAILABLE while Redis is killed', async () => {
    const r = await ownRedis();
    const store = await openStore({ url: r.url, commandTimeout: 250, pingInterval: 200 });
    const session = await login(store, 'frank');
    await r.kill();
    for (const call of [
      () => store.lookup(session.tokenIds[0] as string),
      () => store.readUser('frank'),
      () => login(store, 'frank'),
      () => store.touch('frank', session.id, Date.now()),
    ]) {
      const { error, ms } = await timedFailure(call);
      expect(error).toBeInstanceOf(StoreUnavailableError);
      expect(error).toMatchObject({ code: 'SG_ERR_STORE_UNAVAILABLE' });
      expect((error as Error).cause).toBeInstanceOf(Error);
      // Fails on its own, well before any reconnection could happen (there is nothing to reconnect to).
      expect(ms).toBeLessThan(2_000);
    }
  });

  it('reports itself unavailable while Redis is down and available once it is back', async () => {
    const r = await ownRedis();
    const changes: boolean[] = [];
    const store = await openStore({ url: r.url, onStateChange: (up) => changes.push(up) });
    expect(store.isAvailable()).toBe(true);
    await r.kill();
    await waitUntil('unavailable', () => !store.isAvailable(), 5_000);
    await r.restart();
    await waitUntil('available again', () => store.isAvailable(), 10_000);
    expect(changes).toEqual([true, false, true]);
  });

  it('serves again after Redis restarts, without recreating the store', async () => {
    const r = await ownRedis();
    const store = await openStore({ url: r.url, commandTimeout: 250, pingInterval: 200 });
    await login(store, 'grace');
    await r.kill();
    await expect(store.readUser('grace')).rejects.toBeInstanceOf(StoreUnavailableError);
    await r.restart();
    // Nothing was persisted: the restarted Redis is empty, and the same store object works on it.
    const session = await waitUntil('a commit after restart', () =>
      login(store, 'grace').catch(() => undefined),
    );
    expect((await store.lookup(session.tokenIds[0] as string))?.session.state).toBe('live');
  });

  it('reports the channel lost, then restored, when the subscriber connection is killed', async () => {
    const r = await ownRedis();
    const store = await openStore({ url: r.url, pingInterval: 200 });
    const listener = recordingListener();
    onTestFinished(store.watch(listener));
    await redisCommand(r.port, 'CLIENT', 'KILL', 'TYPE', 'pubsub');
    await waitUntil('lost then restored', () => listener.events.join(',') === 'lost,restored', 5_000);
    expect(store.isWatching()).toBe(true);
  });

  it('reports the channel down in health while the subscriber is lost, commands still answered', async () => {
    const r = await ownRedis();
    const store = await openStore({ url: r.url, pingInterval: 200 });
    const listener = recordingListener();
    onTestFinished(store.watch(listener));
    const seen: boolean[] = [];
    const sample = (): void => {
      seen.push(store.health().channel);
    };
    // Sampled at the lost event itself: the channel is down then, whatever the reconnect does next.
    onTestFinished(store.watch({ onInvalidate() {}, onChannelLost: sample, onChannelRestored: sample }));
    await redisCommand(r.port, 'CLIENT', 'KILL', 'TYPE', 'pubsub');
    await waitUntil('lost then restored', () => listener.events.join(',') === 'lost,restored', 5_000);
    expect(seen).toEqual([false, true]);
    expect(store.health()).toEqual({ commands: true, channel: true });
  });

  it('reports a closed store unhealthy, with the reason', async () => {
    const store = createRedisStore({ url: redis.url, keyPrefix: `sg:${randomUUID().slice(0, 8)}:` });
    await store.ready();
    expect(store.health()).toEqual({ commands: true, channel: true });
    await store.close();
    expect(store.health()).toEqual({ commands: false, channel: false, reason: 'redis store is closed' });
  });

  it('reports channel state and invalidation lag through its hooks', async () => {
    const r = await ownRedis();
    const channel: string[] = [];
    const lags: (number | undefined)[] = [];
    const store = await openStore({
      url: r.url,
      pingInterval: 200,
      onChannel: (state) => channel.push(state),
      onInvalidation: (lag) => lags.push(lag),
    });
    await login(store, 'lee');
    await endAll(store, 'lee');
    await waitUntil('an invalidation', () => lags.length === 1, 5_000);
    // The message carries its commit time: a lag is measured (undefined would mean it is not).
    expect(lags[0]).toBeTypeOf('number');
    expect(lags[0]).toBeGreaterThanOrEqual(0);
    expect(lags[0]).toBeLessThan(5_000);
    await redisCommand(r.port, 'CLIENT', 'KILL', 'TYPE', 'pubsub');
    await waitUntil('lost then restored', () => channel.join(',') === 'restored,lost,restored', 5_000);
  });

  it('delivers invalidations again after the subscriber connection is killed', async () => {
    const r = await ownRedis();
    const store = await openStore({ url: r.url, pingInterval: 200 });
    const listener = recordingListener();
    onTestFinished(store.watch(listener));
    await redisCommand(r.port, 'CLIENT', 'KILL', 'TYPE', 'pubsub');
    await waitUntil('restored', () => listener.events.includes('restored'), 5_000);
    const session = await login(store, 'heidi');
    await endAll(store, 'heidi');
    await vi.waitFor(() => expect(listener.invalidated).toContain(session.tokenIds[0]), { timeout: 5_000 });
  });

  it('treats an unanswered PING as a lost channel and resubscribes (half-open connection)', async () => {
    const r = await ownRedis();
    const proxy = await startTcpProxy(r.port);
    onTestFinished(() => proxy.close());
    const store = await openStore({ url: proxy.url, pingInterval: 200, commandTimeout: 250 });
    const listener = recordingListener();
    onTestFinished(store.watch(listener));
    proxy.freeze();
    // Nothing closes: only the missed PING reply can tell.
    await waitUntil('lost', () => listener.events.includes('lost'), 5_000);
    expect(store.isWatching()).toBe(false);
    proxy.thaw();
    await waitUntil('restored', () => listener.events.join(',') === 'lost,restored', 10_000);
    // The command connection was frozen too; repeated timeouts make it reconnect.
    const session = await waitUntil('a commit after thaw', () => login(store, 'ivan').catch(() => undefined));
    await endAll(store, 'ivan');
    await vi.waitFor(() => expect(listener.invalidated).toContain(session.tokenIds[0]), { timeout: 5_000 });
  });

  it('closes idempotently and fails later calls with StoreUnavailableError', async () => {
    const store = createRedisStore({ url: redis.url, keyPrefix: `sg:${randomUUID().slice(0, 8)}:` });
    await store.ready();
    await Promise.all([store.close(), store.close()]);
    await store.close();
    expect(store.isAvailable()).toBe(false);
    await expect(store.readUser('judy')).rejects.toMatchObject({ code: 'SG_ERR_STORE_UNAVAILABLE' });
  });
});
