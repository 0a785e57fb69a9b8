/**
 * The pure parts of `ui.liveSignOut`'s page rewrite: the streaming tag inserter (every split of a page
 * into chunks gives the same bytes, and it never holds more than a tag's length) and the reading of a
 * page's Content-Security-Policy.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { scriptAllowance, TagInserter } from '../../src/proxy/html-inject.js';

const TAG = Buffer.from('<script src="/.sessiongate/live.js" defer></script>');

/** Feeds `chunks` through one inserter; the output, and the most bytes it held back at any point. */
function run(chunks: readonly Buffer[]): { out: string; maxHeld: number; inserted: boolean } {
  const inserter = new TagInserter(TAG);
  const parts: Buffer[] = [];
  let fed = 0;
  let sent = 0;
  let maxHeld = 0;
  for (const c of chunks) {
    fed += c.length;
    for (const p of inserter.push(c)) {
      parts.push(p);
      if (p !== TAG) sent += p.length;
    }
    maxHeld = Math.max(maxHeld, fed - sent);
  }
  parts.push(...inserter.end());
  return { out: Buffer.concat(parts).toString('latin1'), maxHeld, inserted: inserter.inserted };
}

/** Every way to cut `page` in two, and in three around each offset. */
function splits(page: Buffer): Buffer[][] {
  const out: Buffer[][] = [[page]];
  for (let i = 0; i <= page.length; i++) {
    out.push([page.subarray(0, i), page.subarray(i)]);
    for (let j = i; j <= Math.min(page.length, i + 8); j++)
      out.push([page.subarray(0, i), page.subarray(i, j), page.subarray(j)]);
  }
  out.push([...page].map((b) => Buffer.from([b])));
  return out;
}

const insertAt = (page: string, at: number) => page.slice(0, at) + TAG.toString() + page.slice(at);

describe('TagInserter', () => {
  const page = '<!doctype html><html><head><title>x</title></HEAD><body><p>hi</p></body></html>';

  it('puts the tag before </head>, case-insensitively, whatever the chunk boundaries', () => {
    const expected = insertAt(page, page.indexOf('</HEAD>'));
    for (const chunks of splits(Buffer.from(page))) {
      const r = run(chunks);
      expect(r.out).toBe(expected);
      expect(r.inserted).toBe(true);
      // Never more than the end tag's first six bytes held across a boundary.
      expect(r.maxHeld).toBeLessThanOrEqual(6);
    }
  });

  it('puts it before </body> in a page without a head end tag', () => {
    const noHead = '<html><body><p>hi</p></BODY ></html>';
    const expected = insertAt(noHead, noHead.indexOf('</BODY'));
    for (const chunks of splits(Buffer.from(noHead))) expect(run(chunks).out).toBe(expected);
  });

  it('passes a page with neither unchanged, and ends with the bytes it held', () => {
    const fragment = '<div>a</div></hea';
    for (const chunks of splits(Buffer.from(fragment))) {
      const r = run(chunks);
      expect(r.out).toBe(fragment);
      expect(r.inserted).toBe(false);
    }
  });

  it('takes no other tag for an end tag: </header>, </heading, <head>, </bodyx', () => {
    const tricky = '<head><header></header></heading></bodyx><//head></head>';
    const expected = insertAt(tricky, tricky.lastIndexOf('</head>'));
    for (const chunks of splits(Buffer.from(tricky))) expect(run(chunks).out).toBe(expected);
  });

  it('inserts once: a second </head> and the </body> are left alone', () => {
    const twice = '<head></head><head></head><body></body>';
    expect(run([Buffer.from(twice)]).out).toBe(insertAt(twice, 6));
  });

  it('leaves multi-byte UTF-8 text intact around the tag, for any split (property)', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'grapheme', maxLength: 40 }),
        fc.string({ unit: 'grapheme', maxLength: 40 }),
        fc.array(fc.nat(), { maxLength: 6 }),
        (before, after, cuts) => {
          // A page with no end tag in its text but the one placed here.
          fc.pre(!/<\/(head|body)/i.test(before));
          const text = `${before}</head>${after}`;
          const bytes = Buffer.from(text);
          const offsets = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
          const chunks: Buffer[] = [];
          let last = 0;
          for (const o of offsets) {
            chunks.push(bytes.subarray(last, o));
            last = o;
          }
          chunks.push(bytes.subarray(last));
          const inserter = new TagInserter(TAG);
          const parts = chunks.flatMap((c) => inserter.push(c)).concat(inserter.end());
          const at = Buffer.byteLength(before);
          expect(Buffer.concat(parts)).toEqual(
            Buffer.concat([bytes.subarray(0, at), TAG, bytes.subarray(at)]),
          );
        },
      ),
    );
  });
});

