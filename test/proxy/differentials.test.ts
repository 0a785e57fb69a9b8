/**
 * Parser differentials against a real express 4 app (DESIGN.md, "Parser differentials"): whatever the
 * gateway reads of a request, express reads too, with its own, more lenient parsers (case-insensitive
 * routes, jshttp `cookie` through cookie-parser, qs forms, JSON.parse, body-parser's inflation). Each
 * case sends an attack through real sockets and checks both ends: the answer, and what reached the app
 * (`seen()`). A dead token must never be honoured by the app, a login never charged to another user
 * than the one the app signs in, and what cannot be read as the app reads it is refused.
 *
 * A "superseded" cookie or token: alice signs in twice through the gateway (limit 1); the first
 * credential is dead at the gateway while the app, which knows nothing of the limit, still honours it.
 */
import { once } from 'node:events';
import { connect } from 'node:net';
import { gzipSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../../src/config/schema.js';
import {
  bearer,
  get,
  postForm,
  postJson,
  setCookie,
  startGateway,
  type TestGateway,
  type TestGatewayConfig,
} from '../support/gateway.js';
import { EXPRESS_PASSWORD, startExpressApp, type ExpressApp } from '../support/express-app.js';
import { JSON_LOGIN_RULE } from '../support/login-rules.js';

const FORM_LOGIN = {
  match: 'POST /login',
  token: 'cookie:sid',
  user: 'request.form:username',
  success: { status: 302, location: '/account' },
} as const;
const JSON_LOGIN = JSON_LOGIN_RULE;
const JSON_BODY_LOGIN = {
  match: 'POST /api/form-json-login',
  token: 'json:accessToken',
  user: 'request.json:username',
} as const;
const LOGIN_RULES: NonNullable<ConfigInput['login']> = [FORM_LOGIN, JSON_LOGIN, JSON_BODY_LOGIN];

let app: ExpressApp;
beforeAll(async () => {
  app = await startExpressApp();
});

/** A gateway in front of the express app, with the rules above and any overrides. */
function gatewayFor(config: Partial<ConfigInput> = {}): Promise<TestGateway> {
  const base: TestGatewayConfig = {
    upstream: app.url,
    login: LOGIN_RULES,
    tokens: ['bearer', 'cookie:sid'],
    ...config,
  };
  return startGateway(base);
}

/** Users are new per test, so sessions of one test never meet another's. */
let users = 0;
const user = (name: string) => `${name}-${++users}`;

// ---------------------------------------------------------------------------------------------------
// Requests

/** A form login through the gateway: the `sid` it set (the response is checked to be a success). */
async function formLogin(gw: TestGateway, username: string, path = '/login'): Promise<string> {
  const res = await postForm(`${gw.url}${path}`, { username, password: EXPRESS_PASSWORD });
  await res.arrayBuffer();
  expect(res.status).toBe(302);
  const sid = setCookie(res, 'sid');
  expect(sid).toBeTruthy();
  return sid as string;
}

/** A JSON login through the gateway: the bearer token. */
async function apiLogin(gw: TestGateway, username: string): Promise<string> {
  const res = await postJson(`${gw.url}/api/login`, { username, password: EXPRESS_PASSWORD });
  expect(res.status).toBe(200);
  return String(((await res.json()) as { accessToken: unknown }).accessToken);
}

const withSid = (sid: string, extra: Record<string, string> = {}) => ({ cookie: `sid=${sid}`, ...extra });

/** GET `path` with this sid cookie: the status. */
async function statusWithSid(gw: TestGateway, sid: string, path = '/account'): Promise<number> {
  const res = await get(`${gw.url}${path}`, withSid(sid));
  await res.arrayBuffer();
  return res.status;
}

/** `username` signed in twice through the gateway (limit 1): the first sid is dead, the second live. */
async function supersededCookie(gw: TestGateway, username: string): Promise<{ dead: string; live: string }> {
  const dead = await formLogin(gw, username);
  const live = await formLogin(gw, username);
  // The baseline every case below departs from: the plain dead cookie is refused, the live one served.
  expect(await statusWithSid(gw, dead)).toBe(401);
  expect(await statusWithSid(gw, live)).toBe(200);
  return { dead, live };
}

async function supersededBearer(gw: TestGateway, username: string): Promise<{ dead: string; live: string }> {
  const dead = await apiLogin(gw, username);
  const live = await apiLogin(gw, username);
  expect((await get(`${gw.url}/api/me`, bearer(dead))).status).toBe(401);
  expect((await get(`${gw.url}/api/me`, bearer(live))).status).toBe(200);
  return { dead, live };
}

/** The JSON `error` code of a response. */
async function errorOf(res: Response): Promise<unknown> {
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  return ((await res.json()) as { error?: unknown }).error;
}

interface RawResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

/**
 * One request written byte for byte on a new connection (`Connection: close`), for what fetch and
 * undici would not send: repeated `Authorization` lines, tabs and quotes exactly where the case says.
 */
async function raw(
  gw: TestGateway,
  requestLine: string,
  headerLines: readonly string[],
): Promise<RawResponse> {
  const socket = connect(Number(new URL(gw.url).port), '127.0.0.1');
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  const closed = once(socket, 'close');
  socket.write(
    [
      requestLine,
      'Host: gateway.test',
      'Accept: application/json',
      'Connection: close',
      ...headerLines,
      '',
      '',
    ].join('\r\n'),
  );
  await closed;
  const bytes = Buffer.concat(chunks).toString('latin1');
  const end = bytes.indexOf('\r\n\r\n');
  const [statusLine = '', ...lines] = bytes.slice(0, end).split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  let body = bytes.slice(end + 4);
  if (headers['transfer-encoding'] === 'chunked') {
    let out = '';
    for (let off = 0; ;) {
      const eol = body.indexOf('\r\n', off);
      const size = parseInt(body.slice(off, eol), 16);
      if (!(size > 0)) break;
      out += body.slice(eol + 2, eol + 2 + size);
      off = eol + 2 + size + 2;
    }
    body = out;
  }
  return { status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1]), headers, body };
}

