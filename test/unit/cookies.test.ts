import { parse } from 'cookie';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AMBIGUOUS, cookiePairs, readCookie } from '../../src/tokens/cookies.js';

/**
 * The value an app reads, from the trimmed raw value jshttp `cookie` slices out: cookie@0 (what
 * express's cookie-parser still uses) unquoted a value wrapped in double quotes, then decoded it as
 * cookie@1's default `decode` still does (a malformed escape kept raw). cookie@1 no longer unquotes,
 * so it is parsed with an identity decoder and this finishes the job in cookie@0's order.
 */
function appValue(raw: string): string {
  const v = raw.length >= 2 && raw.startsWith('"') && raw.endsWith('"') ? raw.slice(1, -1) : raw;
  if (!v.includes('%')) return v;
  try {
    return decodeURIComponent(v);
  } catch {
    return v;
  }
}

const rawValues = (header: string): Record<string, string | undefined> => parse(header, { decode: (v) => v });

/** PHP's name mangling as cookies.ts applies it: a `_` of the rule's name also matches `.`, space, `[`. */
function phpMatches(sent: string, configured: string): boolean {
  if (sent.length !== configured.length) return false;
  return [...sent].every((c, i) => c === configured[i] || (configured[i] === '_' && '. ['.includes(c)));
}

/** Our own model of one pair's value: trimmed, unquoted, decoded; undefined when the escape is malformed. */
function decodedValue(raw: string): string | undefined {
  const t = raw.replace(/^[ \t]+|[ \t]+$/g, '');
  const v = t.length >= 2 && t.startsWith('"') && t.endsWith('"') ? t.slice(1, -1) : t;
  try {
    return v.includes('%') ? decodeURIComponent(v) : v;
  } catch {
    return undefined;
  }
}

const nameArb = fc
  .string({ unit: fc.constantFrom('a', 'b', '_', '.', '[', ' '), minLength: 1, maxLength: 4 })
  .filter((n) => n.trim() === n);
const padArb = fc.constantFrom('', ' ', '\t', '  ', ' \t');
const valueArb = fc
  .tuple(
    fc.boolean(),
    fc.array(
      fc.constantFrom(
        'a',
        'b',
        'A',
        '"',
        '=',
        ' ',
        '\t',
        '+',
        ',',
        '%41',
        '%61',
        '%3D',
        '%22',
        '%20',
        '%3B',
        '%C3%A9',
        '%E9',
        '%zz',
        '%4',
        '%',
      ),
      { maxLength: 4 },
    ),
  )
  .map(([quoted, pieces]) => (quoted ? `"${pieces.join('')}"` : pieces.join('')));

interface Part {
  readonly text: string;
  /** Set for a `name=value` pair: the name (without padding) and everything after the `=`. */
  readonly name?: string;
  readonly raw?: string;
}

const pairArb: fc.Arbitrary<Part> = fc
  .tuple(padArb, nameArb, padArb, padArb, valueArb, padArb)
  .map(([before, name, beforeEq, afterEq, value, end]) => ({
    text: `${before}${name}${beforeEq}=${afterEq}${value}${end}`,
    name,
    raw: `${afterEq}${value}${end}`,
  }));
/** A part without `=`: skipped by every reader. */
const junkArb: fc.Arbitrary<Part> = fc.constantFrom('', ' ', 'junk', ' a b ', '"').map((text) => ({ text }));

const headerArb = fc
  .array(fc.oneof({ weight: 4, arbitrary: pairArb }, { weight: 1, arbitrary: junkArb }), { maxLength: 6 })
  .map((parts) => ({ parts, header: parts.map((p) => p.text).join(';') }));

