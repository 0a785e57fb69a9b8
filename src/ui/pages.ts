/**
 * The HTML sessiongate serves itself: the superseded page and the self-service sessions page.
 * Server-rendered with the escaping `html` tag (./html.ts), no framework, no script; one small stylesheet
 * shared by both pages, allowed by hash in the Content-Security-Policy (so no `unsafe-inline`).
 */
import { createHash } from 'node:crypto';
import type { CachedSession } from '../model.js';
import { describeDevice, type SessionView } from '../sessions/device.js';
import { html, raw, type Html } from './html.js';

/** Readable on a phone: one column, large touch targets, system fonts. */
export const PAGE_CSS =
  'body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;padding:1.5rem 1rem;background:#f6f7f9;color:#1d2430;line-height:1.45}' +
  'main{max-width:36rem;margin:0 auto}' +
  '.card{background:#fff;border-radius:12px;padding:1.25rem;box-shadow:0 1px 3px rgba(0,0,0,.1);margin-bottom:1rem}' +
  'h1{font-size:1.35rem;margin:0 0 .75rem}' +
  'ul.sessions{list-style:none;margin:0;padding:0}' +
  'li.session{background:#fff;border-radius:12px;padding:1rem 1.25rem;box-shadow:0 1px 3px rgba(0,0,0,.1);margin-bottom:.75rem}' +
  'li.session.current{border-left:4px solid #2457d6}' +
  '.device{font-weight:600;font-size:1.05rem}' +
  '.badge{display:inline-block;margin-left:.5rem;padding:.1rem .5rem;border-radius:999px;background:#e3ebff;color:#1b46b3;font-size:.8rem;font-weight:600;vertical-align:middle}' +
  'li.session.unfamiliar{border-left:4px solid #c2410c}' +
  '.badge.new{background:#fff1e6;color:#9a3412}' +
  'dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem .75rem;margin:.6rem 0 0;font-size:.92rem}' +
  'dt{color:#5b6577}dd{margin:0;word-break:break-word}' +
  'form{margin:.75rem 0 0}' +
  'button,a.button{display:inline-block;font:inherit;padding:.6rem 1.1rem;border-radius:8px;border:0;cursor:pointer;text-decoration:none;min-height:2.75rem}' +
  'button.end{background:#fff;color:#b42318;border:1px solid #e4b4ae}' +
  'button.end-all{background:#b42318;color:#fff;width:100%}' +
  'button.continue{background:#2457d6;color:#fff;width:100%}' +
  'a.button{display:inline-flex;align-items:center;background:#2457d6;color:#fff}' +
  '.notice{background:#ecfdf3;color:#05603a;padding:.75rem 1rem;border-radius:8px;margin-bottom:1rem}' +
  '.muted,.detail{color:#4a5568}' +
  'p{margin:.5rem 0}';

/** The Content-Security-Policy of every page served here: nothing but the stylesheet above, forms to self. */
export const PAGE_CSP = `default-src 'none'; style-src 'sha256-${createHash('sha256').update(PAGE_CSS).digest('base64')}'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`;

