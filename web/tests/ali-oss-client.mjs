#!/usr/bin/env node
// A client app's side of an upload, done the way a mobile app or mini program does it, with the
// public Node packages: ali-oss for OSS, @alicloud/pop-core for VOD (RPC, signature V1).
//
// Upload-credential mode: the app server calls VOD, the client only talks to OSS.
//   node web/tests/ali-oss-client.mjs --mode credential --url BASE --key KEY --file PATH
//        [--kind video|image|attached_media] [--business-type material]
//   -> {"job_id","media_id","bucket","key"}
//
// STS mode: the app server hands out an STS token, the client calls VOD CreateUpload* itself.
//   node web/tests/ali-oss-client.mjs --mode sts --url BASE --key KEY --file PATH \
//        --vod-endpoint http://127.0.0.1:9000 [--kind video|image]
//   -> {"video_id","bucket","key"}   (or {"image_id",...} with --kind image)
//   node web/tests/ali-oss-client.mjs --mode sts --url BASE --key KEY --vod-endpoint URL \
//        --expect-refusal DeleteVideo [--params '{"VideoIds":"x"}']
//   -> {"action","refused","code","status","message"}; exits 0 only when VOD refused the
//      action with 403 (Forbidden.*).
//
// One JSON line on stdout; on failure the error code and message on stderr and a non-zero exit.
import { open, stat } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import OSS from 'ali-oss';
import PopCore from '@alicloud/pop-core';

const { RPCClient } = PopCore;

const { values: args } = parseArgs({
  options: {
    mode: { type: 'string', default: 'credential' },
    url: { type: 'string' },
    key: { type: 'string' },
    file: { type: 'string' },
    kind: { type: 'string', default: 'video' },
    'business-type': { type: 'string', default: 'material' },
    title: { type: 'string' },
    'vod-endpoint': { type: 'string' },
    'expect-refusal': { type: 'string' },
    params: { type: 'string' },
    'duration-seconds': { type: 'string' },
    'part-size': { type: 'string', default: String(1024 * 1024) },
  },
});

class Failure extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

function usage(message) {
  process.stderr.write(
    `ali-oss-client: ${message}\n` +
      'usage: ali-oss-client.mjs --mode credential --url BASE --key KEY --file PATH [--kind K]\n' +
      '       ali-oss-client.mjs --mode sts --url BASE --key KEY --file PATH --vod-endpoint URL [--kind video|image]\n' +
      '       ali-oss-client.mjs --mode sts --url BASE --key KEY --vod-endpoint URL --expect-refusal ACTION [--params JSON]\n',
  );
  process.exit(2);
}

if (!['credential', 'sts'].includes(args.mode)) usage(`unknown --mode ${args.mode}`);
if (!args.url) usage('--url is required');
if (!args.key) usage('--key is required');
if (!args.file && !args['expect-refusal']) usage('--file is required');
if (args.mode === 'sts' && !args['vod-endpoint']) usage('--vod-endpoint is required with --mode sts');
if (args['expect-refusal'] && args.mode !== 'sts') usage('--expect-refusal needs --mode sts');
const kinds = args.mode === 'sts' ? ['video', 'image'] : ['video', 'image', 'attached_media'];
if (!kinds.includes(args.kind)) usage(`--kind ${args.kind} is not supported with --mode ${args.mode}`);
const partSize = Number(args['part-size']);
if (!Number.isInteger(partSize) || partSize < 100 * 1024) usage('--part-size must be an integer >= 102400');

const base = args.url.replace(/\/+$/, '');

// ---- the app server's API ---------------------------------------------------------------------

async function api(route, payload) {
  let res;
  try {
    res = await fetch(`${base}${route}`, {
      method: 'POST',
      headers: {
        Authorization: `Bearer ${args.key}`,
        'Content-Type': 'application/json',
        Accept: 'application/json',
      },
      body: JSON.stringify(payload || {}),
    });
  } catch (e) {
    throw new Failure('network_error', `POST ${route}: ${e.cause?.message || e.message}`);
  }
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const retry = res.headers.get('retry-after');
    throw new Failure(
      (data && data.code) || `http_${res.status}`,
      `POST ${route} answered ${res.status}: ${(data && data.message) || text.slice(0, 200)}` +
        (retry ? ` (Retry-After ${retry})` : ''),
    );
  }
  if (!data || typeof data !== 'object') throw new Failure('bad_response', `POST ${route}: not JSON`);
  return data;
}

function decodeBase64Json(value, what) {
  try {
    return JSON.parse(Buffer.from(String(value), 'base64').toString('utf8'));
  } catch (e) {
    throw new Failure('bad_response', `${what} is not Base64 JSON (${e.message})`);
  }
}

// ---- OSS ----------------------------------------------------------------------------------------

