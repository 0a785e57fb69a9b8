/**
 * Launchers for the real test apps in test/apps/: a Django app (signed-cookie sessions), a PHP app (native
 * file sessions under `php -S`) and a Flask + Flask-Login app (signed cookie session + remember-me). Each runs
 * as its own process, in its own process group, on a free loopback port.
 *
 * Python apps always run with Debian's /usr/bin/python3: the `python3` on PATH may be a pyenv shim that does
 * not see Debian's python3-django / python3-flask / python3-flask-login.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './ports.js';
import type { RunningApp } from './running-app.js';
import { waitUntil } from './wait.js';

export interface StartOptions {
  /** How long to wait for the app to answer HTTP before giving up (ms). */
  readyTimeoutMs?: number;
  /** Extra environment for the app process. */
  env?: NodeJS.ProcessEnv;
}

export const PYTHON = '/usr/bin/python3';
export const PHP = 'php';

export const APPS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'apps');
export const HOST = '127.0.0.1';
const DEFAULT_READY_TIMEOUT_MS = 20_000;
const OUTPUT_LIMIT = 16_384;

const availability = new Map<string, boolean>();

export function probe(key: string, cmd: string, args: string[]): boolean {
  let ok = availability.get(key);
  if (ok === undefined) {
    const r = spawnSync(cmd, args, { stdio: 'ignore', timeout: 15_000, env: cleanEnv() });
    ok = r.status === 0;
    availability.set(key, ok);
  }
  return ok;
}

/** Whether Debian's python3-django is installed (for `describe.skipIf(!haveDjango())`). */
export function haveDjango(): boolean {
  return probe('django', PYTHON, ['-c', 'import django, django.contrib.auth, django.contrib.sessions']);
}

/** Whether php-cli with the session extension is installed. */
export function havePhp(): boolean {
  return probe('php', PHP, ['-r', 'exit(function_exists("session_start") ? 0 : 1);']);
}

/** Whether Debian's python3-flask and python3-flask-login are installed. */
export function haveFlask(): boolean {
  return probe('flask', PYTHON, ['-c', 'import flask, flask_login']);
}

/** Django app: cookie `sessionid` (django.contrib.sessions.backends.signed_cookies). */
export async function startDjangoApp(opts: StartOptions = {}): Promise<RunningApp> {
  const port = await freePort();
  return launch({
    name: 'django',
    cmd: PYTHON,
    args: [path.join(APPS_DIR, 'django', 'app.py'), String(port), HOST],
    port,
    readyPath: '/login',
    opts,
  });
}

/** What differs between the PHP apps under `php -S`: the rest (file sessions, no GC, errors to stderr) is one. */
export interface PhpServerSpec {
  readonly name: string;
  /** The app's folder under test/apps/. */
  readonly app: string;
  /** The router script in it, which sees every request. */
  readonly router: string;
  readonly readyPath: string;
  /** The built-in server serves one request at a time unless it forks workers. */
  readonly workers: number;
  /** Where PHP saves its sessions (a fresh temporary directory when unset, removed on stop). */
  readonly sessionDir?: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly cleanup?: () => void;
}

/** A PHP app under the built-in server on a free loopback port, with native file sessions. */
export async function launchPhpServer(spec: PhpServerSpec, opts: StartOptions = {}): Promise<RunningApp> {
  const port = await freePort();
  const ownDir =
    spec.sessionDir === undefined ? mkdtempSync(path.join(tmpdir(), `sessiongate-${spec.name}-`)) : undefined;
  const dir = path.join(APPS_DIR, spec.app);
  return launch({
    name: spec.name,
    cmd: PHP,
    args: [
      '-d',
      `session.save_path=${spec.sessionDir ?? ownDir}`,
      '-d',
      'session.gc_probability=0',
      '-d',
      'display_errors=stderr',
      '-S',
      `${HOST}:${port}`,
      '-t',
      dir,
      path.join(dir, spec.router),
    ],
    port,
    readyPath: spec.readyPath,
    env: { ...spec.env, ...(spec.workers > 1 ? { PHP_CLI_SERVER_WORKERS: String(spec.workers) } : {}) },
    opts,
    cleanup: () => {
      if (ownDir !== undefined) rmSync(ownDir, { recursive: true, force: true });
      spec.cleanup?.();
    },
  });
}

/** PHP app: cookie `PHPSESSID` (native file sessions, saved in a temporary directory removed on stop). */
export function startPhpApp(opts: StartOptions & { workers?: number } = {}): Promise<RunningApp> {
  return launchPhpServer(
    { name: 'php', app: 'php', router: 'router.php', readyPath: '/login.php', workers: opts.workers ?? 4 },
    opts,
  );
}

