/**
 * The hot-path benchmark (DESIGN.md "The hot path"): CPU per proxied request of the gateway next to
 * the Node floor (undici dispatch passthrough) and http-proxy, same upstream, same load.
 *
 * Usage: npm run hot -- [--quick] [--duration 10] [--warmup 2] [--connections 50] [--pipelining 1]
 *          [--rate <req/s>] [--rounds 1] [--pin] [--only a,b] [--miss-users 1000]
 *          [--gateway-cli ../dist/src/cli.js] [--results results/run.md | --no-results]
 *          [--revocation [--iterations 1000]]
 *
 * Each server runs in its own process; autocannon runs here. See bench/README.md.
 */
import { parseArgs } from 'node:util';
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
import {
  bearerRotation,
  combineMeasurements,
  measure,
  type LoadSettings,
  type LoadTarget,
  type Measurement,
  type Watched,
} from './lib/load.js';
import {
  attempt,
  combineRounds,
  notes,
  onlyFlag,
  publish,
  ratiosPart,
  runIfMain,
  runRounds,
  selectScenarios,
  type Outcome as DriverOutcome,
  type Row as DriverRow,
  type ScenarioBase,
} from './lib/driver.js';
import { outputPaths } from './lib/paths.js';
import { pinBench, type Child, type Pinning } from './lib/proc.js';
import { passthroughs, startHelper, startUpstream } from './lib/servers.js';
import { ensureRedis as startOrReuseRedis, type BenchRedis } from './lib/redis.js';
import { positiveFlag } from './lib/flags.js';
import {
  int,
  machine,
  machineLines,
  num,
  table,
  TARGET_VS_FLOOR,
  TARGET_VS_HTTP_PROXY,
  verdict,
} from './lib/report.js';
import { runRevocation } from './revocation.js';

interface Options {
  settings: LoadSettings;
  rounds: number;
  quick: boolean;
  only: Set<string> | undefined;
  missUsers: number;
  gatewayCli: string;
  resultsFile: string | undefined;
  revocation: boolean;
  /** Where --revocation records its section: --results when given, else its own file. */
  revocationResultsFile: string | undefined;
  iterations: number;
  pin: boolean;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      connections: { type: 'string' },
      pipelining: { type: 'string' },
      rate: { type: 'string' },
      rounds: { type: 'string' },
      only: { type: 'string' },
      'miss-users': { type: 'string' },
      'gateway-cli': { type: 'string' },
      results: { type: 'string' },
      'no-results': { type: 'boolean', default: false },
      revocation: { type: 'boolean', default: false },
      iterations: { type: 'string' },
      pin: { type: 'boolean', default: false },
    },
  });
  const quick = values.quick ?? false;
  return {
    settings: {
      duration: positiveFlag(values.duration, quick ? 3 : 10, 'duration'),
      warmup: values.warmup === '0' ? 0 : positiveFlag(values.warmup, quick ? 1 : 2, 'warmup'),
      connections: positiveFlag(values.connections, 50, 'connections'),
      pipelining: positiveFlag(values.pipelining, 1, 'pipelining'),
      ...(values.rate ? { rate: positiveFlag(values.rate, 0, 'rate') } : {}),
    },
    rounds: positiveFlag(values.rounds, 1, 'rounds'),
    quick,
    only: onlyFlag(values.only),
    missUsers: positiveFlag(values['miss-users'], 1000, 'miss-users'),
    ...outputPaths('run', values),
    revocation: values.revocation ?? false,
    revocationResultsFile: outputPaths('revocation', values).resultsFile,
    iterations: positiveFlag(values.iterations, quick ? 200 : 1000, 'iterations'),
    pin: values.pin ?? false,
  };
}

/** What every scenario can use: the shared upstream and, started on first need, one redis-server. */
interface Context {
  options: Options;
  upstream: Child;
  upstreamUrl: string;
  redis: BenchRedis | undefined;
  /** --pin: CPU lists for the proxy under test and for everything else. */
  pinning: Pinning | undefined;
}

interface Measured {
  measurement: Measurement;
  /** Why the figures are not to be trusted (responses that were not 2xx). */
  note?: string;
  proxyCpuRounds?: number[];
}

type Outcome = DriverOutcome<Measured>;

interface Scenario extends ScenarioBase {
  run(ctx: Context): Promise<Outcome>;
}

type Row = DriverRow<Scenario, Measured>;

