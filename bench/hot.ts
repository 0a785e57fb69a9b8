/**
 * The hot path (DESIGN.md "The hot path"): what the gateway costs per proxied request next to the
 * Node floor (node:http + undici dispatch, no checks) and http-proxy, same upstream, same request.
 *
 * Usage: npm run hot -- [--schedule sequential|paired] [--meter cpu|callgrind] [--only a,b]
 *          [--rounds N] [--quick] [--duration s] [--warmup s] [--connections n] [--pipelining n]
 *          [--rate req/s] [--pin] [--load autocannon|wrk] [--miss-users 1000]
 *          [--warmup-requests 8000] [--requests 5000] [--ready-timeout 180] [--keep-dumps] [--idle-cap 60]
 *          [--gateway-cli ../dist/src/cli.js] [--results results/hot.md | --no-results]
 *
 * A schedule says when each proxy runs: `sequential` starts, loads and stops one after the other,
 * round after round; `paired` starts them all and visits them in short windows, the order rotated
 * every round, so a slow minute of the host slows every proxy's window alike. A meter says what a
 * window counts: `cpu` the proxy's CPU time (/proc), `callgrind` the instructions it executes
 * (valgrind). The figures are the ratios to the floor of the same round. See bench/README.md.
 */
import { parseArgs } from 'node:util';
import { onlyFlag, publish, runIfMain, selectScenarios } from './lib/driver.js';
import { positiveFlag } from './lib/flags.js';
import {
  cleanupConfigs,
  expectLive,
  GatewayUnavailableError,
  liveTokenProvingEnforcement,
  startGateway,
  type Gateway,
  type GatewayOverrides,
} from './lib/gateway.js';
import { login, mapLimit, PASSTHROUGH_TOKEN } from './lib/http.js';
import { bearerRotation, type LoadTarget, type Watched } from './lib/load.js';
import {
  callgrindMeter,
  cpuMeter,
  loadUnavailableReason,
  UnmeasurableError,
  type Contender,
  type Meter,
  type Sample,
} from './lib/meters.js';
import { nginxUnavailableReason, startNginx } from './lib/nginx.js';
import { benchScript, outputPaths } from './lib/paths.js';
import { freePort, pinBench, waitForHttp, type Pinning } from './lib/proc.js';
import { ensureRedis, type BenchRedis } from './lib/redis.js';
import {
  int,
  machine,
  machineLines,
  median,
  num,
  oneLine,
  table,
  TARGET_VS_FLOOR,
  TARGET_VS_HTTP_PROXY,
  verdict,
} from './lib/report.js';
import { passthroughs, startUpstream } from './lib/servers.js';

type Schedule = 'sequential' | 'paired';

interface Options {
  schedule: Schedule;
  meter: 'cpu' | 'callgrind';
  rounds: number;
  quick: boolean;
  only: Set<string> | undefined;
  missUsers: number;
  gatewayCli: string;
  resultsFile: string | undefined;
  pin: boolean;
  load: 'autocannon' | 'wrk';
  duration: number;
  warmup: number;
  connections: number;
  pipelining: number;
  rate: number | undefined;
  warmupRequests: number;
  requests: number;
  readyTimeoutMs: number;
  keepDumps: boolean;
  idleCapMs: number;
}

