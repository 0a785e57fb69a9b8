import { request, type Dispatcher } from 'undici';
import type { Logger } from '../observability/logger.js';
import { compileUserSource, Exchange, type CompiledLoginRule } from '../tokens/exchange.js';
import type { UserProbe } from './exchange-tap.js';
import type { RequestScope } from './scope.js';

/**
 * "Who am I": when neither the login request nor its response names the user (SSO callbacks, where the
 * code exchange is server to server), ask the app with the new token before the login response is
 * released. A failed or slow probe gives undefined; the caller then passes or refuses per the rule.
 */
export function createUserProbe(
  dispatcher: Dispatcher,
  origin: string,
  defaultPresentAs: string,
  logger: Logger,
): UserProbe {
  const readers = new Map<string, ReturnType<typeof compileUserSource>>();
  return async (rule: CompiledLoginRule, token: string, scope: RequestScope) => {
    const probe = rule.config.probe;
    if (!probe) return undefined;
    let read = readers.get(rule.name);
    if (!read) {
      read = compileUserSource(probe.user);
      readers.set(rule.name, read);
    }
    const [method, path] = probe.match.split(' ') as [string, string];
    const presentAs = probe.presentAs ?? defaultPresentAs;
    const headers: Record<string, string> = { accept: 'application/json' };
    if (presentAs === 'bearer') headers.authorization = `Bearer ${token}`;
    else if (presentAs.startsWith('cookie:')) headers.cookie = `${presentAs.slice(7)}=${token}`;
    else headers[presentAs.slice(7).toLowerCase()] = token;
    const ua = scope.req.headers['user-agent'];
    if (ua) headers['user-agent'] = ua;
    try {
      const res = await request(`${origin}${path}`, {
        dispatcher,
        method: method === '*' ? 'GET' : (method.split(',')[0] as string),
        headers,
        headersTimeout: probe.timeout,
        bodyTimeout: probe.timeout,
        signal: AbortSignal.timeout(probe.timeout),
      });
      const body = Buffer.from(await res.body.arrayBuffer());
      if (res.statusCode < 200 || res.statusCode > 299) {
        logger.warn(
          { rule: rule.name, status: res.statusCode, code: 'SG_ERR_LOGIN_PROBE_FAILED' },
          'who-am-i probe answered with an error',
        );
        return undefined;
      }
      const ex = new Exchange({
        method: 'GET',
        path,
        params: {},
        requestHeaders: {},
        requestBody: undefined,
      });
      ex.status = res.statusCode;
      ex.responseBody = body;
      ex.responseHeaders = res.headers as Record<string, string | string[] | undefined>;
      return read(ex, [token]);
    } catch (err) {
      logger.warn(
        { rule: rule.name, code: 'SG_ERR_LOGIN_PROBE_FAILED', err: (err as Error).message },
        'who-am-i probe failed',
      );
      return undefined;
    }
  };
}
