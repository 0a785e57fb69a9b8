/**
 * The one way sessiongate builds HTML. The `html` tag escapes every interpolated value unless the value is
 * already markup (another `html` result, or `raw()` for trusted text such as the stylesheet), so a call
 * site cannot forget to escape: it has to say `raw` to opt out.
 *
 * Escaping covers text content and quoted attribute values (both quote characters are escaped). It does
 * not make a value safe in an unquoted attribute, a `<script>`/`<style>` body or as a URL scheme: write
 * attributes quoted, and keep scripts out (the pages' CSP allows none anyway).
 */

/** Markup that is interpolated as is. Only `html` and `raw` make one (the class itself is not exported). */
class Markup {
  readonly #text: string;
  constructor(text: string) {
    this.#text = text;
  }
  toString(): string {
    return this.#text;
  }
}

export type { Markup as Html };

/**
 * What may be interpolated: text and numbers (escaped), markup (as is), arrays (each item, joined with
 * nothing), and null/undefined/false for "nothing here" so `cond && html\`...\`` reads naturally. `true`
 * is left out on purpose: rendering it would print "true", which is never meant.
 */
export type HtmlValue = string | number | Markup | null | undefined | false | readonly HtmlValue[];

/** Trusted markup, interpolated without escaping. Never pass request or store data here. */
export function raw(markup: string): Markup {
  return new Markup(markup);
}

export function html(strings: TemplateStringsArray, ...values: readonly HtmlValue[]): Markup {
  let out = strings[0] ?? '';
  for (let i = 0; i < values.length; i++) out += render(values[i]) + (strings[i + 1] ?? '');
  return new Markup(out);
}

function render(value: HtmlValue): string {
  if (value === null || value === undefined || value === false) return '';
  if (value instanceof Markup) return value.toString();
  if (Array.isArray(value)) return value.map(render).join('');
  return escape(String(value));
}

// Numeric references, the form the pages have always used, so the escaped bytes stay as they were.
function escape(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