/** Flask app: cookies `session` (Flask signed cookie) and `remember_token` (Flask-Login remember-me). */
export async function startFlaskApp(opts: StartOptions = {}): Promise<RunningApp> {
  const port = await freePort();
  return launch({
    name: 'flask',
    cmd: PYTHON,
    args: [path.join(APPS_DIR, 'flask', 'app.py'), String(port), HOST],
    port,
    readyPath: '/login',
    opts,
  });
}

/** The parent's environment without variables that would point Debian's python elsewhere. */
function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of ['PYTHONPATH', 'PYTHONHOME', 'PYTHONSTARTUP', 'DJANGO_SETTINGS_MODULE', 'FLASK_APP']) {
    delete env[k];
  }
  return { ...env, PYTHONDONTWRITEBYTECODE: '1', PYTHONUNBUFFERED: '1', ...extra };
}

/** `sh -c WATCHDOG name cmd args...`: runs cmd, and kills the process group once its stdin reaches EOF. */
const WATCHDOG = 'exec 3<&0 </dev/null; "$@" 3<&- & app=$!; (read _ <&3; kill -9 0) & wait "$app"';

/** Process groups still running, killed if the test process exits without stopping them. */
const live = new Set<number>();
let exitHookInstalled = false;
function trackGroup(pid: number): void {
  live.add(pid);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const p of live) killGroup(p, 'SIGKILL');
    });
  }
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

export interface LaunchSpec {
  name: string;
  cmd: string;
  args: string[];
  port: number;
  readyPath: string;
  env?: NodeJS.ProcessEnv;
  opts: StartOptions;
  cleanup?: () => void;
}

export async function launch(spec: LaunchSpec): Promise<RunningApp> {
  const url = `http://${HOST}:${spec.port}`;
  const timeoutMs = spec.opts.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS;
  // The app runs under a small sh in its own process group (detached), so close() can kill the app and any
  // workers it forked in one go. The sh also keeps a watchdog on a pipe from this process: if this process
  // dies without calling close() (vitest kills its workers with a signal, so no 'exit' handler runs), the pipe
  // closes and the watchdog kills the whole group, leaving no orphaned app behind.
  const child = spawn('/bin/sh', ['-c', WATCHDOG, spec.name, spec.cmd, ...spec.args], {
    cwd: APPS_DIR,
    env: cleanEnv({ ...spec.env, ...spec.opts.env }),
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true,
  });
  child.stdin?.on('error', () => {}); // never written; only its closing matters

  let output = '';
  const keep = (chunk: Buffer): void => {
    output += chunk.toString('utf8');
    if (output.length > OUTPUT_LIMIT) output = output.slice(-OUTPUT_LIMIT);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);

  let exitInfo: string | undefined;
  let spawnError: Error | undefined;
  const exited = new Promise<void>((resolve) => {
    child.once('error', (err) => {
      spawnError = err;
      exitInfo ??= `failed to start: ${err.message}`;
      resolve();
    });
    child.once('exit', (code, signal) => {
      exitInfo ??= signal ? `killed by ${signal}` : `exited with code ${code}`;
      resolve();
    });
  });
  if (child.pid !== undefined) trackGroup(child.pid);

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopped ??= (async () => {
      const pid = child.pid;
      if (pid !== undefined && exitInfo === undefined) {
        killGroup(pid, 'SIGTERM');
        const timer = setTimeout(() => killGroup(pid, 'SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }
      // Workers forked by the app (php -S) share its group; make sure none outlive it.
      if (pid !== undefined) {
        killGroup(pid, 'SIGKILL');
        live.delete(pid);
      }
      spec.cleanup?.();
    })());

  const describeFailure = (why: string): Error =>
    new Error(
      `${spec.name} app (${spec.cmd} ${spec.args.join(' ')}) ${why}\n--- its output ---\n${output || '(none)'}`,
      spawnError ? { cause: spawnError } : undefined,
    );

  const answers = async (): Promise<boolean> => {
    try {
      const res = await fetch(url + spec.readyPath, {
        redirect: 'manual',
        signal: AbortSignal.timeout(1_000),
      });
      await res.arrayBuffer();
      return true;
    } catch {
      return false;
    }
  };
  try {
    await waitUntil(
      `${spec.name} app to answer HTTP on ${url}`,
      async () => exitInfo !== undefined || (await answers()),
      timeoutMs,
    );
  } catch {
    await stop();
    throw describeFailure(`did not answer HTTP on ${url} within ${timeoutMs} ms`);
  }
  if (exitInfo !== undefined) {
    await stop();
    throw describeFailure(`${exitInfo} before answering HTTP on ${url}`);
  }
  return { url, port: spec.port, close: stop };
}
