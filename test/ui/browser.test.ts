/**
 * The self-service page in headless Chromium (playwright-core): two browsers of one user, one ends the
 * other from the page, and the other's next navigation is rejected. Screenshots go to test/artifacts/.
 */
import { type BrowserContext, type Page } from 'playwright-core';
import { ARTIFACTS, haveChromium, suiteBrowser } from '../support/chromium.js';
import { describe, expect, it, onTestFinished } from 'vitest';
import { startGateway, type TestGateway, UA } from '../support/gateway.js';
import { listenApp } from '../support/upstreams.js';

const PHONE = { width: 390, height: 844 };

describe.skipIf(!haveChromium)('self-service page in Chromium', () => {
  const browser = suiteBrowser();

  async function signedIn(
    gw: TestGateway,
    userAgent: string,
    extraHTTPHeaders: Record<string, string> = {},
  ): Promise<{ context: BrowserContext; page: Page }> {
    const context = await browser().newContext({
      userAgent,
      extraHTTPHeaders,
      viewport: PHONE,
      deviceScaleFactor: 2,
    });
    onTestFinished(() => context.close());
    const page = await context.newPage();
    await page.goto(`${gw.url}/login`);
    await page.fill('input[name=username]', 'olivia');
    await Promise.all([page.waitForURL(`${gw.url}/app`), page.click('button[type=submit]')]);
    await expect(page.locator('#hello').textContent()).resolves.toBe('Hello olivia');
    return { context, page };
  }

  it('lists both sessions, ends the other one, and the other browser is signed out', async () => {
    const gw = await startGateway({ sessions: { limit: 2 } });
    const a = await signedIn(gw, UA.chromeWindows);
    const b = await signedIn(gw, UA.safariIphone);

    const res = await a.page.goto(`${gw.url}/.sessiongate/sessions`);
    expect(res?.status()).toBe(200);
    const rows = a.page.locator('li.session');
    await expect(rows.count()).resolves.toBe(2);
    const current = a.page.locator('li.session[data-current="true"]');
    await expect(current.count()).resolves.toBe(1);
    await expect(current.locator('.badge').textContent()).resolves.toBe('This device');
    await expect(current.locator('.device').textContent()).resolves.toBe('Chrome on Windows');
    const other = a.page.locator('li.session:not([data-current])');
    await expect(other.locator('.device').textContent()).resolves.toBe('Mobile Safari on iOS');
    await expect(other.locator('.ip').textContent()).resolves.toBe('127.0.0.1');
    await expect(a.page.getByRole('button', { name: 'Log out all other devices' }).isVisible()).resolves.toBe(
      true,
    );
    // Readable on a phone: nothing wider than the viewport.
    // A string, evaluated in the page: this file is compiled without the DOM library.
    const scrollWidth = await a.page.evaluate<number>('document.documentElement.scrollWidth');
    expect(scrollWidth).toBeLessThanOrEqual(PHONE.width);
    await a.page.screenshot({ path: `${ARTIFACTS}self-service.png`, fullPage: true });

    // End the other session from the page (form POST, 303 back to the page).
    await Promise.all([
      a.page.waitForURL(/\/\.sessiongate\/sessions\?ended=1$/),
      other.getByRole('button', { name: 'End' }).click(),
    ]);
    await expect(a.page.locator('.notice').textContent()).resolves.toBe('1 session ended.');
    await expect(a.page.locator('li.session').count()).resolves.toBe(1);
    await a.page.screenshot({ path: `${ARTIFACTS}self-service-after-end.png`, fullPage: true });

    // The other browser's next navigation is rejected with the page saying so.
    const rejected = await b.page.goto(`${gw.url}/app`);
    expect(rejected?.status()).toBe(401);
    await expect(b.page.title()).resolves.toBe('You have been signed out');
    await expect(b.page.locator('#message').getAttribute('data-code')).resolves.toBe('session_ended');
    await expect(b.page.locator('#detail').textContent()).resolves.toMatch(/^This session was ended on \d/);
    await b.page.screenshot({ path: `${ARTIFACTS}session-ended.png`, fullPage: true });
    // Its cookie was cleared, and the first browser still works.
    expect((await b.context.cookies()).find((c) => c.name === 'sid')).toBeUndefined();
    expect((await a.page.goto(`${gw.url}/app`))?.status()).toBe(200);
  });

  it('a superseded browser sees when and from which device the new sign-in came', async () => {
    const gw = await startGateway({ sessions: { limit: 1 } });
    const a = await signedIn(gw, UA.chromeWindows);
    await signedIn(gw, UA.safariIphone);
    const res = await a.page.goto(`${gw.url}/app`);
    expect(res?.status()).toBe(401);
    await expect(a.page.locator('#message').textContent()).resolves.toContain(
      'Another session has been started using your account.',
    );
    await expect(a.page.locator('#detail').textContent()).resolves.toMatch(
      /^A new sign-in from Mobile Safari on iOS on \d{1,2} \w{3} \d{4}, \d\d:\d\d UTC ended this session\.$/,
    );
    await expect(a.page.getByRole('link', { name: 'Sign in again' }).getAttribute('href')).resolves.toBe('/');
    await a.page.screenshot({ path: `${ARTIFACTS}superseded.png`, fullPage: true });
  });

  it('shows a device and location that look like markup as plain text, on both pages', async () => {
    // Too odd for the user-agent parser, so the pages show it as sent: an attribute break-out and a tag.
    const hostile = `"'><img src=x onerror=alert(1)>&amp;`;
    const gw = await startGateway({ sessions: { limit: 2 }, locationHeader: 'cf-ipcountry' });
    const a = await signedIn(gw, UA.chromeWindows);
    await signedIn(gw, hostile, { 'cf-ipcountry': '<b id="injected">NL</b>' });

    await a.page.goto(`${gw.url}/.sessiongate/sessions`);
    const other = a.page.locator('li.session:not([data-current])');
    await expect(other.locator('.device').textContent()).resolves.toBe(hostile);
    await expect(other.locator('.location').textContent()).resolves.toBe('<b id="injected">NL</b>');
    await expect(other.getByRole('button', { name: 'End' }).getAttribute('title')).resolves.toBe(
      `End the session on ${hostile}`,
    );
    await expect(a.page.locator('img, #injected').count()).resolves.toBe(0);

    // A third sign-in, from that agent again, supersedes the first browser, whose page names the device.
    await signedIn(gw, hostile);
    const res = await a.page.goto(`${gw.url}/app`);
    expect(res?.status()).toBe(401);
    await expect(a.page.locator('#detail').textContent()).resolves.toContain(
      `A new sign-in from ${hostile} on `,
    );
    await expect(a.page.locator('img').count()).resolves.toBe(0);
  });

  it('refuses a cross-site form POST and a same-origin POST without the CSRF token with 403', async () => {
    const gw = await startGateway({ sessions: { limit: 2 } });
    const a = await signedIn(gw, UA.chromeWindows);
    await signedIn(gw, UA.safariIphone);

    // An attacker's page on another site (localhost is another site than 127.0.0.1) auto-submits a form.
    const target = `${gw.url}/.sessiongate/sessions/end-others`;
    const evil = await listenApp((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(
        `<!doctype html><form id="f" method="post" action="${target}"><input name="csrf" value="guess"></form><script>document.getElementById('f').submit()</script>`,
      );
    });
    onTestFinished(() => evil.close());
    // Another origin than the gateway's 127.0.0.1: a cross-site page.
    const evilUrl = `http://localhost:${evil.port}/`;
    const [response] = await Promise.all([
      a.page.waitForResponse((r) => r.url() === target),
      a.page.goto(evilUrl),
    ]);
    expect(response.status()).toBe(403);
    expect((await response.request().allHeaders())['sec-fetch-site']).toBe('cross-site');
    await expect(response.text()).resolves.toContain('Cross-site request refused');

    // Same origin, from a script of the app's own page (an SPA), but without the token.
    await a.page.goto(`${gw.url}/app`);
    const status = await a.page.evaluate(async () => {
      const r = await fetch('/.sessiongate/sessions/end-others', { method: 'POST' });
      return r.status;
    });
    expect(status).toBe(403);
    // With the token the page's own JSON gives, the same call works (an SPA would do this).
    const ended = await a.page.evaluate(async () => {
      const list = (await (
        await fetch('/.sessiongate/sessions', { headers: { accept: 'application/json' } })
      ).json()) as {
        csrfToken: string;
        sessions: unknown[];
      };
      const r = await fetch('/.sessiongate/sessions/end-others', {
        method: 'POST',
        headers: { 'x-csrf-token': list.csrfToken, accept: 'application/json' },
      });
      return {
        before: list.sessions.length,
        status: r.status,
        body: (await r.json()) as { ended: string[] },
      };
    });
    expect(ended.before).toBe(2);
    expect(ended.status).toBe(200);
    expect(ended.body.ended).toHaveLength(1);
  });
});
