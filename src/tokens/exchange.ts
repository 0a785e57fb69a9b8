import type { IncomingHttpHeaders } from 'node:http';
import { decodeJwt } from 'jose';
import type {
  LoginRuleConfig,
  LogoutRuleConfig,
  RefreshRuleConfig,
  SuccessRuleConfig,
  TokenSourceConfig,
  UserSourceConfig,
} from '../config/schema.js';
import { compileCookieName, parseSetCookie } from './cookies.js';
import { compileRoute, type CompiledRoute } from './route.js';
import { compileValueTransform } from './value.js';

/** One buffered login, refresh or logout exchange, read lazily (each body parsed at most once). */
export class Exchange {
  readonly method: string;
  readonly path: string;
  readonly params: Readonly<Record<string, string>>;
  readonly requestHeaders: IncomingHttpHeaders;
  readonly requestBody: Buffer | undefined;
  status = 0;
  responseHeaders: Readonly<Record<string, string | string[] | undefined>> = {};
  /** The decoded (decompressed) response body, when it was read. */
  responseBody: Buffer | undefined;
  #requestJson: unknown;
  #requestForm: URLSearchParams | undefined;
  #responseJson: unknown;

  constructor(init: {
    method: string;
    path: string;
    params: Readonly<Record<string, string>>;
    requestHeaders: IncomingHttpHeaders;
    requestBody: Buffer | undefined;
  }) {
    this.method = init.method;
    this.path = init.path;
    this.params = init.params;
    this.requestHeaders = init.requestHeaders;
    this.requestBody = init.requestBody;
  }

  get requestJson(): unknown {
    if (this.#requestJson === undefined) this.#requestJson = parseJson(this.requestBody) ?? null;
    return this.#requestJson;
  }

  get requestForm(): URLSearchParams {
    this.#requestForm ??= new URLSearchParams(this.requestBody ? this.requestBody.toString('utf8') : '');
    return this.#requestForm;
  }

  get responseJson(): unknown {
    if (this.#responseJson === undefined) this.#responseJson = parseJson(this.responseBody) ?? null;
    return this.#responseJson;
  }

  /** Response `Set-Cookie` values. */
  get setCookies(): readonly string[] {
    const v = this.responseHeaders['set-cookie'];
    return v === undefined ? [] : Array.isArray(v) ? v : [v];
  }

  responseHeader(name: string): string | undefined {
    const v = this.responseHeaders[name];
    return Array.isArray(v) ? v[0] : v;
  }
}

function parseJson(body: Buffer | undefined): unknown {
  if (!body || body.length === 0) return undefined;
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}

/** `a.b.0.c` into a parsed JSON value. */
export function readJsonPath(value: unknown, path: string): unknown {
  let v = value;
  for (const key of path.split('.')) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string, unknown>)[key];
  }
  return v;
}

/** A user is a string: `1` from a JSON body and `"1"` from a JWT `sub` are the same user. */
function asUserString(v: unknown): string | undefined {
  if (typeof v === 'string') return v === '' ? undefined : v;
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  if (typeof v === 'bigint') return String(v);
  return undefined;
}

