/**
 * Where tokens and users are read: the source strings of the configuration (`cookie:sid`, `json:a.b`,
 * `request.form:username`, `bearer`) and their `{ from, ... }` objects, validated and parsed here, once,
 * into discriminated unions. No other module reads a source string: consumers switch on `kind`.
 */
import { z } from 'zod';

/**
 * How a source's raw value becomes the token (or the user), the same for every source so the login side
 * and the request side turn one credential into one token.
 */
export interface ValueOptions {
  /** Split the value on this separator and take `field` (WordPress `user|expiry|token|hmac`). */
  readonly split?: string | undefined;
  /** Zero-based field after `split`. */
  readonly field?: number | undefined;
  /** A regular expression whose first capture group is the token (express-session `^s:([^.]+)`). */
  readonly capture?: string | undefined;
}

/** A cookie of a response (login, refresh): `name` is exact, an anchored `*` glob, or `/regex/`. */
export interface CookieSource {
  readonly kind: 'cookie';
  readonly name: string;
  /** Spread over chunk cookies `Name`, `NameC1..N` / `Name.0..n`, joined in order. */
  readonly chunked: boolean;
  readonly value: ValueOptions;
}
/** A request's token cookie, with where the app sets it (a rejection deletes it there). */
export interface RequestCookieSource extends CookieSource {
  readonly path?: string | undefined;
  readonly domain?: string | undefined;
}
export interface JsonSource {
  readonly kind: 'json';
  /** A dot path into the response body (`data.token`). */
  readonly path: string;
  readonly value: ValueOptions;
}
export interface HeaderSource {
  readonly kind: 'header';
  readonly name: string;
  readonly value: ValueOptions;
}
export interface BearerSource {
  readonly kind: 'bearer';
  readonly value: ValueOptions;
}
/** `;jsessionid=ABC` path parameters. */
export interface PathParamSource {
  readonly kind: 'pathparam';
  readonly name: string;
  readonly value: ValueOptions;
}
export interface QuerySource {
  readonly kind: 'query';
  readonly name: string;
  readonly value: ValueOptions;
}
/** A field of the request body, read as the app's body parser reads it. */
export interface RequestJsonField {
  readonly kind: 'request.json';
  readonly path: string;
}
export interface RequestFormField {
  readonly kind: 'request.form';
  readonly field: string;
}

/** Where a login or refresh response carries a token. */
export type TokenSource = JsonSource | CookieSource | HeaderSource;
/** Where a request carries its token. */
export type RequestTokenSource =
  BearerSource | RequestCookieSource | HeaderSource | PathParamSource | QuerySource;
/** Where a login names its user. */
export type UserSource =
  | JsonSource
  | (RequestJsonField & { readonly value: ValueOptions })
  | (RequestFormField & { readonly value: ValueOptions })
  | { readonly kind: 'jwt'; readonly claim: string; readonly value: ValueOptions }
  | HeaderSource
  | { readonly kind: 'path'; readonly param: string; readonly value: ValueOptions }
  | { readonly kind: 'cookie'; readonly name: string; readonly value: ValueOptions };
/** Where a refresh or logout request names the token it presents (RFC 7009 `token`). */
export type PresentedSource = RequestJsonField | RequestFormField;
/** How the who-am-i probe presents the new token. */
export type PresentAs =
  | { readonly kind: 'bearer' }
  | { readonly kind: 'cookie'; readonly name: string }
  | { readonly kind: 'header'; readonly name: string }
  | { readonly kind: 'query'; readonly name: string };

type AnySource = TokenSource | RequestTokenSource | UserSource | PresentedSource | PresentAs;

/** A source as written (`cookie:sid`), for messages and logs: the inverse of parsing. */
export function sourceText(s: AnySource): string {
  switch (s.kind) {
    case 'bearer':
      return 'bearer';
    case 'json':
    case 'request.json':
      return `${s.kind}:${s.path}`;
    case 'request.form':
      return `request.form:${s.field}`;
    case 'jwt':
      return `jwt:${s.claim}`;
    case 'path':
      return `path:${s.param}`;
    default:
      return `${s.kind}:${s.name}`;
  }
}

/** The kind and argument of a source string: `cookie:a:b` is the cookie `a:b`, `bearer` has none. */
function split(spec: string): { kind: string; arg: string } {
  const colon = spec.indexOf(':');
  return colon === -1 ? { kind: spec, arg: '' } : { kind: spec.slice(0, colon), arg: spec.slice(colon + 1) };
}

