/**
 * The SessionStore contract, run against every store (memory, Redis standalone, Cluster, Sentinel).
 * Each test gets a fresh store from `makeStore` (and registers its cleanup at once) and a settable
 * clock; clocks start at the real time because Redis TTLs are real time.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { StoreConflictError } from '../../src/errors.js';
import { decideLogin } from '../../src/sessions/policy.js';
import type { SessionStore } from '../../src/store/contract.js';
import type { Invalidation, InvalidationListener, SessionRecord } from '../../src/model.js';

export interface StoreHarness {
  readonly store: SessionStore;
  /** The store's clock (epoch ms); tests move it. */
  readonly clock: { value: number };
  cleanup(): Promise<void>;
}

const HOUR = 3_600_000;
/** Invalidations cross a real pub/sub connection for Redis: poll, never sleep a fixed time. */
const DELIVERY = { timeout: 5_000, interval: 10 };

export function sessionRecord(
  user: string,
  at: number,
  overrides: Partial<SessionRecord> = {},
): SessionRecord {
  const id = overrides.id ?? `s-${randomUUID()}`;
  return {
    id,
    user,
    state: 'live',
    createdAt: at,
    lastSeenAt: at,
    expiresAt: at + HOUR,
    ip: '203.0.113.7',
    userAgent: 'Mozilla/5.0 (contract test)',
    tokenIds: [`t-${randomUUID()}`, `t-${randomUUID()}`],
    ...overrides,
  };
}

/** A unique user per test, so stores sharing a Redis never see each other's data. */
function newUser(): string {
  return `user-${randomUUID()}`;
}

/** Records every listener callback. */
export function recordingListener(): InvalidationListener & {
  readonly invalidated: string[];
  readonly messages: Invalidation[];
  readonly events: string[];
} {
  const invalidated: string[] = [];
  const messages: Invalidation[] = [];
  const events: string[] = [];
  return {
    invalidated,
    messages,
    events,
    onInvalidate(m: Invalidation) {
      invalidated.push(...m.tokenIds);
      messages.push(m);
      events.push('invalidate');
    },
    onChannelLost() {
      events.push('lost');
    },
    onChannelRestored() {
      events.push('restored');
    },
  };
}

/** Store options every implementation takes. */
export interface StoreOptions {
  /** Milliseconds a session stays readable by token after its expiresAt. */
  readonly retention?: number;
  /** Milliseconds the token ids of a session stay dead after its expiresAt. */
  readonly tombstoneRetention?: number;
}

