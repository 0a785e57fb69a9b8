/**
 * Launcher for test/apps/django-auth/: Django (Debian's python3-django) with django.contrib.auth's own
 * LoginView and LogoutView under /accounts/, CSRF enforced, and the session engine of the caller's
 * choice: `db` (Django's default) or `signed_cookies`. Its SQLite file lives in a temporary directory
 * removed on stop.
 *
 *   const app = await startDjangoAuthApp('db');
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { CookieJar } from './jar.js';
import { APPS_DIR, HOST, PYTHON, launch, type StartOptions } from './apps.js';
import { freePort } from './ports.js';
import type { RunningApp } from './running-app.js';

export type DjangoSessionEngine = 'db' | 'signed_cookies';

export async function startDjangoAuthApp(
  engine: DjangoSessionEngine,
  opts: StartOptions = {},
): Promise<RunningApp> {
  const port = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), 'sessiongate-django-auth-'));
  return launch({
    name: `django-auth (${engine})`,
    cmd: PYTHON,
    args: [
      path.join(APPS_DIR, 'django-auth', 'app.py'),
      String(port),
      HOST,
      path.join(dir, 'db.sqlite3'),
      engine,
    ],
    port,
    readyPath: '/accounts/login/',
    opts,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  });
}

/** The `csrfmiddlewaretoken` of the first form of a page. */
export function csrfField(html: string): string {
  const m = /name="csrfmiddlewaretoken" value="([^"]+)"/.exec(html);
  if (!m?.[1]) throw new Error(`no csrfmiddlewaretoken in:\n${html}`);
  return m[1];
}

/** A browser signing in as Django has it: the login page (csrftoken cookie, form token), then the form. */
export async function djangoSignIn(
  jar: CookieJar,
  origin: string,
  username = 'alice',
  password = `pw-${username}`,
): Promise<Response> {
  const page = await jar.fetch(`${origin}/accounts/login/`, { headers: { accept: 'text/html' } });
  const csrfmiddlewaretoken = csrfField(await page.text());
  return jar.fetch(`${origin}/accounts/login/`, { form: { csrfmiddlewaretoken, username, password } });
}

/** The profile page's greeting (`hello alice`), the app's redirect (`-> /accounts/login/...`), or the gateway's rejection code. */
export async function djangoProfile(jar: CookieJar, origin: string): Promise<string> {
  const res = await jar.fetch(`${origin}/accounts/profile/`);
  if (res.status === 401) return String(((await res.json()) as { error?: unknown }).error);
  if (res.status === 302) return `-> ${res.headers.get('location')}`;
  return /<p>(hello [^<]*)<\/p>/.exec(await res.text())?.[1] ?? `status ${res.status}`;
}

/** The logout form of the profile page, posted. */
export async function djangoSignOut(jar: CookieJar, origin: string): Promise<Response> {
  const page = await jar.fetch(`${origin}/accounts/profile/`, { headers: { accept: 'text/html' } });
  const csrfmiddlewaretoken = csrfField(await page.text());
  return jar.fetch(`${origin}/accounts/logout/`, { form: { csrfmiddlewaretoken } });
}
