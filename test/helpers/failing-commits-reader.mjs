// The reading side of test/concurrency/failing-commits.test.ts, in a worker_thread: handles on
// a file whose writer (the main thread) fails many commits after their meta went into the
// file. workerData: { file, stop (SharedArrayBuffer: Int32 set to 1 to stop), seed, keys }.
//
// Every commit of the writer puts one tag `T<seq>` under every key of the main database, of
// a hash sub-database 'h' and of a B+tree sub-database 't'. The reader checks what must hold
// whatever the timing:
//   - a latest read never goes back: a handle that read T<n> never reads T<m>, m < n;
//   - a snapshot reads one tag under every key, and the same tags for as long as it is open;
// and posts every tag it saw, for the main thread to check that no failed commit's is there.
import { createRequire } from 'node:module';
import { parentPort, workerData } from 'node:worker_threads';

const require = createRequire(import.meta.url);
const { open } = require('../../dist/index.js');

const { file, seed, keys } = workerData;
const stop = new Int32Array(workerData.stop);
const enc = { keyEncoding: 'string', valueEncoding: 'binary' };

let state = seed >>> 0 || 1;
function random() {
  // xorshift32: the test's sequence of choices follows its seed.
  state ^= state << 13;
  state >>>= 0;
  state ^= state >>> 17;
  state ^= state << 5;
  state >>>= 0;
  return state / 2 ** 32;
}

function openHandle() {
  const db = open(file, { ...enc, lockTimeout: 60_000 });
  const h = db.openDB('h', { kind: 'hash', ...enc });
  const t = db.openDB('t', { kind: 'btree', ...enc });
  return { db, dbs: [db, h, t], last: -1 };
}

const tagOf = (v) => (v === undefined ? 'none' : Buffer.from(v).toString().split('|')[0]);
const seqOf = (tag) => (tag === 'none' ? -1 : Number(tag.slice(1)));

const out = { reads: 0, snapshots: 0, violations: [], errors: [], seen: new Set() };
function violation(v) {
  if (out.violations.length < 20) out.violations.push(v);
}

/** Every key's tag through `dbs` (three databases, or a snapshot's three views). */
function readAll(dbs) {
  const tags = new Set();
  for (let i = 0; i < keys; i++) for (const d of dbs) tags.add(tagOf(d.getBinary(`k${i}`)));
  for (const t of tags) out.seen.add(t);
  return [...tags].sort().join(',');
}

const handles = [openHandle(), openHandle()];
const held = [];

function step() {
  const hd = handles[Math.floor(random() * handles.length)];
  const r = random();
  if (r < 0.45) {
    out.reads++;
    for (let i = 0; i < keys; i++) {
      for (const d of hd.dbs) {
        const tag = tagOf(d.getBinary(`k${i}`));
        out.seen.add(tag);
        if (seqOf(tag) < hd.last) violation({ kind: 'latest went back', from: hd.last, to: tag });
        hd.last = Math.max(hd.last, seqOf(tag));
      }
    }
  } else if (r < 0.8) {
    out.snapshots++;
    const snap = hd.db.snapshot();
    const views = [snap, snap.db(hd.dbs[1]), snap.db(hd.dbs[2])];
    const tags = readAll(views);
    if (tags.includes(',')) violation({ kind: 'snapshot mixed', txn: snap.txnId, tags });
    if (held.length < 16 && random() < 0.3) held.push({ snap, views, tags });
    else snap.close();
  } else if (held.length > 0) {
    const i = Math.floor(random() * held.length);
    const x = held[i];
    const tags = readAll(x.views);
    if (tags !== x.tags)
      violation({ kind: 'snapshot changed', txn: x.snap.txnId, was: x.tags, now: tags });
    if (random() < 0.5) {
      x.snap.close();
      held.splice(i, 1);
    }
  }
}

function loop() {
  try {
    for (let n = 0; n < 40; n++) step();
  } catch (err) {
    if (out.errors.length < 5) out.errors.push(String(err?.stack ?? err));
  }
  if (Atomics.load(stop, 0) === 0) {
    setImmediate(loop);
    return;
  }
  for (const x of held) {
    const tags = readAll(x.views);
    if (tags !== x.tags) violation({ kind: 'snapshot changed (end)', was: x.tags, now: tags });
    x.snap.close();
  }
  const check = handles[0].db.check();
  if (!check.ok) violation({ kind: 'check', problems: check.problems });
  for (const hd of handles) hd.db.close();
  parentPort.postMessage({ ...out, seen: [...out.seen] });
}
loop();
