import { spawnSync } from 'node:child_process';
import { needTool } from '../support/tools.js';
import fc from 'fast-check';
import qs from 'qs';
import { describe, expect, it } from 'vitest';
import { readFormField, type FieldRead } from '../../src/tokens/form.js';

/** How one app-side parser reads a field: one string, nothing, or something else (an array, a map). */
type Reading = { kind: 'value'; value: string } | { kind: 'absent' } | { kind: 'other' };

/** WHATWG urlencoded parsing. The `&` keeps the string constructor from dropping a leading `?`. */
function uspRead(body: string, field: string): Reading {
  const all = new URLSearchParams(`&${body}`).getAll(field);
  if (all.length === 0) return { kind: 'absent' };
  return all.length === 1 ? { kind: 'value', value: all[0] as string } : { kind: 'other' };
}

/** The URLSearchParams string constructor (the gateway before issue 12): drops one leading `?`. */
function uspStringRead(body: string, field: string): Reading {
  const all = new URLSearchParams(body).getAll(field);
  if (all.length === 0) return { kind: 'absent' };
  return all.length === 1 ? { kind: 'value', value: all[0] as string } : { kind: 'other' };
}

/** qs with its defaults, as express's `urlencoded({ extended: true })` uses it. */
function qsRead(body: string, field: string): Reading {
  const v: unknown = qs.parse(body)[field];
  if (v === undefined) return { kind: 'absent' };
  return typeof v === 'string' ? { kind: 'value', value: v } : { kind: 'other' };
}

/** Bytes as a string of latin1 characters, the way PHP sees a body. */
const bytesOf = (s: string): string => Buffer.from(s, 'utf8').toString('latin1');

/** PHP's urldecode: `+` is a space, `%XX` a byte, any other `%` stays. */
function phpUrlDecode(s: string): string {
  return s
    .replaceAll('+', ' ')
    .replace(/%([0-9A-Fa-f]{2})/g, (_m, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)));
}

/**
 * PHP 8's `php_register_variable_ex` for the top level of `$_POST`: the name it files a key under
 * and whether that is an array. Reference for the property tests, checked against php itself below.
 */
function phpName(name: string): { name: string; array: boolean } | undefined {
  let n = name.split('\0')[0] as string;
  n = n.replace(/^ +/, '');
  const bracket = n.indexOf('[');
  const head = bracket === -1 ? n : n.slice(0, bracket);
  const base = head.replace(/[ .]/g, '_');
  if (base === '') return undefined;
  if (bracket === -1) return { name: base, array: false };
  let ip = bracket + 1;
  if (/^[ \t\n\v\f\r]$/.test(n[ip] ?? '')) ip++;
  if (n[ip] === ']' || n.indexOf(']', ip) !== -1) return { name: base, array: true };
  return { name: `${base}_${n.slice(bracket + 1).replace(/[ .[]/g, '_')}`, array: false };
}

/** `$_POST[field]` of a body, compared as bytes: its value is the UTF-8 bytes of a string, or not. */
function phpRead(
  body: string,
  field: string,
): { kind: 'value'; bytes: string } | { kind: 'absent' | 'other' } {
  const vars = new Map<string, string | null>();
  for (const part of bytesOf(body).split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const key = phpName(phpUrlDecode(eq === -1 ? part : part.slice(0, eq)));
    if (key === undefined) continue;
    vars.set(key.name, key.array ? null : eq === -1 ? '' : phpUrlDecode(part.slice(eq + 1)));
  }
  const v = vars.get(bytesOf(field));
  if (v === undefined) return { kind: 'absent' };
  return v === null ? { kind: 'other' } : { kind: 'value', bytes: v };
}

const sameReading = (a: Reading, b: Reading): boolean =>
  a.kind === b.kind && (a.kind !== 'value' || (b.kind === 'value' && a.value === b.value));

function phpAgrees(body: string, field: string, reading: Reading): boolean {
  const php = phpRead(body, field);
  if (reading.kind !== 'value') return php.kind === reading.kind;
  return php.kind === 'value' && php.bytes === bytesOf(reading.value);
}

const FIELDS = ['username', 'user_name', 'user'] as const;

