// The msgpack decode of a value, apart from any store: mapkv's plain decoder
// (src/encoding/plainmsgpack.ts) against msgpackr's Unpackr, on the benchmark's values.
//
//   npm run build:ts && node bench/decode.mjs [--rounds=15] [--decodes=1000000]
//
// 1,000 values { name: 'value', n, tags: ['a', 'b'] } (msgpackr.pack, useRecords: false, 27 to
// 31 bytes) lie 64 bytes apart in one buffer, as records lie in a page. Each round times
// `--decodes` decodes of them in turn by each decoder (which goes first alternates), and the
// script prints each one's median ns per decode and the median over rounds of the ratio of the
// two within a round. msgpackr decodes from a subarray, as its unpack takes one; mapkv's
// decoder takes the buffer and the value's bounds.
//
// One process's figures can differ from the next one's by a third: the order in which V8
// optimizes the decoder's functions changes what it inlines. Run it a few times.
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { Packr, Unpackr } from 'msgpackr';
import { median, parseArgs } from './lib.mjs';

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));
const { plainDecoderFor } = require(path.join(here, '../dist/encoding/plainmsgpack.js'));

const args = parseArgs(process.argv.slice(2));
const ROUNDS = Number(args.rounds ?? 15);
const DECODES = Number(args.decodes ?? 1_000_000);
const VALUES = 1000;

const options = { useRecords: false };
const packr = new Packr(options);
const unpackr = new Unpackr(options);
const plain = plainDecoderFor(new Unpackr(options));

const page = new Uint8Array(VALUES * 64);
const bounds = new Int32Array(VALUES * 2);
for (let i = 0; i < VALUES; i++) {
  const bytes = packr.pack({ name: 'value', n: i * 997, tags: ['a', 'b'] });
  page.set(bytes, i * 64);
  bounds[2 * i] = i * 64;
  bounds[2 * i + 1] = i * 64 + bytes.length;
}

const decoders = [
  ['mapkv plain', (s, e) => plain(page, s, e)],
  ['msgpackr', (s, e) => unpackr.unpack(page.subarray(s, e))],
];

/** ns per decode of one run; the sum of `n` checks every value decoded right. */
function time(decode) {
  let sum = 0;
  const t0 = performance.now();
  for (let i = 0; i < DECODES; i++) {
    const j = 2 * (i % VALUES);
    sum += decode(bounds[j], bounds[j + 1]).n;
  }
  const ns = ((performance.now() - t0) * 1e6) / DECODES;
  let expected = 0;
  for (let i = 0; i < DECODES; i++) expected += (i % VALUES) * 997;
  if (sum !== expected) throw new Error('a decoder read a value wrong');
  return ns;
}

for (const [, decode] of decoders) time(decode); // warm-up
const ns = decoders.map(() => []);
for (let round = 0; round < ROUNDS; round++) {
  const order = round & 1 ? [1, 0] : [0, 1];
  for (const d of order) ns[d].push(time(decoders[d][1]));
}
console.log(
  `node ${process.version}; ${ROUNDS} rounds of ${DECODES.toLocaleString('en-US')} decodes of ` +
    `{ name, n, tags } (msgpack without records)`,
);
for (let d = 0; d < decoders.length; d++) {
  console.log(`${decoders[d][0].padEnd(12)} ${median(ns[d]).toFixed(1).padStart(7)} ns per decode`);
}
const ratio = median(ns[0].map((x, i) => x / ns[1][i]));
console.log(`mapkv plain / msgpackr time: ${ratio.toFixed(2)} (median over rounds)`);
