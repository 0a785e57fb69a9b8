/**
 * Running a Node process under valgrind's callgrind and reading its instruction counts: the counters
 * are zeroed and dumped on demand (`callgrind_control -z` / `-d`) around a window of requests, and the
 * dump is split into the main thread (everything under `node::Start`, i.e. the JS thread) and the rest
 * (GC helper threads, TurboFan, the libuv pool), as `callgrind_annotate` reports them.
 */
import { execFile, execFileSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { basename, delimiter, dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { spawnChild, type Child } from './proc.js';

const run = promisify(execFile);

/** The tools the instruction bench needs (callgrind_control and callgrind_annotate are Perl scripts). */
const TOOLS = ['valgrind', 'callgrind_control', 'callgrind_annotate'] as const;

/** True when `tool` is an executable file in a directory of PATH. */
function onPath(tool: string): boolean {
  return (process.env['PATH'] ?? '').split(delimiter).some((dir) => {
    if (dir === '') return false;
    try {
      accessSync(join(dir, tool), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** Why callgrind cannot be used here, or undefined when valgrind and its callgrind scripts are installed. */
export function callgrindUnavailableReason(): string | undefined {
  const missing = TOOLS.filter((tool) => !onPath(tool));
  if (missing.length === 0) return undefined;
  return `${missing.join(', ')} not on the PATH (install valgrind to run the instruction bench)`;
}

/** `valgrind-3.19.0`, for the results. */
export function valgrindVersion(): string {
  try {
    return execFileSync('valgrind', ['--version'], { encoding: 'utf8' }).trim();
  } catch {
    return 'valgrind (unknown version)';
  }
}

/**
 * Spawns `node <script> ...args` (the bench's own Node binary) under callgrind. The pid is valgrind's,
 * which is the guest's: callgrind_control addresses it. `--smc-check=all-non-file` makes valgrind notice
 * code V8 writes into anonymous memory (the JIT); without it, rewritten code runs stale translations.
 */
export function spawnUnderCallgrind(
  name: string,
  outFile: string,
  script: string,
  args: readonly string[],
  cwd?: string,
): Child {
  return spawnChild(
    name,
    'valgrind',
    [
      '--tool=callgrind',
      '--smc-check=all-non-file',
      `--callgrind-out-file=${outFile}`,
      process.execPath,
      script,
      ...args,
    ],
    cwd ? { cwd } : {},
  );
}

async function control(pid: number, flag: '-z' | '-d'): Promise<void> {
  try {
    await run('callgrind_control', [flag, String(pid)], { timeout: 120_000 });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw new Error(`callgrind_control ${flag} ${pid} failed: ${message}`);
  }
}

/** Zeroes every counter of the process (all threads): what follows is the measured window. */
export function zeroCounters(pid: number): Promise<void> {
  return control(pid, '-z');
}

/** Numbered dumps of `outFile` (`<outFile>.1`, `.2`, ...) with their numbers. */
async function dumpsOf(outFile: string): Promise<Map<number, string>> {
  const prefix = `${basename(outFile)}.`;
  const dumps = new Map<number, string>();
  for (const entry of await readdir(dirname(outFile))) {
    if (!entry.startsWith(prefix)) continue;
    const n = Number(entry.slice(prefix.length));
    if (Number.isInteger(n) && n > 0) dumps.set(n, join(dirname(outFile), entry));
  }
  return dumps;
}

/** A complete callgrind dump ends with its `totals:` line. */
async function isComplete(file: string): Promise<boolean> {
  try {
    return /^totals: \d+/m.test(await readFile(file, 'utf8'));
  } catch {
    return false;
  }
}

/**
 * Dumps the counters since the last zeroing (all threads) and returns the dump's path once it is
 * complete. callgrind names dumps `<outFile>.<n>`; the new one is the highest number.
 */
export async function dumpCounters(pid: number, outFile: string, timeoutMs = 60_000): Promise<string> {
  const before = new Set((await dumpsOf(outFile)).keys());
  await control(pid, '-d');
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const fresh = [...(await dumpsOf(outFile))].filter(([n]) => !before.has(n)).sort((a, b) => b[0] - a[0]);
    const newest = fresh[0]?.[1];
    if (newest && (await isComplete(newest))) return newest;
    await sleep(200);
  }
  throw new Error(`callgrind_control -d ${pid}: no complete dump ${outFile}.<n> within ${timeoutMs} ms`);
}

/** Instructions executed in one window, split by thread. */
export interface ThreadSplit {
  /** PROGRAM TOTALS: every thread. */
  total: number;
  /** Inclusive count of `node::Start(int, char**)`: the main thread, where JS runs. */
  main: number;
  /** total - main: V8's GC helpers and compiler threads, the libuv pool, the inspector/platform threads. */
  other: number;
}

function countOn(text: string, pattern: RegExp, what: string): number {
  const match = pattern.exec(text);
  if (!match?.[1]) throw new Error(`callgrind_annotate output has no ${what} line`);
  return Number(match[1].replaceAll(',', ''));
}

/**
 * Reads `callgrind_annotate --inclusive=yes --threshold=100` output. The lines look like
 * `603,238,858 (100.0%)  PROGRAM TOTALS` and
 * `451,611,975 (74.86%)  ???:node::Start(int, char**) [/usr/bin/node]`.
 */
export function parseAnnotate(text: string): ThreadSplit {
  const total = countOn(text, /^\s*([\d,]+)\s.*\bPROGRAM TOTALS\s*$/m, 'PROGRAM TOTALS');
  const main = countOn(
    text,
    /^\s*([\d,]+)\s.*:node::Start\(int, char\*\*\)(?:\s|$)/m,
    'node::Start(int, char**)',
  );
  if (main > total) throw new Error(`node::Start (${main}) counts more than PROGRAM TOTALS (${total})`);
  return { total, main, other: total - main };
}

/** Splits one dump into main thread and other threads with callgrind_annotate. */
export async function threadSplit(dump: string): Promise<ThreadSplit> {
  const { stdout } = await run('callgrind_annotate', ['--inclusive=yes', '--threshold=100', dump], {
    maxBuffer: 256 * 1024 * 1024,
    timeout: 300_000,
  });
  return parseAnnotate(stdout);
}
