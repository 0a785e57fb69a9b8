/**
 * Cross-replica revocation latency: how long a superseded token keeps working on another replica.
 *
 * Two gateways A and B share one redis-server (cache.maxStaleness 1s). Per iteration: user uN logs in
 * through A (t1); one request with t1 through B (B now caches t1 as live); uN logs in again through A
 * (t2 supersedes t1, limit 1); then B is polled with t1 on one keep-alive connection until it answers
 * 401. The latency is from A's second login response (headers) arriving to B's first 401 (headers).
 * Without pub/sub it would be up to maxStaleness (1 s).
 *
 * The target (issue 16): the propagation itself, A's commit to B applying it (B's
 * sessiongate_invalidation_lag_seconds: from the stamp A puts on the commit when it sends it to B having
 * refused its tokens), within 1.25x of the channel's floor measured in the same run: a PUBLISH from this
 * process to a subscriber in another process, stamped and timed the same way. Both are read through B's
 * histogram buckets, interpolated (the floor's raw lags are counted into the same buckets), so the
 * ratio compares like with like; the floor's raw percentiles are reported beside them.
 *
 * Usage: node dist/bench/revocation.js [--iterations 1000] [--warmup-iterations 20] [--timeout-ms 3000]
 *          [--gateway-cli ../dist/src/cli.js] [--results results/revocation.md] [--no-results]
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { Client, request } from 'undici';
import { Redis } from 'ioredis';
import {
  cleanupConfigs,
  expectLive,
  GatewayCheckError,
  GatewayUnavailableError,
  startGateway,
  type Gateway,
} from './lib/gateway.js';
import { publish, runIfMain } from './lib/driver.js';
import { login } from './lib/http.js';
import { benchScript, outputPaths } from './lib/paths.js';
import { spawnNode } from './lib/proc.js';
import { redisUnavailableReason, startRedis, type BenchRedis } from './lib/redis.js';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  bucketQuantile,
  machine,
  machineLines,
  num,
  oneLine,
  percentile,
  table,
  toBuckets,
  type Bucket,
} from './lib/report.js';
import { startUpstream, type Helper } from './lib/servers.js';

/** Issue 16: the propagation's p50 and p99 within this ratio of the channel's floor, same run. */
const TARGET_RATIO = 1.25;

export interface RevocationOptions {
  iterations: number;
  /** Iterations run first and not recorded (JIT, connections, Redis scripts loaded). */
  warmupIterations?: number;
  /** An iteration whose token still passes after this long counts as a timeout. */
  timeoutMs?: number;
  gatewayCli: string;
  resultsFile: string | undefined;
}

interface Sample {
  /** ms from A's login response to B's first 401, or undefined on timeout. */
  latency: number | undefined;
  polls: number;
  /**
   * ms from sending the first poll to its answer: the resolution. When the first poll already gets
   * the 401, the revocation reached B faster than this and `latency` is an upper bound.
   */
  firstPollRtt: number;
}

interface Replicas {
  a: Gateway;
  b: Gateway;
  clientA: Client;
  clientB: Client;
}

/** One request with the token through `client`; the time is taken when the response headers arrive. */
async function timedGet(url: string, client: Client, token: string): Promise<{ status: number; at: number }> {
  const res = await request(`${url}/`, { dispatcher: client, headers: { authorization: `Bearer ${token}` } });
  const at = performance.now();
  await res.body.dump();
  return { status: res.statusCode, at };
}

/** Polls B with t1 until 401; 200 means "still live on B". */
async function pollUntilRejected(
  r: Replicas,
  token: string,
  since: number,
  timeoutMs: number,
): Promise<Sample> {
  let polls = 0;
  let firstPollRtt = NaN;
  for (;;) {
    const sent = performance.now();
    const { status, at } = await timedGet(r.b.url, r.clientB, token);
    if (polls++ === 0) firstPollRtt = at - sent;
    if (status === 401) return { polls, latency: at - since, firstPollRtt };
    if (status !== 200)
      throw new GatewayCheckError(`B answered ${status} to a superseded token (expected 200 then 401)`);
    if (at - since > timeoutMs) return { polls, latency: undefined, firstPollRtt };
  }
}

async function iteration(r: Replicas, user: string, timeoutMs: number): Promise<Sample> {
  const t1 = (await login(r.a.url, user, { dispatcher: r.clientA })).token;
  const cached = await timedGet(r.b.url, r.clientB, t1);
  if (cached.status !== 200)
    throw new GatewayCheckError(`B answered ${cached.status} to a fresh live token, expected 200`);
  const second = await login(r.a.url, user, { dispatcher: r.clientA });
  return pollUntilRejected(r, t1, second.headersAt, timeoutMs);
}

