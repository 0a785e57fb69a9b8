/**
 * The session service alone (sessions/service.ts): the memory store, a real decision cache and an
 * injected clock, no HTTP. Each case reads the outcome, the token check and the events emitted.
 */
import { afterEach, describe, expect, it, onTestFinished } from 'vitest';
import { DecisionCache } from '../../src/cache/decision-cache.js';
import type { SessionEvent, SessionEventType } from '../../src/sessions/events.js';
import { SessionService, type SessionServiceConfig } from '../../src/sessions/service.js';
import { MemorySessionStore } from '../../src/store/memory.js';
import type { SessionCommit } from '../../src/model.js';
import { testClock, type TestClock } from '../support/gateway.js';

const MIN = 60_000;
const HOUR = 60 * MIN;

const DEFAULTS: SessionServiceConfig = {
  limit: 1,
  onLimit: 'replace-oldest',
  idleTimeout: 30 * MIN,
  maxAge: 12 * HOUR,
  maxTokensPerSession: 4,
  activityInterval: MIN,
  consistency: 'cached',
};

interface Harness {
  readonly service: SessionService;
  readonly clock: TestClock;
  readonly events: SessionEvent[];
  readonly revoked: string[][];
  /** Resolves with the first event of `type` (already emitted, or the next one). */
  nextEvent(type: SessionEventType): Promise<SessionEvent>;
  login(
    user: string,
    token: string,
    extra?: { presentedTokenId?: string; ip?: string },
  ): ReturnType<SessionService['login']>;
}

const open: SessionService[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});

/** The memory store, counting the commits it is running at once (each yields once before applying). */
class CommitCountingStore extends MemorySessionStore {
  running = 0;
  mostRunning = 0;
  override async commit(change: SessionCommit): Promise<void> {
    this.running++;
    this.mostRunning = Math.max(this.mostRunning, this.running);
    try {
      await new Promise((resolve) => setImmediate(resolve));
      await super.commit(change);
    } finally {
      this.running--;
    }
  }
}

