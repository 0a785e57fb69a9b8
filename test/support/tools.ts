/**
 * The one rule for suites that need a system tool (redis-server, Chromium, PHP, Django, Rails...): on a
 * machine without it the suite skips with one line naming the tool and the Debian package that brings
 * it; with SESSIONGATE_REQUIRE_ALL=1 (set by .ci/run) a missing tool is a failure instead, so CI
 * proves every suite.
 *
 *   describe.skipIf(!needTool('PHP', 'php-cli', havePhp()))('PHP sessions', () => { ... });
 */
const reported = new Set<string>();

export function requireAll(): boolean {
  return process.env.SESSIONGATE_REQUIRE_ALL === '1';
}

/** True when the tool is there; otherwise prints the skip line once (or throws under REQUIRE_ALL). */
export function needTool(tool: string, debianPackage: string, available: boolean): boolean {
  if (available) return true;
  const line = `${tool} is not installed (Debian package ${debianPackage})`;
  if (requireAll()) throw new Error(`${line}, and SESSIONGATE_REQUIRE_ALL=1 forbids skipping`);
  if (!reported.has(line)) {
    reported.add(line);
    console.warn(`skipping: ${line}`);
  }
  return false;
}