function choice<T extends string>(value: string | undefined, allowed: readonly T[], flag: string): T {
  const found = allowed.find((a) => a === (value ?? allowed[0]));
  if (!found) throw new Error(`--${flag}: expected ${allowed.join(' or ')}, got ${JSON.stringify(value)}`);
  return found;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      schedule: { type: 'string' },
      meter: { type: 'string' },
      rounds: { type: 'string' },
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      'miss-users': { type: 'string' },
      'gateway-cli': { type: 'string' },
      results: { type: 'string' },
      'no-results': { type: 'boolean', default: false },
      pin: { type: 'boolean', default: false },
      load: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      connections: { type: 'string' },
      pipelining: { type: 'string' },
      rate: { type: 'string' },
      'warmup-requests': { type: 'string' },
      requests: { type: 'string' },
      'ready-timeout': { type: 'string' },
      'keep-dumps': { type: 'boolean', default: false },
      'idle-cap': { type: 'string' },
    },
  });
  const schedule = choice(values.schedule, ['sequential', 'paired'] as const, 'schedule');
  const meter = choice(values.meter, ['cpu', 'callgrind'] as const, 'meter');
  const quick = values.quick ?? false;
  const paired = schedule === 'paired';
  const o: Options = {
    schedule,
    meter,
    // Paired windows are short, so more of them; a sequential window is long enough alone.
    rounds: positiveFlag(values.rounds, paired ? (quick ? 3 : 12) : 1, 'rounds', { integer: true }),
    quick,
    only: onlyFlag(values.only),
    missUsers: positiveFlag(values['miss-users'], 1000, 'miss-users', { integer: true }),
    ...outputPaths('hot', values),
    pin: values.pin ?? false,
    load: choice(values.load, ['autocannon', 'wrk'] as const, 'load'),
    duration: positiveFlag(values.duration, paired ? 2 : quick ? 3 : 10, 'duration'),
    warmup: values.warmup === '0' ? 0 : positiveFlag(values.warmup, quick ? 1 : paired ? 3 : 2, 'warmup'),
    connections: positiveFlag(values.connections, meter === 'callgrind' ? 10 : 50, 'connections', {
      integer: true,
    }),
    pipelining: positiveFlag(values.pipelining, 1, 'pipelining', { integer: true }),
    rate: values.rate === undefined ? undefined : positiveFlag(values.rate, 0, 'rate'),
    warmupRequests: positiveFlag(values['warmup-requests'], quick ? 2000 : 8000, 'warmup-requests', {
      integer: true,
    }),
    requests: positiveFlag(values.requests, quick ? 1000 : 5000, 'requests', { integer: true }),
    readyTimeoutMs: positiveFlag(values['ready-timeout'], 180, 'ready-timeout') * 1000,
    keepDumps: values['keep-dumps'] ?? false,
    idleCapMs: positiveFlag(values['idle-cap'], 60, 'idle-cap') * 1000,
  };
  if (o.load === 'wrk' && o.rate !== undefined)
    throw new Error('--rate needs --load autocannon (wrk has no fixed rate)');
  if (o.meter === 'callgrind' && (o.pin || o.load === 'wrk' || o.rate !== undefined))
    throw new Error('--pin, --load and --rate are for --meter cpu');
  const noLoad = loadUnavailableReason(o.load);
  if (noLoad) throw new Error(`--load ${o.load}: ${noLoad}`);
  return o;
}

/** What every scenario can use: the meter, the shared upstream and, started on first need, redis-server. */
interface Context {
  options: Options;
  meter: Meter;
  upstreamUrl: string;
  upstreamPid: number;
  redis: BenchRedis | undefined;
  pinning: Pinning | undefined;
}

/** A started, prepared contender and how to stop it. */
interface Running extends Contender {
  stop(): Promise<void>;
}

interface Scenario {
  readonly name: string;
  /** One line for the results: what is in front of the upstream. */
  readonly what: string;
  readonly isGateway: boolean;
  /** Run only when `--only` names it (a calibration point needing a system tool). */
  readonly optional?: boolean;
  /** Starts the scenario's process and prepares its load; UnmeasurableError to skip. */
  start(ctx: Context): Promise<Running>;
}

function watchedFor(ctx: Context, redis?: BenchRedis): Watched[] {
  const watched: Watched[] = [{ label: 'upstream', pid: ctx.upstreamPid }];
  // Redis is charged only to the scenarios that use it (it idles, but it is not free).
  if (redis) watched.push({ label: 'redis', pid: redis.child.pid });
  return watched;
}

/** The same request as the gateways' hit load, bearer header included: header bytes are not a difference. */
const passthroughTarget = (url: string): LoadTarget => ({
  url: `${url}/`,
  headers: { authorization: `Bearer ${PASSTHROUGH_TOKEN}` },
});

function passthrough(name: string, script: string, what: string): Scenario {
  return {
    name,
    what,
    isGateway: false,
    start: async (ctx) => {
      const port = await freePort();
      const child = ctx.meter.spawn(name, benchScript(script), [
        '--port',
        String(port),
        '--upstream',
        ctx.upstreamUrl,
      ]);
      const url = `http://127.0.0.1:${port}`;
      try {
        await waitForHttp(child, `${url}/`, ctx.meter.readyTimeoutMs);
      } catch (err) {
        await child.stop(ctx.meter.stopGraceMs);
        throw err;
      }
      return {
        name,
        pid: child.pid,
        target: passthroughTarget(url),
        watched: watchedFor(ctx),
        stop: () => child.stop(ctx.meter.stopGraceMs),
      };
    },
  };
}

