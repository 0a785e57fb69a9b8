/**
 * cookies.harden in front of real apps, each Set-Cookie read off the raw bytes the client receives and
 * compared with what the app itself sends: php-legacy (PHP's default `PHPSESSID=...; path=/`),
 * express-session without `cookie.secure` (behind a trusted TLS-terminating proxy), and the gateway's
 * own TLS listener (`secure: auto`), and Tomcat 10's JSESSIONID (servlet FORM login).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../../src/config/schema.js';
import type { RunningApp } from '../support/running-app.js';
import { haveExpressSession, startExpressSessionApp } from '../support/express-session.js';
import { startGateway } from '../support/gateway.js';
import { startPhpLegacyApp } from '../support/php-legacy.js';
import { havePhp } from '../support/apps.js';
import { haveTomcat, startTomcatApp } from '../support/tomcat.js';
import { needTool } from '../support/tools.js';
import { raw } from './cookie-harden-wire.js';

const FORM = { 'Content-Type': 'application/x-www-form-urlencoded' };

const PHP_LOGIN: NonNullable<ConfigInput['login']> = [
  {
    match: 'POST /login-regenerate.php',
    token: 'cookie:PHPSESSID',
    user: 'request.form:username',
    success: { status: 302, location: '/account.php' },
  },
];

function haveOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe.skipIf(!needTool('PHP', 'php-cli', havePhp()))('cookies.harden in front of php-legacy', () => {
  let app: RunningApp;
  beforeAll(async () => void (app = await startPhpLegacyApp()), 30_000);
  afterAll(() => app.close());

  const gateway = (extra: Partial<ConfigInput> = {}) =>
    startGateway({
      upstream: app.url,
      login: PHP_LOGIN,
      tokens: ['cookie:PHPSESSID'],
      cookies: { harden: {} },
      ...extra,
    });

  it("adds HttpOnly and SameSite=Lax to PHP's default cookie on the login page, the rest as PHP sent it", async () => {
    const direct = await raw(app.url, 'GET', '/login.php');
    expect(direct.setCookies).toEqual([expect.stringMatching(/^PHPSESSID=[a-z0-9]+; path=\/$/)]);
    const gw = await gateway();
    const res = await raw(gw.url, 'GET', '/login.php');
    expect(res.status).toBe(200);
    expect(res.setCookies).toEqual([
      expect.stringMatching(/^PHPSESSID=[a-z0-9]+; path=\/; HttpOnly; SameSite=Lax$/),
    ]);
  });

  it('hardens the regenerated id of a login response, and the session is registered under it', async () => {
    const gw = await gateway({ trustedProxies: ['127.0.0.1'] });
    const page = await raw(gw.url, 'GET', '/login.php', { 'X-Forwarded-Proto': 'https' });
    const preLogin = (page.setCookies[0] as string).split(';')[0] as string;
    const res = await raw(
      gw.url,
      'POST',
      '/login-regenerate.php',
      { ...FORM, Cookie: preLogin, 'X-Forwarded-Proto': 'https' },
      'username=alice&password=pw-alice',
    );
    expect(res.status).toBe(302);
    expect(res.setCookies).toEqual([
      expect.stringMatching(/^PHPSESSID=[a-z0-9]+; path=\/; HttpOnly; Secure; SameSite=Lax$/),
    ]);
    const sid = (res.setCookies[0] as string).split(';')[0] as string;
    expect(sid).not.toBe(preLogin);
    const account = await raw(gw.url, 'GET', '/account.php', { Cookie: sid });
    expect(account.status).toBe(200);
    expect(await gw.gateway.sessions.listSessions('alice')).toHaveLength(1);
  });

  describe.skipIf(!needTool('openssl', 'openssl', haveOpenssl()))('on the TLS listener', () => {
    let dir: string;
    let ca: Buffer;
    const tls = { cert: '', key: '' };
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'sessiongate-harden-tls-'));
      tls.cert = join(dir, 'gw.crt');
      tls.key = join(dir, 'gw.key');
      execFileSync(
        'openssl',
        // prettier-ignore
        ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
         '-subj', '/CN=sessiongate-harden', '-addext', 'subjectAltName=IP:127.0.0.1',
         '-keyout', tls.key, '-out', tls.cert],
        { stdio: 'ignore' },
      );
      ca = readFileSync(tls.cert);
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('adds Secure with secure: auto (HTTP/1.1 over TLS, raw header values)', async () => {
      const gw = await gateway({ tls });
      const setCookies = await new Promise<string[]>((resolve, reject) => {
        const req = httpsRequest(`${gw.url}/login.php`, { ca }, (res) => {
          res.resume();
          const out: string[] = [];
          for (let i = 0; i < res.rawHeaders.length; i += 2)
            if ((res.rawHeaders[i] as string).toLowerCase() === 'set-cookie')
              out.push(res.rawHeaders[i + 1] as string);
          res.on('end', () => resolve(out));
        });
        req.on('error', reject);
        req.end();
      });
      expect(setCookies).toEqual([
        expect.stringMatching(/^PHPSESSID=[a-z0-9]+; path=\/; HttpOnly; Secure; SameSite=Lax$/),
      ]);
    });
  });
});

describe.skipIf(!needTool('express-session', 'npm install (a devDependency)', haveExpressSession()))(
  'cookies.harden in front of express-session without cookie.secure',
  () => {
    let app: RunningApp;
    beforeAll(async () => void (app = await startExpressSessionApp()), 30_000);
    afterAll(() => app.close());

    const TOKEN = { from: 'cookie:connect.sid', capture: '^s:([^.]+)\\.' };
    const gateway = (sameSite: 'lax' | 'strict') =>
      startGateway({
        upstream: app.url,
        login: [
          {
            match: 'POST /login',
            token: TOKEN,
            user: 'request.form:username',
            success: { status: 302, location: '/account' },
          },
        ],
        tokens: [TOKEN],
        trustedProxies: ['127.0.0.1'],
        cookies: { harden: { sameSite } },
      });
    const signIn = (url: string, headers: Record<string, string> = {}) =>
      raw(url, 'POST', '/login', { ...FORM, ...headers }, 'username=alice&password=pw-alice');

    it('adds Secure behind a trusted proxy that says https, the signed value byte for byte', async () => {
      const direct = await signIn(app.url);
      expect(direct.setCookies).toEqual([
        expect.stringMatching(/^connect\.sid=s%3A[^;]+; Path=\/; HttpOnly; SameSite=Lax$/),
      ]);
      const gw = await gateway('lax');
      const res = await signIn(gw.url, { 'X-Forwarded-Proto': 'https' });
      expect(res.status).toBe(302);
      expect(res.setCookies).toEqual([
        expect.stringMatching(/^connect\.sid=s%3A[^;]+; Path=\/; HttpOnly; SameSite=Lax; Secure$/),
      ]);
      const sid = (res.setCookies[0] as string).split(';')[0] as string;
      expect((await raw(gw.url, 'GET', '/account', { Cookie: sid })).status).toBe(200);
      expect(await gw.gateway.sessions.listSessions('alice')).toHaveLength(1);
    });

    it("replaces express-session's SameSite=Lax in place with sameSite: strict", async () => {
      const gw = await gateway('strict');
      const res = await signIn(gw.url);
      expect(res.setCookies).toEqual([
        expect.stringMatching(/^connect\.sid=s%3A[^;]+; Path=\/; HttpOnly; SameSite=Strict$/),
      ]);
    });
  },
);

describe.skipIf(!needTool('Tomcat 10', 'tomcat10-common', haveTomcat()))(
  'cookies.harden in front of a Java servlet app on Tomcat',
  () => {
    let app: RunningApp;
    beforeAll(async () => void (app = await startTomcatApp()), 40_000);
    afterAll(() => app.close());

    it('hardens the JSESSIONID Tomcat changes to at login; the FORM login is never flagged as fixation', async () => {
      const gw = await startGateway({
        upstream: app.url,
        login: [
          {
            match: 'POST /app/**/j_security_check',
            token: 'cookie:JSESSIONID',
            user: 'request.form:j_username',
            success: { status: [302, 303] },
          },
        ],
        tokens: ['cookie:JSESSIONID'],
        trustedProxies: ['127.0.0.1'],
        cookies: { harden: { sameSite: 'strict' } },
        sessions: { fixation: 'refuse' },
      });
      const https = { 'X-Forwarded-Proto': 'https' };
      const page = await raw(gw.url, 'GET', '/app/', https);
      expect(page.setCookies).toEqual([
        expect.stringMatching(/^JSESSIONID=[0-9A-F]+; Path=\/app; HttpOnly; Secure; SameSite=Strict$/),
      ]);
      const anonymous = (page.setCookies[0] as string).split(';')[0] as string;
      const res = await raw(
        gw.url,
        'POST',
        '/app/j_security_check',
        { ...FORM, ...https, Cookie: anonymous },
        'j_username=alice&j_password=pw-alice',
      );
      expect(res.status).toBe(303);
      expect(res.setCookies).toEqual([
        expect.stringMatching(/^JSESSIONID=[0-9A-F]+; Path=\/app; HttpOnly; Secure; SameSite=Strict$/),
      ]);
      const signedIn = (res.setCookies[0] as string).split(';')[0] as string;
      expect(signedIn).not.toBe(anonymous);
      expect(await gw.gateway.sessions.listSessions('alice')).toHaveLength(1);
      expect(gw.logs.lines().filter((l) => l.code === 'SG_WARN_SESSION_FIXATION')).toEqual([]);
    });
  },
);
