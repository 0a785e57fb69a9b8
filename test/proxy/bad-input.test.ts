/**
 * Bad input (issue 12): whatever bytes a client or the app sends, the gateway answers cleanly or closes
 * cleanly, keeps serving, and is left with no socket it should not hold. Every case talks raw TCP
 * (node:net), so what is sent is exactly what the case says, and every connection is a new one that
 * closes: the gateway's open sockets then return to their count before the case.
 */
import { once } from 'node:events';
import { connect } from 'node:net';
import type { ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from '../support/gateway.js';
import { waitUntil } from '../support/wait.js';
import { listenApp, readBody } from '../support/upstreams.js';
import type { RunningApp } from '../support/running-app.js';

// ---------------------------------------------------------------------------------------------------
// A raw HTTP/1.1 client

/** What one connection received before it closed. */
interface Received {
  readonly bytes: Buffer;
  /** The error that ended the connection (ECONNRESET), if it did not end cleanly. */
  readonly error: string | undefined;
}

interface Conversation {
  readonly socket: ReturnType<typeof connect>;
  /** Resolves when the connection has closed, with everything received. */
  readonly closed: Promise<Received>;
}

/** Opens a new connection to the gateway and writes `parts`, each in one write. */
function talk(gw: TestGateway, ...parts: (string | Buffer)[]): Conversation {
  const socket = connect(Number(new URL(gw.url).port), '127.0.0.1');
  const chunks: Buffer[] = [];
  let error: string | undefined;
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
  const closed = once(socket, 'close').then(() => ({ bytes: Buffer.concat(chunks), error }));
  for (const p of parts) socket.write(p);
  return { socket, closed };
}

/** Sends `parts` on a new connection; resolves with what came back once the connection closed. */
function send(gw: TestGateway, ...parts: (string | Buffer)[]): Promise<Received> {
  return talk(gw, ...parts).closed;
}

interface ParsedResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
  /** The body arrived whole, as its Content-Length or chunked framing says. */
  readonly complete: boolean;
}

/** Parses the first response in `bytes` (undefined: not even a whole head). */
function parseResponse(bytes: Buffer): ParsedResponse | undefined {
  const end = bytes.indexOf('\r\n\r\n');
  if (end === -1) return undefined;
  const [statusLine = '', ...lines] = bytes.subarray(0, end).toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
  if (!m) return undefined;
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const rest = bytes.subarray(end + 4);
  if (headers['transfer-encoding']?.toLowerCase() === 'chunked') {
    const parts: Buffer[] = [];
    let off = 0;
    for (;;) {
      const eol = rest.indexOf('\r\n', off);
      if (eol === -1) break;
      const size = parseInt(rest.subarray(off, eol).toString('latin1'), 16);
      if (Number.isNaN(size) || eol + 2 + size + 2 > rest.length) break;
      if (size === 0) return { status: Number(m[1]), headers, body: Buffer.concat(parts), complete: true };
      parts.push(rest.subarray(eol + 2, eol + 2 + size));
      off = eol + 2 + size + 2;
    }
    return { status: Number(m[1]), headers, body: Buffer.concat(parts), complete: false };
  }
  const length = headers['content-length'];
  if (length !== undefined) {
    const n = Number(length);
    return { status: Number(m[1]), headers, body: rest.subarray(0, n), complete: rest.length >= n };
  }
  // Delimited by the close: complete only if the connection ended cleanly (checked by callers).
  return { status: Number(m[1]), headers, body: rest, complete: true };
}

/** The one response of a connection that closed after it; fails the test when there is none. */
function responseOf(received: Received): ParsedResponse {
  const res = parseResponse(received.bytes);
  expect(res, `no HTTP response in ${JSON.stringify(received.bytes.toString('latin1'))}`).toBeDefined();
  return res as ParsedResponse;
}

/** The JSON `error` code of a response the gateway wrote itself. */
function errorCodeOf(res: ParsedResponse): unknown {
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  return (JSON.parse(res.body.toString()) as { error?: unknown }).error;
}

const rawGet = (path: string, headers = '') =>
  `GET ${path} HTTP/1.1\r\nHost: gateway.test\r\nConnection: close\r\n${headers}\r\n`;

