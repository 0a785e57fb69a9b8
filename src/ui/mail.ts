/**
 * The HTML body of a new-login e-mail, built with the escaping `html` tag: every value (the device and
 * place come from a client's User-Agent and address) is escaped. notify/email.ts gets this function from
 * the gateway (notify does not import ui).
 */
import { html } from './html.js';

/** The placeholders of the e-mail templates, as text. */
export interface LoginMailValues {
  readonly user: string;
  readonly device: string;
  readonly place: string;
  readonly time: string;
  readonly app: string;
  readonly sessionsUrl: string;
  readonly notMeUrl: string;
}

/** `{name}` placeholders of a template, replaced by the named value, escaped; unknown names stay. */
function fill(template: string, values: LoginMailValues): string {
  return template.replace(/\{(\w+)\}/g, (whole, name: string) =>
    Object.hasOwn(values, name) ? html`${values[name as keyof LoginMailValues]}`.toString() : whole,
  );
}

/** The configured HTML template filled in, or the default body: the sentence and both links. */
export function renderLoginMailHtml(values: LoginMailValues, template?: string): string {
  if (template !== undefined) return fill(template, values);
  const v = values;
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>New sign-in to ${v.app}</title></head>
<body style="font-family:system-ui,sans-serif;color:#1d2430;line-height:1.45">
<p id="sentence">New sign-in to <strong>${v.app}</strong> from <strong>${v.device}</strong> in <strong>${v.place}</strong> at ${v.time}.</p>
<p>If this was you, there is nothing to do. <a id="sessions" href="${v.sessionsUrl}">See where you are signed in</a>.</p>
<p>If this was not you: <a id="not-me" href="${v.notMeUrl}">sign out everywhere</a> (the link works once), then change your password.</p>
</body></html>`.toString();
}
