/**
 * The hot path, paired: the same question as run.ts (the gateway's CPU per request next to the undici
 * floor's and http-proxy's, and http-proxy-3's), measured so that the machine's drift cancels out.
 *
 * run.ts measures one proxy for 10 s, then the next: on this VM the speed of the whole machine moves by
 * up to 2x within minutes, so two runs of the very same gateway code differed by 20%. Here every proxy
 * runs at once (idle while not loaded), and the load visits them in short slices, cycle after cycle,
 * the order rotated each cycle. A slow minute then slows every proxy's slices alike. Per cycle the
 * ratios are taken between slices a few seconds apart; the median of those is the figure.
 *
 * Usage: node dist/bench/paired.js [--cycles 12] [--slice 2] [--warmup 3] [--connections 50]
 *          [--rate N] [--pin] [--load autocannon|wrk] [--nginx] [--gateway-cli ../dist/src/cli.js]
 *          [--results results/paired.md] [--no-results]
 *
 * --pin puts every proxy on the last CPU and the load generator, the upstream and redis on the others
 * (only one proxy is loaded at a time, so the one under load has its CPU to itself). Unpinned, three
 * busy processes share two CPUs; on the dev VM pinning did not move the ratios (bench/README.md).
 *
 * --load wrk drives the slices with wrk instead of autocannon (bench/lib/wrk.ts): the cross-check that a
 * ratio belongs to the proxies and not to the load generator.
 *
 * --nginx adds nginx (bench/lib/nginx.ts) as one more proxy: not a target, a calibration point. The
 * "of it kernel" column shows what every proxy pays the kernel per request, nginx included.
 */
import { parseArgs } from 'node:util';
import {
  cleanupConfigs,
  GatewayCheckError,
  liveTokenProvingEnforcement,
  startGateway,
  type Gateway,
} from './lib/gateway.js';
import { PASSTHROUGH_TOKEN } from './lib/http.js';
import { measure, type LoadSettings, type LoadTarget } from './lib/load.js';
import { measureWithWrk, wrkUnavailableReason } from './lib/wrk.js';
import { outputPaths } from './lib/paths.js';
import { startNginx, nginxUnavailableReason, type BenchNginx } from './lib/nginx.js';
import { pinBench, type Pinning } from './lib/proc.js';
import { redisUnavailableReason, startRedis, type BenchRedis } from './lib/redis.js';
import { positiveFlag } from './lib/flags.js';
import { publish, runIfMain } from './lib/driver.js';
import {
  machine,
  machineLines,
  median,
  num,
  table,
  TARGET_VS_FLOOR,
  TARGET_VS_HTTP_PROXY,
  verdict,
} from './lib/report.js';
import { passthroughs, startHelper, startUpstream, type Helper } from './lib/servers.js';

interface Contender {
  readonly name: string;
  /** The process whose CPU is charged (for nginx, its one worker). */
  readonly pid: number;
  readonly target: LoadTarget;
  /** CPU microseconds (all, and the kernel's part) and requests of every slice, by cycle. */
  readonly slices: { micros: number; systemMicros: number; requests: number; non2xx: number }[];
}

interface PairedOptions {
  cycles: number;
  /** Seconds of one measured slice. */
  slice: number;
  /** Seconds of load per proxy before the first cycle. */
  warmup: number;
  connections: number;
  rate: number | undefined;
  pin: boolean;
  load: 'autocannon' | 'wrk';
  /** Also load nginx (the machine's calibration point; DESIGN.md's 18.5 us). */
  nginx: boolean;
  gatewayCli: string;
  resultsFile: string | undefined;
}

const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

async function gatewayContender(
  name: string,
  cli: string,
  upstream: Helper,
  overrides: Record<string, unknown>,
  started: Gateway[],
  cpus: string | undefined,
): Promise<Contender> {
  const gateway = await startGateway(name, cli, upstream.url, overrides, cpus);
  started.push(gateway);
  const token = await liveTokenProvingEnforcement(gateway, `paired-${name}`);
  return {
    name,
    pid: gateway.child.pid,
    target: { url: `${gateway.url}/`, headers: bearer(token) },
    slices: [],
  };
}

function cpuPerRequest(c: Contender, cycle?: number, part: 'micros' | 'systemMicros' = 'micros'): number {
  const slices = cycle === undefined ? c.slices : [c.slices[cycle]];
  let micros = 0;
  let requests = 0;
  for (const s of slices) {
    micros += s?.[part] ?? 0;
    requests += s?.requests ?? 0;
  }
  return requests > 0 ? micros / requests : NaN;
}

