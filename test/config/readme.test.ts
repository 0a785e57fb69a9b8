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

  it('shows the test command', () => {
    expect(readme).toContain('npm test');
  });
});
