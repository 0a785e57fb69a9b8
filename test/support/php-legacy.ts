/**
 * Launcher for test/apps/php-legacy: a PHP app on native file sessions with PHP's default cookie (no
 * HttpOnly, Secure or SameSite) under `php -S`. `POST /login.php` signs in without
 * session_regenerate_id() (the pre-login PHPSESSID becomes the signed-in one, and no Set-Cookie is
 * sent); `POST /login-regenerate.php` signs in with it. Users alice/pw-alice and bob/pw-bob.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { APPS_DIR, HOST, PHP, launch, type StartOptions } from './apps.js';
import { freePort } from './ports.js';
import type { RunningApp } from './running-app.js';

export { havePhp } from './apps.js';

export async function startPhpLegacyApp(opts: StartOptions = {}): Promise<RunningApp> {
  const port = await freePort();
  const saveDir = mkdtempSync(path.join(tmpdir(), 'sessiongate-php-legacy-'));
  const dir = path.join(APPS_DIR, 'php-legacy');
  return launch({
    name: 'php-legacy',
    cmd: PHP,
    args: [
      '-d',
      `session.save_path=${saveDir}`,
      '-d',
      'session.gc_probability=0',
      '-d',
      'display_errors=stderr',
      '-S',
      `${HOST}:${port}`,
      '-t',
      dir,
      path.join(dir, 'router.php'),
    ],
    port,
    readyPath: '/login.php',
    // The built-in server serves one request at a time unless it forks workers.
    env: { PHP_CLI_SERVER_WORKERS: '2' },
    opts,
    cleanup: () => rmSync(saveDir, { recursive: true, force: true }),
  });
}
