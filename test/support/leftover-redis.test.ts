import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { killLeftoverRedis } from '../global-setup.js';
import { freePort } from './ports.js';
import { haveRedis, redisCommand, redisDirPrefix, startRedis, type RedisHandle } from './redis.js';
import { waitUntil } from './wait.js';
import { needTool } from './tools.js';

/** It starts redis-servers, one of them bare. */
const redisServer = needTool('redis-server', 'redis-server', haveRedis());

describe.skipIf(!redisServer)('the global teardown of test redis-servers', () => {
  const handles: RedisHandle[] = [];
  afterAll(() => Promise.all(handles.map((h) => h.stop())));

  it("kills a redis-server its run left behind and leaves another run's running", async () => {
    const ours = await startRedis();
    handles.push(ours);
    const run = `gone${process.pid}`;
    const dir = await mkdtemp(join(tmpdir(), redisDirPrefix(run)));
    const port = await freePort();
    // Spawned bare, as an orphan would be: nothing in this process will stop it.
    const orphan = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', ''], {
      cwd: dir,
      stdio: 'ignore',
    });
    await waitUntil('the orphan answers', () => redisCommand(port, 'PING').then((r) => r === 'PONG'));
    const exited = once(orphan, 'exit');

    expect(await killLeftoverRedis(redisDirPrefix(run))).toBe(1);
    expect((await exited)[1]).toBe('SIGKILL');
    expect(existsSync(dir)).toBe(false);
    expect(await redisCommand(ours.port, 'PING')).toBe('PONG');
  });
});
