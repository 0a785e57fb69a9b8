import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { headerObject } from '../../src/proxy/headers.js';
import { compileLoginRule, Exchange, type CompiledLoginRule } from '../../src/tokens/exchange.js';

/**
 * The login extractors (`compileLoginRule`: token and user sources, the request check) driven as the
 * proxy drives them: a rule validated by the real schema, an `Exchange` with the buffered request,
 * the response head turned into headers by `headerObject` as the exchange tap does, and the body.
 */
const BASE = { upstream: 'http://127.0.0.1:3000', secret: 'a-secret-of-sixteen+' };

const compiled = new Map<string, CompiledLoginRule>();

/** The rule through parseConfig and compileLoginRule, once per distinct rule. */
function compile(rule: unknown): CompiledLoginRule {
  const key = JSON.stringify(rule);
  let c = compiled.get(key);
  if (c === undefined) compiled.set(key, (c = compileUncached(rule)));
  return c;
}

function compileUncached(rule: unknown): CompiledLoginRule {
  const { config } = parseConfig({ ...BASE, login: [rule] }, {});
  const [login] = config.login;
  if (login === undefined) throw new Error('the configuration has no login rule');
  return compileLoginRule(login, 0);
}

interface Input {
  readonly params: Readonly<Record<string, string>>;
  readonly contentType: string | undefined;
  readonly requestBody: Buffer | undefined;
  readonly status: number;
  /** The response head as undici gives it: name, value, name, value... */
  readonly rawHeaders: readonly string[];
  readonly responseBody: Buffer | undefined;
}

function exchange(input: Input): Exchange {
  const ex = new Exchange({
    method: 'POST',
    path: '/login',
    params: input.params,
    requestHeaders: input.contentType === undefined ? {} : { 'content-type': input.contentType },
    requestBody: input.requestBody,
  });
  ex.status = input.status;
  ex.responseHeaders = headerObject(input.rawHeaders);
  ex.responseBody = input.responseBody;
  return ex;
}

const b64url = (s: string): string => Buffer.from(s).toString('base64url');

// Names and paths that mean something to some reader (or to Object.prototype).
const JSON_PATHS = [
  'token',
  'accessToken',
  'data.token',
  'user.id',
  'user.email',
  'a.0',
  'a.length',
  '__proto__',
  'constructor',
  'a..b',
];
const COOKIES = ['sid', 'laravel_session', 'wordpress_logged_in_*', '/^JSESSIONID\\.[0-9a-f]+$/', 'sid*'];
const HEADERS = ['x-token', 'Authorization', 'x-user', 'set-cookie', 'content-type'];
const CLAIMS = ['sub', 'email', 'user.id', 'a.0', '__proto__'];
const FORM_FIELDS = ['username', 'user[email]', 'user.email', 'email', 'a b'];
const KEYS = [
  'token',
  'accessToken',
  'data',
  'user',
  'id',
  'email',
  'sub',
  'a',
  'username',
  'USERNAME',
  '__proto__',
  'constructor',
];
const CAPTURES = ['^s:([^.]+)', '(.*)', '([a-z]+)$', '(?:x)?([0-9]+)', 'abc'];

const tokenFromArb = fc.oneof(
  fc.constantFrom(...JSON_PATHS).map((p) => `json:${p}`),
  fc.constantFrom(...COOKIES).map((c) => `cookie:${c}`),
  fc.constantFrom(...HEADERS).map((h) => `header:${h}`),
);
const optionsArb = {
  split: fc.constantFrom('|', '.', ':'),
  field: fc.nat({ max: 3 }),
  capture: fc.constantFrom(...CAPTURES),
};
const tokenSourceArb = fc.oneof(
  tokenFromArb,
  fc.record({ from: tokenFromArb, ...optionsArb, chunked: fc.boolean() }, { requiredKeys: ['from'] }),
);
const userFromArb = fc.oneof(
  tokenFromArb,
  fc.constantFrom(...CLAIMS).map((c) => `jwt:${c}`),
  fc.constantFrom(...FORM_FIELDS).map((f) => `request.form:${f}`),
  fc.constantFrom(...JSON_PATHS).map((p) => `request.json:${p}`),
  fc.constantFrom('tenant', 'id', '__proto__', 'constructor').map((p) => `path:${p}`),
);
const userSourceArb = fc.oneof(
  userFromArb,
  fc.record({ from: userFromArb, ...optionsArb }, { requiredKeys: ['from'] }),
);

const ruleArb = fc.record({
  match: fc.constantFrom('POST /login', 'POST /t/:tenant/login'),
  token: fc.oneof(tokenSourceArb, fc.array(tokenSourceArb, { minLength: 1, maxLength: 3 })),
  user: userSourceArb,
  normalize: fc.subarray(['trim', 'lowercase', 'nfkc']),
});

