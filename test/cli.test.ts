/**
 * The shipped entry points as an operator runs them: `sessiongate` from SESSIONGATE_CONFIG, its logs
 * (JSON, or pretty for a terminal), and `npm start`'s demo (dist/src/demo.js with config/demo.yaml).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from './support/ports.js';
import { waitUntil } from './support/wait.js';

const root = join(import.meta.dirname, '..');
const cli = join(root, 'dist/src/cli.js');
const dir = mkdtempSync(join(tmpdir(), 'sg-cli-run-'));
const children: ChildProcess[] = [];

afterEach(async () => {
  for (const child of children.splice(0)) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    await exited;
  }
});

/** Starts `node <script>` and collects its stdout and stderr. */
function start(script: string, env: NodeJS.ProcessEnv): { child: ChildProcess; output: () => string } {
  const child = spawn(process.execPath, [script], { env: { PATH: process.env.PATH, ...env } });
  children.push(child);
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  return { child, output: () => output };
}

async function gatewayConfig(log: string): Promise<{ file: string; port: number }> {
  const port = await freePort();
  const admin = await freePort();
  const file = join(dir, `gateway-${port}.yaml`);
  writeFileSync(
    file,
    `listen: 127.0.0.1:${port}\nupstream: http://127.0.0.1:9\nsecret: a-secret-of-sixteen+\n` +
      `admin: { listen: "127.0.0.1:${admin}" }\nlog: ${log}\n` +
      `login:\n  - match: POST /api/login\n    token: json:accessToken\n    user: json:user.id\n`,
  );
  return { file, port };
}

describe('the built CLI', () => {
  it('is executable, so npx runs it from a cached install that npm did not chmod (a fresh clone at the same path)', () => {
    expect(readFileSync(cli, 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
    expect(statSync(cli).mode & 0o111).toBe(0o111);
  });
});

describe('sessiongate, run as a process', () => {
  it('takes its configuration from SESSIONGATE_CONFIG and logs JSON lines', async () => {
    const { file, port } = await gatewayConfig('{ level: info }');
    const { output } = start(cli, { SESSIONGATE_CONFIG: file });
    const line = await waitUntil('the listening log line', () =>
      output()
        .split('\n')
        .find((l) => l.includes('sessiongate listening')),
    );
    const entry = JSON.parse(line) as { level: string; msg: string; listen: { port: number } };
    expect(entry).toMatchObject({ level: 'info', msg: 'sessiongate listening', listen: { port } });
  });

  it('logs human-readable lines with log.pretty', async () => {
    const { file } = await gatewayConfig('{ level: info, pretty: true }');
    const { output } = start(cli, { SESSIONGATE_CONFIG: file });
    const line = await waitUntil('the listening log line', () =>
      output()
        .split('\n')
        .find((l) => l.includes('sessiongate listening')),
    );
    expect(line).toContain('INFO');
    expect(() => JSON.parse(line) as unknown).toThrow();
  });
});

describe('npm start (the demo)', () => {
  it('signs the first API session out when the same user logs in again', async () => {
    const [gatewayPort, appPort, adminPort] = [await freePort(), await freePort(), await freePort()];
    // config/demo.yaml itself, moved to free ports.
    const demoConfig = readFileSync(join(root, 'config/demo.yaml'), 'utf8')
      .replace('127.0.0.1:8080', `127.0.0.1:${gatewayPort}`)
      .replace('127.0.0.1:3000', `127.0.0.1:${appPort}`)
      .replace('127.0.0.1:9090', `127.0.0.1:${adminPort}`);
    for (const port of [gatewayPort, appPort, adminPort]) expect(demoConfig).toContain(`127.0.0.1:${port}`);
    const file = join(dir, 'demo.yaml');
    writeFileSync(file, demoConfig);
    const { output } = start(join(root, 'dist/src/demo.js'), {
      SESSIONGATE_CONFIG: file,
      DEMO_APP_PORT: String(appPort),
    });
    await waitUntil('the demo to start', () => output().includes('sessiongate:'));
    const base = `http://127.0.0.1:${gatewayPort}`;
    const login = async () => {
      const res = await fetch(`${base}/api/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: 'alice', password: 'demo' }),
      });
      expect(res.status).toBe(200);
      return ((await res.json()) as { accessToken: string }).accessToken;
    };
    const me = (token: string) => fetch(`${base}/api/me`, { headers: { authorization: `Bearer ${token}` } });

    const first = await login();
    expect((await me(first)).status).toBe(200);
    const second = await login();
    const refused = await me(first);
    expect(refused.status).toBe(401);
    expect(await refused.json()).toMatchObject({
      error: 'session_superseded',
      message: 'Another session has been started using your account. You will now be signed out.',
    });
    expect((await me(second)).status).toBe(200);
  });
});
