/**
 * The same measured window as load.ts, driven by wrk instead of autocannon: a cross-check that a
 * ratio is the proxies' and not the load generator's. autocannon is Node and needs about a CPU of its
 * own at these rates; wrk is C and needs a fraction of one, so the two leave the proxy under test
 * very different amounts of the machine. DESIGN.md's reference figures were taken with wrk.
 *
 * Only what hot.ts --load wrk needs: one URL, fixed headers, as fast as possible (wrk has no fixed rate).
 */
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import {
  chargeCpu,
  readCpu,
  type LoadSettings,
  type LoadTarget,
  type Measurement,
  type Watched,
} from './load.js';

const run = promisify(execFile);

/** Why wrk cannot be used here, or undefined when it can. */
export function wrkUnavailableReason(): string | undefined {
  try {
    execFileSync('wrk', ['--version'], { stdio: 'ignore' });
    return undefined;
  } catch (err) {
    // wrk --version prints its banner and exits 1; only a missing binary is a problem.
    return (err as NodeJS.ErrnoException).code === 'ENOENT'
      ? 'wrk is not installed (Debian: apt-get install wrk)'
      : undefined;
  }
}

/** wrk's duration units: `1.23ms`, `456.00us`, `2.00s`. */
function millis(value: string, unit: string): number {
  const n = Number(value);
  return unit === 'us' ? n / 1000 : unit === 's' ? n * 1000 : unit === 'm' ? n * 60_000 : n;
}

/** The figures of one `wrk --latency` report. Throws on output it does not recognise. */
export function parseWrkReport(out: string): Omit<
  Measurement,
  'cpuPerRequest' | 'systemPerRequest' | 'statusCounts' | 'reqPerSec'
> & {
  seconds: number;
} {
  const total = /(\d+) requests in ([\d.]+)(us|ms|s|m)/.exec(out);
  if (!total) throw new Error(`unrecognised wrk output:\n${out}`);
  const pct = (p: string): number => {
    const m = new RegExp(`^\\s*${p}%\\s+([\\d.]+)(us|ms|s|m)`, 'm').exec(out);
    return m ? millis(m[1] as string, m[2] as string) : NaN;
  };
  const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  return {
    requests: Number(total[1]),
    seconds: millis(total[2] as string, total[3] as string) / 1000,
    p50: pct('50'),
    p99: pct('99'),
    errors: errors ? Number(errors[1]) + Number(errors[2]) + Number(errors[3]) : 0,
    timeouts: errors ? Number(errors[4]) : 0,
    non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0),
  };
}

/** One measured window under wrk (one thread, `settings.connections` connections), CPU charged as in load.ts. */
export async function measureWithWrk(
  target: LoadTarget,
  settings: LoadSettings,
  watched: readonly Watched[],
): Promise<Measurement> {
  if (target.requestsFor) throw new Error('wrk drives one fixed request; rotating requests need autocannon');
  if (settings.rate) throw new Error('wrk has no fixed rate; use autocannon for --rate');
  const args = ['--latency', '-t1', `-c${settings.connections}`];
  for (const [name, value] of Object.entries(target.headers ?? {})) args.push('-H', `${name}: ${value}`);
  const window = async (seconds: number) =>
    (await run('wrk', [...args, `-d${seconds}s`, target.url], { encoding: 'utf8' })).stdout;
  if (settings.warmup > 0) await window(settings.warmup);
  const before = readCpu(watched);
  const report = parseWrkReport(await window(settings.duration));
  const after = readCpu(watched);
  const { seconds, ...figures } = report;
  return {
    ...figures,
    reqPerSec: figures.requests / seconds,
    statusCounts: {},
    ...chargeCpu(watched, before, after, figures.requests),
  };
}
