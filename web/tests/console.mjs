#!/usr/bin/env node
// Drives the operator console in headless Chromium (Debian's, through playwright-core), the
// way an operator uses it: opens every page, checks what it shows, retries a failed job and
// cancels an upload in progress (accepting the confirmation dialogs), creates and revokes an
// API key, and saves a screenshot of each page (and of the overview on a phone-sized screen).
//
//   node web/tests/console.mjs --url http://127.0.0.1:9090 --failed JOB --uploading JOB \
//        --completed JOB --screenshots DIR [--timeout 120]
//
// Prints one JSON line on stdout: {"ok", "checks", "screenshots", "console_errors", "error"};
// exits 0 only when every check passed. Browser console errors and failed requests go to
// stderr as they happen.
import { mkdtemp, rm, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { launchChromium } from './chromium.mjs';

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    failed: { type: 'string' },
    uploading: { type: 'string' },
    completed: { type: 'string' },
    screenshots: { type: 'string' },
    timeout: { type: 'string', default: '120' },
  },
});

function usage(message) {
  process.stderr.write(
    `console: ${message}\nusage: console.mjs --url BASE --failed JOB --uploading JOB ` +
      '--completed JOB --screenshots DIR [--timeout SECONDS]\n',
  );
  process.exit(2);
}
for (const name of ['url', 'failed', 'uploading', 'completed', 'screenshots']) {
  if (!args[name]) usage(`--${name} is required`);
}
const timeoutMs = Number(args.timeout) * 1000;
if (!(timeoutMs > 0)) usage('--timeout must be a number of seconds');
const base = args.url.replace(/\/+$/, '');
const shotDir = path.resolve(args.screenshots);
await mkdir(shotDir, { recursive: true });

const log = (line) => process.stderr.write(`console: ${line}\n`);
const consoleErrors = [];
const checks = [];
const screenshots = [];
const outcome = { ok: false, checks, screenshots, console_errors: consoleErrors };

function check(name, condition, detail) {
  checks.push({ name, ok: Boolean(condition) });
  if (!condition) throw new Error(`check failed: ${name}${detail ? `: ${detail}` : ''}`);
}

