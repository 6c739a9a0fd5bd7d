// Point-read benchmark of mapkv's hash sub-database against a mapkv B+tree and lmdb-js.
//
//   npm run build:ts && node --expose-gc bench/hash.mjs [--quick] [--rounds=7] [--chunk=N]
//     [--gets=N] [--hot=K] [--batched=N] [--batch-rounds=3] [--dir=path]
//
// Loads the benchmark data set (keys 'key' + 8 zero-padded digits, values
// { name: 'value', n: i, tags: ['a', 'b'] }) into
//   (a) a mapkv hash sub-database (openDB('bench', { kind: 'hash' })),
//   (b) a mapkv B+tree database (the unnamed database of another file),
//   (c) lmdb-js (compression off, msgpack without records),
// and, for reference, (d) a mapkv hash sub-database of valueEncoding 'binary' holding exactly
// lmdb-js's bytes (msgpackr.pack with useRecords: false), decoded by packr.unpack(getBinary(k)),
// then times random point reads, raw (getBinary: the stored bytes, a copy the caller owns) and
// decoded (get), in the same process: a warm-up pass, then `--rounds` rounds of `--chunk` gets
// per store and kind, the stores' order rotating each round. It reports each store's median
// ops/s, and its ratio to lmdb-js as the median over rounds of the two stores' ratio within
// that round: stores measured seconds apart on a shared machine see the same neighbours, so
// the ratio of one round is steadier than the ratio of two medians.
//
// Last, writes: `--batch-rounds` rounds of `--batched` async puts (db.put) of random keys of
// the set, 1,000 per event-loop turn as bench/run.mjs's batched workload, into (a), (b) and
// (c), the order rotating each round, reported the same way.
//
// mapkv is loaded from ../dist/index.js (build it first). Every store holds msgpackr bytes
// without records (mapkv's open option `msgpack: { useRecords: false }`); (d) reads lmdb-js's
// exact bytes through getBinary and decodes them in JS. Random keys come from a seeded PRNG: every store reads the
// same keys.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { Packr } from 'msgpackr';
import { parseArgs } from './lib.mjs';

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));
const mapkv = require(path.join(here, '../dist/index.js'));
const lmdb = require('lmdb');

const args = parseArgs(process.argv.slice(2));
const quick = args.quick === true;
const N = Number(args.n ?? (quick ? 100_000 : 1_000_000));
const GETS = Number(args.gets ?? (quick ? 450_000 : 2_000_000));
const ROUNDS = Number(args.rounds ?? 7);
const HOT = Math.min(N, Number(args.hot ?? N));
const CHUNK = Math.min(GETS, Number(args.chunk ?? (quick ? 100_000 : 500_000)));
const BATCHED = Number(args.batched ?? (quick ? 20_000 : 100_000));
const BATCH_ROUNDS = Number(args['batch-rounds'] ?? 3);
const BATCH_TURN = 1_000;
const base = args.dir ?? os.tmpdir();

const packr = new Packr({ useRecords: false });
const keyOf = (i) => 'key' + String(i).padStart(8, '0');
const valueOf = (i) => ({ name: 'value', n: i, tags: ['a', 'b'] });

/** mulberry32: seeded, so every store reads the same sequence of keys. */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (x) => Math.round(x).toLocaleString('en-US');

