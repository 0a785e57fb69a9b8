/**
 * Child processes of the bench: spawning, readiness, CPU and memory accounting, and cleanup.
 *
 * Every server runs in a process of its own so that /proc/<pid>/stat charges each one only with its own
 * work; the load generator stays in the parent.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';

/** Lines of output kept per child, for the error message when it dies. */
const TAIL_LINES = 40;

export interface Child {
  readonly name: string;
  readonly pid: number;
  /** Resolves with the exit code (or the signal name) when the process ends. */
  readonly exited: Promise<number | string>;
  /** The last lines the process wrote (stdout and stderr), for error messages. */
  tail(): string;
  /** True once the process has ended. */
  hasExited(): boolean;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
  stop(graceMs?: number): Promise<void>;
}

/** Children still running, so an interrupted bench does not leave servers behind. */
const running = new Set<ChildProcess>();

process.once('exit', () => {
  // Synchronous last resort: only the processes this bench spawned, each by its own pid.
  for (const proc of running) proc.kill('SIGKILL');
});
for (const [signal, code] of [
  ['SIGINT', 130],
  ['SIGTERM', 143],
] as const) {
  process.once(signal, () => {
    console.error(`\n${signal}: stopping the bench's child processes`);
    process.exit(code);
  });
}

function keepTail(lines: string[], chunk: Buffer): void {
  for (const line of chunk.toString('utf8').split('\n')) {
    if (line.trim() === '') continue;
    lines.push(line);
    if (lines.length > TAIL_LINES) lines.shift();
  }
}

export interface SpawnOptions {
  cwd?: string;
  /** A CPU list (`1`, `0-2`): the process is started through `taskset -c`, which execs it (same pid). */
  cpus?: string;
}