/** One live session hit over and over: the cache-hit path. */
async function hitLoad(gateway: Gateway): Promise<LoadTarget> {
  const token = await liveTokenProvingEnforcement(gateway, gateway.name);
  return { url: `${gateway.url}/`, headers: { authorization: `Bearer ${token}` } };
}

/** Many users' live sessions in rotation (one user name space per scenario, so paired gateways on one Redis do not supersede each other's). */
function missLoad(users: number): (gateway: Gateway) => Promise<LoadTarget> {
  return async (gateway) => {
    await liveTokenProvingEnforcement(gateway, `${gateway.name}-probe`);
    const names = Array.from({ length: users }, (_, i) => `${gateway.name}-${i}`);
    const tokens = await mapLimit(names, 16, async (user) => (await login(gateway.url, user)).token);
    await expectLive(gateway, tokens[0] as string);
    await expectLive(gateway, tokens[tokens.length - 1] as string);
    return { url: `${gateway.url}/`, requestsFor: bearerRotation(tokens) };
  };
}

/** store.commandTimeout and store.pingInterval of Redis gateways under valgrind. */
const CALLGRIND_REDIS_TIMEOUT = '10s';
/**
 * cache.maxStaleness of Redis gateways under valgrind: the default 1 s stretched as valgrind slows the
 * proxy (some 50 times), so the cached session's re-read lands on about as many requests as natively
 * (one in a few thousand). At 1 s it fell on one in about a hundred.
 */
const CALLGRIND_MAX_STALENESS = '50s';

function objectOr(value: unknown): object {
  return typeof value === 'object' && value !== null ? value : {};
}

function gateway(
  name: string,
  what: string,
  store: 'memory' | 'redis',
  overrides: GatewayOverrides,
  prepare: (ctx: Context) => (gateway: Gateway) => Promise<LoadTarget>,
): Scenario {
  return {
    name,
    what,
    isGateway: true,
    start: async (ctx) => {
      let redis: BenchRedis | undefined;
      let storeKeys: GatewayOverrides = {};
      if (store === 'redis') {
        const found = await ensureRedis(ctx, ctx.pinning?.others);
        if (typeof found === 'string') throw new UnmeasurableError(found);
        redis = found;
        // Under valgrind the proxy runs 30-50 times slower: the defaults (250 ms per command, a PING
        // answered within 1 s) are overrun and requests turn into 503s. The timers are armed the same.
        storeKeys = {
          store:
            ctx.meter.name === 'callgrind'
              ? {
                  url: redis.url,
                  commandTimeout: CALLGRIND_REDIS_TIMEOUT,
                  pingInterval: CALLGRIND_REDIS_TIMEOUT,
                }
              : redis.url,
          ...(ctx.meter.name === 'callgrind'
            ? { cache: { maxStaleness: CALLGRIND_MAX_STALENESS, ...objectOr(overrides.cache) } }
            : {}),
        };
      }
      const gw = await startGateway(
        name,
        ctx.options.gatewayCli,
        ctx.upstreamUrl,
        { ...overrides, ...storeKeys },
        { spawn: ctx.meter.spawn, readyTimeoutMs: ctx.meter.readyTimeoutMs },
      );
      try {
        const target = await prepare(ctx)(gw);
        return { name, pid: gw.child.pid, target, watched: watchedFor(ctx, redis), stop: () => gw.stop() };
      } catch (err) {
        await gw.stop();
        throw err;
      }
    },
  };
}

const hit = () => hitLoad;
const miss = (ctx: Context) => missLoad(ctx.options.missUsers);

