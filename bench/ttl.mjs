// Reads of an expiring (TTL) sub-database against one that does not expire and against
// lmdb-js with the expiry kept in the value by the application, then the cost of a purge.
//
//   npm run build:ts && node --expose-gc bench/ttl.mjs [--quick] [--n=N] [--rounds=7]
//     [--chunk=N] [--dir=path]
//
// Loads the benchmark data set (bench/lib.mjs keys and values) into
//   (a) a mapkv hash sub-database without ttl,
//   (b) a mapkv hash sub-database opened with { ttl: one hour },
//   (c) lmdb-js (compression off, msgpack without records) holding { v: value, exp: deadline },
//       read as a TTL cache on lmdb-js is written: get, then compare exp with Date.now(),
// then times random decoded gets, `--rounds` rounds of `--chunk` per store, the order rotating
// each round, and reports the medians and the median per-round ratios. Last, a purge: the
// expiring database is loaded again with every other entry put with a 1 ms ttl, and
// purgeExpiredSync() times the walk and the removal of the expired half (sync 'none').
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { keyOf, median, parseArgs, prng, valueOf } from './lib.mjs';

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));
const mapkv = require(path.join(here, '../dist/index.js'));
const lmdb = require('lmdb');

const args = parseArgs(process.argv.slice(2));
const quick = args.quick === true;
const N = Number(args.n ?? (quick ? 100_000 : 1_000_000));
const ROUNDS = Number(args.rounds ?? 7);
const CHUNK = Number(args.chunk ?? (quick ? 100_000 : 500_000));
const HOUR = 3_600_000;
const fmt = (x) => Math.round(x).toLocaleString('en-US');

const dir = fs.mkdtempSync(path.join(args.dir ?? os.tmpdir(), 'mapkv-bench-ttl-'));
try {
  run();
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}

function run() {
  console.log(
    `node ${process.version}, ${os.cpus()[0]?.model ?? 'cpu'}; N = ${fmt(N)} keys; ` +
      `${ROUNDS} rounds of ${fmt(CHUNK)} random gets per store`,
  );
  const keys = Array.from({ length: N }, (_, i) => keyOf(i));
  const next = prng(7);
  const order = Array.from({ length: 2 * CHUNK }, () => keys[Math.floor(next() * N)]);

  const root = mapkv.open(path.join(dir, 'ttl.mkv'), {
    sync: 'none',
    msgpack: { useRecords: false },
  });
  const opts = { kind: 'hash', keyEncoding: 'string' };
  const plain = root.openDB('plain', opts);
  const expiring = root.openDB('expiring', { ...opts, ttl: HOUR });
  for (const db of [plain, expiring]) {
    db.transactionSync((txn) => {
      for (let i = 0; i < N; i++) txn.put(keys[i], valueOf(i));
    });
  }
  const l = lmdb.open({
    path: path.join(dir, 'lmdb'),
    compression: false,
    encoder: { useRecords: false },
  });
  const deadline = Date.now() + HOUR;
  l.transactionSync(() => {
    for (let i = 0; i < N; i++) l.put(keys[i], { v: valueOf(i), exp: deadline });
  });
  const lmdbGet = (k) => {
    const e = l.get(k);
    return e !== undefined && e.exp > Date.now() ? e.v : undefined;
  };
  const stores = [
    { name: 'mapkv hash', get: (k) => plain.get(k) },
    { name: 'mapkv ttl', get: (k) => expiring.get(k) },
    { name: 'lmdb + exp', get: lmdbGet },
  ];
  for (const s of stores) {
    if (s.get(keys[3])?.n !== 3) throw new Error(`${s.name} read a wrong value`);
  }

  const time = (s, from) => {
    const get = s.get;
    let sum = 0;
    const t0 = performance.now();
    for (let i = from; i < from + CHUNK; i++) sum += get(order[i]).n & 1;
    const ms = performance.now() - t0;
    if (sum < 0) throw new Error('unreachable');
    return (CHUNK / ms) * 1000;
  };
  for (const s of stores) time(s, 0); // warm-up
  const ops = new Map(stores.map((s) => [s.name, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (let j = 0; j < stores.length; j++) {
      const s = stores[(j + round) % stores.length];
      globalThis.gc?.();
      ops.get(s.name).push(time(s, (round % 2) * CHUNK));
    }
  }
  console.log('');
  console.log('store        get ops/s (median; spread of the rounds)');
  for (const s of stores) {
    const xs = ops.get(s.name);
    console.log(
      `${s.name.padEnd(12)} ${fmt(median(xs)).padStart(10)}   ` +
        `${fmt(Math.min(...xs))}-${fmt(Math.max(...xs))}`,
    );
  }
  const ratio = (a, b) => {
    const x = ops.get(a);
    const y = ops.get(b);
    return median(x.map((v, i) => v / y[i])).toFixed(2);
  };
  console.log('');
  console.log(`mapkv ttl / mapkv hash:  ${ratio('mapkv ttl', 'mapkv hash')}x`);
  console.log(`mapkv ttl / lmdb + exp:  ${ratio('mapkv ttl', 'lmdb + exp')}x`);
  l.close();

  // Purge: half of the entries expired.
  const p = root.openDB('purge', { ...opts, ttl: HOUR });
  p.transactionSync((txn) => {
    for (let i = 0; i < N; i++) txn.put(keys[i], valueOf(i), i % 2 === 0 ? { ttl: 1 } : {});
  });
  const until = Date.now() + 5;
  while (Date.now() < until); // let the 1 ms entries expire
  const t0 = performance.now();
  const purged = p.purgeExpiredSync();
  const ms = performance.now() - t0;
  if (purged !== Math.ceil(N / 2) || p.count() !== Math.floor(N / 2)) {
    throw new Error(`purge removed ${purged}, left ${p.count()}`);
  }
  console.log(
    `purgeExpiredSync: ${fmt(purged)} of ${fmt(N)} entries expired, ` +
      `${fmt(ms)} ms (${fmt((N / ms) * 1000)} entries walked/s)`,
  );
  root.close();
}
