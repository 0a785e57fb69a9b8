/**
 * Instructions per proxied request, counted by valgrind's callgrind: the hot-path comparison of
 * bench/run.ts (gateway vs the undici floor vs http-proxy) without the timing noise of a shared VM.
 * Instruction counts do not depend on how fast the host happens to be this minute.
 *
 * Usage: node dist/bench/instructions.js [--rounds 1] [--warmup-requests 8000] [--requests 5000]
 *          [--connections 10] [--only a,b] [--ready-timeout 180] [--keep-dumps]
 *          [--gateway-cli ../dist/src/cli.js] [--results results/instructions.md | --no-results]
 *
 * Only the proxy runs under valgrind; the upstream (and redis-server) run natively and the load comes
 * from this process. See bench/README.md.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { stringify } from 'yaml';
import {
  callgrindUnavailableReason,
  dumpCounters,
  spawnUnderCallgrind,
  threadSplit,
  valgrindVersion,
  zeroCounters,
  type ThreadSplit,
} from './lib/callgrind.js';
import { gatewayConfig, liveTokenProvingEnforcement, type GatewayOverrides } from './lib/gateway.js';
import { PASSTHROUGH_TOKEN } from './lib/http.js';
import { benchScript, outputPaths, repoRoot } from './lib/paths.js';
import { ChildNotReadyError, freePort, waitForHttp, type Child } from './lib/proc.js';
import { ensureRedis, type BenchRedis } from './lib/redis.js';
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
import { positiveFlag } from './lib/flags.js';
import {
  int,
  machine,
  machineLines,
  median,
  table,
  TARGET_VS_FLOOR,
  TARGET_VS_HTTP_PROXY,
  verdict,
} from './lib/report.js';
import { passthroughs, startUpstream } from './lib/servers.js';

/** store.commandTimeout and store.pingInterval of the Redis gateway under valgrind (see gateway-redis). */
const REDIS_TIMEOUT = '10s';

interface Options {
  rounds: number;
  warmupRequests: number;
  requests: number;
  connections: number;
  only: Set<string> | undefined;
  readyTimeoutMs: number;
  keepDumps: boolean;
  gatewayCli: string;
  resultsFile: string | undefined;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      rounds: { type: 'string' },
      'warmup-requests': { type: 'string' },
      requests: { type: 'string' },
      connections: { type: 'string' },
      only: { type: 'string' },
      'ready-timeout': { type: 'string' },
      'keep-dumps': { type: 'boolean', default: false },
      'gateway-cli': { type: 'string' },
      results: { type: 'string' },
      'no-results': { type: 'boolean', default: false },
    },
  });
  return {
    rounds: positiveFlag(values.rounds, 1, 'rounds', { integer: true }),
    warmupRequests: positiveFlag(values['warmup-requests'], 8000, 'warmup-requests', { integer: true }),
    requests: positiveFlag(values.requests, 5000, 'requests', { integer: true }),
    connections: positiveFlag(values.connections, 10, 'connections', { integer: true }),
    only: onlyFlag(values.only),
    readyTimeoutMs: positiveFlag(values['ready-timeout'], 180, 'ready-timeout', { integer: true }) * 1000,
    keepDumps: values['keep-dumps'] ?? false,
    ...outputPaths('instructions', values),
  };
}

/** What every scenario can use: the shared upstream, the dump directory and, on first need, redis-server. */
interface Context {
  options: Options;
  upstreamUrl: string;
  dumpDir: string;
  redis: BenchRedis | undefined;
}

/** Instructions per measured request. */
type PerRequest = ThreadSplit;

interface Counted {
  perRequest: PerRequest;
  mainRounds?: number[];
  totalRounds?: number[];
}

type Outcome = DriverOutcome<Counted>;

/** The process to run under callgrind for one scenario, on `port`. */
interface Launch {
  script: string;
  args: readonly string[];
  cwd?: string;
}

interface Scenario extends ScenarioBase {
  /** The process to count, or a reason to skip the scenario. */
  launch(ctx: Context, port: number): Promise<Launch | { skip: string }>;
  /** Runs once the process answers HTTP; returns the bearer token of the load. */
  prepare(ctx: Context, child: Child, url: string): Promise<string>;
}

