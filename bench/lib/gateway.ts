/**
 * Starting the real gateway through its CLI (`node dist/src/cli.js --config <file>`), the way an
 * operator would, so the bench measures the shipped process and not an in-process composition.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { getWithToken, login } from './http.js';
import { ChildNotReadyError, freePort, spawnNode, waitForOk, type Child } from './proc.js';
import { repoRoot } from './paths.js';

/** The gateway cannot be measured here (not built yet, or it would not start): skip, do not fail. */
export class GatewayUnavailableError extends Error {}

/** The gateway runs but does not behave as a session gate: the numbers would be meaningless. */
export class GatewayCheckError extends Error {}

/** The HMAC secret of every bench gateway; scale.ts derives token ids with it. */
export const BENCH_SECRET = 'bench-secret-0123456789abcdef';

/** Config keys a scenario adds to or overrides in the base config (see src/config/schema.ts). */
export type GatewayOverrides = Record<string, unknown>;

export interface Gateway {
  readonly name: string;
  readonly url: string;
  /** The admin listener (`/metrics` is open on bench gateways). */
  readonly adminUrl: string;
  readonly child: Child;
  stop(): Promise<void>;
}

/** The config of DESIGN.md's bench: one JSON login route, bearer tokens, warn-level logs. */
function gatewayConfig(
  port: number,
  adminPort: number,
  upstreamUrl: string,
  overrides: GatewayOverrides,
): Record<string, unknown> {
  // `admin` merges (a scenario may add a token), every other key replaces.
  const { admin, ...rest } = overrides;
  return {
    listen: `127.0.0.1:${port}`,
    upstream: upstreamUrl,
    secret: BENCH_SECRET,
    log: { level: 'warn' },
    admin: {
      listen: `127.0.0.1:${adminPort}`,
      open: ['healthz', 'readyz', 'metrics'],
      ...(typeof admin === 'object' && admin !== null ? admin : {}),
    },
    login: [{ match: 'POST /api/login', token: 'json:accessToken', user: 'json:user.id' }],
    tokens: ['bearer'],
    ...rest,
  };
}

let configDir: string | undefined;

async function writeConfig(name: string, config: Record<string, unknown>): Promise<string> {
  configDir ??= await mkdtemp(join(tmpdir(), 'sessiongate-bench-'));
  const file = join(configDir, `${name}.yaml`);
  await writeFile(file, stringify(config), 'utf8');
  return file;
}

/** Removes the temporary config files. */
export async function cleanupConfigs(): Promise<void> {
  if (configDir) await rm(configDir, { recursive: true, force: true });
  configDir = undefined;
}

/** How a gateway process is started: natively (optionally pinned) or under a meter such as callgrind. */
export interface GatewayLaunch {
  /** A CPU list for `taskset` (native start only). */
  cpus?: string;
  /** Starts `node <script> ...args` in `cwd`; the default is a native `node`. */
  spawn?: (name: string, script: string, args: readonly string[], cwd: string) => Child;
  /** How long the gateway may take to be ready; 15 s natively, much longer under valgrind. */
  readyTimeoutMs?: number;
}

/**
 * Starts a gateway and waits until its admin `/readyz` answers 200: listening is not enough (a Redis
 * gateway whose invalidation channel is not up yet answers 503). Throws GatewayUnavailableError when
 * the CLI is not built or the process does not come up, so callers can skip with a clear line.
 */
export async function startGateway(
  name: string,
  cliPath: string,
  upstreamUrl: string,
  overrides: GatewayOverrides = {},
  launch: GatewayLaunch = {},
): Promise<Gateway> {
  if (!existsSync(cliPath)) {
    throw new GatewayUnavailableError(`${cliPath} does not exist (the gateway is not built yet)`);
  }
  const [port, adminPort] = [await freePort(), await freePort()];
  const file = await writeConfig(name, gatewayConfig(port, adminPort, upstreamUrl, overrides));
  const args = ['--config', file];
  const child = launch.spawn
    ? launch.spawn(name, cliPath, args, repoRoot)
    : spawnNode(name, cliPath, args, { cwd: repoRoot, ...(launch.cpus ? { cpus: launch.cpus } : {}) });
  // Exiting under valgrind takes a while (it writes a last dump); SIGKILL only if it hangs.
  const graceMs = launch.spawn ? 60_000 : 3000;
  const url = `http://127.0.0.1:${port}`;
  const adminUrl = `http://127.0.0.1:${adminPort}`;
  try {
    await waitForOk(child, `${adminUrl}/readyz`, launch.readyTimeoutMs ?? 15_000);
  } catch (err) {
    await child.stop(graceMs);
    if (err instanceof ChildNotReadyError) throw new GatewayUnavailableError(err.message);
    throw err;
  }
  return { name, url, adminUrl, child, stop: () => child.stop(graceMs) };
}

/**
 * Logs `user` in twice and proves the gateway gates: the first token must now be refused (401,
 * superseded with the default limit of 1) and the second must pass (200). A gateway that forwarded
 * everything would also answer 200 to the load, so 200 alone proves nothing. Returns the live token.
 */
export async function liveTokenProvingEnforcement(gateway: Gateway, user: string): Promise<string> {
  const first = await login(gateway.url, user);
  const second = await login(gateway.url, user);
  const old = await getWithToken(gateway.url, first.token);
  if (old.status !== 401) {
    throw new GatewayCheckError(
      `${gateway.name}: a superseded token answered ${old.status}, expected 401 (is the login registered?): ${old.body.slice(0, 200)}`,
    );
  }
  await expectLive(gateway, second.token);
  return second.token;
}

/** Fails loudly unless `token` passes the gateway with 200. */
export async function expectLive(gateway: Gateway, token: string): Promise<void> {
  const live = await getWithToken(gateway.url, token);
  if (live.status !== 200) {
    throw new GatewayCheckError(
      `${gateway.name}: a live session's request answered ${live.status}, expected 200: ${live.body.slice(0, 200)}`,
    );
  }
}
