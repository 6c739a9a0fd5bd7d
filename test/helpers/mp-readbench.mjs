// Read-path micro-benchmark (not a test): random db.get over 100k keys, in one process.
//   node test/helpers/mp-readbench.mjs [keys=100000] [gets=2000000]
// Prints ops/s for: gets in one synchronous loop, gets spread over event-loop turns (1000 per
// setImmediate turn), gets while another handle commits every turn, and putSync (sync 'none').
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { open } = require('../../dist/index.js');

const keys = Number(process.argv[2] ?? 100_000);
const gets = Number(process.argv[3] ?? 2_000_000);
const dir = mkdtempSync(join(tmpdir(), 'mapkv-bench-'));
const file = join(dir, 'bench.mkv');
const db = open(file, { sync: 'none' });
db.transactionSync((txn) => {
  for (let i = 0; i < keys; i++) txn.put(`key${i}`, { n: i, s: 'value' });
});

function rnd() {
  return `key${(Math.random() * keys) | 0}`;
}

function syncLoop() {
  let found = 0;
  const t = process.hrtime.bigint();
  for (let i = 0; i < gets; i++) if (db.get(rnd()) !== undefined) found++;
  const s = Number(process.hrtime.bigint() - t) / 1e9;
  if (found !== gets) throw new Error('missing keys');
  return gets / s;
}

async function turns(writer) {
  let found = 0;
  const t = process.hrtime.bigint();
  for (let done = 0; done < gets;) {
    for (let i = 0; i < 1000; i++, done++) if (db.get(rnd()) !== undefined) found++;
    if (writer !== null) writer.putSync('other', done);
    await new Promise((r) => setImmediate(r));
  }
  const s = Number(process.hrtime.bigint() - t) / 1e9;
  if (found !== gets) throw new Error('missing keys');
  return gets / s;
}

for (let warm = 0; warm < 2; warm++) syncLoop();
const a = syncLoop();
const b = await turns(null);
const other = open(file, { sync: 'none' });
const c = await turns(other);
await other.close();
const writes = 20_000;
let t = process.hrtime.bigint();
for (let i = 0; i < writes; i++) db.putSync(rnd(), { n: i, s: 'value' });
const d = writes / (Number(process.hrtime.bigint() - t) / 1e9);
await db.close();
rmSync(dir, { recursive: true, force: true });
const f = (x) => Math.round(x).toLocaleString('en-US');
console.log(`sync loop:                 ${f(a)} gets/s`);
console.log(`1000 gets per turn:        ${f(b)} gets/s`);
console.log(`1000 gets per turn+commit: ${f(c)} gets/s`);
console.log(`putSync (sync 'none'):     ${f(d)} commits/s`);
