/**
 * The hot-path bench's two meters, behind one shape so a schedule (bench/hot.ts) does not know which
 * one it drives:
 *
 * - `cpu`: the proxy runs natively; a window of autocannon (or wrk) load, bracketed by `/proc` CPU
 *   readings of the proxy, the upstream and redis-server, charged to the requests completed in it.
 * - `callgrind`: the proxy runs under valgrind's callgrind; a closed loop of undici requests between
 *   `callgrind_control -z` and `-d`, the dump split into the main thread and the others.
 *
 * Both take the same target (URL, bearer headers or a rotation of them) and return per-request
 * figures keyed by column, so ratios against the floor are computed the same way for both.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';
import {
  callgrindUnavailableReason,
  dumpCounters,
  spawnUnderCallgrind,
  threadSplit,
  valgrindVersion,
  zeroCounters,
} from './callgrind.js';
import { measure, type LoadSettings, type LoadTarget, type Measurement, type Watched } from './load.js';
import { spawnNode, type Child, type Pinning } from './proc.js';
import { measureWithWrk, wrkUnavailableReason } from './wrk.js';

/** A process under measurement, started and prepared (its load target built, enforcement proved). */
export interface Contender {
  readonly name: string;
  /** The process whose work is charged (for nginx, its one worker). */
  readonly pid: number;
  readonly target: LoadTarget;
  /** Other processes charged to its requests (the upstream, redis-server), each under its label. */
  readonly watched: readonly Watched[];
}

/** One measured window of one contender: per-request figures by column key. */
export interface Sample {
  readonly figures: Readonly<Record<string, number>>;
  readonly requests: number;
  /** Responses that were not 2xx, errors and timeouts: a non-zero count makes the figures suspect. */
  readonly bad: number;
  readonly badDetail?: string;
}

export interface Column {
  readonly key: string;
  readonly label: string;
  readonly digits: number;
}

/** The scenario cannot be measured by this meter (a one-line reason, not a failure). */
export class UnmeasurableError extends Error {}

export interface Meter {
  readonly name: 'cpu' | 'callgrind';
  /** The columns of the results table, in order. */
  readonly columns: readonly Column[];
  /** The figures ratios are taken of (against the floor's and http-proxy's of the same round). */
  readonly ratioKeys: readonly string[];
  /** How long a started proxy may take to answer. */
  readonly readyTimeoutMs: number;
  /** Starts `node <script> ...args` as a proxy under test. */
  spawn(name: string, script: string, args: readonly string[], cwd?: string): Child;
  /** Grace before SIGKILL when stopping a proxy this meter started. */
  readonly stopGraceMs: number;
  /** Load before any window is measured (JIT, pools, caches settle). */
  warm(contender: Contender): Promise<void>;
  /** One measured window. */
  sample(contender: Contender): Promise<Sample>;
  /** What the report says about how it measured. */
  describe(): string[];
  close(): Promise<void>;
}

export interface CpuMeterOptions {
  load: 'autocannon' | 'wrk';
  /** Seconds of the measured window. */
  duration: number;
  /** Seconds of load before the first window of each contender. */
  warmup: number;
  connections: number;
  pipelining: number;
  rate: number | undefined;
  pinning: Pinning | undefined;
}

function badOf(m: Measurement): Pick<Sample, 'bad' | 'badDetail'> {
  const bad = m.non2xx + m.errors + m.timeouts;
  if (bad === 0) return { bad };
  return {
    bad,
    badDetail: `${bad} of ${m.requests} requests were not 2xx or failed (statuses ${JSON.stringify(m.statusCounts)}, errors ${m.errors}, timeouts ${m.timeouts})`,
  };
}

