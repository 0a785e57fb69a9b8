/**
 * `onLimit: ask` in headless Chromium (playwright-core): a second browser's sign-in is held and sent to
 * the choice page; ending the other device lands it where the app's login redirect pointed, signed in,
 * and the other browser is signed out with the message. Cancel and a timeout release nothing.
 * Screenshots go to test/artifacts/.
 */
import { type BrowserContext, type Page } from 'playwright-core';
import { ARTIFACTS, haveChromium, suiteBrowser } from '../support/chromium.js';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { ConfigInput } from '../../src/config/schema.js';
import { startGateway, type TestGateway, UA } from '../support/gateway.js';
import { waitUntil } from '../support/wait.js';

const PHONE = { width: 390, height: 844 };
const CHOOSE_PAGE = /\/\.sessiongate\/choose\/[A-Za-z0-9_-]{32}$/;

describe.skipIf(!haveChromium)('onLimit: ask in Chromium', () => {
  const browser = suiteBrowser();

  const gateway = (sessions: NonNullable<ConfigInput['sessions']> = {}) =>
    startGateway({ locationHeader: 'CF-IPCountry', sessions: { limit: 1, onLimit: 'ask', ...sessions } });

  async function browse(
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
    return { context, page: await context.newPage() };
  }

  /** Submits the app's sign-in form; resolves once the browser is at `landing`. */
  async function submitLogin(gw: TestGateway, page: Page, landing: string | RegExp): Promise<void> {
    await page.goto(`${gw.url}/login`);
    await page.fill('input[name=username]', 'olivia');
    await Promise.all([page.waitForURL(landing), page.click('button[type=submit]')]);
  }

  async function signedIn(gw: TestGateway, userAgent: string, headers: Record<string, string> = {}) {
    const b = await browse(userAgent, headers);
    await submitLogin(gw, b.page, `${gw.url}/app`);
    await expect(b.page.locator('#hello').textContent()).resolves.toBe('Hello olivia');
    return b;
  }

  const sid = async (context: BrowserContext) => (await context.cookies()).find((c) => c.name === 'sid');

  it('ending the other device lands where the login redirect pointed, signed in; the other browser is signed out with the message', async () => {
    const gw = await gateway();
    // The place comes from the edge's country header (locationHeader), as on the sessions page.
    const desktop = await signedIn(gw, UA.chromeWindows, { 'cf-ipcountry': 'DE' });
    const phone = await browse(UA.safariIphone);
    await submitLogin(gw, phone.page, CHOOSE_PAGE);

    await expect(phone.page.title()).resolves.toBe('Too many active sessions');
    const rows = phone.page.locator('li.session');
    await expect(rows.count()).resolves.toBe(1);
    await expect(rows.locator('.device').textContent()).resolves.toBe('Chrome on Windows');
    await expect(rows.locator('.ip').textContent()).resolves.toBe('127.0.0.1');
    await expect(rows.locator('.location').textContent()).resolves.toBe('DE');
    await expect(rows.locator('.created').textContent()).resolves.toMatch(
      /^\d{1,2} \w{3} \d{4}, \d\d:\d\d UTC$/,
    );
    await expect(rows.locator('.last-seen').textContent()).resolves.toBe('just now');
    await expect(phone.page.getByRole('button', { name: 'Cancel' }).isVisible()).resolves.toBe(true);
    // Held: the phone has no session cookie yet, and the desktop still works.
    expect(await sid(phone.context)).toBeUndefined();
    expect((await desktop.page.goto(`${gw.url}/app`))?.status()).toBe(200);
    const scrollWidth = await phone.page.evaluate<number>('document.documentElement.scrollWidth');
    expect(scrollWidth).toBeLessThanOrEqual(PHONE.width);
    await phone.page.screenshot({ path: `${ARTIFACTS}ask-choose.png`, fullPage: true });

    await Promise.all([
      phone.page.waitForURL(`${gw.url}/app`),
      rows.getByRole('button', { name: 'End this one and continue' }).click(),
    ]);
    await expect(phone.page.locator('#hello').textContent()).resolves.toBe('Hello olivia');
    expect(await sid(phone.context)).toBeDefined();

    const rejected = await desktop.page.goto(`${gw.url}/app`);
    expect(rejected?.status()).toBe(401);
    await expect(desktop.page.title()).resolves.toBe('You have been signed out');
    await expect(desktop.page.locator('#message').getAttribute('data-code')).resolves.toBe(
      'session_superseded',
    );
    await expect(desktop.page.locator('#detail').textContent()).resolves.toMatch(
      /^A new sign-in from Mobile Safari on iOS on .* ended this session\.$/,
    );
    expect(await sid(desktop.context)).toBeUndefined();
    await desktop.page.screenshot({ path: `${ARTIFACTS}ask-superseded.png`, fullPage: true });
    expect(gw.logs.audit('session.superseded').map((e) => e.policy)).toEqual(['chosen-by-user']);
  });

  it('cancel releases nothing: the browser stays signed out and the other device goes on', async () => {
    const gw = await gateway();
    const desktop = await signedIn(gw, UA.chromeWindows);
    const phone = await browse(UA.safariIphone);
    await submitLogin(gw, phone.page, CHOOSE_PAGE);
    const choice = phone.page.url();
    await Promise.all([
      phone.page.waitForLoadState('load'),
      phone.page.getByRole('button', { name: 'Cancel' }).click(),
    ]);
    await expect(phone.page.title()).resolves.toBe('Sign-in cancelled');
    expect(await sid(phone.context)).toBeUndefined();
    // The app sends a browser without a session back to its sign-in page.
    await phone.page.goto(`${gw.url}/app`);
    expect(phone.page.url()).toBe(`${gw.url}/login`);
    expect((await desktop.page.goto(`${gw.url}/app`))?.status()).toBe(200);
    // The choice page is gone with the hold.
    expect((await phone.page.goto(choice))?.status()).toBe(410);
  });

  it('a choice made after askTimeout releases nothing and ends nothing', async () => {
    const gw = await gateway({ askTimeout: '300ms' });
    const desktop = await signedIn(gw, UA.chromeWindows);
    const phone = await browse(UA.safariIphone);
    await submitLogin(gw, phone.page, CHOOSE_PAGE);
    await waitUntil('the hold to expire', () =>
      gw.logs.lines().find((l) => l.event === 'login_hold_ended' && l.outcome === 'expired'),
    );
    const [response] = await Promise.all([
      phone.page.waitForResponse((r) => r.request().method() === 'POST'),
      phone.page.getByRole('button', { name: 'End this one and continue' }).click(),
    ]);
    expect(response.status()).toBe(410);
    await phone.page.waitForLoadState('load');
    await expect(phone.page.locator('#message').getAttribute('data-code')).resolves.toBe(
      'SG_ERR_LOGIN_HOLD_GONE',
    );
    expect(await sid(phone.context)).toBeUndefined();
    expect((await desktop.page.goto(`${gw.url}/app`))?.status()).toBe(200);
  });
});
