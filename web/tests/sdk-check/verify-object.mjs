#!/usr/bin/env node
// Reads an object back from the emulator with its account key and compares it with a file.
//   node web/tests/sdk-check/verify-object.mjs --emulator URL --bucket B --object KEY --file PATH
// Prints {"equal":true,"bytes":N}; exits 1 when the stored bytes differ from the file.
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import OSS from 'ali-oss';

const { values: args } = parseArgs({
  options: {
    emulator: { type: 'string' },
    bucket: { type: 'string' },
    object: { type: 'string' },
    file: { type: 'string' },
    'access-key-id': { type: 'string', default: 'emulator-access-key-id' },
    'access-key-secret': { type: 'string', default: 'emulator-access-key-secret' },
  },
});
const client = new OSS({
  endpoint: args.emulator,
  bucket: args.bucket,
  accessKeyId: args['access-key-id'],
  accessKeySecret: args['access-key-secret'],
  secure: args.emulator.startsWith('https:'),
  region: 'oss-cn-shanghai',
});
const want = await readFile(args.file);
const { content } = await client.get(args.object);
const equal = Buffer.compare(Buffer.from(content), want) === 0;
console.log(JSON.stringify({ equal, bytes: content.length, expected: want.length }));
process.exit(equal ? 0 : 1);