function valueOf(o: ValueOptions): ValueOptions {
  const v: { split?: string; field?: number; capture?: string } = {};
  if (o.split !== undefined) v.split = o.split;
  if (o.field !== undefined) v.field = o.field;
  if (o.capture !== undefined) v.capture = o.capture;
  return v;
}

type Written<T> = string | (ValueOptions & { readonly from: string } & T);

/** The written form as `{ from, ...options }`. */
function objectOf<T extends object>(written: Written<T>, defaults: T): ValueOptions & { from: string } & T {
  return typeof written === 'string' ? { from: written, ...defaults } : written;
}

// Each parser below sees only strings its schema's pattern admitted; the last case is the last kind left.

function parseTokenSource(written: Written<{ chunked: boolean }>): TokenSource {
  const o = objectOf(written, { chunked: false });
  const { kind, arg } = split(o.from);
  const value = valueOf(o);
  if (kind === 'json') return { kind, path: arg, value };
  if (kind === 'header') return { kind, name: arg, value };
  return { kind: 'cookie', name: arg, chunked: o.chunked, value };
}

type CookieOptions = { chunked: boolean; path?: string | undefined; domain?: string | undefined };

function parseRequestTokenSource(written: Written<CookieOptions>): RequestTokenSource {
  const o = objectOf<CookieOptions>(written, { chunked: false });
  const { kind, arg } = split(o.from);
  const value = valueOf(o);
  switch (kind) {
    case 'bearer':
      return { kind, value };
    case 'header':
    case 'pathparam':
    case 'query':
      return { kind, name: arg, value };
    default: {
      const cookie: { -readonly [K in keyof RequestCookieSource]: RequestCookieSource[K] } = {
        kind: 'cookie',
        name: arg,
        chunked: o.chunked,
        value,
      };
      if (o.path !== undefined) cookie.path = o.path;
      if (o.domain !== undefined) cookie.domain = o.domain;
      return cookie;
    }
  }
}

function parseRequestField(spec: string): PresentedSource {
  const { kind, arg } = split(spec);
  return kind === 'request.json' ? { kind, path: arg } : { kind: 'request.form', field: arg };
}

function parseUserSource(written: Written<object>): UserSource {
  const o = objectOf(written, {});
  const { kind, arg } = split(o.from);
  const value = valueOf(o);
  switch (kind) {
    case 'json':
      return { kind, path: arg, value };
    case 'request.json':
    case 'request.form':
      return { ...parseRequestField(o.from), value };
    case 'jwt':
      return { kind, claim: arg, value };
    case 'header':
      return { kind, name: arg, value };
    case 'path':
      return { kind, param: arg, value };
    default:
      return { kind: 'cookie', name: arg, value };
  }
}

function parsePresentAs(spec: string): PresentAs {
  const { kind, arg } = split(spec);
  if (kind === 'bearer') return { kind };
  return kind === 'header' ? { kind, name: arg } : { kind: 'cookie', name: arg };
}

/**
 * `schema`, what it accepted parsed by `parse`. Not `.transform`: in zod 3 a transform turns a problem
 * inside it into an abort, so the checks of the objects around it (`user` required unless `probe`) would
 * stop running and the config's other problems would go unreported; a pipe keeps them running.
 */
function parsedBy<S extends z.ZodTypeAny, O>(schema: S, parse: (written: z.output<S>) => O) {
  return schema.pipe(z.custom<z.output<S>>().transform(parse));
}

/** A regular expression, compiled here so a bad one is a config error with its key path, not a crash. */
function compiles(source: string): boolean {
  try {
    new RegExp(source);
    return true;
  } catch {
    return false;
  }
}
const regexSource = z.string().refine(compiles, 'expected a valid regular expression');

/** `cookie:/regex/` names must compile too. */
const cookieRegexOk = (v: string) => !/^cookie:\/.+\/$/.test(v) || compiles(v.slice(8, -1));
const BAD_COOKIE_REGEX = 'the cookie name pattern is not a valid regular expression';

/** The value options, as written in a `{ from, ... }` source. */
const valueOptions = {
  /** Split the value on this separator and take `field` (WordPress `user|expiry|token|hmac`). */
  split: z.string().min(1).optional(),
  /** Zero-based field after `split`. */
  field: z.number().int().min(0).optional(),
  /** A regular expression whose first capture group is the token (express-session `^s:([^.]+)`). */
  capture: regexSource.optional(),
};

