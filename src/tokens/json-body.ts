// TEMPORARY: replaced by helper/props's module on merge.
import type { FieldRead } from './form.js';
export function parseJsonStrict(
  text: string,
):
  | { kind: 'ok'; value: unknown }
  | { kind: 'invalid'; reason: string }
  | { kind: 'ambiguous'; reason: string } {
  try {
    return { kind: 'ok', value: JSON.parse(text) as unknown };
  } catch (e) {
    return { kind: 'invalid', reason: (e as Error).message };
  }
}
export function readJsonField(value: unknown, path: string): FieldRead {
  let v = value;
  for (const k of path.split('.')) {
    if (v === null || typeof v !== 'object') return { kind: 'absent' };
    v = (v as Record<string, unknown>)[k];
  }
  if (v === undefined) return { kind: 'absent' };
  if (typeof v === 'string') return { kind: 'value', value: v };
  if (typeof v === 'number') return { kind: 'value', value: String(v) };
  return { kind: 'ambiguous', reason: 'not a string' };
}
