/**
 * The self-service page in headless Chromium marks the sessions of new devices and new places: two
 * browsers of one user, the second from another device in another country (client addresses by
 * X-Forwarded-For from the trusted proxy, located with the real geo database). Screenshot in
 * test/artifacts/.
 */
import { type BrowserContext, type Page } from 'playwright-core';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ARTIFACTS, haveChromium, suiteBrowser } from '../support/chromium.js';
import { startGateway, type TestGateway, UA } from '../support/gateway.js';
import { addressIn, GEO_DB_V4 } from './addresses.js';

const PHONE = { width: 390, height: 844 };

describe.skipIf(!haveChromium)('new-device and new-location sessions on the page, in Chromium', () => {
  const browser = suiteBrowser();

  async function signedIn(
    gw: TestGateway,
    userAgent: string,
    ip: string,
  ): Promise<{ context: BrowserContext; page: Page }> {
    const context = await browser().newContext({
      userAgent,
      extraHTTPHeaders: { 'x-forwarded-for': ip },
      viewport: PHONE,
    });
    onTestFinished(() => context.close());
    const page = await context.newPage();
    await page.goto(`${gw.url}/login`);
    await page.fill('input[name=username]', 'nora');
    await Promise.all([page.waitForURL(`${gw.url}/app`), page.click('button[type=submit]')]);
    return { context, page };
  }

  it('highlights the session from a new device in a new country, and not the first one', async () => {
    const gw = await startGateway({
      sessions: { limit: 3 },
      geo: { database: GEO_DB_V4 },
      trustedProxies: ['127.0.0.1'],
    });
    const de = addressIn('DE');
    const us = addressIn('US');
    const home = await signedIn(gw, UA.chromeWindows, de.ip);
    await signedIn(gw, UA.safariIphone, us.ip);

    const res = await home.page.goto(`${gw.url}/.sessiongate/sessions`);
    expect(res?.status()).toBe(200);
    await expect(home.page.locator('li.session').count()).resolves.toBe(2);
    const first = home.page.locator('li.session[data-current="true"]');
    await expect(first.getAttribute('class')).resolves.toBe('session current');
    await expect(first.locator('.badge.new').count()).resolves.toBe(0);
    await expect(first.locator('.location').textContent()).resolves.toBe(`${de.geo.city}, DE`);

    const flagged = home.page.locator('li.session.unfamiliar');
    await expect(flagged.count()).resolves.toBe(1);
    await expect(flagged.locator('.device').textContent()).resolves.toBe('Mobile Safari on iOS');
    await expect(flagged.locator('.badge.new-device').textContent()).resolves.toBe('New device');
    await expect(flagged.locator('.badge.new-location').textContent()).resolves.toBe('New location');
    await expect(flagged.locator('.badge.new-location').isVisible()).resolves.toBe(true);
    await expect(flagged.locator('.location').textContent()).resolves.toMatch(/, US$/);
    // The highlight is the page's own stylesheet (allowed by its CSP hash), applied: a coloured edge.
    const edge = await home.page.evaluate<string>(
      "getComputedStyle(document.querySelector('li.session.unfamiliar')).borderLeftColor",
    );
    expect(edge).toBe('rgb(194, 65, 12)');
    await home.page.screenshot({ path: `${ARTIFACTS}self-service-new-device.png`, fullPage: true });
  });
});