/** Keys near the fields: each a trick some stack plays, plus bystanders. */
const KEYS = [
  'username',
  'user_name',
  'user.name',
  'user name',
  'user',
  'User',
  'USERNAME',
  '?username',
  '%75sername',
  'username[]',
  'username[0]',
  'username[x]',
  'username[',
  'username]',
  '[username]',
  ' username',
  '+username',
  'username%00x',
  'user%5Bname%5D',
  'user[name',
  'user[name]',
  '\uFEFFusername',
  'password',
  'x',
  '%zz',
  '%E9',
  '',
];
const VALUES = [
  'bob',
  'alice',
  'a+b',
  '%20',
  '%2B',
  '%26',
  '%zz',
  '%E9',
  '%C3%A9',
  'é',
  '=',
  'a]=b',
  'x;username=y',
  '%00',
  '\uD800',
  '',
];

const pairArb = fc
  .tuple(
    fc.oneof(fc.constantFrom(...KEYS), fc.string({ maxLength: 6 })),
    fc.boolean(),
    fc.oneof(fc.constantFrom(...VALUES), fc.string({ maxLength: 6 })),
  )
  .map(([k, eq, v]) => (eq ? `${k}=${v}` : k));
const bodyArb = fc.oneof(
  fc.array(pairArb, { maxLength: 5 }).map((pairs) => pairs.join('&')),
  // Bodies made of the characters that matter, in any order.
  fc.string({ unit: fc.constantFrom(...'user_nam.&=?[]%+; E9zB5D0'.split('')), maxLength: 30 }),
);
const fieldArb = fc.constantFrom(...FIELDS);

const value = (v: string): FieldRead => ({ kind: 'value', value: v });
const isAmbiguous = (r: FieldRead): boolean => r.kind === 'ambiguous';

describe('form fields: the attacks of issue 12', () => {
  it('reads a plain field', () => {
    expect(readFormField('username=bob&password=secret', 'username')).toEqual(value('bob'));
  });

  it('does not drop a leading ? (qs keeps `?username` as its own key)', () => {
    expect(isAmbiguous(readFormField('?username=victim&username=attacker', 'username'))).toBe(true);
    expect(isAmbiguous(readFormField('?username=attacker', 'username'))).toBe(true);
  });

  it('refuses a repeated field, whatever the values (qs reads an array, PHP the last, URLSearchParams the first)', () => {
    expect(isAmbiguous(readFormField('username=victim&username=attacker', 'username'))).toBe(true);
    expect(isAmbiguous(readFormField('username=bob&username=bob', 'username'))).toBe(true);
  });

  it('refuses bracket forms of the field (`username[]`, `username[0]`, `username[x]`, `[username]`)', () => {
    for (const key of ['username[]', 'username[0]', 'username[x]', '[username]', 'username]'])
      expect(isAmbiguous(readFormField(`${key}=attacker`, 'username'))).toBe(true);
    expect(isAmbiguous(readFormField('username=victim&username[]=attacker', 'username'))).toBe(true);
  });

  it('refuses PHP-mangled names: `user.name`, `user name` and `user[name` are `user_name` to PHP', () => {
    for (const key of ['user.name', 'user+name', 'user[name', ' user_name', 'user_name%00x'])
      expect(isAmbiguous(readFormField(`user_name=victim&${key}=attacker`, 'user_name'))).toBe(true);
    expect(isAmbiguous(readFormField('user.name=attacker', 'user_name'))).toBe(true);
    expect(isAmbiguous(readFormField('user_name=attacker', 'user.name'))).toBe(true);
  });

  it('decodes percent-encoded names, as every stack does', () => {
    expect(readFormField('%75sername=bob', 'username')).toEqual(value('bob'));
    expect(isAmbiguous(readFormField('%75sername=attacker&username=victim', 'username'))).toBe(true);
  });

  it('reads + as a space and decodes percent-encoded UTF-8', () => {
    expect(readFormField('username=jo+bob%20smith', 'username')).toEqual(value('jo bob smith'));
    expect(readFormField('username=a%2Bb', 'username')).toEqual(value('a+b'));
    expect(readFormField('username=Jos%C3%A9', 'username')).toEqual(value('José'));
  });

  it('refuses malformed percent-encoding in the value or the name', () => {
    expect(isAmbiguous(readFormField('username=bob%zz', 'username'))).toBe(true);
    expect(isAmbiguous(readFormField('username=bob%', 'username'))).toBe(true);
    expect(isAmbiguous(readFormField('caf%E9=bob', 'café'))).toBe(true);
  });

  it('refuses a latin1 byte (%E9): a latin1 app reads "é", a UTF-8 one U+FFFD', () => {
    expect(isAmbiguous(readFormField('username=Jos%E9', 'username'))).toBe(true);
  });

  it('refuses a NUL, a replacement character or a lone surrogate in the value', () => {
    for (const v of ['bob%00', 'bob\uFFFD', 'bob%EF%BF%BD', 'bob\uD800'])
      expect(isAmbiguous(readFormField(`username=${v}`, 'username'))).toBe(true);
  });

  it('refuses a name differing only in case (ASP.NET reads it as the field)', () => {
    expect(isAmbiguous(readFormField('Username=attacker', 'username'))).toBe(true);
  });

  it('refuses a `;` in or around the field (old Python and Django split pairs there)', () => {
    expect(isAmbiguous(readFormField('x=1;username=attacker&username=victim', 'username'))).toBe(true);
    expect(isAmbiguous(readFormField('username=victim;username=attacker', 'username'))).toBe(true);
  });

  it('refuses a `]=` in the value (qs splits the pair there)', () => {
    expect(isAmbiguous(readFormField('username=victim]=x', 'username'))).toBe(true);
  });

  it('refuses a byte order mark before the field (body-parser strips it)', () => {
    expect(isAmbiguous(readFormField('\uFEFFusername=attacker', 'username'))).toBe(true);
  });

  it('refuses the field after the 1000th parameter (qs and PHP stop reading there)', () => {
    const filler = Array.from({ length: 1000 }, (_, i) => `f${i}=1`).join('&');
    expect(isAmbiguous(readFormField(`${filler}&username=bob`, 'username'))).toBe(true);
    expect(readFormField(`${filler.slice(0, filler.lastIndexOf('&'))}&username=bob`, 'username')).toEqual(
      value('bob'),
    );
  });

  it('reads a nested field (Devise `user[email]`) beside its siblings, but not beside its parent', () => {
    const body = 'user%5Bemail%5D=a%40b.example&user[password]=x&user[remember_me]=1&commit=Log+in';
    expect(readFormField(body, 'user[email]')).toEqual(value('a@b.example'));
    expect(isAmbiguous(readFormField(`user=x&${body}`, 'user[email]'))).toBe(true);
    expect(isAmbiguous(readFormField(`${body}&user[email][]=y`, 'user[email]'))).toBe(true);
  });

  it('says absent when no key is the field or a variant of it', () => {
    expect(readFormField('usernames=a&user=b&name=c', 'username')).toEqual({ kind: 'absent' });
    expect(readFormField('', 'username')).toEqual({ kind: 'absent' });
  });

  it('refuses the field without `=` (Rack reads nil, the others an empty string)', () => {
    expect(isAmbiguous(readFormField('username&password=x', 'username'))).toBe(true);
    expect(readFormField('username=&password=x', 'username')).toEqual(value(''));
  });
});

