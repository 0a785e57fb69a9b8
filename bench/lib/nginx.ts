/**
 * nginx as a reverse proxy in front of the bench upstream: one worker, a keep-alive upstream pool,
 * access log off. Not a competitor the targets name, but the machine's calibration point: DESIGN.md
 * measured it at 18.5 us per request where the undici floor cost 50, so the two side by side show how
 * much of a machine's per-request cost is the kernel's (which nginx pays too) rather than Node's.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, spawnChild, waitForHttp, type Child } from './proc.js';

export interface BenchNginx {
  readonly url: string;
  /** The worker's pid: the process that serves requests, whose CPU is charged. */
  readonly workerPid: number;
  readonly master: Child;
  stop(): Promise<void>;
}

/** Why nginx cannot be used here, or undefined when it can. */
export function nginxUnavailableReason(): string | undefined {
  try {
    execFileSync('nginx', ['-v'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return 'nginx is not installed (Debian: apt-get install nginx-light)';
  }
}

function config(dir: string, port: number, upstream: URL): string {
  return `worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  upstream app { server ${upstream.host}; keepalive 64; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`;
}

/** Starts nginx (master + one worker) on a free port, pinned to `cpus` when given. */
export async function startNginx(upstreamUrl: string, cpus?: string): Promise<BenchNginx> {
  const dir = await mkdtemp(join(tmpdir(), 'sessiongate-bench-nginx-'));
  const port = await freePort();
  await writeFile(join(dir, 'nginx.conf'), config(dir, port, new URL(upstreamUrl)), 'utf8');
  const master = spawnChild('nginx', 'nginx', ['-p', dir, '-c', join(dir, 'nginx.conf')], {
    ...(cpus ? { cpus } : {}),
  });
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    await master.stop();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitForHttp(master, `${url}/`, 10_000);
    const masterPid = Number((await readFile(join(dir, 'nginx.pid'), 'utf8')).trim());
    const workers = execFileSync('pgrep', ['-P', String(masterPid)], { encoding: 'utf8' })
      .trim()
      .split('\n');
    if (workers.length !== 1) throw new Error(`expected one nginx worker, found ${workers.length}`);
    const workerPid = Number(workers[0]);
    // A master killed outright (the bench's exit hook) leaves its worker serving: kill it too.
    process.once('exit', () => {
      try {
        process.kill(workerPid, 'SIGKILL');
      } catch {
        // already gone
      }
    });
    return { url, workerPid, master, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