/** Sends `amount` GET / closed-loop over the pool's connections; returns the count per status code. */
async function closedLoop(
  pool: Pool,
  token: string,
  amount: number,
  connections: number,
): Promise<Map<number, number>> {
  const statuses = new Map<number, number>();
  const headers = { authorization: `Bearer ${token}` };
  let sent = 0;
  const worker = async (): Promise<void> => {
    while (sent < amount) {
      sent++;
      const res = await pool.request({ path: '/', method: 'GET', headers });
      await res.body.dump();
      statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: Math.min(connections, amount) }, worker));
  return statuses;
}

/** Throws unless every response of a load was 200. */
function expectAll200(statuses: Map<number, number>, amount: number, what: string): void {
  const ok = statuses.get(200) ?? 0;
  if (ok !== amount) {
    const seen = JSON.stringify(Object.fromEntries(statuses));
    throw new Error(`${ok} of ${amount} ${what} requests answered 200 (statuses ${seen})`);
  }
}

function indent(text: string): string {
  return text
    .split('\n')
    .slice(-10)
    .map((line) => `    ${line}`)
    .join('\n');
}

function since(start: number): string {
  return `${((performance.now() - start) / 1000).toFixed(0)} s`;
}

/**
 * One scenario once: the proxy under callgrind, readiness, preparation (login and enforcement check
 * for gateways), warm-up, zeroed counters, the measured requests, a dump, the split per request.
 */
async function runOnce(ctx: Context, scenario: Scenario, round: number): Promise<Outcome> {
  const { options } = ctx;
  const port = await freePort();
  const launch = await scenario.launch(ctx, port);
  if ('skip' in launch) return { kind: 'skipped', reason: launch.skip };
  const roundDir = join(ctx.dumpDir, `round-${round}`);
  await mkdir(roundDir, { recursive: true });
  const outFile = join(roundDir, `callgrind.${scenario.name}`);
  const start = performance.now();
  const child = spawnUnderCallgrind(scenario.name, outFile, launch.script, launch.args, launch.cwd);
  const url = `http://127.0.0.1:${port}`;
  let pool: Pool | undefined;
  try {
    try {
      await waitForHttp(child, `${url}/`, options.readyTimeoutMs);
    } catch (err) {
      // As in bench/run.ts: a gateway that does not come up is skipped, a bench helper that does not is a failure.
      if (err instanceof ChildNotReadyError && scenario.isGateway)
        return { kind: 'skipped', reason: err.message };
      throw err;
    }
    console.log(`  listening under callgrind after ${since(start)} (pid ${child.pid})`);
    const token = await scenario.prepare(ctx, child, url);
    pool = new Pool(url, { connections: options.connections, pipelining: 1 });
    const warm = performance.now();
    expectAll200(
      await closedLoop(pool, token, options.warmupRequests, options.connections),
      options.warmupRequests,
      'warm-up',
    );
    console.log(`  ${options.warmupRequests} warm-up requests in ${since(warm)}`);
    await zeroCounters(child.pid);
    const measured = performance.now();
    const statuses = await closedLoop(pool, token, options.requests, options.connections);
    const dump = await dumpCounters(child.pid, outFile);
    expectAll200(statuses, options.requests, 'measured');
    console.log(`  ${options.requests} measured requests in ${since(measured)}; dump ${dump}`);
    const split = await threadSplit(dump);
    return {
      kind: 'ok',
      perRequest: {
        main: split.main / options.requests,
        other: split.other / options.requests,
        total: split.total / options.requests,
      },
    };
  } catch (err) {
    // The process's own last lines (the proxy's warnings, valgrind's) usually say why; console only.
    // A ChildNotReadyError carries them already.
    if (!(err instanceof ChildNotReadyError))
      console.log(`  last output of ${scenario.name}:\n${indent(child.tail())}`);
    throw err;
  } finally {
    await pool?.close();
    // Exiting under valgrind takes a while (it writes a last dump); SIGKILL only if it hangs.
    await child.stop(60_000);
    // A clean Redis for the next scenario: sessions of one run must not change the next one's keyspace.
    await ctx.redis?.admin.flushall();
  }
}

function passthrough(name: string, script: string, what: string): Scenario {
  return {
    name,
    what,
    isGateway: false,
    launch: (ctx, port) =>
      Promise.resolve({
        script: benchScript(script),
        args: ['--port', String(port), '--upstream', ctx.upstreamUrl],
      }),
    // The same request as the gateways' (bearer header included), so header bytes are not a difference.
    prepare: () => Promise.resolve(PASSTHROUGH_TOKEN),
  };
}

