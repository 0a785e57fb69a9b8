/**
 * The one way the page suites start Debian's Chromium (playwright-core): where it is, whether a suite
 * runs (skipping with one line naming it when it is missing), and the flags of a quiet headless run.
 *
 *   describe.skipIf(!haveChromium)('...', () => {
 *     let browser: Browser;
 *     beforeAll(async () => void (browser = await launchChromium()));
 *     afterAll(() => browser?.close());
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { needTool } from './tools.js';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** True when Chromium is installed; false (with its one skip line) otherwise. */
export const haveChromium: boolean = needTool('Chromium', 'chromium', existsSync(CHROMIUM));

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      // Nothing but the page under test on the network, and no background work to time against.
      '--disable-background-networking',
      '--disable-quic',
      '--no-first-run',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}