/** Spawns a process whose output is kept (last lines only) and which is killed when the bench exits. */
export function spawnChild(
  name: string,
  command: string,
  args: readonly string[],
  options: SpawnOptions = {},
): Child {
  const [file, argv] = options.cpus
    ? ['taskset', ['-c', options.cpus, command, ...args]]
    : [command, [...args]];
  const proc = spawn(file, argv, { cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
  const lines: string[] = [];
  let done = false;
  // Output is always drained: a child blocked on a full stdout pipe would stall mid-measurement.
  proc.stdout?.on('data', (chunk: Buffer) => keepTail(lines, chunk));
  proc.stderr?.on('data', (chunk: Buffer) => keepTail(lines, chunk));
  const exited = new Promise<number | string>((resolve) => {
    proc.once('error', (err) => {
      lines.push(String(err));
      done = true;
      running.delete(proc);
      resolve(-1);
    });
    proc.once('exit', (code, signal) => {
      done = true;
      running.delete(proc);
      resolve(code ?? signal ?? -1);
    });
  });
  running.add(proc);
  return {
    name,
    pid: proc.pid ?? -1,
    exited,
    tail: () => lines.join('\n'),
    hasExited: () => done,
    stop: (graceMs = 3000) => stopChild(proc, exited, () => done, graceMs),
  };
}

async function stopChild(
  proc: ChildProcess,
  exited: Promise<number | string>,
  isDone: () => boolean,
  graceMs: number,
): Promise<void> {
  if (isDone()) return;
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** Spawns `node <script> ...args` with the same Node binary as the bench. */
export function spawnNode(
  name: string,
  script: string,
  args: readonly string[],
  options: SpawnOptions = {},
): Child {
  return spawnChild(name, process.execPath, [script, ...args], options);
}

/** Where processes run with --pin: the proxy under test alone on one CPU, everything else on the rest. */
export interface Pinning {
  proxy: string;
  others: string;
}

/** CPUs this process may use (Cpus_allowed_list of /proc/self/status, e.g. `0-3,6`). */
function allowedCpus(): number[] {
  const match = /^Cpus_allowed_list:\s*(\S+)/m.exec(readFileSync('/proc/self/status', 'latin1'));
  const cpus: number[] = [];
  for (const part of (match?.[1] ?? '').split(',')) {
    const [from, to] = part.split('-').map(Number);
    if (from === undefined || !Number.isInteger(from)) continue;
    for (let c = from; c <= (to ?? from); c++) cpus.push(c);
  }
  return cpus;
}

/**
 * Pins the bench itself (the load generator) to all CPUs but the last and returns the plan, or a
 * reason why pinning is impossible. With the proxy alone on its CPU, its CPU time per request no longer
 * depends on whether the scheduler happened to put it next to the upstream or autocannon.
 */
export function pinBench(): Pinning | string {
  const cpus = allowedCpus();
  if (cpus.length < 2) return `pinning needs 2 CPUs, this process may use ${cpus.length}`;
  const proxy = String(cpus[cpus.length - 1]);
  const others = cpus.slice(0, -1).join(',');
  try {
    execFileSync('taskset', ['-a', '-p', '-c', others, String(process.pid)], { stdio: 'ignore' });
  } catch {
    return 'taskset (util-linux) is not available';
  }
  return { proxy, others };
}

/** A port the kernel just handed out on 127.0.0.1 (closed again, so the child can bind it). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port from listen(0)');
  return address.port;
}

/** Thrown when a child dies or never becomes ready; carries the child's last output. */
export class ChildNotReadyError extends Error {}

/**
 * Waits until `url` answers any HTTP status (a gateway may answer 401 or 502 to a bare GET; it is
 * listening all the same), or throws if the child exits or `timeoutMs` passes.
 */
export async function waitForHttp(child: Child, url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.hasExited()) {
      throw new ChildNotReadyError(`${child.name} exited before listening:\n${child.tail()}`);
    }
    try {
      const res = await request(url, { headersTimeout: 1000, bodyTimeout: 1000 });
      await res.body.dump();
      return;
    } catch {
      await sleep(50);
    }
  }
  throw new ChildNotReadyError(
    `${child.name} did not answer ${url} within ${timeoutMs} ms:\n${child.tail()}`,
  );
}

/**
 * Waits until `url` answers 200 (a gateway's `/readyz`: its store answers and, with a Redis store, the
 * invalidation channel is up), or throws if the child exits or `timeoutMs` passes. Listening is not
 * enough: a Redis gateway that listens but is not ready answers 503 to the first requests.
 */
export async function waitForOk(child: Child, url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (child.hasExited()) {
      throw new ChildNotReadyError(`${child.name} exited before it was ready:\n${child.tail()}`);
    }
    try {
      const res = await request(url, { headersTimeout: 1000, bodyTimeout: 1000 });
      const body = await res.body.text();
      if (res.statusCode === 200) return;
      last = `${res.statusCode} ${body.slice(0, 200)}`;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    await sleep(50);
  }
  throw new ChildNotReadyError(
    `${child.name} was not ready (${url} answered ${last}) within ${timeoutMs} ms:\n${child.tail()}`,
  );
}

/** Waits until a TCP server answers `probe` with a reply starting with `expect` (redis: PING -> +PONG). */
export async function waitForTcp(
  child: Child,
  port: number,
  probe: string,
  expect: string,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.hasExited()) {
      throw new ChildNotReadyError(`${child.name} exited before listening:\n${child.tail()}`);
    }
    if (await tcpProbe(port, probe, expect)) return;
    await sleep(50);
  }
  throw new ChildNotReadyError(`${child.name} did not answer on port ${port} within ${timeoutMs} ms`);
}

function tcpProbe(port: number, probe: string, expect: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    const finish = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => finish(false));
    socket.once('error', () => finish(false));
    socket.once('connect', () => socket.write(probe));
    socket.once('data', (data: Buffer) => finish(data.toString('latin1').startsWith(expect)));
  });
}

let clockTicks: number | undefined;

/** Clock ticks per second of /proc/<pid>/stat times (`getconf CLK_TCK`, almost always 100). */
export function clkTck(): number {
  if (clockTicks === undefined) {
    const value = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    clockTicks = Number.isFinite(value) && value > 0 ? value : 100;
  }
  return clockTicks;
}

/** CPU time of a process in clock ticks, all its threads included (GC, libuv pool). */
export interface CpuTicks {
  /** utime: in the process's own code. */
  user: number;
  /** stime: in the kernel on its behalf (system calls: the sockets' reads and writes). */
  system: number;
}

/**
 * utime and stime of a process (proc(5) fields 14 and 15). Fields are counted after the last ')'
 * because the command name may itself contain spaces or parens.
 */
export function cpuTimes(pid: number): CpuTicks {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state).
  return { user: Number(fields[11]), system: Number(fields[12]) };
}

/** Resident set size of a process in bytes (VmRSS of /proc/<pid>/status). */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'latin1');
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!match?.[1]) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]) * 1024;
}
