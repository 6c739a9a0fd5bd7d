// What an async commit's trips to the I/O threads cost the event loop: a diagnostic for the
// README's Benchmarks section, not a comparison.
//
//   npm run build:ts && node bench/handoff.mjs [--n=200000] [--commits=300] [--puts=30]
//     [--rounds=5] [--dir=path]
//
// Loads N keys (sync 'full'), then makes rounds of `commits` async commits of `puts` random
// puts each (the puts of a commit issued in one turn and awaited together, so each commit takes
// its pages to an I/O thread with writeAsync and its flush with fdatasyncAsync). For each of
// those two native calls it prints, per call: the time the call took on the event loop's
// thread, and of that how long the thread was runnable but not running (the run-queue delay of
// /proc/self/task/<tid>/schedstat) and its involuntary context switches. Waking a thread should
// cost microseconds; when the woken thread may preempt the event loop on its CPU (libuv's pool
// threads did on this project's 2-vCPU machine, which is shown no cache topology; the I/O
// threads of native/iothreads.cc run under SCHED_BATCH, which never does), the event loop
// waits while that thread writes. Also printed: the event loop's busy time per commit
// (performance.eventLoopUtilization).
//
// Linux only (it reads /proc). The reads of /proc around each call add their own few
// microseconds to the call times; the run-queue delay and the switches are the kernel's own.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { keyOf, median, parseArgs, prng, valueOf } from './lib.mjs';

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));
const opts = parseArgs(process.argv.slice(2));
const N = Number(opts.n ?? 200_000);
const COMMITS = Number(opts.commits ?? 300);
const PUTS = Number(opts.puts ?? 30);
const ROUNDS = Number(opts.rounds ?? 5);

if (process.platform !== 'linux') {
  console.log('bench/handoff.mjs reads /proc: Linux only');
  process.exit(0);
}

const mapkv = require(path.join(here, '../dist/index.js'));
const { native } = require(path.join(here, '../dist/storage/native.js'));

const task = `/proc/self/task/${process.pid}`;
/** [ns on CPU, ns runnable but waiting, involuntary context switches] of this thread. */
function threadClock() {
  const [run, wait] = fs.readFileSync(`${task}/schedstat`, 'utf8').split(' ').map(Number);
  const status = fs.readFileSync(`${task}/status`, 'utf8');
  const invol = Number(/nonvoluntary_ctxt_switches:\s+(\d+)/.exec(status)[1]);
  return [run, wait, invol];
}

/** Wraps native[name] to add each call's wall time, run-queue delay and switches to `tally`. */
function watch(name, tally) {
  const original = native[name];
  native[name] = function (...args) {
    const before = threadClock();
    const t0 = performance.now();
    try {
      return original.apply(this, args);
    } finally {
      const ms = performance.now() - t0;
      const after = threadClock();
      tally.calls++;
      tally.us += ms * 1000;
      tally.waitUs += (after[1] - before[1]) / 1000;
      tally.switches += after[2] - before[2];
    }
  };
  return () => {
    native[name] = original;
  };
}

const dir = fs.mkdtempSync(path.join(opts.dir ?? os.tmpdir(), 'mapkv-handoff-'));
const db = mapkv.open(path.join(dir, 'h.mkv'), {
  sync: 'full',
  keyEncoding: 'string',
  msgpack: { useRecords: false },
});
const keys = Array.from({ length: N }, (_, i) => keyOf(i));
db.transactionSync((txn) => {
  for (let i = 0; i < N; i++) txn.put(keys[i], valueOf(i));
});

const next = prng(7);
async function round() {
  for (let c = 0; c < COMMITS; c++) {
    const puts = [];
    for (let j = 0; j < PUTS; j++) puts.push(db.put(keys[Math.floor(next() * N)], valueOf(c)));
    await Promise.all(puts);
  }
}

await round(); // warm-up
const rows = { writeAsync: [], fdatasyncAsync: [], busy: [] };
for (let r = 0; r < ROUNDS; r++) {
  const tallies = {};
  const restore = [];
  for (const name of ['writeAsync', 'fdatasyncAsync']) {
    tallies[name] = { calls: 0, us: 0, waitUs: 0, switches: 0 };
    restore.push(watch(name, tallies[name]));
  }
  const elu = performance.eventLoopUtilization();
  await round();
  const busy = performance.eventLoopUtilization(elu);
  for (const undo of restore) undo();
  rows.busy.push((busy.active * 1000) / COMMITS);
  for (const name of ['writeAsync', 'fdatasyncAsync']) rows[name].push(tallies[name]);
}
await db.close();
fs.rmSync(dir, { recursive: true, force: true });

const f = (x) => x.toFixed(x < 10 ? 2 : 0);
console.log(
  `${ROUNDS} rounds of ${COMMITS} async commits of ${PUTS} random puts (N = ${N}, sync 'full'); ` +
    'per call, medians of the rounds:',
);
for (const name of ['writeAsync', 'fdatasyncAsync']) {
  const t = rows[name];
  const per = (pick) => median(t.map((x) => (x.calls ? pick(x) / x.calls : 0)));
  console.log(
    `  ${name.padEnd(15)} ${f(median(t.map((x) => x.calls)))} calls/round, ` +
      `${f(per((x) => x.us))} us on the event loop, of which ${f(per((x) => x.waitUs))} us ` +
      `waiting to run; ${f(per((x) => x.switches))} involuntary switches`,
  );
}
console.log(`  event loop busy ${f(median(rows.busy))} us per commit`);
