// Where the time of a random hash point read goes: a diagnostic for the hash targets of
// bench/hash.mjs, not a comparison.
//
//   npm run build:ts && node --expose-gc bench/hash-costs.mjs [--n=1000000] [--reads=500000]
//     [--rounds=5] [--dir=path]
//
// Loads the benchmark's keys and values into a mapkv hash sub-database and lmdb-js (as
// bench/hash.mjs does), then times, per read of a random key (ns per read, median of the
// rounds), loops that each do one step more of a lookup than the one before:
//
//   key string      reads the key string's last character: the miss on the key itself, which
//                   every store pays (the keys are 1M strings spread over the JS heap)
//   + encode        the key's UTF-8 bytes into the scratch buffer (internal encodeKey)
//   + hash          HalfSipHash-1-3 of those bytes under the table's key
//   + directory     the way to the bucket: the flat copy of the directories mapkv builds for a
//                   table read often, then any directory pages below it (docs/HASH.md)
//   one line        a floor, not a lookup: the directory step, then one 64-byte line of the
//                   bucket page chosen by the hash, its bytes compared with the key, and a copy
//                   of a value's length from it. No header, slot or check: what a read of a
//                   record in the mapped file costs at the least, whatever the bucket's layout
//                   (a design that always finds its record in one line, and trusts the page)
//   has()           the whole lookup: the bucket's slots, then the record's key bytes
//   getBinary()     has() plus the copy of the value
//   get()           the lookup plus the msgpack decode
//
// and the same reads over 200 keys only (all in the CPU caches: the CPU cost of a read), and
// lmdb-js's getBinary and get. Then the memory floor of this machine: chains of dependent reads
// of random 64-byte lines in a buffer of the hash file's size, where each read's address
// depends on the one before, as a lookup's reads do: one line per page; two lines of one page,
// the second depending on the first (a bucket's slot, then the record it points to); two lines
// of one page read independently.
//
// It reaches into mapkv's internals (encodeKey, readLatest, the pager) to time the steps
// apart; the figures it prints are what the README's Benchmarks section and the hash
// issue's notes quote.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { keyOf, median, packr, parseArgs, prng, valueOf } from './lib.mjs';

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));
const mapkv = require(path.join(here, '../dist/index.js'));
const { copyBytes } = require(path.join(here, '../dist/encoding/owned.js'));
const { hashOf } = require(path.join(here, '../dist/hash/hashkey.js'));
const lmdb = require('lmdb');

const args = parseArgs(process.argv.slice(2));
const N = Number(args.n ?? 1_000_000);
const READS = Number(args.reads ?? 500_000);
const ROUNDS = Number(args.rounds ?? 5);
const HOT = 200;
const base = args.dir ?? os.tmpdir();

const dir = fs.mkdtempSync(path.join(base, 'mapkv-hash-costs-'));
try {
  run();
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}

