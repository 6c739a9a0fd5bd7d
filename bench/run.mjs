// mapkv benchmark harness: mapkv side by side with lmdb-js, better-sqlite3 and classic-level.
//
//   node --expose-gc bench/run.mjs [--quick] [--only=getDecoded,scan,...] [--stores=mapkv,lmdb,...]
//        [--out=bench/results/latest.json] [--rounds=3] [--n=1000000] [--dir=/path/for/temp/dbs]
//        [--baseline=mapkv]
//
// See bench/README.md for the workloads and the fairness rules.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { STORE_NAMES, loadStore } from './stores/index.mjs';
import {
  dirSize,
  fdatasyncProbe,
  fsTypeOf,
  gc,
  keyOf,
  makeTempDir,
  median,
  nextTurn,
  packr,
  parseArgs,
  randomIndexes,
  prng,
  removeDir,
  sameBytes,
  valueOf,
} from './lib.mjs';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

const WORKLOADS = [
  { id: 'getDecoded', unit: 'ops/s', higherIsBetter: true },
  { id: 'getRaw', unit: 'ops/s', higherIsBetter: true },
  { id: 'scan', unit: 'entries/s', higherIsBetter: true },
  { id: 'range100', unit: 'ranges/s', higherIsBetter: true },
  { id: 'bulkLoad', unit: 'entries/s', higherIsBetter: true },
  { id: 'putBatched', unit: 'ops/s', higherIsBetter: true },
  { id: 'putDurable', unit: 'commits/s', higherIsBetter: true },
  { id: 'mixed', unit: 'ops/s', higherIsBetter: true },
  { id: 'fileSize', unit: 'bytes', higherIsBetter: false },
  { id: 'peakRss', unit: 'bytes', higherIsBetter: false },
  { id: 'coldOpen', unit: 'ms', higherIsBetter: false },
];
const WORKLOAD_IDS = WORKLOADS.map((w) => w.id);

const args = parseArgs(process.argv.slice(2));
const quick = Boolean(args.quick);
const cfg = quick
  ? { n: 50_000, gets: 100_000, ranges: 5_000, mixed: 50_000, batched: 10_000, durable: 200 }
  : {
      n: 1_000_000,
      gets: 500_000,
      ranges: 20_000,
      mixed: 200_000,
      batched: 100_000,
      durable: 2_000,
    };
if (args.n) cfg.n = Number(args.n);
cfg.rounds = args.rounds ? Number(args.rounds) : 3;
cfg.batchChunk = 1_000; // async puts issued per event-loop turn in putBatched
cfg.mixedChunk = 100; // operations per event-loop turn in mixed
cfg.rangeLimit = 100;
const WARMUP_SCALE = 0.25; // the warm-up round runs a quarter of the operations (and the full load)

const only = args.only ? String(args.only).split(',') : WORKLOAD_IDS;
for (const id of only) {
  if (!WORKLOAD_IDS.includes(id) && id !== 'hash') {
    console.error(`unknown workload '${id}'; known: ${WORKLOAD_IDS.join(', ')}`);
    process.exit(2);
  }
}
const storeNames = args.stores ? String(args.stores).split(',') : STORE_NAMES;
const baselineName = args.baseline ? String(args.baseline) : 'mapkv';
const outFile = path.resolve(
  args.out ? String(args.out) : path.join(BENCH_DIR, 'results/latest.json'),
);
const tmpBase = args.dir ? path.resolve(String(args.dir)) : os.tmpdir();
if (!(cfg.n > cfg.rangeLimit) || !(cfg.rounds >= 1)) {
  console.error('--n must be > 100 and --rounds >= 1');
  process.exit(2);
}
const want = (id) => only.includes(id);

// ---------------------------------------------------------------------------------------------
// Stores
// ---------------------------------------------------------------------------------------------

const stores = [];
const skipped = {};
for (const name of storeNames) {
  const loaded = loadStore(name);
  if (loaded.adapter) stores.push({ name, adapter: loaded.adapter, version: loaded.version });
  else {
    skipped[name] = loaded.skipped;
    console.log(`skipping ${name}: ${loaded.skipped}`);
  }
}
if (stores.length === 0) {
  console.error('no store could be loaded');
  process.exit(1);
}

// ---------------------------------------------------------------------------------------------
// Data: one key array and one set of seeded random sequences, shared by every store.
// ---------------------------------------------------------------------------------------------

const N = cfg.n;
const keys = Array.from({ length: N }, (_, i) => keyOf(i));
const keyAt = (i) => keys[i];