const userDataDir = await mkdtemp(path.join(tmpdir(), 'vod-ingest-console-chromium-'));
let context;
try {
  context = await launchChromium(userDataDir, { width: 1280, height: 900 });
  context.setDefaultTimeout(timeoutMs);
  const page = context.pages()[0] || (await context.newPage());
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    consoleErrors.push(msg.text());
    log(`console error: ${msg.text()}`);
  });
  page.on('pageerror', (err) => {
    consoleErrors.push(String(err));
    log(`page error: ${err}`);
  });
  page.on('requestfailed', (req) => {
    const reason = req.failure()?.errorText || 'failed';
    // A poll cut off by the page's own reload is expected.
    if (reason.includes('ERR_ABORTED')) return;
    log(`request failed: ${req.method()} ${req.url()} ${reason}`);
  });
  page.on('response', (res) => {
    if (res.status() >= 400) log(`HTTP ${res.status()}: ${res.request().method()} ${res.url()}`);
  });
  // Every confirmation the console asks for is accepted (and recorded).
  const dialogs = [];
  page.on('dialog', async (dialog) => {
    dialogs.push(dialog.message());
    await dialog.accept();
  });

  async function open(pathname) {
    const res = await page.goto(`${base}${pathname}`, { waitUntil: 'load' });
    check(`GET ${pathname} answers 200`, res && res.status() === 200, `status ${res?.status()}`);
  }
  async function shot(name) {
    await page.screenshot({ path: path.join(shotDir, name), fullPage: true });
    screenshots.push(name);
  }
  const text = () => page.locator('main').innerText();

  // Overview: counts, chart, the upload in progress moving, health.
  await open('/console');
  let main = await text();
  check('overview shows the state counts', /failed/.test(main) && /completed/.test(main));
  check('overview draws the throughput chart', (await page.locator('figure.chart svg rect.completed').count()) > 0);
  const row = page.locator(`#uploads tr[data-job-id="${args.uploading}"]`);
  check('overview lists the upload in progress', (await row.count()) === 1);
  const before = Number(await row.locator('progress').getAttribute('value'));
  // The script polls every 2 s: wait for the bar to move.
  await page.waitForFunction(
    ({ id, before }) => {
      const bar = document.querySelector(`#uploads tr[data-job-id="${id}"] progress`);
      return bar && Number(bar.value) > before;
    },
    { id: args.uploading, before },
    { polling: 200 },
  );
  const after = await page.locator(`#uploads tr[data-job-id="${args.uploading}"] progress`).evaluate((b) => b.value);
  check('the live progress bar moves', after > before, `${before} -> ${after}`);
  check('overview shows PostgreSQL and RabbitMQ health', /PostgreSQL answers/.test(main) && /RabbitMQ connected/.test(main));
  check('overview shows the waiting jobs', /Waiting longest/.test(main));
  await shot('overview.png');

  // The same on a phone-sized screen: nothing wider than the screen but scrolling tables.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.reload({ waitUntil: 'load' });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check('the overview fits a narrow screen', overflow <= 1, `${overflow}px too wide`);
  await shot('overview-narrow.png');
  await page.setViewportSize({ width: 1280, height: 900 });

  // Jobs: filter with the form.
  await open('/console/jobs');
  await page.selectOption('select[name="state"]', 'failed');
  await Promise.all([page.waitForURL(/state=failed/), page.click('form.filters button[type="submit"]')]);
  const listed = await page.locator('table.jobs tbody tr').allInnerTexts();
  check('filtering by state shows the failed job only', listed.length === 1 && listed[0].includes(args.failed), listed.join(' | '));
  await shot('jobs-failed.png');
  await page.fill('input[name="q"]', args.completed);
  await page.selectOption('select[name="state"]', '');
  await Promise.all([page.waitForURL(/q=/), page.click('form.filters button[type="submit"]')]);
  const found = await page.locator('table.jobs tbody tr').allInnerTexts();
  check('searching by job id finds it', found.length === 1 && found[0].includes(args.completed), found.join(' | '));
  await open('/console/jobs');
  await shot('jobs.png');

  // A completed job: history, callbacks, VOD's side.
  await open(`/console/jobs/${encodeURIComponent(args.completed)}`);
  main = await text();
  check('the job page shows the history', /uploading\s*→\s*uploaded/.test(main) && /uploaded\s*→\s*completed/.test(main), main);
  check('the job page shows the callback received', /FileUploadComplete/.test(main));
  check("the job page shows VOD's status", /VOD reports\s+\S+/.test(main));
  await shot('job-completed.png');

  // The failed job: retry, after the confirmation.
  await open(`/console/jobs/${encodeURIComponent(args.failed)}`);
  main = await text();
  check('the failed job shows its error', /Forbidden\.RAM/.test(main));
  await shot('job-failed.png');
  await Promise.all([page.waitForURL(/notice=retried/), page.click('button:has-text("Retry")')]);
  check('retry asked for confirmation', dialogs.some((d) => d.includes('again')), dialogs.join(' | '));
  main = await text();
  check('retry says the job is queued again', /queued again/.test(main));
  check('the history shows the operator', /failed\s*→\s*queued/.test(main));
  await shot('job-retried.png');

  // The upload in progress: its page follows the upload, then cancel.
  await open(`/console/jobs/${encodeURIComponent(args.uploading)}`);
  main = await text();
  check('the uploading job shows its multipart progress', /\d+ of \d+ parts/.test(main), main);
  await shot('job-uploading.png');
  await Promise.all([page.waitForURL(/notice=cancelled/), page.click('button:has-text("Cancel")')]);
  check('cancel asked for confirmation', dialogs.some((d) => d.startsWith('Cancel job')), dialogs.join(' | '));
  check('the job is cancelled', (await page.locator('h1 .badge').innerText()) === 'cancelled');
  await shot('job-cancelled.png');

  // Dead letters: the reason is shown.
  await open('/console/dead-letters');
  main = await text();
  check('the dead letter is shown with its reason', /unknown field `titel`/.test(main), main);
  await shot('dead-letters.png');

  // Client apps: create a key (shown once), then revoke it.
  await open('/console/keys');
  await page.fill('input[name="name"]', 'browser app');
  await page.uncheck('input[name="kind_attached_media"]');
  await page.fill('textarea[name="origins"]', 'https://app.example.com');
  await page.check('input[name="allow_sts"]');
  await page.click('form.new-key-form button[type="submit"]');
  await page.waitForSelector('#new-key');
  const key = await page.locator('#new-key').inputValue();
  check('the new key is shown', /^vik_[a-z0-9]{12}_[a-z0-9]{32}$/.test(key), key);
  await shot('key-created.png');
  const keyId = key.split('_')[1];
  await open('/console/keys');
  check('the key is not shown again', !(await page.content()).includes(key));
  const keyRow = page.locator(`tr[data-key-id="${keyId}"]`);
  check('the key is listed', (await keyRow.count()) === 1);
  await Promise.all([page.waitForURL(/notice=revoked/), keyRow.locator('button:has-text("Revoke")').click()]);
  check('revoke asked for confirmation', dialogs.some((d) => d.startsWith('Revoke key')), dialogs.join(' | '));
  check('the key shows as revoked', /revoked/.test(await page.locator(`tr[data-key-id="${keyId}"]`).innerText()));
  await shot('keys.png');

  outcome.ok = consoleErrors.length === 0;
} catch (err) {
  log(String(err && err.stack ? err.stack : err));
  outcome.error = String(err && err.message ? err.message : err);
  try {
    const page = context && context.pages()[0];
    if (page) {
      await page.screenshot({ path: path.join(shotDir, 'failure.png'), fullPage: true });
      screenshots.push('failure.png');
    }
  } catch {
    // The browser is gone; report what we have.
  }
} finally {
  if (context) await context.close().catch(() => {});
  await rm(userDataDir, { recursive: true, force: true }).catch(() => {});
}

process.stdout.write(`${JSON.stringify(outcome)}\n`);
process.exit(outcome.ok ? 0 : 1);