async function main() {
  const dir = fs.mkdtempSync(path.join(base, 'mapkv-bench-hash-'));
  try {
    await run(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function run(dir) {
  console.log(
    `node ${process.version}, ${os.cpus()[0]?.model ?? 'cpu'}; N = ${fmt(N)} keys` +
      (HOT < N ? ` (reads of ${fmt(HOT)} of them)` : '') +
      '; ' +
      `${ROUNDS} rounds of ${fmt(CHUNK)} random gets per store and kind, after a warm-up`,
  );
  const keys = new Array(N);
  for (let i = 0; i < N; i++) keys[i] = keyOf(i);
  const next = prng(42);
  const order = new Array(GETS);
  // --hot=K: reads only K keys spread over the whole set (cache-resident reads).
  const stride = Math.floor(N / HOT);
  for (let i = 0; i < GETS; i++) order[i] = keys[Math.floor(next() * HOT) * stride];

  const stores = [
    openHash(dir, keys),
    openTree(dir, keys),
    openLmdb(dir, keys),
    openHashPlain(dir, keys),
  ];
  for (const s of stores) {
    const bytes = s.getRaw(keys[7]).length;
    console.log(
      `${s.name.padEnd(11)} load ${fmt(s.loadOps)} puts/s; stored value ${bytes} bytes` +
        (s.note ? `; ${s.note}` : ''),
    );
  }
  // Each store must read back what was written.
  for (const s of stores) {
    for (const i of [0, 1, N >> 1, N - 1]) {
      const v = s.get(keys[i]);
      if (v?.n !== i || v.name !== 'value') throw new Error(`${s.name} read ${keys[i]} wrong`);
    }
    if (s.get('missing') !== undefined) throw new Error(`${s.name} found a missing key`);
  }

  const results = new Map(stores.map((s) => [s.name, { raw: [], decoded: [] }]));
  for (const s of stores) {
    timeRaw(s, order, 0, GETS >> 2);
    timeDecoded(s, order, 0, GETS >> 2);
  }
  // Each measurement reads the next slice of the key sequence: keys read by the measurement
  // just before would still be in the CPU caches, which helps most the store that touches the
  // most cache lines per read.
  let from = 0;
  const nextSlice = () => {
    from = from + 2 * CHUNK > GETS ? 0 : from + CHUNK;
    return from;
  };
  for (let round = 0; round < ROUNDS; round++) {
    for (let j = 0; j < stores.length; j++) {
      const s = stores[(j + round) % stores.length];
      globalThis.gc?.();
      results.get(s.name).raw.push(timeRaw(s, order, nextSlice(), CHUNK));
      globalThis.gc?.();
      results.get(s.name).decoded.push(timeDecoded(s, order, nextSlice(), CHUNK));
    }
  }

  console.log('');
  console.log('store        getBinary ops/s    get ops/s   (median; spread of the rounds)');
  const med = {};
  for (const s of stores) {
    const r = results.get(s.name);
    med[s.name] = { raw: median(r.raw), decoded: median(r.decoded) };
    const spread = (xs) => `${fmt(Math.min(...xs))}-${fmt(Math.max(...xs))}`;
    console.log(
      `${s.name.padEnd(11)} ${fmt(med[s.name].raw).padStart(13)} ${fmt(med[s.name].decoded).padStart(12)}` +
        `   raw ${spread(r.raw)}, decoded ${spread(r.decoded)}`,
    );
  }
  /** Median over rounds of a's ops/s divided by b's in the same round. */
  const ratio = (a, b, kind) => {
    const x = results.get(a)[kind];
    const y = results.get(b)[kind];
    return median(x.map((v, i) => v / y[i])).toFixed(2);
  };
  console.log('');
  console.log("ratios: median over rounds of the two stores' ratio within a round");
  console.log(
    `mapkv hash / lmdb-js:     getBinary ${ratio('mapkv-hash', 'lmdb', 'raw')}x (target >= 3x), ` +
      `get ${ratio('mapkv-hash', 'lmdb', 'decoded')}x (target >= 2x)`,
  );
  console.log(
    `mapkv hash / mapkv btree: getBinary ${ratio('mapkv-hash', 'mapkv-btree', 'raw')}x, ` +
      `get ${ratio('mapkv-hash', 'mapkv-btree', 'decoded')}x`,
  );
  console.log(
    `hash-plain / lmdb-js:     getBinary ${ratio('hash-plain', 'lmdb', 'raw')}x, ` +
      `get (packr.unpack of the same bytes) ${ratio('hash-plain', 'lmdb', 'decoded')}x`,
  );

  // Writes: batched async puts of random keys.
  const writers = stores.filter((s) => s.put !== undefined);
  const puts = new Map(writers.map((s) => [s.name, []]));
  const pick = prng(7);
  for (let round = 0; round < BATCH_ROUNDS; round++) {
    const idx = Array.from({ length: BATCHED }, () => Math.floor(pick() * N));
    for (let j = 0; j < writers.length; j++) {
      const s = writers[(j + round) % writers.length];
      globalThis.gc?.();
      puts.get(s.name).push(await timeBatched(s, keys, idx, N + round * BATCHED));
    }
  }
  console.log('');
  console.log(
    `store        async puts/s   (${fmt(BATCHED)} random keys, ${fmt(BATCH_TURN)} a turn; ` +
      `median of ${BATCH_ROUNDS} rounds; spread)`,
  );
  for (const s of writers) {
    const xs = puts.get(s.name);
    console.log(
      `${s.name.padEnd(11)} ${fmt(median(xs)).padStart(13)}   ${fmt(Math.min(...xs))}-${fmt(Math.max(...xs))}`,
    );
  }
  const putRatio = (a, b) => median(puts.get(a).map((v, i) => v / puts.get(b)[i])).toFixed(2);
  console.log(
    `batched puts: mapkv hash / lmdb-js ${putRatio('mapkv-hash', 'lmdb')}x, ` +
      `mapkv btree / lmdb-js ${putRatio('mapkv-btree', 'lmdb')}x, ` +
      `mapkv hash / mapkv btree ${putRatio('mapkv-hash', 'mapkv-btree')}x`,
  );
  for (const s of stores) await s.close();
}

/** Async puts of keys[idx[i]], BATCH_TURN per event-loop turn; ops/s once all are done. */
async function timeBatched(s, keys, idx, base) {
  const put = s.put;
  const pending = new Array(idx.length);
  const t0 = performance.now();
  for (let i = 0; i < idx.length; i++) {
    pending[i] = put(keys[idx[i]], valueOf(base + i));
    if (i % BATCH_TURN === BATCH_TURN - 1) await new Promise((r) => setImmediate(r));
  }
  await Promise.all(pending);
  const ms = performance.now() - t0;
  const last = idx.length - 1;
  if (s.get(keys[idx[last]])?.n !== base + last) throw new Error(`${s.name}: last put not read`);
  return (idx.length / ms) * 1000;
}

function timeRaw(s, order, from, count) {
  const getRaw = s.getRaw;
  const end = from + count;
  let sum = 0;
  const t0 = performance.now();
  for (let i = from; i < end; i++) sum += getRaw(order[i]).length;
  const ms = performance.now() - t0;
  if (sum < count) throw new Error(`${s.name}: short reads`);
  return (count / ms) * 1000;
}

function timeDecoded(s, order, from, count) {
  const get = s.get;
  const end = from + count;
  let sum = 0;
  const t0 = performance.now();
  for (let i = from; i < end; i++) sum += get(order[i]).tags.length;
  const ms = performance.now() - t0;
  if (sum !== 2 * count) throw new Error(`${s.name}: wrong values`);
  return (count / ms) * 1000;
}

function load(keys, putAll) {
  const t0 = performance.now();
  putAll();
  return (keys.length / (performance.now() - t0)) * 1000;
}

function openHash(dir, keys) {
  // msgpack without records, as every store of the benchmark (bench/README.md).
  const root = mapkv.open(path.join(dir, 'hash.mkv'), {
    sync: 'full',
    msgpack: { useRecords: false },
  });
  const db = root.openDB('bench', {
    kind: 'hash',
    keyEncoding: 'string',
    valueEncoding: 'msgpack',
  });
  const loadOps = load(keys, () =>
    db.transactionSync((txn) => {
      for (let i = 0; i < keys.length; i++) txn.put(keys[i], valueOf(i));
    }),
  );
  const check = root.check();
  if (!check.ok) throw new Error(`hash db check failed: ${check.problems.slice(0, 3).join('; ')}`);
  return {
    name: 'mapkv-hash',
    loadOps,
    note: `file ${fmt(root.stats().pages)} pages`,
    getRaw: (k) => db.getBinary(k),
    get: (k) => db.get(k),
    put: (k, v) => db.put(k, v),
    close: () => root.close(),
  };
}

function openHashPlain(dir, keys) {
  const root = mapkv.open(path.join(dir, 'plain.mkv'), { sync: 'full' });
  const db = root.openDB('bench', { kind: 'hash', keyEncoding: 'string', valueEncoding: 'binary' });
  const loadOps = load(keys, () =>
    db.transactionSync((txn) => {
      for (let i = 0; i < keys.length; i++) txn.put(keys[i], packr.pack(valueOf(i)));
    }),
  );
  return {
    name: 'hash-plain',
    loadOps,
    note: "valueEncoding 'binary' with packr.pack bytes; get = packr.unpack(getBinary(k))",
    getRaw: (k) => db.getBinary(k),
    get: (k) => {
      const b = db.getBinary(k);
      return b === undefined ? undefined : packr.unpack(b);
    },
    close: () => root.close(),
  };
}

function openTree(dir, keys) {
  const db = mapkv.open(path.join(dir, 'tree.mkv'), {
    msgpack: { useRecords: false },
    sync: 'full',
    keyEncoding: 'string',
    valueEncoding: 'msgpack',
  });
  const loadOps = load(keys, () =>
    db.transactionSync((txn) => {
      for (let i = 0; i < keys.length; i++) txn.put(keys[i], valueOf(i));
    }),
  );
  return {
    name: 'mapkv-btree',
    loadOps,
    note: `file ${fmt(db.stats().pages)} pages`,
    getRaw: (k) => db.getBinary(k),
    get: (k) => db.get(k),
    put: (k, v) => db.put(k, v),
    close: () => db.close(),
  };
}

function openLmdb(dir, keys) {
  const db = lmdb.open({
    path: path.join(dir, 'lmdb'),
    compression: false,
    encoding: 'msgpack',
    encoder: { useRecords: false },
    overlappingSync: false,
  });
  const loadOps = load(keys, () =>
    db.transactionSync(() => {
      for (let i = 0; i < keys.length; i++) db.put(keys[i], valueOf(i));
    }),
  );
  const same = Buffer.compare(db.getBinary(keys[3]), packr.pack(valueOf(3))) === 0;
  return {
    name: 'lmdb',
    loadOps,
    note: same ? 'bytes = packr.pack (useRecords: false)' : 'bytes differ from packr.pack',
    getRaw: (k) => db.getBinary(k),
    get: (k) => db.get(k),
    put: (k, v) => db.put(k, v),
    close: () => db.close(),
  };
}

await main();