const scenarios: Scenario[] = [
  {
    name: 'upstream',
    what: 'the app alone, no proxy (its proxy column is the app itself); cpu meter only',
    isGateway: false,
    start: (ctx) => {
      if (ctx.meter.name !== 'cpu') throw new UnmeasurableError('the upstream row is for the cpu meter only');
      return Promise.resolve({
        name: 'upstream',
        pid: ctx.upstreamPid,
        target: { url: `${ctx.upstreamUrl}/` },
        watched: [],
        stop: () => Promise.resolve(),
      });
    },
  },
  ...passthroughs.map(({ name, script, what }) => passthrough(name, script, what)),
  {
    name: 'nginx',
    what: 'nginx, one worker, keep-alive upstream pool: a calibration point, not a target (only with --only)',
    isGateway: false,
    optional: true,
    start: async (ctx) => {
      if (ctx.meter.name !== 'cpu') throw new UnmeasurableError('nginx is measured with the cpu meter only');
      const missing = nginxUnavailableReason();
      if (missing) throw new UnmeasurableError(missing);
      const nginx = await startNginx(ctx.upstreamUrl, ctx.pinning?.proxy);
      return {
        name: 'nginx',
        pid: nginx.workerPid,
        target: passthroughTarget(nginx.url),
        watched: watchedFor(ctx),
        stop: () => nginx.stop(),
      };
    },
  },
  gateway('gateway-memory', 'gateway, memory store, one live session (LRU hit)', 'memory', {}, hit),
  // Policies are decided at login only: this scenario's request path must cost what gateway-memory's does.
  gateway(
    'gateway-policies',
    'gateway-memory with every limit policy configured (groups, exemptions, device classes, seats)',
    'memory',
    {
      sessions: {
        // The limit stays 1: the scenario's check proves a second login supersedes the first.
        onLimit: 'replace-least-recent',
        reclaimIdleAfter: '10m',
        groups: { from: 'json:user.id', limits: { admin: 1 } },
        exempt: { users: ['svc-backup'], groups: ['service'] },
        devices: { desktop: 1, mobile: 1 },
        seats: { key: 'json:user.id', max: 1000 },
      },
    },
    hit,
  ),
  gateway(
    'gateway-redis',
    'gateway, Redis store, one live session (LRU hit; Redis re-read once per maxStaleness)',
    'redis',
    {},
    hit,
  ),
  // Rotating tokens, not one: the gateway coalesces concurrent lookups of one token id, so 50
  // connections on a single token would share lookups and under-state what strict mode costs.
  gateway(
    'gateway-redis-strict',
    'gateway, Redis store, consistency: strict, rotating over --miss-users sessions (a Redis lookup per request)',
    'redis',
    { consistency: 'strict' },
    miss,
  ),
  gateway(
    'gateway-miss',
    'gateway, memory store, cache.max 1, rotating over --miss-users sessions (LRU miss)',
    'memory',
    { cache: { max: 1 } },
    miss,
  ),
  gateway(
    'gateway-redis-miss',
    'gateway, Redis store, cache.max 1, rotating over --miss-users sessions (LRU miss -> Redis)',
    'redis',
    { cache: { max: 1 } },
    miss,
  ),
];

/** A scenario over the rounds: its samples by round, or why it stopped. */
interface Track {
  readonly scenario: Scenario;
  readonly samples: (Sample | undefined)[];
  skipped?: string;
  failed?: string;
}

/** A throw of a scenario is a skip (it cannot run here) or a failure (it ran and misbehaved). */
function record(track: Track, err: unknown): void {
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof UnmeasurableError || err instanceof GatewayUnavailableError) {
    track.skipped = message;
    console.log(`  SKIPPED ${track.scenario.name}: ${oneLine(message)}`);
  } else {
    track.failed = message;
    console.log(`  FAILED ${track.scenario.name}: ${message}`);
  }
}

function printSample(ctx: Context, name: string, s: Sample): void {
  const cells = ctx.meter.columns.map((c) => `${c.label} ${num(s.figures[c.key], c.digits)}`);
  console.log(`  ${name}: ${cells.join(', ')}${s.badDetail ? `; WARNING: ${s.badDetail}` : ''}`);
}

/** One proxy at a time: started, warmed, measured, stopped; every scenario once per round. */
async function sequential(ctx: Context, tracks: readonly Track[]): Promise<void> {
  for (let round = 0; round < ctx.options.rounds; round++) {
    console.log(`\n=== round ${round + 1} of ${ctx.options.rounds}`);
    for (const track of tracks) {
      if (track.skipped || track.failed) continue;
      console.log(`\n> ${track.scenario.name}: ${track.scenario.what}`);
      try {
        const running = await track.scenario.start(ctx);
        try {
          await ctx.meter.warm(running);
          const sample = await ctx.meter.sample(running);
          track.samples[round] = sample;
          printSample(ctx, running.name, sample);
        } finally {
          await running.stop();
          // A clean Redis for the next scenario: one run's sessions must not change the next one's keyspace.
          await ctx.redis?.admin.flushall();
        }
      } catch (err) {
        record(track, err);
      }
    }
  }
}

