/**
 * What a login costs on Redis, with and without the limit policies (issue 14): the login's latency
 * through the gateway against the same login straight to the app (same run, interleaved), and the
 * Redis commands per login (INFO commandstats deltas, commands inside scripts included). Each login is
 * a new login of a user with one live session (the common path: the old one is replaced).
 *
 *   npm --prefix bench run login-cost -- [--logins 500]
 */
import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Agent } from 'undici';
import { timedLogin } from './lib/http.js';
import { cleanupConfigs, startGateway, type Gateway } from './lib/gateway.js';
import { runIfMain } from './lib/driver.js';
import { startRedis, type BenchRedis } from './lib/redis.js';
import { defaultGatewayCli, repoRoot } from './lib/paths.js';
import { machine, machineLines, num, percentile, table } from './lib/report.js';
import { startUpstream } from './lib/servers.js';

const POLICIES = {
  sessions: {
    onLimit: 'replace-least-recent',
    groups: { from: 'json:user.id', limits: { admin: 1 } },
    exempt: { users: ['svc-backup'] },
    seats: { key: 'json:user.id', max: 1_000_000 },
  },
};

/** Commands Redis has run so far (every `cmdstat_*` calls=, scripts' inner commands included). */
async function commandsSoFar(redis: BenchRedis): Promise<number> {
  const info = await redis.admin.info('commandstats');
  let n = 0;
  for (const m of info.matchAll(/^cmdstat_([a-z|]+):calls=(\d+)/gm)) if (m[1] !== 'info') n += Number(m[2]);
  return n;
}

interface Row {
  name: string;
  gateway: number[];
  app: number[];
  commandsPerLogin: number;
}

async function measure(
  name: string,
  gw: Gateway,
  appUrl: string,
  redis: BenchRedis,
  logins: number,
): Promise<Row> {
  const agent = new Agent({ connections: 1 });
  // Each user logs in once first (its live session), then the measured login replaces it.
  const users = Array.from({ length: logins }, (_, i) => `${name}-${i}`);
  for (const u of users.slice(0, 50)) await timedLogin(gw.url, u, agent); // warm-up
  for (const u of users) await timedLogin(gw.url, `${u}-seed`, agent);
  const gateway: number[] = [];
  const app: number[] = [];
  const before = await commandsSoFar(redis);
  for (const u of users) gateway.push(await timedLogin(gw.url, `${u}-seed`, agent));
  const commands = (await commandsSoFar(redis)) - before;
  for (const u of users) app.push(await timedLogin(appUrl, u, agent));
  await agent.close();
  return { name, gateway, app, commandsPerLogin: commands / logins };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { logins: { type: 'string', default: '500' } } });
  const logins = Number(values.logins);
  const upstream = await startUpstream();
  const redis = await startRedis();
  const rows: Row[] = [];
  try {
    for (const [name, overrides] of [
      ['no policies', {}],
      ['groups + exemptions + seats', POLICIES],
    ] as const) {
      const gw = await startGateway(name.replace(/\W+/g, '-'), defaultGatewayCli, upstream.url, {
        store: redis.url,
        ...overrides,
      });
      try {
        rows.push(await measure(name.replace(/\W+/g, '-'), gw, upstream.url, redis, logins));
      } finally {
        await gw.stop();
      }
    }
  } finally {
    await redis.stop();
    await upstream.child.stop();
    await cleanupConfigs();
  }
  const ms = (xs: number[], p: number) =>
    num(
      percentile(
        [...xs].sort((a, b) => a - b),
        p,
      ),
      2,
    );
  const section = [
    `## ${new Date().toISOString()} — login cost (bench/login-cost.ts)`,
    '',
    ...machineLines(machine()),
    `- ${logins} logins per configuration, one at a time on one keep-alive connection; each replaces the user's one live session; the app's own time measured with the same logins sent straight to it`,
    '',
    table(
      [
        'configuration',
        'through gateway p50 ms',
        'p99 ms',
        'app alone p50 ms',
        'p99 ms',
        'added p50 ms',
        'Redis commands / login',
      ],
      rows.map((r) => [
        r.name,
        ms(r.gateway, 50),
        ms(r.gateway, 99),
        ms(r.app, 50),
        ms(r.app, 99),
        num(
          percentile(
            [...r.gateway].sort((a, b) => a - b),
            50,
          ) -
            percentile(
              [...r.app].sort((a, b) => a - b),
              50,
            ),
          2,
        ),
        num(r.commandsPerLogin, 1),
      ]),
    ),
  ].join('\n');
  console.log(section);
  const file = resolve(repoRoot, 'bench/results/login-cost.md');
  await writeFile(
    file,
    `# Login cost (bench/login-cost.ts)\n\nThe latest run only; earlier runs are in git.\n\n${section}\n`,
    'utf8',
  );
  console.log(`\nwritten to ${file}`);
}

runIfMain(import.meta.url, main);
