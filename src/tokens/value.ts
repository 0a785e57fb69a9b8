/**
 * The value options shared by request and login token sources (`split` + `field`, `capture`), compiled
 * once so that the login side and the request side turn the same credential into the same token.
 */
import type { ValueOptions } from '../config/sources.js';

export type { ValueOptions };

export type ValueTransform = (raw: string) => string | undefined;

const IDENTITY: ValueTransform = (raw) => (raw === '' ? undefined : raw);

export function compileValueTransform(options: ValueOptions): ValueTransform {
  const steps: ValueTransform[] = [];
  if (options.split !== undefined) {
    const sep = options.split;
    const field = options.field ?? 0;
    steps.push((raw) => {
      const parts = safeDecode(raw).split(sep);
      return parts.length > field ? parts[field] : undefined;
    });
  }
  if (options.capture !== undefined) {
    const re = new RegExp(options.capture);
    steps.push((raw) => re.exec(safeDecode(raw))?.[1]);
  }
  if (steps.length === 0) return IDENTITY;
  return (raw) => {
    let v: string | undefined = raw;
    for (const step of steps) {
      v = step(v);
      if (v === undefined || v === '') return undefined;
    }
    return v;
  };
}

function safeDecode(s: string): string {
  if (!s.includes('%')) return s;
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
