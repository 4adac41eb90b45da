#!/usr/bin/env node
// What VOD's Web SDK does in STS mode, written here (the SDK itself may not be committed): a
// page on its own origin (http://app.localhost:PORT) gets a token from the service, signs
// CreateUploadVideo with signature V1 in the browser (no Timestamp, a RequestId, as
// h5/UploadSDK/src/upload/vod/data.js does) and sends it with XHR to
// https://vod.cn-shanghai.aliyuncs.com, which Chromium maps to the emulator's HTTPS port.
//
//   node web/tests/sts-page.mjs --api http://127.0.0.1:8080 --key KEY --emulator-port 9000
//   -> {"status": 200, "video_id", "upload_address", "upload_auth", "origin"}; a browser lets the
//      page read the answer only when VOD (the emulator) allows its origin.
import { createServer } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { launchChromium } from './chromium.mjs';

const { values: args } = parseArgs({
  options: {
    api: { type: 'string' },
    key: { type: 'string' },
    'emulator-port': { type: 'string' },
  },
});
if (!args.api || !args.key || !args['emulator-port']) {
  process.stderr.write('usage: sts-page.mjs --api URL --key KEY --emulator-port PORT\n');
  process.exit(2);
}

const page = `<!doctype html><meta charset="utf-8"><title>STS mode</title><script>
// The SDK's encoding: encodeURIComponent, then the characters it leaves alone.
const enc = (s) => encodeURIComponent(s).replace(/\\+/g, '%20').replace(/\\*/g, '%2A').replace(/%7E/g, '~')
  .replace(/!/g, '%21').replace(/\\(/g, '%28').replace(/\\)/g, '%29').replace(/'/g, '%27');
const sorted = (p) => Object.keys(p).sort().map((k) => enc(k) + '=' + enc(p[k])).join('&');
async function hmacSha1(key, text) {
  const k = await crypto.subtle.importKey('raw', new TextEncoder().encode(key), { name: 'HMAC', hash: 'SHA-1' }, false, ['sign']);
  const sig = await crypto.subtle.sign('HMAC', k, new TextEncoder().encode(text));
  return btoa(String.fromCharCode(...new Uint8Array(sig)));
}
window.run = async (api, key) => {
  const r = await fetch(api + '/v1/sts-token', {
    method: 'POST',
    headers: { Authorization: 'Bearer ' + key, 'Content-Type': 'application/json' },
    body: JSON.stringify({ kinds: ['video'] }),
  });
  const t = await r.json();
  if (!r.ok) throw new Error('/v1/sts-token: ' + r.status + ' ' + JSON.stringify(t));
  const params = {
    AccessKeyId: t.access_key_id, SecurityToken: t.security_token, Action: 'CreateUploadVideo',
    Title: 'From a page', FileName: 'page.mp4', Version: '2017-03-21', Format: 'JSON',
    SignatureMethod: 'HMAC-SHA1', SignatureVersion: '1.0', SignatureNonce: crypto.randomUUID(),
    RequestId: crypto.randomUUID(),
  };
  const query = sorted(params);
  const signature = await hmacSha1(t.access_key_secret + '&', 'GET&' + enc('/') + '&' + enc(query));
  const url = 'https://vod.cn-shanghai.aliyuncs.com/?' + query + '&Signature=' + enc(signature);
  return await new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    // The page can read the answer at all only if it carries Access-Control-Allow-Origin.
    xhr.onload = () => resolve({ status: xhr.status, body: JSON.parse(xhr.responseText) });
    xhr.onerror = () => reject(new Error('the XHR to the VOD host failed (CORS, TLS or the host mapping)'));
    xhr.open('GET', url);
    xhr.send();
  });
};
</script>`;

const server = createServer((req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
  res.end(page);
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const origin = `http://app.localhost:${server.address().port}`;
const profile = await mkdtemp(path.join(tmpdir(), 'vod-sts-page-'));
const context = await launchChromium(profile, undefined, [
  `--host-resolver-rules=MAP vod.cn-shanghai.aliyuncs.com:443 127.0.0.1:${args['emulator-port']}`,
  '--ignore-certificate-errors',
]);
let code = 1;
try {
  const tab = await context.newPage();
  tab.on('console', (m) => m.type() === 'error' && process.stderr.write(`sts-page: console: ${m.text()}\n`));
  await tab.goto(`${origin}/`);
  const out = await tab.evaluate(([api, key]) => window.run(api, key), [args.api, args.key]);
  console.log(
    JSON.stringify({
      status: out.status,
      video_id: out.body.VideoId,
      upload_address: out.body.UploadAddress,
      upload_auth: out.body.UploadAuth,
      code: out.body.Code,
      origin,
    }),
  );
  code = 0;
} catch (e) {
  process.stderr.write(`sts-page: ${e.message || e}\n`);
} finally {
  await context.close();
  server.close();
  await rm(profile, { recursive: true, force: true });
}
process.exit(code);
