// Two builds of mapkv, one file, one process: random hash point reads of each, in turn, to
// measure what a change to the read path is worth when the machine's speed drifts more from
// one run to the next than the change moves it.
//
//   node --expose-gc bench/hash-ab.mjs <buildA> <buildB> [--op=getBinary|get|has]
//     [--n=1000000] [--reads=500000] [--rounds=11] [--writer=A|B] [--dir=path]
//
// A build is a folder holding a built mapkv (dist/, build/Release/, package.json): a copy of a
// checkout after `npm install`, for instance `git worktree add /tmp/old <commit>` then, in it,
// `npm install` (or a symlink to this node_modules and a copy of build/Release, then
// `npx tsc -p tsconfig.build.json`). The `--writer` build loads the benchmark's keys and values
// (bench/lib.mjs) into a hash sub-database; each build then opens the file with its own
// handle and reads the same random keys, A and B alternating in each round (which goes first
// alternates too). It prints each build's median ns per read and the median over rounds of
// B's time / A's: below 1, B is faster.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import { keyOf, median, parseArgs, prng, valueOf } from './lib.mjs';

const require = createRequire(import.meta.url);
const argv = process.argv.slice(2);
const builds = argv.filter((a) => !a.startsWith('--'));
const args = parseArgs(argv.filter((a) => a.startsWith('--')));
if (builds.length !== 2) {
  console.error('usage: node --expose-gc bench/hash-ab.mjs <buildA> <buildB> [options]');
  process.exit(2);
}
const N = Number(args.n ?? 1_000_000);
const READS = Number(args.reads ?? 500_000);
const ROUNDS = Number(args.rounds ?? 11);
const OP = String(args.op ?? 'getBinary');
const WRITER = args.writer === 'B' ? 1 : 0;
const mods = builds.map((b) => require(path.resolve(b, 'dist/index.js')));

const dir = fs.mkdtempSync(path.join(args.dir ?? os.tmpdir(), 'mapkv-hash-ab-'));
try {
  run();
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}

function run() {
  const file = path.join(dir, 'hash.mkv');
  const keys = Array.from({ length: N }, (_, i) => keyOf(i));
  const opts = { msgpack: { useRecords: false } };
  {
    const root = mods[WRITER].open(file, opts);
    const db = root.openDB('bench', { kind: 'hash', keyEncoding: 'string' });
    db.transactionSync((txn) => {
      for (let i = 0; i < N; i++) txn.put(keys[i], valueOf(i));
    });
    root.close();
  }
  const handles = mods.map((m) => m.open(file, opts));
  const dbs = handles.map((root) => root.openDB('bench', { kind: 'hash', keyEncoding: 'string' }));
  const next = prng(42);
  const seq = Array.from({ length: 2 * READS }, () => keys[Math.floor(next() * N)]);
  const fns = dbs.map((db) =>
    OP === 'get'
      ? (k) => db.get(k).n & 1
      : OP === 'has'
        ? (k) => (db.has(k) ? 1 : 0)
        : (k) => db.getBinary(k).length,
  );
  const time = (fn, from) => {
    globalThis.gc?.();
    let sum = 0;
    const t0 = performance.now();
    for (let i = from; i < from + READS; i++) sum += fn(seq[i]);
    const ns = ((performance.now() - t0) * 1e6) / READS;
    if (sum < 0) throw new Error('unreachable');
    return ns;
  };
  for (const fn of fns) time(fn, 0); // warm-up: JIT, page tables, flat directories
  const a = [];
  const b = [];
  const ratio = [];
  for (let round = 0; round < ROUNDS; round++) {
    const first = round & 1;
    const from = (round & 1) * READS;
    const t = [0, 0];
    t[first] = time(fns[first], from);
    t[1 - first] = time(fns[1 - first], from);
    a.push(t[0]);
    b.push(t[1]);
    ratio.push(t[1] / t[0]);
  }
  for (const root of handles) root.close();
  console.log(
    `${OP}, ${N.toLocaleString('en-US')} keys, ${ROUNDS} rounds of ` +
      `${READS.toLocaleString('en-US')} reads; file written by ${WRITER === 0 ? 'A' : 'B'}`,
  );
  console.log(`A ${builds[0]}: ${median(a).toFixed(0)} ns per read`);
  console.log(`B ${builds[1]}: ${median(b).toFixed(0)} ns per read`);
  console.log(`B / A time: ${median(ratio).toFixed(3)} (median over rounds)`);
}