/** The memory store, counting token reads, with a promise for the next one's answer. */
class FindCountingStore extends MemorySessionStore {
  finds = 0;
  #waiting: (() => void)[] = [];
  override async find(tokenId: string): ReturnType<MemorySessionStore['find']> {
    this.finds++;
    try {
      return await super.find(tokenId);
    } finally {
      for (const resolve of this.#waiting.splice(0)) setImmediate(resolve);
    }
  }
  /** Resolves just after the next find has answered (and its caller has cached the answer). */
  nextFind(): Promise<void> {
    return new Promise((resolve) => this.#waiting.push(resolve));
  }
}

/**
 * The memory store, answering readUser only once `lookups` token lookups have started: a login that
 * waited for the user's sessions before looking its tokens up would never finish.
 */
class ReadsTogetherStore extends MemorySessionStore {
  lookups = 0;
  #wanted = Infinity;
  #started: (() => void) | undefined;
  expectLookups(n: number): void {
    this.#wanted = n;
  }
  override async readUser(user: string): ReturnType<MemorySessionStore['readUser']> {
    if (this.lookups < this.#wanted) await new Promise<void>((resolve) => (this.#started = resolve));
    return super.readUser(user);
  }
  override async lookup(tokenId: string): ReturnType<MemorySessionStore['lookup']> {
    this.lookups++;
    if (this.lookups >= this.#wanted) this.#started?.();
    return super.lookup(tokenId);
  }
}

/** The memory store, counting readUser calls, which wait while the test holds them (`hold`/`release`). */
class HeldReadsStore extends MemorySessionStore {
  reads = 0;
  #held: Promise<void> | undefined;
  #release: (() => void) | undefined;
  hold(): void {
    this.#held = new Promise((resolve) => (this.#release = resolve));
  }
  release(): void {
    this.#release?.();
    this.#held = undefined;
  }
  override async readUser(user: string): ReturnType<MemorySessionStore['readUser']> {
    this.reads++;
    await this.#held;
    return super.readUser(user);
  }
  /** A read of its own (another replica's), neither held nor counted. */
  readAsAnotherReplica(user: string): ReturnType<MemorySessionStore['readUser']> {
    return super.readUser(user);
  }
}

function harness(
  config: Partial<SessionServiceConfig> = {},
  makeStore: (options: { now: () => number; retention: number }) => MemorySessionStore = (o) =>
    new MemorySessionStore(o),
): Harness & { readonly store: MemorySessionStore } {
  const clock = testClock();
  const full = { ...DEFAULTS, ...config };
  // Ended and expired records stay readable for a maxAge, as the gateway builds its memory store.
  const store = makeStore({ now: clock.now, retention: full.maxAge });
  const cache = new DecisionCache({ max: 1000, maxStaleness: 5_000, now: clock.now });
  let counter = 0;
  const service = new SessionService({
    store,
    cache,
    config: full,
    now: clock.now,
    newId: () => `s${++counter}`,
  });
  open.push(service);
  const events: SessionEvent[] = [];
  const waiting: { type: SessionEventType; resolve: (e: SessionEvent) => void }[] = [];
  service.events.on((e) => {
    events.push(e);
    for (const w of waiting.filter((x) => x.type === e.type)) {
      waiting.splice(waiting.indexOf(w), 1);
      w.resolve(e);
    }
  });
  const revoked: string[][] = [];
  service.onRevoked((ids) => revoked.push([...ids]));
  return {
    service,
    store,
    clock,
    events,
    revoked,
    nextEvent: (type) => {
      const seen = events.find((e) => e.type === type);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve) => waiting.push({ type, resolve }));
    },
    login: (user, token, extra = {}) =>
      service.login({
        user,
        tokenIds: [token],
        ip: extra.ip ?? '198.51.100.1',
        userAgent: 'test-agent',
        ...(extra.presentedTokenId !== undefined && { presentedTokenId: extra.presentedTokenId }),
      }),
  };
}

const stateOf = async (h: Harness, token: string): Promise<string> => (await h.service.check(token)).state;
const types = (h: Harness): SessionEventType[] => h.events.map((e) => e.type);

describe('SessionService logins', () => {
  it('creates a session under the limit, live for its token, and emits session.created', async () => {
    const h = harness({ limit: 2 });
    const outcome = await h.login('ana', 'tok-a');
    expect(outcome.kind).toBe('created');
    if (outcome.kind !== 'created') return;
    expect(outcome.session).toMatchObject({ id: 's1', user: 'ana', state: 'live', tokenIds: ['tok-a'] });
    expect(outcome.ended).toEqual([]);
    expect(await stateOf(h, 'tok-a')).toBe('live');
    expect(h.events).toEqual([
      expect.objectContaining({ type: 'session.created', user: 'ana', sessionId: 's1', ended: 0 }),
    ]);
  });

  it('counts an unknown token as unknown', async () => {
    const h = harness();
    expect(await stateOf(h, 'never-seen')).toBe('unknown');
  });

  it('supersedes the oldest session past the limit and revokes its tokens', async () => {
    const h = harness({ limit: 2 });
    await h.login('ana', 'tok-1');
    h.clock.advance(MIN);
    await h.login('ana', 'tok-2');
    h.clock.advance(MIN);
    const third = await h.login('ana', 'tok-3', { ip: '203.0.113.7' });
    expect(third.kind).toBe('created');
    if (third.kind !== 'created') return;
    expect(third.ended.map((s) => [s.id, s.state])).toEqual([['s1', 'superseded']]);
    expect(await stateOf(h, 'tok-1')).toBe('superseded');
    expect(await stateOf(h, 'tok-2')).toBe('live');
    expect(await stateOf(h, 'tok-3')).toBe('live');
    expect(h.revoked).toContainEqual(['tok-1']);
    const superseded = await h.nextEvent('session.superseded');
    expect(superseded).toMatchObject({
      user: 'ana',
      sessionId: 's1',
      by: { sessionId: 's3', ip: '203.0.113.7' },
    });
    expect(types(h).filter((t) => t === 'session.created')).toHaveLength(3);
  });

  it('refuses a login past the limit under reject-new, keeps the live session and emits session.refused', async () => {
    const h = harness({ limit: 1, onLimit: 'reject-new' });
    await h.login('ana', 'tok-1');
    const second = await h.login('ana', 'tok-2');
    expect(second).toEqual({ kind: 'refused', live: 1, reason: 'limit' });
    expect(await stateOf(h, 'tok-1')).toBe('live');
    expect(await stateOf(h, 'tok-2')).toBe('unknown');
    expect(await h.nextEvent('session.refused')).toMatchObject({
      user: 'ana',
      reason: 'session_limit_reached',
    });
  });

  it('admits a login under reject-new once the live session has idled out, ending it as expired', async () => {
    const h = harness({ limit: 1, onLimit: 'reject-new', idleTimeout: 10 * MIN });
    await h.login('ana', 'tok-1');
    h.clock.advance(10 * MIN);
    const second = await h.login('ana', 'tok-2');
    expect(second.kind).toBe('created');
    if (second.kind !== 'created') return;
    expect(second.ended.map((s) => s.state)).toEqual(['expired']);
    expect(await h.nextEvent('session.expired')).toMatchObject({ sessionId: 's1' });
  });

  it('answers the same session when the same token logs in again for the same user', async () => {
    const h = harness({ limit: 1 });
    await h.login('ana', 'tok-1');
    const again = await h.login('ana', 'tok-1');
    expect(again).toMatchObject({ kind: 'existing', session: { id: 's1' } });
    expect(types(h)).toEqual(['session.created']);
  });

  it('replaces the session of the same browser on a re-login without signing out another device', async () => {
    const h = harness({ limit: 2 });
    await h.login('ana', 'phone');
    await h.login('ana', 'laptop-old');
    const relogin = await h.login('ana', 'laptop-new', { presentedTokenId: 'laptop-old' });
    expect(relogin).toMatchObject({
      kind: 'created',
      replaced: { id: 's2', state: 'superseded' },
      ended: [],
    });
    expect(await stateOf(h, 'phone')).toBe('live');
    expect(await h.nextEvent('session.replaced')).toMatchObject({ sessionId: 's2', reason: 'replaced' });
    expect(types(h)).not.toContain('session.superseded');
  });
});

describe('SessionService login reads', () => {
  it("looks up the presented and the secondary tokens while the user's sessions are read, not after", async () => {
    let store: ReadsTogetherStore | undefined;
    const h = harness({ limit: 2 }, (o) => (store = new ReadsTogetherStore(o)));
    store?.expectLookups(0);
    await h.login('ana', 'old');
    store?.expectLookups((store?.lookups ?? 0) + 3);
    const outcome = await h.service.login({
      user: 'ana',
      tokenIds: ['new', 'remember-1', 'remember-2'],
      ip: '198.51.100.1',
      userAgent: 'test-agent',
      presentedTokenId: 'old',
    });
    expect(outcome).toMatchObject({ kind: 'created', replaced: { state: 'superseded' } });
    if (outcome.kind === 'created')
      expect(outcome.session.tokenIds).toEqual(['new', 'remember-1', 'remember-2']);
  });
});

describe('SessionService expiry', () => {
  it('expires a session idle for idleTimeout, at its next check, and emits session.expired once', async () => {
    const h = harness({ idleTimeout: 10 * MIN });
    await h.login('ana', 'tok');
    h.clock.advance(10 * MIN - 1);
    expect(await stateOf(h, 'tok')).toBe('live');
    // The check above was activity: idleness is measured from it.
    h.clock.advance(10 * MIN);
    expect(await stateOf(h, 'tok')).toBe('expired');
    expect(await h.nextEvent('session.expired')).toMatchObject({
      user: 'ana',
      sessionId: 's1',
      reason: 'expired',
    });
    expect(await stateOf(h, 'tok')).toBe('expired');
    // A later event: anything the checks above set off has been emitted by now.
    await h.service.endSessions('nobody', undefined, 'ended_by_admin');
    await h.login('bo', 'tok-bo');
    expect(types(h).filter((t) => t === 'session.expired')).toHaveLength(1);
  });

  it('expires an active session at maxAge however recent its last request', async () => {
    const h = harness({ idleTimeout: 30 * MIN, maxAge: HOUR });
    await h.login('ana', 'tok');
    for (let i = 0; i < 3; i++) {
      h.clock.advance(20 * MIN - 1);
      expect(await stateOf(h, 'tok')).toBe('live');
    }
    h.clock.advance(3);
    expect(await stateOf(h, 'tok')).toBe('expired');
    expect(await h.nextEvent('session.expired')).toMatchObject({ sessionId: 's1' });
  });

  it('leaves idle sessions out of the listing', async () => {
    const h = harness({ limit: 3, idleTimeout: 10 * MIN });
    await h.login('ana', 'old');
    h.clock.advance(6 * MIN);
    await h.login('ana', 'new');
    h.clock.advance(5 * MIN);
    expect((await h.service.listSessions('ana')).map((s) => s.id)).toEqual(['s2']);
  });
});

describe('SessionService refresh, logout and ending', () => {
  it('adds a refreshed token to the live session of the presented one', async () => {
    const h = harness();
    await h.login('ana', 'tok-1');
    const session = await h.service.addTokens('tok-1', ['tok-2']);
    expect(session).toMatchObject({ id: 's1', tokenIds: ['tok-1', 'tok-2'] });
    expect(await h.service.check('tok-2')).toMatchObject({ state: 'live', session: { id: 's1' } });
  });

  it('refuses to refresh from a token that is not live', async () => {
    const h = harness({ limit: 1 });
    await h.login('ana', 'tok-1');
    await h.login('ana', 'tok-2');
    expect(await h.service.addTokens('tok-1', ['tok-1b'])).toBeUndefined();
    expect(await stateOf(h, 'tok-1b')).toBe('unknown');
    expect(await h.service.addTokens('never-seen', ['x'])).toBeUndefined();
  });

  it('logs a session out by its token, revoking every token of it and emitting session.logged_out', async () => {
    const h = harness();
    await h.login('ana', 'tok-1');
    await h.service.addTokens('tok-1', ['tok-2']);
    const ended = await h.service.endByToken('tok-2', 'logged_out');
    expect(ended).toMatchObject({ id: 's1', state: 'logged_out' });
    expect(await stateOf(h, 'tok-1')).toBe('logged_out');
    expect(await stateOf(h, 'tok-2')).toBe('logged_out');
    expect(h.revoked.at(-1)?.sort()).toEqual(['tok-1', 'tok-2']);
    expect(await h.nextEvent('session.logged_out')).toMatchObject({ user: 'ana', sessionId: 's1' });
  });

  it('logs out nothing for a token without a live session', async () => {
    const h = harness();
    expect(await h.service.endByToken('never-seen', 'logged_out')).toBeUndefined();
    expect(types(h)).toEqual([]);
  });

  it('ends every session of a user by admin, except none, naming the admin as actor', async () => {
    const h = harness({ limit: 3 });
    await h.login('ana', 'a1');
    await h.login('ana', 'a2');
    await h.login('bo', 'b1');
    const ended = await h.service.endSessions('ana', undefined, 'ended_by_admin', { actor: 'admin' });
    expect(ended.map((s) => s.id).sort()).toEqual(['s1', 's2']);
    expect(await stateOf(h, 'a1')).toBe('ended_by_admin');
    expect(await stateOf(h, 'a2')).toBe('ended_by_admin');
    expect(await stateOf(h, 'b1')).toBe('live');
    const endedEvents = h.events.filter((e) => e.type === 'session.ended');
    expect(endedEvents).toHaveLength(2);
    expect(endedEvents[0]).toMatchObject({ user: 'ana', reason: 'ended_by_admin', by: { actor: 'admin' } });
  });

  it('ends the other sessions of a user but the one asking (sign out everywhere else)', async () => {
    const h = harness({ limit: 3 });
    await h.login('ana', 'a1');
    await h.login('ana', 'a2');
    await h.login('ana', 'a3');
    const ended = await h.service.endSessions('ana', undefined, 'ended_by_user', {
      exceptSessionId: 's3',
      actor: 'user',
    });
    expect(ended.map((s) => s.id).sort()).toEqual(['s1', 's2']);
    expect(await stateOf(h, 'a3')).toBe('live');
    expect(h.events.filter((e) => e.type === 'session.ended').map((e) => e.by?.actor)).toEqual([
      'user',
      'user',
    ]);
  });

  it('records a session already past maxAge as expired when an admin ends it', async () => {
    const h = harness({ maxAge: HOUR, idleTimeout: 2 * HOUR });
    await h.login('ana', 'tok');
    h.clock.advance(HOUR);
    const [ended] = await h.service.endSessions('ana', undefined, 'ended_by_admin', { actor: 'admin' });
    expect(ended?.state).toBe('expired');
    expect(await h.nextEvent('session.expired')).toMatchObject({ sessionId: 's1' });
  });

  it('drops its waiting ends of expired sessions once another replica has ended them', async () => {
    let store: HeldReadsStore | undefined;
    const h = harness({ maxAge: HOUR, idleTimeout: 2 * HOUR }, (o) => (store = new HeldReadsStore(o)));
    const users = Array.from({ length: 40 }, (_, i) => `user${i}`);
    for (const u of users) await h.login(u, `tok-${u}`);
    h.clock.advance(HOUR);
    // Seen expired here: 40 ends queued, the first few held in their reads, the rest waiting.
    const before = store?.reads ?? 0;
    store?.hold();
    onTestFinished(() => store?.release());
    await Promise.all(users.map((u) => stateOf(h, `tok-${u}`)));
    const reads = store?.reads ?? 0;
    expect(reads - before).toBeGreaterThan(0);
    expect(reads - before).toBeLessThan(users.length);
    // Another replica ends every one of them; its messages reach this replica.
    for (const u of users) {
      const { version, live } = (await store?.readAsAnotherReplica(u)) ?? { version: 0, live: [] };
      await store?.commit({
        user: u,
        expectedVersion: version,
        end: live.map((s) => ({ sessionId: s.id, state: 'expired' as const })),
        at: h.clock.now(),
      });
    }
    store?.release();
    await h.service.close();
    // The ends in flight finished (finding nothing to do); none of the waiting ones read the store.
    expect(store?.reads).toBe(reads);
    expect(h.events.filter((e) => e.type === 'session.expired')).toEqual([]);
  });

  it('writes the ends of sessions seen expired all at once a few at a time, and every one of them', async () => {
    let counting: CommitCountingStore | undefined;
    const h = harness(
      { maxAge: HOUR, idleTimeout: 2 * HOUR },
      (o) => (counting = new CommitCountingStore(o)),
    );
    const users = Array.from({ length: 200 }, (_, i) => `user${i}`);
    for (const u of users) await h.login(u, `tok-${u}`);
    h.clock.advance(HOUR);
    const states = await Promise.all(users.map((u) => stateOf(h, `tok-${u}`)));
    expect(new Set(states)).toEqual(new Set(['expired']));
    // Every end is written: one session.expired each, once the background writes are done.
    await h.service.close();
    expect(h.events.filter((e) => e.type === 'session.expired')).toHaveLength(200);
    expect(await h.store.countLive()).toBe(0);
    expect(counting?.mostRunning).toBeGreaterThan(1);
    expect(counting?.mostRunning).toBeLessThanOrEqual(16);
  });

  it('reads a session in use again before its decision stops being trusted, so its requests never wait', async () => {
    let store: FindCountingStore | undefined;
    // The harness's cache trusts a decision for 5 s; the read ahead starts at 4 s.
    const h = harness({}, (o) => (store = new FindCountingStore(o)));
    await h.login('ana', 'tok');
    h.clock.advance(3_900);
    expect(h.service.check('tok')).toMatchObject({ state: 'live' });
    expect(store?.finds).toBe(0);
    h.clock.advance(200);
    const readAhead = store?.nextFind();
    // Answered from the cache at once; the read goes on behind it.
    expect(h.service.check('tok')).toMatchObject({ state: 'live' });
    expect(store?.finds).toBe(1);
    await readAhead;
    // 6.1 s after the login, 2 s after the read: still trusted, answered without a promise.
    h.clock.advance(2_000);
    const later = h.service.check('tok');
    expect(later).not.toBeInstanceOf(Promise);
    expect(later).toMatchObject({ state: 'live' });
    expect(store?.finds).toBe(1);
  });

  it('refuses a token whose cached session is past its expiresAt without asking the store', async () => {
    let store: FindCountingStore | undefined;
    const h = harness({ maxAge: HOUR, idleTimeout: 2 * HOUR }, (o) => (store = new FindCountingStore(o)));
    await h.login('ana', 'tok');
    h.clock.advance(HOUR);
    const check = h.service.check('tok');
    expect(check).not.toBeInstanceOf(Promise);
    expect(check).toMatchObject({ state: 'expired' });
    expect(store?.finds).toBe(0);
    expect(await h.nextEvent('session.expired')).toMatchObject({ sessionId: 's1' });
  });
});