/**
 * The gateway CLI with bench/run.ts's config plus `overrides`, a function because the Redis URL is only
 * known once redis-server runs; it returns a string, the reason to skip, when the scenario cannot run.
 */
function gateway(
  name: string,
  user: string,
  what: string,
  overrides: (ctx: Context) => Promise<GatewayOverrides | string>,
): Scenario {
  return {
    name,
    what,
    isGateway: true,
    launch: async (ctx, port) => {
      const cli = ctx.options.gatewayCli;
      if (!existsSync(cli)) return { skip: `${cli} does not exist (the gateway is not built yet)` };
      const extra = await overrides(ctx);
      if (typeof extra === 'string') return { skip: extra };
      const config = gatewayConfig(port, await freePort(), ctx.upstreamUrl, extra);
      const file = join(ctx.dumpDir, `${name}.yaml`);
      await writeFile(file, stringify(config), 'utf8');
      return { script: cli, args: ['--config', file], cwd: repoRoot };
    },
    // Log in twice: the first token must be refused (401) and the second pass (200), so a gateway that
    // forwarded everything could not produce a row.
    prepare: (_ctx, child, url) =>
      liveTokenProvingEnforcement({ name, url, adminUrl: '', child, stop: () => child.stop() }, user),
  };
}

const scenarios: Scenario[] = [
  ...passthroughs.map(({ name, script, what }) => passthrough(name, script, what)),
  gateway('gateway-memory', 'bench-memory', 'gateway, memory store, one live session (LRU hit)', () =>
    Promise.resolve({}),
  ),
  gateway(
    'gateway-redis',
    'bench-redis',
    `gateway, Redis store (commandTimeout and pingInterval ${REDIS_TIMEOUT}), one live session (LRU hit; Redis re-read once per maxStaleness)`,
    async (ctx) => {
      const redis = await ensureRedis(ctx);
      if (typeof redis === 'string') return redis;
      // The defaults (250 ms per command, a PING answered within 1 s) are deadlines for a native
      // process: 30-50 times slower under valgrind, a warm-up lookup or the subscriber's first
      // SUBSCRIBE overran them and turned requests into 503s. Timeouts arm the same timers whatever
      // their length, and fewer PINGs are closer to the native per-request cost, not further.
      return { store: { url: redis.url, commandTimeout: REDIS_TIMEOUT, pingInterval: REDIS_TIMEOUT } };
    },
  ),
];

function runScenario(ctx: Context, scenario: Scenario, round: number): Promise<Outcome> {
  return attempt(
    scenario,
    () => runOnce(ctx, scenario, round),
    ({ perRequest: p }) =>
      console.log(
        `  instructions/request: main ${int(p.main)}, other threads ${int(p.other)}, total ${int(p.total)}`,
      ),
  );
}

/** The rounds of one scenario as one outcome: any failure wins, else each column's median. */
function combine(outcomes: readonly Outcome[]): Outcome {
  return combineRounds(outcomes, (rounds) => {
    const ok = rounds.map((o) => o.perRequest);
    return {
      kind: 'ok',
      perRequest: {
        main: median(ok.map((p) => p.main)),
        other: median(ok.map((p) => p.other)),
        total: median(ok.map((p) => p.total)),
      },
      mainRounds: ok.map((p) => p.main),
      totalRounds: ok.map((p) => p.total),
    };
  });
}

type Row = DriverRow<Scenario, Counted>;

/** min-max over the rounds, and how far apart they are relative to the median. */
function spread(rounds: readonly number[] | undefined): string {
  if (!rounds || rounds.length < 2) return '—';
  const [min, max] = [Math.min(...rounds), Math.max(...rounds)];
  return `${int(min)}-${int(max)} (${((100 * (max - min)) / median(rounds)).toFixed(1)}%)`;
}

function resultsTable(rows: readonly Row[], rounds: number): string {
  const header = ['scenario', 'main thread instr/req', 'other threads instr/req', 'total instr/req'];
  if (rounds > 1) header.push('main range', 'total range');
  const body = rows.map(({ scenario, outcome }) => {
    if (outcome.kind !== 'ok') return [scenario.name, outcome.kind, ...header.slice(2).map(() => '')];
    const p = outcome.perRequest;
    const cells = [scenario.name, int(p.main), int(p.other), int(p.total)];
    if (rounds > 1) cells.push(spread(outcome.mainRounds), spread(outcome.totalRounds));
    return cells;
  });
  return table(header, body);
}

