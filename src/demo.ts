/**
 * `npm start`: a small demo app (cookie-session form login and a JSON/bearer API) with sessiongate in
 * front of it on the in-memory store. Open http://127.0.0.1:8080/ in two browsers and sign in as the
 * same user in both: the first is signed out with the message.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import { loadConfigFile } from './config/load.js';
import { createGateway } from './gateway.js';

const sessions = new Map<string, string>();

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let data = '';
    req.on('data', (c: Buffer) => (data += c.toString('utf8')));
    req.on('end', () => resolve(data));
  });
}

function cookie(req: IncomingMessage, name: string): string | undefined {
  return (req.headers.cookie ?? '')
    .split(';')
    .map((c) => c.trim().split('='))
    .find(([k]) => k === name)?.[1];
}

const page = (body: string) =>
  `<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Demo app</title></head><body style="font-family:system-ui;max-width:32rem;margin:2rem auto">${body}</body></html>`;

async function app(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://demo');
  const user = sessions.get(cookie(req, 'sid') ?? '');
  if (req.method === 'POST' && url.pathname === '/login') {
    const form = new URLSearchParams(await readBody(req));
    const name = form.get('username')?.trim();
    const sid = randomBytes(24).toString('base64url');
    if (!name || form.get('password') !== 'demo') {
      // Like many apps, a failed login still sets a fresh cookie.
      res
        .writeHead(302, {
          location: '/login?error=1',
          'set-cookie': `sid=${sid}; Path=/; HttpOnly; SameSite=Lax`,
        })
        .end();
      return;
    }
    sessions.set(sid, name);
    res
      .writeHead(302, { location: '/account', 'set-cookie': `sid=${sid}; Path=/; HttpOnly; SameSite=Lax` })
      .end();
    return;
  }
  if (req.method === 'POST' && url.pathname === '/logout') {
    sessions.delete(cookie(req, 'sid') ?? '');
    res.writeHead(302, { location: '/login', 'set-cookie': 'sid=; Path=/; Max-Age=0' }).end();
    return;
  }
  if (req.method === 'POST' && url.pathname === '/api/login') {
    let body: { username?: unknown; password?: unknown } = {};
    try {
      body = JSON.parse(await readBody(req)) as typeof body;
    } catch {
      /* answered below */
    }
    if (typeof body.username !== 'string' || body.password !== 'demo') {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"bad credentials"}');
      return;
    }
    const token = randomBytes(24).toString('base64url');
    sessions.set(token, body.username);
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ accessToken: token, user: { id: body.username } }));
    return;
  }
  if (url.pathname === '/api/me') {
    const bearer = req.headers.authorization?.replace(/^Bearer /i, '') ?? '';
    const who = sessions.get(bearer);
    res
      .writeHead(who ? 200 : 401, { 'content-type': 'application/json' })
      .end(JSON.stringify(who ? { user: who } : { error: 'not signed in' }));
    return;
  }
  if (url.pathname === '/account') {
    if (!user) {
      res.writeHead(302, { location: '/login' }).end();
      return;
    }
    res
      .writeHead(200, { 'content-type': 'text/html' })
      .end(
        page(
          `<h1>Hello, ${user.replace(/[<>&"]/g, '')}</h1><p>Your sessions: <a href="/.sessiongate/sessions">/.sessiongate/sessions</a></p><form method="post" action="/logout"><button>Sign out</button></form>`,
        ),
      );
    return;
  }
  res
    .writeHead(200, { 'content-type': 'text/html' })
    .end(
      page(
        `<h1>Demo app behind sessiongate</h1>${url.searchParams.get('error') ? '<p>Wrong password (it is "demo").</p>' : ''}${url.searchParams.get('reason') ? `<p><strong>${url.searchParams.get('reason')}</strong></p>` : ''}<form method="post" action="/login"><label>User <input name="username" value="alice"></label> <label>Password <input name="password" type="password" value="demo"></label> <button>Sign in</button></form>`,
      ),
    );
}

async function main(): Promise<void> {
  const upstream = createServer((req, res) => void app(req, res));
  const appPort = Number(process.env.DEMO_APP_PORT ?? 3000);
  upstream.listen(appPort, '127.0.0.1');
  await once(upstream, 'listening');
  const configFile =
    process.env.SESSIONGATE_CONFIG ?? fileURLToPath(new URL('../../config/demo.yaml', import.meta.url));
  const { config } = loadConfigFile(configFile, {
    SESSIONGATE_SECRET: 'demo-secret-change-me-0123456789',
    ...process.env,
  });
  const gateway = await createGateway(config);
  await gateway.listen();
  process.stdout.write(
    `\n  demo app:    http://127.0.0.1:${appPort}/\n  sessiongate: ${gateway.url}/   (open this one, in two browsers)\n  admin:       ${gateway.adminUrl}/healthz\n\n`,
  );
  const stop = () => void gateway.close(1000).then(() => upstream.close(() => process.exit(0)));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

void main();