describe('form fields: properties against URLSearchParams, qs and PHP', () => {
  it('a value is the single value URLSearchParams, qs and PHP all read', () => {
    fc.assert(
      fc.property(bodyArb, fieldArb, (body, field) => {
        const r = readFormField(body, field);
        if (r.kind !== 'value') return;
        expect(uspRead(body, field)).toEqual(value(r.value));
        expect(qsRead(body, field)).toEqual(value(r.value));
        expect(phpAgrees(body, field, value(r.value) as Reading)).toBe(true);
      }),
      { numRuns: 5000 },
    );
  });

  it('where URLSearchParams (either way), qs and PHP disagree, the answer is ambiguous', () => {
    fc.assert(
      fc.property(bodyArb, fieldArb, (body, field) => {
        const usp = uspRead(body, field);
        const agree =
          sameReading(usp, qsRead(body, field)) &&
          sameReading(usp, uspStringRead(body, field)) &&
          phpAgrees(body, field, usp);
        if (!agree) expect(readFormField(body, field).kind).toBe('ambiguous');
      }),
      { numRuns: 5000 },
    );
  });

  it('absent means no parser reads anything under the field', () => {
    fc.assert(
      fc.property(bodyArb, fieldArb, (body, field) => {
        if (readFormField(body, field).kind !== 'absent') return;
        expect(uspRead(body, field)).toEqual({ kind: 'absent' });
        expect(qsRead(body, field)).toEqual({ kind: 'absent' });
        expect(phpRead(body, field)).toEqual({ kind: 'absent' });
      }),
      { numRuns: 5000 },
    );
  });

  it('any string and any field give a FieldRead, never an exception', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'binary', maxLength: 200 }),
        fc.string({ maxLength: 12 }),
        (body, field) => {
          const r = readFormField(body, field);
          expect(['value', 'absent', 'ambiguous']).toContain(r.kind);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('reads a large body in time linear in its size', () => {
    // Not a timing assertion: a quadratic reader would not finish 200k pairs within the test timeout.
    const body = `${'a=1&'.repeat(200_000)}${'%41'.repeat(100_000)}=x&username=bob`;
    expect(readFormField(body, 'username').kind).toBe('ambiguous');
  });
});

