#!/usr/bin/env node
// The request sequence of VOD's Android and iOS upload SDKs (VODUploadClient over the OSS mobile
// SDKs), made with ali-oss's single-request calls because those SDKs cannot run here:
//
//   1. POST /v1/uploads on the app server; UploadAuth is read with ExpireUTCTime preferred
//      over Expiration, as the mobile SDKs read it.
//   2. InitiateMultipartUpload, then UploadPart in 1 MiB parts, one at a time.
//   3. The app is killed after --stop-after parts. A new client (the same credential, as the
//      checkpoint directory keeps it) asks ListParts for what was stored, checks each part's
//      size and ETag against its checkpoint, and uploads the rest.
//   4. CompleteMultipartUpload with the `x-oss-notification` header (Base64 of the upload's
//      user data; the SDKs send it on Complete).
//
//   node web/tests/mobile-sequence.mjs --url BASE --key KEY --file PATH [--stop-after 2]
//   -> {"job_id","media_id","bucket","key","parts","listed_parts","expires_from"}
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import OSS from 'ali-oss';

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    key: { type: 'string' },
    file: { type: 'string' },
    'stop-after': { type: 'string', default: '2' },
  },
});
if (!args.url || !args.key || !args.file) {
  process.stderr.write('usage: mobile-sequence.mjs --url BASE --key KEY --file PATH [--stop-after N]\n');
  process.exit(2);
}
const PART = 1024 * 1024;
const base = args.url.replace(/\/+$/, '');
const file = path.resolve(args.file);
const bytes = await readFile(file);
const stopAfter = Number(args['stop-after']);

function fail(what, e) {
  process.stderr.write(`mobile-sequence: ${what}: ${e.code || ''} ${e.message || e}\n`);
  process.exit(1);
}

const res = await fetch(`${base}/v1/uploads`, {
  method: 'POST',
  headers: { Authorization: `Bearer ${args.key}`, 'Content-Type': 'application/json' },
  body: JSON.stringify({ kind: 'video', title: 'From a phone', file_name: path.basename(file), file_size: bytes.length }),
});
const job = await res.json();
if (!res.ok) fail('POST /v1/uploads', { code: job.code, message: job.message });
const address = JSON.parse(Buffer.from(job.upload_address, 'base64').toString('utf8'));
const auth = JSON.parse(Buffer.from(job.upload_auth, 'base64').toString('utf8'));

// The mobile SDKs take the absolute expiry when there is one.
const expiresAt = Date.parse(auth.ExpireUTCTime);
const expiresFrom = Number.isFinite(expiresAt) ? 'ExpireUTCTime' : 'Expiration';
if (expiresFrom === 'ExpireUTCTime' && !(expiresAt > Date.now())) fail('UploadAuth', { message: 'ExpireUTCTime is in the past' });

function client() {
  const endpoint = new URL(address.Endpoint);
  return new OSS({
    endpoint: address.Endpoint,
    bucket: address.Bucket,
    accessKeyId: auth.AccessKeyId,
    accessKeySecret: auth.AccessKeySecret,
    stsToken: auth.SecurityToken,
    secure: endpoint.protocol === 'https:',
    // With an IP endpoint ali-oss (Node) sends `Host: <bucket>.oss-<region>.aliyuncs.com`,
    // which the emulator takes as virtual-hosted; `localhost` gets path style.
    sldEnable: endpoint.hostname === 'localhost',
    region: auth.Region ? `oss-${auth.Region}` : undefined,
  });
}

const parts = [];
for (let i = 0; i * PART < bytes.length; i++) parts.push(bytes.subarray(i * PART, (i + 1) * PART));
if (!(stopAfter > 0 && stopAfter < parts.length)) fail('arguments', { message: `--stop-after must be 1..${parts.length - 1}` });

const first = client();
let uploadId;
const checkpoint = [];
try {
  ({ uploadId } = await first.initMultipartUpload(address.FileName, { mime: 'video/mp4' }));
  for (let n = 1; n <= stopAfter; n++) {
    const r = await first.uploadPart(address.FileName, uploadId, n, parts[n - 1], 0, parts[n - 1].length);
    checkpoint.push({ number: n, etag: r.etag });
  }
} catch (e) {
  fail('first run', e);
}

// The app comes back: a new client resumes from ListParts.
const second = client();
let listed;
try {
  listed = await second.listParts(address.FileName, uploadId, { 'max-parts': 1000 });
} catch (e) {
  fail('ListParts', e);
}
const stored = listed.parts || [];
for (const saved of checkpoint) {
  const p = stored.find((x) => Number(x.PartNumber) === saved.number);
  if (!p || p.ETag !== saved.etag || Number(p.Size) !== parts[saved.number - 1].length) {
    fail('ListParts', { message: `part ${saved.number} is not as uploaded: ${JSON.stringify(p)}` });
  }
}
const done = stored.map((p) => ({ number: Number(p.PartNumber), etag: p.ETag }));
try {
  for (let n = stored.length + 1; n <= parts.length; n++) {
    const r = await second.uploadPart(address.FileName, uploadId, n, parts[n - 1], 0, parts[n - 1].length);
    done.push({ number: n, etag: r.etag });
  }
  const userData = Buffer.from(JSON.stringify({ Extend: { from: 'mobile' } })).toString('base64');
  await second.completeMultipartUpload(address.FileName, uploadId, done, {
    headers: { 'x-oss-notification': userData },
  });
} catch (e) {
  fail('second run', e);
}
console.log(
  JSON.stringify({
    job_id: job.job_id,
    media_id: job.media_id,
    bucket: address.Bucket,
    key: address.FileName,
    parts: parts.length,
    listed_parts: stored.length,
    expires_from: expiresFrom,
  }),
);
