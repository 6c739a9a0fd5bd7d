// How the cost of one write grows with the size of its batch or transaction, for the three
// write shapes whose cost once grew with it (a scaling check, not a comparison):
//
//   npm run build:ts && node bench/write-scaling.mjs [--module=path/to/dist/index.js] [--dir=path]
//
//   subdb-txns   N db.transaction() callbacks queued in one event-loop turn (one commit), each
//                writing one key into its own sub-database: every savepoint copied the
//                descriptors of all sub-databases the batch had touched, O(N^2) in all.
//   value-txns   N db.transaction() callbacks of one turn, each putting a new key with a
//                1,500-byte value: each callback's release walked every page the batch had
//                dirtied so far, O(N^2).
//   runs         one transaction of 2,000 puts of 6 KB values (two-page runs) into a file with
//                F free pages: each run sorted and spliced the whole list of free pages, O(F)
//                per value.
//
// Each line prints the cost per operation at 1x, 4x and 16x the size, and the ratio of the
// last to the first: a cost that stays flat is a ratio near 1. `--module` runs another build
// (an older commit's dist/) for a before/after. sync 'none': the disk is not what is measured.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { parseArgs } from './lib.mjs';

const require = createRequire(import.meta.url);
const args = parseArgs(process.argv.slice(2));
const modulePath = path.resolve(
  args.module ?? path.join(path.dirname(fileURLToPath(import.meta.url)), '../dist/index.js'),
);
const { open } = require(modulePath);
const dir = fs.mkdtempSync(path.join(args.dir ?? os.tmpdir(), 'mapkv-write-scaling-'));
let fileNo = 0;
const fresh = () => open(path.join(dir, `f${fileNo++}.mkv`), { sync: 'none' });

async function subdbTxns(n) {
  const db = fresh();
  const subs = [];
  for (let i = 0; i < n; i++) subs.push(db.openDB(`s${i}`));
  const t0 = performance.now();
  await Promise.all(subs.map((s, i) => s.transaction((t) => t.put('k', i))));
  const us = ((performance.now() - t0) * 1000) / n;
  if (subs[n - 1].get('k') !== n - 1) throw new Error('subdb-txns: last write missing');
  await db.close();
  return us;
}

async function valueTxns(n) {
  const db = fresh();
  const value = 'v'.repeat(1500);
  const t0 = performance.now();
  const pending = [];
  for (let i = 0; i < n; i++) pending.push(db.transaction((t) => t.put(`k${i}`, value)));
  await Promise.all(pending);
  const us = ((performance.now() - t0) * 1000) / n;
  if (db.count() !== n) throw new Error('value-txns: writes missing');
  await db.close();
  return us;
}

async function runs(freePages) {
  const db = fresh();
  // One value the size of the free space wanted, removed: its pages become free.
  db.putSync('big', Buffer.alloc(freePages * 4096 - 4096));
  db.removeSync('big');
  db.putSync('x', 1);
  db.putSync('x', 2);
  const value = Buffer.alloc(6000, 7);
  const t0 = performance.now();
  db.transactionSync((t) => {
    for (let i = 0; i < 2000; i++) t.put(`k${i}`, value);
  });
  const us = ((performance.now() - t0) * 1000) / 2000;
  await db.close();
  return us;
}

const cases = [
  ['subdb-txns', subdbTxns, [500, 2000, 8000], 'transactions'],
  ['value-txns', valueTxns, [3000, 12000, 48000], 'transactions'],
  ['runs', runs, [4096, 16384, 65536], 'free pages'],
];
try {
  console.log(`node ${process.version}; module ${modulePath}`);
  for (const [name, fn, sizes, unit] of cases) {
    const costs = [];
    for (const size of sizes) costs.push(await fn(size));
    const cells = sizes.map((s, i) => `${s} ${unit}: ${costs[i].toFixed(1)} us/op`).join(', ');
    const ratio = costs[costs.length - 1] / costs[0];
    console.log(`${name.padEnd(11)} ${cells}; 16x the size: ${ratio.toFixed(2)}x the cost per op`);
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
