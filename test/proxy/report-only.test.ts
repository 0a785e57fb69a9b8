/**
 * `mode: report-only` never changes traffic: what enforcement would refuse, reject or close is logged
 * and counted, and passes. Real gateways in front of a real app with a WebSocket endpoint.
 */
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { bearer, get, postJson, startGateway } from '../support/gateway.js';
import { waitUntil } from '../support/wait.js';
import { listenApp, readBody } from '../support/upstreams.js';
import type { RunningApp } from '../support/running-app.js';
import { JSON_LOGIN_RULE } from '../support/login-rules.js';

const LOGIN = [JSON_LOGIN_RULE];

/** Logs anyone in (a new token each time); a WebSocket on any path echoes. */
async function socketApp(): Promise<RunningApp> {
  const app = await listenApp((req, res) => {
    void readBody(req).then((body) => {
      if (req.url === '/api/login') {
        const { username } = JSON.parse(body.toString()) as { username: string };
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ accessToken: randomBytes(16).toString('hex'), user: { id: username } }));
        return;
      }
      res.end('ok');
    });
  });
  new WebSocketServer({ server: app.server }).on('connection', (ws) =>
    ws.on('message', (m) => ws.send(String(m))),
  );
  return app;
}

async function echo(ws: WebSocket, text: string): Promise<string> {
  const reply = once(ws, 'message') as Promise<[Buffer]>;
  ws.send(text);
  return String((await reply)[0]);
}

function openSocket(url: string, token: string): WebSocket {
  const ws = new WebSocket(`${url.replace('http', 'ws')}/socket`, { headers: bearer(token) });
  onTestFinished(() => ws.terminate());
  return ws;
}

describe('report-only mode', () => {
  let app: RunningApp;
  beforeAll(async () => void (app = await socketApp()));
  afterAll(() => app.close());

  const start = (sessions: Record<string, unknown> = {}) =>
    startGateway({ upstream: app.url, login: LOGIN, mode: 'report-only', sessions });
  const login = async (url: string, user: string) => {
    const res = await postJson(`${url}/api/login`, { username: user });
    return { status: res.status, body: (await res.json()) as { accessToken?: string } };
  };

  it('releases a login reject-new would refuse, counted as refused and logged', async () => {
    const gw = await start({ onLimit: 'reject-new' });
    await login(gw.url, 'max');
    const second = await login(gw.url, 'max');
    expect(second.status).toBe(200);
    const token = second.body.accessToken as string;
    expect((await get(`${gw.url}/data`, bearer(token))).status).toBe(200);
    expect(
      gw.logs.lines().filter((l) => l.reportOnly === true && l.code === 'session_limit_reached'),
    ).toHaveLength(1);
    const logins = await gw.gateway.metrics.registry.getSingleMetricAsString('sessiongate_logins_total');
    expect(logins).toContain('outcome="refused"} 1');
    expect(logins).not.toContain('outcome="created"} 2');
    // No session.refused: its webhook would tell the user of a refusal that did not happen.
    expect(gw.logs.audit('session.refused')).toEqual([]);
    // Registered past the limit: the gateway's view is the app's (two sessions).
    expect(await gw.gateway.sessions.listSessions('max')).toHaveLength(2);
  });

  it('marks the audit line of a request it would have rejected as report-only', async () => {
    const gw = await start();
    const first = await login(gw.url, 'rita');
    await login(gw.url, 'rita');
    const res = await get(`${gw.url}/x`, bearer(first.body.accessToken ?? ''));
    expect(res.status).toBe(200);
    const [line] = gw.logs.audit('request.rejected');
    expect(line).toMatchObject({ reason: 'session_superseded', reportOnly: true });
  });

  it('keeps a WebSocket open when its session is superseded, and logs it', async () => {
    const gw = await start();
    const first = await login(gw.url, 'ned');
    const ws = openSocket(gw.url, first.body.accessToken as string);
    await once(ws, 'open');
    await login(gw.url, 'ned');
    await waitUntil('the report-only log line', () =>
      gw.logs
        .lines()
        .some(
          (l) =>
            l.reportOnly === true &&
            l.code === 'session_superseded' &&
            String(l.msg).startsWith('would close'),
        )
        ? true
        : undefined,
    );
    expect(await echo(ws, 'still here')).toBe('still here');
    expect(ws.readyState).toBe(WebSocket.OPEN);
  });

  it('tunnels a WebSocket upgrade with a superseded token, counted and logged as report-only', async () => {
    const gw = await start();
    const first = await login(gw.url, 'ola');
    await login(gw.url, 'ola');
    const ws = openSocket(gw.url, first.body.accessToken as string);
    await once(ws, 'open');
    expect(await echo(ws, 'hi')).toBe('hi');
    const requests = await gw.gateway.metrics.registry.getSingleMetricAsString('sessiongate_requests_total');
    expect(requests).toContain('outcome="passed_report_only"} 1');
    expect(requests).not.toContain('outcome="passed_live"} 1');
    expect(gw.logs.lines().some((l) => l.reportOnly === true && l.code === 'session_superseded')).toBe(true);
  });
});