export function cpuMeter(o: CpuMeterOptions): Meter {
  const settings = (duration: number): LoadSettings => ({
    connections: o.connections,
    pipelining: o.pipelining,
    duration,
    warmup: 0,
    ...(o.rate ? { rate: o.rate } : {}),
  });
  const load = (target: LoadTarget, duration: number, watched: readonly Watched[]): Promise<Measurement> => {
    if (o.load === 'autocannon') return measure(target, settings(duration), watched);
    if (target.requestsFor)
      throw new UnmeasurableError(
        'wrk drives one fixed request; a rotation of tokens needs --load autocannon',
      );
    return measureWithWrk(target, settings(duration), watched);
  };
  return {
    name: 'cpu',
    columns: [
      { key: 'reqPerSec', label: 'req/s', digits: 0 },
      { key: 'p99', label: 'p99 ms', digits: 0 },
      { key: 'proxy', label: 'proxy CPU us/req', digits: 1 },
      { key: 'kernel', label: 'of it kernel', digits: 1 },
      { key: 'upstream', label: 'upstream us/req', digits: 1 },
      { key: 'redis', label: 'redis us/req', digits: 1 },
    ],
    ratioKeys: ['proxy'],
    readyTimeoutMs: 15_000,
    stopGraceMs: 3000,
    spawn: (name, script, args, cwd) =>
      spawnNode(name, script, args, {
        ...(cwd ? { cwd } : {}),
        ...(o.pinning ? { cpus: o.pinning.proxy } : {}),
      }),
    warm: async (c) => {
      if (o.warmup > 0) await load(c.target, o.warmup, []);
    },
    sample: async (c) => {
      const m = await load(c.target, o.duration, [{ label: 'proxy', pid: c.pid }, ...c.watched]);
      return {
        figures: {
          reqPerSec: m.reqPerSec,
          p99: m.p99,
          proxy: m.cpuPerRequest['proxy'] ?? NaN,
          kernel: m.systemPerRequest['proxy'] ?? NaN,
          upstream: m.cpuPerRequest['upstream'] ?? NaN,
          redis: m.cpuPerRequest['redis'] ?? NaN,
        },
        requests: m.requests,
        ...badOf(m),
      };
    },
    describe: () => [
      `- meter cpu: ${o.load} in the parent process, ${o.connections} connections, pipelining ${o.pipelining}, ${o.warmup} s warm-up per proxy, then ${o.duration} s windows, ${o.rate ? `fixed rate ${o.rate} req/s` : 'as fast as possible'}`,
      '- CPU us/req: utime+stime of the process (all its threads) over the window, from /proc, / requests completed in it; "of it kernel" is the stime part',
      o.pinning
        ? `- pinned (--pin): the proxies on CPU ${o.pinning.proxy}; the load generator, upstream and redis on CPU ${o.pinning.others}`
        : '- not pinned: the scheduler places the processes',
    ],
    close: () => Promise.resolve(),
  };
}

export interface CallgrindMeterOptions {
  warmupRequests: number;
  requests: number;
  connections: number;
  readyTimeoutMs: number;
  keepDumps: boolean;
  /** The idle window after each loaded one lasts as long, at most this (ms). */
  idleCapMs: number;
}

/** Sends `amount` requests closed-loop over the pool; returns the count per status code. */
async function closedLoop(pool: Pool, target: LoadTarget, amount: number, connections: number) {
  // A rotation (miss scenarios) is walked in order over all connections; else one fixed request.
  const rotation = target.requestsFor?.(0, 1).map((r) => r.headers ?? {}) ?? [target.headers ?? {}];
  const path = new URL(target.url).pathname;
  const statuses = new Map<number, number>();
  let sent = 0;
  const worker = async (): Promise<void> => {
    while (sent < amount) {
      const headers = rotation[sent % rotation.length];
      sent++;
      const res = await pool.request({ path, method: 'GET', ...(headers ? { headers } : {}) });
      await res.body.dump();
      statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: Math.min(connections, amount) }, worker));
  return statuses;
}

function statusesOf(statuses: Map<number, number>, amount: number): Pick<Sample, 'bad' | 'badDetail'> {
  const ok = [...statuses].reduce((n, [code, count]) => (code >= 200 && code < 300 ? n + count : n), 0);
  const bad = amount - ok;
  if (bad === 0) return { bad };
  return {
    bad,
    badDetail: `${bad} of ${amount} requests were not 2xx (statuses ${JSON.stringify(Object.fromEntries(statuses))})`,
  };
}

