// TEMPORARY: replaced by helper/props's module on merge.
export type FieldRead =
  | { readonly kind: 'value'; readonly value: string }
  | { readonly kind: 'absent' }
  | { readonly kind: 'ambiguous'; readonly reason: string };
export function readFormField(body: string, field: string): FieldRead {
  const all = new URLSearchParams(body.startsWith('?') ? `?${body}` : body).getAll(field);
  if (all.length === 0) return { kind: 'absent' };
  if (all.length > 1) return { kind: 'ambiguous', reason: 'repeated' };
  return { kind: 'value', value: all[0] as string };
}
