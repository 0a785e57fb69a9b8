/**
 * Small real upstream apps for the gateway's integration tests, one per login style. Each listens on a
 * port of its own (127.0.0.1:0) and is closed by the test's cleanup (`startGateway` of gateway.ts starts
 * `testApp` and closes it itself).
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT } from 'jose';
import type { RunningApp } from './running-app.js';

// Files of other helpers (test/proxy/policies*.test.ts) import the handle type from here.

/** An in-process app: the RunningApp handle, with its server for tests that attach to it (WebSockets). */
export interface ListeningApp extends RunningApp {
  readonly server: Server;
}

export async function listenApp(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<ListeningApp> {
  const server = createServer(handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  let closed: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    server,
    close: () =>
      (closed ??= new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      })),
  };
}

export function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

export function cookieOf(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return v.join('=');
  }
  return undefined;
}

const newToken = () => randomBytes(18).toString('base64url');

/**
 * A cookie-session app with a form login, as PHP/Java apps do it: success is a 302 to /account, a wrong
 * password a 302 to /login?error=1 that ALSO sets a fresh session cookie.
 */
export async function cookieFormApp(): Promise<RunningApp & { sessions: Map<string, string> }> {
  const sessions = new Map<string, string>();
  const app = await listenApp((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://app');
      if (req.method === 'POST' && url.pathname === '/login') {
        const form = new URLSearchParams((await readBody(req)).toString());
        const sid = newToken();
        const ok = form.get('password') === 'pw';
        if (ok) sessions.set(sid, form.get('username') ?? '');
        res.writeHead(302, {
          location: ok ? '/account' : '/login?error=1',
          'set-cookie': `sid=${sid}; Path=/; HttpOnly`,
        });
        res.end();
        return;
      }
      if (req.method === 'POST' && url.pathname === '/logout') {
        sessions.delete(cookieOf(req, 'sid') ?? '');
        res.writeHead(302, { location: '/login', 'set-cookie': 'sid=; Path=/; Max-Age=0' });
        res.end();
        return;
      }
      const user = sessions.get(cookieOf(req, 'sid') ?? '');
      res.writeHead(user ? 200 : 302, user ? { 'content-type': 'text/plain' } : { location: '/login' });
      res.end(user ? `hello ${user}` : '');
    })();
  });
  return { ...app, sessions };
}

/** One request the test app saw. */
export interface SeenRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingMessage['headers'];
}

export interface TestApp extends RunningApp {
  /** Every request the app received, in order. */
  readonly requests: SeenRequest[];
  /** Live app sessions: token -> user (the app's own view; the gateway's is separate). */
  readonly sessions: Map<string, string>;
}

const escape = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/**
 * The default app of `startGateway`, with the two common login styles:
 *
 * - JSON API: `POST /api/login` `{"username","password"?}` -> 200 `{"accessToken","user":{"id"}}`
 *   (password `"wrong"` -> 401); `POST /api/logout`; the token travels as `Authorization: Bearer`.
 * - Browser form: `GET /login` (a form), `POST /login` (form `username`) -> 302 to `/app` with
 *   `Set-Cookie: sid=<token>; Path=/; HttpOnly; SameSite=Lax`; `POST /logout` clears it.
 *
 * Everything else: `GET /app` is an HTML page for the signed-in user (302 to /login without one); any
 * other path answers JSON `{ok, method, path, user}`. The app trusts its own tokens only: the gateway
 * is what enforces the limit.
 */
