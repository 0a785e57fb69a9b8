/**
 * New-login e-mails (notify.email) against a real SMTP server (smtp-server, parsed with mailparser):
 * the message arrives with the right recipient, subject, device, place and links; an address read at
 * login stays out of logs and the store; a down SMTP server delays no login, and the message is
 * retried until it is up; a full queue drops and counts.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { smtpSender } from '../../src/notify/email.js';
import { TEST_LOGIN_RULES } from '../support/login-rules.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { freePort } from '../support/ports.js';
import { startSilentServer, startSmtp } from '../support/smtp.js';
import { postJson, startGateway, TEST_SECRET, UA, type TestGatewayConfig } from '../support/gateway.js';
import { listenApp, readBody } from '../support/upstreams.js';
import { waitUntil } from '../support/wait.js';

/** A gateway whose listener port is known before it starts, so `notify.baseUrl` can name it. */
type EmailInput = NonNullable<NonNullable<ConfigInput['notify']>['email']>;

async function gatewayWithMail(
  smtpPort: number,
  email: Omit<EmailInput, 'smtp' | 'from'>,
  more: TestGatewayConfig = {},
) {
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  const gw = await startGateway({
    listen: `127.0.0.1:${port}`,
    locationHeader: 'cf-ipcountry',
    ...more,
    notify: {
      baseUrl,
      email: { smtp: `smtp://127.0.0.1:${smtpPort}`, from: 'Security <security@example.test>', ...email },
    },
  });
  return { gw, baseUrl };
}

async function deliveries(gw: Awaited<ReturnType<typeof startGateway>>, result: string): Promise<number> {
  const m = await gw.gateway.metrics.emailDeliveries.get();
  return m.values.find((v) => v.labels.result === result)?.value ?? 0;
}

