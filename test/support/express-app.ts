/**
 * A real express 4 app, the stack the parser-differential attacks are tried against (DESIGN.md,
 * "Parser differentials"): qs forms (`urlencoded({ extended: true })`), `express.json()`,
 * `cookie-parser`, express's default case-insensitive routing, and server-side sessions in a Map keyed
 * by an opaque random `sid` cookie. It trusts its own tokens only: the gateway enforces the limit.
 *
 * - `POST /login` (form `username`, `password` = `demo`): a new sid, 302 to `/account`. A wrong
 *   password answers 200 with the form; with `rotate=1` it also rotates the presented session (a new
 *   sid for the same session, the old one deleted), as an app regenerating its session id does.
 * - `POST /api/login` (JSON `{username,password}`): `{ accessToken, user: { id } }`; 401 on a bad password.
 * - `POST /api/form-json-login` (JSON `{username,password}`): `{ accessToken }` only, so the user can
 *   only be read from the request (`request.json:username`).
 * - `GET /account`, `GET /api/me`: 200 `{ user }` for a sid cookie or a bearer token, 401 otherwise.
 * - `POST /note` (form, signed in): 200 `saved`. `GET /assets/app.css`: 200 CSS, no sign-in.
 *
 * The app logs in whatever `req.body.username` is (a string, or the array or object qs makes of
 * `username[]=`): naive, like much real code, so a login the gateway misreads shows its effect.
 *
 *   const app = await startExpressApp();
 *   const gw = await startGateway({ upstream: app.url, login: [...] });
 *   app.seen(); // what reached the app
 */
import { randomBytes } from 'node:crypto';
import cookieParser from 'cookie-parser';
import express, { type NextFunction, type Request, type Response } from 'express';
import { afterAll, onTestFinished } from 'vitest';
import { listenApp } from './upstreams.js';
import type { RunningApp } from './running-app.js';

/** The password of every user of the app. */
export const EXPRESS_PASSWORD = 'demo';

/** One request as the app received and parsed it. */
export interface SeenRequest {
  readonly method: string;
  readonly originalUrl: string;
  /** The `Cookie` header as it arrived (Node joins several with `; `). */
  readonly cookie: string | undefined;
  /** The `Authorization` header express reads (Node keeps the first of several). */
  readonly authorization: string | undefined;
  /** Every `Authorization` line of the request as it was on the wire (`req.rawHeaders`). */
  readonly authorizationLines: readonly string[];
  readonly contentEncoding: string | undefined;
  /** The body bytes as they arrived (before body-parser inflates them); complete once the app answered. */
  readonly rawBody: Buffer[];
  /** `req.cookies` after cookie-parser (set once the parsers ran; an empty object if they refused). */
  cookies: Record<string, unknown>;
  /** `req.body` after the body parsers (`{}` when no parser read it, undefined if one refused it). */
  body: unknown;
}

export interface ExpressApp extends RunningApp {
  /** Every request the app got, in order, recorded before any parser could refuse it. */
  seen(): readonly SeenRequest[];
  /** The requests from the `n`th on (`seen().length` before an action, to look at what it caused). */
  seenFrom(n: number): readonly SeenRequest[];
}

interface Session {
  readonly user: unknown;
}

const open = new Set<() => Promise<void>>();
try {
  // Evaluated while the importing test file is collected, so this hook belongs to that file.
  afterAll(async () => {
    await Promise.allSettled([...open].map((c) => c()));
    open.clear();
  });
} catch {
  // Imported outside a vitest run: callers close what they start.
}

const newId = () => randomBytes(18).toString('base64url');

const LOGIN_FORM =
  '<!doctype html><form method="post" action="/login"><input name="username"><input name="password" type="password"><button>Sign in</button></form>';

/**
 * Starts the app on 127.0.0.1:0. Inside a test it closes when the test finishes; in a hook, after
 * the file's tests. `close()` may be called earlier.
 */
