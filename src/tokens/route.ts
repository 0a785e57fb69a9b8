/**
 * Route patterns of login, refresh, logout and protect rules, compiled once at startup.
 * `METHOD[,METHOD] /path` with `:param` segments, `*` for one segment, a trailing `/**` for any rest,
 * and one `**` inside a pattern for any number of segments (Tomcat's FORM login at any depth of a
 * context: `/app/`, then `**`, then `/j_security_check`).
 *
 * Paths given to `match` are already normalised by the proxy (no dot segments, no repeated slashes),
 * together with their `folded` form: the lower-cased path when routes are case-insensitive (express,
 * IIS and many Java and PHP routers ignore case, so `POST /LOGIN` is the login), else the path itself.
 * Literal segments compare against the folded path; `:param` values come from the path as sent.
 *
 * A format suffix is the same resource (Rails routes `/login(.:format)`, `/projects.json`): the last
 * literal segment of a pattern also matches `segment.<anything>`, so `POST /login` catches
 * `POST /login.json` and `/projects/**` covers `/projects.atom`. Matching more is always safe for
 * rules and `protect`; `except` patterns are compiled without it (see compileProtect).
 */
export interface CompiledPath {
  readonly pattern: string;
  /**
   * Path parameters on a match (an empty object when there are none), undefined otherwise. `folded`:
   * the path as `foldPath` gives it, when the caller has it already (the proxy folds once per request).
   */
  match(path: string, folded?: string): Readonly<Record<string, string>> | undefined;
}

export interface CompiledRoute extends CompiledPath {
  /** `null`: any method. */
  readonly methods: ReadonlySet<string> | null;
  matches(method: string, path: string, folded?: string): Readonly<Record<string, string>> | undefined;
}

export interface PathOptions {
  /** Compare literal segments as written (the app routes case-sensitively). @default false */
  readonly caseSensitive?: boolean;
  /** The last literal segment also matches `segment.<suffix>`. @default true */
  readonly suffixes?: boolean;
}

const NO_PARAMS: Readonly<Record<string, string>> = Object.freeze({});

/** The form of a path that literal segments compare against. */
export function foldPath(path: string, caseSensitive: boolean): string {
  return caseSensitive ? path : path.toLowerCase();
}

export function compilePath(pattern: string, options: PathOptions = {}): CompiledPath {
  const caseSensitive = options.caseSensitive ?? false;
  const suffixes = options.suffixes ?? true;
  const rest = pattern.endsWith('/**');
  const body = foldPath(rest ? pattern.slice(0, -3) : pattern, caseSensitive);
  const segments = body.split('/').slice(1);
  if (rest && segments.length === 1 && segments[0] === '') {
    return { pattern, match: () => NO_PARAMS };
  }
  const last = segments.length - 1;
  if (segments.includes('**')) return compileDeepPath(pattern, segments, rest, caseSensitive, suffixes);
  const hasParams = segments.some((s) => s.startsWith(':') || s === '*');
  if (!rest && !hasParams) {
    // A literal path: string comparisons only (a trailing slash is the same route).
    const literal = body.length > 1 && body.endsWith('/') ? body.slice(0, -1) : body;
    const dotted = `${literal}.`;
    return {
      pattern,
      match: (path, f = foldPath(path, caseSensitive)) =>
        f === literal ||
        f === `${literal}/` ||
        (suffixes && literal !== '/' && f.startsWith(dotted) && !f.includes('/', dotted.length))
          ? NO_PARAMS
          : undefined,
    };
  }
  return {
    pattern,
    match(path, folded = foldPath(path, caseSensitive)) {
      const parts = folded.split('/').slice(1);
      if (!rest && parts.length === segments.length + 1 && parts[parts.length - 1] === '') parts.pop();
      if (rest ? parts.length < segments.length : parts.length !== segments.length) return undefined;
      let raw: string[] | undefined;
      let params: Record<string, string> | undefined;
      for (let i = 0; i < segments.length; i++) {
        const seg = segments[i] as string;
        const part = parts[i] as string;
        if (seg === '*') {
          if (part === '') return undefined;
        } else if (seg.startsWith(':')) {
          if (part === '') return undefined;
          raw ??= path.split('/').slice(1);
          params ??= {};
          params[seg.slice(1)] = safeDecode(raw[i] ?? part);
        } else if (seg !== part) {
          // `/projects/**` covers `/projects.json`; `/login` covers `/login.json`.
          const suffixed = suffixes && i === last && i === parts.length - 1 && part.startsWith(`${seg}.`);
          if (!suffixed) return undefined;
        }
      }
      return params ?? NO_PARAMS;
    },
  };
}