/** Strings the readers split, unquote, decode or look into. */
const pieceArb = fc.oneof(
  fc.constantFrom(
    'abc',
    'Alice',
    ' bob ',
    's:abc.sig',
    's%3Aabc.sig',
    'a|b|c',
    '%zz',
    '%C3%A9',
    '"q"',
    '',
    '\u0130',
    'K',
  ),
  fc.string({ maxLength: 8 }),
);
const scalarArb = fc.oneof(pieceArb, fc.integer(), fc.double(), fc.constant(null), fc.boolean());
const claimsArb = fc.record(
  {
    sub: scalarArb,
    email: scalarArb,
    user: fc.record({ id: scalarArb }, { requiredKeys: [] }),
    a: fc.array(scalarArb, { maxLength: 2 }),
  },
  { requiredKeys: [] },
);
const jwtArb = fc.oneof(
  claimsArb.map((claims) => `${b64url('{"alg":"HS256"}')}.${b64url(JSON.stringify(claims))}.sig`),
  fc.constantFrom(
    'a.b.c',
    'x.eyJ.y',
    `${b64url('{}')}.${b64url('[1]')}.s`,
    `${b64url('{}')}.${b64url('"s"')}.s`,
  ),
);
const valueArb = fc.oneof(pieceArb, jwtArb);

/** JSON texts built entry by entry, so an object may hold a key twice (as apps and attackers send). */
const jsonTextArb: fc.Arbitrary<string> = fc.letrec<{ value: string }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    valueArb.map((v) => JSON.stringify(v)),
    fc.constantFrom('1', '9007199254740993', '1.5', 'true', 'null', '"\\ud800"', '"a\\u0000b"'),
    fc.array(tie('value'), { maxLength: 3 }).map((vs) => `[${vs.join(',')}]`),
    fc
      .array(fc.tuple(fc.constantFrom(...KEYS), tie('value')), { maxLength: 4 })
      .map((es) => `{${es.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`),
  ),
})).value;

/** A login response shaped as apps send them, some fields left out or of another type. */
const shapedJsonArb = fc
  .record(
    {
      token: valueArb,
      accessToken: fc.oneof(jwtArb, scalarArb),
      data: fc.record({ token: scalarArb }, { requiredKeys: [] }),
      user: fc.record({ id: scalarArb, email: scalarArb }, { requiredKeys: [] }),
      a: fc.array(scalarArb, { maxLength: 2 }),
    },
    { requiredKeys: [] },
  )
  .map((v) => JSON.stringify(v));

const formTextArb = fc
  .array(
    fc.tuple(
      fc.constantFrom(
        ...FORM_FIELDS,
        'user[]',
        '?username',
        '%75sername',
        'USERNAME',
        '__proto__',
        '',
        'user',
      ),
      fc.option(fc.constantFrom('alice', 'a+b', '%zz', '%C3%A9', '%00', '', 'x=y'), { nil: undefined }),
    ),
    { maxLength: 5 },
  )
  .map((pairs) => pairs.map(([k, v]) => (v === undefined ? k : `${k}=${v}`)).join('&'));

const bodyArb = fc.oneof(
  fc.constant(undefined),
  jsonTextArb.map((t) => Buffer.from(t)),
  shapedJsonArb.map((t) => Buffer.from(t)),
  formTextArb.map((t) => Buffer.from(t)),
  fc.string({ maxLength: 40 }).map((t) => Buffer.from(t)),
  fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b)),
);

const setCookieArb = fc
  .tuple(
    fc.constantFrom(
      'sid',
      'sidC1',
      'sidC2',
      'sid.0',
      'sid.1',
      'laravel_session',
      'wordpress_logged_in_ab',
      'JSESSIONID.1a',
      'constructor',
    ),
    valueArb,
    fc.constantFrom(
      '',
      '; Path=/',
      '; Max-Age=0',
      '; Expires=Thu, 01 Jan 1970 00:00:00 GMT',
      '; HttpOnly',
      '; Max-Age=x',
    ),
  )
  .map(([name, value, attrs]) => `${name}=${value}${attrs}`);

const rawHeadersArb = fc
  .array(
    fc.oneof(
      fc.tuple(fc.constantFrom('set-cookie', 'Set-Cookie'), setCookieArb),
      fc.tuple(
        fc.constantFrom('x-token', 'X-Token', 'authorization', 'x-user', 'content-type', 'location'),
        valueArb,
      ),
    ),
    { maxLength: 6 },
  )
  .map((pairs) => pairs.flat());

const inputArb: fc.Arbitrary<Input> = fc.record({
  params: fc.dictionary(fc.constantFrom('tenant', 'id'), pieceArb, { maxKeys: 2 }),
  contentType: fc.constantFrom(
    undefined,
    'application/json',
    'application/vnd.api+json',
    'application/x-www-form-urlencoded',
    'application/x-www-form-urlencoded; charset=UTF-8',
    'application/json; charset=latin1',
    'multipart/form-data; boundary=x',
    'text/plain',
  ),
  requestBody: bodyArb,
  status: fc.constantFrom(200, 201, 302, 401, 500),
  rawHeaders: rawHeadersArb,
  responseBody: bodyArb,
});

