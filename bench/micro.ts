/**
 * The micro-benchmarks (mitata) of the request path's pieces, each file one piece: the token id, the
 * token reader, the path normaliser, the header builder, the decision cache get. Each checks the
 * piece gives the expected answer before timing it, so a broken piece fails instead of timing fast.
 *
 * Usage: npm run micro -- [--only token-id,path] [--results results/micro.md | --no-results]
 */
import { parseArgs } from 'node:util';
import { run } from 'mitata';
import { onlyFlag, publish, runIfMain, selectScenarios } from './lib/driver.js';
import { outputPaths } from './lib/paths.js';
import { machine, machineLines, num, table } from './lib/report.js';
import * as decisionCache from './micro/decision-cache.js';
import * as headers from './micro/headers.js';
import * as path from './micro/path.js';
import * as tokenId from './micro/token-id.js';
import * as tokenReader from './micro/token-reader.js';

/** A piece registers its benchmarks; it may return what to close once they ran. */
interface Piece {
  readonly name: string;
  register(): void | Promise<void | (() => Promise<void>)>;
}

const pieces: Piece[] = [
  { name: 'token-id', register: tokenId.register },
  { name: 'token-reader', register: tokenReader.register },
  { name: 'path', register: path.register },
  { name: 'headers', register: headers.register },
  { name: 'decision-cache', register: decisionCache.register },
];

/** Nanoseconds, with the unit, readable at every magnitude. */
function ns(value: number): string {
  return value >= 1000 ? `${num(value / 1000, 2)} us` : `${num(value, 1)} ns`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      only: { type: 'string' },
      results: { type: 'string' },
      'no-results': { type: 'boolean', default: false },
    },
  });
  const { resultsFile } = outputPaths('micro', values);
  const selected = selectScenarios(pieces, onlyFlag(values.only));
  // A piece may hold something open while it is timed (headers: a real connection); closed after.
  const cleanups: (() => Promise<void>)[] = [];
  for (const piece of selected) {
    const cleanup = await piece.register();
    if (typeof cleanup === 'function') cleanups.push(cleanup);
  }
  const { benchmarks } = await run({ format: 'mitata' });
  for (const cleanup of cleanups) await cleanup();

  const rows: string[][] = [];
  // A trial marked baseline is what the following ones of the same piece are compared with.
  let baseline: { piece: string; avg: number } | undefined;
  for (const trial of benchmarks) {
    const stats = trial.runs[0]?.stats;
    if (!stats) throw new Error(`${trial.alias} failed: ${String(trial.runs[0]?.error)}`);
    const piece = trial.alias.split(':', 1)[0] ?? '';
    if (baseline?.piece !== piece) baseline = undefined;
    if (trial.baseline) baseline = { piece, avg: stats.avg };
    const vs = trial.baseline || !baseline ? '' : `${num(stats.avg / baseline.avg, 2)}x`;
    rows.push([trial.alias, ns(stats.avg), ns(stats.p50), ns(stats.p99), vs]);
  }
  const m = machine();
  const section = [
    `## ${m.date} — micro-benchmarks (bench/micro.ts)`,
    '',
    ...machineLines(m),
    '- mitata 1, one process, each function called in a loop until its timing settles; avg, p50 and p99 of the per-call time',
    '- "vs baseline": avg over the avg of the row marked as the baseline just above it (the previous implementation, or a yardstick)',
    '',
    table(['benchmark', 'avg', 'p50', 'p99', 'vs baseline'], rows),
  ].join('\n');
  await publish('micro', section, resultsFile);
}

runIfMain(import.meta.url, main);
