/**
 * Launcher for test/apps/express-session/app.mjs: express with express-session (MemoryStore, cookie
 * `connect.sid`), run by node as a process of its own (launch() in apps.ts). Plain JavaScript, so the
 * suite compiles whether or not express-session is installed; it skips (one line) until it is.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { APPS_DIR, HOST, launch, type StartOptions } from './apps.js';
import { freePort } from './ports.js';
import type { RunningApp } from './running-app.js';

const APP = path.join(APPS_DIR, 'express-session', 'app.mjs');

/** Whether express-session resolves from the app's folder (a devDependency of the project). */
export function haveExpressSession(): boolean {
  try {
    createRequire(APP).resolve('express-session');
    return true;
  } catch {
    return false;
  }
}

export async function startExpressSessionApp(opts: StartOptions = {}): Promise<RunningApp> {
  const port = await freePort();
  return launch({
    name: 'express-session',
    cmd: process.execPath,
    args: [APP, String(port), HOST],
    port,
    readyPath: '/login',
    opts,
  });
}