// ---------------------------------------------------------------------------------------------------
// After each case

function openSockets(gw: TestGateway): Promise<number> {
  return new Promise((resolve, reject) =>
    gw.gateway.proxy.server.getConnections((err, n) => (err ? reject(err) : resolve(n))),
  );
}

async function socketsBackTo(gw: TestGateway, baseline: number): Promise<void> {
  await waitUntil('the sockets back to the baseline', async () =>
    (await openSockets(gw)) === baseline ? true : undefined,
  );
}

/**
 * The gateway survived the case: its sockets are back to `baseline`, it is still listening, and a
 * normal request on a new connection is served (an uncaught exception or unhandled rejection would
 * also fail the run: vitest reports them).
 */
async function expectRecovered(gw: TestGateway, baseline: number, path = '/ok'): Promise<void> {
  await socketsBackTo(gw, baseline);
  expect(gw.gateway.proxy.server.listening).toBe(true);
  const res = responseOf(await send(gw, rawGet(path)));
  expect(res.status).toBe(200);
  expect(res.complete).toBe(true);
  await socketsBackTo(gw, baseline);
}

/** Log lines written from now on (`gw.logs` keeps every line since the start). */
function logsFrom(gw: TestGateway): () => Record<string, unknown>[] {
  const start = gw.logs.lines().length;
  return () => gw.logs.lines().slice(start);
}

const QUIET = new Set(['trace', 'debug']);

// ---------------------------------------------------------------------------------------------------