/** An app whose JSON login names the user's e-mail address beside the user id. */
async function appWithEmail() {
  const app = await listenApp((req, res) => {
    void readBody(req).then((raw) => {
      const { username } = JSON.parse(raw.toString() || '{}') as { username?: string };
      const body = JSON.stringify({
        accessToken: randomBytes(18).toString('base64url'),
        user: { id: username, email: `${username}.private@mail.example.test` },
      });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  return app;
}

describe('new-login e-mails', () => {
  it('mails the user of a superseded session: recipient, subject, device, place, sessions and "not me" links', async () => {
    const smtp = await startSmtp();
    const { gw, baseUrl } = await gatewayWithMail(smtp.port, {
      to: '{user}@example.test',
      app: 'Example <App>',
    });
    await gw.loginJson('alice', { 'user-agent': UA.firefoxLinux });
    const second = await gw.loginJson('alice', { 'user-agent': UA.chromeWindows, 'cf-ipcountry': 'DE' });
    expect(second.response.status).toBe(200);

    const [got] = await smtp.arrived(1);
    const mail = got!.mail;
    expect(got!.rcptTo).toEqual(['alice@example.test']);
    expect(mail.from?.value).toEqual([{ name: 'Security', address: 'security@example.test' }]);
    expect(mail.subject).toBe('New sign-in to Example <App>');
    const text = mail.text ?? '';
    expect(text).toMatch(/^New sign-in to Example <App> from Chrome on Windows in DE at \d\d:\d\d UTC\./);
    expect(text).toContain(`${baseUrl}/.sessiongate/sessions`);
    const notMe =
      /(http:\/\/127\.0\.0\.1:\d+\/\.sessiongate\/not-me\/v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)/.exec(text);
    expect(notMe?.[1]?.startsWith(`${baseUrl}/.sessiongate/not-me/`)).toBe(true);
    // The HTML body: the same sentence with every value escaped, and both links.
    const html = String(mail.html);
    expect(html).toContain(
      'New sign-in to <strong>Example &#60;App&#62;</strong> from <strong>Chrome on Windows</strong> in <strong>DE</strong>',
    );
    expect(html).toContain(`href="${baseUrl}/.sessiongate/sessions"`);
    expect(html).toContain(`href="${notMe?.[1]}"`);
    // The link opens the confirmation page on the proxied origin.
    const page = await fetch(notMe![1]!);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('Sign out everywhere');
    await waitUntil('the message counted as sent', async () => (await deliveries(gw, 'sent')) === 1);
  });

  it('sends one message per new login, and none for a login that ends nothing under the default events', async () => {
    const smtp = await startSmtp();
    const { gw } = await gatewayWithMail(
      smtp.port,
      { to: '{user}@example.test' },
      { sessions: { limit: 1 } },
    );
    await gw.loginJson('bob', { 'user-agent': UA.firefoxLinux });
    await gw.loginJson('carol', { 'user-agent': UA.firefoxLinux });
    // Each second login supersedes the first: one message each, to its own user.
    await gw.loginJson('bob', { 'user-agent': UA.safariIphone });
    await gw.loginJson('carol', { 'user-agent': UA.chromeWindows });
    const mails = await smtp.arrived(2);
    expect(mails.map((m) => m.rcptTo[0]).sort()).toEqual(['bob@example.test', 'carol@example.test']);
    expect(mails.find((m) => m.rcptTo[0] === 'bob@example.test')?.mail.text).toContain(
      'from Mobile Safari on iOS',
    );
    // A third login: its own message, the first logins (which ended nothing) none.
    await gw.loginJson('bob', { 'user-agent': UA.chromeWindows });
    await smtp.arrived(3);
    // Counted once the server's answer reached the gateway, just after the server took the message.
    await waitUntil('the third counted as sent', async () => (await deliveries(gw, 'sent')) === 3);
    expect(smtp.received).toHaveLength(3);
    // In order, and none of the first logins (Firefox, ending nothing) among them.
    expect(smtp.received.map((m) => m.mail.text?.includes('Firefox'))).toEqual([false, false, false]);
    expect(smtp.received[2]?.rcptTo).toEqual(['bob@example.test']);
    expect(smtp.received[2]?.mail.text).toContain('from Chrome on Windows');
  });

  it('mails a login past the limit under onLimit: warn with the default events, as a supersession is', async () => {
    const smtp = await startSmtp();
    const { gw } = await gatewayWithMail(
      smtp.port,
      { to: '{user}@example.test' },
      { sessions: { limit: 1, onLimit: 'warn' } },
    );
    await gw.loginJson('dora', { 'user-agent': UA.firefoxLinux });
    const second = await gw.loginJson('dora', { 'user-agent': UA.chromeWindows, 'cf-ipcountry': 'FR' });
    expect(second.response.status).toBe(200);
    const [got] = await smtp.arrived(1);
    expect(got?.rcptTo).toEqual(['dora@example.test']);
    expect(got?.mail.text).toMatch(/from Chrome on Windows in FR at \d\d:\d\d UTC/);
    expect(gw.logs.audit('session.warned')).toHaveLength(1);
    await waitUntil('the message counted as sent', async () => (await deliveries(gw, 'sent')) === 1);
  });

  it('sends over smtps:// to a server whose certificate notify.email.ca trusts', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sg-smtps-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const [key, cert] = [join(dir, 'key.pem'), join(dir, 'cert.pem')];
    execFileSync(
      'openssl',
      // prettier-ignore
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
       '-subj', '/CN=sessiongate-test-smtps', '-addext', 'subjectAltName=IP:127.0.0.1',
       '-keyout', key, '-out', cert],
      { stdio: 'ignore' },
    );
    const smtp = await startSmtp(0, undefined, {
      key: readFileSync(key, 'utf8'),
      cert: readFileSync(cert, 'utf8'),
    });
    const port = await freePort();
    const gw = await startGateway({
      listen: `127.0.0.1:${port}`,
      notify: {
        baseUrl: `http://127.0.0.1:${port}`,
        email: {
          smtp: `smtps://127.0.0.1:${smtp.port}`,
          ca: cert,
          from: 'security@example.test',
          to: '{user}@example.test',
        },
      },
    });
    await gw.loginJson('erin', { 'user-agent': UA.firefoxLinux });
    await gw.loginJson('erin', { 'user-agent': UA.chromeWindows });
    const [got] = await smtp.arrived(1);
    expect(got?.rcptTo).toEqual(['erin@example.test']);
    expect(got?.mail.text).toContain('from Chrome on Windows');
  });

  it('names notify.email.ca when the file is missing or holds no certificate', () => {
    const base = { upstream: 'http://127.0.0.1:1', secret: TEST_SECRET, login: TEST_LOGIN_RULES };
    const email = (ca: string) => ({
      ...base,
      notify: {
        baseUrl: 'https://app.example.test',
        email: { smtp: 'smtps://127.0.0.1:465', ca, from: 'a@example.test', to: '{user}@example.test' },
      },
    });
    const dir = mkdtempSync(join(tmpdir(), 'sg-smtps-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const notPem = join(dir, 'not.pem');
    writeFileSync(notPem, 'hello');
    expect(() => smtpSender(parseConfig(email(join(dir, 'missing.pem'))).config.notify.email!)).toThrow(
      /notify\.email\.ca: cannot read/,
    );
    expect(() => smtpSender(parseConfig(email(notPem)).config.notify.email!)).toThrow(
      /notify\.email\.ca: .* holds no PEM certificate/,
    );
  });

  it('reads the address from the login response (json:) and keeps it out of logs, events and the store', async () => {
    const smtp = await startSmtp();
    const app = await appWithEmail();
    const { gw } = await gatewayWithMail(
      smtp.port,
      { to: 'json:user.email', events: ['session.created'] },
      {
        upstream: app.url,
        login: [{ match: 'POST /api/login', token: 'json:accessToken', user: 'json:user.id' }],
        log: { level: 'debug' },
      },
    );
    const res = await postJson(
      `${gw.url}/api/login`,
      { username: 'dora' },
      { 'user-agent': UA.chromeWindows },
    );
    expect(res.status).toBe(200);
    const [got] = await smtp.arrived(1);
    expect(got!.rcptTo).toEqual(['dora.private@mail.example.test']);
    expect(got!.mail.text).toContain('from Chrome on Windows in an unknown place');
    expect(gw.logs.audit('session.created')).toHaveLength(1);
    expect(gw.logs.text()).not.toContain('private@mail');
    const stored = await gw.gateway.sessions.listSessions('dora');
    expect(stored).toHaveLength(1);
    expect(JSON.stringify(stored)).not.toContain('private@mail');
    await app.close();
  });

  it('signs in to the SMTP server with notify.email.user and password (from the environment)', async () => {
    const smtp = await startSmtp(0, { user: 'mailer', password: 'p@ss/word:with%odd' });
    const { config } = parseConfig(
      {
        upstream: 'http://127.0.0.1:1',
        secret: TEST_SECRET,
        login: [{ match: 'POST /api/login', token: 'json:accessToken', user: 'json:user.id' }],
        notify: {
          baseUrl: 'http://127.0.0.1:1',
          email: {
            smtp: `smtp://127.0.0.1:${smtp.port}`,
            user: '${SMTP_USER}',
            password: '${SMTP_PASSWORD}',
            from: 'a@example.test',
            to: '{user}@example.test',
          },
        },
      },
      { SMTP_USER: 'mailer', SMTP_PASSWORD: 'p@ss/word:with%odd' },
    );
    const { gw } = await gatewayWithMail(smtp.port, {
      to: '{user}@example.test',
      events: ['session.created'],
      user: config.notify.email!.user!,
      password: config.notify.email!.password!,
    });
    await gw.loginJson('kim');
    const [got] = await smtp.arrived(1);
    expect(got!.rcptTo).toEqual(['kim@example.test']);
    expect(smtp.logins).toEqual(['mailer']);
  });

  it('never fails a login whose answer is not JSON for a json: address: it goes unmailed, counted', async () => {
    const smtp = await startSmtp();
    const app = await listenApp((req, res) => {
      void readBody(req).then(() => {
        const body = '<!doctype html><p>Redirecting to /app</p>';
        res.writeHead(302, {
          location: '/app',
          'set-cookie': `sid=${randomBytes(18).toString('base64url')}; Path=/`,
          'content-type': 'text/html',
          'content-length': Buffer.byteLength(body),
        });
        res.end(body);
      });
    });
    const { gw } = await gatewayWithMail(
      smtp.port,
      { to: 'json:user.email', events: ['session.created'] },
      {
        upstream: app.url,
        tokens: ['cookie:sid'],
        login: [
          {
            match: 'POST /login',
            token: 'cookie:sid',
            user: 'request.form:username',
            success: { status: 302 },
          },
        ],
      },
    );
    const res = await fetch(`${gw.url}/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'username=lena',
      redirect: 'manual',
    });
    expect(res.status).toBe(302);
    expect(res.headers.getSetCookie()[0]).toMatch(/^sid=/);
    await waitUntil('the missing address counted', async () => (await deliveries(gw, 'no_recipient')) === 1);
    expect(await gw.gateway.sessions.listSessions('lena')).toHaveLength(1);
    expect(smtp.received).toHaveLength(0);
    await app.close();
  });

  it('sends nothing, and says so, for a user whose login named no usable address', async () => {
    const smtp = await startSmtp();
    const { gw } = await gatewayWithMail(smtp.port, {
      to: '{user}@example.test',
      events: ['session.created'],
    });
    // A user name that would add a second recipient if pasted into the header.
    await gw.loginJson('eve@evil.test>, victim', { 'user-agent': UA.chromeWindows });
    await gw.loginJson('frank', { 'user-agent': UA.chromeWindows });
    await smtp.arrived(1);
    expect(smtp.received.map((m) => m.rcptTo)).toEqual([['frank@example.test']]);
    expect(await deliveries(gw, 'no_recipient')).toBe(1);
    expect(gw.logs.lines().filter((l) => l.code === 'SG_ERR_EMAIL_NO_RECIPIENT')).toHaveLength(1);
  });

  it('never holds a login for a hanging SMTP server, and retries until the server is up', async () => {
    const smtpPort = await freePort();
    const silent = await startSilentServer(smtpPort);
    const { gw } = await gatewayWithMail(smtpPort, {
      to: '{user}@example.test',
      events: ['session.created'],
      backoff: '50ms',
      attempts: 30,
      timeout: '30s',
    });
    const login = await gw.loginJson('gina', { 'user-agent': UA.chromeWindows });
    expect(login.response.status).toBe(200);
    // The message's SMTP connection is open and will never be greeted: the login did not wait for it.
    await silent.connected();
    expect(silent.open.size).toBe(1);
    expect(await deliveries(gw, 'sent')).toBe(0);
    expect((await gw.gateway.metrics.emailQueue.get()).values[0]?.value).toBe(1);

    // The server goes away (connections cut: an attempt fails), then a real one comes up on its port.
    await silent.close();
    await waitUntil('a failed attempt', async () => (await deliveries(gw, 'retried')) >= 1);
    const smtp = await startSmtp(smtpPort);
    const [got] = await smtp.arrived(1);
    expect(got!.rcptTo).toEqual(['gina@example.test']);
    await waitUntil(
      'the queue drained',
      async () => (await gw.gateway.metrics.emailQueue.get()).values[0]?.value === 0,
    );
    expect(await deliveries(gw, 'sent')).toBe(1);
    expect(gw.logs.lines().some((l) => l.code === 'SG_ERR_EMAIL')).toBe(true);
  });

  it('drops a message when the queue is full, counted and logged, and still lets logins through', async () => {
    const smtpPort = await freePort();
    const silent = await startSilentServer(smtpPort);
    const { gw } = await gatewayWithMail(smtpPort, {
      to: '{user}@example.test',
      events: ['session.created'],
      maxQueue: 1,
      timeout: '30s',
    });
    // The first is being sent (hanging), the second waits, the third finds the queue full.
    for (const user of ['hal', 'ida', 'jon'])
      expect((await gw.loginJson(user, { 'user-agent': UA.chromeWindows })).response.status).toBe(200);
    await silent.connected();
    expect(await deliveries(gw, 'dropped')).toBe(1);
    expect(gw.logs.lines().filter((l) => l.code === 'SG_ERR_EMAIL_QUEUE_FULL')).toHaveLength(1);
    expect((await gw.gateway.metrics.emailQueue.get()).values[0]?.value).toBe(2);
  });
});

describe('notify.email configuration', () => {
  const base = {
    upstream: 'http://127.0.0.1:1',
    secret: TEST_SECRET,
    login: [{ match: 'POST /api/login', token: 'json:accessToken', user: 'json:user.id' }],
  };
  const problems = (notify: unknown): string => {
    try {
      parseConfig({ ...base, notify });
      return '';
    } catch (err) {
      return (err as Error).message;
    }
  };

  it('needs notify.baseUrl, since links must not come from the Host header', () => {
    expect(problems({ email: { smtp: 'smtp://mail:25', from: 'a@b.test', to: '{user}@b.test' } })).toMatch(
      /notify\.baseUrl.*required with notify\.email/,
    );
  });

  it('takes an https origin (http only for localhost), and names the key of a bad one', () => {
    expect(problems({ baseUrl: 'https://app.example.test' })).toBe('');
    expect(problems({ baseUrl: 'http://localhost:8080' })).toBe('');
    expect(problems({ baseUrl: 'http://app.example.test' })).toMatch(/notify\.baseUrl.*https:\/\//);
    expect(problems({ baseUrl: 'https://app.example.test/path' })).toMatch(/notify\.baseUrl.*without path/);
  });

  it('names a bad smtp URL, recipient or event', () => {
    const email = { smtp: 'smtp://mail:25', from: 'a@b.test', to: '{user}@b.test' };
    const baseUrl = 'https://app.example.test';
    expect(problems({ baseUrl, email })).toBe('');
    expect(problems({ baseUrl, email: { ...email, smtp: 'http://mail' } })).toMatch(/notify\.email\.smtp/);
    expect(problems({ baseUrl, email: { ...email, to: 'someone@b.test' } })).toMatch(
      /notify\.email\.to.*\{user\}/,
    );
    expect(problems({ baseUrl, email: { ...email, to: 'jwt:email' } })).toBe('');
    expect(problems({ baseUrl, email: { ...email, events: ['session.ended'] } })).toMatch(
      /notify\.email\.events.*session\.new_device/,
    );
  });
});
