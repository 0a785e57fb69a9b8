/** Command-line flags shared by the benches. */

/** A positive number flag (`--name <value>`), `fallback` when absent; a bad value names the flag. */
export function positiveFlag(
  value: string | undefined,
  fallback: number,
  flag: string,
  { integer = false }: { integer?: boolean } = {},
): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  const ok = integer ? Number.isInteger(n) : Number.isFinite(n);
  if (!ok || n <= 0)
    throw new Error(`--${flag} expects a positive ${integer ? 'integer' : 'number'}, got ${value}`);
  return n;
}