function sequences(scale) {
  const c = (x) => Math.max(1, Math.ceil(x * scale));
  const mixedCount = c(cfg.mixed);
  const nextMix = prng(4);
  const mixedIsPut = new Uint8Array(mixedCount);
  for (let i = 0; i < mixedCount; i++) mixedIsPut[i] = nextMix() < 0.05 ? 1 : 0;
  return {
    gets: randomIndexes(1, c(cfg.gets), N),
    ranges: randomIndexes(2, c(cfg.ranges), N),
    mixed: randomIndexes(3, mixedCount, N),
    mixedIsPut,
    batched: randomIndexes(5, c(cfg.batched), N),
    durable: randomIndexes(6, c(cfg.durable), N),
  };
}
const SEQ = { warm: sequences(WARMUP_SCALE), measured: sequences(1) };

// ---------------------------------------------------------------------------------------------
// Workloads. Each returns { ops, check } where check is a string when a result looks wrong.
// ---------------------------------------------------------------------------------------------

function getDecoded(db, seq) {
  let sum = 0;
  let expected = 0;
  let misses = 0;
  const idx = seq.gets;
  for (let i = 0; i < idx.length; i++) {
    const v = db.getDecoded(keys[idx[i]]);
    if (v === undefined) misses++;
    else sum += v.n;
  }
  for (let i = 0; i < idx.length; i++) expected += idx[i];
  return {
    ops: idx.length,
    check: misses || sum !== expected ? `${misses} misses, sum ${sum} != ${expected}` : null,
  };
}

function getRaw(db, seq) {
  let bytes = 0;
  let misses = 0;
  const idx = seq.gets;
  for (let i = 0; i < idx.length; i++) {
    const v = db.getRaw(keys[idx[i]]);
    if (v === undefined) misses++;
    else bytes += v.length;
  }
  return { ops: idx.length, check: misses || !bytes ? `${misses} misses` : null };
}

async function scan(db) {
  let sum = 0;
  let prev = '';
  let unordered = 0;
  const count = await db.scanAll((k, v) => {
    if (k <= prev) unordered++;
    prev = k;
    sum += v.n;
  });
  const expected = (N * (N - 1)) / 2;
  return {
    ops: count,
    check:
      count !== N || sum !== expected || unordered
        ? `count ${count}/${N}, sum ${sum}/${expected}, ${unordered} out of order`
        : null,
  };
}

async function range100(db, seq, asyncIteration) {
  let sum = 0;
  let got = 0;
  let expected = 0;
  const cb = (_k, v) => {
    sum += v.n;
  };
  const idx = seq.ranges;
  if (asyncIteration) {
    for (let i = 0; i < idx.length; i++)
      got += await db.rangeFrom(keys[idx[i]], cfg.rangeLimit, cb);
  } else {
    for (let i = 0; i < idx.length; i++) got += db.rangeFrom(keys[idx[i]], cfg.rangeLimit, cb);
  }
  // Values are still the loaded ones (writes run later), so value n of key i is i.
  let expectedSum = 0;
  for (let i = 0; i < idx.length; i++) {
    const count = Math.min(cfg.rangeLimit, N - idx[i]);
    expected += count;
    expectedSum += count * idx[i] + (count * (count - 1)) / 2;
  }
  return {
    ops: idx.length,
    check:
      got !== expected || sum !== expectedSum
        ? `${got} entries (expected ${expected}), sum ${sum} (expected ${expectedSum})`
        : null,
  };
}

async function putBatched(db, seq) {
  const idx = seq.batched;
  const pending = new Array(idx.length);
  for (let i = 0; i < idx.length; i++) {
    pending[i] = db.putBatched(keys[idx[i]], valueOf(N + i));
    if (i % cfg.batchChunk === cfg.batchChunk - 1) await nextTurn();
  }
  await Promise.all(pending);
  const last = idx.length - 1;
  const v = db.getDecoded(keys[idx[last]]);
  return { ops: idx.length, check: v?.n === N + last ? null : 'last batched put not visible' };
}

async function putDurable(db, seq) {
  const idx = seq.durable;
  for (let i = 0; i < idx.length; i++) {
    const r = db.putDurable(keys[idx[i]], valueOf(2 * N + i));
    if (r !== undefined) await r;
  }
  const last = idx.length - 1;
  const v = db.getDecoded(keys[idx[last]]);
  return { ops: idx.length, check: v?.n === 2 * N + last ? null : 'last durable put not visible' };
}

