// Measures (does not assert) the cost of `verifyChecksums: true` on random point reads and on
// a full range scan. Not a test: run it by hand, after `npx tsc -p tsconfig.build.json`:
//
//   node test/crash/verify-cost.mjs [entries=100000] [gets=500000] [valueBytes=100]
//
// It fills one file, then for each setting opens it, warms up, and times `gets` random
// `get`s (keys drawn from a fixed seeded sequence, the same for both settings) and one full
// scan, alternating the settings over several rounds and reporting the median.
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

const require = createRequire(import.meta.url);
const { open } = require('../../dist/index.js');

const [entries = 100_000, gets = 500_000, valueBytes = 100] = process.argv.slice(2).map(Number);
const ROUNDS = 5;

function mulberry32(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const dir = mkdtempSync(join(tmpdir(), 'mapkv-verify-cost-'));
const file = join(dir, 'db.mkv');
try {
  const key = (i) => `key${String(i).padStart(8, '0')}`;
  {
    const db = open(file, { sync: 'none' });
    const pad = 'v'.repeat(Math.max(0, valueBytes - 20));
    for (let start = 0; start < entries; start += 10_000) {
      db.transactionSync((txn) => {
        for (let i = start; i < Math.min(entries, start + 10_000); i++) txn.put(key(i), { i, pad });
      });
    }
    await db.close();
  }
  const r = mulberry32(42);
  const order = Array.from({ length: gets }, () => key(Math.floor(r() * entries)));

  const timeGets = (db) => {
    let found = 0;
    const t0 = performance.now();
    for (const k of order) if (db.get(k) !== undefined) found++;
    const ms = performance.now() - t0;
    if (found !== gets) throw new Error(`found ${found} of ${gets}`);
    return (ms * 1e6) / gets;
  };
  const timeScan = (db) => {
    let n = 0;
    const t0 = performance.now();
    for (const _ of db.range()) n++;
    const ms = performance.now() - t0;
    if (n !== entries) throw new Error(`scanned ${n} of ${entries}`);
    return ms;
  };

  const results = { false: { get: [], scan: [] }, true: { get: [], scan: [] } };
  for (let round = 0; round < ROUNDS; round++) {
    for (const verify of round % 2 === 0 ? [false, true] : [true, false]) {
      const db = open(file, { readOnly: true, verifyChecksums: verify });
      timeGets(db); // warm-up: page cache, JIT
      results[verify].get.push(timeGets(db));
      results[verify].scan.push(timeScan(db));
      await db.close();
    }
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
  const off = { get: median(results.false.get), scan: median(results.false.scan) };
  const on = { get: median(results.true.get), scan: median(results.true.scan) };
  const stats = open(file, { readOnly: true });
  const s = stats.stats();
  await stats.close();
  console.log(
    `${entries} entries of ~${valueBytes} B, ${s.pageSize}-byte pages, tree depth ${s.depth}, ` +
      `${s.pages} pages; ${gets} random gets; median of ${ROUNDS} rounds`,
  );
  console.log(
    `random get:  verifyChecksums off ${off.get.toFixed(0)} ns, on ${on.get.toFixed(0)} ns ` +
      `(x${(on.get / off.get).toFixed(2)})`,
  );
  console.log(
    `full scan:   verifyChecksums off ${off.scan.toFixed(1)} ms, on ${on.scan.toFixed(1)} ms ` +
      `(x${(on.scan / off.scan).toFixed(2)})`,
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
