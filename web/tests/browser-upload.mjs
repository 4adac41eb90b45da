#!/usr/bin/env node
// Drives the upload page in headless Chromium (Debian's, through playwright-core).
//
//   node web/tests/browser-upload.mjs --url http://127.0.0.1:8080 --key KEY --file clip.mp4 \
//        [--kind video|image|attached_media] [--business-type material] [--reload-at 0.3] \
//        [--screenshot out.png] [--timeout 120]
//
// Prints one JSON line on stdout: {"state","job_id","media_id","resumed","resumed_parts",
// "progress","status","console_errors"}; exits 0 only when the page reached `done`.
// Browser console errors, page errors and failed requests go to stderr as they happen.
import { mkdtemp, rm, access } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { launchChromium } from './chromium.mjs';

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    key: { type: 'string' },
    file: { type: 'string' },
    kind: { type: 'string', default: 'video' },
    'business-type': { type: 'string' },
    'reload-at': { type: 'string' },
    screenshot: { type: 'string' },
    timeout: { type: 'string', default: '120' },
  },
});

function usage(message) {
  process.stderr.write(
    `browser-upload: ${message}\nusage: browser-upload.mjs --url BASE --key KEY --file PATH ` +
      '[--kind video|image|attached_media] [--business-type T] [--reload-at FRACTION] ' +
      '[--screenshot PNG] [--timeout SECONDS]\n',
  );
  process.exit(2);
}

if (!args.url) usage('--url is required');
if (!args.key) usage('--key is required');
if (!args.file) usage('--file is required');
if (!['video', 'image', 'attached_media'].includes(args.kind)) usage(`unknown --kind ${args.kind}`);
const reloadAt = args['reload-at'] === undefined ? null : Number(args['reload-at']);
if (reloadAt !== null && !(reloadAt > 0 && reloadAt < 1)) usage('--reload-at must be between 0 and 1');
const timeoutMs = Number(args.timeout) * 1000;
if (!(timeoutMs > 0)) usage('--timeout must be a number of seconds');
const file = path.resolve(args.file);
try {
  await access(file);
} catch {
  usage(`cannot read ${file}`);
}
const base = args.url.replace(/\/+$/, '');

const consoleErrors = [];
const log = (line) => process.stderr.write(`browser-upload: ${line}\n`);

const userDataDir = await mkdtemp(path.join(tmpdir(), 'vod-ingest-chromium-'));
let context;
let outcome = { state: 'error', job_id: null, media_id: null, resumed: false, console_errors: consoleErrors };

try {
  context = await launchChromium(userDataDir, { width: 900, height: 760 });
  const page = context.pages()[0] || (await context.newPage());
  let reloading = false;

  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const text = msg.text();
    consoleErrors.push(text);
    log(`console error: ${text}`);
  });
  page.on('pageerror', (err) => {
    consoleErrors.push(String(err));
    log(`page error: ${err}`);
  });
  page.on('requestfailed', (req) => {
    const reason = req.failure()?.errorText || 'failed';
    // Requests cut off by our own reload are expected.
    if (reloading && reason.includes('ERR_ABORTED')) return;
    log(`request failed: ${req.method()} ${req.url()} ${reason}`);
  });
  page.on('response', (res) => {
    if (res.status() >= 400) log(`HTTP ${res.status()}: ${res.request().method()} ${res.url()}`);
  });

  const deadline = Date.now() + timeoutMs;
  const remaining = () => Math.max(1, deadline - Date.now());

  async function pickAndUpload() {
    await page.fill('#api-key', args.key);
    await page.selectOption('#kind', args.kind);
    if (args['business-type']) await page.selectOption('#business-type', args['business-type']);
    await page.setInputFiles('#file', file);
    await page.click('#upload');
  }

  const response = await page.goto(`${base}/upload`, { waitUntil: 'load', timeout: remaining() });
  if (!response || !response.ok()) throw new Error(`GET ${base}/upload answered ${response?.status()}`);
  await page.waitForFunction(() => typeof window.OSS === 'function', null, { timeout: 10000 });
  await pickAndUpload();

  if (reloadAt !== null) {
    await page.waitForFunction(
      (at) =>
        Number(document.body.dataset.progress) >= at ||
        ['done', 'error'].includes(document.body.dataset.state),
      reloadAt,
      { timeout: remaining(), polling: 50 },
    );
    const { state, progress } = await page.evaluate(() => ({ ...document.body.dataset }));
    if (state === 'done' || state === 'error') {
      log(`the page reached ${state} before progress ${reloadAt} (at ${progress}); no reload`);
    } else {
      log(`reloading at progress ${progress}`);
      reloading = true;
      await page.reload({ waitUntil: 'load', timeout: remaining() });
      reloading = false;
      await page.waitForFunction(() => typeof window.OSS === 'function', null, { timeout: 10000 });
      await pickAndUpload();
    }
  }

  await page.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.state), null, {
    timeout: remaining(),
    polling: 100,
  });
  const data = await page.evaluate(() => ({
    ...document.body.dataset,
    status: document.getElementById('status').textContent,
  }));
  if (args.screenshot) await page.screenshot({ path: args.screenshot, fullPage: true });
  outcome = {
    state: data.state,
    job_id: data.jobId || null,
    media_id: data.mediaId || null,
    resumed: data.resumed === 'true',
    resumed_parts: data.resumedParts === undefined ? null : Number(data.resumedParts),
    progress: Number(data.progress),
    status: data.status,
    console_errors: consoleErrors,
  };
  if (data.state !== 'done') log(`the page ended in ${data.state}: ${data.status}`);
} catch (err) {
  log(String(err && err.stack ? err.stack : err));
  outcome.error = String(err && err.message ? err.message : err);
  try {
    const page = context && context.pages()[0];
    if (page) {
      const data = await page.evaluate(() => ({
        ...document.body.dataset,
        status: document.getElementById('status')?.textContent,
      }));
      Object.assign(outcome, {
        state: data.state === 'done' ? 'done' : 'error',
        job_id: data.jobId || null,
        media_id: data.mediaId || null,
        resumed: data.resumed === 'true',
        status: data.status,
      });
      if (args.screenshot) await page.screenshot({ path: args.screenshot, fullPage: true });
    }
  } catch {
    // The browser is gone; report what we have.
  }
  if (outcome.state === 'done') outcome.state = 'error';
} finally {
  if (context) await context.close().catch(() => {});
  await rm(userDataDir, { recursive: true, force: true }).catch(() => {});
}

process.stdout.write(`${JSON.stringify(outcome)}\n`);
process.exit(outcome.state === 'done' ? 0 : 1);
