/**
 * One id per `vitest run`, inherited by every worker: test/support/redis.ts names its temp dirs after
 * it. The teardown then kills any redis-server of this run still alive (a worker killed by SIGTERM
 * runs no exit hook) and says so, so a leak shows up instead of piling up on the machine. Servers of
 * another run on the same machine have another id and are left alone.
 */
import { randomUUID } from 'node:crypto';
import { readdir, readFile, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { redisDirPrefix } from './support/redis.js';

/** Pids of redis-server processes whose working directory starts with `dirPrefix`. */
export async function redisServersIn(dirPrefix: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const comm = (await readFile(`/proc/${entry}/comm`, 'utf8')).trim();
      if (!comm.startsWith('redis-server')) continue;
      if ((await readlink(`/proc/${entry}/cwd`)).startsWith(dirPrefix)) pids.push(Number(entry));
    } catch {
      // The process ended meanwhile, or is not ours to inspect.
    }
  }
  return pids;
}

/** Kills the redis-servers running in `<tmpdir>/<prefix>*` and removes those dirs; returns how many it killed. */
export async function killLeftoverRedis(prefix: string): Promise<number> {
  const leftover = await redisServersIn(join(tmpdir(), prefix));
  for (const pid of leftover) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // It ended between the scan and the kill.
    }
  }
  for (const dir of await readdir(tmpdir()))
    if (dir.startsWith(prefix)) await rm(join(tmpdir(), dir), { recursive: true, force: true });
  return leftover.length;
}

export default function setup(): () => Promise<void> {
  process.env.SG_TEST_RUN ??= randomUUID().slice(0, 8);
  const prefix = redisDirPrefix(process.env.SG_TEST_RUN);
  return async () => {
    const killed = await killLeftoverRedis(prefix);
    if (killed > 0)
      console.warn(`global teardown: killed ${killed} redis-server process(es) a test left running`);
  };
}
