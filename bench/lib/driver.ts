/**
 * The driver every bench shares; each bench file adds its question only: what a scenario starts and
 * measures, and how its section reads.
 *
 * A scenario bench (run.ts, instructions.ts) names its scenarios, runs the selected ones round after
 * round (interleaved, so a slow minute of the host hits all of them alike), folds each scenario's
 * rounds into one outcome and reports a section; every bench then prints its section, writes it to
 * its results file and sets the exit code.
 */
import { pathToFileURL } from 'node:url';
import type { BenchName } from './paths.js';
import { oneLine, recordResults } from './report.js';

/** How one scenario ended: measured (with the bench's own figures), skipped with a reason, or failed. */
export type Outcome<Ok extends object> =
  ({ kind: 'ok' } & Ok) | { kind: 'skipped'; reason: string } | { kind: 'failed'; reason: string };

export interface ScenarioBase {
  readonly name: string;
  /** One line for the results: what is measured. */
  readonly what: string;
  readonly isGateway: boolean;
}

/** A scenario and its outcome over all rounds: a row of the section. */
export interface Row<S extends ScenarioBase, Ok extends object> {
  scenario: S;
  outcome: Outcome<Ok>;
}

/** The scenarios `--only` names (all without it); an unknown name is an error that lists the known ones. */
export function selectScenarios<S extends ScenarioBase>(
  all: readonly S[],
  only: Set<string> | undefined,
): S[] {
  const unknown = [...(only ?? [])].filter((n) => !all.some((s) => s.name === n));
  if (unknown.length > 0)
    throw new Error(`unknown scenario(s) ${unknown.join(', ')}; known: ${all.map((s) => s.name).join(', ')}`);
  return all.filter((s) => !only || only.has(s.name));
}

/** `--only a,b` as a set of names. */
export function onlyFlag(value: string | undefined): Set<string> | undefined {
  return value ? new Set(value.split(',').map((s) => s.trim())) : undefined;
}

/**
 * One scenario once: prints its heading, runs it (a throw is a failure, with its message), then
 * prints the outcome; a measured one goes to `onOk`, which prints it (and may add a note to it).
 */
export async function attempt<S extends ScenarioBase, Ok extends object>(
  scenario: S,
  run: () => Promise<Outcome<Ok>>,
  onOk: (outcome: { kind: 'ok' } & Ok) => void,
): Promise<Outcome<Ok>> {
  console.log(`\n> ${scenario.name}: ${scenario.what}`);
  let outcome: Outcome<Ok>;
  try {
    outcome = await run();
  } catch (err) {
    outcome = { kind: 'failed', reason: err instanceof Error ? err.message : String(err) };
  }
  if (outcome.kind === 'ok') onOk(outcome);
  else if (outcome.kind === 'skipped') console.log(`  SKIPPED: ${oneLine(outcome.reason)}`);
  else console.log(`  FAILED: ${outcome.reason}`);
  return outcome;
}

/**
 * Runs every selected scenario `rounds` times, interleaved round by round, and folds each one's rounds
 * with `combine`; returns the rows in the order of `selected`.
 */
export async function runRounds<S extends ScenarioBase, Ok extends object>(
  selected: readonly S[],
  rounds: number,
  runOnce: (scenario: S, round: number) => Promise<Outcome<Ok>>,
  combine: (outcomes: readonly Outcome<Ok>[]) => Outcome<Ok>,
): Promise<Row<S, Ok>[]> {
  const outcomes = new Map<S, Outcome<Ok>[]>(selected.map((s) => [s, []]));
  for (let round = 1; round <= rounds; round++) {
    if (rounds > 1) console.log(`\n=== round ${round} of ${rounds}`);
    for (const scenario of selected) {
      const previous = outcomes.get(scenario) ?? [];
      // A scenario that could not run (no gateway, no redis-server) is not retried every round.
      const skip = previous.find((o) => o.kind === 'skipped');
      previous.push(skip ?? (await runOnce(scenario, round)));
    }
  }
  return selected.map((scenario) => ({ scenario, outcome: combine(outcomes.get(scenario) ?? []) }));
}

/**
 * The rounds of one scenario as one outcome: any failure wins; else the rounds that were measured,
 * folded by `merge`; else the skip.
 */
export function combineRounds<Ok extends object>(
  outcomes: readonly Outcome<Ok>[],
  merge: (ok: readonly ({ kind: 'ok' } & Ok)[]) => { kind: 'ok' } & Ok,
): Outcome<Ok> {
  const failed = outcomes.find((o) => o.kind === 'failed');
  if (failed) return failed;
  const ok = outcomes.flatMap((o) => (o.kind === 'ok' ? [o] : []));
  if (ok.length === 0) return outcomes[0] ?? { kind: 'skipped', reason: 'not run' };
  return merge(ok);
}

/** A section's closing lines: every skip and failure with its reason, and `okNote`'s lines. */
export function notes<S extends ScenarioBase, Ok extends object>(
  rows: readonly Row<S, Ok>[],
  okNote: (outcome: { kind: 'ok' } & Ok) => string | undefined = () => undefined,
): string[] {
  const lines: string[] = [];
  for (const { scenario, outcome } of rows) {
    if (outcome.kind === 'skipped') lines.push(`- ${scenario.name} skipped: ${oneLine(outcome.reason)}`);
    if (outcome.kind === 'failed') lines.push(`- ${scenario.name} FAILED: ${oneLine(outcome.reason)}`);
    const note = outcome.kind === 'ok' ? okNote(outcome) : undefined;
    if (note) lines.push(`- ${scenario.name}: ${note}`);
  }
  return lines;
}

/** The ratios part of a section: the table under its one-line introduction, or why there is none. */
export function ratiosPart(intro: string, ratios: string | undefined): string[] {
  return ratios ? [intro, '', ratios, ''] : ['No gateway scenario ran, so no ratios.', ''];
}

/** Prints the section and, unless `--no-results`, writes it to the results file in place of the last run's. */
export async function publish(
  bench: BenchName,
  section: string,
  resultsFile: string | undefined,
): Promise<void> {
  console.log(`\n${section}`);
  if (!resultsFile) return;
  await recordResults(resultsFile, bench, section);
  console.log(
    `\nwritten to ${resultsFile} (replacing the bench/${bench}.ts section of the run before, if any)`,
  );
}

/** Runs `main` when `moduleUrl` is the script node was started with; an error is printed, exit code 1. */
export function runIfMain(moduleUrl: string, main: () => Promise<void>): void {
  if (!process.argv[1] || moduleUrl !== pathToFileURL(process.argv[1]).href) return;
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    process.exitCode = 1;
  });
}