// A pattern with `**` inside it (Tomcat takes a FORM login at any path of its context that ends in
// `/j_security_check`): `**` there stands for any number of segments, none included. The schema allows
// one such `**`, so matching is at most quadratic in the path's segments.
function compileDeepPath(
  pattern: string,
  segments: readonly string[],
  rest: boolean,
  caseSensitive: boolean,
  suffixes: boolean,
): CompiledPath {
  const last = segments.length - 1;
  return {
    pattern,
    match(path, folded = foldPath(path, caseSensitive)) {
      const parts = folded.split('/').slice(1);
      if (parts.length > 1 && parts[parts.length - 1] === '') parts.pop();
      let raw: string[] | undefined;
      let params: Record<string, string> | undefined;
      const from = (si: number, pi: number): boolean => {
        if (si === segments.length) return rest || pi === parts.length;
        const seg = segments[si] as string;
        if (seg === '**') {
          for (let k = pi; k <= parts.length; k++) if (from(si + 1, k)) return true;
          return false;
        }
        const part = parts[pi];
        if (part === undefined) return false;
        if (seg === '*') return part !== '' && from(si + 1, pi + 1);
        if (seg.startsWith(':')) {
          if (part === '') return false;
          raw ??= path.split('/').slice(1);
          (params ??= {})[seg.slice(1)] = safeDecode(raw[pi] ?? part);
          return from(si + 1, pi + 1);
        }
        const same =
          seg === part || (suffixes && si === last && pi === parts.length - 1 && part.startsWith(`${seg}.`));
        return same && from(si + 1, pi + 1);
      };
      return from(0, 0) ? (params ?? NO_PARAMS) : undefined;
    },
  };
}

export function compileRoute(match: string, options: PathOptions = {}): CompiledRoute {
  const space = match.indexOf(' ');
  const methodPart = match.slice(0, space);
  const path = compilePath(match.slice(space + 1), options);
  const methods = methodPart === '*' ? null : new Set(methodPart.split(','));
  return {
    pattern: match,
    methods,
    match: path.match,
    matches: (method, p, f) => (methods === null || methods.has(method) ? path.match(p, f) : undefined),
  };
}

/** Which paths are under enforcement: any of `paths`, unless one of `except` matches. */
export interface CompiledProtect {
  /** Every path is protected: the check is skipped. */
  readonly all: boolean;
  covers(path: string, folded?: string): boolean;
}

export function compileProtect(
  paths: readonly string[],
  except: readonly string[],
  caseSensitive: boolean,
): CompiledProtect {
  const included = paths.map((p) => compilePath(p, { caseSensitive }));
  // An exclusion matches only what it says: `/assets/**` must not also free `/assets.php`.
  const excluded = except.map((p) => compilePath(p, { caseSensitive, suffixes: false }));
  const all = excluded.length === 0 && paths.includes('/**');
  return {
    all,
    covers(path, folded = foldPath(path, caseSensitive)) {
      if (all) return true;
      for (const p of excluded) if (p.match(path, folded) !== undefined) return false;
      for (const p of included) if (p.match(path, folded) !== undefined) return true;
      return false;
    },
  };
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
