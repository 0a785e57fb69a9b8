import { readFileSync } from 'node:fs';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import type { ZodIssue } from 'zod';
import { ConfigError, type ConfigProblem } from '../errors.js';
import { keysAt } from './keys.js';
import { configSchema, type Config } from './schema.js';

export interface LoadedConfig {
  readonly config: Config;
  /** Valid but risky combinations, for `sessiongate check` and the startup log. */
  readonly warnings: readonly ConfigProblem[];
}

const ENV_REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/**
 * Deeper than any real configuration (about six levels). substituteEnv, zod and the error messages
 * all recurse, so without a cap a deep value escapes as a RangeError instead of a ConfigError.
 */
export const MAX_CONFIG_DEPTH = 64;

/**
 * Replaces `${VAR}` and `${VAR:-default}` in every string; an unset variable without default is a problem.
 * Copies into null-prototype objects with own keys only, so a `__proto__` key (YAML and JSON.parse
 * make one) stays an ordinary key that the schema reports as unknown, not the copy's prototype.
 */
function substituteEnv(
  value: unknown,
  env: NodeJS.ProcessEnv,
  path: string,
  problems: ConfigProblem[],
  depth = 0,
): unknown {
  if (typeof value === 'string') {
    return value.replace(ENV_REF, (_m, name: string, fallback: string | undefined) => {
      const v = env[name];
      if (v !== undefined && v !== '') return v;
      if (fallback !== undefined) return fallback;
      problems.push({ path, message: `environment variable ${name} is not set` });
      return '';
    });
  }
  if (value === null || typeof value !== 'object') return value;
  if (depth >= MAX_CONFIG_DEPTH) {
    // Named by its top-level key: the full path would be as long as the nesting.
    const top = /^[^.[]*/.exec(path)?.[0] ?? '';
    throw new ConfigError([
      ...problems,
      { path: top, message: `nested deeper than ${MAX_CONFIG_DEPTH} levels` },
    ]);
  }
  if (Array.isArray(value))
    return value.map((v, i) => substituteEnv(v, env, `${path}[${i}]`, problems, depth + 1));
  const out: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (const [k, v] of Object.entries(value))
    out[k] = substituteEnv(v, env, path ? `${path}.${k}` : k, problems, depth + 1);
  return out;
}

/** A value for a message; JSON.stringify throws on BigInt (YAML can make one) and on cycles. */
function show(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return typeof value;
  }
}

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0] as number;
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = d[j] as number;
      d[j] = Math.min((d[j] as number) + 1, (d[j - 1] as number) + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return d[b.length] as number;
}

function formatPath(path: readonly (string | number)[]): string {
  return path.reduce<string>(
    (acc, p) => (typeof p === 'number' ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p),
    '',
  );
}

function describeIssue(issue: ZodIssue, input: unknown): ConfigProblem[] {
  const path = formatPath(issue.path);
  if (issue.code === 'unrecognized_keys') {
    const known = keysAt(configSchema, issue.path);
    return issue.keys.map((key) => {
      const best = known
        .map((k) => ({ k, d: editDistance(key.toLowerCase(), k.toLowerCase()) }))
        .sort((a, b) => a.d - b.d)[0];
      const hint =
        best && best.d <= Math.max(2, Math.floor(key.length / 3))
          ? `; did you mean "${best.k}"?`
          : known.length
            ? `; known keys: ${known.join(', ')}`
            : '';
      return { path: path ? `${path}.${key}` : key, message: `unknown key${hint}` };
    });
  }
  if (issue.code === 'invalid_union') {
    // Report the branch that got furthest instead of "Invalid input".
    const deepest = issue.unionErrors
      .flatMap((e) => e.issues)
      .filter((i) => i.code !== 'invalid_type' || i.path.length > issue.path.length)
      .sort((a, b) => b.path.length - a.path.length)[0];
    if (deepest) return describeIssue(deepest, input);
  }
  let got = input;
  for (const p of issue.path)
    got = got && typeof got === 'object' ? (got as Record<string | number, unknown>)[p] : undefined;
  const value = got === undefined ? '' : ` (got ${show(got)})`;
  const message =
    issue.code === 'invalid_type' && issue.received === 'undefined'
      ? 'required'
      : `${issue.message}${issue.code === 'custom' ? '' : value}`;
  return [{ path, message }];
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

function warningsOf(config: Config): ConfigProblem[] {
  const warnings: ConfigProblem[] = [];
  if (config.sessions.unknownTokens === 'pass') {
    config.login.forEach((rule, i) => {
      rule.token.forEach((t) => {
        if (t.kind === 'cookie') {
          warnings.push({
            path: `login[${i}].token`,
            message:
              'a cookie token with sessions.unknownTokens: pass: if the app rotates the cookie and its old values stay valid (signed-cookie stores such as Django signed_cookies, Rails, Flask), a superseded browser can keep working under a value the gateway never saw; set unknownTokens: reject',
          });
        }
      });
    });
  }
  if (
    config.admin.listen.host !== '127.0.0.1' &&
    config.admin.listen.host !== 'localhost' &&
    config.admin.listen.host !== '::1' &&
    !config.admin.token
  ) {
    warnings.push({
      path: 'admin.listen',
      message: 'the admin listener is not on localhost and admin.token is not set',
    });
  }
  return warnings;
}

/** Validates a configuration object; throws ConfigError listing every problem. */
export function parseConfig(raw: unknown, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const problems: ConfigProblem[] = [];
  const substituted = substituteEnv(raw ?? {}, env, '', problems);
  const result = configSchema.safeParse(substituted);
  if (!result.success)
    for (const issue of result.error.issues) problems.push(...describeIssue(issue, substituted));
  if (problems.length > 0 || !result.success) throw new ConfigError(dedupe(problems));
  return { config: deepFreeze(result.data), warnings: warningsOf(result.data) };
}

function dedupe(problems: ConfigProblem[]): ConfigProblem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const key = `${p.path}\u0000${p.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** Reads a YAML (or JSON) configuration file. */
export function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([{ path: '', message: `cannot read ${file}: ${(err as Error).message}` }]);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text, { prettyErrors: true });
  } catch (err) {
    const msg = err instanceof YAMLParseError ? err.message : String(err);
    throw new ConfigError([{ path: '', message: `${file} is not valid YAML: ${msg}` }]);
  }
  if (raw !== null && (typeof raw !== 'object' || Array.isArray(raw))) {
    throw new ConfigError([
      {
        path: '',
        message: `${file} must hold a mapping of keys, got ${Array.isArray(raw) ? 'a list' : typeof raw}`,
      },
    ]);
  }
  return parseConfig(raw, env);
}