/** Median and range of a per-cycle ratio. */
function cycleRatios(
  a: Contender,
  b: Contender,
  cycles: number,
): { median: number; min: number; max: number } {
  const ratios: number[] = [];
  for (let i = 0; i < cycles; i++) ratios.push(cpuPerRequest(a, i) / cpuPerRequest(b, i));
  ratios.sort((x, y) => x - y);
  return { median: median(ratios), min: ratios[0] ?? NaN, max: ratios[ratios.length - 1] ?? NaN };
}

function report(contenders: readonly Contender[], o: PairedOptions, pinning: Pinning | undefined): string {
  const m = machine();
  const lines = [
    `## ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')} — hot path, paired slices (bench/paired.ts)`,
    '',
    ...machineLines(m),
    `- every proxy running at once; ${o.cycles} cycles, each giving every proxy one ${o.slice} s slice of ${o.load} load ` +
      `(${o.connections} connections, ${o.rate ? `${o.rate} req/s` : 'as fast as possible'}, GET / with the same bearer header), order rotated per cycle; ${o.warmup} s warm-up each`,
    pinning
      ? `- pinned (--pin): every proxy on CPU ${pinning.proxy}; ${o.load}, upstream and redis on CPU ${pinning.others}`
      : '- not pinned: the scheduler places the processes',
    '- CPU us/req: utime+stime of the proxy process over its slices / requests completed in them, and the stime (kernel) part of it; ratios: median over cycles of the ratio between slices of the same cycle (range in brackets)',
    '',
  ];
  const rows = contenders.map((c) => {
    const requests = c.slices.reduce((n, s) => n + s.requests, 0);
    const non2xx = c.slices.reduce((n, s) => n + s.non2xx, 0);
    const perSlice = c.slices.map((_, i) => cpuPerRequest(c, i)).sort((x, y) => x - y);
    return [
      c.name,
      requests.toLocaleString('en-US'),
      num(cpuPerRequest(c)),
      num(cpuPerRequest(c, undefined, 'systemMicros')),
      `${num(perSlice[0])}-${num(perSlice[perSlice.length - 1])}`,
      String(non2xx),
    ];
  });
  lines.push(
    table(
      ['proxy', 'requests', 'CPU us/req (all slices)', 'of it kernel', 'per-slice range', 'not 2xx'],
      rows,
    ),
    '',
  );
  const floor = contenders.find((c) => c.name === 'undici-floor');
  const httpProxy = contenders.find((c) => c.name === 'http-proxy');
  const ratioRows: string[][] = [];
  for (const c of contenders) {
    if (!c.name.startsWith('gateway') || !floor || !httpProxy) continue;
    const f = cycleRatios(c, floor, o.cycles);
    const h = cycleRatios(c, httpProxy, o.cycles);
    ratioRows.push([
      c.name,
      `${verdict(f.median, TARGET_VS_FLOOR, 3)} [${num(f.min, 2)}-${num(f.max, 2)}]`,
      `${verdict(h.median, TARGET_VS_HTTP_PROXY, 3)} [${num(h.min, 2)}-${num(h.max, 2)}]`,
      num(cpuPerRequest(c) - cpuPerRequest(floor)),
    ]);
  }
  if (floor) {
    // The other passthroughs next to the floor: the forwarding library was chosen by these.
    for (const c of contenders) {
      if (c === floor || c.name.startsWith('gateway')) continue;
      const r = cycleRatios(c, floor, o.cycles);
      lines.push(
        `${c.name} / undici-floor, per cycle: median ${num(r.median, 3)} [${num(r.min, 2)}-${num(r.max, 2)}]`,
      );
    }
    lines.push('');
  }
  lines.push(
    table(
      [
        'gateway',
        `/ undici-floor (<= ${TARGET_VS_FLOOR})`,
        `/ http-proxy (<= ${TARGET_VS_HTTP_PROXY})`,
        'minus floor us/req (all slices)',
      ],
      ratioRows,
    ),
  );
  return lines.join('\n');
}

