import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { MAX_CONFIG_DEPTH, parseConfig } from '../../src/config/load.js';
import { ConfigError, type ConfigProblem } from '../../src/errors.js';
import { normalizePath } from '../../src/proxy/path.js';
import { JSON_LOGIN_RULE } from '../support/login-rules.js';

// Pieces of request targets that each mean something to some normaliser.
const SEGMENTS = [
  '',
  '.',
  '..',
  '%2e',
  '%2E%2e',
  '.%2e',
  '..;',
  ';x=1',
  'a',
  'b;jsessionid=1',
  '%61',
  '%25',
  '%252e',
  '%2f',
  '%5C',
  '%00',
  '%3F',
  '%23',
  '%3B',
  '%zz',
  '%C3%A9',
  '%E9',
  'é',
  ' ',
  '~',
  '\\',
];
/** A character whose escape normalizePath decodes (path.ts: unreserved and the fast path's others). */
const PLAIN_CHAR = /^[A-Za-z0-9\-._~!$&'()*+,=:@]$/;

const PREFIXES = ['/', '//', '', 'http://h', 'http://h/', 'https://h:8443//', '*', 'x:'];
const SUFFIXES = ['', '/', '?q=1', '?a/../b', '#f', '/#/..'];

const targetArb = fc.oneof(
  fc
    .tuple(
      fc.constantFrom(...PREFIXES),
      fc.array(fc.oneof(fc.constantFrom(...SEGMENTS), fc.string({ maxLength: 4 })), { maxLength: 6 }),
      fc.constantFrom(...SUFFIXES),
    )
    .map(([prefix, segments, suffix]) => `${prefix}${segments.join('/')}${suffix}`),
  fc.string({ unit: 'binary', maxLength: 40 }),
);

describe('normalizePath: properties', () => {
  it('any string gives a path that starts with / (or is *) and has no // or dot segments, or a reason', () => {
    fc.assert(
      fc.property(targetArb, (raw) => {
        const r = normalizePath(raw);
        if (!r.ok) {
          expect(r.reason).toEqual(expect.any(String));
          return;
        }
        if (r.path === '*') return;
        expect(r.path.startsWith('/')).toBe(true);
        expect(r.path).not.toContain('//');
        expect(r.path.split('/')).not.toContain('.');
        expect(r.path.split('/')).not.toContain('..');
      }),
      { numRuns: 5000 },
    );
  });

  it('a normalised path is a fixed point: normalising it again gives it back', () => {
    fc.assert(
      fc.property(targetArb, (raw) => {
        const r = normalizePath(raw);
        if (r.ok) expect(normalizePath(r.path)).toEqual(r);
      }),
      { numRuns: 5000 },
    );
  });

  it('keeps every escape but those of plain path characters, upper-cased, and nothing that decodes to another escape', () => {
    fc.assert(
      fc.property(targetArb, (raw) => {
        const r = normalizePath(raw);
        if (!r.ok) return;
        for (const [escape] of r.path.matchAll(/%../g)) {
          expect(escape).toMatch(/^%[0-9A-F]{2}$/);
          expect(escape).not.toMatch(/^%(2F|5C|00|3B)$/);
          expect(String.fromCharCode(parseInt(escape.slice(1), 16))).not.toMatch(PLAIN_CHAR);
        }
        expect(r.path).not.toMatch(/%25[0-9a-f]{2}/i);
      }),
      { numRuns: 5000 },
    );
  });

  it('escaping plain characters changes nothing: /log%69n is /login to the rules', () => {
    fc.assert(
      fc.property(
        targetArb,
        fc.infiniteStream(fc.boolean()),
        fc.infiniteStream(fc.boolean()),
        (raw, escapeIt, lowerHex) => {
          // Escape some plain characters of the path part, as a client may.
          const cut = raw.search(/[?#]/);
          const path = cut === -1 ? raw : raw.slice(0, cut);
          const rest = cut === -1 ? '' : raw.slice(cut);
          if (!path.startsWith('/')) return;
          // Not the two characters after a `%`: `%2e` stays one escape.
          const escaped = [...path]
            .map((c, i, all) => {
              const inEscape = all[i - 1] === '%' || all[i - 2] === '%';
              if (inEscape || !PLAIN_CHAR.test(c) || !escapeIt.next().value) return c;
              const hex = c.charCodeAt(0).toString(16).toUpperCase();
              return `%${lowerHex.next().value ? hex.toLowerCase() : hex}`;
            })
            .join('');
          expect(normalizePath(`${escaped}${rest}`)).toEqual(normalizePath(raw));
        },
      ),
      { numRuns: 3000 },
    );
  });

  // Found by the fixed-point property: `%25`, `%3F` and `%23` were decoded into a path whose `%`,
  // `?` or `#` a second pass (or any later stage that treats the result as a path again, such as
  // an app behind a second proxy) read as an escape or a delimiter.
  it('keeps /a%25 a fixed point (it was decoded to /a%, which a second pass refused)', () => {
    const r = normalizePath('/a%25');
    expect(r).toEqual({ ok: true, path: '/a%25' });
    expect(r.ok && normalizePath(r.path)).toEqual(r);
  });

  it('keeps /a%3Fb a fixed point (it was decoded to /a?b, which a second pass cut to /a)', () => {
    const r = normalizePath('/a%3Fb');
    expect(r).toEqual({ ok: true, path: '/a%3Fb' });
    expect(r.ok && normalizePath(r.path)).toEqual(r);
  });

  it('refuses /x/%252e%252e/y (it was decoded to /x/%2e%2e/y, a dot segment to a double decoder)', () => {
    expect(normalizePath('/x/%252e%252e/y').ok).toBe(false);
  });

  // Found while probing absolute-form targets: the backslash check ran after `new URL()`, which
  // turns `\` into `/` for http(s), so the form refused in origin-form passed in absolute-form.
  it('refuses a backslash in an absolute-form target as it does in origin-form', () => {
    expect(normalizePath('/api\\login').ok).toBe(false);
    expect(normalizePath('http://h/api\\login').ok).toBe(false);
  });
});

const MINIMAL = {
  upstream: 'http://127.0.0.1:3000',
  secret: 'a-secret-of-sixteen+',
  login: [JSON_LOGIN_RULE],
};

const TOP_KEYS = [
  'listen',
  'upstream',
  'timeouts',
  'store',
  'secret',
  'mode',
  'failMode',
  'cache',
  'sessions',
  'login',
  'refresh',
  'logout',
  'tokens',
  'protect',
  'trustedProxies',
  'maxLoginBody',
  'reject',
  'admin',
  'log',
  'shutdownGrace',
  '__proto__',
  'constructor',
  'toString',
];
const STRINGS = [
  '${SG_SET}',
  '${SG_UNSET}',
  '${SG_UNSET:-x}',
  'POST /login',
  'json:a.b',
  'cookie:sid',
  '10s',
  '-1',
  '',
];
const jsonish = fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.constantFrom(...STRINGS));
const ruleArb = fc.dictionary(
  fc.constantFrom('match', 'token', 'user', 'success', 'probe', 'from', 'x'),
  fc.oneof(fc.constantFrom(...STRINGS), jsonish),
  { maxKeys: 4 },
);

/** Valid configurations with some keys replaced, added or given wrong shapes, or anything at all. */
const configArb = fc.oneof(
  jsonish,
  fc
    .tuple(
      fc.dictionary(fc.constantFrom(...TOP_KEYS), jsonish, { maxKeys: 3 }),
      fc.option(fc.array(ruleArb, { maxLength: 2 }), { nil: undefined }),
      fc.option(fc.dictionary(fc.constantFrom('limit', 'onLimit', 'idleTimeout', 'limt'), jsonish), {
        nil: undefined,
      }),
    )
    .map(([overrides, login, sessions]) => {
      // JSON.parse, as a config file would, so a __proto__ key is an own key as YAML makes it.
      const raw = JSON.parse(JSON.stringify({ ...MINIMAL, ...overrides })) as Record<string, unknown>;
      if (login) raw.login = login;
      if (sessions) raw.sessions = sessions;
      return raw;
    }),
);

/** What parseConfig did: a config, a ConfigError, or something else (the failure we look for). */
function outcome(raw: unknown): 'config' | 'config-error' | unknown {
  try {
    const { config } = parseConfig(raw, { SG_SET: 'from-the-environment-0123' });
    expect(Object.isFrozen(config)).toBe(true);
    return 'config';
  } catch (err) {
    if (err instanceof ConfigError) {
      expect(err.problems.length).toBeGreaterThan(0);
      return 'config-error';
    }
    return err;
  }
}

/** The problems of the ConfigError parseConfig throws (fails the test if it gives a config). */
function problemsOf(raw: unknown): readonly ConfigProblem[] {
  try {
    parseConfig(raw, {});
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('parseConfig gave a config');
}

describe('parseConfig: properties', () => {
  it('any JSON-ish value gives a frozen config or a ConfigError with a problem, never another exception', () => {
    fc.assert(
      fc.property(configArb, (raw) => {
        expect(['config', 'config-error']).toContain(outcome(raw));
      }),
      { numRuns: 3000 },
    );
  });

  it('the generator reaches both outcomes (so the property above is not only about errors)', () => {
    const outcomes = new Set(fc.sample(configArb, { numRuns: 2000, seed: 7 }).map(outcome));
    expect(outcomes).toEqual(new Set(['config', 'config-error']));
  });

  // Found by probing depth: substituteEnv (and zod after it) recursed, so a deeply nested value
  // escaped as a RangeError instead of a ConfigError. A config file of 10k levels is not a real
  // config, but `sessiongate check` should still say "invalid configuration", not crash.
  it('answers a 100k-deep value with a ConfigError naming its top-level key (a RangeError escaped)', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 100_000; i++) deep = { a: deep };
    expect(problemsOf({ ...MINIMAL, cache: deep })).toEqual([
      { path: 'cache', message: `nested deeper than ${MAX_CONFIG_DEPTH} levels` },
    ]);
  });

  it('answers a cyclic value and a BigInt with a ConfigError', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(problemsOf({ ...MINIMAL, cache: cyclic })).toEqual([
      { path: 'cache', message: `nested deeper than ${MAX_CONFIG_DEPTH} levels` },
    ]);
    expect(problemsOf({ ...MINIMAL, maxLoginBody: 10n })).toEqual([
      { path: 'maxLoginBody', message: expect.stringContaining('(got bigint)') },
    ]);
  });

  // Found with the __proto__ key of the generator: substituteEnv copied keys with `out[k] = v`, so
  // an own `__proto__` key (YAML and JSON.parse both make one) became the prototype of the copy;
  // zod then read `secret` through the prototype and never reported `__proto__` as unknown.
  it('reports a __proto__ key as unknown instead of reading settings through it', () => {
    const raw = JSON.parse(
      '{"__proto__":{"secret":"a-secret-of-sixteen+"},"upstream":"http://127.0.0.1:3000","login":[{"match":"POST /l","token":"json:t","user":"json:u"}]}',
    ) as unknown;
    expect(problemsOf(raw)).toEqual(
      expect.arrayContaining([
        { path: '__proto__', message: expect.stringMatching(/^unknown key/) },
        { path: 'secret', message: 'required' },
      ]),
    );
  });

  it('reports a __proto__ key of a YAML file as unknown, also inside a rule', () => {
    const raw: unknown = parseYaml(
      [
        'upstream: http://127.0.0.1:3000',
        'secret: a-secret-of-sixteen+',
        'login:',
        '  - match: POST /l',
        '    token: json:t',
        '    __proto__: { user: json:u }',
      ].join('\n'),
    );
    expect(problemsOf(raw)).toEqual(
      expect.arrayContaining([
        { path: 'login[0].__proto__', message: expect.stringMatching(/^unknown key/) },
        { path: 'login[0].user', message: expect.stringMatching(/^required/) },
      ]),
    );
  });
});