function lifetimeMs(auth) {
  const candidates = [];
  const secs = Number(auth.Expiration);
  if (Number.isFinite(secs) && secs > 0) candidates.push(secs * 1000);
  const until = Date.parse(auth.ExpireUTCTime);
  if (Number.isFinite(until) && until > Date.now()) candidates.push(until - Date.now());
  return candidates.length ? Math.min(...candidates) : 3000 * 1000;
}

function ossClient(address, auth, refreshSTSToken) {
  const endpoint = new URL(address.Endpoint);
  const life = lifetimeMs(auth);
  const options = {
    endpoint: address.Endpoint,
    bucket: address.Bucket,
    accessKeyId: auth.AccessKeyId,
    accessKeySecret: auth.AccessKeySecret,
    stsToken: auth.SecurityToken,
    secure: endpoint.protocol === 'https:',
    // With an IP endpoint ali-oss (Node) sends Host: {bucket}.oss-{region}.aliyuncs.com and the
    // key as the path, which the emulator takes as virtual-hosted. `localhost` gets path-style.
    sldEnable: endpoint.hostname === 'localhost',
    timeout: 120000,
    refreshSTSTokenInterval: Math.max(1000, life - Math.min(5 * 60 * 1000, life / 5)),
  };
  if (auth.Region) options.region = auth.Region.startsWith('oss-') ? auth.Region : `oss-${auth.Region}`;
  if (refreshSTSToken) options.refreshSTSToken = refreshSTSToken;
  return new OSS(options);
}

const EXPIRED_CODES = ['SecurityTokenExpired', 'InvalidAccessKeyId', 'InvalidSecurityToken'];
const RETRY_DELAYS_MS = [500, 1000, 2000, 4000];

async function uploadFile(address, auth, file, refreshSTSToken) {
  const { size } = await stat(file);
  const client = ossClient(address, auth, refreshSTSToken);
  // ali-oss counts the renewal interval from its first request; the credential's life began
  // when the API handed it out.
  client.stsTokenFreshTime = new Date();
  let checkpoint = null;
  let retries = 0;
  let renew = false;
  for (;;) {
    try {
      if (renew) {
        // Renew before any request: ali-oss renews lazily in one request while the others
        // still go out with the old credential.
        renew = false;
        Object.assign(client.options, await refreshSTSToken());
        client.stsTokenFreshTime = new Date();
      }
      if (size < partSize) {
        // One PutObject: what a small upload from a phone does.
        await client.put(address.FileName, file);
      } else {
        const options = {
          partSize,
          parallel: 4,
          progress: (p, cpt) => {
            if (cpt) {
              if (checkpoint && cpt.doneParts.length > checkpoint.doneParts.length) retries = 0;
              checkpoint = cpt;
            }
          },
        };
        if (checkpoint) options.checkpoint = checkpoint;
        await client.multipartUpload(address.FileName, file, options);
      }
      break;
    } catch (e) {
      // A credential that ran out under an in-flight request, or a network blip: renew (for a
      // video) and go on from the checkpoint.
      const expired = EXPIRED_CODES.includes(e.code) && refreshSTSToken;
      const transient =
        [-2, -1].includes(e.status) || e.status >= 500 || ['network_error', 'http_429'].includes(e.code);
      if ((expired || transient) && retries < RETRY_DELAYS_MS.length) {
        if (expired) renew = true;
        await new Promise((resolve) => setTimeout(resolve, RETRY_DELAYS_MS[retries]));
        retries += 1;
        continue;
      }
      if (e instanceof Failure) throw e;
      const message = String(e.message || e).replace(/^Failed to upload some parts with error: /, '');
      throw new Failure(e.code || e.name || 'oss_error', `OSS ${address.Bucket}/${address.FileName}: ${message}`);
    }
  }
  return { bucket: address.Bucket, key: address.FileName };
}

// ---- the two modes ------------------------------------------------------------------------------

function stem(name) {
  return name.replace(/\.[^.]*$/, '') || name;
}

async function credentialMode() {
  const file = path.resolve(args.file);
  const { size } = await stat(file);
  const fileName = path.basename(file);
  const request = { kind: args.kind, file_name: fileName, file_size: size, title: args.title || stem(fileName) };
  if (args.kind === 'attached_media') request.business_type = args['business-type'];
  const job = await api('/v1/uploads', request);
  const address = decodeBase64Json(job.upload_address, 'upload_address');
  const auth = decodeBase64Json(job.upload_auth, 'upload_auth');
  const videoId = job.video_id || (args.kind === 'video' ? job.media_id : undefined);
  // A video's credential is renewed for the same address; other kinds cannot be.
  const refresh =
    args.kind === 'video'
      ? async () => {
          const fresh = await api(`/v1/uploads/${encodeURIComponent(job.job_id)}/refresh`, { video_id: videoId });
          const next = decodeBase64Json(fresh.upload_address, 'upload_address');
          if (next.Bucket !== address.Bucket || next.FileName !== address.FileName) {
            throw new Failure('address_changed', 'the refreshed credential is for another object');
          }
          const a = decodeBase64Json(fresh.upload_auth, 'upload_auth');
          return { accessKeyId: a.AccessKeyId, accessKeySecret: a.AccessKeySecret, stsToken: a.SecurityToken };
        }
      : null;
  const stored = await uploadFile(address, auth, file, refresh);
  return { job_id: job.job_id, media_id: job.media_id, ...stored };
}

