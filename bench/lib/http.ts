/**
 * The few HTTP exchanges the bench makes outside the load itself: logging in through a gateway and
 * checking what it answers for a token.
 */
import { request, type Dispatcher } from 'undici';

/**
 * The bearer token the passthrough proxies (undici-floor, http-proxy) are sent, so that they parse and
 * forward the same header bytes as a gateway's cache-hit request. Shaped like the upstream's access
 * tokens (32 random bytes, base64url: 43 characters); the passthroughs forward it unread.
 */
export const PASSTHROUGH_TOKEN = 'pAsStHrOuGh_tOkEn_32_bytes_base64url_012345';

/** What the bench's upstream answers to `POST /api/login`. */
interface LoginBody {
  accessToken: string;
  user: { id: string };
}

function isLoginBody(value: unknown): value is LoginBody {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  const user = v['user'] as Record<string, unknown> | null | undefined;
  return typeof v['accessToken'] === 'string' && typeof user === 'object' && typeof user?.['id'] === 'string';
}

export interface LoginOptions {
  /** A keep-alive client to reuse (the revocation bench times its logins on one connection). */
  dispatcher?: Dispatcher;
}

export interface LoginResult {
  token: string;
  /** performance.now() when the response headers arrived: the gateway has registered the login by then. */
  headersAt: number;
}

/** Logs `username` in through `baseUrl` (a gateway) and returns the access token the app issued. */
export async function login(
  baseUrl: string,
  username: string,
  options: LoginOptions = {},
): Promise<LoginResult> {
  const res = await request(`${baseUrl}/api/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username }),
    ...(options.dispatcher ? { dispatcher: options.dispatcher } : {}),
  });
  const headersAt = performance.now();
  const text = await res.body.text();
  if (res.statusCode !== 200) {
    throw new Error(
      `login of ${username} through ${baseUrl} answered ${res.statusCode}: ${text.slice(0, 300)}`,
    );
  }
  const body: unknown = JSON.parse(text);
  if (!isLoginBody(body))
    throw new Error(`login of ${username} answered an unexpected body: ${text.slice(0, 300)}`);
  return { token: body.accessToken, headersAt };
}

export interface StatusResult {
  status: number;
  body: string;
}

/** GET `path` with `Authorization: Bearer <token>`; returns the status and (short) body. */
export async function getWithToken(
  baseUrl: string,
  token: string,
  dispatcher?: Dispatcher,
  path = '/',
): Promise<StatusResult> {
  const res = await request(`${baseUrl}${path}`, {
    headers: { authorization: `Bearer ${token}` },
    ...(dispatcher ? { dispatcher } : {}),
  });
  return { status: res.statusCode, body: await res.body.text() };
}

/** Runs `fn` over `items` with at most `limit` in flight, keeping the order of results. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index] as T, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** One login through `base`, timed from the request to its whole answer (ms); anything but 200 throws. */
export async function timedLogin(base: string, user: string, dispatcher: Dispatcher): Promise<number> {
  const t = performance.now();
  const res = await request(`${base}/api/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: user }),
    dispatcher,
  });
  await res.body.text();
  if (res.statusCode !== 200) throw new Error(`login of ${user} through ${base} answered ${res.statusCode}`);
  return performance.now() - t;
}
