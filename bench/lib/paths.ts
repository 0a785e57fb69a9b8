import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Paths are resolved from this module's compiled location (bench/dist/bench/lib/paths.js: the bench
 * package compiles from the repository root, so the product modules it imports land beside it in
 * bench/dist/src/), so the bench works whatever the current directory is.
 */
const here = new URL('./', import.meta.url);

/** The repository root (bench/dist/bench/lib/ -> ../../../../). */
export const repoRoot: string = fileURLToPath(new URL('../../../../', here));

/** A compiled helper under bench/dist/bench/, e.g. `servers/upstream.js`. */
export function benchScript(relative: string): string {
  return fileURLToPath(new URL(`../${relative}`, here));
}

/** The gateway's CLI as the product's own build (`npm run build` at the root) leaves it. */
export const defaultGatewayCli: string = resolve(repoRoot, 'dist/src/cli.js');

/** The benches, each with its results file `bench/results/<bench>.md`. */
export type BenchName = 'hot' | 'micro' | 'revocation' | 'scale' | 'live-tabs' | 'mass-revocation' | 'soak';

/** Where a bench writes its latest run (the section of the run before is replaced; history is in git). */
export function defaultResultsFile(bench: BenchName): string {
  return resolve(repoRoot, 'bench/results', `${bench}.md`);
}

/** The `--gateway-cli`, `--results` and `--no-results` flags every bench takes, resolved. */
export function outputPaths(
  bench: BenchName,
  values: {
    'gateway-cli'?: string | undefined;
    results?: string | undefined;
    'no-results'?: boolean | undefined;
  },
): { gatewayCli: string; resultsFile: string | undefined } {
  return {
    gatewayCli: values['gateway-cli'] ? resolve(values['gateway-cli']) : defaultGatewayCli,
    resultsFile: values['no-results']
      ? undefined
      : values.results
        ? resolve(values.results)
        : defaultResultsFile(bench),
  };
}