const rawGet = (gw: TestGateway, path: string, ...headerLines: string[]) =>
  raw(gw, `GET ${path} HTTP/1.1`, headerLines);

const errorOfRaw = (res: RawResponse): unknown => (JSON.parse(res.body) as { error?: unknown }).error;

/** Runs `action` and returns what reached the app meanwhile. */
async function seenDuring<T>(
  action: () => Promise<T>,
): Promise<{ result: T; seen: ReturnType<ExpressApp['seen']> }> {
  const from = app.seen().length;
  const result = await action();
  return { result, seen: app.seenFrom(from) };
}

// ---------------------------------------------------------------------------------------------------

describe('letter case: express routes case-insensitively', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    // Only /account and /note are protected, so a dead cookie is refused on /ACCOUNT only if protect folds case.
    gw = await gatewayFor({ protect: ['/account/**', '/note/**'] });
  });

  it('refuses a superseded cookie on GET /ACCOUNT, which express serves as /account', async () => {
    const { dead } = await supersededCookie(gw, user('alice'));
    const { result: res, seen } = await seenDuring(() => get(`${gw.url}/ACCOUNT`, withSid(dead)));
    expect(res.status).toBe(401);
    expect(await errorOf(res)).toBe('session_superseded');
    expect(seen).toEqual([]);
  });

  it('refuses a superseded cookie on POST /Note, which express routes to /note', async () => {
    const { dead } = await supersededCookie(gw, user('alice'));
    const { result: res, seen } = await seenDuring(() =>
      postForm(`${gw.url}/Note`, { text: 'hello' }, withSid(dead)),
    );
    expect(res.status).toBe(401);
    expect(seen).toEqual([]);
  });

  it('takes POST /LOGIN as the login rule: it supersedes the earlier session', async () => {
    const alice = user('alice');
    const first = await formLogin(gw, alice);
    expect(await statusWithSid(gw, first)).toBe(200);
    const second = await formLogin(gw, alice, '/LOGIN');
    expect(await statusWithSid(gw, first)).toBe(401);
    expect(await statusWithSid(gw, second)).toBe(200);
  });

  it('with routes.caseSensitive: POST /LOGIN is no login rule, so express signs alice in a second time unseen', async () => {
    const sensitive = await gatewayFor({ protect: ['/account/**'], routes: { caseSensitive: true } });
    const alice = user('alice');
    const first = await formLogin(sensitive, alice);
    // The app still answers 302 with a new sid: the gateway forwarded it as an ordinary request.
    const second = await formLogin(sensitive, alice, '/LOGIN');
    // Nothing was registered: the first session was not superseded and the second value is unknown,
    // which `unknownTokens: pass` lets through. Alice has two working sessions under a limit of 1: why
    // caseSensitive is only for apps that route case-sensitively.
    expect(await statusWithSid(sensitive, first)).toBe(200);
    expect(await statusWithSid(sensitive, second)).toBe(200);
  });
});

