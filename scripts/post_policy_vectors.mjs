#!/usr/bin/env node
// Prints PostObject policy signatures made by ali-oss (an independent implementation) for fixed
// inputs: tests/fixtures/post_policy_vectors.json is this script's output, and tests/signing.rs
// pins src/sign/post_policy.rs to it. Run from the repository root after `npm ci --prefix web`:
//   node scripts/post_policy_vectors.mjs > tests/fixtures/post_policy_vectors.json
import { createRequire } from 'node:module';

const require = createRequire(new URL('../web/package.json', import.meta.url));
const OSS = require('ali-oss');

const accessKeyId = 'STS.testid';
const accessKeySecret = 'testsecret';
const client = new OSS({ accessKeyId, accessKeySecret, stsToken: 'testtoken', region: 'oss-cn-shanghai', bucket: 'outin-test' });
const date = new Date(Date.UTC(2023, 10, 14, 22, 13, 20));
const policies = [
  { expiration: '2023-11-14T22:18:20.000Z', conditions: [['content-length-range', 0, 1048576000]] },
  {
    expiration: '2023-11-14T23:00:00.000Z',
    conditions: [
      { bucket: 'outin-test' },
      ['eq', '$key', 'sv/视频 1.mp4'],
      ['content-length-range', 0, 10485760],
      ['eq', '$success_action_status', '200'],
      { 'x-oss-signature-version': 'OSS4-HMAC-SHA256' },
      { 'x-oss-credential': `${accessKeyId}/20231114/cn-shanghai/oss/aliyun_v4_request` },
      { 'x-oss-date': '20231114T221320Z' },
    ],
  },
];
const vectors = policies.map((policy) => {
  const v1 = client.calculatePostSignature(policy);
  return {
    access_key_id: accessKeyId,
    access_key_secret: accessKeySecret,
    policy_base64: v1.policy,
    v1_signature: v1.Signature,
    v4_date: '20231114',
    v4_region: 'cn-shanghai',
    v4_signature: client.signPostObjectPolicyV4(policy, date),
  };
});
console.log(JSON.stringify({ source: 'ali-oss calculatePostSignature / signPostObjectPolicyV4', vectors }, null, 2));
