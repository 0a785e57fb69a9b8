import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import type { Logger } from '../observability/logger.js';
import { describeDevice } from '../sessions/device.js';
import type { SessionService } from '../sessions/service.js';
import type { SessionRecord } from '../model.js';

export interface AdminOptions {
  readonly sessions: SessionService;
  readonly registry: Registry;
  readonly logger: Logger;
  /** Bearer token; unset: only the open endpoints answer. */
  readonly token: string | undefined;
  readonly open: readonly ('healthz' | 'readyz' | 'metrics')[];
  /** True while the gateway can serve (store reachable, not draining). */
  readonly isReady: () => boolean;
}

/** The JSON view of a session in the admin API and the self-service page. */
export interface SessionView {
  readonly id: string;
  readonly user: string;
  readonly createdAt: string;
  readonly lastSeenAt: string;
  readonly expiresAt: string;
  readonly ip: string;
  readonly userAgent: string;
  readonly device: string;
  readonly location: string | null;
}

export function sessionView(s: SessionRecord): SessionView {
  return {
    id: s.id,
    user: s.user,
    createdAt: new Date(s.createdAt).toISOString(),
    lastSeenAt: new Date(s.lastSeenAt).toISOString(),
    expiresAt: new Date(s.expiresAt).toISOString(),
    ip: s.ip,
    userAgent: s.userAgent,
    device: describeDevice(s.userAgent),
    location: s.location ?? null,
  };
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

function error(res: ServerResponse, status: number, code: string, message: string): void {
  send(res, status, { error: code, message });
}

const SESSIONS_PATH = /^\/admin\/users\/([^/]+)\/sessions(?:\/([^/]+))?\/?$/;

/**
 * The admin listener: the sessions API, /metrics, /healthz, /readyz. Everything needs
 * `Authorization: Bearer <admin.token>` except the endpoints configured open.
 */
export function createAdminServer(options: AdminOptions): Server {
  const expected = options.token ? Buffer.from(`Bearer ${options.token}`) : undefined;
  const open = new Set(options.open);
  const authorized = (req: IncomingMessage): boolean => {
    if (!expected) return false;
    const got = Buffer.from(req.headers.authorization ?? '');
    return got.length === expected.length && timingSafeEqual(got, expected);
  };

  return createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://admin');
    const path = url.pathname;
    const endpoint =
      path === '/healthz'
        ? 'healthz'
        : path === '/readyz'
          ? 'readyz'
          : path === '/metrics'
            ? 'metrics'
            : undefined;
    if (!(endpoint && open.has(endpoint)) && !authorized(req)) {
      res.setHeader('www-authenticate', 'Bearer realm="sessiongate-admin"');
      error(
        res,
        401,
        'SG_ERR_ADMIN_UNAUTHORIZED',
        options.token ? 'a valid admin token is required' : 'admin.token is not configured',
      );
      return;
    }
    handle(req, res, path).catch((err: unknown) => {
      const code = (err as { code?: string }).code ?? 'SG_ERR_INTERNAL';
      options.logger.error({ code, err: (err as Error).message }, 'admin request failed');
      if (!res.headersSent)
        error(res, code === 'SG_ERR_STORE_UNAVAILABLE' ? 503 : 500, code, (err as Error).message);
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const method = req.method ?? 'GET';
    if (path === '/healthz') return send(res, 200, { status: 'ok' });
    if (path === '/readyz') {
      const ready = options.isReady();
      return send(res, ready ? 200 : 503, {
        status: ready ? 'ready' : 'unready',
        store: options.sessions.store.isAvailable() ? 'up' : 'down',
      });
    }
    if (path === '/metrics') {
      if (method !== 'GET') return error(res, 405, 'SG_ERR_METHOD', 'GET only');
      return send(res, 200, await options.registry.metrics(), options.registry.contentType);
    }
    const m = SESSIONS_PATH.exec(path);
    if (!m) return error(res, 404, 'SG_ERR_NOT_FOUND', 'no such admin endpoint');
    let user: string;
    let sessionId: string | undefined;
    try {
      user = decodeURIComponent(m[1] as string);
      sessionId = m[2] === undefined ? undefined : decodeURIComponent(m[2]);
    } catch {
      return error(res, 400, 'SG_ERR_BAD_REQUEST', 'malformed percent-encoding');
    }
    if (method === 'GET' && sessionId === undefined) {
      const sessions = await options.sessions.listSessions(user);
      return send(res, 200, { user, sessions: sessions.map(sessionView) });
    }
    if (method === 'DELETE') {
      const ended = await options.sessions.endSessions(
        user,
        sessionId === undefined ? undefined : [sessionId],
        'ended_by_admin',
        { actor: 'admin' },
      );
      if (sessionId !== undefined && ended.length === 0)
        return error(res, 404, 'SG_ERR_SESSION_NOT_FOUND', 'no live session with this id');
      options.logger.info(
        { audit: true, event: 'admin.end', user, sessions: ended.map((s) => s.id) },
        'sessions ended by admin',
      );
      return send(res, 200, { user, ended: ended.map((s) => s.id) });
    }
    res.setHeader('allow', sessionId === undefined ? 'GET, DELETE' : 'DELETE');
    return error(res, 405, 'SG_ERR_METHOD', 'method not allowed');
  }
}
