// Child processes (and worker threads) of the concurrency tests (test/concurrency). They load
// the built package from dist/, as a user's process would. Every command prints `READY ...`
// once its database is open, and most print one `RESULT <json>` line at the end.
//
//   accounts FILE MS SEED WORKERS SYNC   WORKERS threads each move money between the accounts
//                                        and check every snapshot, for MS ms (see accountsThread)
//   long-reader FILE                     takes a snapshot, records it, then checks it again and
//                                        again until stdin ends; RESULT { checks, violations }
//   hold-snapshot FILE                   takes a snapshot and keeps it until killed
//   hold-lock FILE COMMITS               commits k = 1..COMMITS, then opens a write transaction
//                                        (writes k = COMMITS + 1 and a lot more) and blocks
//                                        inside it, holding the writer lock, until killed
//   counter FILE N ID                    waits for "go" on stdin, then N times: increments `n`
//                                        in a transactionSync and putSync('ID-i', i)
//   open-hold FILE MAXREADERS            opens (maxReaders MAXREADERS) and waits until killed
import { createRequire } from 'node:module';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { writeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const { open } = require('../../dist/index.js');

function say(line) {
  writeSync(1, `${line}\n`);
}

/** Resolves when stdin has a line containing `word` (or ends, when `word` is null). */
function stdinSignal(word) {
  return new Promise((resolve) => {
    let text = '';
    process.stdin.on('data', (chunk) => {
      text += chunk.toString();
      if (word !== null && text.includes(word)) resolve();
    });
    process.stdin.on('end', () => resolve());
  });
}

/** Mulberry32: a small seeded PRNG, so a failing run can be repeated. */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const forever = () => globalThis.setInterval(() => {}, 1 << 30);

export const ACCOUNTS = 100;
export const START_BALANCE = 1000;
const TOTAL = ACCOUNTS * START_BALANCE;
const acct = (i) => `acct:${String(i).padStart(3, '0')}`;

/**
 * One thread of the accounts run: its own handle on FILE. Until the deadline it moves money
 * (transactionSync, and batched async transactions) and checks isolation: every snapshot's
 * total is TOTAL, and a snapshot kept open across event-loop turns (while other threads and
 * processes commit) reads exactly what it read at first.
 */
async function accountsThread({ file, ms, seed, sync }) {
  const db = open(file, { sync, lockTimeout: 60_000 });
  const rand = rng(seed);
  const deadline = Date.now() + ms;
  const out = { commits: 0, snapshots: 0, ranges: 0, violations: [] };
  const violation = (what) => {
    if (out.violations.length < 20) out.violations.push(what);
  };
  const move = (txn) => {
    const a = acct(Math.floor(rand() * ACCOUNTS));
    const b = acct(Math.floor(rand() * ACCOUNTS));
    const amount = 1 + Math.floor(rand() * 50);
    txn.put(a, txn.get(a) - amount);
    txn.put(b, txn.get(b) + amount);
  };
  const readAll = (reader) => {
    const values = [];
    for (const { value } of reader.range()) values.push(value);
    return values;
  };
  const sum = (values) => values.reduce((s, v) => s + v, 0);
  while (Date.now() < deadline) {
    const r = rand();
    if (r < 0.3) {
      db.transactionSync((txn) => {
        move(txn);
        if (rand() < 0.3) move(txn);
        let t = 0;
        for (const v of txn.values()) t += v;
        if (t !== TOTAL) violation(`total ${t} inside a write transaction`);
      });
      out.commits++;
    } else if (r < 0.55) {
      // Several async transactions of one turn commit as one batch.
      const n = 1 + Math.floor(rand() * 3);
      await Promise.all(Array.from({ length: n }, () => db.transaction(move)));
      out.commits++;
    } else if (r < 0.85) {
      const snap = db.snapshot();
      const first = readAll(snap);
      if (first.length !== ACCOUNTS) violation(`snapshot holds ${first.length} accounts`);
      if (sum(first) !== TOTAL) violation(`snapshot ${snap.txnId} total ${sum(first)}`);
      // Let commits of other threads and processes land, then read the snapshot again.
      await sleep(Math.floor(rand() * 4));
      const again = readAll(snap);
      for (let i = 0; i < ACCOUNTS; i++) {
        if (again[i] !== first[i]) {
          violation(`snapshot ${snap.txnId} changed: ${acct(i)} ${first[i]} -> ${again[i]}`);
          break;
        }
      }
      if (snap.count() !== ACCOUNTS) violation('snapshot count changed');
      snap.close();
      out.snapshots++;
    } else {
      // A range over the latest commit is one snapshot too.
      const values = readAll(db);
      if (sum(values) !== TOTAL) violation(`latest total ${sum(values)}`);
      out.ranges++;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
  await db.close();
  return out;
}

async function accounts([file, ms, seed, workers, sync]) {
  const n = Number(workers);
  say('READY');
  const results = await Promise.all(
    Array.from(
      { length: n },
      (_, i) =>
        new Promise((resolve, reject) => {
          const w = new Worker(fileURLToPath(import.meta.url), {
            workerData: { file, ms: Number(ms), seed: Number(seed) * 100 + i, sync },
          });
          w.once('message', resolve);
          w.once('error', reject);
          w.once('exit', (code) => {
            if (code !== 0) reject(new Error(`worker ${i} exited with ${code}`));
          });
        }),
    ),
  );
  say(`RESULT ${JSON.stringify(results)}`);
}

async function longReader([file]) {
  const db = open(file, { readOnly: true });
  const snap = db.snapshot();
  const expected = [...snap.range()].map(({ key, value }) => [key, value]);
  say(`READY ${snap.txnId} ${expected.length}`);
  let stop = false;
  void stdinSignal(null).then(() => (stop = true));
  let checks = 0;
  const violations = [];
  const check = () => {
    const seen = [...snap.range()].map(({ key, value }) => [key, value]);
    checks++;
    if (JSON.stringify(seen) !== JSON.stringify(expected) && violations.length < 10)
      violations.push(`check ${checks}: the snapshot changed`);
    for (const [key, value] of expected) {
      if (JSON.stringify(snap.get(key)) !== JSON.stringify(value) && violations.length < 10)
        violations.push(`check ${checks}: ${key} changed`);
    }
  };
  while (!stop) {
    check();
    await new Promise((resolve) => setImmediate(resolve));
  }
  check();
  snap.close();
  const latest = db.get('round');
  await db.close();
  say(`RESULT ${JSON.stringify({ checks, violations, latest })}`);
}

async function holdSnapshot([file]) {
  const db = open(file);
  const snap = db.snapshot();
  say(`READY ${snap.txnId} ${process.pid}`);
  forever();
}

function holdLock([file, commits]) {
  const db = open(file, { sync: 'none' });
  const n = Number(commits);
  for (let k = 1; k <= n; k++) db.putSync('k', k);
  db.transactionSync((txn) => {
    txn.put('k', n + 1);
    // Dirty (and grow) plenty of pages that will never be committed.
    for (let i = 0; i < 2000; i++) txn.put(`junk${i}`, 'x'.repeat(500));
    say(`READY ${process.pid}`);
    // Blocks inside the write transaction, holding the writer lock, until killed.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
  });
}

async function counter([file, count, id]) {
  const db = open(file, { sync: 'none', lockTimeout: 60_000 });
  say('READY');
  await stdinSignal('go');
  const n = Number(count);
  for (let i = 0; i < n; i++) {
    db.transactionSync((txn) => txn.put('n', (txn.get('n') ?? 0) + 1));
    db.putSync(`${id}-${i}`, i);
  }
  await db.close();
  say(`RESULT ${JSON.stringify({ done: n })}`);
  process.exit(0);
}

async function openHold([file, maxReaders]) {
  open(file, { maxReaders: Number(maxReaders) });
  say(`READY ${process.pid}`);
  forever();
}

if (!isMainThread) {
  parentPort.postMessage(await accountsThread(workerData));
} else {
  const [command, ...args] = process.argv.slice(2);
  const commands = {
    accounts,
    'long-reader': longReader,
    'hold-snapshot': holdSnapshot,
    'hold-lock': holdLock,
    counter,
    'open-hold': openHold,
  };
  const run = commands[command];
  if (run === undefined) {
    process.stderr.write(`unknown command ${command}\n`);
    process.exit(2);
  }
  await run(args);
}
