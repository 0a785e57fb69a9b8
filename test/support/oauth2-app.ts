/**
 * An OAuth2 authorization server's token endpoints with the resource owner password grant (RFC 6749
 * section 4.3), as an API of an express app: opaque tokens in memory, the client authenticated with HTTP
 * Basic (`spa-client:client-secret`).
 *
 * - `POST /token` (form): `grant_type=password&username&password` (password = `pw-<username>`) ->
 *   {access_token, token_type, expires_in, refresh_token}; `grant_type=refresh_token&refresh_token` ->
 *   a new pair, the old refresh token spent (rotation); errors are 400 {error: invalid_grant} (RFC 6749
 *   section 5.2), 401 {error: invalid_client} without the client's credentials.
 * - `POST /revoke` (form `token`, RFC 7009): the token and its grant's other token revoked; 200 whatever
 *   the token was.
 * - `GET /api/me`: {user} for an access token in `Authorization: Bearer` or `?access_token=` (RFC 6750
 *   section 2.3), 401 otherwise.
 */
import { randomBytes } from 'node:crypto';
import express, { type Request, type Response } from 'express';
import { afterAll, onTestFinished } from 'vitest';
import { listenApp } from './upstreams.js';
import type { RunningApp } from './running-app.js';

export const OAUTH2_CLIENT = `Basic ${Buffer.from('spa-client:client-secret').toString('base64')}`;

interface Grant {
  readonly user: string;
  access: string;
  refresh: string;
}

const open = new Set<() => Promise<void>>();
try {
  // Evaluated while the importing test file is collected, so this hook belongs to that file.
  afterAll(async () => void (await Promise.allSettled([...open].map((c) => c()))));
} catch {
  // Imported outside a vitest run: callers close what they start.
}

export async function startOAuth2App(): Promise<RunningApp> {
  const byAccess = new Map<string, Grant>();
  const byRefresh = new Map<string, Grant>();
  const newToken = () => randomBytes(24).toString('base64url');
  const answer = (res: Response, g: Grant) => {
    res.set('cache-control', 'no-store');
    res.json({ access_token: g.access, token_type: 'Bearer', expires_in: 3600, refresh_token: g.refresh });
  };
  const field = (req: Request, name: string): string | undefined => {
    const v = (req.body as Record<string, unknown>)[name];
    return typeof v === 'string' ? v : undefined;
  };

  const app = express();
  app.use(express.urlencoded({ extended: false }));
  app.post(['/token', '/revoke'], (req, res, next) => {
    if (req.headers.authorization === OAUTH2_CLIENT) return next();
    res.status(401).set('www-authenticate', 'Basic').json({ error: 'invalid_client' });
  });
  app.post('/token', (req, res) => {
    const grantType = field(req, 'grant_type');
    if (grantType === 'password') {
      const user = field(req, 'username') ?? '';
      if (field(req, 'password') !== `pw-${user}`) {
        res.status(400).json({ error: 'invalid_grant' });
        return;
      }
      const g: Grant = { user, access: newToken(), refresh: newToken() };
      byAccess.set(g.access, g);
      byRefresh.set(g.refresh, g);
      answer(res, g);
      return;
    }
    if (grantType === 'refresh_token') {
      const g = byRefresh.get(field(req, 'refresh_token') ?? '');
      if (g === undefined) {
        res.status(400).json({ error: 'invalid_grant' });
        return;
      }
      byRefresh.delete(g.refresh);
      byAccess.delete(g.access);
      g.access = newToken();
      g.refresh = newToken();
      byAccess.set(g.access, g);
      byRefresh.set(g.refresh, g);
      answer(res, g);
      return;
    }
    res.status(400).json({ error: 'unsupported_grant_type' });
  });
  app.post('/revoke', (req, res) => {
    const token = field(req, 'token') ?? '';
    const g = byAccess.get(token) ?? byRefresh.get(token);
    if (g !== undefined) {
      byAccess.delete(g.access);
      byRefresh.delete(g.refresh);
    }
    res.status(200).end();
  });
  app.get('/api/me', (req, res) => {
    const m = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
    const token = m?.[1] ?? (typeof req.query.access_token === 'string' ? req.query.access_token : '');
    const g = byAccess.get(token);
    if (g === undefined) res.status(401).set('www-authenticate', 'Bearer').json({ error: 'invalid_token' });
    else res.json({ user: g.user });
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
