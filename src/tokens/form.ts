/**
 * Reads one field of an `application/x-www-form-urlencoded` login, refresh or logout body the way
 * every common app stack would agree on, or answers "ambiguous". The gateway charges a login to the
 * user it reads here; if the app reads another user from the same bytes, anyone can sign anyone out
 * (DESIGN.md, "Parser differentials"). So a key counts against the field when any of these stacks
 * would file it under the field, and one such key that is not exactly the field is already too many:
 *
 * - WHATWG (URLSearchParams, undici `formData()`), Django, Go, Java servlets: the decoded key as is;
 *   repeats are kept, and some read the first (URLSearchParams, Go), some the last (Django).
 * - The URLSearchParams string constructor: drops one leading `?` of the body (`?username=`).
 * - qs (express `urlencoded({ extended: true })`): `a[b]`, `a[]`, `a[0]`, `[a]` nest; a repeated key
 *   becomes an array; a pair splits at `]=` before its first `=`; only the first 1000 pairs count.
 * - qs with `allowDots`, Spring and ASP.NET model binding: `a.b` nests like `a[b]`.
 * - ASP.NET (`Request.Form`): keys compare ignoring case, so every comparison here does.
 * - PHP (`$_POST`, parse_str): the last value wins; a NUL ends the name; leading spaces are dropped;
 *   `.` and space become `_` before the first `[`; `a[b]`, `a[]` nest; an unmatched first `[`
 *   becomes `_` (PHP 8 also maps `.`, space and `[` after it to `_`; PHP 7 keeps them).
 * - Rack 2 (Rails < 7.1): leading `[`/`]` and trailing `]` of a name are dropped (`[a]`, `a]` -> `a`),
 *   spaces after `&` too; `a` without `=` is nil, not "". Rack 3: `a[b]`, `a[]` nest, a lone
 *   trailing `[` keeps the whole name.
 * - Python before 3.9.2, Django before 3.2, old Rack query strings: `;` separates pairs like `&`.
 * - body-parser (iconv-lite) and TextDecoder strip a UTF-8 byte order mark before the first key.
 *
 * A name of the field is itself read with the same readers, so a configured `user[email]` (Devise)
 * is not confused by `user[password]`, while `user=x` or `user[email][]=x` beside it are ambiguous.
 *
 * Values: the field's value must percent-decode cleanly to valid UTF-8 (an app decoding latin1 or
 * replacing bad bytes would read another user), with no NUL (C-string stores truncate there), no
 * U+FFFD (the body was not valid UTF-8 before it reached us) and no lone surrogate (URLSearchParams
 * turns it into U+FFFD, qs keeps it).
 *
 * The same exact key twice, even with equal values, is ambiguous: qs hands the app an array, not the
 * string, so "every stack reads this value" does not hold. So is the field without `=` (Rack: nil),
 * and the field after the 1000th `&` (qs and PHP's max_input_vars stop before it).
 *
 * Reasons never quote the body: it holds passwords and tokens.
 */

export type FieldRead =
  | { readonly kind: 'value'; readonly value: string }
  | { readonly kind: 'absent' }
  | { readonly kind: 'ambiguous'; readonly reason: string };

/** A name as one stack files it: the root name, then the nested keys (`''` is `[]`, "append"). */
type NamePath = readonly string[];

interface NameReader {
  readonly stack: string;
  /** The path this stack reads the decoded name as, or undefined when it drops the pair. */
  readonly read: (name: string) => NamePath | undefined;
}

/** qs (and body-parser) read at most this many `&`-separated parts; PHP's max_input_vars is the same. */
const PARAMETER_LIMIT = 1000;

const ambiguous = (reason: string): FieldRead => ({ kind: 'ambiguous', reason });

export function readFormField(body: string, field: string): FieldRead {
  if (field === '') return ambiguous('an empty field name means a different key to each stack');
  const fieldPaths = READERS.map((r) => r.read(field));
  let found: FieldRead = { kind: 'absent' };
  let index = -1;
  let start = 0;
  while (start <= body.length) {
    let end = body.indexOf('&', start);
    if (end === -1) end = body.length;
    const pair = body.slice(start, end);
    start = end + 1;
    index++;
    if (pair === '') continue;
    const stack = relatedStack(pair, fieldPaths);
    if (stack === undefined) continue;
    if (found.kind !== 'absent')
      return ambiguous('the field appears more than once (qs reads an array, PHP the last value)');
    found = readExactPair(pair, field, index) ?? ambiguous(`a variant of the field (${stack})`);
    if (found.kind === 'ambiguous') return found;
  }
  return found;
}