function watchedFor(ctx: Context, proxy: Child | undefined, redis?: BenchRedis): Watched[] {
  const watched: Watched[] = [];
  if (proxy) watched.push({ label: 'proxy', pid: proxy.pid });
  watched.push({ label: 'upstream', pid: ctx.upstream.pid });
  // Redis is charged only to the scenarios that use it (it idles, but it is not free).
  if (redis) watched.push({ label: 'redis', pid: redis.child.pid });
  return watched;
}

async function passthrough(ctx: Context, name: string, script: string): Promise<Outcome> {
  const { child, url } = await startHelper(name, script, ['--upstream', ctx.upstreamUrl], ctx.pinning?.proxy);
  try {
    // The same request as the gateway's hit scenario, bearer token included: a proxy that parses and
    // forwards fewer header bytes would look cheaper for a reason that has nothing to do with checks.
    const measurement = await measure(
      { url: `${url}/`, headers: { authorization: `Bearer ${PASSTHROUGH_TOKEN}` } },
      ctx.options.settings,
      watchedFor(ctx, child),
    );
    return { kind: 'ok', measurement };
  } finally {
    await child.stop();
  }
}

function ensureRedis(ctx: Context): Promise<BenchRedis | string> {
  return startOrReuseRedis(ctx, ctx.pinning?.others);
}

/** Starts a gateway, lets `prepare` log in and build the load, measures, stops it; skips if it cannot start. */
async function gatewayRun(
  ctx: Context,
  name: string,
  overrides: GatewayOverrides,
  prepare: (gateway: Gateway) => Promise<LoadTarget>,
  redis?: BenchRedis,
): Promise<Outcome> {
  let gateway: Gateway;
  try {
    gateway = await startGateway(
      name,
      ctx.options.gatewayCli,
      ctx.upstreamUrl,
      overrides,
      ctx.pinning?.proxy,
    );
  } catch (err) {
    if (err instanceof GatewayUnavailableError) return { kind: 'skipped', reason: err.message };
    throw err;
  }
  try {
    const target = await prepare(gateway);
    const measurement = await measure(target, ctx.options.settings, watchedFor(ctx, gateway.child, redis));
    return { kind: 'ok', measurement };
  } finally {
    await gateway.stop();
    // A clean Redis for the next scenario: sessions of one run must not change the next one's keyspace.
    await ctx.redis?.admin.flushall();
  }
}

/** One live session hit over and over: the cache-hit path. */
function hitLoad(user: string): (gateway: Gateway) => Promise<LoadTarget> {
  return async (gateway) => {
    const token = await liveTokenProvingEnforcement(gateway, user);
    return { url: `${gateway.url}/`, headers: { authorization: `Bearer ${token}` } };
  };
}

/** Many users' live sessions in rotation against a 1-entry LRU: nearly every request misses. */
function missLoad(users: number): (gateway: Gateway) => Promise<LoadTarget> {
  return async (gateway) => {
    await liveTokenProvingEnforcement(gateway, 'bench-miss-probe');
    const names = Array.from({ length: users }, (_, i) => `bench-miss-${i}`);
    const tokens = await mapLimit(names, 16, async (user) => (await login(gateway.url, user)).token);
    await expectLive(gateway, tokens[0] as string);
    await expectLive(gateway, tokens[tokens.length - 1] as string);
    return { url: `${gateway.url}/`, requestsFor: bearerRotation(tokens) };
  };
}

async function redisGatewayRun(
  ctx: Context,
  name: string,
  overrides: GatewayOverrides,
  prepare: (gateway: Gateway) => Promise<LoadTarget>,
): Promise<Outcome> {
  const redis = await ensureRedis(ctx);
  if (typeof redis === 'string') return { kind: 'skipped', reason: redis };
  return gatewayRun(ctx, name, { store: redis.url, ...overrides }, prepare, redis);
}