/** Every proxy at once, idle while not loaded; each round visits them all, the order rotated. */
async function paired(ctx: Context, tracks: readonly Track[]): Promise<void> {
  const live: { track: Track; running: Running }[] = [];
  try {
    for (const track of tracks) {
      console.log(`\n> ${track.scenario.name}: ${track.scenario.what}`);
      try {
        const running = await track.scenario.start(ctx);
        live.push({ track, running });
        await ctx.meter.warm(running);
      } catch (err) {
        record(track, err);
      }
    }
    for (let round = 0; round < ctx.options.rounds; round++) {
      console.log(`\n=== round ${round + 1} of ${ctx.options.rounds}`);
      for (let i = 0; i < live.length; i++) {
        const { track, running } = live[(i + round) % live.length] as (typeof live)[number];
        if (track.failed || track.skipped) continue;
        try {
          const sample = await ctx.meter.sample(running);
          track.samples[round] = sample;
          printSample(ctx, running.name, sample);
        } catch (err) {
          record(track, err);
        }
      }
    }
  } finally {
    for (const { running } of live) await running.stop();
  }
}

function trackOf(tracks: readonly Track[], name: string): Track | undefined {
  return tracks.find((t) => t.scenario.name === name && !t.failed && !t.skipped);
}

/** Per-round values of `a / b` (or `a - b`) of one figure, over the rounds both were measured in. */
function perRound(a: Track, b: Track, key: string, op: (x: number, y: number) => number): number[] {
  const values: number[] = [];
  a.samples.forEach((s, round) => {
    const other = b.samples[round];
    if (s && other) values.push(op(s.figures[key] ?? NaN, other.figures[key] ?? NaN));
  });
  return values.filter((v) => Number.isFinite(v));
}

function rangeOf(values: readonly number[], digits: number): string {
  if (values.length < 2) return '';
  const show = (v: number) => (digits === 0 ? int(v) : num(v, digits));
  return ` [${show(Math.min(...values))}-${show(Math.max(...values))}]`;
}

function figureOf(track: Track, key: string): number[] {
  return track.samples.flatMap((s) => (s ? [s.figures[key] ?? NaN] : []));
}

function resultsTable(ctx: Context, tracks: readonly Track[]): string {
  const { columns, ratioKeys } = ctx.meter;
  const first = columns.find((c) => c.key === ratioKeys[0]);
  const header = ['scenario', ...columns.map((c) => c.label), `${first?.label ?? ''} range`, 'not 2xx'];
  const body = tracks.map((t) => {
    if (t.failed || t.skipped)
      return [t.scenario.name, t.failed ? 'failed' : 'skipped', ...header.slice(2).map(() => '')];
    const bad = t.samples.reduce((n, s) => n + (s?.bad ?? 0), 0);
    const cells = columns.map((c) =>
      c.digits === 0 ? int(median(figureOf(t, c.key))) : num(median(figureOf(t, c.key)), c.digits),
    );
    const range = first ? rangeOf(figureOf(t, first.key), first.digits).replace(/^ \[|\]$/g, '') : '';
    return [t.scenario.name, ...cells, range || '—', int(bad)];
  });
  return table(header, body);
}

/** Each gateway over the floor and http-proxy: the median of the per-round ratios, their range in brackets. */
function ratiosTable(ctx: Context, tracks: readonly Track[]): string | undefined {
  const floor = trackOf(tracks, 'undici-floor');
  const httpProxy = trackOf(tracks, 'http-proxy');
  const gateways = tracks.filter((t) => t.scenario.isGateway && !t.failed && !t.skipped);
  if (gateways.length === 0) return undefined;
  const [firstKey = ''] = ctx.meter.ratioKeys;
  const digits = ctx.meter.columns.find((c) => c.key === firstKey)?.digits ?? 1;
  const header = ['gateway scenario'];
  for (const key of ctx.meter.ratioKeys)
    header.push(
      `${key} / undici-floor (<= ${TARGET_VS_FLOOR})`,
      `${key} / http-proxy (<= ${TARGET_VS_HTTP_PROXY})`,
    );
  header.push(`${firstKey} minus floor`);
  const ratio = (a: Track, b: Track | undefined, key: string, target: number): string => {
    if (!b) return '—';
    const values = perRound(a, b, key, (x, y) => x / y);
    return values.length === 0 ? '—' : `${verdict(median(values), target, 3)}${rangeOf(values, 2)}`;
  };
  const body = gateways.map((g) => {
    const cells = [g.scenario.name];
    for (const key of ctx.meter.ratioKeys)
      cells.push(ratio(g, floor, key, TARGET_VS_FLOOR), ratio(g, httpProxy, key, TARGET_VS_HTTP_PROXY));
    const minus = floor ? median(perRound(g, floor, firstKey, (x, y) => x - y)) : NaN;
    cells.push(digits === 0 ? int(minus) : num(minus, digits));
    return cells;
  });
  return table(header, body);
}

