/**
 * A single-page app's API as such apps are commonly written (express + jose): a JSON login answering
 * with a signed JWT access token (HS256, `sub` the user's e-mail, 15 minutes) and an opaque refresh
 * token; the access token is verified statelessly, so a superseded one stays valid at the app until
 * it expires: only the gateway refuses it.
 *
 * - `GET /`: the SPA's page (no sign-in). `POST /api/auth/login` JSON {email, password} (password =
 *   `pw-` + the name before `@`, in lower case): {access_token, refresh_token, token_type, expires_in}; 401 otherwise.
 * - `POST /api/auth/refresh` JSON {refresh_token}: a new pair, the old refresh token spent; 401 if unknown.
 * - `POST /api/auth/logout` (bearer): its refresh tokens spent, 204. `GET /api/me` (bearer): {email}.
 *
 *   const app = await startSpaJwtApp();     // closed when the test (or file) finishes
 */
import { randomBytes } from 'node:crypto';
import express, { type Request } from 'express';
import { jwtVerify, SignJWT } from 'jose';
import { afterAll, onTestFinished } from 'vitest';
import { listenApp } from './upstreams.js';
import type { RunningApp } from './running-app.js';

const KEY = new TextEncoder().encode('sessiongate-test-spa-jwt-signing-key-0123456789');

async function bearerSubject(req: Request): Promise<string | undefined> {
  const m = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
  if (!m?.[1]) return undefined;
  try {
    const { payload } = await jwtVerify(m[1], KEY, { algorithms: ['HS256'] });
    return payload.sub;
  } catch {
    return undefined;
  }
}

const open = new Set<() => Promise<void>>();
try {
  // Evaluated while the importing test file is collected, so this hook belongs to that file.
  afterAll(async () => void (await Promise.allSettled([...open].map((c) => c()))));
} catch {
  // Imported outside a vitest run: callers close what they start.
}

export async function startSpaJwtApp(): Promise<RunningApp> {
  /** refresh token -> the user it was issued to. */
  const refreshTokens = new Map<string, string>();
  const issue = async (email: string) => {
    const refresh_token = randomBytes(24).toString('base64url');
    refreshTokens.set(refresh_token, email);
    const access_token = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(email)
      .setJti(randomBytes(9).toString('base64url'))
      .setIssuedAt()
      .setExpirationTime('15m')
      .sign(KEY);
    return { access_token, refresh_token, token_type: 'Bearer', expires_in: 900 };
  };

  const app = express();
  app.use(express.json());
  app.get('/', (_req, res) => {
    res
      .type('html')
      .send('<!doctype html><title>spa</title><div id="app"></div><script src="/app.js"></script>');
  });
  app.post('/api/auth/login', async (req, res) => {
    const { email, password } = req.body as { email?: unknown; password?: unknown };
    if (typeof email !== 'string' || password !== `pw-${email.split('@')[0]?.toLowerCase()}`) {
      res.status(401).json({ error: 'invalid credentials' });
      return;
    }
    res.json(await issue(email));
  });
  app.post('/api/auth/refresh', async (req, res) => {
    const { refresh_token } = req.body as { refresh_token?: unknown };
    const email = typeof refresh_token === 'string' ? refreshTokens.get(refresh_token) : undefined;
    if (email === undefined || typeof refresh_token !== 'string') {
      res.status(401).json({ error: 'invalid refresh token' });
      return;
    }
    refreshTokens.delete(refresh_token);
    res.json(await issue(email));
  });
  app.post('/api/auth/logout', async (req, res) => {
    const email = await bearerSubject(req);
    if (email === undefined) {
      res.status(401).json({ error: 'not signed in' });
      return;
    }
    for (const [t, e] of refreshTokens) if (e === email) refreshTokens.delete(t);
    res.status(204).end();
  });
  app.get('/api/me', async (req, res) => {
    const email = await bearerSubject(req);
    if (email === undefined) res.status(401).json({ error: 'not signed in' });
    else res.json({ email });
  });

  const running = await listenApp(app);
  open.add(running.close);
  try {
    onTestFinished(running.close);
  } catch {
    // Started in a hook: the file-level afterAll closes it.
  }
  return running;
}
