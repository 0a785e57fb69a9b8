import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Registry } from 'prom-client';
import { codeOf, isAnswered, sendError } from '../errors.js';
import { readCapped } from '../http/body.js';
import type { LoginRuleConfig } from '../config/schema.js';
import type { SessionRecord } from '../model.js';
import type { Logger } from '../observability/logger.js';
import { sessionView, type SessionView } from '../sessions/device.js';
import type { SessionService } from '../sessions/service.js';
import type { TlsMaterial } from '../tls.js';
import { compileNormalize } from '../tokens/exchange.js';

export { sessionView, type SessionView };

export interface AdminOptions {
  readonly sessions: SessionService;
  readonly registry: Registry;
  readonly logger: Logger;
  /** Bearer token; unset: only the open endpoints answer. */
  readonly token: string | undefined;
  readonly open: readonly ('healthz' | 'readyz' | 'metrics')[];
  /** Whether the gateway should get traffic (store healthy, not draining), and why not. */
  readonly readiness: () => Readiness;
  /**
   * The `normalize` steps of each login rule, so `/admin/users/Alice/...` finds the sessions a rule
   * registered as `alice`. @default [] (the user exactly as given)
   */
  readonly userNormalizations?: readonly LoginRuleConfig['normalize'][];
  /** Serve HTTPS (HTTP/1.1) with this certificate (an https.Server); undefined: plain HTTP. */
  readonly tls?: TlsMaterial | undefined;
}

type NormalizeStep = LoginRuleConfig['normalize'][number];

/**
 * The forms of a user name from the path to look up, in order. Login rules that all normalise alike
 * registered every user in that one form, so only it is asked. Rules that differ may have registered
 * distinct accounts (`Carl` by a rule that keeps case, `carl` by one that lowercases): the name as
 * given comes first, then each rule's form, and the first form with sessions answers, so one request
 * never reaches two accounts.
 */
export function compileUserForms(
  normalizations: readonly (readonly NormalizeStep[])[],
): (user: string) => readonly string[] {
  const distinct = [...new Map(normalizations.map((steps) => [steps.join(','), steps])).values()].map(
    (steps) => compileNormalize(steps),
  );
  const only = distinct.length === 1 ? distinct[0] : undefined;
  if (distinct.length === 0) return (user) => [user];
  if (only !== undefined) return (user) => [only(user)];
  return (user) => [...new Set([user, ...distinct.map((normalize) => normalize(user))])];
}

export interface Readiness {
  readonly ready: boolean;
  /** Why not ready: `draining`, or what the store reported. */
  readonly reason?: string;
}

/** One route of the admin API, as `openapi/admin.yaml` names it (path templates in `{braces}`). */
export interface AdminRoute {
  readonly method: 'GET' | 'DELETE';
  readonly path: string;
}

type Params = Readonly<Record<string, string>>;

/** What every handler reads: the options, and the user-name forms compiled from them once. */
interface AdminContext {
  readonly options: AdminOptions;
  readonly userForms: (user: string) => readonly string[];
}

type Handler = (
  ctx: AdminContext,
  res: ServerResponse,
  params: Params,
  req: IncomingMessage,
) => Promise<void> | void;

interface RouteSpec extends AdminRoute {
  readonly handle: Handler;
  /** The handler reads the request body itself; every other route's body is drained unread. */
  readonly readsBody?: true;
}

interface CompiledRoute extends RouteSpec {
  readonly pattern: RegExp;
  readonly names: readonly string[];
}

function send(res: ServerResponse, status: number, body: unknown, contentType = 'application/json'): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, {
    'content-type': contentType,
    'content-length': String(Buffer.byteLength(text)),
    'cache-control': 'no-store',
  });
  res.end(text);
}

/** `/admin/users/{user}/sessions` -> a regular expression with one capture per parameter (one segment each). */
function compile(path: string): { pattern: RegExp; names: string[] } {
  const names: string[] = [];
  const source = path
    .split('/')
    .map((segment) => {
      const m = /^\{(\w+)\}$/.exec(segment);
      if (!m) return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      names.push(m[1] as string);
      return '([^/]+)';
    })
    .join('/');
  return { pattern: new RegExp(`^${source}$`), names };
}

/**
 * The admin listener: the sessions API, /metrics, /healthz, /readyz. Everything needs
 * `Authorization: Bearer <admin.token>` except the endpoints configured open. The routes are one table
 * (`adminRoutes`), which `test/admin/openapi.test.ts` holds against `openapi/admin.yaml`.
 */
