import { request, type Dispatcher } from 'undici';
import { sourceText, type PresentAs, type RequestTokenSource } from '../config/sources.js';
import type { Logger } from '../observability/logger.js';
import { compileCookieName, parseSetCookie, type CookieNameMatcher } from '../tokens/cookies.js';
import { compileUserSource, Exchange, type CompiledLoginRule } from '../tokens/exchange.js';
import type { UserProbe } from './exchange-tap.js';
import type { RequestScope } from './scope.js';

/** A probe's compiled parts, per rule. */
interface CompiledProbe {
  readonly read: ReturnType<typeof compileUserSource>;
  /** For `presentAs: cookie:<name or pattern>`. */
  readonly cookie: CookieNameMatcher | undefined;
}

/**
 * How a probe presents the token when its rule says nothing: as the first of `tokens` carries it; a path
 * parameter (`;jsessionid=`) belongs to no route the probe calls, so as a bearer token then.
 */
export function defaultPresentAs(first: RequestTokenSource | undefined): PresentAs {
  if (first === undefined || first.kind === 'bearer' || first.kind === 'pathparam') return { kind: 'bearer' };
  return { kind: first.kind, name: first.name };
}

/**
 * "Who am I": when neither the login request nor its response names the user (SSO callbacks, where the
 * code exchange is server to server), ask the app with the new token before the login response is
 * released. A failed or slow probe, or an answer over `maxBody` bytes, gives undefined; the caller then
 * passes or refuses per the rule.
 */
export function createUserProbe(
  dispatcher: Dispatcher,
  origin: string,
  presentAsDefault: PresentAs,
  logger: Logger,
  maxBody: number = 1024 * 1024,
): UserProbe {
  const compiled = new Map<string, CompiledProbe>();
  const fail = (rule: CompiledLoginRule, why: Record<string, unknown>, message: string) => {
    logger.warn({ rule: rule.name, code: 'SG_ERR_LOGIN_PROBE_FAILED', ...why }, message);
    return undefined;
  };
  return async (rule: CompiledLoginRule, token: string, scope: RequestScope, login?: Exchange) => {
    const probe = rule.config.probe;
    if (!probe) return undefined;
    const presentAs = probe.presentAs ?? presentAsDefault;
    let c = compiled.get(rule.name);
    if (!c) {
      c = {
        read: compileUserSource(probe.user),
        cookie: presentAs.kind === 'cookie' ? compileCookieName(presentAs.name) : undefined,
      };
      compiled.set(rule.name, c);
    }
    const [method, route] = probe.match.split(' ') as [string, string];
    let path = route;
    const headers: Record<string, string> = { accept: 'application/json' };
    if (c.cookie !== undefined) {
      const cookie = probeCookie(c.cookie, token, login);
      if (cookie === undefined)
        return fail(
          rule,
          { presentAs: sourceText(presentAs) },
          'who-am-i probe: the login response set no cookie it could present',
        );
      headers.cookie = cookie;
    } else if (presentAs.kind === 'bearer') headers.authorization = `Bearer ${token}`;
    else if (presentAs.kind === 'query')
      path += `${path.includes('?') ? '&' : '?'}${encodeURIComponent(presentAs.name)}=${encodeURIComponent(token)}`;
    else headers[presentAs.name.toLowerCase()] = token;
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
      const body = await readCapped(res.body, res.headers['content-length'], maxBody);
      if (body === undefined)
        return fail(rule, { max: maxBody }, 'who-am-i probe answer over maxLoginBody: not read');
      if (res.statusCode < 200 || res.statusCode > 299)
        return fail(rule, { status: res.statusCode }, 'who-am-i probe answered with an error');
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
      return c.read(ex, [token]);
    } catch (err) {
      return fail(rule, { err: (err as Error).message }, 'who-am-i probe failed');
    }
  };
}

/**
 * The `Cookie` header a browser would send after the login: every cookie the login response set (the
 * last Set-Cookie of a name wins; deletions dropped), values as set. A rule's pattern
 * (`wordpress_logged_in_*`) is no cookie name: the name is the one the response used. A token the
 * response carries elsewhere (JSON) is presented under an exact name; under a pattern it cannot be.
 */
function probeCookie(
  matcher: CookieNameMatcher,
  token: string,
  login: Exchange | undefined,
): string | undefined {
  const pairs = new Map<string, string>();
  for (const header of login?.setCookies ?? []) {
    const c = parseSetCookie(header);
    if (c === undefined) continue;
    if (c.clears) {
      pairs.delete(c.name);
      continue;
    }
    const first = header.split(';', 1)[0] as string;
    pairs.set(c.name, first.slice(first.indexOf('=') + 1).trim());
  }
  let matched = false;
  for (const name of pairs.keys()) if (matcher.test(name)) matched = true;
  if (!matched) {
    if (matcher.exact === undefined) return undefined;
    pairs.set(matcher.exact, token);
  }
  return [...pairs].map(([name, value]) => `${name}=${value}`).join('; ');
}

/** The body, or undefined past `max` bytes (announced or counted); the rest is not read. */
async function readCapped(
  body: Dispatcher.ResponseData['body'],
  contentLength: string | string[] | undefined,
  max: number,
): Promise<Buffer | undefined> {
  if (typeof contentLength === 'string' && Number(contentLength) > max) {
    body.destroy();
    return undefined;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const b: Buffer = chunk;
    size += b.length;
    if (size > max) {
      body.destroy();
      return undefined;
    }
    chunks.push(b);
  }
  return Buffer.concat(chunks, size);
}