/** `skip`: the store needs a tool this machine lacks (the caller's `needTool` has said so). */
export function describeStoreContract(
  name: string,
  makeStore: (options?: StoreOptions) => Promise<StoreHarness>,
  { skip = false }: { skip?: boolean } = {},
): void {
  describe.skipIf(skip)(`SessionStore contract: ${name}`, () => {
    async function setup(options?: StoreOptions): Promise<StoreHarness> {
      const h = await makeStore(options);
      onTestFinished(() => h.cleanup());
      return h;
    }

    /** Commits one new live session for the user on top of the current version. */
    async function login(h: StoreHarness, user: string, overrides: Partial<SessionRecord> = {}) {
      const { version } = await h.store.readUser(user);
      const session = sessionRecord(user, h.clock.value, overrides);
      await h.store.commit({ user, expectedVersion: version, create: session, end: [], at: h.clock.value });
      return session;
    }

    async function end(h: StoreHarness, session: SessionRecord, state: 'superseded' | 'logged_out') {
      const { version } = await h.store.readUser(session.user);
      await h.store.commit({
        user: session.user,
        expectedVersion: version,
        end: [{ sessionId: session.id, state, endedBy: { sessionId: 'newer', ip: '198.51.100.1' } }],
        at: h.clock.value,
      });
    }

    it('reports commands answered and the invalidation channel up once ready, with no reason', async () => {
      const h = await setup();
      expect(h.store.health()).toEqual({ commands: true, channel: true });
      expect(h.store.isAvailable()).toBe(true);
    });

    it('stays healthy through commits, lookups and the invalidations they publish', async () => {
      const h = await setup();
      const listener = recordingListener();
      onTestFinished(h.store.watch(listener));
      const user = newUser();
      const session = await login(h, user);
      await end(h, session, 'logged_out');
      await vi.waitFor(() => expect(listener.invalidated).toContain(session.tokenIds[0]), DELIVERY);
      expect((await h.store.lookup(session.tokenIds[0] as string))?.session.state).toBe('logged_out');
      expect(h.store.health()).toEqual({ commands: true, channel: true });
    });

    it('reads an unknown user as version 0 with no live sessions', async () => {
      const { store } = await setup();
      const user = newUser();
      expect(await store.readUser(user)).toEqual({ user, version: 0, live: [] });
    });

    it('lists a committed session as live', async () => {
      const h = await setup();
      const user = newUser();
      const session = await login(h, user);
      const { live } = await h.store.readUser(user);
      expect(live).toEqual([session]);
    });

    it('finds a committed session by each of its token ids', async () => {
      const h = await setup();
      const session = await login(h, newUser());
      for (const tokenId of session.tokenIds) {
        expect(await h.store.lookup(tokenId)).toEqual({ tokenId, session });
      }
    });

    it('returns undefined for an unknown token id', async () => {
      const { store } = await setup();
      expect(await store.lookup(`t-${randomUUID()}`)).toBeUndefined();
    });

    it('bumps the version on every commit', async () => {
      const h = await setup();
      const user = newUser();
      const v0 = (await h.store.readUser(user)).version;
      await login(h, user);
      const v1 = (await h.store.readUser(user)).version;
      await login(h, user);
      const v2 = (await h.store.readUser(user)).version;
      expect(v1).toBeGreaterThan(v0);
      expect(v2).toBeGreaterThan(v1);
    });

    it('rejects a commit whose expected version moved', async () => {
      const h = await setup();
      const user = newUser();
      const stale = await h.store.readUser(user);
      await login(h, user);
      const loser = sessionRecord(user, h.clock.value);
      const attempt = h.store.commit({
        user,
        expectedVersion: stale.version,
        create: loser,
        end: [],
        at: h.clock.value,
      });
      await expect(attempt).rejects.toBeInstanceOf(StoreConflictError);
      await expect(attempt).rejects.toMatchObject({ code: 'SG_ERR_STORE_CONFLICT' });
    });

    it('applies nothing of a rejected commit', async () => {
      const h = await setup();
      const user = newUser();
      const stale = await h.store.readUser(user);
      const first = await login(h, user);
      const before = await h.store.readUser(user);
      const loser = sessionRecord(user, h.clock.value);
      await expect(
        h.store.commit({
          user,
          expectedVersion: stale.version,
          create: loser,
          end: [{ sessionId: first.id, state: 'superseded' }],
          at: h.clock.value,
        }),
      ).rejects.toBeInstanceOf(StoreConflictError);
      expect(await h.store.readUser(user)).toEqual(before);
      for (const t of loser.tokenIds) expect(await h.store.lookup(t)).toBeUndefined();
    });

    it('keeps an ended session readable by token as a tombstone with its state and endedBy', async () => {
      const h = await setup();
      const session = await login(h, newUser());
      h.clock.value += 1_000;
      await end(h, session, 'superseded');
      for (const tokenId of session.tokenIds) {
        expect(await h.store.lookup(tokenId)).toEqual({
          tokenId,
          session: {
            ...session,
            state: 'superseded',
            endedAt: h.clock.value,
            endedBy: { sessionId: 'newer', ip: '198.51.100.1' },
          },
        });
      }
    });

    it('no longer lists an ended session as live', async () => {
      const h = await setup();
      const user = newUser();
      const kept = await login(h, user);
      const ended = await login(h, user);
      await end(h, ended, 'logged_out');
      expect((await h.store.readUser(user)).live).toEqual([kept]);
    });

    it('keeps the first reason when an ended session is ended again', async () => {
      const h = await setup();
      const session = await login(h, newUser());
      await end(h, session, 'logged_out');
      await end(h, session, 'superseded');
      expect((await h.store.lookup(session.tokenIds[0] as string))?.session.state).toBe('logged_out');
    });

    it('creates and ends sessions in one commit', async () => {
      const h = await setup();
      const user = newUser();
      const old = await login(h, user);
      const snapshot = await h.store.readUser(user);
      const fresh = sessionRecord(user, h.clock.value);
      await h.store.commit({
        user,
        expectedVersion: snapshot.version,
        create: fresh,
        end: [{ sessionId: old.id, state: 'superseded' }],
        at: h.clock.value,
      });
      expect((await h.store.readUser(user)).live).toEqual([fresh]);
      expect((await h.store.lookup(old.tokenIds[0] as string))?.session.state).toBe('superseded');
    });

    it('ends with exactly one live session after 20 concurrent logins with limit 1', async () => {
      const h = await setup();
      const user = newUser();
      const policy = { limit: 1, onLimit: 'replace-oldest', idleTimeout: HOUR } as const;
      const loginLoop = async (i: number): Promise<SessionRecord> => {
        const session = sessionRecord(user, h.clock.value + i, { id: `s-${i}` });
        for (;;) {
          const snapshot = await h.store.readUser(user);
          const decision = decideLogin(snapshot.live, { at: session.createdAt }, policy);
          if (decision.kind !== 'admit') throw new Error('replace-oldest never refuses');
          try {
            await h.store.commit({
              user,
              expectedVersion: snapshot.version,
              create: session,
              end: decision.end,
              at: session.createdAt,
            });
            return session;
          } catch (err) {
            if (!(err instanceof StoreConflictError)) throw err;
          }
        }
      };
      const sessions = await Promise.all(Array.from({ length: 20 }, (_, i) => loginLoop(i)));
      const { live } = await h.store.readUser(user);
      expect(live).toHaveLength(1);
      const states = await Promise.all(
        sessions.map(async (s) => (await h.store.lookup(s.tokenIds[0] as string))?.session.state),
      );
      expect(states.filter((s) => s === 'live')).toHaveLength(1);
      expect(states.filter((s) => s === 'superseded')).toHaveLength(19);
    });

    it('adds token ids to a live session and finds the session by them', async () => {
      const h = await setup();
      const session = await login(h, newUser());
      const updated = await h.store.addTokens(session.user, session.id, ['t-new'], 8);
      expect(updated).toEqual({ ...session, tokenIds: [...session.tokenIds, 't-new'] });
      expect(await h.store.lookup('t-new')).toEqual({ tokenId: 't-new', session: updated });
    });

    it('drops the oldest token ids beyond maxTokens from the list', async () => {
      const h = await setup();
      const session = await login(h, newUser(), { tokenIds: ['t-a', 't-b'] });
      const updated = await h.store.addTokens(session.user, session.id, ['t-c', 't-d'], 3);
      expect(updated?.tokenIds).toEqual(['t-b', 't-c', 't-d']);
      expect((await h.store.lookup('t-b'))?.session.tokenIds).toEqual(['t-b', 't-c', 't-d']);
    });

    it('keeps a dropped token id with its session, so it shares the session end', async () => {
      const h = await setup();
      const a = `t-${randomUUID()}`;
      const session = await login(h, newUser(), { tokenIds: [a] });
      await h.store.addTokens(session.user, session.id, ['t-x', 't-y'], 1);
      expect((await h.store.lookup(a))?.session.id).toBe(session.id);
      await end(h, session, 'superseded');
      expect((await h.store.lookup(a))?.session.state).toBe('superseded');
    });

    it('keeps the pinned token ids (those the login issued) outside the cap', async () => {
      const h = await setup();
      const session = await login(h, newUser(), { tokenIds: ['t-sid', 't-remember'], pinned: 2 });
      await h.store.addTokens(session.user, session.id, ['t-r1', 't-r2'], 2, 2);
      const updated = await h.store.addTokens(session.user, session.id, ['t-r3'], 2, 2);
      expect(updated?.tokenIds).toEqual(['t-sid', 't-remember', 't-r2', 't-r3']);
      expect(updated?.pinned).toBe(2);
    });

    it('publishes nothing for token ids dropped from a live session', async () => {
      const h = await setup();
      const listener = recordingListener();
      onTestFinished(h.store.watch(listener));
      const a = `t-${randomUUID()}`;
      const session = await login(h, newUser(), { tokenIds: [a] });
      await h.store.addTokens(session.user, session.id, ['t-x'], 1);
      // The session's end is published after the drop would have been: only it arrives.
      await end(h, session, 'logged_out');
      await vi.waitFor(() => expect(listener.messages.length).toBeGreaterThan(0), DELIVERY);
      expect(listener.messages).toHaveLength(1);
      expect(listener.messages[0]?.tokenIds).toEqual(['t-x']);
    });

    it('remembers an anonymous token id: find answers anonymous, lookup nothing', async () => {
      const h = await setup();
      const anon = `t-${randomUUID()}`;
      expect(await h.store.find(anon)).toBeUndefined();
      await h.store.rememberAnonymous([anon], HOUR);
      expect(await h.store.find(anon)).toBe('anonymous');
      expect(await h.store.lookup(anon)).toBeUndefined();
    });

    it('never makes a token id of a session anonymous', async () => {
      const h = await setup();
      const session = await login(h, newUser());
      const token = session.tokenIds[0] as string;
      await h.store.rememberAnonymous([token], HOUR);
      const found = await h.store.find(token);
      expect(typeof found === 'string' ? found : found?.session.id).toBe(session.id);
    });

    it('makes an anonymous token id the session one when a login issues it', async () => {
      const h = await setup();
      const anon = `t-${randomUUID()}`;
      await h.store.rememberAnonymous([anon], HOUR);
      const session = await login(h, newUser(), { tokenIds: [anon] });
      const found = await h.store.find(anon);
      expect(typeof found === 'string' ? found : found?.session.id).toBe(session.id);
    });

    it('moves a re-added token id to the newest position instead of duplicating it', async () => {
      const h = await setup();
      const session = await login(h, newUser(), { tokenIds: ['t-a', 't-b'] });
      const updated = await h.store.addTokens(session.user, session.id, ['t-a'], 8);
      expect(updated?.tokenIds).toEqual(['t-b', 't-a']);
    });

    it('returns undefined when adding tokens to an ended session', async () => {
      const h = await setup();
      const session = await login(h, newUser());
      await end(h, session, 'logged_out');
      expect(await h.store.addTokens(session.user, session.id, ['t-late'], 8)).toBeUndefined();
      expect(await h.store.lookup('t-late')).toBeUndefined();
    });

    it('returns undefined when adding tokens to an unknown session', async () => {
      const h = await setup();
      expect(await h.store.addTokens(newUser(), 'no-such-session', ['t-none'], 8)).toBeUndefined();
    });

    it('moves lastSeenAt forward on touch', async () => {
      const h = await setup();
      const session = await login(h, newUser());
      await h.store.touch(session.user, session.id, session.lastSeenAt + 5_000);
      expect((await h.store.readUser(session.user)).live[0]?.lastSeenAt).toBe(session.lastSeenAt + 5_000);
    });

    it('never moves lastSeenAt back on touch', async () => {
      const h = await setup();
      const session = await login(h, newUser());
      await h.store.touch(session.user, session.id, session.lastSeenAt + 5_000);
      await h.store.touch(session.user, session.id, session.lastSeenAt + 1_000);
      expect((await h.store.readUser(session.user)).live[0]?.lastSeenAt).toBe(session.lastSeenAt + 5_000);
    });

    it('ignores a touch of an ended session', async () => {
      const h = await setup();
      const session = await login(h, newUser());
      await end(h, session, 'logged_out');
      await h.store.touch(session.user, session.id, session.lastSeenAt + 5_000);
      expect((await h.store.lookup(session.tokenIds[0] as string))?.session.lastSeenAt).toBe(
        session.lastSeenAt,
      );
    });

    it('ignores a touch of an unknown session', async () => {
      const h = await setup();
      const user = newUser();
      await h.store.touch(user, 'no-such-session', h.clock.value);
      expect(await h.store.readUser(user)).toEqual({ user, version: 0, live: [] });
    });

    it('sends watchers the token ids of ended sessions', async () => {
      const h = await setup();
      const listener = recordingListener();
      onTestFinished(h.store.watch(listener));
      const session = await login(h, newUser());
      await end(h, session, 'superseded');
      await vi.waitFor(
        () => expect(listener.invalidated).toEqual(expect.arrayContaining([...session.tokenIds])),
        DELIVERY,
      );
    });

    it('sends watchers the ended sessions as committed, so they need no read to reject the tokens', async () => {
      const h = await setup();
      const listener = recordingListener();
      onTestFinished(h.store.watch(listener));
      const session = await login(h, newUser(), { tokenIds: [`t-${randomUUID()}`, `t-${randomUUID()}`] });
      await end(h, session, 'superseded');
      await vi.waitFor(() => expect(listener.messages).toHaveLength(1), DELIVERY);
      const stored = (await h.store.lookup(session.tokenIds[0] as string))?.session;
      expect(stored?.state).toBe('superseded');
      // All a cached decision keeps (CachedSession): the User-Agent, say, is not in a Redis message.
      const cached = ({ ip: _ip, userAgent: _ua, location: _l, geo: _g, ...rest }: SessionRecord) => rest;
      expect(listener.messages[0]?.ended?.map(cached)).toEqual([stored && cached(stored)]);
    });

    it('sends watchers every token id and ended session of many ends committed at once', async () => {
      const h = await setup();
      const listener = recordingListener();
      onTestFinished(h.store.watch(listener));
      const sessions = await Promise.all(Array.from({ length: 40 }, () => login(h, newUser())));
      await Promise.all(sessions.map((s) => end(h, s, 'superseded')));
      const ids = sessions.flatMap((s) => s.tokenIds);
      await vi.waitFor(() => expect(new Set(listener.invalidated)).toEqual(new Set(ids)), DELIVERY);
      const ended = listener.messages.flatMap((m) => m.ended ?? []);
      expect(new Set(ended.map((s) => s.id))).toEqual(new Set(sessions.map((s) => s.id)));
      expect(ended.every((s) => s.state === 'superseded')).toBe(true);
    });

    it('stops sending to a watcher once unsubscribed', async () => {
      const h = await setup();
      const gone = recordingListener();
      const stays = recordingListener();
      const unwatch = h.store.watch(gone);
      onTestFinished(h.store.watch(stays));
      unwatch();
      const session = await login(h, newUser());
      await end(h, session, 'logged_out');
      // Both are fed from the same message: once one has it, the other would have too.
      await vi.waitFor(() => expect(stays.invalidated).toContain(session.tokenIds[0]), DELIVERY);
      expect(gone.invalidated).toEqual([]);
    });

    it('does not return a session past its expiresAt by token or as live', async () => {
      const h = await setup();
      const session = await login(h, newUser());
      h.clock.value = session.expiresAt;
      expect(await h.store.lookup(session.tokenIds[0] as string)).toBeUndefined();
      expect((await h.store.readUser(session.user)).live).toEqual([]);
    });

    it('does not return a tombstone past its expiresAt', async () => {
      const h = await setup();
      const session = await login(h, newUser());
      await end(h, session, 'superseded');
      h.clock.value = session.expiresAt + 1;
      expect(await h.store.lookup(session.tokenIds[1] as string)).toBeUndefined();
    });

    it('keeps a session readable by token during the retention after its expiresAt', async () => {
      const h = await setup({ retention: HOUR });
      const session = await login(h, newUser());
      h.clock.value = session.expiresAt + HOUR - 1;
      expect(await h.store.lookup(session.tokenIds[0] as string)).toEqual({
        tokenId: session.tokenIds[0],
        session,
      });
    });

    it('lists a session past its expiresAt that nothing ended, so a commit can end it as expired', async () => {
      const h = await setup({ retention: HOUR });
      const session = await login(h, newUser());
      h.clock.value = session.expiresAt + 1;
      const snapshot = await h.store.readUser(session.user);
      expect(snapshot.live).toEqual([session]);
      await h.store.commit({
        user: session.user,
        expectedVersion: snapshot.version,
        end: [{ sessionId: session.id, state: 'expired' }],
        at: h.clock.value,
      });
      expect((await h.store.readUser(session.user)).live).toEqual([]);
      expect((await h.store.lookup(session.tokenIds[0] as string))?.session.state).toBe('expired');
    });

    it('counts live sessions: not ended and not past their expiresAt', async () => {
      const h = await setup({ retention: HOUR });
      expect(await h.store.countLive()).toBe(0);
      const a = newUser();
      const short = await login(h, a, { expiresAt: h.clock.value + 60_000 });
      const ended = await login(h, a);
      await login(h, a);
      await login(h, newUser());
      expect(await h.store.countLive()).toBe(4);
      await end(h, ended, 'logged_out');
      expect(await h.store.countLive()).toBe(3);
      h.clock.value = short.expiresAt;
      expect(await h.store.countLive()).toBe(2);
      // Ending a session that was already past its expiresAt changes nothing more.
      const { version } = await h.store.readUser(a);
      await h.store.commit({
        user: a,
        expectedVersion: version,
        end: [{ sessionId: short.id, state: 'expired' }],
        at: h.clock.value,
      });
      expect(await h.store.countLive()).toBe(2);
    });

    it('answers dead for the token ids of a dropped session, rotated-out ones too, within tombstoneRetention', async () => {
      const h = await setup({ retention: HOUR, tombstoneRetention: 10 * HOUR });
      const a = `t-${randomUUID()}`;
      const b = `t-${randomUUID()}`;
      const session = await login(h, newUser(), { tokenIds: [a] });
      await h.store.addTokens(session.user, session.id, [b, `t-${randomUUID()}`], 1);
      await end(h, session, 'superseded');
      h.clock.value = session.expiresAt + HOUR;
      for (const t of [a, b]) {
        expect(await h.store.find(t)).toBe('dead');
        expect(await h.store.lookup(t)).toBeUndefined();
      }
      h.clock.value = session.expiresAt + 10 * HOUR - 1;
      expect(await h.store.find(b)).toBe('dead');
    });

    it('answers dead for a session that expired unused, once its record is dropped', async () => {
      const h = await setup({ retention: HOUR, tombstoneRetention: 10 * HOUR });
      const session = await login(h, newUser());
      h.clock.value = session.expiresAt + HOUR;
      expect(await h.store.find(session.tokenIds[1] as string)).toBe('dead');
    });

    it('forgets a dead token id once tombstoneRetention after its session expiresAt is over', async () => {
      const h = await setup({ retention: HOUR, tombstoneRetention: 10 * HOUR });
      const session = await login(h, newUser());
      await end(h, session, 'logged_out');
      h.clock.value = session.expiresAt + 10 * HOUR;
      expect(await h.store.find(session.tokenIds[0] as string)).toBeUndefined();
    });

    it('never makes a dead token id anonymous, and lets a new login issue it again', async () => {
      const h = await setup({ retention: HOUR, tombstoneRetention: 10 * HOUR });
      const old = await login(h, newUser());
      const token = old.tokenIds[0] as string;
      await end(h, old, 'superseded');
      h.clock.value = old.expiresAt + HOUR;
      await h.store.rememberAnonymous([token], HOUR);
      expect(await h.store.find(token)).toBe('dead');
      const fresh = await login(h, newUser(), { tokenIds: [token] });
      const found = await h.store.find(token);
      expect(typeof found === 'string' ? found : found?.session.id).toBe(fresh.id);
    });

    it('forgets a session once its retention is over', async () => {
      const h = await setup({ retention: HOUR });
      const session = await login(h, newUser());
      h.clock.value = session.expiresAt + HOUR;
      expect(await h.store.lookup(session.tokenIds[0] as string)).toBeUndefined();
    });

    it('keeps users apart whatever their names (unicode, braces, newlines, lone surrogates)', async () => {
      const h = await setup();
      const tag = randomUUID();
      const users = [
        `Zoë ✓ 用户 ${tag}`,
        `}${tag}`,
        `{u:${tag}}`,
        `{u:${tag}}:sessions`,
        `line\nbreak ${tag}`,
        `${tag}\r\n`,
        `\ud800${tag}`,
        `\udfff${tag}`,
        `a|b ${tag}`,
        `"quoted" ${tag}`,
        '',
      ];
      const sessions = [];
      for (const user of users) sessions.push(await login(h, user));
      for (const [i, user] of users.entries()) {
        const { live } = await h.store.readUser(user);
        expect(live).toEqual([sessions[i]]);
        expect(live[0]?.user).toBe(user);
      }
    });

    it('reads the user 1 back as the string "1"', async () => {
      const h = await setup();
      const user = String(1);
      const before = await h.store.readUser(user);
      const session = await login(h, user);
      const { live, user: read } = await h.store.readUser('1');
      expect(read).toBe('1');
      expect(live.map((s) => s.id)).toContain(session.id);
      expect(live.every((s) => s.user === '1')).toBe(true);
      expect(before.user).toBe('1');
    });

    it('keeps the geo and the new-device and new-location flags of a session', async () => {
      const h = await setup();
      const geo = { country: 'DE', region: 'State of Berlin', city: 'Berlin' };
      const session = await login(h, newUser(), { geo, newDevice: true, newLocation: true });
      const [listed] = (await h.store.readUser(session.user)).live;
      expect(listed).toEqual(session);
      expect((await h.store.lookup(session.tokenIds[0] as string))?.session).toEqual(session);
      await end(h, session, 'superseded');
      const dead = (await h.store.lookup(session.tokenIds[0] as string))?.session;
      expect(dead?.geo).toEqual(geo);
      expect(dead?.newDevice).toBe(true);
    });

    describe('login history', () => {
      const DAY = 24 * HOUR;
      const bounds = { max: 20, window: 90 * DAY };

      it('reads nothing for a user never recorded', async () => {
        const h = await setup();
        expect(await h.store.history.read(newUser(), 0)).toEqual([]);
      });

      it('reads recorded entries newest first, a country only where one was recorded', async () => {
        const h = await setup();
        const user = newUser();
        const t = h.clock.value;
        await h.store.history.record(
          user,
          { device: 'Chrome/Windows/desktop', country: 'DE', at: t },
          bounds,
        );
        await h.store.history.record(user, { device: 'curl/?/other', at: t + 5 }, bounds);
        expect(await h.store.history.read(user, t - bounds.window)).toEqual([
          { device: 'curl/?/other', at: t + 5 },
          { device: 'Chrome/Windows/desktop', country: 'DE', at: t },
        ]);
      });

      it('keeps one entry per device and country, moved to its latest login', async () => {
        const h = await setup();
        const user = newUser();
        const t = h.clock.value;
        const entry = { device: 'Firefox/Linux/desktop', country: 'US' };
        await h.store.history.record(user, { ...entry, at: t }, bounds);
        await h.store.history.record(user, { ...entry, country: 'FR', at: t + 1 }, bounds);
        await h.store.history.record(user, { ...entry, at: t + 2 }, bounds);
        expect(await h.store.history.read(user, 0)).toEqual([
          { ...entry, at: t + 2 },
          { ...entry, country: 'FR', at: t + 1 },
        ]);
      });

      it('keeps only the newest max entries', async () => {
        const h = await setup();
        const user = newUser();
        const t = h.clock.value;
        for (let i = 0; i < 23; i++)
          await h.store.history.record(user, { device: `d${i}/?/other`, at: t + i }, bounds);
        const read = await h.store.history.read(user, 0);
        expect(read).toHaveLength(20);
        expect(read[0]).toEqual({ device: 'd22/?/other', at: t + 22 });
        expect(read[19]).toEqual({ device: 'd3/?/other', at: t + 3 });
      });

      it('drops entries older than the window (injected clock), and reads none before since', async () => {
        const h = await setup();
        const user = newUser();
        const t = h.clock.value;
        await h.store.history.record(
          user,
          { device: 'old/?/other', country: 'DE', at: t - 60 * DAY },
          bounds,
        );
        await h.store.history.record(user, { device: 'new/?/other', country: 'US', at: t }, bounds);
        expect((await h.store.history.read(user, t - bounds.window)).map((e) => e.device)).toEqual([
          'new/?/other',
          'old/?/other',
        ]);
        expect((await h.store.history.read(user, t - 30 * DAY)).map((e) => e.device)).toEqual([
          'new/?/other',
        ]);
        h.clock.value = t + 31 * DAY;
        await h.store.history.record(user, { device: 'later/?/other', at: h.clock.value }, bounds);
        // Recorded 91 days before the last login: dropped, whatever `since` asks for.
        expect((await h.store.history.read(user, 0)).map((e) => e.device)).toEqual([
          'later/?/other',
          'new/?/other',
        ]);
      });

      it('keeps only the newest max entries and drops old ones when each record follows a read, as at a login', async () => {
        const h = await setup();
        const user = newUser();
        const t = h.clock.value;
        await h.store.history.record(user, { device: 'old/?/other', at: t - 60 * DAY }, bounds);
        for (let i = 0; i < 23; i++) {
          await h.store.history.read(user, t - bounds.window);
          await h.store.history.record(user, { device: `d${i}/?/other`, at: t + i }, bounds);
        }
        const read = await h.store.history.read(user, 0);
        expect(read).toHaveLength(20);
        expect(read.map((e) => e.device)).not.toContain('old/?/other');
        expect(read[19]).toEqual({ device: 'd3/?/other', at: t + 3 });
        h.clock.value = t + 89 * DAY;
        await h.store.history.read(user, h.clock.value - bounds.window);
        await h.store.history.record(user, { device: 'd22/?/other', at: h.clock.value }, bounds);
        // 89 days on, every entry but the one just recorded is within the window still...
        expect(await h.store.history.read(user, 0)).toHaveLength(20);
        h.clock.value = t + 91 * DAY;
        await h.store.history.read(user, h.clock.value - bounds.window);
        await h.store.history.record(user, { device: 'late/?/other', at: h.clock.value }, bounds);
        // ...and 91 days on, only the two recorded since.
        expect((await h.store.history.read(user, 0)).map((e) => e.device)).toEqual([
          'late/?/other',
          'd22/?/other',
        ]);
      });

      it('keeps users apart whatever their names', async () => {
        const h = await setup();
        const a = `${newUser()}{}\n`;
        const b = `${newUser()}\ud800`;
        await h.store.history.record(a, { device: 'a/?/other', at: h.clock.value }, bounds);
        await h.store.history.record(b, { device: 'b/?/other', at: h.clock.value }, bounds);
        expect((await h.store.history.read(a, 0)).map((e) => e.device)).toEqual(['a/?/other']);
        expect((await h.store.history.read(b, 0)).map((e) => e.device)).toEqual(['b/?/other']);
      });
    });

    it('marks a key used once: the first markUsed wins, later ones are refused, isUsed marks nothing', async () => {
      const h = await setup();
      const key = `not-me:${randomUUID()}`;
      const other = `not-me:${randomUUID()}`;
      expect(await h.store.isUsed(key)).toBe(false);
      expect(await h.store.isUsed(key)).toBe(false);
      const first = await Promise.all([h.store.markUsed(key, HOUR), h.store.markUsed(key, HOUR)]);
      expect(first.sort()).toEqual([false, true]);
      expect(await h.store.markUsed(key, HOUR)).toBe(false);
      expect(await h.store.isUsed(key)).toBe(true);
      expect(await h.store.isUsed(other)).toBe(false);
      expect(await h.store.markUsed(other, HOUR)).toBe(true);
    });

    it('forgets a used marker after its ttl', async () => {
      const h = await setup();
      const key = `not-me:${randomUUID()}\n{odd}`;
      expect(await h.store.markUsed(key, 100)).toBe(true);
      expect(await h.store.isUsed(key)).toBe(true);
      // The memory store follows its clock, Redis its own (real) time.
      h.clock.value += 200;
      await vi.waitFor(async () => expect(await h.store.isUsed(key)).toBe(false), DELIVERY);
      expect(await h.store.markUsed(key, HOUR)).toBe(true);
    });

    describe('warnings (onLimit: warn)', () => {
      const WARNING = {
        sessionId: 'newer-login',
        at: 1_700_000_000_000,
        device: 'Chrome on Windows',
        place: 'Berlin, DE',
      };

      async function warn(h: StoreHarness, session: SessionRecord, warning: typeof WARNING | null) {
        const { version } = await h.store.readUser(session.user);
        await h.store.commit({
          user: session.user,
          expectedVersion: version,
          end: [],
          warn: [{ sessionId: session.id, warning }],
          at: h.clock.value,
        });
      }

      it('marks a live session in the commit: readUser, lookup and find show the warning', async () => {
        const h = await setup();
        const session = await login(h, newUser());
        await warn(h, session, WARNING);
        const { live, version } = await h.store.readUser(session.user);
        expect(version).toBe(2);
        expect(live).toEqual([{ ...session, warning: WARNING }]);
        expect((await h.store.lookup(session.tokenIds[0] as string))?.session.warning).toEqual(WARNING);
        const found = await h.store.find(session.tokenIds[1] as string);
        expect(found !== 'dead' && found !== 'anonymous' ? found?.session.warning : undefined).toEqual(
          WARNING,
        );
      });

      it('marks the other sessions in the same commit that creates the new one', async () => {
        const h = await setup();
        const user = newUser();
        const first = await login(h, user);
        const second = await login(h, user);
        const { version } = await h.store.readUser(user);
        const third = sessionRecord(user, h.clock.value);
        await h.store.commit({
          user,
          expectedVersion: version,
          create: third,
          end: [],
          warn: [first, second].map((s) => ({
            sessionId: s.id,
            warning: { ...WARNING, sessionId: third.id },
          })),
          at: h.clock.value,
        });
        const byId = new Map((await h.store.readUser(user)).live.map((s) => [s.id, s]));
        expect(byId.get(first.id)?.warning?.sessionId).toBe(third.id);
        expect(byId.get(second.id)?.warning?.sessionId).toBe(third.id);
        expect(byId.get(third.id)?.warning).toBeUndefined();
      });

      it('clears the mark with null', async () => {
        const h = await setup();
        const session = await login(h, newUser());
        await warn(h, session, WARNING);
        await warn(h, session, null);
        expect((await h.store.readUser(session.user)).live).toEqual([session]);
        expect((await h.store.lookup(session.tokenIds[0] as string))?.session).toEqual(session);
      });

      it('keeps the mark when tokens are added to the session', async () => {
        const h = await setup();
        const session = await login(h, newUser());
        await warn(h, session, WARNING);
        const added = await h.store.addTokens(session.user, session.id, ['t-rotated'], 8);
        expect(added?.warning).toEqual(WARNING);
        expect((await h.store.lookup('t-rotated'))?.session.warning).toEqual(WARNING);
      });

      it('marks no ended session', async () => {
        const h = await setup();
        const session = await login(h, newUser());
        await end(h, session, 'superseded');
        await warn(h, session, WARNING);
        expect((await h.store.lookup(session.tokenIds[0] as string))?.session.warning).toBeUndefined();
      });

      it('tells watchers which live sessions changed, with their token ids, revoking nothing', async () => {
        const h = await setup();
        const listener = recordingListener();
        onTestFinished(h.store.watch(listener));
        const session = await login(h, newUser());
        await warn(h, session, WARNING);
        await warn(h, session, null);
        await vi.waitFor(() => expect(listener.messages).toHaveLength(2), DELIVERY);
        for (const m of listener.messages) {
          expect(m.tokenIds).toEqual([]);
          expect(m.ended).toBeUndefined();
          expect(m.changed).toEqual([{ sessionId: session.id, tokenIds: session.tokenIds }]);
        }
      });

      it('applies no mark of a rejected commit', async () => {
        const h = await setup();
        const session = await login(h, newUser());
        await expect(
          h.store.commit({
            user: session.user,
            expectedVersion: 0,
            end: [],
            warn: [{ sessionId: session.id, warning: WARNING }],
            at: h.clock.value,
          }),
        ).rejects.toBeInstanceOf(StoreConflictError);
        expect((await h.store.readUser(session.user)).live).toEqual([session]);
      });
    });

    it('stores arbitrary session ids and token ids', async () => {
      const h = await setup();
      const odd = `x\n|}{"\\${randomUUID()}\ud800`;
      const session = await login(h, newUser(), { id: odd, tokenIds: [`${odd}-t`, `${odd}\n`] });
      expect(await h.store.lookup(`${odd}-t`)).toEqual({ tokenId: `${odd}-t`, session });
      expect(await h.store.addTokens(session.user, odd, [`${odd}-u`], 8)).toEqual({
        ...session,
        tokenIds: [...session.tokenIds, `${odd}-u`],
      });
    });
  });
}
