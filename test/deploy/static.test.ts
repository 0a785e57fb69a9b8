/** The Dockerfile and the Helm chart cannot be run here (no Docker engine); they are checked statically. */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseConfig } from '../../src/config/load.js';

const root = join(import.meta.dirname, '../..');
const chart = join(root, 'helm/sessiongate');

describe('the Helm chart', () => {
  const values = parse(readFileSync(join(chart, 'values.yaml'), 'utf8')) as Record<string, unknown>;

  it('carries a sessiongate configuration that validates', () => {
    const { config } = parseConfig(values.config, {
      SESSIONGATE_SECRET: 'x'.repeat(32),
      SESSIONGATE_ADMIN_TOKEN: 'y'.repeat(32),
    });
    expect(config.admin.listen.host).toBe('0.0.0.0');
    expect(config.admin.token).toBe('y'.repeat(32));
  });

  it('references only values that exist', () => {
    const templates = readdirSync(join(chart, 'templates')).map((f) =>
      readFileSync(join(chart, 'templates', f), 'utf8'),
    );
    const refs = new Set(
      templates.flatMap((t) => [...t.matchAll(/\.Values\.([A-Za-z0-9_.]+)/g)].map((m) => m[1] as string)),
    );
    expect(refs.size).toBeGreaterThan(5);
    for (const ref of refs) {
      let v: unknown = values;
      for (const k of ref.split('.')) v = (v as Record<string, unknown> | undefined)?.[k];
      expect(v, `.Values.${ref}`).toBeDefined();
    }
  });

  it('probes the admin listener and mounts the config where the container reads it', () => {
    const deployment = readFileSync(join(chart, 'templates/deployment.yaml'), 'utf8');
    expect(deployment).toContain('path: /readyz');
    expect(deployment).toContain('path: /healthz');
    expect(deployment).toContain('mountPath: /etc/sessiongate');
    expect(deployment).toContain('"/etc/sessiongate/config.yaml"');
  });
});

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