async function mixed(db, seq) {
  const idx = seq.mixed;
  const isPut = seq.mixedIsPut;
  const pending = [];
  let misses = 0;
  for (let i = 0; i < idx.length; i++) {
    if (isPut[i]) pending.push(db.putBatched(keys[idx[i]], valueOf(3 * N + i)));
    else if (db.getDecoded(keys[idx[i]]) === undefined) misses++;
    if (i % cfg.mixedChunk === cfg.mixedChunk - 1) await nextTurn();
  }
  await Promise.all(pending);
  return { ops: idx.length, check: misses ? `${misses} misses` : null };
}

// ---------------------------------------------------------------------------------------------
// Child processes: cold open and peak RSS
// ---------------------------------------------------------------------------------------------

function runChild(script, childArgs) {
  const r = spawnSync(process.execPath, [path.join(BENCH_DIR, script), ...childArgs], {
    encoding: 'utf8',
    timeout: 15 * 60_000,
  });
  const line = (r.stdout || '').trim().split('\n').pop() || '';
  let parsed;
  try {
    parsed = JSON.parse(line);
  } catch {
    parsed = { error: `${script} exited ${r.status}: ${(r.stderr || line).trim().slice(0, 300)}` };
  }
  if (r.status !== 0 && !parsed.error) parsed.error = `${script} exited ${r.status}`;
  return parsed;
}

// ---------------------------------------------------------------------------------------------
// Rounds
// ---------------------------------------------------------------------------------------------

const results = {}; // workload -> store -> { runs: [], unit }
const errors = {}; // store -> [messages]
const broken = new Set(); // stores that failed to open/load: skipped for the rest of the run
const versions = {};
const encodingMatches = {};
const rssBaseline = {}; // store -> maxRSS of the child right after imports (Node + driver), bytes

function record(workload, store, value) {
  const w = WORKLOADS.find((x) => x.id === workload);
  results[workload] ??= {};
  results[workload][store] ??= { median: null, runs: [], unit: w.unit };
  results[workload][store].runs.push(value);
}

function fail(store, what, err) {
  const msg = `${what}: ${String(err?.message ?? err).split('\n')[0]}`;
  (errors[store] ??= []).push(msg);
  console.log(`  ! ${store} ${msg}`);
}

async function timed(fn) {
  gc();
  const t0 = performance.now();
  const out = await fn();
  return { ...out, ms: performance.now() - t0 };
}

