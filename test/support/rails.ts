/**
 * Launcher for the Rails test app in test/apps/rails/config.ru (Debian's ruby-rails 6.1): Rails' cookie session
 * store (cookie `_app_session`) with CSRF protection and a remember-me cookie (`remember_token`), served by
 * WEBrick through Debian's rackup, in its own process group on a free loopback port (see launch() in apps.ts).
 */
import { needTool } from './tools.js';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launch, probe, type StartOptions } from './apps.js';
import { freePort } from './ports.js';
import type { RunningApp } from './running-app.js';

/** Debian's interpreter and rackup: a ruby on PATH (rbenv, rvm) would not see Debian's ruby-rails. */
export const RUBY = '/usr/bin/ruby';
export const RACKUP = '/usr/bin/rackup';

const CONFIG_RU = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '..',
  'apps',
  'rails',
  'config.ru',
);
const HOST = '127.0.0.1';

/** Whether Debian's ruby-rails (with WEBrick, which Ruby 3 no longer bundles) is installed. */
export function haveRails(): boolean {
  return (
    existsSync(RACKUP) &&
    probe('rails', RUBY, ['-e', 'require "rails"; require "action_controller/railtie"; require "webrick"'])
  );
}

/**
 * For `describe.skipIf(skipWithout(...))`: true (skip) when the tool is missing, after printing one line naming
 * it and its Debian package; with SESSIONGATE_REQUIRE_ALL=1 (CI) a missing tool throws instead, failing the file.
 */
/** Whether the suite skips (see test/support/tools.ts): true when Rails is missing. */
export function skipWithout(available: boolean, tool: string, debianPackage: string): boolean {
  return !needTool(tool, debianPackage, available);
}

/** Rails app: cookies `_app_session` (encrypted cookie store) and `remember_token` (plain, permanent). */
export async function startRailsApp(opts: StartOptions = {}): Promise<RunningApp> {
  const port = await freePort();
  return launch({
    name: 'rails',
    cmd: RACKUP,
    // `-E none`: none of rackup's development middleware (Rack::Lint, its own exception page) in front of Rails.
    args: ['-E', 'none', '-s', 'webrick', '-o', HOST, '-p', String(port), CONFIG_RU],
    port,
    readyPath: '/login',
    env: { RAILS_ENV: 'production' },
    opts,
  });
}
