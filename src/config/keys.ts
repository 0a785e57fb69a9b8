/**
 * The keys of a zod schema, read from its structure: the one walker behind "did you mean" (load.ts)
 * and the README check (test/config/readme.test.ts).
 */
import { z } from 'zod';

/** The forms a value may take: defaults, optionals and transforms looked through, unions spread out. */
function formsOf(schema: z.ZodTypeAny): z.ZodTypeAny[] {
  let s = schema;
  for (;;) {
    if (s instanceof z.ZodDefault || s instanceof z.ZodOptional || s instanceof z.ZodNullable)
      s = s._def.innerType as z.ZodTypeAny;
    else if (s instanceof z.ZodEffects) s = s._def.schema as z.ZodTypeAny;
    else if (s instanceof z.ZodPipeline) s = s._def.in as z.ZodTypeAny;
    else break;
  }
  return s instanceof z.ZodUnion ? (s.options as z.ZodTypeAny[]).flatMap(formsOf) : [s];
}

function shapeOf(s: z.ZodTypeAny): Record<string, z.ZodTypeAny> | undefined {
  return s instanceof z.ZodObject ? (s.shape as Record<string, z.ZodTypeAny>) : undefined;
}

/** Every key path of a schema: `sessions.limit`, `login[]`, `login[].match`, `store.url`, ... */
export function keyPaths(schema: z.ZodTypeAny): string[] {
  const out = new Set<string>();
  const walk = (s: z.ZodTypeAny, prefix: string): void => {
    for (const form of formsOf(s)) {
      const shape = shapeOf(form);
      if (shape !== undefined) {
        for (const [k, v] of Object.entries(shape)) {
          const path = prefix ? `${prefix}.${k}` : k;
          out.add(path);
          walk(v, path);
        }
      } else if (form instanceof z.ZodArray) {
        out.add(`${prefix}[]`);
        walk(form.element as z.ZodTypeAny, `${prefix}[]`);
      }
    }
  };
  walk(schema, '');
  return [...out];
}

/**
 * The keys allowed in the object at `path` (a zod issue path: keys and array indices), in schema
 * order; where a union offers several objects there, the keys of all of them.
 */
export function keysAt(schema: z.ZodTypeAny, path: readonly (string | number)[]): string[] {
  let nodes = [schema];
  for (const p of path) {
    nodes = nodes.flatMap(formsOf).flatMap((form): z.ZodTypeAny[] => {
      if (typeof p === 'number') return form instanceof z.ZodArray ? [form.element as z.ZodTypeAny] : [];
      const shape = shapeOf(form);
      // Own keys only: `__proto__` or `constructor` in a config is an unknown key, not a way in.
      return shape !== undefined && Object.hasOwn(shape, p) ? [shape[p] as z.ZodTypeAny] : [];
    });
  }
  const keys = new Set<string>();
  for (const form of nodes.flatMap(formsOf)) for (const k of Object.keys(shapeOf(form) ?? {})) keys.add(k);
  return [...keys];
}