function summary(samples: readonly Sample[], options: RevocationOptions): string {
  const latencies = samples
    .flatMap((s) => (s.latency === undefined ? [] : [s.latency]))
    .sort((x, y) => x - y);
  const rtts = samples.map((s) => s.firstPollRtt).sort((x, y) => x - y);
  const atFirstPoll = samples.filter((s) => s.polls === 1 && s.latency !== undefined).length;
  const timeouts = samples.length - latencies.length;
  const polls = samples.reduce((sum, s) => sum + s.polls, 0) / Math.max(1, samples.length);
  const rows = [
    [
      String(samples.length),
      num(percentile(latencies, 50), 3),
      num(percentile(latencies, 99), 3),
      num(latencies[latencies.length - 1], 3),
      num(polls, 2),
      `${num(percentile(rtts, 50), 3)} / ${num(percentile(rtts, 99), 3)}`,
      `${num((100 * atFirstPoll) / Math.max(1, samples.length), 1)} %`,
      String(timeouts),
    ],
  ];
  const header = [
    'iterations',
    'p50 ms',
    'p99 ms',
    'max ms',
    'polls/iter',
    'first poll RTT p50 / p99 ms',
    '401 at first poll',
    `timeouts (>${options.timeoutMs} ms)`,
  ];
  return table(header, rows);
}

async function startReplicas(redis: BenchRedis, upstream: Helper, cli: string): Promise<Replicas> {
  const overrides = { store: redis.url, cache: { maxStaleness: '1s' } };
  const a = await startGateway('revocation-a', cli, upstream.url, overrides);
  let b: Gateway;
  try {
    b = await startGateway('revocation-b', cli, upstream.url, overrides);
  } catch (err) {
    await a.stop();
    throw err;
  }
  // One keep-alive connection each, so no poll pays for a TCP handshake.
  return {
    a,
    b,
    clientA: new Client(a.url, { pipelining: 1 }),
    clientB: new Client(b.url, { pipelining: 1 }),
  };
}

async function stopReplicas(r: Replicas): Promise<void> {
  await Promise.all([r.clientA.close(), r.clientB.close()]);
  await Promise.all([r.a.stop(), r.b.stop()]);
}

/**
 * The propagation itself, measured inside B: sessiongate_invalidation_lag_seconds (from A's stamp on
 * the commit to B having applied it), its cumulative buckets in ms. Free of the HTTP round trip that
 * bounds the polled latency's resolution.
 */
async function invalidationLag(b: Gateway): Promise<Bucket[]> {
  const res = await request(`${b.adminUrl}/metrics`);
  const text = await res.body.text();
  return [...text.matchAll(/^sessiongate_invalidation_lag_seconds_bucket\{le="([^"]+)"\} (\d+)/gm)].map(
    (m) => ({ le: m[1] === '+Inf' ? Infinity : Number(m[1]) * 1000, n: Number(m[2]) }),
  );
}

/**
 * The channel's own floor on this machine, in the same run: PUBLISH from this process, received by a
 * subscriber in another process (as B is another process than A), one message every 2 ms so the
 * subscriber is idle at each arrival as B is. Lag: publication stamp to arrival, in the subscriber.
 */
