/** The Dockerfile cannot be run here (no Docker engine); it is checked statically. The Helm chart: helm.test.ts. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '../..');

describe('the Dockerfile', () => {
  const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');

  it('runs the CLI as a non-root user', () => {
    expect(dockerfile).toMatch(/^USER node$/m);
    expect(dockerfile).toContain('ENTRYPOINT ["node", "dist/src/cli.js"]');
    expect(existsSync(join(root, 'src/cli.ts'))).toBe(true);
  });

  it('copies only paths that exist', () => {
    const sources = [...dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) =>
      (m[1] as string).split(/\s+/),
    );
    for (const s of sources) expect(existsSync(join(root, s)), s).toBe(true);
  });

  it('checks health on the admin listener', () => {
    expect(dockerfile).toContain('127.0.0.1:9090/healthz');
  });
});
