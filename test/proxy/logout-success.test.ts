/** A logout rule ends the session only when the app confirms the logout (2xx or 3xx by default). */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, get, postJson, startGateway } from '../support/gateway.js';
import { listenApp, readBody } from '../support/upstreams.js';
import type { RunningApp } from '../support/running-app.js';
import { JSON_LOGIN_RULE } from '../support/login-rules.js';

const LOGIN = [JSON_LOGIN_RULE];

/** Logs anyone in; `POST /logout/<status>` answers that status. */
async function logoutApp(): Promise<RunningApp> {
  return listenApp((req, res) => {
    void readBody(req).then((body) => {
      const path = req.url ?? '/';
      if (path === '/api/login') {
        const { username } = JSON.parse(body.toString()) as { username: string };
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ accessToken: randomBytes(16).toString('hex'), user: { id: username } }));
        return;
      }
      const m = /^\/logout\/(\d{3})$/.exec(path);
      res.writeHead(m ? Number(m[1]) : 200, m?.[1]?.startsWith('3') ? { location: '/' } : {});
      res.end();
    });
  });
}

describe('logout success', () => {
  let app: RunningApp;
  beforeAll(async () => void (app = await logoutApp()));
  afterAll(() => app.close());

  const gateway = () =>
    startGateway({ upstream: app.url, login: LOGIN, logout: [{ match: 'POST /logout/*' }] });
  const login = async (url: string, user: string) =>
    ((await (await postJson(`${url}/api/login`, { username: user })).json()) as { accessToken: string })
      .accessToken;

  it('keeps the session when the logout route answers 404', async () => {
    const { url } = await gateway();
    const token = await login(url, 'lou');
    expect((await postJson(`${url}/logout/404`, {}, bearer(token))).status).toBe(404);
    expect((await get(`${url}/data`, bearer(token))).status).toBe(200);
  });

  it('ends the session on a 204 and on a 303 redirect', async () => {
    const { url } = await gateway();
    for (const code of [204, 303]) {
      const token = await login(url, `mae-${code}`);
      expect((await postJson(`${url}/logout/${code}`, {}, bearer(token))).status).toBe(code);
      const res = await get(`${url}/data`, bearer(token));
      expect(res.status).toBe(401);
      expect(await res.json()).toMatchObject({ error: 'session_logged_out' });
    }
  });
});
