import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseJsonStrict, readJsonField, type FieldRead } from '../../src/tokens/json-body.js';

const value = (v: string): FieldRead => ({ kind: 'value', value: v });
const kindOf = (text: string): string => parseJsonStrict(text).kind;

/** Whether some object of a JSON value has two keys equal ignoring case: the oracle for "ambiguous". */
function hasFoldedDuplicate(v: unknown): boolean {
  if (Array.isArray(v)) return v.some(hasFoldedDuplicate);
  if (v === null || typeof v !== 'object') return false;
  const keys = Object.keys(v).map((k) => k.toUpperCase().toLowerCase());
  return new Set(keys).size !== keys.length || Object.values(v).some(hasFoldedDuplicate);
}

/** A key spelled with every character escaped: `user` as `\u0075\u0073\u0065\u0072`. */
const escaped = (key: string): string =>
  `"${[...key].map((c) => [...c].map((u) => `\\u${u.charCodeAt(0).toString(16).padStart(4, '0')}`).join('')).join('')}"`;

/** A JSON text with one object holding `key` twice (in some spelling), wrapped in arrays and objects. */
const withDuplicate = fc
  .record({
    key: fc.string({ minLength: 1, maxLength: 8 }),
    first: fc.jsonValue({ maxDepth: 2 }),
    second: fc.jsonValue({ maxDepth: 2 }),
    others: fc.dictionary(fc.string({ maxLength: 6 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 }),
    spelling: fc.constantFrom('same', 'escaped', 'upper'),
    wrappers: fc.array(fc.constantFrom('array', 'object'), { maxLength: 6 }),
  })
  .map(({ key, first, second, others, spelling, wrappers }) => {
    const again =
      spelling === 'same'
        ? JSON.stringify(key)
        : spelling === 'escaped'
          ? escaped(key)
          : JSON.stringify(key.toUpperCase());
    const members = Object.entries(others).map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`);
    members.splice(members.length >> 1, 0, `${JSON.stringify(key)}:${JSON.stringify(first)}`);
    members.push(`${again}:${JSON.stringify(second)}`);
    let text = `{${members.join(',')}}`;
    for (const w of wrappers) text = w === 'array' ? `[1,${text}]` : `{"w":${text}}`;
    return text;
  });

describe('parseJsonStrict', () => {
  it('parses valid JSON into the value JSON.parse gives', () => {
    expect(parseJsonStrict('{"user":{"name":"bob"},"n":[1,2]}')).toEqual({
      kind: 'ok',
      value: { user: { name: 'bob' }, n: [1, 2] },
    });
  });

  it('says invalid for what JSON.parse refuses, without quoting the text', () => {
    for (const text of ['', '{', '{"a":1,}', "{'a':1}", 'NaN', '{"password":"hunter2"', '\uFEFF{}']) {
      const r = parseJsonStrict(text);
      expect(r.kind).toBe('invalid');
      expect(JSON.stringify(r)).not.toContain('hunter2');
    }
  });

  it('refuses a duplicate key: JSON.parse keeps the last, other parsers the first', () => {
    expect(kindOf('{"username":"victim","username":"attacker"}')).toBe('ambiguous');
    expect(kindOf('{"a":1,"a":1}')).toBe('ambiguous');
  });

  it('compares keys after unescaping: "user" and "\\u0075ser" are one key', () => {
    expect(kindOf('{"user":"victim","\\u0075ser":"attacker"}')).toBe('ambiguous');
    expect(kindOf('{"a\\"b":1,"a\\u0022b":2}')).toBe('ambiguous');
  });

  it('refuses keys equal ignoring case (Go matches USERNAME and uſername to username)', () => {
    expect(kindOf('{"username":"victim","USERNAME":"attacker"}')).toBe('ambiguous');
    expect(kindOf('{"username":"victim","u\u017Fername":"attacker"}')).toBe('ambiguous');
  });

  it('finds a duplicate at any depth', () => {
    expect(kindOf('{"a":[{"b":{"c":1,"c":2}}]}')).toBe('ambiguous');
  });

  it('does not take equal keys of different objects, or key-like strings, for duplicates', () => {
    expect(kindOf('{"a":{"x":1},"b":{"x":2},"c":[{"x":3},{"x":4}]}')).toBe('ok');
    expect(kindOf('{"a":"a","b":["a","a"],"c":"{\\"d\\":1,\\"d\\":2}","e\\\\":"\\\\","e":1}')).toBe('ok');
  });

  it('keeps a __proto__ key an own property and pollutes nothing', () => {
    const r = parseJsonStrict('{"__proto__":{"user":"admin","polluted":"yes"}}');
    expect(r.kind).toBe('ok');
    const v = r.kind === 'ok' ? r.value : undefined;
    expect(Object.getPrototypeOf(v)).toBe(Object.prototype);
    expect(readJsonField(v, 'user')).toEqual({ kind: 'absent' });
    expect(readJsonField(v, '__proto__.user')).toEqual(value('admin'));
    expect(Object.prototype).not.toHaveProperty('polluted');
    expect(kindOf('{"__proto__":1,"__proto__":2}')).toBe('ambiguous');
  });

  it('parses a 100k-deep array and object without a stack overflow', () => {
    const array = parseJsonStrict(`${'['.repeat(100_000)}${']'.repeat(100_000)}`);
    expect(array.kind).toBe('ok');
    const object = parseJsonStrict(`${'{"a":'.repeat(100_000)}"bob"${'}'.repeat(100_000)}`);
    expect(object.kind).toBe('ok');
    const path = Array.from({ length: 100_000 }, () => 'a').join('.');
    expect(readJsonField(object.kind === 'ok' ? object.value : undefined, path)).toEqual(value('bob'));
  });

  it('gives ok or invalid for a million-deep array, never an exception', () => {
    expect(['ok', 'invalid']).toContain(kindOf(`${'['.repeat(1_000_000)}${']'.repeat(1_000_000)}`));
    expect(kindOf('['.repeat(1_000_000))).toBe('invalid');
    expect(['ok', 'invalid']).toContain(kindOf(`${'{"a":'.repeat(1_000_000)}1${'}'.repeat(1_000_000)}`));
  });

  it('reads big bodies in time linear in their size', () => {
    // Not a timing assertion: a quadratic scan of these would not finish within the test timeout.
    const keys = `{${Array.from({ length: 200_000 }, (_, i) => `"k${i}":${i}`).join(',')},"k7":0}`;
    expect(kindOf(keys)).toBe('ambiguous');
    expect(kindOf(JSON.stringify({ a: '\\"'.repeat(1_000_000), b: '"'.repeat(1_000_000) }))).toBe('ok');
  });
});

describe('parseJsonStrict: properties', () => {
  it('on any JSON value: ok with a value deep-equal to JSON.parse, unless two keys fold together', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        const text = JSON.stringify(v);
        const r = parseJsonStrict(text);
        if (hasFoldedDuplicate(v)) expect(r.kind).toBe('ambiguous');
        else expect(r).toEqual({ kind: 'ok', value: JSON.parse(text) as unknown });
      }),
      { numRuns: 2000 },
    );
  });

  it('whenever it says ok, JSON.parse gives a deep-equal value', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.json(), fc.string({ unit: fc.constantFrom(...'{}[]":,\\u0a1 -.eE'.split('')) })),
        (text) => {
          const r = parseJsonStrict(text);
          if (r.kind === 'ok') expect(r.value).toEqual(JSON.parse(text));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('on objects with an injected duplicate key (plain, escaped or in another case): ambiguous', () => {
    fc.assert(
      fc.property(withDuplicate, (text) => {
        expect(parseJsonStrict(text).kind).toBe('ambiguous');
      }),
      { numRuns: 2000 },
    );
  });

  it('any string gives a result, never an exception', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 100 }), (text) => {
        expect(['ok', 'invalid', 'ambiguous']).toContain(parseJsonStrict(text).kind);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('readJsonField', () => {
  const body = {
    user: {
      name: 'bob',
      id: 42,
      tags: ['a', 'b'],
      admin: true,
      manager: null,
      big: 2 ** 53 + 2,
      ratio: 1.5,
    },
    list: [{ token: 't0' }, { token: 't1' }],
  };

  it('reads strings along a.b.0.c paths', () => {
    expect(readJsonField(body, 'user.name')).toEqual(value('bob'));
    expect(readJsonField(body, 'list.1.token')).toEqual(value('t1'));
    expect(readJsonField('whole', '')).toEqual(value('whole'));
  });

  it('reads a safe integer as its decimal string (1 and "1" are the same user)', () => {
    expect(readJsonField(body, 'user.id')).toEqual(value('42'));
    expect(readJsonField({ id: -0 }, 'id')).toEqual(value('0'));
  });

  it('refuses an integer beyond 2^53 and a fraction: other stacks read another number', () => {
    expect(readJsonField(body, 'user.big').kind).toBe('ambiguous');
    const parsed = parseJsonStrict('{"id":9007199254740993}');
    expect(readJsonField(parsed.kind === 'ok' ? parsed.value : undefined, 'id').kind).toBe('ambiguous');
    expect(readJsonField(body, 'user.ratio').kind).toBe('ambiguous');
  });

  it('refuses booleans, null, objects and arrays: present, but not one string to every app', () => {
    for (const path of ['user.admin', 'user.manager', 'user', 'user.tags'])
      expect(readJsonField(body, path).kind).toBe('ambiguous');
  });

  it('refuses a string with a lone surrogate, a NUL or a replacement character', () => {
    for (const s of ['bob\uD800', 'bob\u0000', 'bob\uFFFD'])
      expect(readJsonField({ u: s }, 'u').kind).toBe('ambiguous');
  });

  it('says absent for a missing key, an index out of range, or a path through a scalar', () => {
    for (const path of [
      'nobody',
      'user.email',
      'list.2.token',
      'list.01.token',
      'list.-1',
      'user.name.first',
    ])
      expect(readJsonField(body, path)).toEqual({ kind: 'absent' });
    expect(readJsonField(null, 'a')).toEqual({ kind: 'absent' });
  });

  it('reads own properties only: no constructor, toString, __proto__ or array length', () => {
    for (const path of [
      'constructor',
      'toString',
      '__proto__',
      'user.tags.length',
      'list.length',
      'user.constructor.name',
    ])
      expect(readJsonField(body, path)).toEqual({ kind: 'absent' });
  });
});
