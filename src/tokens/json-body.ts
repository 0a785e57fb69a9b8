/**
 * Reads a JSON login, refresh or logout request body the way every common stack would agree on, or
 * answers "ambiguous" (DESIGN.md, "Parser differentials"; issue 12). JSON.parse keeps the last of two
 * equal keys; Go's encoding/json and Jackson's default keep the last too, but Go (and ASP.NET Core,
 * which binds case-insensitively) also match `USERNAME` or `uſername` to a `username` field, and some
 * parsers keep the first or refuse. So `{"username":"victim","USERNAME":"attacker"}` must not be
 * charged to the victim: any object holding two keys equal after unescaping, or equal ignoring case,
 * is ambiguous.
 *
 * Cost: JSON.parse (V8's is iterative: a 100k-deep array parses) plus one linear scan of the text for
 * the keys of each object, with an explicit stack, so no depth makes either recurse. The value is
 * JSON.parse's own, so it is exactly what the app's JSON.parse builds; a `__proto__` key is an own
 * property there, never a prototype, and `readJsonField` reads own properties only.
 */
import type { FieldRead } from './form.js';

export type { FieldRead } from './form.js';

export type JsonParse =
  | { readonly kind: 'ok'; readonly value: unknown }
  | { readonly kind: 'invalid'; readonly reason: string }
  | { readonly kind: 'ambiguous'; readonly reason: string };

export function parseJsonStrict(text: string): JsonParse {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    // The engine's message quotes the text, which holds passwords: keep a reason of our own.
    return {
      kind: 'invalid',
      reason: err instanceof RangeError ? 'JSON nested too deeply to parse' : 'not valid JSON',
    };
  }
  const duplicate = findDuplicateKey(text);
  return duplicate === undefined ? { kind: 'ok', value } : { kind: 'ambiguous', reason: duplicate };
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;

/** Case folding wide enough for Go's `EqualFold` (`K` and the Kelvin sign, `s` and `ſ`). */
const fold = (s: string): string => s.toUpperCase().toLowerCase();

/**
 * The reason an object of this (valid) JSON text has two keys an app could take for one, or
 * undefined. Each open object keeps its keys, folded, in a map on a stack; arrays push a null.
 */
function findDuplicateKey(text: string): string | undefined {
  const open: (Map<string, string> | null)[] = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const end = stringEnd(text, i);
      const keys = open[open.length - 1];
      if (expectKey && keys) {
        const raw = text.slice(i + 1, end);
        // Only an escaped key pays for unescaping; JSON.parse of one string token is exact.
        const key = raw.includes('\\') ? (JSON.parse(text.slice(i, end + 1)) as string) : raw;
        const folded = fold(key);
        const before = keys.get(folded);
        if (before !== undefined)
          return before === key
            ? 'an object has a duplicate key (parsers differ on which one wins)'
            : 'an object has two keys equal ignoring case (Go and ASP.NET Core read them as one)';
        keys.set(folded, key);
        expectKey = false;
      }
      i = end;
    } else if (c === OPEN_OBJECT) {
      open.push(new Map());
      expectKey = true;
    } else if (c === OPEN_ARRAY) {
      open.push(null);
      expectKey = false;
    } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
      open.pop();
      expectKey = false;
    } else if (c === COMMA) {
      // After a comma in an array no key follows, but an array's frame is null, so this is enough.
      expectKey = true;
    }
  }
  return undefined;
}

/** The index of the quote closing the string that opens at `start`; the text is valid JSON. */
function stringEnd(text: string, start: number): number {
  let from = start + 1;
  for (;;) {
    const q = text.indexOf('"', from);
    if (q === -1) return text.length;
    // A quote is escaped by an odd run of backslashes before it; runs end at the previous quote, so
    // no backslash is counted twice and the scan stays linear.
    let run = 0;
    for (let b = q - 1; text.charCodeAt(b) === BACKSLASH; b--) run++;
    if (run % 2 === 0) return q;
    from = q + 1;
  }
}

const ARRAY_INDEX = /^(?:0|[1-9][0-9]*)$/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * One field of a parsed body (from `parseJsonStrict`, so without duplicate keys) at `a.b.0.c`; the
 * empty path is the body itself. A number segment indexes an array; only own properties are read,
 * so `constructor` or `__proto__` never reach Object.prototype, nor `length` an array's length.
 *
 * Values: a string, or a number that is a safe integer, as `String(n)`. Other numbers are ambiguous:
 * JSON.parse rounds 9007199254740993 to ...992 while Python, Go and Jackson keep it, so two users
 * would be one; and `1.0` or `1e2` print as "1.0" or "100.0" in other stacks. Booleans, null, objects
 * and arrays are ambiguous, not absent: the field is there, and apps turn them into different things
 * (`String(true)` is "true", Python's `str` "True"; a JS app's `String(["a","b"])` is "a,b"; an object
 * can be a query operator such as `{"$ne": null}`). Strings with a lone surrogate (Go replaces it,
 * Rust refuses it), a NUL or U+FFFD (the body was not UTF-8) are ambiguous too.
 */
export function readJsonField(value: unknown, path: string): FieldRead {
  let v = value;
  if (path !== '') {
    for (const segment of path.split('.')) {
      if (Array.isArray(v)) {
        if (!ARRAY_INDEX.test(segment) || Number(segment) >= v.length) return { kind: 'absent' };
      } else if (v === null || typeof v !== 'object') return { kind: 'absent' };
      const own = Object.getOwnPropertyDescriptor(v, segment);
      if (own === undefined || !('value' in own)) return { kind: 'absent' };
      v = own.value;
    }
  }
  if (v === undefined) return { kind: 'absent' };
  if (typeof v === 'string') {
    if (LONE_SURROGATE.test(v)) return ambiguous('a lone surrogate in the string');
    if (v.includes('\0')) return ambiguous('a NUL in the string');
    if (v.includes('\uFFFD'))
      return ambiguous('a replacement character in the string (the body was not UTF-8)');
    return { kind: 'value', value: v };
  }
  if (typeof v === 'number') {
    if (Number.isSafeInteger(v)) return { kind: 'value', value: String(v) };
    return ambiguous(
      Number.isInteger(v)
        ? 'an integer beyond 2^53 (JSON.parse rounds it, other parsers do not)'
        : 'a number that is not an integer (stacks print it differently)',
    );
  }
  if (v === null) return ambiguous('null where a string was expected');
  if (Array.isArray(v)) return ambiguous('an array where a string was expected');
  return ambiguous(`${typeof v === 'object' ? 'an object' : `a ${typeof v}`} where a string was expected`);
}

const ambiguous = (reason: string): FieldRead => ({ kind: 'ambiguous', reason });