describe('format suffixes and protect exclusions', () => {
  it('refuses a superseded cookie on /account.json under protect /account/**', async () => {
    const gw = await gatewayFor({ protect: ['/account/**'] });
    const { dead } = await supersededCookie(gw, user('alice'));
    const { result: status, seen } = await seenDuring(() => statusWithSid(gw, dead, '/account.json'));
    expect(status).toBe(401);
    expect(seen).toEqual([]);
  });

  describe('protect /** except /assets/**', () => {
    let gw: TestGateway;
    beforeAll(async () => {
      gw = await gatewayFor({ protect: { paths: ['/**'], except: ['/assets/**'] } });
    });

    it('passes a superseded cookie to /assets/app.css unchecked', async () => {
      const { dead } = await supersededCookie(gw, user('alice'));
      const res = await get(`${gw.url}/assets/app.css`, withSid(dead));
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/css/);
    });

    it('refuses a superseded cookie on /assets.php: the exclusion does not stretch to a suffix', async () => {
      const { dead } = await supersededCookie(gw, user('alice'));
      const { result: status, seen } = await seenDuring(() => statusWithSid(gw, dead, '/assets.php'));
      expect(status).toBe(401);
      expect(seen).toEqual([]);
    });
  });
});

describe('cookie reading: as jshttp cookie (cookie-parser) reads the header', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await gatewayFor();
  });

  const percentAll = (v: string) =>
    [...v].map((c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`).join('');
  const percentFirst = (v: string) => `%${v.charCodeAt(0).toString(16)}${v.slice(1)}`;
  // Leading whitespace of a header value is not part of it (RFC 9110 section 5.5), so the tab goes
  // after another pair, where jshttp trims it off the name.
  const tricks: [string, (sid: string) => string][] = [
    ['a tab before the name', (sid) => `theme=dark;\tsid=${sid}`],
    ['a space before the =', (sid) => `sid =${sid}`],
    ['every character of the value percent-encoded', (sid) => `sid=${percentAll(sid)}`],
    ['the first letter of the value percent-encoded', (sid) => `sid=${percentFirst(sid)}`],
    ['the value in double quotes', (sid) => `sid="${sid}"`],
  ];

  it.each(tricks)('refuses a superseded cookie with %s, before the app sees it', async (_name, cookie) => {
    const { dead } = await supersededCookie(gw, user('alice'));
    const { result: res, seen } = await seenDuring(() => rawGet(gw, '/account', `Cookie: ${cookie(dead)}`));
    expect(res.status).toBe(401);
    expect(errorOfRaw(res)).toBe('session_superseded');
    expect(seen).toEqual([]);
  });

  it.each(tricks)('serves a live cookie with %s, read by the app as that value', async (_name, cookie) => {
    const { live } = await supersededCookie(gw, user('alice'));
    const { result: res, seen } = await seenDuring(() => rawGet(gw, '/account', `Cookie: ${cookie(live)}`));
    expect(res.status).toBe(200);
    expect(seen).toHaveLength(1);
    expect(seen[0]?.cookies.sid).toBe(live);
  });

  // cookie-parser JSON-decodes a value starting with `j:`: the gateway reads `j:"<sid>"` as `<sid>`.
  it('refuses a superseded cookie sent as a cookie-parser JSON cookie (j:"...")', async () => {
    const { dead } = await supersededCookie(gw, user('alice'));
    const { result: res, seen } = await seenDuring(() => rawGet(gw, '/account', `Cookie: sid=j:"${dead}"`));
    expect(seen.map((s) => s.cookies.sid)).not.toContain(dead);
    expect(res.status).toBe(401);
  });

  it('refuses a token cookie sent twice with different values: 400 SG_ERR_AMBIGUOUS_TOKEN', async () => {
    const { dead, live } = await supersededCookie(gw, user('alice'));
    const { result: res, seen } = await seenDuring(() =>
      rawGet(gw, '/account', `Cookie: sid=${live}; sid=${dead}`),
    );
    expect(res.status).toBe(400);
    expect(errorOfRaw(res)).toBe('SG_ERR_AMBIGUOUS_TOKEN');
    expect(seen).toEqual([]);
  });

  it('refuses two Cookie lines carrying different token values, as Node joins them', async () => {
    const { dead, live } = await supersededCookie(gw, user('alice'));
    const res = await rawGet(gw, '/account', `Cookie: sid=${live}`, `Cookie: sid=${dead}`);
    expect(res.status).toBe(400);
    expect(errorOfRaw(res)).toBe('SG_ERR_AMBIGUOUS_TOKEN');
  });

  it('serves the same token cookie sent twice with one value', async () => {
    const { live } = await supersededCookie(gw, user('alice'));
    const res = await rawGet(gw, '/account', `Cookie: sid=${live}; sid=${live}`);
    expect(res.status).toBe(200);
  });
});

describe('Authorization headers', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await gatewayFor();
  });

  it('sends the app exactly the one Authorization header it checked: the first, live one', async () => {
    const { dead, live } = await supersededBearer(gw, user('alice'));
    const { result: res, seen } = await seenDuring(() =>
      rawGet(gw, '/api/me', `Authorization: Bearer ${live}`, `Authorization: Bearer ${dead}`),
    );
    expect(res.status).toBe(200);
    expect(seen).toHaveLength(1);
    expect(seen[0]?.authorizationLines).toEqual([`Bearer ${live}`]);
  });

  it('refuses a dead bearer token sent first, whatever follows it', async () => {
    const { dead, live } = await supersededBearer(gw, user('alice'));
    const { result: res, seen } = await seenDuring(() =>
      rawGet(gw, '/api/me', `Authorization: Bearer ${dead}`, `Authorization: Bearer ${live}`),
    );
    expect(res.status).toBe(401);
    expect(seen).toEqual([]);
  });
});

describe('form bodies on the login rule: read as qs reads them, or refused', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await gatewayFor();
  });

  /** Posts a raw urlencoded body to /login; the response and what reached the app. */
  async function postLoginBody(body: string, contentType = 'application/x-www-form-urlencoded') {
    const { result: res, seen } = await seenDuring(() =>
      fetch(`${gw.url}/login`, {
        method: 'POST',
        headers: { 'content-type': contentType },
        body,
        redirect: 'manual',
      }),
    );
    return { res, seen };
  }

  const attack = (victim: string): [string, string][] => [
    [
      'a leading ? (qs keeps `?username` as another key)',
      `?username=${victim}&username=mallory&password=demo`,
    ],
    ['a repeated field (qs makes an array)', `username=${victim}&username=mallory&password=demo`],
    ['a bracketed field (qs makes an array)', `username[]=${victim}&password=demo`],
    ['a percent-encoded field name', `user%6Eame=${victim}&username=mallory&password=demo`],
  ];
  const cases = attack('VICTIM').map(([name]) => name);

  /** Refused before the app, and the victim's own session untouched. */
  async function expectRefused(index: number): Promise<void> {
    const victim = user('victim');
    const victimSid = await formLogin(gw, victim);
    const [, body] = attack(victim)[index] as [string, string];
    const { res, seen } = await postLoginBody(body);
    expect(res.status).toBe(400);
    expect(await errorOf(res)).toBe('SG_ERR_AMBIGUOUS_LOGIN');
    expect(seen).toEqual([]);
    expect(await statusWithSid(gw, victimSid)).toBe(200);
  }

  // qs reads mallory alone (`?username` is its own key); URLSearchParams on the raw body reads victim.
  it(`refuses ${cases[0]}`, () => expectRefused(0));
  it(`refuses ${cases[1]}`, () => expectRefused(1));
  it(`refuses ${cases[2]}`, () => expectRefused(2));
  it(`refuses ${cases[3]}`, () => expectRefused(3));

  it('registers a plain form login: a second one supersedes it', async () => {
    const alice = user('alice');
    const first = await formLogin(gw, alice);
    expect(await statusWithSid(gw, first)).toBe(200);
    await formLogin(gw, alice);
    expect(await statusWithSid(gw, first)).toBe(401);
  });

  it('refuses a JSON body on the request.form rule, which express.json() would read', async () => {
    const { res, seen } = await postLoginBody(
      JSON.stringify({ username: user('victim'), password: 'demo' }),
      'application/json',
    );
    expect(res.status).toBe(400);
    expect(await errorOf(res)).toBe('SG_ERR_AMBIGUOUS_LOGIN');
    expect(seen).toEqual([]);
  });

  it('reads a gzip-compressed form login, and the app gets the compressed bytes unchanged', async () => {
    const alice = user('alice');
    const compressed = gzipSync(new URLSearchParams({ username: alice, password: 'demo' }).toString());
    const { result: res, seen } = await seenDuring(() =>
      fetch(`${gw.url}/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-encoding': 'gzip' },
        body: compressed,
        redirect: 'manual',
      }),
    );
    expect(res.status).toBe(302);
    expect(seen).toHaveLength(1);
    expect(seen[0]?.contentEncoding).toBe('gzip');
    expect(Buffer.concat(seen[0]?.rawBody ?? [])).toEqual(compressed);
    expect(seen[0]?.body).toEqual({ username: alice, password: 'demo' });
    const first = setCookie(res, 'sid') as string;
    expect(await statusWithSid(gw, first)).toBe(200);
    // Registered for alice: her next login supersedes it.
    await formLogin(gw, alice);
    expect(await statusWithSid(gw, first)).toBe(401);
  });

  it('refuses Content-Encoding: compress, which it cannot read: 415, the app never sees it', async () => {
    const { result: res, seen } = await seenDuring(() =>
      fetch(`${gw.url}/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-encoding': 'compress' },
        body: Buffer.from([0x1f, 0x9d, 0x90, 0x75, 0x73, 0x65, 0x72]),
        redirect: 'manual',
      }),
    );
    expect(res.status).toBe(415);
    expect(await errorOf(res)).toBe('SG_ERR_UNSUPPORTED_ENCODING');
    expect(seen).toEqual([]);
  });
});

describe('JSON bodies on a request.json login rule', () => {
  // JSON.parse keeps the last key, as express.json() does; stacks keeping the first read the victim.
  it('refuses duplicate keys: 400 SG_ERR_AMBIGUOUS_LOGIN, the app never sees it', async () => {
    const gw = await gatewayFor();
    const victim = user('victim');
    const { result: res, seen } = await seenDuring(() =>
      fetch(`${gw.url}/api/form-json-login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: `{"username":"${victim}","username":"mallory","password":"demo"}`,
      }),
    );
    expect(res.status).toBe(400);
    expect(await errorOf(res)).toBe('SG_ERR_AMBIGUOUS_LOGIN');
    expect(seen).toEqual([]);
  });
});