export function createAdminServer(options: AdminOptions): Server {
  const expected = options.token ? Buffer.from(`Bearer ${options.token}`) : undefined;
  const open = new Set<string>(options.open.map((e) => `/${e}`));
  const authorized = (req: IncomingMessage): boolean => {
    if (!expected) return false;
    const got = Buffer.from(req.headers.authorization ?? '');
    return got.length === expected.length && timingSafeEqual(got, expected);
  };
  const ctx: AdminContext = { options, userForms: compileUserForms(options.userNormalizations ?? []) };
  const routes: readonly CompiledRoute[] = ROUTES.map((route) => ({ ...route, ...compile(route.path) }));

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const raw = req.url ?? '/';
    const q = raw.indexOf('?');
    let path = q === -1 ? raw : raw.slice(0, q);
    if (path.length > 1 && path.endsWith('/')) path = path.slice(0, -1);
    if (!open.has(path) && !authorized(req)) {
      // Checked before routing, so an unauthenticated caller learns nothing about which paths exist.
      res.setHeader('www-authenticate', 'Bearer realm="sessiongate-admin"');
      sendError(
        res,
        'SG_ERR_ADMIN_UNAUTHORIZED',
        options.token ? 'a valid admin token is required' : 'admin.token is not configured',
      );
      return;
    }
    const method = req.method ?? 'GET';
    let allowed: string[] | undefined;
    for (const route of routes) {
      const m = route.pattern.exec(path);
      if (!m) continue;
      if (route.method !== method) {
        (allowed ??= []).push(route.method);
        continue;
      }
      // Bodies no route reads are drained, so keep-alive connections stay usable.
      if (route.readsBody !== true) req.resume();
      const params: Record<string, string> = {};
      try {
        route.names.forEach((name, i) => (params[name] = decodeURIComponent(m[i + 1] as string)));
      } catch {
        return sendError(res, 'SG_ERR_BAD_REQUEST', 'malformed percent-encoding');
      }
      Promise.resolve()
        .then(() => route.handle(ctx, res, params, req))
        .catch((err: unknown) => {
          const code = codeOf(err);
          const message = err instanceof Error ? err.message : String(err);
          options.logger.error({ code, err: message }, 'admin request failed');
          // A code that is only ever logged (a store conflict) is answered as the internal failure it is.
          sendError(res, isAnswered(code) ? code : 'SG_ERR_INTERNAL', message);
        });
      return;
    }
    req.resume();
    if (allowed) {
      res.setHeader('allow', allowed.join(', '));
      return sendError(res, 'SG_ERR_METHOD', `method not allowed (allowed: ${allowed.join(', ')})`);
    }
    return sendError(res, 'SG_ERR_NOT_FOUND', 'no such admin endpoint');
  };
  return options.tls === undefined
    ? createServer(handle)
    : createHttpsServer({ cert: options.tls.cert, key: options.tls.key }, handle);
}

/** Every route the admin listener serves, in the order they are matched. */
const ROUTES: readonly RouteSpec[] = [
  { method: 'GET', path: '/healthz', handle: (_ctx, res) => send(res, 200, { status: 'ok' }) },
  {
    method: 'GET',
    path: '/readyz',
    handle: ({ options }, res) => {
      const { ready, reason } = options.readiness();
      send(res, ready ? 200 : 503, {
        status: ready ? 'ready' : 'unready',
        store: options.sessions.store.health().commands ? 'up' : 'down',
        ...(reason !== undefined ? { reason } : {}),
      });
    },
  },
  {
    method: 'GET',
    path: '/metrics',
    handle: async ({ options }, res) =>
      send(res, 200, await options.registry.metrics(), options.registry.contentType),
  },
  {
    method: 'GET',
    path: '/admin/users/{user}/sessions',
    handle: async ({ options, userForms }, res, { user = '' }) => {
      const found = await firstWith(userForms(user), (form) => options.sessions.listSessions(form));
      send(res, 200, { user: found.user, sessions: found.result.map((s) => sessionView(s)) });
    },
  },
  {
    method: 'DELETE',
    path: '/admin/users/{user}/sessions',
    handle: async ({ options, userForms }, res, { user = '' }) => {
      const found = await firstWith(userForms(user), (form) =>
        options.sessions.endSessions(form, undefined, 'ended_by_admin', { actor: 'admin' }),
      );
      logEnded(options, found.user, found.result);
      send(res, 200, { user: found.user, ended: found.result.map((s) => s.id) });
    },
  },
  {
    method: 'GET',
    path: '/admin/users/{user}/sessions/{sessionId}',
    handle: async ({ options, userForms }, res, { user = '', sessionId }) => {
      const found = await firstWith(userForms(user), async (form) =>
        (await options.sessions.listSessions(form)).filter((s) => s.id === sessionId),
      );
      const session = found.result[0];
      if (!session) return sendError(res, 'SG_ERR_SESSION_NOT_FOUND');
      send(res, 200, { user: found.user, session: sessionView(session) });
    },
  },
  {
    method: 'DELETE',
    path: '/admin/users/{user}/sessions/{sessionId}',
    handle: async ({ options, userForms }, res, { user = '', sessionId = '' }) => {
      const found = await firstWith(userForms(user), (form) =>
        options.sessions.endSessions(form, [sessionId], 'ended_by_admin', { actor: 'admin' }),
      );
      if (found.result.length === 0) return sendError(res, 'SG_ERR_SESSION_NOT_FOUND');
      logEnded(options, found.user, found.result);
      send(res, 200, { user: found.user, ended: found.result.map((s) => s.id) });
    },
  },
  {
    method: 'DELETE',
    path: '/admin/sessions',
    readsBody: true,
    handle: async (ctx, res, _params, req) => {
      const users = await bulkUsers(req);
      if (typeof users === 'string')
        return sendError(
          res,
          users === 'too_large' ? 'SG_ERR_BODY_TOO_LARGE' : 'SG_ERR_BAD_REQUEST',
          bulkProblem(users),
        );
      const results = await endAllOf(ctx, users);
      const ended = results.reduce((n, r) => n + r.ended.length, 0);
      send(res, 200, { users: results, ended });
    },
  },
];

