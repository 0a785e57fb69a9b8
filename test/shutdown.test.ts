/**
 * Shutdown as an orchestrator does it: the real CLI (`node dist/src/cli.js --config`, built by `npm run
 * build`) on a real Redis, 50 requests in flight to a slow upstream on real sockets, then SIGTERM.
 * Unready at once, still serving through `shutdown.delay`, then the listener closes, every in-flight
 * request completes, Redis is quit cleanly, exit code 0.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterEach, describe, expect, it, onTestFinished } from 'vitest';
import { freePort } from './support/ports.js';
import { haveRedis, redisCommand, startRedis } from './support/redis.js';
import { waitUntil } from './support/wait.js';
import { needTool } from './support/tools.js';
import { listenApp } from './support/upstreams.js';

const root = join(import.meta.dirname, '..');
const cli = join(root, 'dist/src/cli.js');
const dir = mkdtempSync(join(tmpdir(), 'sg-shutdown-'));
const children: ChildProcess[] = [];

afterEach(async () => {
  for (const child of children.splice(0)) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
  }
});

/** `node dist/src/cli.js ...args`, its stdout and stderr collected. */
function run(args: readonly string[]): { child: ChildProcess; output: () => string } {
  const child = spawn(process.execPath, [cli, ...args], { env: { PATH: process.env.PATH } });
  children.push(child);
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  return { child, output: () => output };
}

/** An upstream whose `/slow` answers only when the test releases it; everything else at once. */
async function slowApp() {
  const held: ServerResponse[] = [];
  const arrivals: (() => void)[] = [];
  const app = await listenApp((req, res) => {
    if (req.url === '/slow') {
      held.push(res);
      for (const wake of arrivals.splice(0)) wake();
      return;
    }
    res.end('fast');
  });
  onTestFinished(() => app.close());
  return {
    url: app.url,
    /** Resolves once `n` requests to /slow are held. */
    async holding(n: number): Promise<void> {
      while (held.length < n) await new Promise<void>((resolve) => arrivals.push(resolve));
    },
    release(): void {
      for (const res of held.splice(0)) res.end('slow');
    },
  };
}

/** Resolves with the error code of a TCP connect to the port (ECONNREFUSED once nothing listens). */
function connectError(port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(undefined);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code));
  });
}

describe.skipIf(!needTool('redis-server', 'redis-server', haveRedis()))('SIGTERM', () => {
  it('goes unready at once, serves through shutdown.delay, then finishes all 50 in-flight requests and exits 0', async () => {
    const redis = await startRedis();
    onTestFinished(() => redis.stop());
    const app = await slowApp();
    const [port, adminPort] = [await freePort(), await freePort()];
    const file = join(dir, `gateway-${port}.yaml`);
    writeFileSync(
      file,
      [
        `listen: 127.0.0.1:${port}`,
        `upstream: ${app.url}`,
        'secret: a-secret-of-sixteen+',
        `admin: { listen: "127.0.0.1:${adminPort}" }`,
        `store: { url: "${redis.url}", pingInterval: 200ms }`,
        'shutdown: { delay: 2s, grace: 20s }',
        'log: { level: info }',
        'login:',
        '  - { match: POST /api/login, token: "json:accessToken", user: "json:user.id" }',
        '',
      ].join('\n'),
    );
    const { child, output } = run(['--config', file]);
    const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    const base = `http://127.0.0.1:${port}`;
    const readyz = async () => {
      const res = await request(`http://127.0.0.1:${adminPort}/readyz`);
      return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
    };
    await waitUntil('ready', async () => (await readyz()).status === 200);

    // 50 requests in flight, each on its own socket.
    const agent = new Agent({ connections: 60 });
    onTestFinished(() => agent.destroy());
    const inflight = Array.from({ length: 50 }, () =>
      request(`${base}/slow`, { dispatcher: agent }).then(async (res) => ({
        status: res.statusCode,
        body: await res.body.text(),
      })),
    );
    await app.holding(50);

    child.kill('SIGTERM');
    const unready = await waitUntil('unready', async () => {
      const r = await readyz();
      return r.status === 503 ? r : undefined;
    });
    expect(unready.body).toMatchObject({ status: 'unready', reason: 'draining' });
    // Within the delay a new request is still served (the listener closes only after it).
    const during = await request(`${base}/fast`, { dispatcher: agent });
    expect(during.statusCode).toBe(200);
    expect(await during.body.text()).toBe('fast');
    expect(output()).not.toContain('closing the listener');

    await waitUntil('the listener closes', () => output().includes('closing the listener'));
    expect(await connectError(port)).toBe('ECONNREFUSED');

    app.release();
    const results = await Promise.all(inflight);
    expect(results.filter((r) => r.status === 200 && r.body === 'slow')).toHaveLength(50);
    const [code, signal] = await exited;
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    expect(output()).toContain('"msg":"stopped"');
    // The command connection said QUIT (the subscriber has nothing to flush and just disconnects).
    expect(String(await redisCommand(redis.port, 'INFO', 'commandstats'))).toMatch(/cmdstat_quit:calls=1,/);
  });
});

describe('shutdownGrace', () => {
  it('is still accepted, with a warning that names shutdown.grace', async () => {
    const file = join(dir, 'deprecated.yaml');
    writeFileSync(
      file,
      'upstream: http://127.0.0.1:9\nsecret: a-secret-of-sixteen+\nshutdownGrace: 3s\n' +
        'login:\n  - { match: POST /api/login, token: "json:accessToken", user: "json:user.id" }\n',
    );
    const { child, output } = run(['check', '--config', file]);
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code).toBe(0);
    expect(output()).toContain('configuration is valid');
    expect(output()).toContain('warning: shutdownGrace: deprecated: use shutdown.grace');
  });
});