/**
 * Why some stack would read this pair as the field or a part of it, or undefined. Looks at every key
 * a stack could cut out of the pair (at the first `=`, at qs's `]=`, between `;`) under every decoding
 * an app could apply (UTF-8 with replacement, latin1, qs's raw fallback on a decoding error).
 */
function relatedStack(pair: string, fieldPaths: readonly (NamePath | undefined)[]): string | undefined {
  const cuts: [string, string][] = [[keyOf(pair), '']];
  const qsKey = qsKeyOf(pair);
  if (qsKey !== cuts[0]?.[0]) cuts.push([qsKey, ', cut at `]=` as qs does']);
  if (pair.includes(';'))
    for (const piece of pair.split(';'))
      cuts.push([keyOf(piece), ', cut at `;` as Python before 3.9.2 and Django before 3.2 do']);
  for (const [rawKey, how] of cuts) {
    for (const name of decodings(rawKey)) {
      for (let i = 0; i < READERS.length; i++) {
        const fieldPath = fieldPaths[i];
        const reader = READERS[i] as NameReader;
        if (fieldPath === undefined) continue;
        const path = reader.read(name);
        if (path !== undefined && related(path, fieldPath)) return `${reader.stack}${how}`;
      }
    }
  }
  return undefined;
}

/**
 * The value of a pair already known to be about the field, if every stack reads this pair as the
 * field itself with this one value; undefined when its key is a variant (the caller names the stack).
 */
function readExactPair(pair: string, field: string, index: number): FieldRead | undefined {
  const eq = pair.indexOf('=');
  const key = strictDecode(eq === -1 ? pair : pair.slice(0, eq));
  if (key !== field) {
    if (key === undefined && decodings(keyOf(pair)).includes(field))
      return ambiguous('malformed percent-encoding or UTF-8 in the name of the field');
    return undefined;
  }
  if (pair.includes(';'))
    return ambiguous('a `;` in the pair (Python before 3.9.2 and old Django split there)');
  const qsPair = qsBrackets(pair);
  const qsEq = qsSplitAt(qsPair);
  if (qsEq !== -1 && strictDecode(qsPair.slice(0, qsEq)) !== field)
    return ambiguous('a `]=` in the value (qs splits the pair there)');
  if (eq === -1) return ambiguous('the field without `=` (Rack reads nil, the others an empty string)');
  if (index >= PARAMETER_LIMIT)
    return ambiguous(`the field comes after ${PARAMETER_LIMIT} parameters (qs and PHP stop reading there)`);
  const rawValue = pair.slice(eq + 1);
  if (LONE_SURROGATE.test(rawValue)) return ambiguous('a lone surrogate in the value');
  const value = strictDecode(rawValue);
  if (value === undefined) return ambiguous('malformed percent-encoding or UTF-8 in the value');
  if (value.includes('\0')) return ambiguous('a NUL in the value');
  if (value.includes('\uFFFD'))
    return ambiguous('a replacement character in the value (the body was not UTF-8)');
  return { kind: 'value', value };
}

function keyOf(pair: string): string {
  const eq = pair.indexOf('=');
  return eq === -1 ? pair : pair.slice(0, eq);
}

/** qs decodes `%5B`/`%5D` before it splits, and splits at `]=` when there is one. */
const qsBrackets = (pair: string): string => pair.replace(/%5B/gi, '[').replace(/%5D/gi, ']');

function qsSplitAt(qsPair: string): number {
  const bracketEq = qsPair.indexOf(']=');
  return bracketEq === -1 ? qsPair.indexOf('=') : bracketEq + 1;
}

