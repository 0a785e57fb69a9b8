/**
 * Launcher for test/apps/php-front/: a front-controller PHP app (one index.php serves every path, dispatching
 * on `?action=` and on the form field `op`) with native file sessions (PHPSESSID) and a rotating REMEMBERME
 * cookie, under `php -S` with index.php as the router. Each run keeps its sessions, remember-me store and
 * request counter in a temporary directory removed on stop.
 *
 *   const app = await startPhpFrontApp();
 *   await fetch(`${app.url}/index.php?action=login`, { method: 'POST', body: new URLSearchParams(...) });
 *   await fetch(`${app.url}/index.php?action=_count`); // requests seen so far, not counting these
 */
import { needTool } from './tools.js';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { launchPhpServer, type StartOptions } from './apps.js';
import type { RunningApp } from './running-app.js';

/** Where the app counts requests without being counted: a GET of it never touches the session. */
export const PHP_FRONT_COUNT_PATH = '/index.php?action=_count';

/**
 * Whether a suite that needs a system tool can run. Without the tool it prints one line naming the tool and
 * its Debian package and returns false (the suite skips), unless SESSIONGATE_REQUIRE_ALL=1 (as in CI), where
 * it throws, so the suite fails instead of silently proving nothing.
 */
/** Whether the tool is there (see test/support/tools.ts for the skip rule). */
export function toolAvailable(tool: string, debianPackage: string, have: boolean): boolean {
  return needTool(tool, debianPackage, have);
}

/** The front-controller app on a free loopback port (PHP_CLI_SERVER_WORKERS=4 unless `workers` says). */
export function startPhpFrontApp(opts: StartOptions & { workers?: number } = {}): Promise<RunningApp> {
  const state = mkdtempSync(path.join(tmpdir(), 'sessiongate-php-front-'));
  const sessionDir = path.join(state, 'sessions');
  mkdirSync(sessionDir);
  return launchPhpServer(
    {
      name: 'php-front',
      app: 'php-front',
      // As the router, index.php sees every request, static paths included.
      router: 'index.php',
      // The counter hook, so waiting for the app to come up adds nothing to its count.
      readyPath: PHP_FRONT_COUNT_PATH,
      workers: opts.workers ?? 4,
      sessionDir,
      env: { PHP_FRONT_STATE: state },
      cleanup: () => rmSync(state, { recursive: true, force: true }),
    },
    opts,
  );
}
