/**
 * The `html` tag: every value escaped unless it is markup (`html` or `raw`), and lossless.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { plainRejectionPage } from '../../src/proxy/rejection.js';
import { html, raw, type HtmlValue } from '../../src/ui/html.js';

/** What a browser reads back from escaped text: the numeric references the tag writes. */
const decode = (s: string): string =>
  s.replace(/&#(\d+);/g, (_, n: string) => String.fromCharCode(Number(n)));

describe('html tag', () => {
  it('escapes each of < > & " \' in a value', () => {
    expect(html`<p>${`<>&"'`}</p>`.toString()).toBe('<p>&#60;&#62;&#38;&#34;&#39;</p>');
  });

  it('keeps a value inside its quoted attribute, double or single: both quotes are escaped', () => {
    const value = `x" onmouseover="alert(1)' y='`;
    expect(html`<a title="${value}" data-x='${value}'>`.toString()).toBe(
      `<a title="x&#34; onmouseover=&#34;alert(1)&#39; y=&#39;" data-x='x&#34; onmouseover=&#34;alert(1)&#39; y=&#39;'>`,
    );
  });

  it('escapes an ampersand that already looks like a reference, so the text reads as written', () => {
    expect(html`${'&amp; &#60;'}`.toString()).toBe('&#38;amp; &#38;#60;');
  });

  it('renders numbers as text, zero included', () => {
    expect(html`${0} of ${3} (${-1.5})`.toString()).toBe('0 of 3 (-1.5)');
  });

  it('passes raw() through unescaped', () => {
    expect(html`<style>${raw('a{font-family:"Segoe UI"}')}</style>`.toString()).toBe(
      '<style>a{font-family:"Segoe UI"}</style>',
    );
  });

  it('interpolates a nested html result as markup, its own values escaped once', () => {
    const inner = html`<strong>${'<b>'}</strong>`;
    expect(html`<p>${inner}</p>`.toString()).toBe('<p><strong>&#60;b&#62;</strong></p>');
    expect(html`<div>${html`<p>${inner}</p>`}</div>`.toString()).toBe(
      '<div><p><strong>&#60;b&#62;</strong></p></div>',
    );
  });

  it('joins an array with nothing, escaping its strings and keeping its markup', () => {
    const items = ['<a>', html`<li>${'&'}</li>`, 2, ['<nested>', raw('<br>')]];
    expect(html`<ul>${items}</ul>`.toString()).toBe(
      '<ul>&#60;a&#62;<li>&#38;</li>2&#60;nested&#62;<br></ul>',
    );
    expect(html`<ul>${[]}</ul>`.toString()).toBe('<ul></ul>');
  });

  it('renders null, undefined, false and the empty string as nothing', () => {
    const absent: HtmlValue[] = [null, undefined, false, ''];
    for (const value of absent) expect(html`[${value}]`.toString()).toBe('[]');
    expect(html`[${[null, 'a', undefined, false, 'b']}]`.toString()).toBe('[ab]');
  });

  it('returns the literal parts unchanged', () => {
    expect(html`<p class="x">it's & "quoted"</p>`.toString()).toBe(`<p class="x">it's & "quoted"</p>`);
  });
});

describe('html tag, for any string', () => {
  // Strings made mostly of the characters that matter, plus anything at all.
  const text = fc.oneof(
    fc.string({ unit: fc.constantFrom('<', '>', '&', '"', "'", '#', ';', '/', 'a', ' ', '=') }),
    fc.string({ unit: 'binary' }),
  );

  it('never lets a < from the value through, in text or in an attribute', () => {
    fc.assert(
      fc.property(text, (s) => {
        const inText = html`<p>${s}</p>`.toString();
        expect(inText.slice('<p>'.length, -'</p>'.length)).not.toContain('<');
        const inAttr = html`<a title="${s}"></a>`.toString();
        expect(inAttr.slice('<a title="'.length, -'"></a>'.length)).not.toMatch(/[<>"']/);
      }),
    );
  });

  it('is lossless: the escaped text reads back as the value', () => {
    fc.assert(
      fc.property(text, (s) => {
        expect(decode(html`${s}`.toString())).toBe(s);
      }),
    );
  });

  it('escapes a value the same however deeply it is nested in arrays and html results', () => {
    fc.assert(
      fc.property(text, (s) => {
        expect(html`${[[html`${[s]}`]]}`.toString()).toBe(html`${s}`.toString());
      }),
    );
  });
});

describe('the plain rejection page (no renderer injected)', () => {
  it('prints the message and the sign-in URL as text', () => {
    const page = plainRejectionPage({
      code: 'session_superseded',
      message: '<script>alert(1)</script>',
      session: undefined,
      loginUrl: '/login?next="x"&a=1',
    });
    expect(page).not.toContain('<script>');
    expect(page).toContain('<p>&#60;script&#62;alert(1)&#60;/script&#62;</p>');
    expect(page).toContain('<a href="/login?next=&#34;x&#34;&#38;a=1">Sign in again</a>');
  });

  it('leaves the sign-in link out without a sign-in URL', () => {
    const page = plainRejectionPage({
      code: 'session_expired',
      message: 'Expired.',
      session: undefined,
      loginUrl: undefined,
    });
    expect(page).toContain('<p>Expired.</p></main>');
    expect(page).not.toContain('Sign in again');
  });
});