function ratioVerdict(value: number | undefined, base: number | undefined, target: number): string {
  return verdict(value === undefined || base === undefined ? undefined : value / base, target);
}

function perRequestOf(rows: readonly Row[], name: string): PerRequest | undefined {
  const row = rows.find((r) => r.scenario.name === name);
  return row?.outcome.kind === 'ok' ? row.outcome.perRequest : undefined;
}

/** Gateway instructions over the floor's and http-proxy's, main thread and total. */
function ratiosTable(rows: readonly Row[]): string | undefined {
  const floor = perRequestOf(rows, 'undici-floor');
  const httpProxy = perRequestOf(rows, 'http-proxy');
  const gateways = rows.filter((r) => r.scenario.isGateway && r.outcome.kind === 'ok');
  if (gateways.length === 0) return undefined;
  const header = [
    'gateway scenario',
    `main / floor (<= ${TARGET_VS_FLOOR})`,
    `main / http-proxy (<= ${TARGET_VS_HTTP_PROXY})`,
    `total / floor (<= ${TARGET_VS_FLOOR})`,
    `total / http-proxy (<= ${TARGET_VS_HTTP_PROXY})`,
    'main minus floor instr/req',
  ];
  const body = gateways.map((r) => {
    const p = perRequestOf(rows, r.scenario.name);
    return [
      r.scenario.name,
      ratioVerdict(p?.main, floor?.main, TARGET_VS_FLOOR),
      ratioVerdict(p?.main, httpProxy?.main, TARGET_VS_HTTP_PROXY),
      ratioVerdict(p?.total, floor?.total, TARGET_VS_FLOOR),
      ratioVerdict(p?.total, httpProxy?.total, TARGET_VS_HTTP_PROXY),
      p && floor ? int(p.main - floor.main) : '—',
    ];
  });
  return table(header, body);
}

function report(options: Options, rows: readonly Row[]): string {
  const ratios = ratiosTable(rows);
  return [
    `## ${machine().date} — instructions per request (bench/instructions.ts)`,
    '',
    ...machineLines(machine()),
    `- ${valgrindVersion()} --tool=callgrind --smc-check=all-non-file around the proxy only (upstream and redis-server native); GET / with a bearer token, ${options.warmupRequests} warm-up requests, then counters zeroed (callgrind_control -z), ${options.requests} counted requests, dump (-d); closed loop on ${options.connections} keep-alive connections (undici Pool in the parent)`,
    `- instr/req: instructions (Ir) of the window / counted requests; main = inclusive count of node::Start (the JS thread), other = all threads minus main (TurboFan, GC helpers, libuv pool: they vary with whether a compile or a major GC falls in the window)${options.rounds > 1 ? `; each column the median of ${options.rounds} rounds` : '; one round'}`,
    `- gateways: bench/run.ts's config; gateway-redis with store.commandTimeout and store.pingInterval ${REDIS_TIMEOUT} (the 250 ms / 1 s defaults are overrun under valgrind and turn requests into 503s)`,
    '',
    resultsTable(rows, options.rounds),
    '',
    ...ratiosPart(
      'Gateway instructions per request as a ratio (targets of DESIGN.md, there for CPU time):',
      ratios,
    ),
    ...notes(rows),
  ].join('\n');
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const unavailable = callgrindUnavailableReason();
  if (unavailable) {
    console.log(`instruction bench skipped: ${unavailable}`);
    return;
  }
  const selected = selectScenarios(scenarios, options.only);

  const upstream = await startUpstream();
  const ctx: Context = {
    options,
    upstreamUrl: upstream.url,
    dumpDir: await mkdtemp(join(tmpdir(), 'sessiongate-callgrind-')),
    redis: undefined,
  };
  let rows: Row[];
  try {
    rows = await runRounds(
      selected,
      options.rounds,
      (scenario, round) => runScenario(ctx, scenario, round),
      combine,
    );
  } finally {
    await upstream.child.stop();
    await ctx.redis?.stop();
    if (options.keepDumps) console.log(`\ncallgrind dumps kept in ${ctx.dumpDir}`);
    else await rm(ctx.dumpDir, { recursive: true, force: true });
  }

  await publish('instructions', report(options, rows), options.resultsFile);
  process.exitCode = rows.some((r) => r.outcome.kind === 'failed') ? 1 : 0;
}

runIfMain(import.meta.url, main);
