/**
 * What every bench shares around its question: scenario selection (`--only`), printing and recording
 * its section, the entry point.
 */
import { pathToFileURL } from 'node:url';
import type { BenchName } from './paths.js';
import { recordResults } from './report.js';

/** The scenarios `--only` names (all without it); an unknown name is an error that lists the known ones. */
export function selectScenarios<S extends { readonly name: string }>(
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
 * Prints the section and, unless `--no-results`, writes it to the results file in place of the last
 * run's of the same bench (and `variant`: hot.ts keeps one section per meter and schedule).
 */
export async function publish(
  bench: BenchName,
  section: string,
  resultsFile: string | undefined,
  variant?: string,
): Promise<void> {
  console.log(`\n${section}`);
  if (!resultsFile) return;
  await recordResults(resultsFile, bench, section, variant);
  console.log(`\nwritten to ${resultsFile} (replacing the section of the run before, if any)`);
}

/**
 * Runs `main` when `moduleUrl` is the script node was started with. A bad flag is a usage error (exit
 * code 2, one line, no stack); any other error is printed with its stack, exit code 1.
 */
export function runIfMain(moduleUrl: string, main: () => Promise<void>): void {
  if (!process.argv[1] || moduleUrl !== pathToFileURL(process.argv[1]).href) return;
  main().catch((err: unknown) => {
    const code = (err as { code?: unknown } | undefined)?.code;
    if (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS')) {
      console.error(`${(err as Error).message}; the flags are in bench/README.md`);
      process.exitCode = 2;
      return;
    }
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    process.exitCode = 1;
  });
}
