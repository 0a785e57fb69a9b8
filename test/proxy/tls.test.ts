/**
 * The proxy listener over TLS (`tls: { cert, key }`): HTTP/2 by ALPN and HTTP/1.1 for the clients that do
 * not take it, checked, tapped and refused alike; `X-Forwarded-Proto: https`; Secure deletions; a
 * certificate rotated on disk reaching new connections only. Certificates are made here with openssl.
 */
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect as h2connect, type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, TLSSocket } from 'node:tls';
import { Agent, getGlobalDispatcher, setGlobalDispatcher, type Dispatcher } from 'undici';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { bearer, get, postForm, startGateway, type TestGateway } from '../support/gateway.js';
import { waitUntil } from '../support/wait.js';
import { needTool } from '../support/tools.js';
import { listenApp } from '../support/upstreams.js';
import { JSON_LOGIN_RULE } from '../support/login-rules.js';

function haveOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

interface Certificate {
  readonly cert: string;
  readonly key: string;
  readonly pem: Buffer;
  /** As `getPeerCertificate().fingerprint256` shows it. */
  readonly fingerprint: string;
}

/** A self-signed certificate for 127.0.0.1 and localhost, written to `dir/<name>.{crt,key}`. */
function makeCertificate(dir: string, name: string): Certificate {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  execFileSync(
    'openssl',
    // prettier-ignore
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
     '-subj', `/CN=sessiongate-test-${name}`, '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
     '-keyout', key, '-out', cert],
    { stdio: 'ignore' },
  );
  const fingerprint = execFileSync('openssl', ['x509', '-in', cert, '-noout', '-fingerprint', '-sha256'])
    .toString()
    .trim()
    .replace(/^.*=/, '');
  return { cert, key, pem: readFileSync(cert), fingerprint };
}

const WANT_SUPERSEDED = {
  error: 'session_superseded',
  message: 'Another session has been started using your account. You will now be signed out.',
};

