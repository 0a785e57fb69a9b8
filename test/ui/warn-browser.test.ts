/**
 * `onLimit: warn` in headless Chromium (playwright-core): a second browser's sign-in lets it in and the
 * first browser's next navigation shows the warning page (who, where, when); its fetches go on with
 * `Sessiongate-Warning`; "Yes, continue" lands on exactly the page it asked for and warns no more; "No,
 * sign out everywhere" signs both browsers out. Screenshots go to test/artifacts/.
 */
import { type BrowserContext, type Page } from 'playwright-core';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ARTIFACTS, haveChromium, suiteBrowser } from '../support/chromium.js';
import { startGateway, type TestGateway, UA } from '../support/gateway.js';

const PHONE = { width: 390, height: 844 };
const WARNING_PAGE = /\/\.sessiongate\/warning\?next=/;

describe.skipIf(!haveChromium)('onLimit: warn in Chromium', () => {
  const browser = suiteBrowser();

  const gateway = () =>
    startGateway({ locationHeader: 'CF-IPCountry', sessions: { limit: 1, onLimit: 'warn' } });

  async function signedIn(
    gw: TestGateway,
    userAgent: string,
    extraHTTPHeaders: Record<string, string> = {},
  ): Promise<{ context: BrowserContext; page: Page }> {
    const context = await browser().newContext({ userAgent, extraHTTPHeaders, viewport: PHONE });
    onTestFinished(() => context.close());
    const page = await context.newPage();
    await page.goto(`${gw.url}/login`);
    await page.fill('input[name=username]', 'olivia');
    await Promise.all([page.waitForURL(`${gw.url}/app`), page.click('button[type=submit]')]);
    await expect(page.locator('#hello').textContent()).resolves.toBe('Hello olivia');
    return { context, page };
  }

  const warningHeader = (page: Page) =>
    page.evaluate(async () => {
      const res = await fetch('/api/orders', { headers: { accept: 'application/json' } });
      const body = (await res.json()) as { user: string };
      return { status: res.status, user: body.user, warning: res.headers.get('sessiongate-warning') };
    });

  it('shows the warning at the next navigation; fetches go on with the header; "Yes, continue" lands on exactly the asked page', async () => {
    const gw = await gateway();
    const laptop = await signedIn(gw, UA.firefoxLinux);
    await signedIn(gw, UA.chromeWindows, { 'cf-ipcountry': 'DE' });

    // A fetch of the page already open is not interrupted.
    const fetched = await warningHeader(laptop.page);
    expect(fetched.status).toBe(200);
    expect(fetched.user).toBe('olivia');
    expect(fetched.warning).toMatch(/^session\.warned; session=[0-9a-f-]{36}; at=\d{4}-\d\d-\d\dT/);

    await laptop.page.goto(`${gw.url}/app?tab=orders&q=a%20b#top`);
    expect(laptop.page.url()).toMatch(WARNING_PAGE);
    await expect(laptop.page.title()).resolves.toBe('New sign-in to your account');
    await expect(laptop.page.locator('#message').textContent()).resolves.toMatch(
      /^A new sign-in to your account from Chrome on Windows in DE at \d\d:\d\d UTC\. Was this you\?$/,
    );
    await laptop.page.screenshot({ path: `${ARTIFACTS}warn-page.png`, fullPage: true });

    await Promise.all([
      laptop.page.waitForURL(`${gw.url}/app?tab=orders&q=a%20b`),
      laptop.page.getByRole('button', { name: 'Yes, continue' }).click(),
    ]);
    await expect(laptop.page.locator('#hello').textContent()).resolves.toBe('Hello olivia');
    // No second warning for that login.
    await laptop.page.goto(`${gw.url}/app`);
    expect(laptop.page.url()).toBe(`${gw.url}/app`);
    expect((await warningHeader(laptop.page)).warning).toBeNull();
    expect(await gw.gateway.sessions.listSessions('olivia')).toHaveLength(2);
  });

  it('"No, sign out everywhere" signs out this browser and the new one', async () => {
    const gw = await gateway();
    const laptop = await signedIn(gw, UA.firefoxLinux);
    const other = await signedIn(gw, UA.chromeWindows);
    await laptop.page.goto(`${gw.url}/app`);
    expect(laptop.page.url()).toMatch(WARNING_PAGE);
    await laptop.page.getByRole('button', { name: 'No, sign out everywhere' }).click();
    await expect(laptop.page.title()).resolves.toBe('Signed out everywhere');
    await expect(laptop.page.locator('#message').textContent()).resolves.toContain(
      '2 sessions of your account ended, this one included.',
    );
    await laptop.page.screenshot({ path: `${ARTIFACTS}warn-signed-out.png`, fullPage: true });
    expect(await gw.gateway.sessions.listSessions('olivia')).toEqual([]);
    // The other browser's next navigation gets the signed-out page, with its code.
    const response = await other.page.goto(`${gw.url}/app`);
    expect(response?.status()).toBe(401);
    await expect(other.page.locator('#message').getAttribute('data-code')).resolves.toBe('session_ended');
    expect(gw.logs.audit('session.not_me')).toHaveLength(1);
  });
});
