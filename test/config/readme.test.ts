import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { keyPaths } from '../../src/config/keys.js';
import { configSchema } from '../../src/config/schema.js';

describe('the README', () => {
  const readme = readFileSync(join(import.meta.dirname, '../../README.md'), 'utf8');

  it('documents every configuration key', () => {
    // Value options of token sources are documented once, in their own table.
    const valueOptions = /\.(from|split|field|capture|chunked)$|^tokens\[\]$/;
    // A list of plain values (`reject.clearCookies[]`) is documented under its own key.
    const all = [...new Set(keyPaths(configSchema).map((p) => p.replace(/(\[\])+$/, '')))];
    const leaves = all.filter(
      (p) => !all.some((q) => q !== p && (q.startsWith(`${p}.`) || q.startsWith(`${p}[].`))),
    );
    // refresh and logout share login's `success` rule, documented once.
    const documented = (p: string) =>
      readme.includes(`\`${p.replace(/^(refresh|logout)\[\]\.success\./, 'login[].success.')}\``);
    const missing = leaves.filter((p) => !valueOptions.test(p) && !documented(p));
    expect(missing).toEqual([]);
  });

  it('names in its quick start only npm scripts that exist, and npm test does what its comment says', () => {
    const scripts = (
      JSON.parse(readFileSync(join(import.meta.dirname, '../../package.json'), 'utf8')) as {
        scripts: Record<string, string>;
      }
    ).scripts;
    const quickStart = readme.slice(readme.indexOf('## Quick start'));
    const open = quickStart.indexOf('```sh');
    const block = quickStart.slice(open, quickStart.indexOf('```', open + 5));
    const named = [...block.matchAll(/^npm (?:run )?([a-z:-]+)/gm)].map((m) => m[1] as string);
    expect(named).toContain('test');
    for (const script of named.filter((n) => n !== 'ci')) expect(Object.keys(scripts)).toContain(script);
    // "build, lint, format check, and the whole test suite"
    expect(scripts.test?.split(' && ')).toEqual(
      expect.arrayContaining(['npm run build', 'npm run lint', 'vitest run']),
    );
    expect(scripts.lint).toContain('prettier --check');
  });
});