const scenarios: Scenario[] = [
  {
    name: 'upstream',
    what: 'the app alone (no proxy); its CPU is the upstream column of every row',
    isGateway: false,
    run: async (ctx) => ({
      kind: 'ok',
      measurement: await measure(
        { url: `${ctx.upstreamUrl}/` },
        ctx.options.settings,
        watchedFor(ctx, undefined),
      ),
    }),
  },
  ...passthroughs.map(({ name, script, what }): Scenario => ({
    name,
    what,
    isGateway: false,
    run: (ctx) => passthrough(ctx, name, script),
  })),
  {
    name: 'gateway-memory',
    what: 'gateway, memory store, one live session (LRU hit)',
    isGateway: true,
    run: (ctx) => gatewayRun(ctx, 'gateway-memory', {}, hitLoad('bench-memory')),
  },
  {
    name: 'gateway-redis',
    what: 'gateway, Redis store, one live session (LRU hit; Redis re-read once per maxStaleness)',
    isGateway: true,
    run: (ctx) => redisGatewayRun(ctx, 'gateway-redis', {}, hitLoad('bench-redis')),
  },
  {
    name: 'gateway-redis-strict',
    what: 'gateway, Redis store, consistency: strict, rotating over --miss-users sessions (a Redis lookup per request)',
    isGateway: true,
    // Rotating tokens, not one: the gateway coalesces concurrent lookups of one token id, so 50
    // connections on a single token would share lookups and under-state what strict mode costs.
    run: (ctx) =>
      redisGatewayRun(
        ctx,
        'gateway-redis-strict',
        { consistency: 'strict' },
        missLoad(ctx.options.missUsers),
      ),
  },
  {
    name: 'gateway-miss',
    what: 'gateway, memory store, cache.max 1, requests rotating over --miss-users sessions (LRU miss)',
    isGateway: true,
    run: (ctx) => gatewayRun(ctx, 'gateway-miss', { cache: { max: 1 } }, missLoad(ctx.options.missUsers)),
  },
  {
    name: 'gateway-redis-miss',
    what: 'gateway, Redis store, cache.max 1, rotating over --miss-users sessions (LRU miss -> Redis)',
    isGateway: true,
    run: (ctx) =>
      redisGatewayRun(ctx, 'gateway-redis-miss', { cache: { max: 1 } }, missLoad(ctx.options.missUsers)),
  },
];

function runScenario(ctx: Context, scenario: Scenario): Promise<Outcome> {
  return attempt(
    scenario,
    () => scenario.run(ctx),
    (outcome) => {
      const m = outcome.measurement;
      const bad = m.non2xx + m.errors + m.timeouts;
      if (bad > 0) {
        outcome.note = `${bad} of ${m.requests} requests were not 2xx or failed (statuses ${JSON.stringify(m.statusCounts)}, errors ${m.errors}, timeouts ${m.timeouts})`;
      }
      const cpu = Object.entries(m.cpuPerRequest).map(([k, v]) => `${k} ${num(v)} us/req`);
      console.log(`  ${int(m.reqPerSec)} req/s, p50 ${m.p50} ms, p99 ${m.p99} ms; ${cpu.join(', ')}`);
      if (outcome.note) console.log(`  WARNING: ${outcome.note}`);
    },
  );
}

/** The rounds of one scenario as one outcome: any failure wins, else the medians of the rounds that ran. */
function combine(outcomes: readonly Outcome[]): Outcome {
  return combineRounds(outcomes, (ok) => {
    const note = ok.flatMap((o) => (o.note ? [o.note] : [])).join('; ');
    return {
      kind: 'ok',
      measurement: combineMeasurements(ok.map((o) => o.measurement)),
      proxyCpuRounds: ok.map((o) => o.measurement.cpuPerRequest['proxy'] ?? NaN),
      ...(note ? { note } : {}),
    };
  });
}

function cpuOf(rows: readonly Row[], name: string): number | undefined {
  const row = rows.find((r) => r.scenario.name === name);
  return row?.outcome.kind === 'ok' ? row.outcome.measurement.cpuPerRequest['proxy'] : undefined;
}

/** min-max of the proxy's CPU/req over the rounds: how much to trust a difference between two rows. */
function spread(rounds: readonly number[] | undefined): string {
  const finite = (rounds ?? []).filter((v) => Number.isFinite(v));
  if (finite.length < 2) return '—';
  return `${num(Math.min(...finite))}-${num(Math.max(...finite))}`;
}