function run() {
  const keys = new Array(N);
  for (let i = 0; i < N; i++) keys[i] = keyOf(i);
  const root = mapkv.open(path.join(dir, 'hash.mkv'), { msgpack: { useRecords: false } });
  const db = root.openDB('bench', { kind: 'hash', keyEncoding: 'string' });
  db.transactionSync((txn) => {
    for (let i = 0; i < N; i++) txn.put(keys[i], valueOf(i));
  });
  const l = lmdb.open({
    path: path.join(dir, 'lmdb'),
    compression: false,
    encoding: 'msgpack',
    encoder: { useRecords: false },
    overlappingSync: false,
  });
  l.transactionSync(() => {
    for (let i = 0; i < N; i++) l.put(keys[i], valueOf(i));
  });

  const next = prng(42);
  const cold = Array.from({ length: 2 * READS }, () => keys[Math.floor(next() * N)]);
  const hot = Array.from(
    { length: READS },
    () => keys[Math.floor(next() * HOT) * Math.floor(N / HOT)],
  );
  const d = db.readLatest().desc;
  const pager = root.store.env.pager;
  const scratch = root.store.keyScratch;

  // Reads enough for mapkv to build its flat copy of the directories (docs/HASH.md, "Flat
  // directories"), then takes it: the descent below starts where mapkv's reads do.
  for (let i = 0; i < N / 64; i++) db.has(keys[i]);
  const { r: reader } = db.readLatest();
  const flat = reader.flatIndexes?.lookup(reader, d) ?? null;

  /**
   * The bucket page of hash h: from the flat directory when built, then the directory descent
   * of docs/HASH.md, without its checks.
   */
  const bucketOf = (h) => {
    let pgno = d.root;
    let depth = 0;
    if (flat !== null) {
      pgno = flat.pages[h >>> flat.shift];
      depth = flat.depths[h >>> flat.shift];
    }
    for (;;) {
      const b = pager.readView(pgno);
      const o = pager.offsetOf(pgno);
      if (b[o + 4] !== 7) return pgno; // not a directory page
      const bits = 31 - Math.clz32(b[o + 6] | (b[o + 7] << 8));
      const s = o + 32 + 4 * ((h << depth) >>> (32 - bits));
      pgno = (b[s] | (b[s + 1] << 8) | (b[s + 2] << 16) | (b[s + 3] << 24)) >>> 0;
      depth += bits;
    }
  };

  // Each step returns a sum the next check uses, so that no loop is optimised away.
  const steps = [
    ['key string', (k) => k.charCodeAt(k.length - 1)],
    ['+ encode', (k) => db.encodeKey(k)],
    ['+ hash', (k) => hashOf(d, scratch, db.encodeKey(k)) & 1],
    ['+ directory', (k) => bucketOf(hashOf(d, scratch, db.encodeKey(k))) & 1],
    ['one line', oneLine],
    ['has()', (k) => (db.has(k) ? 1 : 0)],
    ['getBinary()', (k) => db.getBinary(k).length],
    ['get()', (k) => db.get(k).n & 1],
    ['lmdb-js getBinary()', (k) => l.getBinary(k).length],
    ['lmdb-js get()', (k) => l.get(k).n & 1],
  ];
  // The floor step ('one line' above). Its line is one of the page's 63 after the header,
  // picked by the hash; the copy is as long as a stored value.
  const valueBytes = packr.pack(valueOf(0)).length;
  function oneLine(k) {
    const kl = db.encodeKey(k);
    const h = hashOf(d, scratch, kl);
    const pgno = flat === null ? bucketOf(h) : flat.pages[h >>> flat.shift];
    const b = pager.readView(pgno);
    const at = pager.offsetOf(pgno) + 64 * (1 + ((h >>> 8) % 63)) + 7;
    let c = 0;
    for (let i = 0; i < kl; i++) c |= b[at + i] ^ scratch[i];
    // (c & 1) makes the copy depend on the comparison, as a real read's does.
    return copyBytes(b, at + (c & 1), at + (c & 1) + valueBytes).length;
  }
  const time = (fn, list, from) => {
    let sum = 0;
    const t0 = performance.now();
    for (let i = from; i < from + READS; i++) sum += fn(list[i]);
    const ns = ((performance.now() - t0) * 1e6) / READS;
    if (sum < 0) throw new Error('unreachable');
    return ns;
  };
  const coldNs = new Map(steps.map(([name]) => [name, []]));
  const hotNs = new Map(steps.map(([name]) => [name, []]));
  for (const [, fn] of steps) time(fn, cold, 0); // warm-up: JIT and page tables
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, fn] of steps) {
      globalThis.gc?.();
      // Alternate halves of the sequence so that no step reads what the one before just did.
      coldNs.get(name).push(time(fn, cold, (round & 1) * READS));
      hotNs.get(name).push(time(fn, hot, 0));
    }
  }

  const pages = root.stats().pages;
  console.log(
    `node ${process.version}, ${os.cpus()[0]?.model ?? 'cpu'}; ${N.toLocaleString('en-US')} keys; ` +
      `hash file ${pages.toLocaleString('en-US')} pages; flat directory ` +
      `${flat === null ? 'none' : `2^${32 - flat.shift} entries`}; ns per read, median of ${ROUNDS} rounds ` +
      `of ${READS.toLocaleString('en-US')}`,
  );
  console.log('');
  console.log('step                    all keys     step   200 keys');
  let before = 0;
  for (const [name] of steps) {
    const c = median(coldNs.get(name));
    const h = median(hotNs.get(name));
    const step = name.startsWith('+') || name === 'has()' ? `+${(c - before).toFixed(0)}` : '';
    if (!name.startsWith('lmdb') && !name.startsWith('get') && name !== 'one line') before = c;
    console.log(
      `${name.padEnd(22)} ${c.toFixed(0).padStart(9)} ${step.padStart(8)} ${h.toFixed(0).padStart(10)}`,
    );
  }
  const lm = median(coldNs.get('lmdb-js getBinary()'));
  const ratioTo = (name) => (lm / median(coldNs.get(name))).toFixed(2);
  console.log('');
  console.log(
    `all keys, lmdb-js getBinary / mapkv: getBinary() ${ratioTo('getBinary()')}x, ` +
      `one line ${ratioTo('one line')}x (3x allows ${(lm / 3).toFixed(0)} ns a read)`,
  );
  root.close();
  l.close();

  // The memory floor, over a heap buffer the size of the hash file.
  const size = pages * 4096;
  const buf = new Uint8Array(size);
  for (let i = 0; i < size; i += 64) buf[i + 7] = (i >>> 6) & 0xff;
  const NP = pages;
  const pick = new Int32Array(READS);
  for (let i = 0; i < READS; i++) pick[i] = Math.floor(next() * NP);
  // Each step reads a line of a random page whose number depends on the step before: `second`
  // adds a second line of the same page, dependent on the first line's byte or not.
  const chain = (second) => () => {
    let x = 0;
    for (let i = 0; i < READS; i++) {
      const p = ((pick[i] + x) % NP) * 4096;
      const y = buf[p + 64 * (i & 7) + 7];
      if (second === 'none') x = y & 1;
      else if (second === 'dependent') x = buf[p + 1024 + 64 * (y & 31) + 7] & 1;
      else x = (y ^ buf[p + 1024 + 64 * (i & 31) + 7]) & 1;
    }
    return x;
  };
  const chains = [
    ['one line per page', chain('none')],
    ['two dependent lines', chain('dependent')],
    ['two independent lines', chain('independent')],
  ];
  console.log('');
  console.log(`memory floor: dependent random reads over ${(size / 2 ** 20).toFixed(0)} MiB`);
  for (const [name, fn] of chains) {
    fn();
    const xs = [];
    for (let round = 0; round < ROUNDS; round++) {
      const t0 = performance.now();
      fn();
      xs.push(((performance.now() - t0) * 1e6) / READS);
    }
    console.log(`${name.padEnd(22)} ${median(xs).toFixed(0).padStart(9)} ns per step`);
  }
}