function asTokenString(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

export type TokenRead = (ex: Exchange) => string | undefined;

/** Reads one issued token out of a response. */
function compileTokenSource(source: TokenSourceConfig): {
  read: TokenRead;
  cookie?: (name: string) => boolean;
} {
  const o = typeof source === 'string' ? { from: source, chunked: false } : source;
  const transform = compileValueTransform(o);
  const colon = o.from.indexOf(':');
  const kind = o.from.slice(0, colon);
  const arg = o.from.slice(colon + 1);
  if (kind === 'json') {
    return {
      read: (ex) => {
        const raw = asTokenString(readJsonPath(ex.responseJson, arg));
        return raw === undefined ? undefined : transform(raw);
      },
    };
  }
  if (kind === 'header') {
    const key = arg.toLowerCase();
    return {
      read: (ex) => {
        const raw = ex.responseHeader(key);
        return raw === undefined ? undefined : transform(raw.trim());
      },
    };
  }
  const matcher = compileCookieName(arg);
  if (o.chunked) {
    return {
      cookie: (name) =>
        name === arg || (name.startsWith(arg) && /^(?:C|\.)\d+$/.test(name.slice(arg.length))),
      read: (ex) => {
        const chunks: { i: number; v: string }[] = [];
        let base: string | undefined;
        for (const header of ex.setCookies) {
          const c = parseSetCookie(header);
          if (!c || c.clears) continue;
          if (c.name === arg) base = c.value;
          else if (c.name.startsWith(arg)) {
            const m = /^(?:C|\.)(\d+)$/.exec(c.name.slice(arg.length));
            if (m) chunks.push({ i: Number(m[1]), v: c.value });
          }
        }
        const joined = chunks.length
          ? chunks
              .sort((a, b) => a.i - b.i)
              .map((c) => c.v)
              .join('')
          : base;
        return joined === undefined ? undefined : transform(joined);
      },
    };
  }
  return {
    cookie: (name) => matcher.test(name),
    read: (ex) => {
      for (const header of ex.setCookies) {
        const c = parseSetCookie(header);
        if (c && !c.clears && matcher.test(c.name)) return transform(c.value);
      }
      return undefined;
    },
  };
}

export type Normalize = (user: string) => string;

function compileNormalize(steps: readonly ('trim' | 'lowercase' | 'nfkc')[]): Normalize {
  return (user) => {
    let u = user;
    for (const step of steps)
      u = step === 'trim' ? u.trim() : step === 'lowercase' ? u.toLowerCase() : u.normalize('NFKC');
    return u;
  };
}

/** Reads the user of a login: from the response, the request, a JWT claim of an issued token, a header, a path parameter. */
export function compileUserSource(
  source: UserSourceConfig | string,
): (ex: Exchange, issuedTokens: readonly string[]) => string | undefined {
  const o = typeof source === 'string' ? { from: source } : source;
  const transform = compileValueTransform(o);
  const colon = o.from.indexOf(':');
  const kind = o.from.slice(0, colon);
  const arg = o.from.slice(colon + 1);
  const finish = (v: unknown): string | undefined => {
    const s = asUserString(v);
    return s === undefined ? undefined : transform(s);
  };
  switch (kind) {
    case 'json':
      return (ex) => finish(readJsonPath(ex.responseJson, arg));
    case 'request.json':
      return (ex) => finish(readJsonPath(ex.requestJson, arg));
    case 'request.form':
      return (ex) => finish(ex.requestForm.get(arg) ?? undefined);
    case 'header': {
      const key = arg.toLowerCase();
      return (ex) => finish(ex.responseHeader(key));
    }
    case 'path':
      return (ex) => finish(ex.params[arg]);
    case 'cookie': {
      const matcher = compileCookieName(arg);
      return (ex) => {
        for (const header of ex.setCookies) {
          const c = parseSetCookie(header);
          if (c && !c.clears && matcher.test(c.name)) return finish(c.value);
        }
        return undefined;
      };
    }
    default:
      // jwt:<claim>: claims of a token the app itself just issued in this response, so no signature
      // check is needed here; a token on a request is only ever trusted through the store.
      return (_ex, issued) => {
        for (const t of issued) {
          if (t.split('.').length !== 3) continue;
          try {
            return finish(readJsonPath(decodeJwt(t), arg));
          } catch {
            continue;
          }
        }
        return undefined;
      };
  }
}

/** Whether a response meets a rule's `success` condition. */
export type SuccessTest = (status: number, location: string | undefined) => boolean;

export function compileSuccess(rule: SuccessRuleConfig): SuccessTest {
  const statuses = (Array.isArray(rule.status) ? rule.status : [rule.status]).map((s) => {
    const [lo, hi] = String(s).split('-').map(Number) as [number, number | undefined];
    return [lo, hi ?? lo] as const;
  });
  const toList = (v: string | string[] | undefined): string[] =>
    v === undefined ? [] : Array.isArray(v) ? v : [v];
  const location = toList(rule.location);
  const notLocation = toList(rule.notLocation);
  return (status, loc) => {
    if (!statuses.some(([lo, hi]) => status >= lo && status <= hi)) return false;
    if (location.length > 0) {
      if (loc === undefined) return false;
      const path = locationPath(loc);
      if (!location.some((p) => loc.startsWith(p) || path.startsWith(p))) return false;
    }
    if (loc !== undefined && notLocation.some((p) => loc.includes(p))) return false;
    return true;
  };
}

function locationPath(loc: string): string {
  try {
    const u = new URL(loc, 'http://x');
    return u.pathname + u.search;
  } catch {
    return loc;
  }
}

function readPresented(spec: string | undefined): ((ex: Exchange) => string | undefined) | undefined {
  if (spec === undefined) return undefined;
  const colon = spec.indexOf(':');
  const kind = spec.slice(0, colon);
  const arg = spec.slice(colon + 1);
  return kind === 'request.json'
    ? (ex) => asTokenString(readJsonPath(ex.requestJson, arg))
    : (ex) => asTokenString(ex.requestForm.get(arg) ?? undefined);
}

/** Does reading this source need the request or the response body? */
function needsBody(spec: string): 'request' | 'response' | 'none' {
  if (spec.startsWith('request.')) return 'request';
  if (spec.startsWith('json:')) return 'response';
  return 'none';
}

const fromOf = (s: TokenSourceConfig | UserSourceConfig | string): string =>
  typeof s === 'string' ? s : s.from;

export interface CompiledTokenRule {
  readonly kind: 'login' | 'refresh' | 'logout';
  /** `login[0]` etc., for logs and metrics labels. */
  readonly name: string;
  readonly route: CompiledRoute;
  readonly needsRequestBody: boolean;
  readonly needsResponseBody: boolean;
  readonly isSuccess: SuccessTest;
  /** Tokens issued by the response (login, refresh). */
  readTokens(ex: Exchange): string[];
  /** Is this Set-Cookie name one of the rule's token cookies? */
  readonly isTokenCookie: (name: string) => boolean;
}

export interface CompiledLoginRule extends CompiledTokenRule {
  readonly kind: 'login';
  readUser(ex: Exchange, issued: readonly string[]): string | undefined;
  readonly normalize: Normalize;
  readonly config: LoginRuleConfig;
}

export interface CompiledRefreshRule extends CompiledTokenRule {
  readonly kind: 'refresh';
  /** The presented token, when the request names it in its body. */
  readonly readPresented: ((ex: Exchange) => string | undefined) | undefined;
}

export interface CompiledLogoutRule extends CompiledTokenRule {
  readonly kind: 'logout';
  readonly readPresented: ((ex: Exchange) => string | undefined) | undefined;
}

function compileTokens(token: TokenSourceConfig | readonly TokenSourceConfig[]) {
  const sources = (Array.isArray(token) ? token : [token]) as TokenSourceConfig[];
  const compiled = sources.map(compileTokenSource);
  const cookieTests = compiled
    .map((c) => c.cookie)
    .filter((c): c is (n: string) => boolean => c !== undefined);
  return {
    sources,
    readTokens: (ex: Exchange) => {
      const out: string[] = [];
      for (const c of compiled) {
        const t = c.read(ex);
        if (t !== undefined && !out.includes(t)) out.push(t);
      }
      return out;
    },
    isTokenCookie: (name: string) => cookieTests.some((t) => t(name)),
  };
}

export function compileLoginRule(rule: LoginRuleConfig, index: number): CompiledLoginRule {
  const tokens = compileTokens(rule.token);
  const readUser = rule.user ? compileUserSource(rule.user) : () => undefined;
  const specs = [...tokens.sources.map(fromOf), ...(rule.user ? [fromOf(rule.user)] : [])];
  return {
    kind: 'login',
    name: `login[${index}]`,
    route: compileRoute(rule.match),
    needsRequestBody: specs.some((s) => needsBody(s) === 'request'),
    needsResponseBody: specs.some((s) => needsBody(s) === 'response'),
    isSuccess: compileSuccess(rule.success),
    readTokens: tokens.readTokens,
    isTokenCookie: tokens.isTokenCookie,
    readUser,
    normalize: compileNormalize(rule.normalize),
    config: rule,
  };
}

export function compileRefreshRule(rule: RefreshRuleConfig, index: number): CompiledRefreshRule {
  const tokens = compileTokens(rule.token);
  const specs = [...tokens.sources.map(fromOf), ...(rule.presented ? [rule.presented] : [])];
  return {
    kind: 'refresh',
    name: `refresh[${index}]`,
    route: compileRoute(rule.match),
    needsRequestBody: specs.some((s) => needsBody(s) === 'request'),
    needsResponseBody: specs.some((s) => needsBody(s) === 'response'),
    isSuccess: compileSuccess(rule.success),
    readTokens: tokens.readTokens,
    isTokenCookie: tokens.isTokenCookie,
    readPresented: readPresented(rule.presented),
  };
}

export function compileLogoutRule(rule: LogoutRuleConfig, index: number): CompiledLogoutRule {
  return {
    kind: 'logout',
    name: `logout[${index}]`,
    route: compileRoute(rule.match),
    needsRequestBody: rule.presented !== undefined,
    needsResponseBody: false,
    isSuccess: compileSuccess(rule.success),
    readTokens: () => [],
    isTokenCookie: () => false,
    readPresented: readPresented(rule.presented),
  };
}
