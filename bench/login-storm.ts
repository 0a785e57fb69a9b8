/**
 * The 9 a.m. login storm (issue 16): how many logins per second one replica sustains on Redis, the
 * added latency of a login at half that rate (through the gateway vs straight to the app, the same
 * schedule; also at the other `--fractions` of it, so a tail that comes from the shared CPUs, not the
 * gateway, shows as one that shrinks with the rate), and whether concurrent logins of one user stay
 * exactly at the limit at half the rate. The load generator, the app, Redis and the gateway share this
 * machine: the rate is the machine's, not a replica's on its own cores.
 *
 *   npm --prefix bench run login-storm -- [--seconds 10] [--concurrency 32] [--fractions 0.5,0.25,0.1]
 */
import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Agent, request } from 'undici';
import { timedLogin } from './lib/http.js';
import { runIfMain } from './lib/driver.js';
import { cleanupConfigs, startGateway } from './lib/gateway.js';
import { defaultGatewayCli, repoRoot } from './lib/paths.js';
import { startRedis } from './lib/redis.js';
import { int, machine, machineLines, num, percentile, table } from './lib/report.js';
import { startUpstream } from './lib/servers.js';

const ADMIN_TOKEN = 'bench-admin-token-0123456789';

/** Closed loop: `concurrency` workers log distinct users in for `seconds`; logins per second. */
async function sustained(base: string, seconds: number, concurrency: number, agent: Agent): Promise<number> {
  const end = performance.now() + seconds * 1000;
  let n = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, w) => {
      for (let i = 0; performance.now() < end; i++) {
        await timedLogin(base, `storm-${w}-${i}`, agent);
        n++;
      }
    }),
  );
  return n / seconds;
}

/** Open loop: one login every 1/rate seconds for `seconds`; each login's latency. */
async function paced(
  base: string,
  prefix: string,
  rate: number,
  seconds: number,
  agent: Agent,
): Promise<number[]> {
  const interval = 1000 / rate;
  const count = Math.floor(rate * seconds);
  const start = performance.now();
  const latencies: Promise<number>[] = [];
  for (let i = 0; i < count; i++) {
    const due = start + i * interval;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    latencies.push(timedLogin(base, `${prefix}-${i}`, agent));
  }
  return Promise.all(latencies);
}

async function liveSessions(adminUrl: string, user: string): Promise<number> {
  const res = await request(`${adminUrl}/admin/users/${encodeURIComponent(user)}/sessions`, {
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
  });
  const body = (await res.body.json()) as { sessions: unknown[] };
  return body.sessions.length;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '10' },
      concurrency: { type: 'string', default: '32' },
      fractions: { type: 'string', default: '0.5,0.25,0.1' },
    },
  });
  const seconds = Number(values.seconds);
  const concurrency = Number(values.concurrency);
  const fractions = values.fractions.split(',').map(Number);
  if (fractions[0] !== 0.5 || !fractions.every((f) => f > 0 && f <= 1))
    throw new Error("--fractions: fractions of the sustained rate in (0, 1], the first 0.5 (the target's)");
  const upstream = await startUpstream();
  const redis = await startRedis();
  const gw = await startGateway('storm', defaultGatewayCli, upstream.url, {
    store: redis.url,
    admin: { token: ADMIN_TOKEN },
  }).catch(async (err: unknown) => {
    await redis.stop();
    await upstream.child.stop();
    throw err;
  });
  const agent = new Agent({ connections: concurrency });
  try {
    const rate = await sustained(gw.url, seconds, concurrency, agent);
    const half = rate / 2;
    const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
    const atRates: { fraction: number; through: number[]; direct: number[] }[] = [];
    for (const fraction of fractions) {
      const through = await paced(gw.url, `at${fraction}`, rate * fraction, seconds, agent);
      const direct = await paced(upstream.url, `direct${fraction}`, rate * fraction, seconds, agent);
      atRates.push({ fraction, through: sorted(through), direct: sorted(direct) });
    }
    // Exactness at that rate: rounds of 20 concurrent logins of one user (limit 1) while the paced load runs.
    const rounds = 10;
    const counts: number[] = [];
    const background = paced(gw.url, 'bg', half, Math.max(2, rounds * 0.2), agent);
    for (let r = 0; r < rounds; r++) {
      const user = `same-user-${r}`;
      await Promise.all(Array.from({ length: 20 }, () => timedLogin(gw.url, user, agent)));
      counts.push(await liveSessions(gw.adminUrl, user));
    }
    await background;
    const pct = (xs: number[]): string => `${num(percentile(xs, 50), 2)} / ${num(percentile(xs, 99), 2)}`;
    const added = (t: number[], d: number[]): string =>
      `${num(percentile(t, 50) - percentile(d, 50), 2)} / ${num(percentile(t, 99) - percentile(d, 99), 2)}`;
    const rows = atRates.flatMap(({ fraction, through: t, direct: d }) => {
      const at =
        fraction === 0.5
          ? 'at half rate'
          : `at ${num(fraction * 100, 0)} % of it (${int(rate * fraction)}/s)`;
      return [
        [`${at}: through the gateway p50 / p99 ms`, pct(t)],
        [`${at}: the app alone p50 / p99 ms`, pct(d)],
        [`${at}: added p50 / p99 ms`, added(t, d)],
      ];
    });
    const section = [
      `## ${new Date().toISOString()} — login storm (bench/login-storm.ts)`,
      '',
      ...machineLines(machine()),
      `- one gateway on one redis-server, the bench app, and the load generator on this machine; sustained: ${concurrency} workers logging distinct users in for ${seconds} s (closed loop); at a fraction of it: one login every 1/rate s for ${seconds} s (open loop), the same schedule straight to the app; target (issue 16): added p99 <= 2 ms at half rate`,
      '',
      table(
        ['measure', 'value'],
        [
          ['sustained logins / s', int(rate)],
          ...rows,
          [
            `live sessions after 20 concurrent logins of one user (limit 1), ${rounds} rounds at half rate`,
            counts.join(', '),
          ],
        ],
      ),
    ].join('\n');
    console.log(section);
    const file = resolve(repoRoot, 'bench/results/login-storm.md');
    await writeFile(
      file,
      `# Login storm (bench/login-storm.ts)\n\nThe latest run only; earlier runs are in git.\n\n${section}\n`,
      'utf8',
    );
    console.log(`\nwritten to ${file}`);
    if (counts.some((c) => c !== 1)) process.exitCode = 1;
  } finally {
    await agent.close();
    await gw.stop();
    await redis.stop();
    await upstream.child.stop();
    await cleanupConfigs();
  }
}

runIfMain(import.meta.url, main);
