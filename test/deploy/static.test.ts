/** Static checks of the Dockerfile (image.test.ts builds and runs the image; helm.test.ts renders the chart). */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '../..');

describe('the Dockerfile', () => {
  // image.test.ts builds and runs it (buildah, podman); these need no container engine.
  const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');
  const froms = [...dockerfile.matchAll(/^FROM (\S+)/gm)].map((m) => m[1] as string);

  it('runs the CLI as a numeric non-root user', () => {
    const user = dockerfile.match(/^USER (\d+):(\d+)$/m);
    expect(user, 'USER uid:gid, by number').not.toBeNull();
    expect(Number(user?.[1])).toBeGreaterThan(0);
    expect(dockerfile).toContain('ENTRYPOINT ["node", "/app/dist/src/cli.js"]');
    expect(existsSync(join(root, 'src/cli.ts'))).toBe(true);
  });

  it('builds every stage on one exact Node release that package.json accepts', () => {
    expect(froms.length).toBeGreaterThan(1);
    expect(new Set(froms).size).toBe(1);
    const version = froms[0]?.match(/^docker\.io\/library\/node:(\d+)\.(\d+)\.(\d+)-bookworm-slim$/);
    expect(version, froms[0]).not.toBeNull();
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { engines: { node: string } };
    const min = pkg.engines.node.match(/^>=(\d+)\.(\d+)\.(\d+)$/);
    const [a, b] = [version, min].map((m) => (m ?? []).slice(1, 4).map(Number));
    expect(a?.[0]).toBe(b?.[0]);
    expect((a?.[1] ?? 0) * 1e6 + (a?.[2] ?? 0)).toBeGreaterThanOrEqual((b?.[1] ?? 0) * 1e6 + (b?.[2] ?? 0));
  });

  it('copies only paths that exist', () => {
    const sources = [...dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) =>
      (m[1] as string).split(/\s+/),
    );
    expect(sources).toContain('src');
    for (const s of sources) expect(existsSync(join(root, s)), s).toBe(true);
  });

  it('compiles src/ alone and sends neither bench/ nor test/ to the build', () => {
    expect(dockerfile).toContain('tsc -p tsconfig.build.json');
    const build = JSON.parse(readFileSync(join(root, 'tsconfig.build.json'), 'utf8')) as {
      include: string[];
    };
    expect(build.include).toEqual(['src/**/*.ts']);
    expect(dockerfile).not.toMatch(/^COPY .*\b(bench|test)\b/m);
    // An allow-list: everything is excluded, then only what the build copies is let back in.
    const ignore = readFileSync(join(root, '.dockerignore'), 'utf8')
      .split('\n')
      .filter((l) => l && !l.startsWith('#'));
    expect(ignore[0]).toBe('*');
    expect(ignore.filter((l) => /bench|test/.test(l))).toEqual([]);
  });

  it('checks health on the admin listener', () => {
    expect(dockerfile).toContain('127.0.0.1:9090/healthz');
  });
});
