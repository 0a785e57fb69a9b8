import type { SessionRecord } from '../model.js';
import { describeDevice } from '../sessions/device.js';

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The page a browser gets when its session is gone: the message, when and from which device, a way back. */
export function renderSupersededPage(input: {
  code: string;
  message: string;
  session: SessionRecord | undefined;
  loginUrl: string | undefined;
}): string {
  const s = input.session;
  const by = s?.endedBy?.userAgent ? describeDevice(s.endedBy.userAgent) : undefined;
  const when = s?.endedAt ? new Date(s.endedAt).toUTCString() : undefined;
  const detail =
    input.code === 'session_superseded' && (by || when)
      ? `<p class="detail">New sign-in${by ? ` from <strong>${escapeHtml(by)}</strong>` : ''}${when ? ` at <time datetime="${new Date(s?.endedAt ?? 0).toISOString()}">${escapeHtml(when)}</time>` : ''}.</p>`
      : '';
  const login = input.loginUrl ?? '/';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>You have been signed out</title>
<style>body{font-family:system-ui,sans-serif;margin:0;padding:2rem 1rem;background:#f6f7f9;color:#1d2430}main{max-width:32rem;margin:0 auto;background:#fff;border-radius:12px;padding:1.5rem;box-shadow:0 1px 3px rgba(0,0,0,.1)}h1{font-size:1.3rem;margin-top:0}a.button{display:inline-block;padding:.6rem 1.2rem;background:#2457d6;color:#fff;border-radius:8px;text-decoration:none}.detail{color:#4a5568}</style>
</head><body><main>
<h1>You have been signed out</h1>
<p id="message" data-code="${escapeHtml(input.code)}">${escapeHtml(input.message)}</p>
${detail}
<p><a class="button" href="${escapeHtml(login)}">Sign in again</a></p>
</main></body></html>`;
}