function vodClient(token) {
  return new RPCClient({
    accessKeyId: token.access_key_id,
    accessKeySecret: token.access_key_secret,
    securityToken: token.security_token,
    endpoint: args['vod-endpoint'].replace(/\/+$/, ''),
    apiVersion: '2017-03-21',
    opts: { timeout: 30000 },
  });
}

function vodFailure(action, e) {
  const status = e.entry?.response?.statusCode;
  const message = String(e.data?.Message || e.message || e).replace(/, URL: .*$/, '');
  const failure = new Failure(e.code || e.name || 'vod_error', `VOD ${action}${status ? ` (${status})` : ''}: ${message}`);
  failure.status = status;
  failure.vodMessage = message;
  return failure;
}

async function stsToken() {
  const request = { kinds: [args.kind] };
  if (args['duration-seconds']) request.duration_seconds = Number(args['duration-seconds']);
  const token = await api('/v1/sts-token', request);
  for (const field of ['access_key_id', 'access_key_secret', 'security_token']) {
    if (!token[field]) throw new Failure('bad_response', `/v1/sts-token lacks ${field}`);
  }
  return token;
}

async function stsMode() {
  const token = await stsToken();
  const vod = vodClient(token);

  if (args['expect-refusal']) {
    const action = args['expect-refusal'];
    const params = args.params ? JSON.parse(args.params) : {};
    try {
      await vod.request(action, params, { method: 'POST' });
    } catch (e) {
      const f = vodFailure(action, e);
      const refused = f.status === 403 && String(f.code).startsWith('Forbidden');
      return {
        out: { action, refused, code: f.code, status: f.status ?? null, message: f.vodMessage },
        ok: refused,
      };
    }
    return { out: { action, refused: false, code: null, status: 200, message: 'the action was allowed' }, ok: false };
  }

  const file = path.resolve(args.file);
  const { size } = await stat(file);
  const fileName = path.basename(file);
  const title = args.title || stem(fileName);
  let created;
  const action = args.kind === 'video' ? 'CreateUploadVideo' : 'CreateUploadImage';
  try {
    created =
      args.kind === 'video'
        ? await vod.request(action, { Title: title, FileName: fileName, FileSize: size }, { method: 'POST' })
        : await vod.request(
            action,
            { ImageType: 'default', ImageExt: path.extname(fileName).slice(1) || 'png', Title: title },
            { method: 'POST' },
          );
  } catch (e) {
    throw vodFailure(action, e);
  }
  const address = decodeBase64Json(created.UploadAddress, 'UploadAddress');
  const auth = decodeBase64Json(created.UploadAuth, 'UploadAuth');
  // Renewal in STS mode: RefreshUploadVideo with the same token (a long upload outlives the
  // upload credential, not necessarily the token).
  const refresh =
    args.kind === 'video'
      ? async () => {
          let r;
          try {
            r = await vod.request('RefreshUploadVideo', { VideoId: created.VideoId }, { method: 'POST' });
          } catch (e) {
            throw vodFailure('RefreshUploadVideo', e);
          }
          const a = decodeBase64Json(r.UploadAuth, 'UploadAuth');
          return { accessKeyId: a.AccessKeyId, accessKeySecret: a.AccessKeySecret, stsToken: a.SecurityToken };
        }
      : null;
  const stored = await uploadFile(address, auth, file, refresh);
  const id = args.kind === 'video' ? { video_id: created.VideoId } : { image_id: created.ImageId };
  return { out: { ...id, ...stored }, ok: true };
}

try {
  if (args.mode === 'credential') {
    process.stdout.write(`${JSON.stringify(await credentialMode())}\n`);
  } else {
    const { out, ok } = await stsMode();
    process.stdout.write(`${JSON.stringify(out)}\n`);
    if (!ok) {
      process.stderr.write(
        `ali-oss-client: ${out.action} was not refused with 403 Forbidden.*: ${out.code || 'allowed'}: ${out.message}\n`,
      );
      process.exit(1);
    }
  }
} catch (e) {
  process.stderr.write(`ali-oss-client: ${e.code || 'error'}: ${e.message}\n`);
  process.exit(1);
}