async function pubsubBaseline(redis: BenchRedis, messages: number): Promise<number[]> {
  const channel = 'bench:baseline';
  const dir = await mkdtemp(join(tmpdir(), 'sg-baseline-'));
  const out = join(dir, 'lags.json');
  const child = spawnNode('subscriber', benchScript('servers/subscriber.js'), [
    '--port',
    String(redis.port),
    '--channel',
    channel,
    '--out',
    out,
  ]);
  const pub = new Redis({ host: '127.0.0.1', port: redis.port });
  try {
    const deadline = Date.now() + 10_000;
    while (!child.tail().includes('subscribed')) {
      if (child.hasExited() || Date.now() > deadline)
        throw new Error(`the baseline subscriber did not start: ${child.tail()}`);
      await sleep(20);
    }
    for (let i = 0; i < messages; i++) {
      await pub.publish(channel, (performance.timeOrigin + performance.now()).toFixed(3));
      await sleep(2);
    }
    await pub.publish(channel, 'done');
    await child.exited;
    const lags: unknown = JSON.parse(await readFile(out, 'utf8'));
    if (!Array.isArray(lags) || lags.length === 0 || !lags.every((x) => typeof x === 'number'))
      throw new Error(`the baseline subscriber wrote no lags: ${child.tail()}`);
    return lags;
  } finally {
    pub.disconnect();
    await child.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

async function measureRevocations(r: Replicas, options: Required<RevocationOptions>): Promise<Sample[]> {
  const run = randomBytes(4).toString('hex');
  // A login through A must be live on B before anything is timed.
  await expectLive(r.b, (await login(r.a.url, `rev-${run}-probe`)).token);
  for (let i = 0; i < options.warmupIterations; i++)
    await iteration(r, `rev-${run}-w${i}`, options.timeoutMs);
  const samples: Sample[] = [];
  for (let i = 0; i < options.iterations; i++)
    samples.push(await iteration(r, `rev-${run}-${i}`, options.timeoutMs));
  return samples;
}

/** Runs the revocation bench; prints a skip line (and returns) when Redis or the gateway is unavailable. */
export async function runRevocation(input: RevocationOptions): Promise<void> {
  const options: Required<RevocationOptions> = { warmupIterations: 20, timeoutMs: 3000, ...input };
  console.log(`\n> revocation: ${options.iterations} iterations, gateways A and B on one redis-server`);
  const missing = redisUnavailableReason();
  if (missing) return void console.log(`  SKIPPED: ${missing}`);
  const upstream = await startUpstream();
  const redis = await startRedis();
  let samples: Sample[] | undefined;
  let lag: Bucket[] = [];
  const baseline = await pubsubBaseline(redis, options.iterations);
  try {
    const replicas = await startReplicas(redis, upstream, options.gatewayCli);
    try {
      samples = await measureRevocations(replicas, options);
      lag = await invalidationLag(replicas.b);
    } finally {
      await stopReplicas(replicas);
    }
  } catch (err) {
    if (!(err instanceof GatewayUnavailableError)) throw err;
    console.log(`  SKIPPED: the gateway is not available: ${oneLine(err.message)}`);
  } finally {
    await redis.stop();
    await upstream.child.stop();
    await cleanupConfigs();
  }
  if (samples) await record(samples, options, lag, baseline);
}

/** The propagation against the channel's floor, both read through the same buckets. */
export function propagationRows(
  lag: readonly Bucket[],
  floorLags: readonly number[],
): { rows: string[][]; met: boolean } {
  const floor = toBuckets(floorLags, lag);
  let met = lag.length > 0;
  const rows = [0.5, 0.99].map((q) => {
    const gateway = bucketQuantile(lag, q);
    const bare = bucketQuantile(floor, q);
    const ratio = gateway / bare;
    if (!(ratio <= TARGET_RATIO)) met = false;
    return [
      `p${q * 100}`,
      num(gateway, 3),
      num(bare, 3),
      num(percentile(floorLags, q * 100), 3),
      `${num(ratio, 2)}x ${ratio <= TARGET_RATIO ? 'ok' : 'OVER'}`,
    ];
  });
  return { rows, met };
}

async function record(
  samples: readonly Sample[],
  options: Required<RevocationOptions>,
  lag: readonly Bucket[],
  floorLags: readonly number[],
): Promise<void> {
  const m = machine();
  const messages = lag[lag.length - 1]?.n ?? 0;
  const { rows, met } = propagationRows(lag, floorLags);
  const section = [
    `## ${m.date} — cross-replica revocation (bench/revocation.ts)`,
    '',
    ...machineLines(m),
    `- two gateways on one redis-server, cache.maxStaleness 1s, ${options.warmupIterations} warm-up iterations not counted`,
    `- propagation: A's commit (the stamp A puts on it as it sends it) -> B having applied it (B's sessiongate_invalidation_lag_seconds, ${messages} messages); floor: PUBLISH from the bench process (stamped as it sends) -> a subscriber in another process, ${floorLags.length} messages 2 ms apart, same redis-server, before the gateways start; both read through B's buckets, interpolated`,
    '',
    table(
      [
        'quantile',
        'propagation ms',
        'floor ms (same buckets)',
        'floor ms (raw)',
        `ratio (<= ${TARGET_RATIO}x)`,
      ],
      rows,
    ),
    '',
    `Propagation within ${TARGET_RATIO}x of the channel's floor at p50 and p99: ${met ? 'met' : 'NOT met'}.`,
    '',
    "What a client sees: A's superseding login response (headers) -> B's first 401 to the old token, polled on one keep-alive connection (when the first poll already gets the 401, the revocation was faster than that poll's round trip):",
    '',
    summary(samples, options),
  ].join('\n');
  await publish('revocation', section, options.resultsFile);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      iterations: { type: 'string', default: '1000' },
      'warmup-iterations': { type: 'string', default: '20' },
      'timeout-ms': { type: 'string', default: '3000' },
      'gateway-cli': { type: 'string' },
      results: { type: 'string' },
      'no-results': { type: 'boolean', default: false },
    },
  });
  await runRevocation({
    iterations: Number(values.iterations),
    warmupIterations: Number(values['warmup-iterations']),
    timeoutMs: Number(values['timeout-ms']),
    ...outputPaths('revocation', values),
  });
}

// Run only when executed directly.
runIfMain(import.meta.url, main);