describe('malformed and hostile requests', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway();
  });

  /** A request the gateway must refuse itself, with this status and error code, forwarding nothing. */
  const refused: [string, string, number, string][] = [
    [
      'Content-Length with Transfer-Encoding (request smuggling)',
      'POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n' +
        '0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n',
      400,
      'SG_ERR_BAD_REQUEST',
    ],
    [
      'two different Content-Lengths',
      'POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\n' +
        'abcdGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n',
      400,
      'SG_ERR_BAD_REQUEST',
    ],
    [
      'Transfer-Encoding folded onto a continuation line (obs-fold)',
      'POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n' +
        '0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n',
      400,
      'SG_ERR_BAD_REQUEST',
    ],
    [
      'Transfer-Encoding ended by a bare LF',
      'POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\n\r\n' +
        '0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n',
      400,
      'SG_ERR_BAD_REQUEST',
    ],
    [
      'a chunk size that is not hex',
      'POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n' +
        'GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n',
      400,
      'SG_ERR_BAD_REQUEST',
    ],
    [
      'a chunk size that overflows 64 bits',
      'POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\nabc\r\n0\r\n\r\n' +
        'GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n',
      400,
      'SG_ERR_BAD_REQUEST',
    ],
    [
      'a request line longer than the header limit',
      `GET /${'a'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`,
      431,
      'SG_ERR_BAD_REQUEST',
    ],
    [
      'one header longer than the header limit',
      `GET /x HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
      431,
      'SG_ERR_BAD_REQUEST',
    ],
    [
      'thousands of headers, together over the header limit',
      `GET /x HTTP/1.1\r\nHost: x\r\n${'X-Header-Number: 1234\r\n'.repeat(3000)}\r\n`,
      431,
      'SG_ERR_BAD_REQUEST',
    ],
    [
      'a bearer token larger than the header limit',
      `GET /x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${'t'.repeat(20_000)}\r\n\r\n`,
      431,
      'SG_ERR_BAD_REQUEST',
    ],
    ['an invalid percent-escape in the path', rawGet('/api/%zz'), 400, 'SG_ERR_AMBIGUOUS_PATH'],
    ['a lone % at the end of the path', rawGet('/api/login%'), 400, 'SG_ERR_AMBIGUOUS_PATH'],
    ['an overlong UTF-8 escape in the path', rawGet('/api/%c0%afetc'), 400, 'SG_ERR_AMBIGUOUS_PATH'],
    ['a truncated UTF-8 escape in the path', rawGet('/api/%e2%82'), 400, 'SG_ERR_AMBIGUOUS_PATH'],
  ];

  for (const [what, bytes, status, code] of refused) {
    it(`refuses ${what} with ${status} ${code} and keeps serving`, async () => {
      const baseline = await openSockets(gw);
      const res = responseOf(await send(gw, bytes));
      expect(res.status).toBe(status);
      expect(errorCodeOf(res)).toBe(code);
      await expectRecovered(gw, baseline);
      // The request hidden in the body never became one of its own at the app.
      expect(gw.upstream?.requests.map((r) => r.path)).not.toContain('/smuggled');
    });
  }

  /** Odd but well-formed requests: passed to the app (the token, if any, is merely unknown). */
  const passed: [string, string][] = [
    ['thousands of small headers under the header limit', rawGet('/x', 'X-A: 1\r\n'.repeat(2500))],
    ['malformed cookies', rawGet('/x', 'Cookie: sid; =; ;;; "sid"="x; other=%zz%; \u00ff=\u00ff\r\n')],
    [
      'a huge bearer token under the header limit',
      rawGet('/x', `Authorization: Bearer ${'t'.repeat(15_000)}\r\n`),
    ],
    ['a huge cookie token under the header limit', rawGet('/x', `Cookie: sid=${'c'.repeat(15_000)}\r\n`)],
    ['an empty bearer token', rawGet('/x', 'Authorization: Bearer \r\n')],
  ];

  for (const [what, bytes] of passed) {
    it(`passes ${what} to the app and keeps serving`, async () => {
      const baseline = await openSockets(gw);
      const res = responseOf(await send(gw, bytes));
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body.toString())).toMatchObject({ ok: true, path: '/x' });
      await expectRecovered(gw, baseline);
    });
  }

  it('refuses a session cookie sent twice with two values (400 SG_ERR_AMBIGUOUS_TOKEN)', async () => {
    // Logged in on a connection of its own that closes (a pooled one would skew the socket count).
    const login = responseOf(
      await send(
        gw,
        'POST /api/login HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 19\r\n\r\n{"username":"dora"}',
      ),
    );
    const { accessToken: token } = JSON.parse(login.body.toString()) as { accessToken: string };
    const baseline = await openSockets(gw);
    // Stacks disagree on which one wins (jshttp and PHP: the first; Django: the last).
    const res = responseOf(
      await send(gw, rawGet('/x', `Cookie: sid=${token}; sid=forged\r\nCookie: sid=other\r\n`)),
    );
    expect(res.status).toBe(400);
    expect(errorCodeOf(res)).toBe('SG_ERR_AMBIGUOUS_TOKEN');
    await expectRecovered(gw, baseline);
  });

  it('refuses a session cookie whose percent-encoding is malformed (400 SG_ERR_AMBIGUOUS_TOKEN)', async () => {
    const baseline = await openSockets(gw);
    const res = responseOf(await send(gw, rawGet('/x', 'Cookie: sid=abc%zz%61\r\n')));
    expect(res.status).toBe(400);
    expect(errorCodeOf(res)).toBe('SG_ERR_AMBIGUOUS_TOKEN');
    await expectRecovered(gw, baseline);
  });
});

describe('slow clients (slowloris)', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({ timeouts: { headers: '300ms', body: '600ms' } });
  });

  it('answers a request head that never completes with 408 and closes the connection', async () => {
    const baseline = await openSockets(gw);
    const received = await send(gw, 'GET /x HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n');
    const res = responseOf(received);
    expect(res.status).toBe(408);
    expect(errorCodeOf(res)).toBe('SG_ERR_REQUEST_TIMEOUT');
    await expectRecovered(gw, baseline);
  });

  it('answers a request body that never completes with 408 and closes the connection', async () => {
    const baseline = await openSockets(gw);
    // The app's JSON login reads the whole body before answering, so nothing answers first.
    const received = await send(
      gw,
      'POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"username"',
    );
    const res = responseOf(received);
    expect(res.status).toBe(408);
    expect(errorCodeOf(res)).toBe('SG_ERR_REQUEST_TIMEOUT');
    await expectRecovered(gw, baseline);
  });
});

/** An app of our own: uploads it reads to the end, a large download, a form login. */
async function goneApp(): Promise<RunningApp & { nextResponse(): Promise<ServerResponse> }> {
  const waiting: ((res: ServerResponse) => void)[] = [];
  const app = await listenApp((req, res) => {
    if (req.url === '/ok') return void res.end('ok');
    waiting.shift()?.(res);
    if (req.url === '/download') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      // 256 MB with backpressure: far more than socket buffers hold, so the client's abort comes first.
      let left = 4096;
      const pump = () => {
        while (left > 0 && !res.destroyed) {
          left--;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
      return;
    }
    readBody(req).then(
      () => {
        res.writeHead(302, { location: '/', 'set-cookie': 'sid=form-session; Path=/' });
        res.end();
      },
      () => res.destroy(),
    );
  });
  /** The response of the next request the app receives (other than /ok). */
  const nextResponse = () => new Promise<ServerResponse>((r) => waiting.push(r));
  return { ...app, nextResponse };
}

describe('clients that go away', () => {
  let app: Awaited<ReturnType<typeof goneApp>>;
  let gw: TestGateway;
  beforeAll(async () => {
    app = await goneApp();
    gw = await startGateway({
      upstream: app.url,
      login: [
        {
          match: 'POST /form-login',
          token: 'cookie:sid',
          user: 'request.form:username',
          success: { status: 302 },
        },
      ],
      log: { level: 'debug' },
    });
  });
  afterAll(async () => {
    await gw.close();
    await app.close();
  });

  it('frees the app request of a client that aborts mid-upload, logging at debug at most', async () => {
    const baseline = await openSockets(gw);
    const logs = logsFrom(gw);
    const upstreamRes = app.nextResponse();
    const c = talk(
      gw,
      'POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n',
      'x'.repeat(1000),
    );
    const res = await upstreamRes;
    c.socket.destroy();
    await once(res, 'close');
    await c.closed;
    await expectRecovered(gw, baseline);
    expect(logs().filter((l) => !QUIET.has(String(l.level)))).toEqual([]);
  });

  it('takes a client that aborts a buffered login upload as no failure of its own', async () => {
    const baseline = await openSockets(gw);
    const logs = logsFrom(gw);
    const request = once(gw.gateway.proxy.server, 'request');
    const c = talk(
      gw,
      'POST /form-login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\n',
      'username=ann&pad=',
    );
    await request;
    c.socket.destroy();
    await c.closed;
    await expectRecovered(gw, baseline);
    expect(logs().filter((l) => l.level === 'error')).toEqual([]);
  });

  it('survives a client that aborts a buffered login upload (sockets back, still serving)', async () => {
    const baseline = await openSockets(gw);
    const request = once(gw.gateway.proxy.server, 'request');
    const c = talk(
      gw,
      'POST /form-login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\n',
      'username=ann&pad=',
    );
    await request;
    c.socket.destroy();
    await c.closed;
    await expectRecovered(gw, baseline);
  });

  it('stops the app response of a client that aborts mid-download', async () => {
    const baseline = await openSockets(gw);
    const logs = logsFrom(gw);
    const upstreamRes = app.nextResponse();
    const c = talk(gw, rawGet('/download'));
    const res = await upstreamRes;
    await once(c.socket, 'data');
    c.socket.destroy();
    await once(res, 'close');
    // The app was cut off before it had written everything.
    expect(res.writableFinished).toBe(false);
    await c.closed;
    await expectRecovered(gw, baseline);
    expect(logs().filter((l) => !QUIET.has(String(l.level)))).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------------
// The app misbehaves

const TOKENS = {
  truncated: 'TOKEN-truncated-json',
  nonJson: 'TOKEN-not-json',
  badGzip: 'TOKEN-gzip-that-is-not',
  oversized: 'TOKEN-over-max-login-body',
} as const;
type LoginCase = keyof typeof TOKENS;

async function badApp(): Promise<RunningApp> {
  return listenApp((req, res) => {
    void readBody(req).then(() => {
      const json = { 'content-type': 'application/json' };
      switch (req.url) {
        case '/ok':
          return void res.end('ok');
        case '/reset-mid-response':
          res.writeHead(200, { 'content-length': '1000' });
          // Reset once the first bytes are out, so the gateway has already started its response.
          return void res.write('x'.repeat(100), () => req.socket.destroy());
        case '/reset-before-response':
          return void req.socket.destroy();
        case '/hang':
          return; // never answers
        case '/garbage':
          return void req.socket.end('NOT HTTP AT ALL\r\n\r\n');
      }
      const c = req.headers['x-case'] as LoginCase;
      switch (c) {
        case 'truncated':
          res.writeHead(200, json);
          return void res.end(`{"accessToken":"${TOKENS.truncated}","user":"al`);
        case 'nonJson':
          res.writeHead(200, { 'content-type': 'text/plain' });
          return void res.end(`accessToken=${TOKENS.nonJson}&user=al`);
        case 'badGzip':
          res.writeHead(200, { ...json, 'content-encoding': 'gzip' });
          return void res.end(JSON.stringify({ accessToken: TOKENS.badGzip, user: 'al' }));
        case 'oversized':
          res.writeHead(200, json);
          return void res.end(
            JSON.stringify({ accessToken: TOKENS.oversized, user: 'al', pad: 'p'.repeat(4096) }),
          );
      }
      res.writeHead(404);
      res.end();
    });
  });
}