export async function startExpressApp(): Promise<ExpressApp> {
  const seen: SeenRequest[] = [];
  const entries = new WeakMap<Request, SeenRequest>();
  const sessions = new Map<string, Session>();
  const bearers = new Map<string, unknown>();

  const app = express();
  // First of all, so a request a parser refuses (415, 400) is still on record.
  app.use((req: Request, _res: Response, next: NextFunction) => {
    const raw = req.rawHeaders;
    const authorizationLines: string[] = [];
    for (let i = 0; i < raw.length; i += 2)
      if ((raw[i] as string).toLowerCase() === 'authorization') authorizationLines.push(raw[i + 1] as string);
    const entry: SeenRequest = {
      method: req.method,
      originalUrl: req.originalUrl,
      cookie: req.headers.cookie,
      authorization: req.headers.authorization,
      authorizationLines,
      contentEncoding: req.headers['content-encoding'],
      rawBody: [],
      cookies: {},
      body: undefined,
    };
    // A second reader of the stream: body-parser attaches its own in this same tick, so none is lost.
    req.on('data', (c: Buffer) => entry.rawBody.push(c));
    seen.push(entry);
    entries.set(req, entry);
    next();
  });
  app.use(cookieParser());
  app.use(express.urlencoded({ extended: true }));
  app.use(express.json());
  app.use((req: Request, _res: Response, next: NextFunction) => {
    const entry = entries.get(req);
    if (entry) {
      entry.cookies = { ...(req.cookies as Record<string, unknown>) };
      entry.body = req.body as unknown;
    }
    next();
  });

  const field = (req: Request, name: string): unknown =>
    typeof req.body === 'object' && req.body !== null
      ? (req.body as Record<string, unknown>)[name]
      : undefined;
  const sidOf = (req: Request): string | undefined => {
    const sid = (req.cookies as Record<string, unknown>).sid;
    return typeof sid === 'string' ? sid : undefined;
  };
  const userOf = (req: Request): unknown => {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
    if (m) return bearers.get(m[1] as string);
    const sid = sidOf(req);
    return sid === undefined ? undefined : sessions.get(sid)?.user;
  };
  const sidCookie = (res: Response, sid: string) => res.cookie('sid', sid, { httpOnly: true, path: '/' });

  app.post('/login', (req, res) => {
    const username = field(req, 'username');
    if (username && field(req, 'password') === EXPRESS_PASSWORD) {
      const sid = newId();
      sessions.set(sid, { user: username });
      sidCookie(res, sid);
      res.redirect(302, '/account');
      return;
    }
    const current = sidOf(req);
    const session = current === undefined ? undefined : sessions.get(current);
    if (field(req, 'rotate') === '1' && current !== undefined && session !== undefined) {
      // A new id for the same session, the old one gone (session_regenerate_id, express-session's regenerate).
      const sid = newId();
      sessions.set(sid, session);
      sessions.delete(current);
      sidCookie(res, sid);
    }
    res.status(200).type('html').send(LOGIN_FORM);
  });

  app.post('/api/login', (req, res) => {
    const username = field(req, 'username');
    if (!username || field(req, 'password') !== EXPRESS_PASSWORD) {
      res.status(401).json({ error: 'bad credentials' });
      return;
    }
    const accessToken = newId();
    bearers.set(accessToken, username);
    res.json({ accessToken, user: { id: username } });
  });

  app.post('/api/form-json-login', (req, res) => {
    const username = field(req, 'username');
    if (!username || field(req, 'password') !== EXPRESS_PASSWORD) {
      res.status(401).json({ error: 'bad credentials' });
      return;
    }
    const accessToken = newId();
    bearers.set(accessToken, username);
    res.json({ accessToken });
  });

  const me = (req: Request, res: Response) => {
    const user = userOf(req);
    if (user === undefined) res.status(401).json({ error: 'not signed in' });
    else res.json({ user });
  };
  app.get('/account', me);
  app.get('/api/me', me);

  app.post('/note', (req, res) => {
    if (userOf(req) === undefined) res.status(401).json({ error: 'not signed in' });
    else res.type('text').send('saved');
  });

  app.get('/assets/app.css', (_req, res) => {
    res.type('css').send('body { color: #222; }\n');
  });

  const running = await listenApp(app);
  let closed: Promise<void> | undefined;
  const close = () => (closed ??= running.close());
  open.add(close);
  try {
    onTestFinished(close);
  } catch {
    // Started in a hook, not a test: the file-level afterAll below closes it.
  }
  return {
    ...running,
    close,
    seen: () => seen,
    seenFrom: (n) => seen.slice(n),
  };
}
