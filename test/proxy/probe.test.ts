/**
 * The who-am-I probe presents the new session as the browser would: under the cookie name the login
 * response set (a rule's glob `wordpress_logged_in_*` is no cookie name), and reads at most
 * `maxLoginBody` of the app's answer.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it, onTestFinished } from 'vitest';
import { get, postForm, startGateway } from '../support/gateway.js';
import { cookieOf, listenApp, readBody } from '../support/upstreams.js';

const COOKIE = 'wordpress_logged_in_5d41402abc4b2a76b9719d911017c592';

/**
 * A WordPress-like login: `POST /wp-login.php` sets the logged-in cookie (its name carries the site
 * hash) and names no user; `GET /wp-json/wp/v2/users/me` answers who the cookie belongs to, padded
 * with `padding` bytes (chunked, no Content-Length).
 */
async function wordpressApp(padding = 0) {
  const sessions = new Map<string, string>();
  const app = await listenApp((req, res) => {
    void (async () => {
      await readBody(req);
      if (req.method === 'POST' && req.url === '/wp-login.php') {
        const value = `admin|1700000000|${randomBytes(12).toString('hex')}|hmac`;
        sessions.set(value, 'admin');
        res.writeHead(302, {
          location: '/wp-admin/',
          'set-cookie': `${COOKIE}=${encodeURIComponent(value)}; path=/; HttpOnly`,
        });
        res.end();
        return;
      }
      if (req.url === '/wp-json/wp/v2/users/me') {
        const raw = cookieOf(req, COOKIE);
        const who = raw === undefined ? undefined : sessions.get(decodeURIComponent(raw));
        res.writeHead(who ? 200 : 401, { 'content-type': 'application/json' });
        res.write(`{"slug":${JSON.stringify(who ?? null)},"padding":"`);
        for (let left = padding; left > 0; left -= 1024) res.write('x'.repeat(Math.min(1024, left)));
        res.end('"}');
        return;
      }
      res.end('ok');
    })();
  });
  onTestFinished(() => app.close());
  return app;
}

/** The gateway config of the app, naming its cookie by a glob or (`exact`) by its name. */
const config = (upstream: string, cookie = 'wordpress_logged_in_*') => ({
  upstream,
  login: [
    {
      match: 'POST /wp-login.php',
      token: `cookie:${cookie}`,
      success: { status: 302, location: '/wp-admin' },
      probe: { match: 'GET /wp-json/wp/v2/users/me', user: 'json:slug' },
    },
  ],
  tokens: [`cookie:${cookie}`],
  maxLoginBody: '8kb',
});

describe('the who-am-I probe', () => {
  it('presents a glob-named cookie under the name the login response set', async () => {
    const app = await wordpressApp();
    const { url, gateway } = await startGateway(config(app.url));
    const login = await postForm(`${url}/wp-login.php`, { log: 'admin', pwd: 'pw' });
    expect(login.status).toBe(302);
    expect(await gateway.sessions.listSessions('admin')).toHaveLength(1);
    const cookie = (login.headers.getSetCookie()[0] as string).split(';')[0] as string;
    expect((await get(`${url}/wp-admin/`, { cookie })).status).toBe(200);
  });

  it('fails when the answer is over maxLoginBody, and the login is refused', async () => {
    const app = await wordpressApp(64 * 1024);
    const { url, gateway } = await startGateway(config(app.url, COOKIE));
    const login = await postForm(`${url}/wp-login.php`, { log: 'admin', pwd: 'pw' });
    expect(login.status).toBe(503);
    expect(login.headers.getSetCookie()).toEqual([]);
    expect(await gateway.sessions.listSessions('admin')).toHaveLength(0);
    expect(await gateway.metrics.registry.getSingleMetricAsString('sessiongate_logins_total')).toContain(
      'outcome="probe_failed"} 1',
    );
  });

  it('reads an answer within maxLoginBody', async () => {
    const app = await wordpressApp(4 * 1024);
    const { url, gateway } = await startGateway(config(app.url, COOKIE));
    const login = await postForm(`${url}/wp-login.php`, { log: 'admin', pwd: 'pw' });
    expect(login.status).toBe(302);
    expect(await gateway.sessions.listSessions('admin')).toHaveLength(1);
  });
});
