/**
 * One measured load: autocannon warm-up, then a measured window bracketed by CPU readings of the
 * processes under test.
 */
import autocannon from 'autocannon';
import { clkTck, cpuTimes, type CpuTicks } from './proc.js';

export interface LoadSettings {
  connections: number;
  pipelining: number;
  /** Seconds of the measured window. */
  duration: number;
  /** Seconds of load before the window (JIT, pools, caches settle); not counted. */
  warmup: number;
  /**
   * A fixed offered load (requests/s over all connections) instead of as fast as possible, so every
   * proxy is compared at the same rate (CPU per request depends on how many requests share a wake-up).
   */
  rate?: number;
}

export interface LoadTarget {
  url: string;
  /** Headers of every request (e.g. the bearer token of a cache-hit session). */
  headers?: Record<string, string>;
  /**
   * Requests of one connection, by connection index: each connection loops over its own list, so
   * disjoint lists spread the load over many tokens without autocannon copying one huge list into
   * every connection.
   */
  requestsFor?: (connection: number, connections: number) => autocannon.Request[];
}

/** A process whose CPU time is charged to the requests of the window. */
export interface Watched {
  label: string;
  pid: number;
}

export interface Measurement {
  requests: number;
  reqPerSec: number;
  /** Milliseconds. */
  p50: number;
  p99: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  statusCounts: Record<string, number>;
  /** CPU microseconds (user + system) per completed request, by watched process label. */
  cpuPerRequest: Record<string, number>;
  /** The system (kernel) part of `cpuPerRequest`. */
  systemPerRequest: Record<string, number>;
}

function options(target: LoadTarget, settings: LoadSettings, duration: number): autocannon.Options {
  const requestsFor = target.requestsFor;
  let connection = 0;
  return {
    url: target.url,
    connections: settings.connections,
    pipelining: settings.pipelining,
    duration,
    headers: target.headers ?? {},
    ...(settings.rate ? { overallRate: settings.rate } : {}),
    // setupClient runs once per connection, in order, within one autocannon run.
    ...(requestsFor
      ? { setupClient: (client) => client.setRequests(requestsFor(connection++, settings.connections)) }
      : {}),
  };
}

/** Reads the watched processes' CPU times (before and after a window). */
export function readCpu(watched: readonly Watched[]): CpuTicks[] {
  return watched.map((w) => cpuTimes(w.pid));
}

/** Charges each watched process's CPU time between two readings to the `requests` of the window. */
export function chargeCpu(
  watched: readonly Watched[],
  before: readonly CpuTicks[],
  after: readonly CpuTicks[],
  requests: number,
): Pick<Measurement, 'cpuPerRequest' | 'systemPerRequest'> {
  const microsPerTick = 1e6 / clkTck();
  const perRequest = (ticks: number) => (requests > 0 ? (ticks * microsPerTick) / requests : NaN);
  const cpuPerRequest: Record<string, number> = {};
  const systemPerRequest: Record<string, number> = {};
  watched.forEach((w, i) => {
    const b = before[i] ?? { user: 0, system: 0 };
    const a = after[i] ?? b;
    cpuPerRequest[w.label] = perRequest(a.user + a.system - b.user - b.system);
    systemPerRequest[w.label] = perRequest(a.system - b.system);
  });
  return { cpuPerRequest, systemPerRequest };
}

/** Runs the warm-up, then the measured window, and charges the watched processes' CPU to its requests. */
export async function measure(
  target: LoadTarget,
  settings: LoadSettings,
  watched: readonly Watched[],
): Promise<Measurement> {
  if (settings.warmup > 0) await autocannon(options(target, settings, settings.warmup));
  const before = readCpu(watched);
  const result = await autocannon(options(target, settings, settings.duration));
  const after = readCpu(watched);
  const completed = result.requests.total;
  const statusCounts: Record<string, number> = {};
  for (const [code, stat] of Object.entries(result.statusCodeStats)) statusCounts[code] = stat.count;
  return {
    requests: completed,
    reqPerSec: completed / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors,
    timeouts: result.timeouts,
    non2xx: result.non2xx,
    statusCounts,
    ...chargeCpu(watched, before, after, completed),
  };
}

/** Sends exactly `amount` requests (no warm-up, no measurement): used to fill a cache. */
export async function drive(target: LoadTarget, settings: LoadSettings, amount: number): Promise<void> {
  // autocannon refuses more connections than requests.
  const fitted = { ...settings, connections: Math.min(settings.connections, amount) };
  await autocannon({ ...options(target, fitted, settings.duration), amount });
}

/** Spreads `tokens` over connections: connection c gets tokens c, c+n, c+2n, ... as bearer requests. */
export function bearerRotation(
  tokens: readonly string[],
  path = '/',
): (connection: number, connections: number) => autocannon.Request[] {
  return (connection, connections) => {
    const list: autocannon.Request[] = [];
    for (let i = connection; i < tokens.length; i += connections) {
      list.push({ method: 'GET', path, headers: { authorization: `Bearer ${tokens[i]}` } });
    }
    // More connections than tokens: reuse one so that no connection is left without requests.
    if (list.length === 0 && tokens.length > 0) {
      list.push({
        method: 'GET',
        path,
        headers: { authorization: `Bearer ${tokens[connection % tokens.length]}` },
      });
    }
    return list;
  };
}
