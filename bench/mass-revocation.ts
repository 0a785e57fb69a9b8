/**
 * Mass revocation (issue 16): 10,000 sessions ended at once, and 10,000 expiring in the same second.
 *
 * Two gateway replicas A and B share one redis-server (cache.maxStaleness 1s). Each case seeds
 * `--users` sessions straight through the Redis store module (one user, one token each, as a login
 * registers them) and caches every token as live on both replicas (one GET each). Then:
 * - `per-user`: the admin ends them with one `DELETE /admin/users/{user}/sessions` per user on A,
 *   `--concurrency` calls in flight;
 * - `bulk`: one `DELETE /admin/sessions` on A naming every user;
 * - `expiry`: nobody ends them; they were seeded with one expiresAt, and right after it every token is
 *   asked of both replicas at once.
 * Measured per case: messages on the invalidation channel (a subscriber of the bench's own counts them
 * and notes when each token id arrived), when the last token was announced (against maxStaleness), a
 * sweep of every token on both replicas afterwards (each must be refused: a 200 is a stale accept),
 * and the latency of OTHER users' requests (`--rate` GETs a second over 200 other live sessions, on A
 * and B alike) during the storm against the seconds before it (target: p99 within 1.5x).
 *
 *   npm --prefix bench run mass-revocation -- [--users 10000] [--concurrency 32] [--rate 400]
 *     [--gateway-cli ../dist/src/cli.js] [--results results/mass-revocation.md] [--no-results]
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { Agent, request } from 'undici';
import type { SessionStore } from '../src/store/contract.js';
import { createRedisStore } from '../src/store/redis.js';
import { createTokenIdOf } from '../src/tokens/token-id.js';
import { countChannel, type ChannelCounter } from './lib/channel.js';
import { publish, runIfMain } from './lib/driver.js';
import { positiveFlag } from './lib/flags.js';
import { BENCH_SECRET, cleanupConfigs, startGateway, type Gateway } from './lib/gateway.js';
import { mapLimit } from './lib/http.js';
import { windowOf, type PacedSample } from './lib/paced.js';
import { pacedLoadProcess, type PacedLoadProcess } from './lib/paced-process.js';
import { outputPaths } from './lib/paths.js';
import { redisUnavailableReason, startRedis } from './lib/redis.js';
import { int, machine, machineLines, num, percentile, table } from './lib/report.js';
import { startUpstream } from './lib/servers.js';

const ADMIN_TOKEN = 'bench-admin-token-0123456789';
const MAX_STALENESS_MS = 1000;
/** The request-path p99 of other users during the storm, at most this times the p99 before it. */
const TARGET_P99_RATIO = 1.5;
/** Seconds of the "before" window. */
const BEFORE_S = 3;

type SessionCommit = Parameters<SessionStore['commit']>[0];
type SessionRecord = NonNullable<SessionCommit['create']>;

interface Seeded {
  users: string[];
  tokens: string[];
  ids: string[];
}

interface CaseResult {
  name: string;
  what: string;
  tokens: number;
  messages: number;
  largestMessage: number;
  /** ms from the storm's start to its last admin answer (or, for expiry, the sweep's end). */
  stormMs: number;
  /** ms from the storm's start to the last of its tokens on the channel. */
  lastAnnouncedMs: number;
  /** Tokens never announced within the wait. */
  unannounced: number;
  /** ms from each message's first commit to its arrival at the bench's subscriber, ascending. */
  lags: number[];
  acceptedAfter: number;
  refusedA: number;
  refusedB: number;
  /** Expiry: tokens B refused before their id was on the channel. */
  refusedBeforeMessage?: number;
  before: number[];
  during: number[];
  otherErrors: number;
}

async function seed(
  store: SessionStore,
  prefix: string,
  count: number,
  expiresAt: (now: number) => number,
): Promise<Seeded> {
  const tokenIdOf = createTokenIdOf(BENCH_SECRET);
  const users = Array.from({ length: count }, (_, i) => `${prefix}-u${i}`);
  const tokens = users.map(() => randomBytes(32).toString('base64url'));
  const ids = tokens.map((t) => tokenIdOf(t));
  await mapLimit(users, 64, async (user, i) => {
    const now = Date.now();
    const create: SessionRecord = {
      id: randomUUID(),
      user,
      state: 'live',
      createdAt: now,
      lastSeenAt: now,
      expiresAt: expiresAt(now),
      ip: '127.0.0.1',
      userAgent: 'sessiongate-bench/mass-revocation',
      tokenIds: [ids[i] as string],
      pinned: 1,
    };
    await store.commit({ user, expectedVersion: 0, create, end: [], at: now });
  });
  return { users, tokens, ids };
}

