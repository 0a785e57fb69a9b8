import { clearSiteDataHeader } from '../http/clear-site-data.js';
import type { IncomingHttpHeaders } from 'node:http';
import { decodeJwt } from 'jose';
import type {
  LoginRuleConfig,
  LogoutRuleConfig,
  RefreshRuleConfig,
  SuccessRuleConfig,
  WhenConfig,
} from '../config/schema.js';
import { sourceText, type PresentedSource, type TokenSource, type UserSource } from '../config/sources.js';
import { compileCookieName, parseSetCookie } from './cookies.js';
import { readFormField, type FieldRead } from './form.js';
import { parseJsonStrict, readJsonField } from './json-body.js';
import { compileRoute, type CompiledRoute, type PathOptions } from './route.js';
import { compileValueTransform } from './value.js';

/**
 * What a request body is, from its Content-Type: the readers of `request.form:` and `request.json:`
 * sources read only their own kind (as the app's body parsers do) and call any other kind with a body
 * ambiguous, since the app may read a field there that the gateway cannot.
 */
export type BodyKind = 'none' | 'form' | 'json' | 'multipart' | 'other' | 'unsupported-charset';

export function bodyKind(contentType: string | undefined, length: number): BodyKind {
  if (length === 0) return 'none';
  if (contentType === undefined) return 'other';
  const ct = contentType.toLowerCase();
  const semi = ct.indexOf(';');
  const type = (semi === -1 ? ct : ct.slice(0, semi)).trim();
  const charset = /;\s*charset\s*=\s*"?([^";\s]+)/.exec(ct)?.[1];
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8' && charset !== 'us-ascii')
    return 'unsupported-charset';
  if (type === 'application/x-www-form-urlencoded') return 'form';
  if (type === 'application/json' || type.endsWith('+json')) return 'json';
  if (type.startsWith('multipart/')) return 'multipart';
  return 'other';
}

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
  readonly requestKind: BodyKind;
  #requestText: string | undefined;
  #requestJson: ReturnType<typeof parseJsonStrict> | undefined;
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
    const type = init.requestHeaders['content-type'];
    this.requestKind = bodyKind(typeof type === 'string' ? type : undefined, init.requestBody?.length ?? 0);
  }

  /** A field of the (decoded) request body, read as the app's stack reads it, or ambiguous. */
  requestField(source: 'form' | 'json', path: string): FieldRead {
    const kind = this.requestKind;
    if (kind === 'none') return ABSENT;
    if (kind === 'unsupported-charset')
      return { kind: 'ambiguous', reason: 'the request body is in a charset other than UTF-8' };
    if (
      kind === 'multipart' ||
      (kind === 'json' && source === 'form') ||
      (kind === 'form' && source === 'json')
    )
      return { kind: 'ambiguous', reason: `the request body is ${kind}; the rule reads ${source}` };
    this.#requestText ??= (this.requestBody as Buffer).toString('utf8');
    if (source === 'form') return kind === 'form' ? readFormField(this.#requestText, path) : ABSENT;
    this.#requestJson ??= parseJsonStrict(this.#requestText);
    const parsed = this.#requestJson;
    if (parsed.kind === 'ok') return readJsonField(parsed.value, path);
    if (parsed.kind === 'ambiguous') return parsed;
    return kind === 'json' ? { kind: 'ambiguous', reason: `invalid JSON: ${parsed.reason}` } : ABSENT;
  }

  /** The response body was read and is not JSON (a JSON token or user source cannot be read). */
  get responseJsonInvalid(): boolean {
    return this.responseBody !== undefined && this.responseBody.length > 0 && this.responseJson === null;
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

const ABSENT: FieldRead = Object.freeze({ kind: 'absent' });

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
  // Only integers JSON.parse reads exactly: 9007199254740993 would become ...992, another user's id.
  if (typeof v === 'number' && Number.isSafeInteger(v)) return String(v);
  if (typeof v === 'bigint') return String(v);
  return undefined;
}

function asTokenString(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

export type TokenRead = (ex: Exchange) => string | undefined;

/** Reads one issued token out of a response. */
function compileTokenSource(source: TokenSource): {
  read: TokenRead;
  cookie?: (name: string) => boolean;
} {
  const transform = compileValueTransform(source.value);
  if (source.kind === 'json') {
    const path = source.path;
    return {
      read: (ex) => {
        const raw = asTokenString(readJsonPath(ex.responseJson, path));
        return raw === undefined ? undefined : transform(raw);
      },
    };
  }
  if (source.kind === 'header') {
    const key = source.name.toLowerCase();
    return {
      read: (ex) => {
        const raw = ex.responseHeader(key);
        return raw === undefined ? undefined : transform(raw.trim());
      },
    };
  }
  const arg = source.name;
  const matcher = compileCookieName(arg);
  if (source.chunked) {
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

/** A login rule's user normalisation (`normalize` steps, in order), also used by the admin API. */
export function compileNormalize(steps: readonly ('trim' | 'lowercase' | 'nfkc')[]): Normalize {
  return (user) => {
    let u = user;
    for (const step of steps)
      u = step === 'trim' ? u.trim() : step === 'lowercase' ? u.toLowerCase() : u.normalize('NFKC');
    return u;
  };
}

/** Reads the user of a login: from the response, the request, a JWT claim of an issued token, a header, a path parameter. */
export function compileUserSource(
  source: UserSource,
): (ex: Exchange, issuedTokens: readonly string[]) => string | undefined {
  const transform = compileValueTransform(source.value);
  const finish = (v: unknown): string | undefined => {
    const s = asUserString(v);
    return s === undefined ? undefined : transform(s);
  };
  switch (source.kind) {
    case 'json': {
      const path = source.path;
      return (ex) => finish(readJsonPath(ex.responseJson, path));
    }
    case 'request.json':
    case 'request.form': {
      // Ambiguity was refused before the request was forwarded (checkRequest).
      const read = requestFieldReader(source);
      return (ex) => {
        const r = read(ex);
        return r.kind === 'value' ? finish(r.value) : undefined;
      };
    }
    case 'header': {
      const key = source.name.toLowerCase();
      return (ex) => finish(ex.responseHeader(key));
    }
    case 'path': {
      const param = source.param;
      return (ex) => finish(ex.params[param]);
    }
    case 'cookie': {
      const matcher = compileCookieName(source.name);
      return (ex) => {
        for (const header of ex.setCookies) {
          const c = parseSetCookie(header);
          if (c && !c.clears && matcher.test(c.name)) return finish(c.value);
        }
        return undefined;
      };
    }
    case 'jwt': {
      // jwt:<claim>: claims of a token the app itself just issued in this response, so no signature
      // check is needed here; a token on a request is only ever trusted through the store.
      const claim = source.claim;
      return (_ex, issued) => {
        const found = issuedJwtClaim(issued, claim);
        return found === undefined ? undefined : finish(found.value);
      };
    }
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

/** A `request.form:<field>` / `request.json:<path>` source as a field reader. */
function requestFieldReader(source: PresentedSource): (ex: Exchange) => FieldRead {
  if (source.kind === 'request.json') {
    const path = source.path;
    return (ex) => ex.requestField('json', path);
  }
  const field = source.field;
  return (ex) => ex.requestField('form', field);
}

function readPresented(
  source: PresentedSource | undefined,
): ((ex: Exchange) => string | undefined) | undefined {
  if (source === undefined) return undefined;
  const read = requestFieldReader(source);
  return (ex) => {
    const r = read(ex);
    return r.kind === 'value' ? asTokenString(r.value) : undefined;
  };
}

/** The outcome of a rule's query or form conditions for one request. */
export type ConditionMatch = 'match' | 'no_match' | { readonly ambiguous: string };

/** Query or form conditions (`when`), compiled: each field must have exactly its value. */
function compileConditions(
  fields: Readonly<Record<string, string>> | undefined,
  read: (input: string, field: string) => FieldRead,
): ((input: string) => ConditionMatch) | undefined {
  if (fields === undefined) return undefined;
  const entries = Object.entries(fields);
  return (input) => {
    let result: ConditionMatch = 'match';
    for (const [field, expected] of entries) {
      const r = read(input, field);
      if (r.kind === 'ambiguous') return { ambiguous: `${field}: ${r.reason}` };
      if (r.kind !== 'value' || r.value !== expected) result = 'no_match';
    }
    return result;
  };
}

function queryOf(url: string): string {
  const q = url.indexOf('?');
  if (q === -1) return '';
  const hash = url.indexOf('#', q);
  return url.slice(q + 1, hash === -1 ? undefined : hash);
}

function compileWhen(when: WhenConfig | undefined): Pick<CompiledTokenRule, 'matchQuery' | 'matchForm'> {
  const query = compileConditions(when?.query, readFormField);
  const form = compileConditions(when?.form, (body, field) => readFormField(body, field));
  return {
    matchQuery: query === undefined ? () => 'match' : (url) => query(queryOf(url)),
    matchForm:
      form === undefined
        ? undefined
        : (ex) => {
            // Only a urlencoded body carries form fields for the stacks this reads like (PHP's $_POST
            // also reads multipart, which the gateway cannot: refused rather than guessed).
            if (ex.requestKind === 'none' || ex.requestKind === 'other' || ex.requestKind === 'json')
              return 'no_match';
            if (ex.requestKind !== 'form')
              return { ambiguous: `a ${ex.requestKind} body where the rule reads form fields` };
            return form((ex.requestBody as Buffer).toString('utf8'));
          },
  };
}

/** Any source a rule reads: issued tokens, the user, the presented token. */
type RuleSource = TokenSource | UserSource | PresentedSource;

/** The first ambiguity among the request-side sources of a rule, checked before the request is forwarded. */
function compileRequestCheck(sources: readonly RuleSource[]): (ex: Exchange) => string | undefined {
  const readers: { spec: string; read: (ex: Exchange) => FieldRead }[] = [];
  for (const s of sources)
    if (s.kind === 'request.json' || s.kind === 'request.form')
      readers.push({ spec: sourceText(s), read: requestFieldReader(s) });
  return (ex) => {
    for (const r of readers) {
      const f = r.read(ex);
      if (f.kind === 'ambiguous') return `${r.spec}: ${f.reason}`;
    }
    return undefined;
  };
}

/** Does reading this source need the request or the response body? */
function needsBody(source: RuleSource): 'request' | 'response' | 'none' {
  if (source.kind === 'request.json' || source.kind === 'request.form') return 'request';
  if (source.kind === 'json') return 'response';
  return 'none';
}

export interface CompiledTokenRule {
  readonly kind: 'login' | 'refresh' | 'logout';
  /** `login[0]` etc., for logs and metrics labels. */
  readonly name: string;
  readonly route: CompiledRoute;
  readonly needsRequestBody: boolean;
  readonly needsResponseBody: boolean;
  /** The rule's `when.query` conditions against the request URL (`match` when there are none). */
  matchQuery(url: string): ConditionMatch;
  /** The rule's `when.form` conditions against the buffered body; undefined when there are none. */
  readonly matchForm: ((ex: Exchange) => ConditionMatch) | undefined;
  /** Why the request-side sources (user, presented token) cannot be read unambiguously, if they cannot. */
  checkRequest(ex: Exchange): string | undefined;
  /** A successful response whose token or user cannot be read: refused (502) or passed unregistered. */
  readonly onUnreadable: 'refuse' | 'pass';
  readonly isSuccess: SuccessTest;
  /** Tokens issued by the response (login, refresh). */
  readTokens(ex: Exchange): string[];
  /** Is this Set-Cookie name one of the rule's token cookies? */
  readonly isTokenCookie: (name: string) => boolean;
  /** Refresh and logout: the token the request names in its body (RFC 7009 `token`), if it does. */
  readonly readPresented?: ((ex: Exchange) => string | undefined) | undefined;
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
  /** The `Clear-Site-Data` value of the confirmed logout's response, or undefined for none. */
  readonly clearSiteData: string | undefined;
}

/** A compiled rule of any kind, discriminated by `kind`. */
export type TokenRule = CompiledLoginRule | CompiledRefreshRule | CompiledLogoutRule;

function compileTokens(sources: readonly TokenSource[]) {
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

/**
 * `attributes`: other sources every login reads (sessions.groups.from, sessions.seats.key), so the
 * bodies they need are buffered and their request fields checked for ambiguity like the user's.
 */
export function compileLoginRule(
  rule: LoginRuleConfig,
  index: number,
  paths: PathOptions = {},
  attributes: readonly UserSource[] = [],
): CompiledLoginRule {
  const tokens = compileTokens(rule.token);
  const readUser = rule.user ? compileUserSource(rule.user) : () => undefined;
  const specs: RuleSource[] = [...tokens.sources, ...(rule.user ? [rule.user] : []), ...attributes];
  const when = compileWhen(rule.when);
  return {
    kind: 'login',
    name: `login[${index}]`,
    route: compileRoute(rule.match, paths),
    ...when,
    checkRequest: compileRequestCheck(specs),
    onUnreadable: rule.onUnreadable,
    needsRequestBody: when.matchForm !== undefined || specs.some((s) => needsBody(s) === 'request'),
    needsResponseBody: specs.some((s) => needsBody(s) === 'response'),
    isSuccess: compileSuccess(rule.success),
    readTokens: tokens.readTokens,
    isTokenCookie: tokens.isTokenCookie,
    readUser,
    normalize: compileNormalize(rule.normalize),
    config: rule,
  };
}

export function compileRefreshRule(
  rule: RefreshRuleConfig,
  index: number,
  paths: PathOptions = {},
): CompiledRefreshRule {
  const tokens = compileTokens(rule.token);
  const specs: RuleSource[] = [...tokens.sources, ...(rule.presented ? [rule.presented] : [])];
  const when = compileWhen(rule.when);
  return {
    kind: 'refresh',
    name: `refresh[${index}]`,
    route: compileRoute(rule.match, paths),
    ...when,
    checkRequest: compileRequestCheck(specs),
    onUnreadable: 'pass',
    needsRequestBody: when.matchForm !== undefined || specs.some((s) => needsBody(s) === 'request'),
    needsResponseBody: specs.some((s) => needsBody(s) === 'response'),
    isSuccess: compileSuccess(rule.success),
    readTokens: tokens.readTokens,
    isTokenCookie: tokens.isTokenCookie,
    readPresented: readPresented(rule.presented),
  };
}

export function compileLogoutRule(
  rule: LogoutRuleConfig,
  index: number,
  paths: PathOptions = {},
): CompiledLogoutRule {
  const when = compileWhen(rule.when);
  return {
    kind: 'logout',
    name: `logout[${index}]`,
    clearSiteData: clearSiteDataHeader(rule.clearSiteData),
    route: compileRoute(rule.match, paths),
    ...when,
    checkRequest: compileRequestCheck(rule.presented ? [rule.presented] : []),
    onUnreadable: 'pass',
    needsRequestBody: when.matchForm !== undefined || rule.presented !== undefined,
    needsResponseBody: false,
    isSuccess: compileSuccess(rule.success),
    readTokens: () => [],
    isTokenCookie: () => false,
    readPresented: readPresented(rule.presented),
  };
}

/**
 * The claim at `claim` (a dot path) of the first token among `issued` that decodes as a JWT, or
 * undefined when none does. The tokens are ones the app itself just issued in this response, so no
 * signature check is needed; a token on a request is only ever trusted through the store.
 */
export function issuedJwtClaim(
  issued: readonly string[],
  claim: string,
): { readonly value: unknown } | undefined {
  for (const t of issued) {
    if (t.split('.').length !== 3) continue;
    try {
      return { value: readJsonPath(decodeJwt(t), claim) };
    } catch {
      continue;
    }
  }
  return undefined;
}
