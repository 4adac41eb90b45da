#!/usr/bin/env node
// VOD's WeChat mini-program upload SDK (aliyun-upload-sdk-1.0.x.min.js, a build vendored in
// mini-program projects; never copied into this repository) in Node, under a small stand-in
// for the `wx` API it uses. `wx.uploadFile` sends the real multipart/form-data POST (the
// fields in the SDK's order, the file last) to the URL the SDK builds, `<bucket>.<endpoint
// host>`; names under `.localhost` go to loopback, as WeChat's runtime and browsers resolve
// them.
//
//   node web/tests/sdk-check/mini-program.mjs --sdk aliyun-upload-sdk-1.0.1.min.js \
//        --api http://127.0.0.1:8080 --key KEY --file PATH [--mode credential|sts --emulator-port P]
//
// In STS mode the SDK calls `https://vod.<region>.aliyuncs.com` through `wx.request`; the
// stand-in sends that name to the emulator's port (started with --tls), as a phone's hosts
// entry would.
//
// The SDK reports success whatever OSS answered, so the stand-in keeps OSS's answer and this
// driver fails unless it was 2xx. Prints {"job_id","bucket","object","status"}.
import { copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    sdk: { type: 'string' },
    api: { type: 'string' },
    key: { type: 'string' },
    file: { type: 'string' },
    mode: { type: 'string', default: 'credential' },
    'emulator-port': { type: 'string' },
    timeout: { type: 'string', default: '60' },
  },
});
for (const name of ['sdk', 'api', 'key', 'file']) {
  if (!args[name]) {
    process.stderr.write(`mini-program: --${name} is required\n`);
    process.exit(2);
  }
}
const log = (line) => process.stderr.write(`mini-program: ${line}\n`);
if (args.mode === 'sts' && !args['emulator-port']) {
  process.stderr.write('mini-program: --emulator-port is required with --mode sts\n');
  process.exit(2);
}

/** One HTTP request; `*.localhost` is sent to 127.0.0.1 with its own Host header. */
function send(url, { method = 'GET', headers = {}, body } = {}) {
  const u = new URL(url);
  const loopback = u.hostname === 'localhost' || u.hostname.endsWith('.localhost');
  const vod = /^vod\.[a-z0-9-]+\.aliyuncs\.com$/.test(u.hostname) && args['emulator-port'];
  const lib = u.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = lib.request(
      {
        host: loopback || vod ? '127.0.0.1' : u.hostname,
        port: vod ? args['emulator-port'] : u.port || (u.protocol === 'https:' ? 443 : 80),
        path: `${u.pathname}${u.search}`,
        method,
        headers: { Host: u.host, ...headers },
        servername: u.hostname,
        rejectUnauthorized: false,
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ statusCode: res.statusCode, header: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
      },
    );
    req.on('error', reject);
    if (body) req.write(body);
    req.end();
  });
}

