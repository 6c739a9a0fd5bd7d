// The writer child of the kill -9 harness (test/crash/kill.test.ts).
//
//   node crash-writer.mjs DB SEED FROM SYNC [UNTIL]
//
// Opens DB through openOn(MappedStorage.open(DB), ...) with test-only commit hooks, then runs
// the commits FROM, FROM+1, ... (UNTIL, default forever) of the workload in crash-plan.mjs,
// writing `ACK <n>` to stdout (synchronously) as soon as commit n has returned or resolved.
//
// When MAPKV_CRASH_PAUSE=data|meta and MAPKV_CRASH_PAUSE_AT=<n>, the first commit from n on
// that changes anything (a remove of a missing key commits nothing) stops inside the commit
// protocol - after its data pages are flushed (data) or after its meta is written but
// before the meta flush (meta) - writes `PAUSE <phase> <n>` and blocks, so the parent can
// SIGKILL it exactly there.
import { writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { applyCommit, emptyState, groupSize, valueOf } from './crash-plan.mjs';

const require = createRequire(import.meta.url);
const { openOn } = require('../../dist/open.js');
const { MappedStorage } = require('../../dist/storage/mapped.js');

const [file, seedArg, fromArg, sync, untilArg] = process.argv.slice(2);
const seed = Number(seedArg) >>> 0;
const from = Number(fromArg);
const until = untilArg === undefined ? Infinity : Number(untilArg);
const pause = process.env.MAPKV_CRASH_PAUSE ?? '';
const pauseAt = Number(process.env.MAPKV_CRASH_PAUSE_AT ?? -1);

function say(line) {
  writeSync(1, `${line}\n`);
}

let current = -1;
function block(phase) {
  if (pause !== phase || current < pauseAt) return;
  say(`PAUSE ${phase} ${current}`);
  // Blocks the thread (and so the commit) until the parent's SIGKILL arrives.
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 120_000);
  say(`UNPAUSED ${phase} ${current}`);
  process.exit(3);
}

const storage = MappedStorage.open(file);
const db = openOn(
  storage,
  file,
  { sync },
  {
    afterDataFlush: () => block('data'),
    afterMetaWrite: () => block('meta'),
  },
);
const side = db.openDB('side');
say(`READY ${from}`);

// The ops need the values only; the state is a scratch copy so applyCommit can be reused.
const scratch = emptyState();

for (let n = from; n <= until; n++) {
  current = n;
  const op = applyCommit(scratch, seed, n);
  switch (op.kind) {
    case 'group':
      db.transactionSync((txn) => {
        for (let i = 0; i < groupSize(op.g); i++) {
          const key = `g${op.g}/${i}`;
          txn.put(key, valueOf(seed, scratch.main.get(key)));
        }
        txn.db(side).put(`g${op.g}`, valueOf(seed, scratch.side.get(`g${op.g}`)));
      });
      break;
    case 'batch': {
      const writes = [];
      for (let i = 0; i < groupSize(op.g); i++) {
        const key = `g${op.g}/${i}`;
        writes.push(db.put(key, valueOf(seed, scratch.main.get(key))));
      }
      writes.push(side.put(`g${op.g}`, valueOf(seed, scratch.side.get(`g${op.g}`))));
      await Promise.all(writes);
      break;
    }
    case 'drop':
      db.transactionSync((txn) => {
        for (let i = 0; i < groupSize(op.g); i++) txn.remove(`g${op.g}/${i}`);
        txn.db(side).remove(`g${op.g}`);
      });
      break;
    case 'big': {
      // Every other one as an async put: a commit of 50..250 KiB hands its page writes to a
      // thread-pool thread (Environment.commitAsync), and the kills must reach that path too.
      const key = `big${op.j}`;
      const value = valueOf(seed, scratch.main.get(key));
      if (n % 2 === 0) await db.put(key, value);
      else db.putSync(key, value);
      break;
    }
    case 'unbig':
      db.removeSync(`big${op.j}`);
      break;
    case 'single':
      db.putSync(`s${op.x}`, valueOf(seed, scratch.main.get(`s${op.x}`)));
      break;
    case 'unsingle':
      db.removeSync(`s${op.x}`);
      break;
  }
  current = -1;
  say(`ACK ${n}`);
}
await db.close();
say('DONE');
