/**
 * `sessiongate check --connect` through the built CLI, against a real upstream (node:http) and a real
 * redis-server, and against ports nobody listens on.
 */
import type { IncomingMessage } from 'node:http';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { probe } from '../support/apps.js';
import { freePort } from '../support/ports.js';
import { runCli, tempFiles } from '../support/cli.js';
import { redisCommand, startRedis, type RedisHandle } from '../support/redis.js';
import { needTool } from '../support/tools.js';
import { listenApp } from '../support/upstreams.js';
import type { RunningApp } from '../support/running-app.js';

const files = tempFiles('sg-cli-connect-');
let written = 0;

function config(upstream: string, store: string): string {
  return files.write(
    `c${++written}.yaml`,
    `upstream: ${upstream}\nsecret: a-secret-of-sixteen+\nstore: ${store}\n` +
      // Bounds each check when nothing answers: the test waits for the process, not for a clock.
      'timeouts: { connect: 1s }\n' +
      'login:\n  - match: POST /api/login\n    token: json:accessToken\n    user: json:user.id\n',
  );
}

/** An app that records the requests it gets; `head: false` answers HEAD with 405, as some apps do. */
async function app(options: { head: boolean }): Promise<RunningApp & { seen: string[] }> {
  const seen: string[] = [];
  const running = await listenApp((req: IncomingMessage, res) => {
    seen.push(`${req.method} ${req.url}`);
    res.writeHead(req.method === 'HEAD' && !options.head ? 405 : 200, { 'content-type': 'text/plain' });
    res.end(req.method === 'HEAD' ? undefined : 'hello');
  });
  onTestFinished(() => running.close());
  return { ...running, seen };
}

const closedPort = async () => `http://127.0.0.1:${await freePort()}`;

describe('sessiongate check --connect', () => {
  it('reports an answering upstream and the memory store, exit 0', async () => {
    const upstream = await app({ head: true });
    const { code, stdout } = await runCli(['check', '--config', config(upstream.url, 'memory'), '--connect']);
    expect(stdout.split('\n').slice(1)).toEqual([
      `upstream ${upstream.url}: ok (HEAD / answered 200)`,
      'store memory: ok (in this process)',
      '',
    ]);
    expect(code).toBe(0);
    expect(upstream.seen).toEqual(['HEAD /']);
  });

  it('asks GET / when the upstream refuses HEAD', async () => {
    const upstream = await app({ head: false });
    const { code, stdout } = await runCli(['check', '--config', config(upstream.url, 'memory'), '--connect']);
    expect(stdout).toContain(`upstream ${upstream.url}: ok (GET / answered 200)`);
    expect(code).toBe(0);
    expect(upstream.seen).toEqual(['HEAD /', 'GET /']);
  });

  it('reports a refused upstream connection, exit 1', async () => {
    const upstream = await closedPort();
    const { code, stdout } = await runCli(['check', '--config', config(upstream, 'memory'), '--connect']);
    const port = new URL(upstream).port;
    expect(stdout).toContain(
      `upstream ${upstream}: TCP connect failed: connect ECONNREFUSED 127.0.0.1:${port}\nstore memory: ok`,
    );
    expect(code).toBe(1);
  });

  it('prints the explanation first when asked for both', async () => {
    const upstream = await app({ head: true });
    const { code, stdout } = await runCli([
      'check',
      '--config',
      config(upstream.url, 'memory'),
      '--explain',
      '--connect',
    ]);
    expect(code).toBe(0);
    expect(stdout.indexOf('login[0]: POST /api/login')).toBeGreaterThan(0);
    expect(stdout.indexOf(`upstream ${upstream.url}: ok`)).toBeGreaterThan(stdout.indexOf('Policy'));
  });
});

describe.skipIf(
  !needTool('redis-server', 'redis-server', probe('redis-server', 'redis-server', ['--version'])),
)('sessiongate check --connect, Redis', () => {
  let redis: RedisHandle;
  let upstream: RunningApp;
  beforeAll(async () => {
    redis = await startRedis();
    upstream = await listenApp((_req, res) => res.writeHead(204).end());
  });
  afterAll(async () => {
    await upstream.close();
    await redis.stop();
  });

  it('reports a reachable Redis through the store (commands and the invalidation channel), exit 0', async () => {
    const { code, stdout } = await runCli([
      'check',
      '--config',
      config(upstream.url, redis.url),
      '--connect',
    ]);
    expect(stdout).toContain(
      `store redis ${redis.url}: ok (commands answered, invalidation channel subscribed, 0 live sessions)`,
    );
    expect(code).toBe(0);
  });

  it('uses the configured store settings: a wrong password is refused, exit 1', async () => {
    const locked = await startRedis();
    onTestFinished(() => locked.stop());
    // Set after the start: the helper's readiness PING goes without a password.
    await redisCommand(locked.port, 'CONFIG', 'SET', 'requirepass', 'the-right-password');
    const store = `{ url: "${locked.url}", password: wrong-password }`;
    const { code, stdout } = await runCli(['check', '--config', config(upstream.url, store), '--connect']);
    expect(stdout).toMatch(new RegExp(`store redis ${locked.url}: not ready after 1s: .*WRONGPASS`));
    expect(code).toBe(1);
  });

  it('reports a Redis nobody listens on, exit 1', async () => {
    const store = (await closedPort()).replace('http:', 'redis:');
    const { code, stdout } = await runCli(['check', '--config', config(upstream.url, store), '--connect']);
    expect(stdout).toContain(`store redis ${store}: not ready after 1s: redis command connection is down:`);
    expect(stdout).toContain('ECONNREFUSED');
    expect(code).toBe(1);
  });
});
