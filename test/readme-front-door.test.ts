/**
 * The README's front door, run as written: the Quick start's commands are read from README.md and run
 * as real processes (`npm start`, then talked to the way the README says: two browsers sign in as the
 * same user with its password and the first is signed out; the admin listener answers with its token;
 * Ctrl-C stops it), and so is the "Running it for real" block (the secret exported, `npx sessiongate
 * check`, `npx sessiongate`), with the README's example errors of a bad configuration.
 *
 * Only ports and the config path are changed (SESSIONGATE_CONFIG, DEMO_APP_PORT, the path in the
 * block), so a busy 8080 does not fail the run. `npm ci` and `npm test` are not run from here: the first
 * would replace the node_modules this run uses, the second is this run.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { freePort } from './support/ports.js';
import { get, NAVIGATE } from './support/gateway.js';
import { CookieJar } from './support/jar.js';
import { waitUntil } from './support/wait.js';

const root = join(import.meta.dirname, '..');
const readme = readFileSync(join(root, 'README.md'), 'utf8');
const dir = mkdtempSync(join(tmpdir(), 'sg-front-door-'));
/**
 * npx's own cache for this file, as on a fresh machine: npx installs the checkout (a link) into the
 * cache under a hash of its path, and an install cut short there (a run killed, two at once) left that
 * entry broken for every later run at the same path (npx exits 254).
 */
const npxCache = join(dir, 'npm-cache');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The text of a `## ` section, up to the next one. */
function section(title: string): string {
  const start = readme.indexOf(`\n## ${title}\n`);
  if (start < 0) throw new Error(`README has no "## ${title}" section`);
  const end = readme.indexOf('\n## ', start + 1);
  return readme.slice(start, end < 0 ? undefined : end);
}

/** The commands of each ```sh block, trailing `# comments` and blank lines dropped. */
function shellBlocks(text: string): string[][] {
  return [...text.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) =>
    (m[1] as string)
      .split('\n')
      .map((line) => line.replace(/\s+#\s.*$/, '').trim())
      .filter((line) => line !== ''),
  );
}

/** The first capture of `pattern` in `text` (whitespace collapsed), or a failure naming what is missing. */
function find(text: string, pattern: RegExp, what: string): string {
  const m = pattern.exec(text.replace(/\s+/g, ' '));
  if (!m?.[1]) throw new Error(`the README's Quick start does not say ${what} (${pattern})`);
  return m[1];
}

const quickStart = section('Quick start');
const [firstSteps = [], forReal = []] = shellBlocks(quickStart);
const CONFIG_PATH = '/etc/sessiongate.yaml';

/** The commands the first block may hold, and why the two that are not run here are not. */
const NOT_RUN_HERE: Record<string, string> = {
  'npm ci': 'it would replace the node_modules of this run; `npm start` below needs what it builds',
  'npm test': 'this test is part of it',
};

const children: ChildProcess[] = [];
afterEach(async () => {
  for (const child of children.splice(0)) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    const exited = once(child, 'exit');
    process.kill(-(child.pid as number), 'SIGKILL');
    await exited;
  }
});

/**
 * Starts a command in a process group of its own (so Ctrl-C can be sent to all of it, as a terminal
 * does), with only PATH and HOME from this environment; stdout and stderr collected. npx may not fetch
 * a package from the registry: `sessiongate` must be this checkout's own bin.
 */
function start(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
): { child: ChildProcess; output: () => string; exited: Promise<[number | null, string | null]> } {
  const child = spawn(argv[0] as string, argv.slice(1), {
    cwd: root,
    detached: true,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      npm_config_yes: 'false',
      npm_config_cache: npxCache,
      ...env,
    },
  });
  children.push(child);
  const exited = once(child, 'exit') as Promise<[number | null, string | null]>;
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  return { child, output: () => output, exited };
}

/** config/demo.yaml moved to free ports (the README's 8080, 3000 and 9090 may be taken here). */
async function demoConfigOnFreePorts(): Promise<{
  file: string;
  gateway: number;
  app: number;
  admin: number;
}> {
  const [gateway, app, admin] = [await freePort(), await freePort(), await freePort()];
  const config = parse(readFileSync(join(root, 'config/demo.yaml'), 'utf8')) as {
    listen: string;
    upstream: string;
    admin: { listen: string };
  };
  config.listen = `127.0.0.1:${gateway}`;
  config.upstream = `http://127.0.0.1:${app}`;
  config.admin.listen = `127.0.0.1:${admin}`;
  const file = join(dir, `demo-${gateway}.yaml`);
  writeFileSync(file, stringify(config));
  return { file, gateway, app, admin };
}

/** A browser's top-level navigation from this jar (through `get`: fetch cannot send `navigate`). */
async function navigate(jar: CookieJar, url: string): Promise<Response> {
  const res = await get(url, { ...NAVIGATE, 'user-agent': jar.userAgent, cookie: jar.header() });
  jar.update(res);
  return res;
}