export async function callgrindMeter(o: CallgrindMeterOptions): Promise<Meter | string> {
  const missing = callgrindUnavailableReason();
  if (missing) return missing;
  const dumpDir = await mkdtemp(join(tmpdir(), 'sessiongate-callgrind-'));
  const outFiles = new Map<number, string>();
  const pools = new Map<string, Pool>();
  const poolFor = (c: Contender): Pool => {
    const origin = new URL(c.target.url).origin;
    let pool = pools.get(origin);
    if (!pool) {
      pool = new Pool(origin, { connections: o.connections, pipelining: 1 });
      pools.set(origin, pool);
    }
    return pool;
  };
  let started = 0;
  return {
    name: 'callgrind',
    columns: [
      { key: 'main', label: 'main thread instr/req', digits: 0 },
      { key: 'other', label: 'other threads instr/req', digits: 0 },
      { key: 'total', label: 'total instr/req', digits: 0 },
      { key: 'idle', label: 'of main, idle-time share', digits: 0 },
      { key: 'net', label: 'main net of idle instr/req', digits: 0 },
    ],
    ratioKeys: ['main', 'total', 'net'],
    readyTimeoutMs: o.readyTimeoutMs,
    stopGraceMs: 60_000,
    spawn: (name, script, args, cwd) => {
      const outFile = join(dumpDir, `callgrind.${name}.${++started}`);
      const child = spawnUnderCallgrind(name, outFile, script, args, cwd);
      outFiles.set(child.pid, outFile);
      return child;
    },
    warm: async (c) => {
      const statuses = await closedLoop(poolFor(c), c.target, o.warmupRequests, o.connections);
      const { badDetail } = statusesOf(statuses, o.warmupRequests);
      if (badDetail) throw new Error(`warm-up: ${badDetail}`);
    },
    sample: async (c) => {
      const outFile = outFiles.get(c.pid);
      if (!outFile)
        throw new UnmeasurableError(
          'not started under callgrind (the callgrind meter counts proxies it starts)',
        );
      await zeroCounters(c.pid);
      const began = performance.now();
      const statuses = await closedLoop(poolFor(c), c.target, o.requests, o.connections);
      const busyMs = performance.now() - began;
      const split = await threadSplit(await dumpCounters(c.pid, outFile));
      // Then the proxy idle for as long: what it runs per second whatever its load (timers, store
      // pings, the re-read of a cached session every maxStaleness). Valgrind runs it some 50 times
      // slower, so a window lasts about a minute and charges its requests for that minute's timers:
      // the more so the busier the host. `net` leaves that out: the work each request causes.
      await zeroCounters(c.pid);
      const idleBegan = performance.now();
      await sleep(Math.min(busyMs, o.idleCapMs));
      const idleMs = performance.now() - idleBegan;
      const idle = await threadSplit(await dumpCounters(c.pid, outFile));
      const idleMain = (idle.main / idleMs) * busyMs;
      return {
        figures: {
          main: split.main / o.requests,
          other: split.other / o.requests,
          total: split.total / o.requests,
          idle: idleMain / o.requests,
          net: (split.main - idleMain) / o.requests,
        },
        requests: o.requests,
        ...statusesOf(statuses, o.requests),
      };
    },
    describe: () => [
      `- meter callgrind: ${valgrindVersion()} --tool=callgrind --smc-check=all-non-file around the proxy only (upstream and redis-server native); ${o.warmupRequests} warm-up requests per proxy, then per window counters zeroed (callgrind_control -z), ${o.requests} requests, dump (-d); closed loop on ${o.connections} keep-alive connections (undici Pool in the parent)`,
      '- instr/req: instructions (Ir) of the window / its requests; main = inclusive count of node::Start (the JS thread), other = all threads minus main (TurboFan, GC helpers, libuv pool: they vary with whether a compile or a major GC falls in the window)',
      `- idle-time share: after each window the proxy idles as long (at most ${o.idleCapMs / 1000} s) with counters zeroed; its main-thread instructions per ms idle, times the window's wall time, per request: the timers and store pings a window under valgrind (some 50x slower than native) charges its requests for. net = main minus that share: the work the requests cause`,
    ],
    close: async () => {
      for (const pool of pools.values()) await pool.destroy();
      if (o.keepDumps) console.log(`\ncallgrind dumps kept in ${dumpDir}`);
      else await rm(dumpDir, { recursive: true, force: true });
    },
  };
}

/** Why `--load wrk` cannot be used, or undefined. */
export function loadUnavailableReason(load: CpuMeterOptions['load']): string | undefined {
  return load === 'wrk' ? wrkUnavailableReason() : undefined;
}