/** Every route the admin listener serves (method and OpenAPI path template). */
export const adminRoutes: readonly AdminRoute[] = ROUTES.map(({ method, path }) => ({ method, path }));

/** Most users one bulk call names; a larger revocation is several calls. */
export const MAX_BULK_USERS = 10_000;
/** Largest body of a bulk call: 10,000 names of up to ~100 bytes each. */
const MAX_BULK_BODY = 1024 * 1024;
/** Users ended at once by a bulk call: enough to keep the store busy, few enough to leave it room. */
const BULK_CONCURRENCY = 16;

type BulkProblem = 'too_large' | 'aborted' | 'none' | 'too_many' | 'malformed';

function bulkProblem(p: BulkProblem): string {
  switch (p) {
    case 'too_large':
      return `the body is over ${MAX_BULK_BODY} bytes`;
    case 'aborted':
      return 'the request body did not arrive';
    case 'none':
      return 'name at least one user: ?user=a&user=b, or a JSON body {"users": ["a", "b"]}';
    case 'too_many':
      return `at most ${MAX_BULK_USERS} users per call`;
    case 'malformed':
      return 'the body must be JSON {"users": [non-empty strings]}';
  }
}

/** The users a bulk call names: repeated `user` query parameters, or a JSON body `{"users": [...]}`. */
async function bulkUsers(req: IncomingMessage): Promise<readonly string[] | BulkProblem> {
  const query = new URL(req.url ?? '/', 'http://admin').searchParams.getAll('user');
  const body = await readCapped(req, MAX_BULK_BODY);
  if (typeof body === 'string') return body;
  let users: string[] = query;
  if (body.length > 0) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch {
      return 'malformed';
    }
    const listed =
      typeof parsed === 'object' && parsed !== null && 'users' in parsed ? parsed.users : undefined;
    if (!Array.isArray(listed) || !listed.every((u): u is string => typeof u === 'string'))
      return 'malformed';
    users = [...query, ...listed];
  }
  if (users.some((u) => u.length === 0)) return 'malformed';
  const distinct = [...new Set(users)];
  if (distinct.length === 0) return 'none';
  if (distinct.length > MAX_BULK_USERS) return 'too_many';
  return distinct;
}

/** Ends every session of each user, a few users at a time; the results in the order the users came. */
async function endAllOf(
  { options, userForms }: AdminContext,
  users: readonly string[],
): Promise<{ user: string; ended: string[] }[]> {
  const results: { user: string; ended: string[] }[] = new Array(users.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < users.length; i = next++) {
      const found = await firstWith(userForms(users[i] ?? ''), (form) =>
        options.sessions.endSessions(form, undefined, 'ended_by_admin', { actor: 'admin' }),
      );
      logEnded(options, found.user, found.result);
      results[i] = { user: found.user, ended: found.result.map((s) => s.id) };
    }
  };
  await Promise.all(Array.from({ length: Math.min(BULK_CONCURRENCY, users.length) }, worker));
  return results;
}

/**
 * Asks `lookup` for each form of a user in turn; the first form with sessions answers (the first form,
 * with none, when no form has any).
 */
async function firstWith(
  forms: readonly string[],
  lookup: (user: string) => Promise<SessionRecord[]>,
): Promise<{ user: string; result: SessionRecord[] }> {
  for (const user of forms) {
    const result = await lookup(user);
    if (result.length > 0) return { user, result };
  }
  return { user: forms[0] ?? '', result: [] };
}

function logEnded(o: AdminOptions, user: string, ended: readonly { id: string }[]): void {
  // The audit lines themselves come from the session events (session.ended, by.actor "admin").
  if (ended.length > 0)
    o.logger.info({ user, sessions: ended.map((s) => s.id) }, 'sessions ended through the admin API');
}
