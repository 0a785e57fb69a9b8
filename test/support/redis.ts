/**
 * Real redis-server processes for tests: standalone, Cluster (3 masters) and Sentinel (1 master,
 * 1 replica, 3 sentinels). Each process gets a free port (found by binding port 0, retried on a clash)
 * and a temp dir; nothing is persisted (`--save "" --appendonly no`). Port 6379 (and its Sentinel and
 * Cluster-bus neighbours) is never used. Callers register cleanup as soon as a helper returns; a
 * process-exit hook SIGKILLs whatever is left if a worker dies first, and the global teardown kills
 * what a worker killed outright left (test/global-setup.ts).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { createRedisStore, type RedisSessionStore, type RedisStoreOptions } from '../../src/store/redis.js';
import { freePort } from './ports.js';
import { waitUntil } from './wait.js';

const HOST = '127.0.0.1';
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

export interface RedisHandle {
  readonly port: number;
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  /** SIGTERM, wait for exit, remove the temp dir. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL (a crash); the handle can `restart()`. */
  kill(): Promise<void>;
  /** Starts the process again on the same port (after kill). */
  restart(): Promise<void>;
}

export interface RedisClusterHandle {
  readonly ports: readonly number[];
  /** `127.0.0.1:<port>` of every master. */
  readonly seeds: readonly string[];
  readonly nodes: readonly RedisHandle[];
  stop(): Promise<void>;
}

export interface RedisSentinelHandle {
  readonly masterName: string;
  readonly master: RedisHandle;
  readonly replica: RedisHandle;
  readonly sentinels: readonly RedisHandle[];
  /** `127.0.0.1:<port>` of every sentinel. */
  readonly sentinelAddresses: readonly string[];
  stop(): Promise<void>;
}

/**
 * Whether `redis-server` is on PATH and runs, for
 * `describe.skipIf(!needTool('redis-server', 'redis-server', haveRedis()))` (test/support/tools.ts).
 * Cluster suites also need `redis-cli` (`haveRedisCli()`, Debian's redis-tools, which redis-server
 * depends on).
 */
export function haveRedis(): boolean {
  return runs('redis-server', ['--version']);
}

/** Whether `redis-cli` is on PATH and runs (startRedisCluster creates the cluster with it). */
export function haveRedisCli(): boolean {
  return runs('redis-cli', ['--version']);
}

function runs(command: string, args: readonly string[]): boolean {
  return spawnSync(command, args, { stdio: 'ignore', timeout: 10_000 }).status === 0;
}

/** One command over a short-lived connection (admin operations of tests). */
export async function redisCommand(port: number, ...args: (string | number)[]): Promise<unknown> {
  const client = new Redis({
    host: HOST,
    port,
    lazyConnect: true,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    enableReadyCheck: false,
  });
  client.on('error', () => {});
  try {
    await client.connect();
    const [name, ...rest] = args;
    return await client.call(String(name), ...rest);
  } finally {
    client.disconnect();
  }
}

// test/store imports the poller from here.

/** PING over a raw socket: true when the server answers +PONG. */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, HOST);
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (d) => done(d.toString().startsWith('+PONG')));
  });
}

interface Spec {
  /** The redis-server arguments (config file path first for sentinels). */
  readonly args: (port: number, dir: string) => Promise<string[]>;
}

class ServerProcess implements RedisHandle {
  #child: ChildProcess | undefined;
  #stopped = false;
  readonly port: number;
  readonly url: string;
  readonly dir: string;
  readonly #argv: string[];

  constructor(port: number, dir: string, argv: string[]) {
    this.port = port;
    this.url = `redis://${HOST}:${port}`;
    this.dir = dir;
    this.#argv = argv;
  }

