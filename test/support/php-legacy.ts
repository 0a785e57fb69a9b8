/**
 * Launcher for test/apps/php-legacy: a PHP app on native file sessions with PHP's default cookie (no
 * HttpOnly, Secure or SameSite) under `php -S`. `POST /login.php` signs in without
 * session_regenerate_id() (the pre-login PHPSESSID becomes the signed-in one, and no Set-Cookie is
 * sent); `POST /login-regenerate.php` signs in with it. Users alice/pw-alice and bob/pw-bob.
 */
import { launchPhpServer, type StartOptions } from './apps.js';
import type { RunningApp } from './running-app.js';

export function startPhpLegacyApp(opts: StartOptions = {}): Promise<RunningApp> {
  return launchPhpServer(
    { name: 'php-legacy', app: 'php-legacy', router: 'router.php', readyPath: '/login.php', workers: 2 },
    opts,
  );
}