async function storeRound(store, measured) {
  const { name, adapter } = store;
  const seq = measured ? SEQ.measured : SEQ.warm;
  const dir = makeTempDir(name, tmpBase);
  const line = [];
  const note = (id, text) => line.push(`${id} ${text}`);
  let db;
  try {
    // Bulk load into a fresh store.
    try {
      db = adapter.create();
      await db.open(dir);
      const r = await timed(async () => {
        await db.bulkLoad(N, keyAt, valueOf);
        return { ops: N };
      });
      if (measured && want('bulkLoad')) record('bulkLoad', name, (N / r.ms) * 1000);
      note('load', `${(r.ms / 1000).toFixed(2)}s`);
      // Same bytes for every store? (Informational: a mismatch is reported, not fatal.)
      if (!(name in encodingMatches)) {
        const probe = [0, 1, 127, 128, 255, 256, 65535, 65536, N - 1].filter((i) => i < N);
        encodingMatches[name] = probe.every((i) =>
          sameBytes(db.getRaw(keys[i]), packr.pack(valueOf(i))),
        );
      }
      await db.close();
      db = undefined;
    } catch (err) {
      fail(name, 'open/bulk load', err);
      broken.add(name);
      return;
    }
    gc();
    const size = dirSize(dir);
    if (measured && want('fileSize')) record('fileSize', name, size);
    note('size', `${(size / 2 ** 20).toFixed(1)}MiB`);

    if (measured && want('coldOpen')) {
      const c = runChild('open-child.mjs', [name, dir, keys[N >> 1]]);
      if (c.error || !c.found) fail(name, 'coldOpen', c.error ?? 'first get found nothing');
      else {
        record('coldOpen', name, c.ms);
        note('open', `${c.ms.toFixed(1)}ms`);
      }
    }

    // Everything else runs on the reopened store (OS page cache warm).
    try {
      db = adapter.create();
      await db.open(dir);
    } catch (err) {
      fail(name, 'reopen', err);
      broken.add(name);
      return;
    }
    const steps = [
      ['getDecoded', () => getDecoded(db, seq)],
      ['getRaw', () => getRaw(db, seq)],
      ['scan', () => scan(db)],
      ['range100', () => range100(db, seq, Boolean(adapter.asyncIteration))],
      ['mixed', () => mixed(db, seq)],
      ['putBatched', () => putBatched(db, seq)],
      ['putDurable', () => putDurable(db, seq)],
    ];
    for (const [id, fn] of steps) {
      if (!want(id)) continue;
      try {
        const r = await timed(fn);
        if (r.check) fail(name, `${id} check`, r.check);
        const opsPerSec = (r.ops / r.ms) * 1000;
        if (measured) record(id, name, opsPerSec);
        note(id, fmtNum(opsPerSec));
      } catch (err) {
        fail(name, id, err);
      }
    }
    await db.close();
    db = undefined;
  } finally {
    if (db) await db.close().catch(() => {});
    removeDir(dir);
    console.log(`  ${name.padEnd(7)} ${line.join(', ')}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Formatting
// ---------------------------------------------------------------------------------------------

function fmtNum(x) {
  if (x == null) return '-';
  if (x >= 1e9) return (x / 1e9).toFixed(2) + 'G';
  if (x >= 1e6) return (x / 1e6).toFixed(2) + 'M';
  if (x >= 1e3) return (x / 1e3).toFixed(1) + 'k';
  return x.toFixed(x < 10 ? 2 : 0);
}

function fmtValue(x, unit) {
  if (x == null) return '-';
  if (unit === 'bytes') {
    if (x >= 2 ** 30) return (x / 2 ** 30).toFixed(2) + ' GiB';
    return (x / 2 ** 20).toFixed(1) + ' MiB';
  }
  if (unit === 'ms') return x.toFixed(1) + ' ms';
  return fmtNum(x) + '/s';
}

function ratio(workload, base, peer) {
  const w = WORKLOADS.find((x) => x.id === workload);
  const r = results[workload];
  const b = r?.[base]?.median;
  const p = r?.[peer]?.median;
  if (!b || !p) return null;
  return w.higherIsBetter ? b / p : p / b;
}

function label(id) {
  const c = cfg;
  return {
    getDecoded: `random get, decoded (${fmtNum(c.gets)})`,
    getRaw: `random get, raw bytes (${fmtNum(c.gets)})`,
    scan: `full ordered scan (${fmtNum(N)})`,
    range100: `range of 100 from random start (${fmtNum(c.ranges)})`,
    bulkLoad: `bulk load, one txn (${fmtNum(N)})`,
    putBatched: `async batched puts (${fmtNum(c.batched)})`,
    putDurable: `durable 1-put commits (${fmtNum(c.durable)})`,
    mixed: `mixed 95% get / 5% put (${fmtNum(c.mixed)})`,
    fileSize: 'file size after load (lower=better)',
    peakRss: 'peak RSS, child (lower=better)',
    coldOpen: 'cold open + 1st get (lower=better)',
  }[id];
}

const NOISY = 0.5; // runs spread (max - min) over more than half the median: marked with '*'

function printTable() {
  const names = stores.map((s) => s.name);
  const base = names.includes(baselineName) ? baselineName : null;
  const peers = base ? names.filter((n) => n !== base) : [];
  const header = ['workload', ...names, ...peers.map((p) => `${base}/${p}`)];
  const rows = [];
  for (const w of WORKLOADS) {
    if (!results[w.id]) continue;
    rows.push([
      label(w.id),
      ...names.map((n) => {
        const r = results[w.id][n];
        if (!r) return '-';
        const noisy = (Math.max(...r.runs) - Math.min(...r.runs)) / r.median > NOISY;
        return fmtValue(r.median, w.unit) + (noisy ? '*' : ' ');
      }),
      ...peers.map((p) => {
        const r = ratio(w.id, base, p);
        return r == null ? '-' : r.toFixed(2) + 'x';
      }),
    ]);
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const fmtRow = (r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i])));
  console.log('');
  console.log(
    `Median of ${cfg.rounds} measured rounds after 1 warm-up; N = ${N.toLocaleString('en-US')} keys.`,
  );
  if (base) {
    console.log(
      `Ratio columns: >1.00x means ${base} is better (throughput: ${base} / peer; ` +
        `size, RSS, open time: peer / ${base}).`,
    );
  } else {
    console.log(`(No ratio columns: baseline store '${baselineName}' did not run.)`);
  }
  console.log(fmtRow(header).join('  '));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(fmtRow(r).join('  '));
  console.log(`* runs spread over more than ${NOISY * 100}% of the median (max - min): noisy`);
}

// ---------------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------------

async function main() {
  const started = performance.now();
  const fsType = fsTypeOf(tmpBase);
  console.log(
    `mapkv bench: ${quick ? 'quick' : 'full'}, N=${N}, rounds=1 warm-up + ${cfg.rounds}, ` +
      `stores=${stores.map((s) => `${s.name}@${s.version}`).join(',')}, tmp=${tmpBase} (${fsType})`,
  );
  if (fsType === 'tmpfs' || fsType === 'ramfs') {
    console.log('WARNING: temp dir is on a RAM filesystem: durable commits do not reach a disk.');
  }
  if (typeof globalThis.gc !== 'function') console.log('note: run with --expose-gc for gc()');
  const fdatasyncMs = { before: fdatasyncProbe(tmpBase), after: null };
  console.log(`disk: 4 KiB write + fdatasync, median ${fdatasyncMs.before.toFixed(3)} ms`);
  for (const s of stores) versions[s.name] = s.version;

  const needStoreRounds = only.some((id) => id !== 'peakRss');
  for (let round = 0; round <= cfg.rounds; round++) {
    const measured = round > 0;
    console.log(measured ? `round ${round}/${cfg.rounds}` : 'warm-up round');
    // Alternate the order: each round starts with the next store.
    const order = stores.map((_, i) => stores[(i + round) % stores.length]);
    for (const store of order) {
      if (broken.has(store.name)) continue;
      if (needStoreRounds) await storeRound(store, measured);
      if (measured && want('peakRss')) {
        const r = runChild('rss-child.mjs', [store.name, String(N), tmpBase]);
        if (r.error) fail(store.name, 'peakRss', r.error);
        else {
          record('peakRss', store.name, r.maxRss);
          (rssBaseline[store.name] ??= []).push(r.baselineRss);
          console.log(`  ${store.name.padEnd(7)} peak RSS ${fmtValue(r.maxRss, 'bytes')}`);
        }
      }
      gc();
    }
  }

  for (const w of Object.values(results)) {
    for (const s of Object.values(w)) s.median = median(s.runs);
  }
  fdatasyncMs.after = fdatasyncProbe(tmpBase);
  printTable();
  console.log(
    `disk: write + fdatasync median ${fdatasyncMs.before.toFixed(3)} ms before the run, ` +
      `${fdatasyncMs.after.toFixed(3)} ms after (durable rows are bound by this; a busy disk ` +
      'makes them vary a lot between rounds: see "runs" in the JSON)',
  );
  for (const [name, ok] of Object.entries(encodingMatches)) {
    if (!ok)
      console.log(`note: ${name} stores value bytes that differ from msgpackr {useRecords:false}`);
  }
  for (const [name, msgs] of Object.entries(errors)) {
    console.log(`errors for ${name}:`);
    for (const m of [...new Set(msgs)]) console.log(`  ${m}`);
  }

  const out = {
    date: new Date().toISOString(),
    node: process.version,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    quick,
    n: N,
    rounds: cfg.rounds,
    baseline: baselineName,
    tmpDir: tmpBase,
    fsType,
    fdatasyncMs,
    ops: {
      gets: cfg.gets,
      ranges: cfg.ranges,
      rangeLimit: cfg.rangeLimit,
      mixed: cfg.mixed,
      batched: cfg.batched,
      batchChunk: cfg.batchChunk,
      mixedChunk: cfg.mixedChunk,
      durable: cfg.durable,
    },
    stores: Object.fromEntries(
      stores.map((s) => [
        s.name,
        {
          version: s.version,
          settings: s.adapter.settings,
          encodingMatches: encodingMatches[s.name] ?? null,
        },
      ]),
    ),
    skipped,
    errors,
    results,
    rssBaseline,
    seconds: Math.round((performance.now() - started) / 100) / 10,
  };
  fs.mkdirSync(path.dirname(outFile), { recursive: true });
  fs.writeFileSync(outFile, JSON.stringify(out, null, 2) + '\n');
  console.log(`\nwrote ${path.relative(process.cwd(), outFile)} (${out.seconds}s)`);
}

await main();

// The hash sub-database's point reads against mapkv's B+tree and lmdb-js (issue: hash index),
// in its own process run so its 1M-key loads do not share this one's heap. Skipped by
// --only (unless it names 'hash') and --no-hash.
if (!args['no-hash'] && (!args.only || String(args.only).split(',').includes('hash'))) {
  console.log('\n--- hash sub-database: bench/hash.mjs ---');
  const hashArgs = [path.join(BENCH_DIR, 'hash.mjs')];
  if (quick) hashArgs.push('--quick');
  if (args.dir) hashArgs.push(`--dir=${args.dir}`);
  spawnSync(process.execPath, ['--expose-gc', ...hashArgs], { stdio: 'inherit' });
}
