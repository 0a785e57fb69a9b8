/**
 * Route patterns of login, refresh, logout and protect rules, compiled once at startup.
 * `METHOD[,METHOD] /path` with `:param` segments, `*` for one segment, and a trailing `/**` for any rest.
 * Paths given to `match` are already normalised by the proxy (no dot segments, no repeated slashes).
 */
export interface CompiledPath {
  readonly pattern: string;
  /** Path parameters on a match (an empty object when there are none), undefined otherwise. */
  match(path: string): Readonly<Record<string, string>> | undefined;
}

export interface CompiledRoute extends CompiledPath {
  /** `null`: any method. */
  readonly methods: ReadonlySet<string> | null;
  matches(method: string, path: string): Readonly<Record<string, string>> | undefined;
}

const NO_PARAMS: Readonly<Record<string, string>> = Object.freeze({});

export function compilePath(pattern: string): CompiledPath {
  const rest = pattern.endsWith('/**');
  const body = rest ? pattern.slice(0, -3) : pattern;
  const segments = body.split('/').slice(1);
  if (!rest && !segments.some((s) => s.startsWith(':') || s === '*')) {
    // A literal path: one string comparison (a trailing slash is the same route).
    const literal = body.length > 1 && body.endsWith('/') ? body.slice(0, -1) : body;
    return {
      pattern,
      match: (path) => (path === literal || path === `${literal}/` ? NO_PARAMS : undefined),
    };
  }
  if (rest && segments.length === 1 && segments[0] === '') {
    return { pattern, match: () => NO_PARAMS };
  }
  return {
    pattern,
    match(path) {
      const parts = path.split('/').slice(1);
      if (!rest && parts.length === segments.length + 1 && parts[parts.length - 1] === '') parts.pop();
      if (rest ? parts.length < segments.length : parts.length !== segments.length) return undefined;
      let params: Record<string, string> | undefined;
      for (let i = 0; i < segments.length; i++) {
        const seg = segments[i] as string;
        const part = parts[i] as string;
        if (seg === '*') {
          if (part === '') return undefined;
        } else if (seg.startsWith(':')) {
          if (part === '') return undefined;
          params ??= {};
          params[seg.slice(1)] = safeDecode(part);
        } else if (seg !== part) return undefined;
      }
      return params ?? NO_PARAMS;
    },
  };
}

export function compileRoute(match: string): CompiledRoute {
  const space = match.indexOf(' ');
  const methodPart = match.slice(0, space);
  const path = compilePath(match.slice(space + 1));
  const methods = methodPart === '*' ? null : new Set(methodPart.split(','));
  return {
    pattern: match,
    methods,
    match: path.match,
    matches: (method, p) => (methods === null || methods.has(method) ? path.match(p) : undefined),
  };
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