  /** Starts and waits for PONG; false when the process exited first (a port clash). */
  async start(): Promise<boolean> {
    // A restart still retrying when the test gave up and stopped this handle must not leave a server behind.
    if (this.#stopped) throw new Error(`redis-server on ${this.port} was stopped`);
    const child = spawn('redis-server', this.#argv, { cwd: this.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
    child.stderr?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
    this.#child = child;
    live.add(child);
    let exited = false;
    child.once('exit', () => {
      exited = true;
      live.delete(child);
    });
    try {
      await waitUntil(
        `redis-server on ${this.port} to answer PING`,
        async () => exited || (await ping(this.port)),
        10_000,
        20,
      );
    } catch (err) {
      child.kill('SIGKILL');
      throw new Error(`redis-server on ${this.port} did not start:\n${output}`, { cause: err });
    }
    if (!exited) {
      if (!this.#stopped) return true;
      await this.#signal('SIGKILL');
      throw new Error(`redis-server on ${this.port} was stopped while starting`);
    }
    if (/address already in use/i.test(output)) return false;
    throw new Error(`redis-server on ${this.port} exited:\n${output}`);
  }

  async #signal(signal: NodeJS.Signals): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  }

  kill(): Promise<void> {
    return this.#signal('SIGKILL');
  }

  async restart(): Promise<void> {
    await this.#signal('SIGKILL');
    // The port was ours a moment ago; another process grabbing it in between is retried briefly.
    for (let attempt = 0; ; attempt++) {
      if (await this.start()) return;
      if (attempt >= 20) throw new Error(`port ${this.port} stayed busy`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    await this.#signal('SIGTERM');
    await rm(this.dir, { recursive: true, force: true });
  }
}

async function launch(spec: Spec): Promise<ServerProcess> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const port = await freePort();
    const dir = await mkdtemp(join(tmpdir(), redisDirPrefix()));
    const argv = await spec.args(port, dir);
    const server = new ServerProcess(port, dir, argv);
    if (await server.start()) return server;
    await rm(dir, { recursive: true, force: true });
  }
  throw new Error('no free port for redis-server after 10 attempts');
}

/**
 * Temp dirs (and so the cwd of every redis-server) carry the run's id, set by test/global-setup.ts,
 * whose teardown kills whatever this run left: a worker killed by SIGTERM runs no exit hook.
 */
export function redisDirPrefix(run = process.env.SG_TEST_RUN ?? 'adhoc'): string {
  return `sg-redis-${run}-`;
}

const BASE_ARGS = ['--bind', HOST, '--save', '', '--appendonly', 'no', '--protected-mode', 'no'];

/** A standalone redis-server. */
export async function startRedis(extraArgs: readonly string[] = []): Promise<RedisHandle> {
  return launch({ args: async (port) => ['--port', String(port), ...BASE_ARGS, ...extraArgs] });
}

/** Stops every handle, even if some fail. */
async function stopAll(handles: readonly RedisHandle[]): Promise<void> {
  await Promise.allSettled(handles.map((h) => h.stop()));
}

function run(command: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) =>
      code === 0 ? resolve(output) : reject(new Error(`${command} exited ${code}:\n${output}`)),
    );
  });
}

/** Three Cluster masters, no replicas, all slots assigned; resolves once every node says cluster_state:ok. */
export async function startRedisCluster(): Promise<RedisClusterHandle> {
  const nodes: ServerProcess[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      nodes.push(
        await launch({
          // cluster-port (Redis 7) names the bus port, so it need not be port + 10000.
          args: async (port) => [
            '--port',
            String(port),
            ...BASE_ARGS,
            '--cluster-enabled',
            'yes',
            '--cluster-config-file',
            'nodes.conf',
            '--cluster-node-timeout',
            '2000',
            '--cluster-port',
            String(await freePort()),
          ],
        }),
      );
    }
    const seeds = nodes.map((n) => `${HOST}:${n.port}`);
    await run('redis-cli', ['--cluster', 'create', ...seeds, '--cluster-replicas', '0', '--cluster-yes']);
    for (const n of nodes) {
      await waitUntil(`cluster_state:ok on ${n.port}`, async () =>
        String(await redisCommand(n.port, 'CLUSTER', 'INFO')).includes('cluster_state:ok'),
      );
    }
    return { ports: nodes.map((n) => n.port), seeds, nodes, stop: () => stopAll(nodes) };
  } catch (err) {
    await stopAll(nodes);
    throw err;
  }
}

/** Field/value pairs of a Sentinel reply. */
function fields(reply: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  const list = reply as string[];
  for (let i = 0; i + 1 < list.length; i += 2) out[String(list[i])] = String(list[i + 1]);
  return out;
}

/**
 * A master, one replica and three sentinels (quorum 2) watching `mymaster`, with short timeouts so
 * `SENTINEL FAILOVER mymaster` completes in a few seconds. Resolves once the replica is in sync and
 * every sentinel knows the replica and the two other sentinels.
 */
