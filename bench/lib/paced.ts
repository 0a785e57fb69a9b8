/**
 * An open-loop background load: one GET every 1/rate s, spread over a set of live tokens and gateways,
 * each request's send time and latency kept, so a bench can compare the latency of windows (before
 * and during a storm) and count what was not a 200.
 */
import { Pool } from 'undici';

export interface PacedSample {
  /** performance.now() when the request was sent. */
  readonly at: number;
  /** ms until the whole response arrived. */
  readonly ms: number;
  readonly status: number;
}

export interface PacedLoad {
  readonly samples: PacedSample[];
  /** Stops sending; resolves once every request in flight has answered. */
  stop(): Promise<void>;
}

export function pacedLoad(
  urls: readonly string[],
  tokens: readonly string[],
  rate: number,
  connections = 16,
): PacedLoad {
  const pools = urls.map((u) => new Pool(u, { connections }));
  const samples: PacedSample[] = [];
  const inflight = new Set<Promise<void>>();
  const interval = 1000 / rate;
  const start = performance.now();
  let i = 0;
  let stopped = false;
  const one = async (n: number): Promise<void> => {
    const pool = pools[n % pools.length] as Pool;
    const token = tokens[Math.floor(n / pools.length) % tokens.length] as string;
    const at = performance.now();
    let status = 0;
    try {
      const res = await pool.request({
        path: '/',
        method: 'GET',
        headers: { authorization: `Bearer ${token}` },
      });
      status = res.statusCode;
      await res.body.dump();
    } catch {
      status = -1;
    }
    samples.push({ at, ms: performance.now() - at, status });
  };
  const tick = (): void => {
    if (stopped) return;
    // Every request due by now is sent (a late timer does not lower the offered rate).
    while (start + i * interval <= performance.now()) {
      const p = one(i++);
      inflight.add(p);
      void p.finally(() => inflight.delete(p));
    }
    setTimeout(tick, Math.max(0, start + i * interval - performance.now()));
  };
  tick();
  return {
    samples,
    stop: async () => {
      stopped = true;
      await Promise.all([...inflight]);
      await Promise.all(pools.map((p) => p.close()));
    },
  };
}

/** Latencies (ms, ascending) of the samples sent in [from, to). */
export function windowOf(samples: readonly PacedSample[], from: number, to: number): number[] {
  return samples
    .filter((s) => s.at >= from && s.at < to)
    .map((s) => s.ms)
    .sort((a, b) => a - b);
}
