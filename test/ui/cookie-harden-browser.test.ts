/**
 * cookies.harden seen from a real browser: the php-legacy app sets PHP's default PHPSESSID (no
 * HttpOnly, no SameSite); through the gateway with `cookies.harden`, Chromium stores it HttpOnly and
 * SameSite=Lax, so page scripts cannot read it (`document.cookie` lacks it), and the user still signs in.
 */
import { type Browser } from 'playwright-core';
import { haveChromium, launchChromium } from '../support/chromium.js';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import type { RunningApp } from '../support/running-app.js';
import { startGateway } from '../support/gateway.js';
import { startPhpLegacyApp } from '../support/php-legacy.js';
import { havePhp } from '../support/apps.js';
import { needTool } from '../support/tools.js';

describe.skipIf(!haveChromium || !needTool('PHP', 'php-cli', havePhp()))(
  'hardened session cookie in Chromium',
  () => {
    let browser: Browser;
    let app: RunningApp;
    beforeAll(async () => {
      app = await startPhpLegacyApp();
      browser = await launchChromium();
    }, 30_000);
    afterAll(async () => {
      await browser?.close();
      await app?.close();
    });

    const gatewayFor = (harden: boolean) =>
      startGateway({
        upstream: app.url,
        login: [
          {
            match: 'POST /login.php',
            token: 'cookie:PHPSESSID',
            user: 'request.form:username',
            success: { status: 302, location: '/account.php' },
          },
        ],
        tokens: ['cookie:PHPSESSID'],
        ...(harden ? { cookies: { harden: {} } } : {}),
      });

    /** Opens the login page and signs in as alice; what the page's scripts and the cookie store see. */
    async function signIn(url: string) {
      const context = await browser.newContext();
      onTestFinished(() => context.close());
      const page = await context.newPage();
      await page.goto(`${url}/login.php`);
      const beforeLogin = await page.evaluate<string>('document.cookie');
      await page.fill('input[name=username]', 'alice');
      await page.fill('input[name=password]', 'pw-alice');
      await Promise.all([page.waitForURL(`${url}/account.php`), page.click('button')]);
      const user = await page.locator('#user').textContent();
      const cookie = (await context.cookies()).find((c) => c.name === 'PHPSESSID');
      return { beforeLogin, afterLogin: await page.evaluate<string>('document.cookie'), user, cookie };
    }

    it('keeps PHPSESSID out of document.cookie: Chromium stores it HttpOnly, SameSite=Lax', async () => {
      const gw = await gatewayFor(true);
      const seen = await signIn(gw.url);
      expect(seen.user).toBe('hello alice');
      expect(seen.cookie).toEqual(
        expect.objectContaining({ httpOnly: true, sameSite: 'Lax', secure: false }),
      );
      expect(seen.beforeLogin).not.toContain('PHPSESSID');
      expect(seen.afterLogin).not.toContain('PHPSESSID');
      expect(await gw.gateway.sessions.listSessions('alice')).toHaveLength(1);
    });

    it('without cookies.harden the same app leaves it readable by page scripts', async () => {
      const gw = await gatewayFor(false);
      const seen = await signIn(gw.url);
      expect(seen.user).toBe('hello alice');
      expect(seen.cookie?.httpOnly).toBe(false);
      expect(seen.afterLogin).toContain(`PHPSESSID=${seen.cookie?.value}`);
    });
  },
);