interface H2Response {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** One request on an HTTP/2 session. */
function h2(
  session: ClientHttp2Session,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<H2Response> {
  return new Promise((resolve, reject) => {
    // A CONNECT names an authority and no path (RFC 9113 section 8.5).
    const target = method === 'CONNECT' ? {} : { ':path': path };
    const stream = session.request({ ':method': method, ...target, ...headers }, { endStream: !body });
    let responseHeaders: IncomingHttpHeaders = {};
    let text = '';
    stream.setEncoding('utf8');
    stream.on('response', (h) => (responseHeaders = h));
    stream.on('data', (chunk: string) => (text += chunk));
    stream.on('end', () =>
      resolve({ status: Number(responseHeaders[':status']), headers: responseHeaders, body: text }),
    );
    stream.on('error', reject);
    if (body) stream.end(body);
  });
}

/** The fingerprint of the certificate an HTTP/2 session was served. */
function servedTo(s: ClientHttp2Session): string {
  const socket = s.socket;
  if (!(socket instanceof TLSSocket)) throw new Error('not a TLS session');
  return socket.getPeerCertificate().fingerprint256;
}

describe.skipIf(!needTool('openssl', 'openssl', haveOpenssl()))('the proxy listener over TLS', () => {
  let dir: string;
  let first: Certificate;
  let rotated: Certificate;
  let previous: Dispatcher;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sg-tls-'));
    first = makeCertificate(dir, 'first');
    rotated = makeCertificate(dir, 'rotated');
    // The request helpers (undici and fetch) speak HTTP/1.1 and trust the two test certificates.
    previous = getGlobalDispatcher();
    setGlobalDispatcher(new Agent({ connect: { ca: [first.pem, rotated.pem] } }));
  });
  afterAll(async () => {
    const ours = getGlobalDispatcher();
    setGlobalDispatcher(previous);
    await ours.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A gateway in front of the test app serving `cert` from files of its own (so it may be replaced). */
  async function tlsGateway(config: Parameters<typeof startGateway>[0] = {}, cert = first) {
    const own = mkdtempSync(join(dir, 'gw-'));
    const files = { cert: join(own, 'tls.crt'), key: join(own, 'tls.key') };
    copyFileSync(cert.cert, files.cert);
    copyFileSync(cert.key, files.key);
    const gw = await startGateway({ ...config, tls: files });
    return { gw, files };
  }

  /** An HTTP/2 session to the gateway, closed at the end of the test. */
  async function session(gw: TestGateway): Promise<ClientHttp2Session> {
    const s = h2connect(gw.url, { ca: [first.pem, rotated.pem] });
    onTestFinished(() => void s.close());
    await new Promise<void>((resolve, reject) => {
      s.once('connect', () => resolve());
      s.once('error', reject);
    });
    expect(s.alpnProtocol).toBe('h2');
    return s;
  }

  const loginH2 = async (s: ClientHttp2Session, username: string) => {
    const res = await h2(
      s,
      'POST',
      '/api/login',
      { 'content-type': 'application/json' },
      JSON.stringify({ username }),
    );
    expect(res.status).toBe(200);
    return String((JSON.parse(res.body) as { accessToken: string }).accessToken);
  };

  // First in the file (a process of its own): Node warns of a status text once per process.
  it('sends no status text over HTTP/2 (it has none), where Node would warn', async () => {
    const { gw } = await tlsGateway();
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    process.on('warning', onWarning);
    onTestFinished(() => void process.off('warning', onWarning));
    const s = await session(gw);
    expect((await h2(s, 'GET', '/streamed')).status).toBe(200);
    expect(
      (await h2(s, 'POST', '/api/login', { 'content-type': 'application/json' }, '{"username":"a"}')).status,
    ).toBe(200);
    // Warnings are emitted on the next tick, in order: once ours arrives, any from the responses has.
    process.emitWarning('sessiongate-test-marker');
    await waitUntil('the marker warning', () => warnings.find((m) => m === 'sessiongate-test-marker'));
    expect(warnings.filter((m) => m.includes('Status message'))).toEqual([]);
  });

  it('serves HTTPS at its URL', async () => {
    const { gw } = await tlsGateway();
    expect(gw.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect((await get(`${gw.url}/x`)).status).toBe(200);
  });

  it('tells the app X-Forwarded-Proto https and the Host the client asked for, over HTTP/1.1 and HTTP/2', async () => {
    const { gw } = await tlsGateway();
    const authority = new URL(gw.url).host;
    expect((await get(`${gw.url}/over-h1`)).status).toBe(200);
    expect((await h2(await session(gw), 'GET', '/over-h2')).status).toBe(200);
    const seen = (path: string) => gw.upstream?.requests.find((r) => r.path === path)?.headers;
    for (const path of ['/over-h1', '/over-h2']) {
      expect(seen(path)?.['x-forwarded-proto']).toBe('https');
      expect(seen(path)?.host).toBe(authority);
      expect(seen(path)?.['x-forwarded-host']).toBe(authority);
    }
    // No pseudo-header reaches the app as a header.
    expect(Object.keys(seen('/over-h2') ?? {}).filter((h) => h.startsWith(':'))).toEqual([]);
  });

  it('registers a login over HTTP/2 and refuses its superseded token alike on both protocols', async () => {
    const { gw } = await tlsGateway({ sessions: { limit: 1 } });
    const s = await session(gw);
    const old = await loginH2(s, 'alice');
    expect((await h2(s, 'GET', '/api/me', bearer(old))).status).toBe(200);
    await gw.loginJson('alice'); // over HTTP/1.1: supersedes the HTTP/2 login
    const overH1 = await get(`${gw.url}/api/me`, bearer(old));
    const overH2 = await h2(s, 'GET', '/api/me', bearer(old));
    expect(overH1.status).toBe(401);
    expect(overH2.status).toBe(401);
    expect(await overH1.json()).toEqual(WANT_SUPERSEDED);
    expect(JSON.parse(overH2.body)).toEqual(WANT_SUPERSEDED);
    const challenge = 'Bearer error="invalid_token", error_description="session_superseded"';
    expect(overH1.headers.get('www-authenticate')).toBe(challenge);
    expect(overH2.headers['www-authenticate']).toBe(challenge);
  });

  it('refuses a token superseded by an HTTP/2 login on HTTP/1.1', async () => {
    const { gw } = await tlsGateway({ sessions: { limit: 1 } });
    const { token: old } = await gw.loginJson('alice');
    await loginH2(await session(gw), 'alice');
    const res = await get(`${gw.url}/api/me`, bearer(old));
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual(WANT_SUPERSEDED);
  });

  it('marks the deletion of a superseded cookie Secure, over HTTP/1.1 and HTTP/2', async () => {
    const { gw } = await tlsGateway({ sessions: { limit: 1 } });
    const { sid: old } = await gw.loginForm('alice');
    await gw.loginForm('alice');
    const overH1 = await get(`${gw.url}/api/me`, { cookie: `sid=${old}` });
    const overH2 = await h2(await session(gw), 'GET', '/api/me', { cookie: `sid=${old}` });
    expect(overH1.status).toBe(401);
    expect(overH2.status).toBe(401);
    const want =
      'sid=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Secure; HttpOnly; SameSite=Lax';
    expect(overH1.headers.getSetCookie()).toEqual([want]);
    expect(overH2.headers['set-cookie']).toEqual([want]);
  });

  it('relays a chunked keep-alive response over HTTP/2 without its connection headers', async () => {
    const { gw } = await tlsGateway();
    const { sid } = await gw.loginForm('alice');
    // The test app's page has no Content-Length: it comes chunked, with Connection and Keep-Alive.
    const res = await h2(await session(gw), 'GET', '/app', { cookie: `sid=${sid}` });
    expect(res.status).toBe(200);
    expect(res.body).toContain('Hello alice');
    expect(res.headers.connection).toBeUndefined();
    expect(res.headers['keep-alive']).toBeUndefined();
    expect(res.headers['transfer-encoding']).toBeUndefined();
  });

  it('refuses an HTTP/2 request whose Host differs from its :authority', async () => {
    const { gw } = await tlsGateway();
    const res = await h2(await session(gw), 'GET', '/x', {
      ':authority': new URL(gw.url).host,
      host: 'elsewhere.example',
    });
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body)).toMatchObject({ error: 'SG_ERR_BAD_REQUEST' });
    expect(gw.upstream?.requests.some((r) => r.path === '/x')).toBe(false);
  });

  it('refuses an HTTP/2 CONNECT (no WebSocket over HTTP/2) with a JSON 405, the session still usable', async () => {
    const { gw } = await tlsGateway();
    const s = await session(gw);
    const res = await h2(s, 'CONNECT', '', { ':authority': 'app.example:443' });
    expect(res.status).toBe(405);
    expect(JSON.parse(res.body)).toMatchObject({ error: 'SG_ERR_UPGRADE_REFUSED' });
    expect((await h2(s, 'GET', '/after')).status).toBe(200);
  });

  it('serves a certificate rotated on disk to new connections, while an open HTTP/2 session keeps working', async () => {
    const { gw, files } = await tlsGateway();
    const s = await session(gw);
    expect(servedTo(s)).toBe(first.fingerprint);

    copyFileSync(rotated.key, files.key);
    copyFileSync(rotated.cert, files.cert);
    await waitUntil('the certificate reload', () => gw.logs.lines().find((l) => l.event === 'tls_reloaded'));

    const fresh = await new Promise<string>((resolve, reject) => {
      const { port } = new URL(gw.url);
      const sock = tlsConnect({ host: '127.0.0.1', port: Number(port), ca: [first.pem, rotated.pem] }, () => {
        resolve(sock.getPeerCertificate().fingerprint256);
        sock.end();
      });
      sock.on('error', reject);
    });
    expect(fresh).toBe(rotated.fingerprint);
    expect((await h2(s, 'GET', '/still-open')).status).toBe(200);
    expect(servedTo(s)).toBe(first.fingerprint);
  });

  it('keeps serving its certificate when a changed pair does not match, and says why', async () => {
    const { gw, files } = await tlsGateway();
    copyFileSync(rotated.key, files.key); // the key of another certificate
    const warning = await waitUntil('the reload warning', () =>
      gw.logs.lines().find((l) => l.code === 'SG_WARN_TLS_RELOAD'),
    );
    expect(String(warning.reason)).toContain(`tls.key: ${files.key} is not the key of ${files.cert}`);
    expect((await get(`${gw.url}/x`)).status).toBe(200);
  });

  it('closes an HTTP/2 session idle for timeouts.keepAlive with a GOAWAY', async () => {
    const { gw } = await tlsGateway({ timeouts: { keepAlive: '200ms' } });
    const s = await session(gw);
    const goaway = once(s, 'goaway');
    expect((await h2(s, 'GET', '/x')).status).toBe(200);
    await goaway;
    await once(s, 'close');
  });

  it('at shutdown, sends an HTTP/2 session a GOAWAY and lets its open stream finish', async () => {
    let onArrival: (() => void) | undefined;
    const arrived = new Promise<void>((resolve) => {
      onArrival = resolve;
    });
    let answer: (() => void) | undefined;
    const app = await listenApp((_req, res) => {
      answer = () => res.end('finished');
      onArrival?.();
    });
    onTestFinished(() => app.close());
    const login = [JSON_LOGIN_RULE];
    const { gw } = await tlsGateway({ upstream: app.url, login });
    const s = await session(gw);
    const response = h2(s, 'GET', '/slow');
    await arrived;
    const goaway = once(s, 'goaway');
    // What gateway.close() sweeps with, before its grace runs out.
    gw.gateway.proxy.closeIdleConnections();
    await goaway;
    answer?.();
    const res = await response;
    expect(res.status).toBe(200);
    expect(res.body).toBe('finished');
  });

  it('serves the admin listener over HTTPS with admin.tls', async () => {
    const gw = await startGateway({ admin: { tls: { cert: first.cert, key: first.key } } });
    expect(gw.adminUrl).toMatch(/^https:/);
    const status = await new Promise<number | undefined>((resolve, reject) => {
      httpsRequest(`${gw.adminUrl}/healthz`, { ca: first.pem }, (res) => {
        res.resume();
        resolve(res.statusCode);
      })
        .on('error', reject)
        .end();
    });
    expect(status).toBe(200);
  });

  it('takes a missing certificate file for a configuration error naming the key', async () => {
    const missing = join(dir, 'absent.crt');
    const err = await startGateway({ tls: { cert: missing, key: first.key } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).problems).toEqual([
      { path: 'tls.cert', message: `cannot read ${missing}: ENOENT` },
    ]);
  });

  it('exits 2 from `sessiongate` (run and check) on a missing certificate file, naming the key', async () => {
    const cli = join(import.meta.dirname, '../../dist/src/cli.js');
    const missing = join(dir, 'absent.crt');
    const config = join(dir, 'missing-cert.yaml');
    writeFileSync(
      config,
      `listen: 127.0.0.1:0\nupstream: http://127.0.0.1:9\nsecret: a-secret-of-sixteen+\n` +
        `admin: { listen: "127.0.0.1:0" }\ntls: { cert: ${missing}, key: ${first.key} }\n` +
        `login:\n  - match: POST /api/login\n    token: json:accessToken\n    user: json:user.id\n`,
    );
    for (const args of [[], ['check']]) {
      const child = spawn(process.execPath, [cli, ...args, '--config', config], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const [code] = (await once(child, 'exit')) as [number | null];
      expect(code).toBe(2);
      expect(stderr).toContain(`tls.cert: cannot read ${missing}: ENOENT`);
    }
  });

  it('takes a key that is not the certificate’s for a configuration error naming tls.key', async () => {
    const err = await startGateway({ tls: { cert: first.cert, key: rotated.key } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).problems.map((p) => p.path)).toEqual(['tls.key']);
  });

  it('signs a form login in over HTTP/1.1 through TLS', async () => {
    const { gw } = await tlsGateway();
    const res = await postForm(`${gw.url}/login`, { username: 'bob' });
    expect(res.status).toBe(302);
    expect(res.headers.get('location')).toBe('/app');
  });
});