export async function runPaired(o: PairedOptions): Promise<{ text: string; failed: boolean }> {
  const pinning = o.pin ? pinBench() : undefined;
  if (typeof pinning === 'string') throw new Error(`--pin: ${pinning}`);
  const upstream = await startUpstream(pinning?.others);
  const helpers: Helper[] = [upstream];
  const gateways: Gateway[] = [];
  let redis: BenchRedis | undefined;
  let nginx: BenchNginx | undefined;
  try {
    const contenders: Contender[] = [];
    for (const { name, script } of passthroughs) {
      const h = await startHelper(name, script, ['--upstream', upstream.url], pinning?.proxy);
      helpers.push(h);
      contenders.push({
        name,
        pid: h.child.pid,
        target: { url: `${h.url}/`, headers: bearer(PASSTHROUGH_TOKEN) },
        slices: [],
      });
    }
    contenders.push(
      await gatewayContender('gateway-memory', o.gatewayCli, upstream, {}, gateways, pinning?.proxy),
    );
    const missing = redisUnavailableReason();
    if (missing) console.log(`gateway-redis skipped: ${missing}`);
    else {
      redis = await startRedis('redis', pinning?.others);
      contenders.push(
        await gatewayContender(
          'gateway-redis',
          o.gatewayCli,
          upstream,
          { store: redis.url },
          gateways,
          pinning?.proxy,
        ),
      );
    }

    if (o.nginx) {
      nginx = await startNginx(upstream.url, pinning?.proxy);
      contenders.push({
        name: 'nginx',
        pid: nginx.workerPid,
        target: { url: `${nginx.url}/`, headers: bearer(PASSTHROUGH_TOKEN) },
        slices: [],
      });
    }
    const settings = (duration: number): LoadSettings => ({
      connections: o.connections,
      pipelining: 1,
      duration,
      warmup: 0,
      ...(o.rate ? { rate: o.rate } : {}),
    });
    const load = o.load === 'wrk' ? measureWithWrk : measure;
    for (const c of contenders) await load(c.target, settings(o.warmup), []);
    for (let cycle = 0; cycle < o.cycles; cycle++) {
      const order = contenders.map((_, i) => contenders[(i + cycle) % contenders.length] as Contender);
      const parts: string[] = [];
      for (const c of order) {
        const m = await load(c.target, settings(o.slice), [{ label: 'proxy', pid: c.pid }]);
        const perRequest = m.cpuPerRequest.proxy ?? NaN;
        c.slices[cycle] = {
          micros: perRequest * m.requests,
          systemMicros: (m.systemPerRequest.proxy ?? NaN) * m.requests,
          requests: m.requests,
          non2xx: m.non2xx + m.errors + m.timeouts,
        };
        parts.push(`${c.name} ${num(perRequest)}`);
      }
      console.log(`cycle ${cycle + 1}/${o.cycles}: ${parts.join(', ')} us/req`);
    }
    const failed = contenders.some((c) => c.slices.some((s) => s.non2xx > 0));
    return { text: report(contenders, o, pinning), failed };
  } finally {
    for (const g of gateways) await g.stop();
    for (const h of helpers) await h.child.stop();
    await redis?.stop();
    await nginx?.stop();
    await cleanupConfigs();
  }
}

function loadFlag(value: string | undefined): PairedOptions['load'] {
  if (value === undefined || value === 'autocannon') return 'autocannon';
  if (value !== 'wrk') throw new Error(`--load: expected autocannon or wrk, got ${JSON.stringify(value)}`);
  const missing = wrkUnavailableReason();
  if (missing) throw new Error(`--load wrk: ${missing}`);
  return 'wrk';
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      cycles: { type: 'string' },
      slice: { type: 'string' },
      warmup: { type: 'string' },
      connections: { type: 'string' },
      rate: { type: 'string' },
      pin: { type: 'boolean', default: false },
      load: { type: 'string', default: 'autocannon' },
      nginx: { type: 'boolean', default: false },
      'gateway-cli': { type: 'string' },
      results: { type: 'string' },
      'no-results': { type: 'boolean', default: false },
    },
  });
  const o: PairedOptions = {
    cycles: positiveFlag(values.cycles, 12, 'cycles', { integer: true }),
    slice: positiveFlag(values.slice, 2, 'slice'),
    warmup: positiveFlag(values.warmup, 3, 'warmup'),
    connections: positiveFlag(values.connections, 50, 'connections', { integer: true }),
    rate: values.rate === undefined ? undefined : positiveFlag(values.rate, 0, 'rate'),
    pin: values.pin ?? false,
    load: loadFlag(values.load),
    nginx: values.nginx ?? false,
    ...outputPaths('paired', values),
  };
  const noNginx = o.nginx ? nginxUnavailableReason() : undefined;
  if (noNginx) throw new Error(`--nginx: ${noNginx}`);
  if (o.load === 'wrk' && o.rate !== undefined)
    throw new Error('--rate needs --load autocannon (wrk has no fixed rate)');
  try {
    const { text, failed } = await runPaired(o);
    await publish('paired', text, o.resultsFile);
    if (failed) {
      console.error('some responses were not 2xx: the figures are not trustworthy');
      process.exitCode = 1;
    }
  } catch (err) {
    if (err instanceof GatewayCheckError) {
      console.error(err.message);
      process.exitCode = 1;
      return;
    }
    throw err;
  }
}

runIfMain(import.meta.url, main);