describe('scriptAllowance (the enforced Content-Security-Policy)', () => {
  it("allows 'self' or * for scripts and connections, and a page without script or connect rules", () => {
    expect(scriptAllowance(["default-src 'self'"])).toEqual({ allowed: true, nonce: undefined });
    expect(scriptAllowance(["script-src 'self' https://cdn.example; connect-src *"])).toEqual({
      allowed: true,
      nonce: undefined,
    });
    expect(scriptAllowance(["img-src 'none'; frame-ancestors 'none'"])).toEqual({
      allowed: true,
      nonce: undefined,
    });
    // Keywords are case-insensitive; directive names too.
    expect(scriptAllowance(["Script-Src 'SELF'; CONNECT-SRC 'Self'"]).allowed).toBe(true);
  });

  it('carries the policy nonce where only nonces allow scripts, or under strict-dynamic', () => {
    expect(
      scriptAllowance(["script-src 'nonce-r4nd0m+/=' 'strict-dynamic' 'self'; connect-src 'self'"]),
    ).toEqual({ allowed: true, nonce: 'r4nd0m+/=' });
    expect(scriptAllowance(["default-src 'self'; script-src 'nonce-abc'"])).toEqual({
      allowed: true,
      nonce: 'abc',
    });
    // Two policies naming the same nonce: one attribute satisfies both.
    expect(scriptAllowance(["script-src 'nonce-abc'", "script-src 'nonce-xyz' 'nonce-abc'"])).toEqual({
      allowed: true,
      nonce: 'abc',
    });
  });

  it('forbids what it cannot prove allowed: none, hashes, host sources, strict-dynamic without a nonce', () => {
    expect(scriptAllowance(["script-src 'none'"])).toEqual({ allowed: false, why: 'script-src' });
    expect(scriptAllowance(["script-src 'sha256-AAAA'"])).toEqual({ allowed: false, why: 'script-src' });
    expect(scriptAllowance(['script-src https://app.example'])).toEqual({
      allowed: false,
      why: 'script-src',
    });
    expect(scriptAllowance(["script-src 'self' 'strict-dynamic'"])).toEqual({
      allowed: false,
      why: 'script-src',
    });
    expect(scriptAllowance(["script-src 'self'; connect-src 'none'"])).toEqual({
      allowed: false,
      why: 'connect-src',
    });
    expect(scriptAllowance(["default-src 'none'; script-src 'self'"])).toEqual({
      allowed: false,
      why: 'connect-src',
    });
    // Policies with different nonces cannot both be met by one tag.
    expect(scriptAllowance(["script-src 'nonce-abc'", "script-src 'nonce-xyz'"]).allowed).toBe(false);
    // Every policy of a header (comma-separated) must allow it.
    expect(scriptAllowance(["default-src 'self', script-src 'none'"]).allowed).toBe(false);
    expect(scriptAllowance(['sandbox allow-forms'])).toEqual({ allowed: false, why: 'sandbox' });
    expect(scriptAllowance(['sandbox allow-scripts allow-same-origin']).allowed).toBe(true);
  });

  it('reads the first of a repeated directive, as browsers do', () => {
    expect(scriptAllowance(["script-src 'none'; script-src 'self'"]).allowed).toBe(false);
    expect(scriptAllowance(["script-src 'self'; script-src 'none'"]).allowed).toBe(true);
  });
});