describe('an app that misbehaves', () => {
  let app: RunningApp;
  let gw: TestGateway;
  beforeAll(async () => {
    app = await badApp();
    gw = await startGateway({
      upstream: app.url,
      login: [{ match: 'POST /api/login', token: 'json:accessToken', user: 'json:user' }],
      timeouts: { response: '300ms' },
      maxLoginBody: '1kb',
    });
  });
  afterAll(async () => {
    await gw.close();
    await app.close();
  });

  it('cuts the client connection when the app resets mid-response, never completing it', async () => {
    const baseline = await openSockets(gw);
    const received = await send(gw, rawGet('/reset-mid-response'));
    const res = responseOf(received);
    expect(res.status).toBe(200);
    expect(res.complete).toBe(false);
    await expectRecovered(gw, baseline);
  });

  const answered: [string, string, number, string][] = [
    ['resets before answering', '/reset-before-response', 502, 'SG_ERR_UPSTREAM'],
    ['answers garbage', '/garbage', 502, 'SG_ERR_UPSTREAM'],
    ['hangs past timeouts.response', '/hang', 504, 'SG_ERR_UPSTREAM_TIMEOUT'],
  ];
  for (const [what, path, status, code] of answered) {
    it(`answers ${status} ${code} when the app ${what}`, async () => {
      const baseline = await openSockets(gw);
      const res = responseOf(await send(gw, rawGet(path)));
      expect(res.status).toBe(status);
      expect(errorCodeOf(res)).toBe(code);
      await expectRecovered(gw, baseline);
    });
  }

  const login = (c: LoginCase) =>
    `POST /api/login HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nX-Case: ${c}\r\nContent-Length: 2\r\n\r\n{}`;

  /** A complete HTTP response, or a close before any byte: never a hang, never a cut-off body. */
  function expectCompleteOrCleanClose(received: Received): ParsedResponse | undefined {
    if (received.bytes.length === 0) {
      expect(received.error).toBeUndefined();
      return undefined;
    }
    const res = responseOf(received);
    expect(res.complete).toBe(true);
    return res;
  }

  // A login the gateway could not read is refused (login[].onUnreadable: refuse, the default): a token
  // the store does not know never reaches the client.
  const unreadable: [LoginCase, string][] = [
    ['truncated', 'truncated JSON'],
    ['nonJson', 'a body that is not JSON'],
    ['badGzip', 'Content-Encoding gzip over bytes that are not gzip'],
    ['oversized', 'a body over maxLoginBody'],
  ];
  for (const [c, what] of unreadable) {
    it(`survives a login response of ${what}: a complete answer, sockets back`, async () => {
      const baseline = await openSockets(gw);
      expectCompleteOrCleanClose(await send(gw, login(c)));
      await expectRecovered(gw, baseline);
    });

    it(`refuses a login response of ${what} it could not read: 502, the token never delivered`, async () => {
      const res = parseResponse((await send(gw, login(c))).bytes);
      expect(res?.status).toBe(502);
      expect(res?.body.includes(TOKENS[c])).toBe(false);
      expect(JSON.parse(String(res?.body))).toMatchObject({ error: 'SG_ERR_LOGIN_UNREADABLE' });
    });
  }
});