/** Where a login response (or its request) carries a token: `json:<path>`, `cookie:<name>`, `header:<name>`. */
const tokenSourceString = z
  .string()
  .regex(/^(json|cookie|header):.+$/, 'expected json:<dot.path>, cookie:<name> or header:<name>')
  .refine(cookieRegexOk, BAD_COOKIE_REGEX);

/**
 * A token source with options. `cookie` names are exact, or anchored patterns with `*`
 * (`wordpress_logged_in_*`), or a regular expression in slashes.
 */
const tokenSourceObject = z
  .object({
    /** `json:<path>` | `cookie:<name or pattern>` | `header:<name>`. */
    from: tokenSourceString,
    ...valueOptions,
    /** The credential is spread over chunk cookies `Name`, `NameC1..N` / `Name.0..n`, joined in order. */
    chunked: z.boolean().default(false),
  })
  .strict();

export const tokenSource = parsedBy(z.union([tokenSourceString, tokenSourceObject]), parseTokenSource);

/** One token source or several (access + refresh, session + remember-me), as a list. */
export const tokenSources = parsedBy(z.union([tokenSource, z.array(tokenSource).min(1)]), (t) =>
  Array.isArray(t) ? t : [t],
);

const userSourceString = z
  .string()
  .regex(
    /^(json|request\.json|request\.form|jwt|header|path|cookie):.+$/,
    'expected json:<path>, request.json:<path>, request.form:<field>, jwt:<claim>, header:<name>, path:<param> or cookie:<name>',
  )
  .refine(cookieRegexOk, BAD_COOKIE_REGEX);

const userSourceObject = z
  .object({
    from: userSourceString,
    ...valueOptions,
  })
  .strict();

export const userSource = parsedBy(z.union([userSourceString, userSourceObject]), parseUserSource);
/** The probe's user: a source string only. */
export const probeUserSource = parsedBy(userSourceString, parseUserSource);

/** How the probe presents the new token: `bearer`, `cookie:<name>` or `header:<name>`. */
export const presentAs = parsedBy(z.string().regex(/^(bearer|cookie:.+|header:.+)$/), parsePresentAs);

/** Where a refresh or logout request presents its token. */
export const presentedSource = parsedBy(
  z
    .string()
    .regex(/^(request\.json|request\.form):.+$/, 'expected request.json:<path> or request.form:<field>'),
  parseRequestField,
);

const requestTokenSourceString = z
  .string()
  .regex(
    /^(bearer|cookie:.+|header:.+|pathparam:.+|query:.+)$/,
    'expected bearer, cookie:<name>, header:<name>, pathparam:<name> or query:<name>',
  )
  .refine(cookieRegexOk, BAD_COOKIE_REGEX);

/**
 * A request token source with the same value options as a login token (so both yield the same token).
 * A cookie's `path` and `domain` are where the app sets it: a rejection deletes it there. The gateway
 * learns them from the app's Set-Cookie; stating them covers a replica that has seen none yet.
 */
export const requestTokenSource = parsedBy(
  z.union([
    requestTokenSourceString,
    z
      .object({
        from: requestTokenSourceString,
        ...valueOptions,
        chunked: z.boolean().default(false),
        /** Cookies only: the Path the app sets the cookie with. @default / */
        path: z
          .string()
          .regex(/^\/[^;,\s]*$/, 'expected a cookie path such as / or /app')
          .optional(),
        /** Cookies only: the Domain the app sets the cookie with; unset: a host-only cookie. */
        domain: z
          .string()
          .regex(/^[^;,\s]+$/, 'expected a cookie domain such as example.com')
          .optional(),
      })
      .strict()
      .superRefine((s, ctx) => {
        // Checked on the source as written (also when `from` itself is invalid), so every problem is listed.
        const cookie = s.from.startsWith('cookie:');
        for (const key of ['path', 'domain'] as const) {
          if (s[key] !== undefined && !cookie)
            ctx.addIssue({ code: 'custom', path: [key], message: 'only for cookie: sources' });
        }
        // RFC 6265bis section 4.1.3.2: a __Host- cookie is host-only with Path=/.
        if (/^cookie:__host-/i.test(s.from) && (s.domain !== undefined || (s.path ?? '/') !== '/'))
          ctx.addIssue({
            code: 'custom',
            path: [s.domain !== undefined ? 'domain' : 'path'],
            message: 'a __Host- cookie has Path=/ and no Domain',
          });
      }),
  ]),
  parseRequestTokenSource,
);
