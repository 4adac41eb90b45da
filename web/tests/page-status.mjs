// Opens the upload page and prints what it tells the user once it has started: the status line
// and the error code it shows. Usage: node tests/page-status.mjs <page url>
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launchChromium } from './chromium.mjs';

const [url] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), 'vod-page-'));
const context = await launchChromium(profile);
try {
  const page = await context.newPage();
  const console_errors = [];
  page.on('pageerror', (e) => console_errors.push(String(e)));
  await page.goto(url);
  // The page marks its body once it has decided (an error, or ready for a file).
  await page.waitForFunction(() => document.body.dataset.state !== undefined);
  const status = await page.textContent('#status');
  const errorCode = await page.evaluate(() => document.body.dataset.errorCode || null);
  console.log(JSON.stringify({ status, errorCode, pageErrors: console_errors }));
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