function qsKeyOf(pair: string): string {
  const qsPair = qsBrackets(pair);
  const at = qsSplitAt(qsPair);
  return at === -1 ? qsPair : qsPair.slice(0, at);
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const lenientUtf8 = new TextDecoder('utf-8', { ignoreBOM: true });

interface Decoded {
  /** WHATWG: UTF-8 with U+FFFD for bad bytes, a bad `%` kept as is. */
  readonly lenient: string;
  /** Each percent-encoded byte as one character (latin1 apps, PHP's bytes for ASCII names). */
  readonly latin1: string;
  /** Undefined when a `%` is not followed by two hex digits or the bytes are not UTF-8. */
  readonly strict: string | undefined;
}

/** `+` is a space, `%XX` a byte; runs of bytes decode as UTF-8 (WHATWG urlencoded parsing). */
function decode(raw: string): Decoded {
  const s = raw.includes('+') ? raw.replaceAll('+', ' ') : raw;
  if (!s.includes('%')) return { lenient: s, latin1: s, strict: s };
  let lenient = '';
  let latin1 = '';
  let strict: string | undefined = '';
  let i = 0;
  while (i < s.length) {
    const pct = s.indexOf('%', i);
    const plainEnd = pct === -1 ? s.length : pct;
    const plain = s.slice(i, plainEnd);
    lenient += plain;
    latin1 += plain;
    if (strict !== undefined) strict += plain;
    if (pct === -1) break;
    const bytes: number[] = [];
    let j = pct;
    while (j + 2 < s.length && s[j] === '%' && isHex(s.charCodeAt(j + 1)) && isHex(s.charCodeAt(j + 2))) {
      bytes.push(Number.parseInt(s.slice(j + 1, j + 3), 16));
      j += 3;
    }
    if (bytes.length === 0) {
      // A `%` not followed by two hex digits stays a `%` (WHATWG, PHP); qs and strict readers differ.
      lenient += '%';
      latin1 += '%';
      strict = undefined;
      i = pct + 1;
      continue;
    }
    const buf = Uint8Array.from(bytes);
    lenient += lenientUtf8.decode(buf);
    latin1 += Buffer.from(buf).toString('latin1');
    if (strict !== undefined) {
      try {
        strict += strictUtf8.decode(buf);
      } catch {
        strict = undefined;
      }
    }
    i = j;
  }
  return { lenient, latin1, strict };
}

function isHex(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
}

function strictDecode(raw: string): string | undefined {
  return decode(raw).strict;
}

/** Every name an app could decode this raw key to: WHATWG, latin1, and qs's raw fallback on a decoding error. */
function decodings(rawKey: string): string[] {
  const d = decode(rawKey);
  const out = [d.lenient];
  if (d.latin1 !== d.lenient) out.push(d.latin1);
  if (d.strict === undefined) out.push(rawKey.replaceAll('+', ' '));
  return out;
}

/** ASP.NET compares names ignoring case (and every other stack here is covered by this being wider). */
const fold = (s: string): string => s.toUpperCase().toLowerCase();

/**
 * Two paths name the same thing or one contains the other (`user` and `user[email]`), comparing
 * names ignoring case; an append (`[]`) below the root matches any key.
 */
function related(a: NamePath, b: NamePath): boolean {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a[i] as string;
    const y = b[i] as string;
    if (i > 0 && (x === '' || y === '')) continue;
    if (x !== y && fold(x) !== fold(y)) return false;
  }
  return true;
}

/** qs 6.17 `splitKeyIntoSegments`: the part before the first `[`, then balanced `[...]` groups. */
function qsPath(name: string): NamePath | undefined {
  const first = name.indexOf('[');
  const parent = first === -1 ? name : name.slice(0, first);
  const out: string[] = parent ? [parent] : [];
  let open = first;
  while (open !== -1) {
    let level = 1;
    let close = -1;
    for (let i = open + 1; i < name.length && close === -1; i++) {
      const c = name[i];
      if (c === '[') level++;
      else if (c === ']' && --level === 0) close = i;
    }
    if (close === -1) {
      // An unterminated group stays one literal key, with its `[` (qs: "[[]b" -> "[[]b]" -> "[[]b").
      out.push(name.slice(open));
      break;
    }
    out.push(name.slice(open + 1, close));
    open = name.indexOf('[', close + 1);
  }
  return out.length === 0 ? undefined : out;
}