export async function startRedisSentinel(): Promise<RedisSentinelHandle> {
  const masterName = 'mymaster';
  const all: ServerProcess[] = [];
  try {
    const master = await launch({ args: async (port) => ['--port', String(port), ...BASE_ARGS] });
    all.push(master);
    const replica = await launch({
      args: async (port) => ['--port', String(port), ...BASE_ARGS, '--replicaof', HOST, String(master.port)],
    });
    all.push(replica);
    await waitUntil('replica in sync', async () =>
      String(await redisCommand(replica.port, 'INFO', 'replication')).includes('master_link_status:up'),
    );
    const sentinels: ServerProcess[] = [];
    for (let i = 0; i < 3; i++) {
      const s = await launch({
        args: async (port, dir) => {
          const file = join(dir, 'sentinel.conf');
          await writeFile(
            file,
            [
              `port ${port}`,
              `bind ${HOST}`,
              `dir ${dir}`,
              `sentinel monitor ${masterName} ${HOST} ${master.port} 2`,
              `sentinel down-after-milliseconds ${masterName} 1000`,
              `sentinel failover-timeout ${masterName} 4000`,
              `sentinel parallel-syncs ${masterName} 1`,
              '',
            ].join('\n'),
          );
          return [file, '--sentinel'];
        },
      });
      sentinels.push(s);
      all.push(s);
    }
    for (const s of sentinels) {
      await waitUntil(`sentinel ${s.port} sees the replica and its peers`, async () => {
        const m = fields(await redisCommand(s.port, 'SENTINEL', 'MASTER', masterName));
        return Number(m['num-slaves']) >= 1 && Number(m['num-other-sentinels']) >= 2;
      });
    }
    return {
      masterName,
      master,
      replica,
      sentinels,
      sentinelAddresses: sentinels.map((s) => `${HOST}:${s.port}`),
      stop: () => stopAll(all),
    };
  } catch (err) {
    await stopAll(all);
    throw err;
  }
}

export interface TcpProxy {
  readonly port: number;
  readonly url: string;
  /**
   * Makes every current connection half-open for good (bytes are swallowed both ways, nothing is
   * closed), and new connections too until `thaw`.
   */
  freeze(): void;
  /** New connections flow again; the frozen ones stay frozen, like a real half-open connection. */
  thaw(): void;
  close(): Promise<void>;
}

/** A TCP proxy to a local port that can turn its connections into black holes (half-open). */
export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  let frozen = false;
  const pairs = new Set<{ frozen: boolean; client: net.Socket; upstream: net.Socket }>();
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, HOST);
    const pair = { frozen, client, upstream };
    pairs.add(pair);
    const end = (): void => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('data', (d) => pair.frozen || upstream.write(d));
    upstream.on('data', (d) => pair.frozen || client.write(d));
    // A frozen connection never reports the other side's close either.
    client.on('close', () => (pair.frozen ? client.destroy() : end()));
    upstream.on('close', () => (pair.frozen ? upstream.destroy() : end()));
    client.on('error', () => {});
    upstream.on('error', () => {});
  });
  server.listen(0, HOST);
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  return {
    port,
    url: `redis://${HOST}:${port}`,
    freeze() {
      frozen = true;
      for (const p of pairs) p.frozen = true;
    },
    thaw() {
      frozen = false;
    },
    async close() {
      for (const p of pairs) {
        p.client.destroy();
        p.upstream.destroy();
      }
      pairs.clear();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * A contract-suite harness factory for the Redis store: a fresh store per test with its own key prefix
 * (so tests sharing one Redis never meet), a settable clock starting at the real time (Redis TTLs are
 * real time), connected and subscribed before the test starts.
 */
export function redisStoreHarness(
  options: () => RedisStoreOptions,
): (extra?: {
  retention?: number;
}) => Promise<{ store: RedisSessionStore; clock: { value: number }; cleanup: () => Promise<void> }> {
  return async (extra = {}) => {
    const clock = { value: Date.now() };
    const store = createRedisStore({
      commandTimeout: 1_000,
      pingInterval: 500,
      ...options(),
      ...extra,
      keyPrefix: `sg:${randomUUID().slice(0, 8)}:`,
      now: () => clock.value,
    });
    try {
      await store.ready();
    } catch (err) {
      await store.close();
      throw err;
    }
    return { store, clock, cleanup: () => store.close() };
  };
}

/** Every key with the prefix, across the given nodes (SCAN, never KEYS). */
export async function keysWithPrefix(ports: readonly number[], prefix: string): Promise<Map<string, number>> {
  const found = new Map<string, number>();
  for (const port of ports) {
    const client = new Redis({ host: HOST, port, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    client.on('error', () => {});
    try {
      let cursor = '0';
      do {
        const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
        cursor = next;
        for (const key of keys) found.set(key, port);
      } while (cursor !== '0');
    } finally {
      client.disconnect();
    }
  }
  return found;
}