function resultsTable(rows: readonly Row[], rounds: number): string {
  const header = [
    'scenario',
    'req/s',
    'p50 ms',
    'p99 ms',
    'proxy CPU us/req',
    'upstream us/req',
    'redis us/req',
    'not 2xx',
  ];
  if (rounds > 1) header.splice(5, 0, 'proxy CPU range');
  const body = rows.map(({ scenario, outcome }) => {
    if (outcome.kind !== 'ok') return [scenario.name, outcome.kind, ...header.slice(2).map(() => '')];
    const m = outcome.measurement;
    const cells = [
      scenario.name,
      int(m.reqPerSec),
      num(m.p50, 0),
      num(m.p99, 0),
      num(m.cpuPerRequest['proxy']),
      num(m.cpuPerRequest['upstream']),
      num(m.cpuPerRequest['redis']),
      int(m.non2xx + m.errors + m.timeouts),
    ];
    if (rounds > 1) cells.splice(5, 0, spread(outcome.proxyCpuRounds));
    return cells;
  });
  return table(header, body);
}

/** Gateway CPU/req over the floor's and http-proxy's, and the check's own cost (gateway minus floor). */
function ratiosTable(rows: readonly Row[]): string | undefined {
  const floor = cpuOf(rows, 'undici-floor');
  const httpProxy = cpuOf(rows, 'http-proxy');
  const gateways = rows.filter((r) => r.scenario.isGateway && r.outcome.kind === 'ok');
  if (gateways.length === 0) return undefined;
  const header = [
    'gateway scenario',
    `/ undici-floor (<= ${TARGET_VS_FLOOR})`,
    `/ http-proxy (<= ${TARGET_VS_HTTP_PROXY})`,
    'minus floor us/req',
  ];
  const body = gateways.map((r) => {
    const cpu = cpuOf(rows, r.scenario.name) ?? NaN;
    return [
      r.scenario.name,
      verdict(floor === undefined ? undefined : cpu / floor, TARGET_VS_FLOOR),
      verdict(httpProxy === undefined ? undefined : cpu / httpProxy, TARGET_VS_HTTP_PROXY),
      floor === undefined ? '—' : num(cpu - floor),
    ];
  });
  return table(header, body);
}

function report(options: Options, rows: readonly Row[], pinning: Pinning | undefined): string {
  const s = options.settings;
  const ratios = ratiosTable(rows);
  return [
    `## ${machine().date} — hot path (bench/run.ts)${options.quick ? ' — quick smoke run, not for comparison' : ''}`,
    '',
    ...machineLines(machine()),
    `- autocannon (in the parent process): ${s.connections} connections, pipelining ${s.pipelining}, ${s.warmup} s warm-up then ${s.duration} s measured, ${s.rate ? `fixed rate ${s.rate} req/s` : 'as fast as possible'}, GET / (100-byte body); miss scenarios rotate over ${options.missUsers} users`,
    `- CPU us/req: utime+stime of that process over the measured window / requests completed in it${options.rounds > 1 ? `; median of ${options.rounds} rounds (scenarios interleaved per round)` : '; one round (see README "Noise" before reading a ratio)'}`,
    pinning
      ? `- pinned (--pin): the proxy under test on CPU ${pinning.proxy}; autocannon, upstream and redis on CPU ${pinning.others}`
      : '- not pinned: the scheduler places the processes (see README "Noise")',
    '',
    resultsTable(rows, options.rounds),
    '',
    ...ratiosPart(
      'Gateway CPU per request as a ratio (targets are for the cache-hit rows; strict and miss rows are for information):',
      ratios,
    ),
    ...notes(rows, (outcome) => outcome.note),
  ].join('\n');
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const selected = selectScenarios(scenarios, options.only);

  const pinning = options.pin ? pinBench() : undefined;
  if (typeof pinning === 'string') throw new Error(`--pin: ${pinning}`);
  const upstream = await startUpstream(pinning?.others);
  const ctx: Context = {
    options,
    upstream: upstream.child,
    upstreamUrl: upstream.url,
    redis: undefined,
    pinning,
  };
  let rows: Row[];
  try {
    rows = await runRounds(selected, options.rounds, (scenario) => runScenario(ctx, scenario), combine);
  } finally {
    await upstream.child.stop();
    await ctx.redis?.stop();
    await cleanupConfigs();
  }

  await publish('run', report(options, rows, pinning), options.resultsFile);
  if (options.revocation) {
    await runRevocation({
      iterations: options.iterations,
      gatewayCli: options.gatewayCli,
      resultsFile: options.revocationResultsFile,
    });
  }
  const failed = rows.some((r) => r.outcome.kind === 'failed' || (r.outcome.kind === 'ok' && r.outcome.note));
  process.exitCode = failed ? 1 : 0;
}

runIfMain(import.meta.url, main);
