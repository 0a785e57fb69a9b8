/**
 * The "not me" flow in headless Chromium, from the e-mail to the end: a phone's sign-in is mailed (real
 * SMTP server), the desktop opens the message's "not me" link, sees the sign-in it is about, confirms,
 * and every session of the account is gone: the phone's next page is the signed-out page. Screenshots
 * go to test/artifacts/.
 */
import type { BrowserContext, Page } from 'playwright-core';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ARTIFACTS, haveChromium, suiteBrowser } from '../support/chromium.js';
import { startGateway, type TestGateway, UA } from '../support/gateway.js';
import { freePort } from '../support/ports.js';
import { startSmtp } from '../support/smtp.js';

describe.skipIf(!haveChromium)('"not me" in Chromium', () => {
  const browser = suiteBrowser();

  async function browse(userAgent: string, headers: Record<string, string> = {}) {
    const context: BrowserContext = await browser().newContext({ userAgent, extraHTTPHeaders: headers });
    onTestFinished(() => context.close());
    return { context, page: await context.newPage() };
  }

  async function signIn(gw: TestGateway, page: Page): Promise<void> {
    await page.goto(`${gw.url}/login`);
    await page.fill('input[name=username]', 'olivia');
    await Promise.all([page.waitForURL(`${gw.url}/app`), page.click('button[type=submit]')]);
    await expect(page.locator('#hello').textContent()).resolves.toBe('Hello olivia');
  }

  it('opens the link of the e-mail, confirms, and every session of the account ends', async () => {
    const smtp = await startSmtp();
    const port = await freePort();
    const gw = await startGateway({
      listen: `127.0.0.1:${port}`,
      locationHeader: 'cf-ipcountry',
      sessions: { limit: 2 },
      notify: {
        baseUrl: `http://127.0.0.1:${port}`,
        email: {
          smtp: `smtp://127.0.0.1:${smtp.port}`,
          from: 'security@example.test',
          to: '{user}@example.test',
          events: ['session.created'],
          app: 'Test App',
        },
      },
    });
    const desktop = await browse(UA.chromeWindows);
    await signIn(gw, desktop.page);
    const phone = await browse(UA.safariIphone, { 'cf-ipcountry': 'FR' });
    await signIn(gw, phone.page);
    expect(await gw.gateway.sessions.listSessions('olivia')).toHaveLength(2);

    const mails = await smtp.arrived(2);
    const mail = mails.find((m) => m.mail.text?.includes('Mobile Safari on iOS'));
    expect(mail?.mail.text).toContain('New sign-in to Test App from Mobile Safari on iOS in FR at');
    const link = /href="([^"]+\/not-me\/[^"]+)"/.exec(String(mail?.mail.html))?.[1];
    expect(link?.startsWith(`${gw.url}/.sessiongate/not-me/v1.`)).toBe(true);

    // The user reads the message on the desktop and opens the link.
    await desktop.page.goto(link!);
    await expect(desktop.page.title()).resolves.toBe('Was this not you?');
    await expect(desktop.page.locator('.device').textContent()).resolves.toBe('Mobile Safari on iOS');
    await expect(desktop.page.locator('.place').textContent()).resolves.toBe('FR');
    // Opening it changed nothing yet.
    expect(await gw.gateway.sessions.listSessions('olivia')).toHaveLength(2);
    await desktop.page.screenshot({ path: `${ARTIFACTS}not-me-confirm.png`, fullPage: true });

    await Promise.all([
      desktop.page.waitForURL(link!),
      desktop.page.getByRole('button', { name: 'Sign out everywhere' }).click(),
    ]);
    await expect(desktop.page.title()).resolves.toBe('Signed out everywhere');
    await expect(desktop.page.locator('#message').textContent()).resolves.toMatch(/^2 sessions ended/);
    await desktop.page.screenshot({ path: `${ARTIFACTS}not-me-done.png`, fullPage: true });
    expect(await gw.gateway.sessions.listSessions('olivia')).toEqual([]);
    expect(gw.logs.audit('session.not_me')).toHaveLength(1);

    // The phone (the sign-in that was not the user's) is signed out at its next page.
    await phone.page.goto(`${gw.url}/app`);
    await expect(phone.page.title()).resolves.toBe('You have been signed out');
    // The desktop's own session went too: Clear-Site-Data took its cookie, so the app asks to sign in.
    expect((await desktop.context.cookies()).find((c) => c.name === 'sid')).toBeUndefined();

    // The link works once: opened again, it says so.
    await desktop.page.goto(link!);
    await expect(desktop.page.locator('#message').getAttribute('data-code')).resolves.toBe(
      'SG_ERR_NOT_ME_USED',
    );
  });
});