// The SDK logs with console.log: keep stdout for this driver's one JSON line.
console.log = (...args) => console.error(...args);
const ossAnswers = [];
// The build assigns `window.onbeforeunload` behind a `window &&` test, which throws where
// `window` is not declared at all; mini-program frameworks (uni-app, Taro) declare it.
globalThis.window = {};
globalThis.wx = {
  getSystemInfoSync: () => ({ system: 'iOS 17.0', version: '8.0.50', platform: 'ios', model: 'iPhone 15', SDKVersion: '3.3.0' }),
  canIUse: () => true,
  getAccountInfoSync: () => ({ miniProgram: { appId: 'wx0123456789abcdef', envVersion: 'develop' } }),
  getFileInfo({ filePath, success, fail, complete }) {
    readFile(filePath).then(
      (b) => {
        const r = { size: b.length, digest: createHash('md5').update(b).digest('hex') };
        success?.(r);
        complete?.(r);
      },
      (e) => {
        fail?.({ errMsg: String(e) });
        complete?.({ errMsg: String(e) });
      },
    );
  },
  request({ url, method = 'GET', header, data, success, fail }) {
    send(url, { method, headers: header, body: data && typeof data !== 'string' ? JSON.stringify(data) : data }).then(
      (r) => {
        let parsed = r.text;
        try {
          parsed = JSON.parse(r.text);
        } catch {
          // not JSON: as wx gives it
        }
        success?.({ statusCode: r.statusCode, header: r.header, data: parsed });
      },
      (e) => fail?.({ errMsg: `request:fail ${e.message}` }),
    );
    return { abort() {} };
  },
  uploadFile({ url, filePath, name, formData = {}, success, fail }) {
    const progress = [];
    const boundary = `----WxFormBoundary${randomBytes(8).toString('hex')}`;
    readFile(filePath)
      .then((file) => {
        const parts = [];
        for (const [k, v] of Object.entries(formData)) {
          parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`));
        }
        parts.push(
          Buffer.from(
            `--${boundary}\r\nContent-Disposition: form-data; name="${name}"; filename="${path.basename(filePath)}"\r\n` +
              'Content-Type: application/octet-stream\r\n\r\n',
          ),
          file,
          Buffer.from(`\r\n--${boundary}--\r\n`),
        );
        const body = Buffer.concat(parts);
        return send(url, {
          method: 'POST',
          headers: { 'Content-Type': `multipart/form-data; boundary=${boundary}`, 'Content-Length': body.length },
          body,
        });
      })
      .then(
        (r) => {
          ossAnswers.push({ url, status: r.statusCode, body: r.text, fields: Object.keys(formData) });
          for (const cb of progress) cb({ progress: 100, totalBytesSent: 1, totalBytesExpectedToSend: 1 });
          success?.({ statusCode: r.statusCode, data: r.text, header: r.header });
        },
        (e) => fail?.({ errMsg: `uploadFile:fail ${e.message}` }),
      );
    return { onProgressUpdate: (cb) => progress.push(cb), abort() {} };
  },
};

// The build is a UMD bundle: load it as CommonJS whatever the surrounding package says.
const dir = await mkdtemp(path.join(tmpdir(), 'vod-mini-'));
const copy = path.join(dir, 'aliyun-upload-sdk.cjs');
await copyFile(args.sdk, copy);
const loaded = createRequire(import.meta.url)(copy);
const VODUpload = loaded.default || loaded.VODUpload || loaded;

async function post(route, body) {
  const r = await fetch(`${args.api}${route}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${args.key}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  const j = await r.json();
  if (!r.ok) throw new Error(`${route} answered ${r.status}: ${j.code} ${j.message}`);
  return j;
}

const file = path.resolve(args.file);
const size = (await readFile(file)).length;
let job = null;
let code = 1;
// The form signed by the service ("upload_method": "post_form"), sent with wx.uploadFile by a
// mini program that does not use VOD's SDK at all.
async function postFormMode() {
  job = await post('/v1/uploads', {
    kind: 'video',
    title: 'Mini program form',
    file_name: path.basename(file),
    file_size: size,
    upload_method: 'post_form',
  });
  await new Promise((resolve, reject) =>
    wx.uploadFile({ url: job.form.url, filePath: file, name: 'file', formData: job.form.fields, success: resolve, fail: reject }),
  );
  const address = JSON.parse(Buffer.from(job.upload_address, 'base64').toString('utf8'));
  return { bucket: address.Bucket, object: address.FileName };
}

try {
  const result = args.mode === 'post_form' ? await postFormMode() : await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('timed out')), Number(args.timeout) * 1000);
    const uploader = new VODUpload({
      timeout: 60000,
      region: 'cn-shanghai',
      onUploadstarted: async (info) => {
        try {
          if (args.mode === 'sts') {
            const t = await post('/v1/sts-token', { kinds: ['video'] });
            uploader.setSTSToken(info, t.access_key_id, t.access_key_secret, t.security_token);
          } else {
            job = await post('/v1/uploads', { kind: 'video', title: 'Mini program', file_name: path.basename(file), file_size: size });
            uploader.setUploadAuthAndAddress(info, job.upload_auth, job.upload_address, job.video_id || job.media_id);
          }
        } catch (e) {
          reject(e);
        }
      },
      onUploadSucceed: (info) => {
        clearTimeout(timer);
        resolve({ bucket: info.bucket, object: info.object, video_id: info.videoId });
      },
      onUploadFailed: (info, c, message) => {
        clearTimeout(timer);
        reject(new Error(`onUploadFailed: ${c} ${message}`));
      },
    });
    uploader.addFile({ url: file, coverUrl: '' }, null, null, null, '{"Vod":{}}');
    uploader.startUpload();
  });
  const answer = ossAnswers.at(-1);
  if (!answer || answer.status < 200 || answer.status > 299) {
    throw new Error(`the SDK reported success, but OSS answered ${answer?.status}: ${answer?.body}`);
  }
  process.stdout.write(
    `${JSON.stringify({ job_id: job ? job.job_id : `sts:${result.video_id}`, mode: args.mode, ...result, status: answer.status, url: answer.url, fields: answer.fields })}\n`,
  );
  code = 0;
} catch (e) {
  log(`failed: ${e.message || e}`);
} finally {
  await rm(dir, { recursive: true, force: true });
}
process.exit(code);
