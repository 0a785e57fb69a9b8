import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Registry } from 'prom-client';
import { codeOf, isAnswered, sendError } from '../errors.js';
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

type Handler = (ctx: AdminContext, res: ServerResponse, params: Params) => Promise<void> | void;

interface RouteSpec extends AdminRoute {
  readonly handle: Handler;
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
    // Request bodies are never read; drain them so keep-alive connections stay usable.
    req.resume();
    const method = req.method ?? 'GET';
    let allowed: string[] | undefined;
    for (const route of routes) {
      const m = route.pattern.exec(path);
      if (!m) continue;
      if (route.method !== method) {
        (allowed ??= []).push(route.method);
        continue;
      }
      const params: Record<string, string> = {};
      try {
        route.names.forEach((name, i) => (params[name] = decodeURIComponent(m[i + 1] as string)));
      } catch {
        return sendError(res, 'SG_ERR_BAD_REQUEST', 'malformed percent-encoding');
      }
      Promise.resolve()
        .then(() => route.handle(ctx, res, params))
        .catch((err: unknown) => {
          const code = codeOf(err);
          const message = err instanceof Error ? err.message : String(err);
          options.logger.error({ code, err: message }, 'admin request failed');
          // A code that is only ever logged (a store conflict) is answered as the internal failure it is.
          sendError(res, isAnswered(code) ? code : 'SG_ERR_INTERNAL', message);
        });
      return;
    }
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
];

/** Every route the admin listener serves (method and OpenAPI path template). */
export const adminRoutes: readonly AdminRoute[] = ROUTES.map(({ method, path }) => ({ method, path }));

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
