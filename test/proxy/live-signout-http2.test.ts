/**
 * `ui.liveSignOut` on the TLS listener over HTTP/2 (Node's compatibility response objects): the tag in
 * a gzip page, and the event stream ended when its session is superseded.
 */
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { startGateway } from '../support/gateway.js';
import { FORM_LOGIN_RULE } from '../support/login-rules.js';
import { needTool } from '../support/tools.js';
import { listenApp, type ListeningApp } from '../support/upstreams.js';

const PAGE = '<!doctype html><html><head><title>h2</title></head><body>h2</body></html>';
const TAG = '<script src="/.sessiongate/live.js" defer></script>';

function haveOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** One exchange on the session: status, headers and the body's bytes (nothing decompressed). */
async function exchange(
  session: ClientHttp2Session,
  headers: Record<string, string>,
  body?: string,
): Promise<{ headers: IncomingHttpHeaders; body: Buffer }> {
  const stream = session.request(headers);
  stream.end(body);
  const [head] = (await once(stream, 'response')) as [IncomingHttpHeaders];
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return { headers: head, body: Buffer.concat(chunks) };
}

describe.skipIf(!needTool('openssl', 'openssl', haveOpenssl()))('live sign-out over HTTP/2', () => {
  let dir: string;
  let app: ListeningApp;
  let ca: Buffer;
  let files: { cert: string; key: string };
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sessiongate-live-h2-'));
    files = { cert: join(dir, 'tls.crt'), key: join(dir, 'tls.key') };
    execFileSync(
      'openssl',
      // prettier-ignore
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
       '-subj', '/CN=sessiongate-live-h2', '-addext', 'subjectAltName=IP:127.0.0.1',
       '-keyout', files.key, '-out', files.cert],
      { stdio: 'ignore' },
    );
    ca = readFileSync(files.cert);
    let n = 0;
    app = await listenApp((req, res) => {
      if (req.url === '/login') {
        req.resume();
        res.writeHead(302, { location: '/app', 'set-cookie': `sid=h2-${++n}-${Date.now()}; Path=/` });
        return void res.end();
      }
      const body = gzipSync(PAGE);
      res.writeHead(200, {
        'content-type': 'text/html',
        'content-encoding': 'gzip',
        'content-length': String(body.length),
      });
      res.end(body);
    });
  });
  afterAll(async () => {
    await app?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('inserts into a gzip page and ends the stream of a superseded session', async () => {
    const gw = await startGateway({
      upstream: app.url,
      login: [FORM_LOGIN_RULE],
      tokens: ['cookie:sid'],
      ui: { liveSignOut: true },
      tls: files,
    });
    const session = connect(gw.url, { ca: [ca] });
    onTestFinished(() => void session.close());
    const signIn = async () => {
      const res = await exchange(
        session,
        { ':method': 'POST', ':path': '/login', 'content-type': 'application/x-www-form-urlencoded' },
        'username=ivy',
      );
      const set = String(res.headers['set-cookie']);
      return set.slice(0, set.indexOf(';'));
    };
    const cookie = await signIn();
    const page = await exchange(session, { ':path': '/page', cookie, 'accept-encoding': 'gzip' });
    expect(page.headers[':status']).toBe(200);
    expect(page.headers['content-length']).toBeUndefined();
    expect(gunzipSync(page.body).toString()).toBe(PAGE.replace('</head>', `${TAG}</head>`));

    const stream = session.request({ ':path': '/.sessiongate/live', cookie, accept: 'text/event-stream' });
    stream.end();
    let text = '';
    stream.on('data', (c: Buffer) => (text += c.toString()));
    await once(stream, 'data');
    await signIn();
    await once(stream, 'end');
    expect(text).toContain('event: ended\ndata: {"reason":"session_superseded",');
  });
});