// The stylesheet goes in raw: it is ours, and escaping its quotes would also break its CSP hash.
export function layout(title: string, body: Html): string {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin"><title>${title}</title>
<style>${raw(PAGE_CSS)}</style>
</head><body><main>
${body}
</main></body></html>`.toString();
}

const DATE_FORMAT = new Intl.DateTimeFormat('en-GB', {
  dateStyle: 'medium',
  timeStyle: 'short',
  timeZone: 'UTC',
});

/** "23 Nov 2026, 10:02 UTC" in a <time> element. */
export function timeHtml(ms: number): Html {
  return html`<time datetime="${new Date(ms).toISOString()}">${DATE_FORMAT.format(ms)} UTC</time>`;
}

/** "just now", "5 minutes ago", "3 hours ago", else the date. */
export function relativeHtml(ms: number, now: number): Html {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  const text =
    s < 60
      ? 'just now'
      : s < 3600
        ? plural(Math.floor(s / 60), 'minute')
        : s < 86_400
          ? plural(Math.floor(s / 3600), 'hour')
          : undefined;
  if (text === undefined) return timeHtml(ms);
  return html`<time datetime="${new Date(ms).toISOString()}" title="${DATE_FORMAT.format(ms)} UTC">${text}</time>`;
}

function plural(n: number, unit: string): string {
  return `${n} ${unit}${n === 1 ? '' : 's'} ago`;
}

/** The page a browser gets when its session is gone: the message, when and from which device, a way back. */
export function renderSupersededPage(input: {
  code: string;
  message: string;
  session: CachedSession | undefined;
  loginUrl: string | undefined;
}): string {
  const s = input.session;
  let detail: Html | undefined;
  if (s?.endedAt !== undefined || s?.endedBy?.userAgent) {
    const when = s.endedAt !== undefined ? html` on ${timeHtml(s.endedAt)}` : undefined;
    if (input.code === 'session_superseded') {
      const by = s.endedBy?.userAgent ? describeDevice(s.endedBy.userAgent) : undefined;
      detail = html`<p class="detail" id="detail">A new sign-in${by ? html` from <strong>${by}</strong>` : undefined}${when} ended this session.</p>
<p class="muted">If that was not you, sign in again and change your password.</p>`;
    } else if (input.code === 'session_ended' && when) {
      detail = html`<p class="detail" id="detail">This session was ended${when}.</p>`;
    } else if (input.code === 'session_expired' && when) {
      detail = html`<p class="detail" id="detail">It expired${when}.</p>`;
    }
  }
  const login = input.loginUrl ?? '/';
  return layout(
    'You have been signed out',
    html`<div class="card">
<h1>You have been signed out</h1>
<p id="message" data-code="${input.code}">${input.message}</p>
${detail}
<p><a class="button" href="${login}">Sign in again</a></p>
</div>`,
  );
}

/** One row of the sessions page. */
export interface SessionRow extends SessionView {
  readonly current: boolean;
}

export function renderSessionsPage(input: {
  readonly user: string;
  readonly sessions: readonly SessionRow[];
  /** Base of the action URLs (the reserved prefix, e.g. `/.sessiongate/`). */
  readonly prefix: string;
  readonly csrfToken: string;
  readonly now: number;
  /** Shown once after an action ("1 session ended"). */
  readonly notice?: string;
}): string {
  const csrf = html`<input type="hidden" name="csrf" value="${input.csrfToken}">`;
  const others = input.sessions.filter((s) => !s.current).length;
  // Each row ends its own line (an array is joined with nothing).
  const rows = input.sessions.map((s) => {
    const location = s.place ? html`<dt>Location</dt><dd class="location">${s.place}</dd>` : undefined;
    // A login from a device or a country the user's history has not seen (sessions/history.ts).
    const unfamiliar = s.newDevice || s.newLocation;
    const flags = html`${s.newDevice && html`<span class="badge new new-device">New device</span>`}${s.newLocation && html`<span class="badge new new-location">New location</span>`}`;
    const action = s.current
      ? undefined
      : html`<form method="post" action="${`${input.prefix}sessions/${encodeURIComponent(s.id)}/end`}">${csrf}<button type="submit" class="end" title="End the session on ${s.device}">End</button></form>`;
    return html`<li class="session${s.current && ' current'}${unfamiliar && ' unfamiliar'}" data-session-id="${s.id}"${s.current && html` data-current="true"`}>
<div><span class="device">${s.device}</span>${s.current && html`<span class="badge">This device</span>`}${flags}</div>
<dl>
<dt>IP address</dt><dd class="ip">${s.ip}</dd>
${location}<dt>Signed in</dt><dd class="created">${timeHtml(Date.parse(s.createdAt))}</dd>
<dt>Last active</dt><dd class="last-seen">${s.current ? 'now' : relativeHtml(Date.parse(s.lastSeenAt), input.now)}</dd>
</dl>
${action}
</li>
`;
  });
  const endAll =
    others > 0
      ? html`<form method="post" action="${`${input.prefix}sessions/end-others`}">${csrf}<button type="submit" class="end-all">Log out all other devices</button></form>`
      : html`<p class="muted">You are not signed in anywhere else.</p>`;
  return layout(
    'Your sessions',
    html`<div class="card">
<h1>Your sessions</h1>
<p class="muted">Signed in as <strong id="user">${input.user}</strong>. ${input.sessions.length} active session${input.sessions.length === 1 ? '' : 's'}.</p>
</div>
${input.notice ? html`<p class="notice" role="status">${input.notice}</p>` : undefined}
<ul class="sessions">
${rows}</ul>
<div class="card">${endAll}</div>`,
  );
}

/** For a request without a live session (401), a refused action (403) or a missing one (404). */
export function renderMessagePage(input: {
  readonly title: string;
  readonly message: string;
  readonly code: string;
  readonly link: { readonly href: string; readonly text: string };
}): string {
  return layout(
    input.title,
    html`<div class="card">
<h1>${input.title}</h1>
<p id="message" data-code="${input.code}">${input.message}</p>
<p><a class="button" href="${input.link.href}">${input.link.text}</a></p>
</div>`,
  );
}
