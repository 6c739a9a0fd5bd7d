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
// each round, and reports the medians and the median per-round ratios. It also times the load
// of (a) and (b), one transaction each, and last two purges: a sub-database loaded with every
// hundredth, then every other entry put with a 1 ms ttl, and purgeExpiredSync() timed
// (sync 'none').
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
  const loads = [];
  for (const db of [plain, expiring]) {
    const t0 = performance.now();
    db.transactionSync((txn) => {
      for (let i = 0; i < N; i++) txn.put(keys[i], valueOf(i));
    });
    loads.push((N / (performance.now() - t0)) * 1000);
  }
  console.log(
    `load, one transaction: ${fmt(loads[0])} puts/s without ttl, ${fmt(loads[1])} with ` +
      `(${(loads[1] / loads[0]).toFixed(2)}x: each put also updates the expiry index)`,
  );
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

  // Purges: 1% and 50% of the entries expired.
  for (const every of [100, 2]) {
    const p = root.openDB(`purge${every}`, { ...opts, ttl: HOUR });
    p.transactionSync((txn) => {
      for (let i = 0; i < N; i++) txn.put(keys[i], valueOf(i), i % every === 0 ? { ttl: 1 } : {});
    });
    const until = Date.now() + 5;
    while (Date.now() < until); // let the 1 ms entries expire
    const t0 = performance.now();
    const purged = p.purgeExpiredSync();
    const ms = performance.now() - t0;
    const expired = Math.ceil(N / every);
    if (purged !== expired || p.count() !== N - expired) {
      throw new Error(`purge removed ${purged}, left ${p.count()}`);
    }
    console.log(
      `purgeExpiredSync: ${fmt(purged)} of ${fmt(N)} entries expired, ${fmt(ms)} ms ` +
        `(${fmt((purged / ms) * 1000)} expired entries deleted/s)`,
    );
  }
  root.close();
}