/** Whether a tool runs (the skip rule is test/support/tools.ts's). */
function haveTool(what: string, debianPackage: string, cmd: string, args: string[]): boolean {
  return needTool(
    what,
    debianPackage,
    spawnSync(cmd, args, { stdio: 'ignore', timeout: 15_000 }).status === 0,
  );
}

/**
 * Runs one process over many (body, field) cases, one line each way: base64 in and out, so no byte is
 * reinterpreted on the way. Each output line is `absent`, `other`, `error ...` or `value <base64>`.
 */
function readAll(cmd: string, args: string[], cases: readonly [string, string][]): string[] {
  const input = cases
    .map(([b, f]) => `${Buffer.from(b, 'utf8').toString('base64')} ${Buffer.from(f).toString('base64')}`)
    .join('\n');
  const out = spawnSync(cmd, args, { input: `${input}\n`, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  expect(out.status, out.stderr).toBe(0);
  const lines = out.stdout.trim().split('\n');
  expect(lines).toHaveLength(cases.length);
  return lines;
}

const valueLine = (v: string): string => `value ${Buffer.from(v, 'utf8').toString('base64')}`;
const readingLine = (r: Reading): string => (r.kind === 'value' ? valueLine(r.value) : r.kind);

const havePhp = haveTool('PHP parse_str', 'php-cli', 'php', ['-r', 'exit(0);']);

describe.skipIf(!havePhp)('the PHP reference used above', () => {
  it('files keys as php itself does', () => {
    expect(havePhp, 'php (Debian package php-cli) is required with SESSIONGATE_REQUIRE_ALL=1').toBe(true);
    const cases = fc.sample(fc.tuple(bodyArb, fieldArb), { numRuns: 3000, seed: 12 });
    const script = `
      while (($line = fgets(STDIN)) !== false) {
        [$b, $f] = array_map('base64_decode', explode(' ', trim($line)));
        $o = [];
        parse_str($b, $o);
        if (!array_key_exists($f, $o)) echo "absent\\n";
        elseif (is_array($o[$f])) echo "other\\n";
        else echo 'value ', base64_encode($o[$f]), "\\n";
      }`;
    const lines = readAll('php', ['-d', 'max_input_vars=100000', '-r', script], cases);
    cases.forEach(([body, field], i) => {
      const ref = phpRead(body, field);
      const want =
        ref.kind === 'value' ? `value ${Buffer.from(ref.bytes, 'latin1').toString('base64')}` : ref.kind;
      expect({ body, field, php: lines[i] }).toEqual({ body, field, php: want });
    });
  });
});

const haveRack = haveTool('Rack', 'ruby-rack', 'ruby', ['-e', 'require "rack"']);

describe.skipIf(!haveRack)('form fields: properties against Rack (Rails, Sinatra)', () => {
  it('a value is the value Rack reads, and where Rack and URLSearchParams disagree the answer is ambiguous', () => {
    expect(
      haveRack,
      'ruby with rack (Debian package ruby-rack) is required with SESSIONGATE_REQUIRE_ALL=1',
    ).toBe(true);
    const cases = fc.sample(fc.tuple(bodyArb, fieldArb), { numRuns: 3000, seed: 21 });
    const script = `
      require 'rack'
      require 'base64'
      STDIN.each_line do |line|
        b, f = line.strip.split(' ', -1).map { |x| Base64.decode64(x.to_s).force_encoding('UTF-8') }
        begin
          h = Rack::Utils.parse_nested_query(b, '&')
          v = h[f]
          puts(!h.key?(f) ? 'absent' : v.is_a?(String) ? 'value ' + Base64.strict_encode64(v) : 'other')
        rescue StandardError => e
          puts 'error ' + e.class.name
        end
      end`;
    const lines = readAll('ruby', ['-e', script], cases);
    cases.forEach(([body, field], i) => {
      const r = readFormField(body, field);
      const rack = lines[i] as string;
      // Rack refuses a body it cannot decode as a whole (Rails answers 400): no login to misread.
      if (rack.startsWith('error ')) return;
      if (r.kind === 'value')
        expect({ body, field, rack }).toEqual({ body, field, rack: valueLine(r.value) });
      if (rack !== readingLine(uspRead(body, field)))
        expect({ body, field, read: r.kind }).toEqual({ body, field, read: 'ambiguous' });
    });
  });
});