/** A header and a name to look up: one it holds, one it holds as PHP reads it, or any. */
const lookupArb = headerArb.chain(({ parts, header }) => {
  const names = parts.flatMap((p) => (p.name === undefined ? [] : [p.name]));
  const candidates = [nameArb, ...names.map((n) => fc.constantFrom(n, n.replace(/[. []/g, '_')))];
  return fc.tuple(fc.constant({ parts, header }), fc.oneof(...candidates));
});

/** A header with the name sent at least twice (once as PHP reads it, sometimes), among other parts. */
const duplicateArb = fc
  .tuple(headerArb, nameArb, valueArb, valueArb, fc.boolean(), fc.nat(), fc.nat())
  .map(([{ parts }, name, first, second, mangled, i, j]) => {
    const sentName = mangled ? name.replace(/_/g, '.') : name;
    const all = [...parts];
    all.splice(i % (all.length + 1), 0, { text: `${name}=${first}`, name, raw: first });
    all.splice(j % (all.length + 1), 0, { text: ` ${sentName}=${second}`, name: sentName, raw: second });
    return [{ parts: all, header: all.map((p) => p.text).join(';') }, name] as const;
  });

/** Headers of the characters that mean something to a cookie reader, in any order. */
const anyHeaderArb = fc.oneof(
  fc.string({
    unit: fc.constantFrom(';', '=', ' ', '\t', '"', '%', '4', '1', 'a', '_', '.', '['),
    maxLength: 30,
  }),
  fc.string({ unit: 'binary', maxLength: 30 }),
);

describe('readCookie against jshttp cookie: properties', () => {
  it('reads what cookie.parse reads for a name the header holds as written', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          lookupArb.map(([h, n]) => [h.header, n] as const),
          fc.tuple(anyHeaderArb, nameArb),
        ),
        ([header, name]) => {
          const raw = rawValues(header)[name];
          const r = readCookie(header, name);
          if (raw === undefined) return; // only PHP's mangling can find it (or nothing)
          expect(r).not.toBeUndefined();
          if (typeof r === 'string') expect(r).toBe(appValue(raw));
        },
      ),
      { numRuns: 5000 },
    );
  });

  it('answers AMBIGUOUS when the header holds the name twice with different values', () => {
    fc.assert(
      fc.property(duplicateArb, ([{ parts, header }, name]) => {
        const values = parts
          .filter((p) => p.name !== undefined && (p.name === name || phpMatches(p.name, name)))
          .map((p) => decodedValue(p.raw as string))
          .filter((v) => v !== undefined);
        fc.pre(new Set(values).size > 1);
        expect(readCookie(header, name)).toBe(AMBIGUOUS);
      }),
      { numRuns: 2000 },
    );
  });

  it('answers AMBIGUOUS when a value of the name has a malformed escape', () => {
    fc.assert(
      fc.property(fc.oneof(lookupArb, duplicateArb), ([{ parts, header }, name]) => {
        const matching = parts.filter(
          (p) => p.name !== undefined && (p.name === name || phpMatches(p.name, name)),
        );
        fc.pre(matching.some((p) => decodedValue(p.raw as string) === undefined));
        expect(readCookie(header, name)).toBe(AMBIGUOUS);
      }),
      { numRuns: 2000 },
    );
  });

  it('never throws, and answers a string, undefined or AMBIGUOUS', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          headerArb.map((h) => h.header),
          anyHeaderArb,
        ),
        nameArb,
        (header, name) => {
          const r = readCookie(header, name);
          expect(r === undefined || r === AMBIGUOUS || typeof r === 'string').toBe(true);
          for (const p of cookiePairs(header)) {
            expect(typeof p.name).toBe('string');
            expect(p.value === AMBIGUOUS || typeof p.value === 'string').toBe(true);
          }
        },
      ),
      { numRuns: 5000 },
    );
  });
});

describe('cookiePairs against jshttp cookie: properties', () => {
  it('lists the pairs cookie.parse sees, in order, each read as readCookie reads it', () => {
    fc.assert(
      fc.property(headerArb, ({ parts, header }) => {
        const pairs = cookiePairs(header);
        const sent = parts.filter((p) => p.name !== undefined);
        expect(pairs.map((p) => p.name)).toEqual(sent.map((p) => p.name));
        expect(pairs.map((p) => p.canonical)).toEqual(
          sent.map((p) => (p.name as string).replace(/[. []/g, '_')),
        );
        expect(pairs.map((p) => p.value)).toEqual(
          sent.map((p) => decodedValue(p.raw as string) ?? AMBIGUOUS),
        );
        // The first pair of each name is the one cookie.parse keeps.
        const ref = rawValues(header);
        expect(new Set(pairs.map((p) => p.name))).toEqual(new Set(Object.keys(ref)));
        for (const [name, raw] of Object.entries(ref)) {
          const first = pairs.find((p) => p.name === name);
          if (first?.value !== AMBIGUOUS) expect(first?.value).toBe(appValue(raw ?? ''));
        }
      }),
      { numRuns: 3000 },
    );
  });
});

describe('readCookie: examples', () => {
  it('reads a cookie after a tab', () => {
    expect(readCookie('a=1;\tsid=abc', 'sid')).toBe('abc');
  });

  it('reads a cookie with a space before the =', () => {
    expect(readCookie('sid =abc; b=2', 'sid')).toBe('abc');
  });

  it('unquotes a quoted value', () => {
    expect(readCookie('sid="abc"', 'sid')).toBe('abc');
  });

  it('percent-decodes a value (express-session s%3A...)', () => {
    expect(readCookie('sid=s%3Aabc.sig', 'sid')).toBe('s:abc.sig');
  });

  it('keeps encoded quotes: they are decoded after unquoting, as cookie@0 does', () => {
    expect(readCookie('sid=%22abc%22', 'sid')).toBe('"abc"');
  });

  it('reads laravel.session as laravel_session, as PHP names it', () => {
    expect(readCookie('laravel.session=xyz', 'laravel_session')).toBe('xyz');
    expect(cookiePairs('laravel.session=xyz')).toEqual([
      { name: 'laravel.session', canonical: 'laravel_session', value: 'xyz' },
    ]);
  });

  it('answers AMBIGUOUS for a malformed escape (%zz)', () => {
    expect(readCookie('sid=ab%zz', 'sid')).toBe(AMBIGUOUS);
  });

  it('answers AMBIGUOUS for the name sent twice with different values, not for one value twice', () => {
    expect(readCookie('sid=a; sid=b', 'sid')).toBe(AMBIGUOUS);
    expect(readCookie('laravel.session=a; laravel_session=b', 'laravel_session')).toBe(AMBIGUOUS);
    expect(readCookie('sid=s%3Aa; sid=s:a', 'sid')).toBe('s:a');
  });
});
