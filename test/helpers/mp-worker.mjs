// A worker_thread of the concurrency tests (test/concurrency/workers.test.ts): its own handle
// on the file, as each worker must open its own. workerData: { file, mode, ms, id }.
//
//   hold-snapshot  takes a snapshot, posts { ready, tid, txnId }, then idles until terminated
//   hold-lock      posts { ready } from inside a write transaction, then spins until terminated
//   work           for `ms` ms reads, writes and checks snapshots; posts its result; closes
//   open-close     opens, reads, closes; posts { closed }
//   async-puts     (sync 'full') posts { ready }, then awaits puts in a loop until terminated
import { createRequire } from 'node:module';
import { readlinkSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';

const require = createRequire(import.meta.url);
const { open } = require('../../dist/index.js');

const { file, mode, ms, id, maxReaders } = workerData;
const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
const sync = mode === 'async-puts' ? 'full' : 'none';
const db = open(file, { sync, lockTimeout: 60_000, maxReaders: maxReaders ?? 126 });

if (mode === 'async-puts') {
  parentPort.postMessage({ ready: true, tid });
  // Each put's commit flushes on the thread pool: ending the worker catches some in flight.
  for (let i = 0; ; i++) await db.put(`${id}:${i % 100}`, i);
} else if (mode === 'hold-snapshot') {
  const snap = db.snapshot();
  parentPort.postMessage({ ready: true, tid, txnId: snap.txnId });
  globalThis.setInterval(() => snap.get('k'), 1 << 30);
} else if (mode === 'hold-lock') {
  db.transactionSync((txn) => {
    txn.put('held', id);
    parentPort.postMessage({ ready: true, tid });
    for (;;) {
      // Spins inside the write transaction, holding the writer lock, until terminated.
    }
  });
} else if (mode === 'work') {
  const deadline = Date.now() + ms;
  const out = { id, writes: 0, checks: 0, violations: [] };
  for (let i = 0; Date.now() < deadline; i++) {
    db.transactionSync((txn) => {
      txn.put(`${id}:${i % 20}`, i);
      txn.put('total', (txn.get('total') ?? 0) + 1);
      txn.put(`count:${id}`, (txn.get(`count:${id}`) ?? 0) + 1);
    });
    out.writes++;
    if (i % 5 === 0) await db.put(`async:${id}`, i);
    const snap = db.snapshot();
    const before = JSON.stringify([...snap.range()]);
    await new Promise((resolve) => setTimeout(resolve, 1));
    if (JSON.stringify([...snap.range()]) !== before) out.violations.push('a snapshot changed');
    snap.close();
    if (db.get(`count:${id}`) !== out.writes) out.violations.push('lost own write');
    out.checks++;
  }
  await db.close();
  parentPort.postMessage(out);
} else if (mode === 'open-close') {
  db.get('k');
  await db.close();
  parentPort.postMessage({ closed: true });
}
