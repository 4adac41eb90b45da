#!/usr/bin/env node
// VOD's official Web upload SDK (aliyun-upload-sdk 1.5.x, with the ali-oss bundle it ships) in
// headless Chromium, from a page on its own origin (http://app.localhost:PORT), against the
// service and the emulator. The SDK files are read from a checkout of
// aliyun/alibabacloud-vodupload-sdk (never copied into this repository).
//
//   node web/tests/sdk-check/web-sdk.mjs --sdk-dir DIR --api http://127.0.0.1:8080 --key KEY \
//        --emulator-port 9000 --mode credential|sts --file PATH
//
// In STS mode the SDK calls https://vod.cn-shanghai.aliyuncs.com itself: Chromium maps that
// name to the emulator (--host-resolver-rules), which answers TLS on its one port with a
// certificate of its own (hence --ignore-certificate-errors).
//
// Prints one JSON line: {"mode","video_id","bucket","object","job_id"}; exits 1 on failure.
import { createServer } from 'node:http';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { launchChromium } from '../chromium.mjs';

const { values: args } = parseArgs({
  options: {
    'sdk-dir': { type: 'string' },
    api: { type: 'string' },
    key: { type: 'string' },
    'emulator-port': { type: 'string' },
    mode: { type: 'string', default: 'credential' },
    file: { type: 'string' },
    version: { type: 'string', default: '1.5.3' },
    region: { type: 'string', default: 'cn-shanghai' },
    timeout: { type: 'string', default: '120' },
  },
});
for (const name of ['sdk-dir', 'api', 'key', 'emulator-port', 'file']) {
  if (!args[name]) {
    process.stderr.write(`web-sdk: --${name} is required\n`);
    process.exit(2);
  }
}
if (!['credential', 'sts'].includes(args.mode)) {
  process.stderr.write(`web-sdk: unknown --mode ${args.mode}\n`);
  process.exit(2);
}

const lib = path.join(args['sdk-dir'], 'h5/UploadSDK/aliyun-upload-sdk-demo/vue-demo/dist/lib/aliyun-upload-sdk');
const files = {
  '/sdk/aliyun-upload-sdk.min.js': path.join(lib, `aliyun-upload-sdk-${args.version}.min.js`),
  '/sdk/aliyun-oss-sdk.min.js': path.join(lib, 'lib/aliyun-oss-sdk-6.10.0.min.js'),
  '/sdk/es6-promise.min.js': path.join(lib, 'lib/es6-promise.min.js'),
};
const page = `<!doctype html><meta charset="utf-8"><title>VOD Web SDK check</title>
<script src="/sdk/es6-promise.min.js"></script>
<script src="/sdk/aliyun-oss-sdk.min.js"></script>
<script src="/sdk/aliyun-upload-sdk.min.js"></script>
<input id="file" type="file">
<script>
window.runUpload = (mode, api, key, region) => new Promise((resolve, reject) => {
  const file = document.getElementById('file').files[0];
  const post = async (route, body) => {
    const r = await fetch(api + route, {
      method: 'POST',
      headers: { Authorization: 'Bearer ' + key, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    const j = await r.json();
    if (!r.ok) throw new Error(route + ' answered ' + r.status + ': ' + j.code + ' ' + j.message);
    return j;
  };
  let job = null;
  const uploader = new AliyunUpload.Vod({
    userId: '1234567890',
    region,
    partSize: 1048576,
    parallel: 5,
    retryCount: 3,
    retryDuration: 2,
    onUploadstarted: async (info) => {
      try {
        if (mode === 'credential') {
          job = await post('/v1/uploads', { kind: 'video', title: 'Web SDK', file_name: file.name, file_size: file.size });
          uploader.setUploadAuthAndAddress(info, job.upload_auth, job.upload_address, job.video_id || job.media_id);
        } else {
          const t = await post('/v1/sts-token', { kinds: ['video'] });
          uploader.setSTSToken(info, t.access_key_id, t.access_key_secret, t.security_token);
        }
      } catch (e) { reject(e); }
    },
    onUploadTokenExpired: async (info) => {
      try {
        const fresh = await post('/v1/uploads/' + encodeURIComponent(job.job_id) + '/refresh', {});
        uploader.resumeUploadWithAuth(fresh.upload_auth);
      } catch (e) { reject(e); }
    },
    onUploadSucceed: (info) => resolve({ video_id: info.videoId, bucket: info.bucket, object: info.object, job_id: job && job.job_id }),
    onUploadFailed: (info, code, message) => reject(new Error('onUploadFailed: ' + code + ' ' + message)),
  });
  uploader.addFile(file, null, null, null, '{"Vod":{}}');
  uploader.startUpload();
});
</script>`;

const server = createServer(async (req, res) => {
  const url = new URL(req.url, 'http://x');
  if (url.pathname === '/') {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    return res.end(page);
  }
  const file = files[url.pathname];
  if (!file) {
    res.writeHead(404);
    return res.end();
  }
  try {
    const body = await readFile(file);
    res.writeHead(200, { 'Content-Type': 'application/javascript' });
    res.end(body);
  } catch (e) {
    res.writeHead(500);
    res.end(String(e));
  }
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const origin = `http://app.localhost:${server.address().port}`;

const log = (line) => process.stderr.write(`web-sdk: ${line}\n`);
const profile = await mkdtemp(path.join(tmpdir(), 'vod-web-sdk-'));
const vodHost = `vod.${args.region}.aliyuncs.com`;
const context = await launchChromium(profile, undefined, [
  `--host-resolver-rules=MAP ${vodHost}:443 127.0.0.1:${args['emulator-port']}`,
  '--ignore-certificate-errors',
]);
let code = 1;
try {
  const tab = await context.newPage();
  tab.on('console', (m) => m.type() === 'error' && log(`console: ${m.text()}`));
  tab.on('pageerror', (e) => log(`page error: ${e}`));
  tab.on('requestfailed', (r) => log(`request failed: ${r.method()} ${r.url().slice(0, 120)} ${r.failure()?.errorText}`));
  await tab.goto(`${origin}/`);
  await tab.setInputFiles('#file', path.resolve(args.file));
  const result = await Promise.race([
    tab.evaluate(([m, api, key, region]) => window.runUpload(m, api, key, region), [args.mode, args.api, args.key, args.region]),
    new Promise((_, reject) => setTimeout(() => reject(new Error('timed out')), Number(args.timeout) * 1000)),
  ]);
  console.log(JSON.stringify({ mode: args.mode, origin, ...result }));
  code = 0;
} catch (e) {
  log(`failed: ${e.message || e}`);
} finally {
  await context.close();
  server.close();
  await rm(profile, { recursive: true, force: true });
}
process.exit(code);
