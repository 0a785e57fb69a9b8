/**
 * Streamed responses of a live session (SSE, NDJSON, long polls: anything chunked without a
 * Content-Length) were checked once, when they started; they are closed when the session is revoked.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { request } from 'undici';
import { bearer, postJson, startGateway } from '../support/gateway.js';
import { listenApp, readBody } from '../support/upstreams.js';
import { JSON_LOGIN_RULE } from '../support/login-rules.js';

/** A JSON login app with an NDJSON feed (`GET /feed`) that writes a line every 20 ms until closed. */
async function feedApp() {
  let n = 0;
  const app = await listenApp((req, res) => {
    void (async () => {
      await readBody(req);
      if (req.url === '/api/login') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ accessToken: `t-${++n}-${Date.now()}`, user: { id: 'sam' } }));
        return;
      }
      if (req.url === '/feed') {
        res.writeHead(200, { 'content-type': 'application/x-ndjson' });
        let i = 0;
        const t = setInterval(() => res.write(`${JSON.stringify({ i: ++i })}\n`), 20);
        res.on('close', () => clearInterval(t));
        return;
      }
      res.end('ok');
    })();
  });
  onTestFinished(() => app.close());
  return app;
}

const LOGIN = [JSON_LOGIN_RULE];
const login = async (url: string) =>
  ((await (await postJson(`${url}/api/login`, {})).json()) as { accessToken: string }).accessToken;

describe('a streamed response of a live session', () => {
  it('ends an NDJSON stream when its session is superseded', async () => {
    const app = await feedApp();
    const { url, gateway } = await startGateway({ upstream: app.url, login: LOGIN });
    const token = await login(url);
    const res = await request(`${url}/feed`, { headers: bearer(token) });
    expect(res.headers['content-length']).toBeUndefined();
    let text = '';
    let firstLine: () => void = () => {};
    const flowing = new Promise<void>((resolve) => (firstLine = resolve));
    const ended = (async () => {
      try {
        for await (const c of res.body) {
          text += String(c);
          if (text.includes('\n')) firstLine();
        }
      } catch {
        // Cut, not completed: a client must not take a partial feed for a whole one.
      }
    })();
    await flowing;
    await login(url);
    await ended;
    expect(text).toContain('{"i":1}');
    expect(
      await gateway.metrics.registry.getSingleMetricAsString('sessiongate_connections_closed_total'),
    ).toContain('kind="stream"} 1');
  }, 10_000);
});