export async function testApp(): Promise<TestApp> {
  const requests: SeenRequest[] = [];
  const sessions = new Map<string, string>();
  const newToken = () => randomBytes(24).toString('base64url');
  const app = await listenApp((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://app');
      requests.push({ method: req.method ?? 'GET', path: url.pathname, headers: req.headers });
      const json = (status: number, value: unknown) => {
        const body = JSON.stringify(value);
        res.writeHead(status, {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
        });
        res.end(body);
      };
      const html = (status: number, body: string) => {
        res.writeHead(status, { 'content-type': 'text/html; charset=utf-8' });
        res.end(
          `<!doctype html><html><head><meta charset="utf-8"><title>Test app</title></head><body>${body}</body></html>`,
        );
      };
      const auth = req.headers.authorization;
      const bearerToken = auth?.startsWith('Bearer ') ? auth.slice(7) : undefined;
      const token = bearerToken ?? cookieOf(req, 'sid');
      const user = token === undefined ? undefined : sessions.get(token);

      if (req.method === 'POST' && url.pathname === '/api/login') {
        let body: { username?: unknown; password?: unknown };
        try {
          body = JSON.parse((await readBody(req)).toString()) as typeof body;
        } catch {
          return json(400, { error: 'bad json' });
        }
        if (typeof body.username !== 'string' || body.password === 'wrong')
          return json(401, { error: 'bad credentials' });
        const t = newToken();
        sessions.set(t, body.username);
        return json(200, { accessToken: t, user: { id: body.username } });
      }
      if (req.method === 'POST' && url.pathname === '/api/logout') {
        if (token) sessions.delete(token);
        return json(200, { ok: true });
      }
      if (req.method === 'GET' && url.pathname === '/login') {
        return html(
          200,
          '<h1>Sign in</h1><form method="post" action="/login"><label>User <input name="username"></label><button type="submit">Sign in</button></form>',
        );
      }
      if (req.method === 'POST' && url.pathname === '/login') {
        const username = new URLSearchParams((await readBody(req)).toString()).get('username');
        if (!username) {
          res.writeHead(302, { location: '/login?error=1' });
          res.end();
          return;
        }
        const t = newToken();
        sessions.set(t, username);
        res.writeHead(302, { location: '/app', 'set-cookie': `sid=${t}; Path=/; HttpOnly; SameSite=Lax` });
        res.end();
        return;
      }
      if (req.method === 'POST' && url.pathname === '/logout') {
        if (token) sessions.delete(token);
        res.writeHead(302, { location: '/login', 'set-cookie': 'sid=; Path=/; Max-Age=0' });
        res.end();
        return;
      }
      if (url.pathname === '/app') {
        if (!user) {
          res.writeHead(302, { location: '/login' });
          res.end();
          return;
        }
        return html(
          200,
          `<h1 id="hello">Hello ${escape(user)}</h1><p><a href="/.sessiongate/sessions">Your sessions</a></p>`,
        );
      }
      return json(200, { ok: true, method: req.method, path: url.pathname, user: user ?? null });
    })().catch(() => {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  return { ...app, requests, sessions };
}

export const JWT_KEY = new TextEncoder().encode('test-jwt-signing-key-0123456789abcdef');

/**
 * A JSON API issuing JWTs: `POST /api/login` {username} -> {accessToken, refreshToken, user: {id}} where
 * `user.id` is a number for user "1" (the JWT's `sub` is then the string "1"); `POST /api/refresh`
 * {refreshToken} -> a new pair; `POST /api/logout`; everything else echoes.
 */
export async function jwtApp(options: { sameTokenWithinSecond?: boolean } = {}): Promise<RunningApp> {
  let counter = 0;
  const issue = async (user: string) => {
    const jwt = new SignJWT({ name: user })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(user)
      .setIssuedAt();
    if (!options.sameTokenWithinSecond) jwt.setJti(String(++counter));
    return jwt.sign(JWT_KEY);
  };
  return listenApp((req, res) => {
    void (async () => {
      // Like most frameworks, the app collapses repeated slashes before routing.
      const url = new URL((req.url ?? '/').replace(/\/{2,}/g, '/'), 'http://app');
      const body = (await readBody(req)).toString();
      const json = (status: number, value: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(value));
      };
      if (req.method === 'POST' && (url.pathname === '/api/login' || url.pathname === '/api/sso/login')) {
        const { username, password } = JSON.parse(body) as { username: string; password?: string };
        if (password === 'wrong') return json(401, { error: 'bad credentials' });
        return json(200, {
          accessToken: await issue(username),
          refreshToken: newToken(),
          user: { id: /^\d+$/.test(username) ? Number(username) : username },
        });
      }
      if (req.method === 'POST' && url.pathname === '/api/refresh') {
        const sub = (req.headers.authorization ?? '').length > 0 ? 'x' : 'x';
        return json(200, { accessToken: await issue(sub + newToken()), refreshToken: newToken() });
      }
      if (req.method === 'POST' && url.pathname === '/api/logout') return json(200, { ok: true });
      return json(200, { path: url.pathname, method: req.method, headers: req.headers });
    })();
  });
}