/** What each extractor answered for one rule and exchange. */
function extract(rule: CompiledLoginRule, input: Input, extraTokens: readonly string[]) {
  const ex = exchange(input);
  const problem = rule.checkRequest(ex);
  const tokens = rule.readTokens(ex);
  const user = rule.readUser(ex, [...tokens, ...extraTokens]);
  return { problem, tokens, user, normalized: user === undefined ? undefined : rule.normalize(user) };
}

describe('login extractors: properties', () => {
  it('any request and response give tokens, a user and a request check of strings or undefined, never an exception', () => {
    fc.assert(
      fc.property(
        ruleArb,
        inputArb,
        fc.array(jwtArb, { minLength: 1, maxLength: 2 }),
        (ruleConfig, input, extra) => {
          const { problem, tokens, user, normalized } = extract(compile(ruleConfig), input, extra);
          expect(problem === undefined || typeof problem === 'string').toBe(true);
          expect(Array.isArray(tokens)).toBe(true);
          for (const t of tokens) expect(typeof t === 'string' && t !== '').toBe(true);
          expect(user === undefined || (typeof user === 'string' && user !== '')).toBe(true);
          expect(normalized === undefined || typeof normalized === 'string').toBe(true);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('the generators reach tokens, users and refused requests (so the property is not only about undefined)', () => {
    const seen = { tokens: 0, user: 0, problem: 0, jwtUser: 0 };
    const samples = fc.sample(fc.tuple(ruleArb, inputArb, fc.array(jwtArb, { minLength: 1, maxLength: 2 })), {
      numRuns: 1500,
      seed: 11,
    });
    for (const [ruleConfig, input, extra] of samples) {
      const r = extract(compile(ruleConfig), input, extra);
      if (r.tokens.length > 0) seen.tokens++;
      if (r.user !== undefined) seen.user++;
      if (r.user !== undefined && fromOf(ruleConfig.user).startsWith('jwt:')) seen.jwtUser++;
      if (r.problem !== undefined) seen.problem++;
    }
    expect(seen.tokens).toBeGreaterThan(50);
    expect(seen.user).toBeGreaterThan(50);
    expect(seen.jwtUser).toBeGreaterThan(10);
    expect(seen.problem).toBeGreaterThan(50);
  });
});

const fromOf = (s: string | { from: string }): string => (typeof s === 'string' ? s : s.from);

describe('login extractors: examples', () => {
  const json = (body: unknown, headers: readonly string[] = []): Input => ({
    params: {},
    contentType: undefined,
    requestBody: undefined,
    status: 200,
    rawHeaders: headers,
    responseBody: Buffer.from(JSON.stringify(body)),
  });

  it('reads a 100k-deep request or response body as unreadable, without an exception', () => {
    const deep = Buffer.from(`${'['.repeat(100_000)}${']'.repeat(100_000)}`);
    const rule = compile({ match: 'POST /login', token: 'json:token', user: 'request.json:username' });
    const r = extract(
      rule,
      { ...json({}), contentType: 'application/json', requestBody: deep, responseBody: deep },
      [],
    );
    expect(r).toEqual({ problem: undefined, tokens: [], user: undefined, normalized: undefined });
  });

  it('reads the user from a JWT claim of the issued token', () => {
    const jwt = `${b64url('{"alg":"HS256"}')}.${b64url('{"sub":"alice"}')}.sig`;
    const rule = compile({ match: 'POST /login', token: 'json:accessToken', user: 'jwt:sub' });
    expect(extract(rule, json({ accessToken: jwt }), [])).toMatchObject({ tokens: [jwt], user: 'alice' });
  });

  it('refuses a form login whose user field is sent in two spellings', () => {
    const rule = compile({ match: 'POST /login', token: 'cookie:sid', user: 'request.form:username' });
    const r = extract(
      rule,
      {
        ...json({}, ['Set-Cookie', 'sid=abc; Path=/']),
        contentType: 'application/x-www-form-urlencoded',
        requestBody: Buffer.from('username=alice&USERNAME=bob'),
      },
      [],
    );
    expect(r.problem).toEqual(expect.stringContaining('request.form:username'));
    expect(r.tokens).toEqual(['abc']);
  });

  // Found by the property above with `header:constructor`: response headers are a null-prototype
  // object, so `constructor` is an ordinary header name.
  it('reads a token from a header named like an Object.prototype member (constructor)', () => {
    const rule = compile({ match: 'POST /login', token: 'header:constructor', user: 'json:user' });
    expect(extract(rule, json({ user: 'alice' }), []).tokens).toEqual([]);
    expect(extract(rule, json({ user: 'alice' }, ['Constructor', 'tok']), []).tokens).toEqual(['tok']);
  });

  // Response-side users are only integers JSON.parse reads exactly (asUserString).
  it('never reads two users whose numeric ids differ beyond 2^53 as one user', () => {
    const rule = compile({ match: 'POST /login', token: 'json:token', user: 'json:user.id' });
    const text = (id: string): Input => ({
      ...json({}),
      responseBody: Buffer.from(`{"token":"t-${id}","user":{"id":${id}}}`),
    });
    const a = extract(rule, text('9007199254740993'), []).user;
    const b = extract(rule, text('9007199254740992'), []).user;
    expect(a !== undefined && a === b).toBe(false);
  });
});
