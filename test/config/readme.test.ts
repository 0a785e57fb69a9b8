import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { configSchema } from '../../src/config/schema.js';

/** Every key path of the schema: `sessions.limit`, `login[].match`, `store.url`, ... */
function keyPaths(schema: z.ZodTypeAny, prefix: string, out: Set<string>): void {
  let s: z.ZodTypeAny = schema;
  for (;;) {
    if (s instanceof z.ZodDefault || s instanceof z.ZodOptional) s = s._def.innerType as z.ZodTypeAny;
    else if (s instanceof z.ZodEffects) s = s._def.schema as z.ZodTypeAny;
    else break;
  }
  if (s instanceof z.ZodObject) {
    for (const [k, v] of Object.entries(s.shape as Record<string, z.ZodTypeAny>)) {
      const path = prefix ? `${prefix}.${k}` : k;
      out.add(path);
      keyPaths(v, path, out);
    }
  } else if (s instanceof z.ZodArray) {
    out.add(`${prefix}[]`);
    keyPaths(s.element as z.ZodTypeAny, `${prefix}[]`, out);
  } else if (s instanceof z.ZodUnion) {
    for (const o of s.options as z.ZodTypeAny[]) keyPaths(o, prefix, out);
  }
}

describe('the README', () => {
  const readme = readFileSync(join(import.meta.dirname, '../../README.md'), 'utf8');

  it('documents every configuration key', () => {
    const paths = new Set<string>();
    keyPaths(configSchema, '', paths);
    // Value options of token sources are documented once, in their own table.
    const valueOptions = /\.(from|split|field|capture|chunked)$|^tokens\[\]$/;
    const all = [...paths];
    const leaves = all.filter(
      (p) =>
        !p.endsWith('[]') && !all.some((q) => q !== p && (q.startsWith(`${p}.`) || q.startsWith(`${p}[`))),
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