describe('login routes and the tokens they carry', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await gatewayFor();
  });

  it('never forwards a dead token on a login route: the app sees the other cookies only, and the login works', async () => {
    const alice = user('alice');
    const { dead } = await supersededCookie(gw, alice);
    const { result: res, seen } = await seenDuring(() =>
      postForm(
        `${gw.url}/login`,
        { username: alice, password: EXPRESS_PASSWORD },
        { cookie: `theme=dark; sid=${dead}` },
      ),
    );
    expect(res.status).toBe(302);
    expect(seen).toHaveLength(1);
    expect(seen[0]?.cookies).toEqual({ theme: 'dark' });
    const fresh = setCookie(res, 'sid') as string;
    expect(fresh).not.toBe(dead);
    expect(await statusWithSid(gw, fresh)).toBe(200);
  });

  it('links a sid the app rotates on a failed login to the session: the next login of the user ends it', async () => {
    const alice = user('alice');
    const live = await formLogin(gw, alice);
    const res = await postForm(
      `${gw.url}/login`,
      { username: alice, password: 'wrong', rotate: '1' },
      withSid(live),
    );
    expect(res.status).toBe(200);
    const rotated = setCookie(res, 'sid') as string;
    expect(rotated).toBeTruthy();
    expect(rotated).not.toBe(live);
    expect(await statusWithSid(gw, rotated)).toBe(200);
    await formLogin(gw, alice);
    const after = await get(`${gw.url}/account`, withSid(rotated));
    expect(after.status).toBe(401);
    expect(await errorOf(after)).toBe('session_superseded');
  });
});

describe('tokens in a header or the query string', () => {
  it('refuses a superseded token sent as ?access_token= when the query source is named', async () => {
    const gw = await startGateway({ tokens: ['bearer', 'query:access_token'] });
    const first = await gw.loginJson('alice');
    await gw.loginJson('alice');
    const res = await get(`${gw.url}/api/me?access_token=${first.token}`);
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ error: 'session_superseded' });
  });

  it('refuses ?access_token= sent twice (400 SG_ERR_AMBIGUOUS_TOKEN)', async () => {
    const gw = await startGateway({ tokens: ['bearer', 'query:access_token'] });
    const { token } = await gw.loginJson('alice');
    const res = await get(`${gw.url}/api/me?access_token=${token}&access_token=other`);
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: 'SG_ERR_AMBIGUOUS_TOKEN' });
  });

  it('refuses a token header sent twice (400 SG_ERR_AMBIGUOUS_TOKEN)', async () => {
    const gw = await startGateway({ tokens: ['header:x-auth-token'] });
    const { token } = await gw.loginJson('alice');
    const res = await get(`${gw.url}/api/me`, { 'x-auth-token': `${token}, other` });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: 'SG_ERR_AMBIGUOUS_TOKEN' });
  });
});