describe("the README's Quick start", () => {
  it('lists only commands this file runs or says why not', () => {
    const unaccounted = firstSteps.filter((c) => c !== 'npm start' && !(c in NOT_RUN_HERE));
    expect(firstSteps).toContain('npm start');
    expect(unaccounted).toEqual([]);
  });

  it('npm ci builds what npm start runs: the prepare script is the build', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    expect(pkg.scripts.prepare).toBe(pkg.scripts.build);
    expect(pkg.scripts.start).toBe('node dist/src/demo.js');
  });

  it('npm start: the first of two browsers signed in as one user is signed out; Ctrl-C stops it', async () => {
    const demo = parse(readFileSync(join(root, 'config/demo.yaml'), 'utf8')) as {
      listen: string;
      admin: { listen: string };
    };
    // What the README points at is where the demo listens, before the ports are moved.
    const [readmeUrl, readmePort] = [
      find(quickStart, /Open (http:\/\/127\.0\.0\.1:\d+)\//, 'where to open the demo'),
      find(quickStart, /Open http:\/\/127\.0\.0\.1:(\d+)\//, 'the port of the demo'),
    ];
    expect(`127.0.0.1:${readmePort}`).toBe(demo.listen);
    expect(readmeUrl).toBe(`http://${demo.listen}`);
    expect(find(quickStart, /admin listener is on ([\d.]+:\d+)/, 'the admin address')).toBe(
      demo.admin.listen,
    );
    const password = find(quickStart, /\(password `([^`]+)`\)/, 'the password');
    const adminToken = find(quickStart, /\(token `([^`]+)`\)/, 'the admin token');
    const reason = find(quickStart, /with the reason \(`([^`]+)`\)/, 'what the first browser is shown');

    const ports = await demoConfigOnFreePorts();
    const { output, child, exited } = start(['npm', 'start'], {
      SESSIONGATE_CONFIG: ports.file,
      DEMO_APP_PORT: String(ports.app),
    });
    const base = `http://127.0.0.1:${ports.gateway}`;
    await waitUntil('the demo banner', () => output().includes(`sessiongate: ${base}/`), 60_000);

    const signIn = async (jar: CookieJar) => {
      const page = await navigate(jar, `${base}/`);
      expect(await page.text()).toContain('action="/login"');
      const login = await jar.fetch(`${base}/login`, { form: { username: 'alice', password } });
      expect(login.status).toBe(302);
      expect(login.headers.get('location')).toBe('/account');
    };
    const account = async (jar: CookieJar) => {
      const res = await navigate(jar, `${base}/account`);
      return { status: res.status, location: res.headers.get('location'), text: await res.text() };
    };

    const [first, second] = [new CookieJar(), new CookieJar()];
    await signIn(first);
    expect(await account(first)).toMatchObject({
      status: 200,
      text: expect.stringContaining('Hello, alice'),
    });
    await signIn(second);

    const signedOut = await account(first);
    expect(signedOut).toMatchObject({ status: 302, location: `/?reason=${reason}` });
    expect(first.cookies.has('sid')).toBe(false);
    const shown = await navigate(first, `${base}${signedOut.location}`);
    expect(await shown.text()).toContain(`<strong>${reason}</strong>`);
    expect(await account(second)).toMatchObject({
      status: 200,
      text: expect.stringContaining('Hello, alice'),
    });

    const listed = await fetch(`http://127.0.0.1:${ports.admin}/admin/users/alice/sessions`, {
      headers: { authorization: `Bearer ${adminToken}` },
    });
    expect(listed.status).toBe(200);
    const { sessions } = (await listed.json()) as { sessions: { userAgent: string }[] };
    expect(sessions.map((s) => s.userAgent)).toEqual([second.userAgent]);

    process.kill(-(child.pid as number), 'SIGINT');
    // npm passes the signal on and, once the demo has exited, ends itself with it, as in a terminal.
    expect(await exited).toEqual([null, 'SIGINT']);
    await waitUntil('the demo to let go of its port', () =>
      fetch(`${base}/`).then(
        () => false,
        () => true,
      ),
    );
  });

  it('runs for real: the exported secret reaches check and the gateway, which Ctrl-C stops', async () => {
    expect(forReal.some((c) => c.includes(CONFIG_PATH))).toBe(true);
    const ports = await demoConfigOnFreePorts();
    // The block as one script, so its `export` reaches the commands after it; `set -e` stops at a failure.
    const script = ['set -e', ...forReal.map((c) => c.replaceAll(CONFIG_PATH, ports.file))].join('\n');
    const { output, child, exited } = start(['sh', '-c', script], {});
    await waitUntil(
      'the gateway to listen',
      () => output().includes('"msg":"sessiongate listening"'),
      60_000,
    );
    expect(output()).toContain(`sessiongate: ${ports.file}: configuration is valid`);
    expect((await fetch(`http://127.0.0.1:${ports.admin}/healthz`)).status).toBe(200);

    process.kill(-(child.pid as number), 'SIGINT');
    await exited;
    // The shell dies of the signal with the gateway; the gateway's own last line is its clean exit.
    expect(output()).toContain('"msg":"stopped"');
  });

  it('shows the errors a bad configuration gets, as check prints them, with exit status 2', async () => {
    const said = find(
      quickStart,
      /status 2 and lists every problem[^`]*(`[^`]+`, or `[^`]+`)/,
      'the examples',
    );
    const examples = [...said.matchAll(/`([^`]+)`/g)].map((m) => m[1] as string);
    expect(examples).toHaveLength(2);
    const check = forReal.find((c) => c.startsWith('npx sessiongate check'));
    expect(check).toBeDefined();
    const config = parse(readFileSync(join(root, 'config/demo.yaml'), 'utf8')) as {
      sessions: Record<string, unknown>;
    };
    // The two mistakes of the README's examples: a misspelt key and a value out of the enum.
    config.sessions = { ...config.sessions, onLimit: 'kick', limt: 1 };
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, stringify(config));
    const argv = (check as string).replaceAll(CONFIG_PATH, file).split(' ');
    const { output, exited } = start(argv, { SESSIONGATE_SECRET: 'a-secret-of-sixteen+' });
    expect(await exited).toEqual([2, null]);
    for (const example of examples) expect(output()).toContain(example);
  });
});
