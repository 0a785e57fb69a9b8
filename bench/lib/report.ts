/**
 * Formatting and recording results: every bench replaces its own dated section in its results file
 * (bench/results/<bench>.md), so the file holds the latest run only; earlier runs are in git.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { availableParallelism, loadavg } from 'node:os';
import { readFileSync } from 'node:fs';
import { clkTck } from './proc.js';
import { repoRoot, type BenchName } from './paths.js';

export interface Machine {
  date: string;
  node: string;
  nproc: number;
  cpu: string;
  clkTck: number;
  git: string;
  /** The 1-minute load average when the bench started, before its own load: how busy the machine was. */
  load: number;
}

function cpuModel(): string {
  try {
    const match = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    return match?.[1]?.trim() ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** The commit measured, and whether the tree had uncommitted changes to code (results and docs do not count). */
function gitDescription(): string {
  try {
    const run = (args: string[]) => execFileSync('git', args, { cwd: repoRoot, encoding: 'utf8' }).trim();
    const head = run(['rev-parse', '--short', 'HEAD']);
    const dirty = run(['status', '--porcelain', '--', '.', ':(exclude)*.md']).length > 0;
    return dirty ? `${head} + uncommitted changes` : head;
  } catch {
    return 'unknown';
  }
}

/** `nproc` (CPUs this process may run on), falling back to Node's own count. */
function readNproc(): number {
  try {
    return Number(execFileSync('nproc', { encoding: 'utf8' }).trim());
  } catch {
    return availableParallelism();
  }
}

/** Read when the bench starts: `--pin` later narrows the bench process itself to fewer CPUs. */
const NPROC = readNproc();

/** Read when the bench starts, so the bench's own load is not in it. */
const LOAD_AT_START = loadavg()[0] ?? NaN;

export function machine(): Machine {
  return {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    node: process.version,
    nproc: NPROC,
    cpu: cpuModel(),
    clkTck: clkTck(),
    git: gitDescription(),
    load: LOAD_AT_START,
  };
}

export function machineLines(m: Machine): string[] {
  return [
    `- node ${m.node}, nproc ${m.nproc}, CPU: ${m.cpu}, CLK_TCK ${m.clkTck}; 1-minute load average ${m.load.toFixed(1)} at the start${m.load > m.nproc * 0.5 ? ' (a busy machine: other work shared the CPUs, compare ratios within this run only)' : ''}`,
    `- code: ${m.git}`,
  ];
}

/** A Markdown table (readable as is on a terminal too): the first `labelColumns` left-aligned, numbers right. */
export function table(
  header: readonly string[],
  rows: readonly (readonly string[])[],
  labelColumns = 1,
): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const isLabel = (i: number) => i < labelColumns;
  const line = (cells: readonly string[]) =>
    `| ${cells.map((c, i) => (isLabel(i) ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (isLabel(i) ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [line(header), rule, ...rows.map(line)].join('\n');
}

/** A number with `digits` decimals, or an em dash when not measured. */
export function num(value: number | undefined, digits = 1): string {
  return value === undefined || !Number.isFinite(value) ? '—' : value.toFixed(digits);
}

export function int(value: number | undefined): string {
  return value === undefined || !Number.isFinite(value) ? '—' : Math.round(value).toLocaleString('en-US');
}

export function mib(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

/**
 * The mark of a bench's section: its `## ` heading names the bench's file, `... (bench/scale.ts)`, and
 * the variant when the bench keeps one section per variant, `... (bench/hot.ts --meter cpu --schedule paired)`.
 */
function headingMark(bench: BenchName, variant?: string): string {
  return `(bench/${bench}.ts${variant ? ` ${variant}` : ''})`;
}

/**
 * Writes `section` into `file` in place of the bench's (and variant's) section there, or after the
 * others when it has none, keeping the other sections, so a file shared by several benches
 * (`--results`) or variants holds the latest run of each. Creates the file, with a title, when absent.
 */
export async function recordResults(
  file: string,
  bench: BenchName,
  section: string,
  variant?: string,
): Promise<void> {
  const mark = headingMark(bench, variant);
  const heading = section.split('\n', 1)[0] ?? '';
  if (!heading.startsWith('## ') || !heading.includes(mark))
    throw new Error(`a ${bench} section must start with a "## ... ${mark}" heading, got ${heading}`);
  let existing = '';
  try {
    existing = await readFile(file, 'utf8');
  } catch {
    existing = '';
  }
  const [head = '', ...sections] = existing.split(/^(?=## )/m);
  const title =
    head.trim() === ''
      ? '# sessiongate benchmark results\n\nThe latest run only: each run replaces its own section (earlier runs are in git). See bench/README.md.\n'
      : `${head.trimEnd()}\n`;
  const isMine = (s: string) => (s.split('\n', 1)[0] ?? '').includes(mark);
  const first = sections.findIndex(isMine);
  const kept = sections.filter((s) => !isMine(s)).map((s) => s.trimEnd());
  // Every section before the first of this bench's is another bench's, so `first` is its place in `kept`.
  kept.splice(first === -1 ? kept.length : first, 0, section.trimEnd());
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, `${title}\n${kept.join('\n\n')}\n`, 'utf8');
}

/** Percentile (nearest rank) of an ascending-sorted array. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] ?? NaN;
}

/**
 * A reason in one line: the message's first line plus the first following line that is not a stack
 * frame (for a child that died, that is usually its error).
 */
export function oneLine(text: string): string {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('at '));
  return lines.slice(0, 2).join(' ');
}

/** DESIGN.md's hot-path targets for the cache-hit path, as ratios of the gateway's cost per request. */
export const TARGET_VS_FLOOR = 1.15;
export const TARGET_VS_HTTP_PROXY = 0.6;

/** `1.07 ok` / `1.21 OVER` against a target ratio; `—` when there is nothing to compare. */
export function verdict(ratio: number | undefined, target: number, digits = 2): string {
  if (ratio === undefined || !Number.isFinite(ratio)) return '—';
  return `${ratio.toFixed(digits)} ${ratio <= target ? 'ok' : 'OVER'}`;
}

/** Median of the finite values (the mean of the middle two for an even count); NaN when none. */
export function median(values: readonly number[]): number {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** A cumulative histogram bucket: `n` observations at or under `le`. */
export interface Bucket {
  readonly le: number;
  readonly n: number;
}

/**
 * The q-quantile (0..1) of a cumulative histogram, interpolated linearly inside its bucket as
 * Prometheus's histogram_quantile does (from 0 in the first bucket; the last finite bound past it).
 */
export function bucketQuantile(buckets: readonly Bucket[], q: number): number {
  const total = buckets[buckets.length - 1]?.n ?? 0;
  if (total === 0) return NaN;
  const rank = q * total;
  let lowerLe = 0;
  let lowerN = 0;
  for (const b of buckets) {
    if (b.n >= rank) {
      if (b.le === Infinity) return lowerLe;
      const inside = b.n - lowerN;
      return inside === 0 ? b.le : lowerLe + ((b.le - lowerLe) * (rank - lowerN)) / inside;
    }
    lowerLe = b.le;
    lowerN = b.n;
  }
  return lowerLe;
}

/** Raw observations counted into cumulative buckets with the bounds of `like`. */
export function toBuckets(values: readonly number[], like: readonly Bucket[]): Bucket[] {
  return like.map((b) => ({ le: b.le, n: values.filter((v) => v <= b.le).length }));
}
