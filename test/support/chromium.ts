/**
 * The one way the page suites start Debian's Chromium (playwright-core): where it is, whether a suite
 * runs (skipping with one line naming it when it is missing), and the flags of a quiet headless run.
 *
 *   describe.skipIf(!haveChromium)('...', () => {
 *     const browser = suiteBrowser();
 *     it('...', async () => { const context = await browser().newContext(); ... });
 */
import { existsSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll } from 'vitest';
import { needTool } from './tools.js';

/** Where page suites save their screenshots (made ready by suiteBrowser). */
export const ARTIFACTS = fileURLToPath(new URL('../artifacts/', import.meta.url));

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

/**
 * The suite's Chromium, launched before its tests (test/artifacts/ made ready) and closed after them;
 * call it at the top of the suite's describe, and `browser()` inside its tests.
 */
export function suiteBrowser(): () => Browser {
  let browser: Browser | undefined;
  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
  });
  return () => {
    if (browser === undefined)
      throw new Error('Chromium is not started: call suiteBrowser() in the describe');
    return browser;
  };
}
