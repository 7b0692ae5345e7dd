// Headless Chromium (Debian's) driven by playwright-core, for tests of the dashboard.
// The browser process is closed at teardown, even when the test failed.
import fs from 'node:fs';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { chromium, type Browser, type Page } from 'playwright-core';
import { repoRoot } from './mesh.ts';
import { CHROMIUM_PATH } from './processes.ts';

/** Where screenshots of the dashboard go (gitignored; CI keeps them as artifacts). */
export const SCREENSHOT_DIR = path.join(repoRoot, 'test-results/ui');

export async function openPage(t: ExecutionContext, url: string): Promise<{ browser: Browser; page: Page; errors: string[] }> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    // Tests run as root in CI, where Chromium's sandbox cannot start.
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
  });
  t.teardown(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(err.message));
  await page.goto(url);
  return { browser, page, errors };
}

export async function screenshot(page: Page, name: string): Promise<string> {
  fs.mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const file = path.join(SCREENSHOT_DIR, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** The computed style of the first element matching `selector`, found and read in one
 *  step inside the page, so a re-render in between cannot hand back a detached element. */
export function styleOf(page: Page, selector: string, property: string): Promise<string> {
  return page.evaluate(
    ([sel, prop]) => {
      const el = document.querySelector(sel);
      return el ? getComputedStyle(el).getPropertyValue(prop) : `(nothing matches ${sel})`;
    },
    [selector, property] as const,
  );
}