/** One GET per token on the gateway; the statuses. */
async function sweep(gw: Gateway, tokens: readonly string[], agent: Agent): Promise<number[]> {
  return mapLimit(tokens, 64, async (token) => {
    const res = await request(`${gw.url}/`, {
      headers: { authorization: `Bearer ${token}` },
      dispatcher: agent,
    });
    await res.body.dump();
    return res.statusCode;
  });
}

async function cacheOnBoth(a: Gateway, b: Gateway, s: Seeded, agent: Agent): Promise<void> {
  for (const gw of [a, b]) {
    const statuses = await sweep(gw, s.tokens, agent);
    const bad = statuses.filter((x) => x !== 200);
    if (bad.length > 0)
      throw new Error(
        `${gw.name}: ${bad.length} seeded tokens were not live before the storm (${[...new Set(bad)].join(', ')})`,
      );
  }
}

async function admin(gw: Gateway, path: string, agent: Agent, body?: unknown): Promise<void> {
  const res = await request(`${gw.adminUrl}${path}`, {
    method: 'DELETE',
    headers: {
      authorization: `Bearer ${ADMIN_TOKEN}`,
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    dispatcher: agent,
    headersTimeout: 120_000,
    bodyTimeout: 120_000,
  });
  const text = await res.body.text();
  if (res.statusCode !== 200)
    throw new Error(`DELETE ${path} answered ${res.statusCode}: ${text.slice(0, 200)}`);
}

/** Waits (polling, up to 15 s) until every id is on the channel; the ms of the last arrival after `t0`. */
async function announced(
  counter: ChannelCounter,
  ids: readonly string[],
  t0: number,
): Promise<[number, number]> {
  const deadline = performance.now() + 15_000;
  while (performance.now() < deadline && !ids.every((id) => counter.arrivals.has(id))) await sleep(20);
  let last = 0;
  let missing = 0;
  for (const id of ids) {
    const at = counter.arrivals.get(id);
    if (at === undefined) missing++;
    else last = Math.max(last, at - t0);
  }
  return [last, missing];
}

/** Other users' latencies before a storm (BEFORE_S up to t0) and during it, and their non-200 answers. */
function others(
  samples: readonly PacedSample[],
  t0: number,
  end: number,
): { before: number[]; during: number[]; otherErrors: number } {
  return {
    before: windowOf(samples, t0 - BEFORE_S * 1000, t0),
    during: windowOf(samples, t0, end),
    otherErrors: samples.filter((x) => x.at >= t0 - BEFORE_S * 1000 && x.status !== 200).length,
  };
}

interface Rig {
  a: Gateway;
  b: Gateway;
  store: SessionStore;
  counter: ChannelCounter;
  load: PacedLoadProcess;
  agent: Agent;
  users: number;
  concurrency: number;
}

async function adminCase(r: Rig, name: 'per-user' | 'bulk'): Promise<CaseResult> {
  const s = await seed(
    r.store,
    `${name}-${randomBytes(3).toString('hex')}`,
    r.users,
    (now) => now + 12 * 3600_000,
  );
  await cacheOnBoth(r.a, r.b, s, r.agent);
  await sleep(BEFORE_S * 1000);
  r.counter.reset();
  const t0 = performance.now();
  if (name === 'per-user')
    await mapLimit(s.users, r.concurrency, (u) =>
      admin(r.a, `/admin/users/${encodeURIComponent(u)}/sessions`, r.agent),
    );
  else await admin(r.a, '/admin/sessions', r.agent, { users: s.users });
  const t1 = performance.now();
  const [lastAnnouncedMs, unannounced] = await announced(r.counter, s.ids, t0);
  const messages = r.counter.messages();
  const largestMessage = Math.max(0, ...r.counter.sizes);
  const [onA, onB] = [await sweep(r.a, s.tokens, r.agent), await sweep(r.b, s.tokens, r.agent)];
  return {
    name,
    what:
      name === 'per-user'
        ? `${int(r.users)} calls DELETE /admin/users/{user}/sessions on A, ${r.concurrency} in flight`
        : `one call DELETE /admin/sessions on A naming ${int(r.users)} users`,
    tokens: s.ids.length,
    messages,
    largestMessage,
    stormMs: t1 - t0,
    lastAnnouncedMs,
    unannounced,
    lags: [...r.counter.lags].sort((x, y) => x - y),
    acceptedAfter: [...onA, ...onB].filter((x) => x === 200).length,
    refusedA: onA.filter((x) => x === 401).length,
    refusedB: onB.filter((x) => x === 401).length,
    ...others(await r.load.samples(), t0, t0 + Math.max(t1 - t0, lastAnnouncedMs)),
  };
}

async function expiryCase(r: Rig): Promise<CaseResult> {
  // One expiresAt for all, far enough ahead for the seeding and the caching on both replicas.
  const expiresAt = Date.now() + 30_000 + r.users * 2;
  const s = await seed(r.store, `expiry-${randomBytes(3).toString('hex')}`, r.users, () => expiresAt);
  await cacheOnBoth(r.a, r.b, s, r.agent);
  if (Date.now() > expiresAt - BEFORE_S * 1000)
    throw new Error('caching took past the expiry: raise the margin');
  await sleep(expiresAt - BEFORE_S * 1000 - Date.now());
  r.counter.reset();
  const t0 = performance.now() + BEFORE_S * 1000;
  // Just past the expiresAt (the gateways' clock is this machine's).
  await sleep(Math.max(0, expiresAt + 5 - Date.now()));
  const refusedAt = new Map<string, number>();
  const timed = (gw: Gateway) =>
    mapLimit(s.tokens, 64, async (token, i) => {
      const res = await request(`${gw.url}/`, {
        headers: { authorization: `Bearer ${token}` },
        dispatcher: r.agent,
      });
      await res.body.dump();
      if (gw === r.b && res.statusCode === 401) refusedAt.set(s.ids[i] as string, performance.now());
      return res.statusCode;
    });
  const [onA, onB] = await Promise.all([timed(r.a), timed(r.b)]);
  const t1 = performance.now();
  const [lastAnnouncedMs, unannounced] = await announced(r.counter, s.ids, t0);
  let refusedBeforeMessage = 0;
  for (const [id, at] of refusedAt) {
    const heard = r.counter.arrivals.get(id);
    if (heard === undefined || at < heard) refusedBeforeMessage++;
  }
  return {
    name: 'expiry',
    what: `${int(r.users)} sessions with one expiresAt; right after it every token asked of A and B at once (64 in flight each)`,
    tokens: s.ids.length,
    messages: r.counter.messages(),
    largestMessage: Math.max(0, ...r.counter.sizes),
    stormMs: t1 - t0,
    lastAnnouncedMs,
    unannounced,
    lags: [...r.counter.lags].sort((x, y) => x - y),
    acceptedAfter: [...onA, ...onB].filter((x) => x === 200).length,
    refusedA: onA.filter((x) => x === 401).length,
    refusedB: onB.filter((x) => x === 401).length,
    refusedBeforeMessage,
    ...others(await r.load.samples(), t0, t1),
  };
}

function report(results: readonly CaseResult[], options: { users: number; rate: number }): string {
  const m = machine();
  const p99 = (xs: number[]) => percentile(xs, 99);
  const rows = results.map((c) => {
    const ratio = p99(c.during) / p99(c.before);
    return [
      c.name,
      int(c.tokens),
      int(c.messages),
      num(c.tokens / Math.max(1, c.messages), 0),
      int(c.largestMessage),
      int(c.stormMs),
      `${int(c.lastAnnouncedMs)}${c.unannounced > 0 ? ` (${c.unannounced} never)` : ''}`,
      `${num(percentile(c.lags, 50), 1)} / ${num(percentile(c.lags, 99), 1)} / ${num(c.lags[c.lags.length - 1], 1)}`,
      `${int(c.refusedA)} / ${int(c.refusedB)}`,
      String(c.acceptedAfter),
      `${num(p99(c.before), 2)} -> ${num(p99(c.during), 2)}`,
      `${num(ratio, 2)} ${ratio <= TARGET_P99_RATIO ? 'ok' : 'OVER'}`,
      String(c.otherErrors),
    ];
  });
  const expiry = results.find((c) => c.name === 'expiry');
  return [
    `## ${m.date} — mass revocation (bench/mass-revocation.ts)`,
    '',
    ...machineLines(m),
    `- two gateways (A, B) on one redis-server, cache.maxStaleness 1s, store.commandTimeout 1s; ${int(options.users)} sessions per case seeded through createRedisStore().commit and cached as live on both replicas; other users: ${options.rate} GETs/s over 200 other live sessions, on A and B alike, open loop, from a process of their own (bench/servers/paced-client.ts: the storm, the channel counter and the seeding store client stay in this one)`,
    ...results.map((c) => `- ${c.name}: ${c.what}`),
    '- messages: counted by a subscriber of the bench\'s own; "last announced": ms from the storm\'s start to the last of its token ids on the channel; "commit -> channel": per message, from the sending of its first commit (its `at` stamp) to its arrival at that subscriber, the wait for the batch included; the sweep asks every token of A and B afterwards',
    '',
    table(
      [
        'case',
        'tokens',
        'messages',
        'tokens / message',
        'largest message (ids)',
        'storm ms',
        'last announced ms',
        'commit -> channel p50 / p99 / max ms',
        'refused A / B',
        'accepted after',
        `others' p99 ms before -> during`,
        `p99 ratio (<= ${TARGET_P99_RATIO})`,
        'others non-200',
      ],
      rows,
    ),
    '',
    expiry
      ? `Expiry: ${int(expiry.refusedBeforeMessage ?? 0)} of ${int(expiry.refusedB)} tokens refused by B were refused before their id was on the channel: a replica refuses an expired session from the expiresAt it holds (cached, or read back past its maxStaleness), no message needed. The messages that follow come from the replica that commits each end (so long-lived connections on other replicas close too), batched like any storm.`
      : '',
    `Every replica refuses each token once its message is in (commit -> channel at most ${results.map((c) => `${c.name} ${num(c.lags[c.lags.length - 1], 0)} ms`).join(', ')}, against cache.maxStaleness ${MAX_STALENESS_MS} ms, which bounds a lost message), and all of them by the last announcement (${results.map((c) => `${c.name} ${int(c.lastAnnouncedMs)} ms`).join(', ')} after the storm's start, whose length is the admin calls' own).`,
  ].join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      users: { type: 'string' },
      concurrency: { type: 'string' },
      rate: { type: 'string' },
      only: { type: 'string' },
      'gateway-cli': { type: 'string' },
      results: { type: 'string' },
      'no-results': { type: 'boolean', default: false },
    },
  });
  const users = positiveFlag(values.users, 10_000, 'users', { integer: true });
  const concurrency = positiveFlag(values.concurrency, 32, 'concurrency', { integer: true });
  const rate = positiveFlag(values.rate, 400, 'rate');
  const only = new Set((values.only ?? 'per-user,bulk,expiry').split(','));
  const { gatewayCli, resultsFile } = outputPaths('mass-revocation', values);
  console.log(`\n> mass revocation: ${users} sessions per case, gateways A and B on one redis-server`);
  const missing = redisUnavailableReason();
  if (missing) return void console.log(`  SKIPPED: ${missing}`);
  const upstream = await startUpstream();
  const redis = await startRedis();
  const overrides = {
    // A shared machine: 1 s rather than 250 ms per command, so a busy moment is not a 503.
    store: { url: redis.url, commandTimeout: '1s' },
    cache: { maxStaleness: `${MAX_STALENESS_MS}ms`, max: 100_000 },
    admin: { token: ADMIN_TOKEN },
  };
  const gateways: Gateway[] = [];
  // The gateways' retentions (sessions.maxAge, sessions.tombstoneRetention defaults), so a seeded
  // session's keys outlive its expiresAt as a login's do.
  const store = createRedisStore({
    url: redis.url,
    keyPrefix: 'sg:',
    commandTimeout: 10_000,
    retention: 12 * 3600_000,
    tombstoneRetention: 30 * 24 * 3600_000,
  });
  const agent = new Agent({ connections: 128 });
  try {
    gateways.push(await startGateway('mass-a', gatewayCli, upstream.url, overrides));
    gateways.push(await startGateway('mass-b', gatewayCli, upstream.url, overrides));
    const [a, b] = gateways as [Gateway, Gateway];
    await store.ready();
    const counter = await countChannel(redis.port);
    const others = await seed(
      store,
      `others-${randomBytes(3).toString('hex')}`,
      200,
      (now) => now + 12 * 3600_000,
    );
    await cacheOnBoth(a, b, others, agent);
    const load = await pacedLoadProcess([a.url, b.url], others.tokens, rate);
    const rig: Rig = { a, b, store, counter, load, agent, users, concurrency };
    const results: CaseResult[] = [];
    try {
      for (const name of ['per-user', 'bulk'] as const) {
        if (!only.has(name)) continue;
        console.log(`  ${name}...`);
        results.push(await adminCase(rig, name));
      }
      if (only.has('expiry')) {
        console.log('  expiry...');
        results.push(await expiryCase(rig));
      }
    } finally {
      await load.stop();
      counter.stop();
    }
    await publish('mass-revocation', report(results, { users, rate }), resultsFile);
    if (results.some((c) => c.acceptedAfter > 0 || c.unannounced > 0)) process.exitCode = 1;
  } finally {
    await agent.close();
    await store.close();
    await Promise.all(gateways.map((g) => g.stop()));
    await redis.stop();
    await upstream.child.stop();
    await cleanupConfigs();
  }
}

runIfMain(import.meta.url, main);
