import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Paths are resolved from this module's compiled location (dist/bench/lib/paths.js), so the bench works
 * whatever the current directory is.
 */
const here = new URL('./', import.meta.url);

/** The repository root (dist/bench/lib/ -> ../../../). */
export const repoRoot: string = fileURLToPath(new URL('../../../', here));

/** A compiled helper under dist/bench/, e.g. `servers/upstream.js`. */
export function benchScript(relative: string): string {
  return fileURLToPath(new URL(`../${relative}`, here));
}

/** The gateway's CLI as the build leaves it. */
export const defaultGatewayCli: string = fileURLToPath(new URL('../../src/cli.js', here));

/** Where every bench appends its dated section. */
export const defaultResultsFile: string = fileURLToPath(
  new URL('bench/results.md', new URL('../../../', here)),
);

/** The `--gateway-cli`, `--results` and `--no-results` flags every bench takes, resolved. */
export function outputPaths(values: {
  'gateway-cli'?: string | undefined;
  results?: string | undefined;
  'no-results'?: boolean | undefined;
}): { gatewayCli: string; resultsFile: string | undefined } {
  return {
    gatewayCli: values['gateway-cli'] ? resolve(values['gateway-cli']) : defaultGatewayCli,
    resultsFile: values['no-results']
      ? undefined
      : values.results
        ? resolve(values.results)
        : defaultResultsFile,
  };
}