/** qs `topLevelDotsToBrackets` (allowDots): `a.b[c.d]` -> `a[b][c.d]`. */
function dotsToBrackets(name: string): string {
  let out = '';
  let depth = 0;
  for (let i = 0; i < name.length; i++) {
    const c = name[i] as string;
    if (c === '[') depth++;
    else if (c === ']' && depth > 0) depth--;
    if (c === '.' && depth === 0 && i + 1 < name.length && name[i + 1] !== '.' && name[i + 1] !== '[') {
      let j = i + 1;
      while (j < name.length && name[j] !== '.' && name[j] !== '[') j++;
      out += `[${name.slice(i + 1, j)}]`;
      i = j - 1;
    } else out += c;
  }
  return out;
}

/** PHP `php_register_variable_ex` (main/php_variables.c). */
function phpPath(name: string, mangleAfterUnmatched: boolean): NamePath | undefined {
  const nul = name.indexOf('\0');
  let n = nul === -1 ? name : name.slice(0, nul);
  let s = 0;
  while (n[s] === ' ') s++;
  n = n.slice(s);
  let base = '';
  let i = 0;
  for (; i < n.length; i++) {
    const c = n[i] as string;
    if (c === '[') break;
    base += c === ' ' || c === '.' ? '_' : c;
  }
  if (base === '') return undefined;
  if (i === n.length) return [base];
  const out = [base];
  let ip = i;
  for (let level = 0; ; level++) {
    ip++;
    const indexStart = ip;
    if (/^[ \t\n\v\f\r]$/.test(n[ip] ?? '')) ip++;
    if (n[ip] === ']') out.push('');
    else {
      const close = n.indexOf(']', ip);
      if (close === -1) {
        if (level > 0) return out;
        const rest = n.slice(indexStart);
        return [`${base}_${mangleAfterUnmatched ? rest.replace(/[ .[]/g, '_') : rest}`];
      }
      out.push(n.slice(indexStart, close));
      ip = close;
    }
    ip++;
    if (n[ip] !== '[') return out;
  }
}

/** Rack 2 `normalize_params`: each level's name is the first run of non-brackets, brackets around it dropped. */
function rack2Path(name: string): NamePath | undefined {
  const trimmed = name.replace(/^ +/, '');
  const level = /^[[\]]*([^[\]]+)\]*/;
  const m = level.exec(trimmed);
  if (!m) return undefined;
  const out = [m[1] as string];
  let after = trimmed.slice(m[0].length);
  while (after !== '') {
    if (after === '[') return [trimmed];
    if (after.startsWith('[]')) {
      out.push('');
      after = after.slice(2);
      continue;
    }
    const next = level.exec(after);
    if (!next) break;
    out.push(next[1] as string);
    after = after.slice(next[0].length);
  }
  return out;
}

/** Rack 3 `normalize_params`: the name before a `[` at index 1 or later, then `[x]` and `[]` levels. */
function rack3Path(name: string): NamePath | undefined {
  const start = name.indexOf('[', 1);
  if (start === -1) return name === '' ? undefined : [name];
  const out = [name.slice(0, start)];
  let after = name.slice(start);
  while (after !== '') {
    if (after === '[') return [name];
    if (after.startsWith('[]')) {
      out.push('');
      after = after.slice(2);
      continue;
    }
    const close = after.indexOf(']', 1);
    if (!after.startsWith('[') || close === -1) {
      out.push(after);
      break;
    }
    out.push(after.slice(1, close));
    after = after.slice(close + 1);
  }
  return out;
}

const READERS: readonly NameReader[] = [
  { stack: 'WHATWG, Django, Go, servlets; ASP.NET ignoring case', read: (n) => [n] },
  {
    stack: 'URLSearchParams from a string, which drops a leading `?`',
    read: (n) => [n.startsWith('?') ? n.slice(1) : n],
  },
  {
    stack: 'a UTF-8 decoder stripping a byte order mark',
    read: (n) => [n.startsWith('\uFEFF') ? n.slice(1) : n],
  },
  { stack: 'qs brackets', read: qsPath },
  { stack: 'qs allowDots, Spring or ASP.NET dots', read: (n) => qsPath(dotsToBrackets(n)) },
  { stack: 'PHP 8 name rules', read: (n) => phpPath(n, true) },
  { stack: 'PHP 7 name rules', read: (n) => phpPath(n, false) },
  { stack: 'Rack 2 brackets', read: rack2Path },
  { stack: 'Rack 3 brackets', read: rack3Path },
];