/** The other passthroughs next to the floor: the forwarding library was chosen by these. */
function passthroughLines(ctx: Context, tracks: readonly Track[]): string[] {
  const floor = trackOf(tracks, 'undici-floor');
  const [key = ''] = ctx.meter.ratioKeys;
  if (!floor) return [];
  return tracks
    .filter(
      (t) =>
        !t.scenario.isGateway && t !== floor && t.scenario.name !== 'upstream' && !t.failed && !t.skipped,
    )
    .map((t) => {
      const values = perRound(t, floor, key, (x, y) => x / y);
      return `- ${t.scenario.name} / undici-floor (${key}): ${num(median(values), 3)}${rangeOf(values, 2)}`;
    });
}

function notes(tracks: readonly Track[]): string[] {
  return tracks.flatMap((t) => {
    if (t.skipped) return [`- ${t.scenario.name} skipped: ${oneLine(t.skipped)}`];
    if (t.failed) return [`- ${t.scenario.name} FAILED: ${oneLine(t.failed)}`];
    return t.samples.flatMap((s, round) =>
      s?.badDetail ? [`- ${t.scenario.name}, round ${round + 1}: ${s.badDetail}`] : [],
    );
  });
}

/** The mark of a section in results/hot.md: one latest section per meter and schedule. */
function variant(o: Options): string {
  return `--meter ${o.meter} --schedule ${o.schedule}`;
}

function report(ctx: Context, tracks: readonly Track[]): string {
  const o = ctx.options;
  const m = machine();
  const ratios = ratiosTable(ctx, tracks);
  const schedule =
    o.schedule === 'paired'
      ? `- schedule paired: every proxy running at once, idle while not loaded; ${o.rounds} rounds, each giving every proxy one window, the order rotated per round`
      : `- schedule sequential: each proxy started, warmed, measured and stopped in turn; ${o.rounds} round${o.rounds > 1 ? 's (scenarios interleaved per round)' : ''}`;
  return [
    `## ${m.date} — hot path (bench/hot.ts ${variant(o)})${o.quick ? ' — quick smoke run, not for comparison' : ''}`,
    '',
    ...machineLines(m),
    ...ctx.meter.describe(),
    schedule,
    `- every request GET / (100-byte body) with the same bearer header; miss and strict scenarios rotate over ${o.missUsers} users; figures are medians over the rounds`,
    '',
    resultsTable(ctx, tracks),
    '',
    ...(ratios
      ? [
          'Each gateway as a ratio to the floor and to http-proxy: the median of the per-round ratios (range in brackets). Targets are for the cache-hit rows; strict and miss rows are for information.',
          '',
          ratios,
          '',
        ]
      : ['No gateway scenario ran, so no ratios.', '']),
    ...passthroughLines(ctx, tracks),
    ...notes(tracks),
  ].join('\n');
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const selected = selectScenarios(scenarios, options.only).filter((s) => !s.optional || options.only);

  const pinning = options.pin ? pinBench() : undefined;
  if (typeof pinning === 'string') throw new Error(`--pin: ${pinning}`);
  const meter = options.meter === 'cpu' ? cpuMeter({ ...options, pinning }) : await callgrindMeter(options);
  if (typeof meter === 'string') {
    console.log(`hot path, callgrind meter, skipped: ${meter}`);
    return;
  }
  const upstream = await startUpstream(pinning?.others);
  const ctx: Context = {
    options,
    meter,
    upstreamUrl: upstream.url,
    upstreamPid: upstream.child.pid,
    redis: undefined,
    pinning,
  };
  const tracks: Track[] = selected.map((scenario) => ({ scenario, samples: [] }));
  try {
    await (options.schedule === 'paired' ? paired(ctx, tracks) : sequential(ctx, tracks));
  } finally {
    await upstream.child.stop();
    await ctx.redis?.stop();
    await meter.close();
    await cleanupConfigs();
  }
  await publish('hot', report(ctx, tracks), options.resultsFile, variant(options));
  const bad = tracks.some((t) => t.failed || t.samples.some((s) => s && s.bad > 0));
  process.exitCode = bad ? 1 : 0;
}

runIfMain(import.meta.url, main);
