// What a compact backup costs the process that runs it: peak memory of its buffers and the
// longest time the event loop could not run. A diagnostic, not a comparison (no peer has a
// compact backup of a live database).
//
//   npm run build:ts && node bench/compact-backup.mjs [--entries=1000000] [--dir=path]
//     [--module=path/to/dist/index.js]
//
// Builds a database of `entries` keys (values ~170 bytes, written in 20 transactions, so about
// half of a 4 KiB page is free per leaf), then runs `backup(copy, { compact: true })` once
// while a 5 ms interval samples process.memoryUsage().arrayBuffers and how late each tick
// came. `--module` runs another build (e.g. an older commit's dist/) against the same file.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import { clearInterval, setInterval } from 'node:timers';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const args = Object.fromEntries(
  process.argv.slice(2).map((a) => {
    const [k, v] = a.replace(/^--/, '').split('=');
    return [k, v ?? 'true'];
  }),
);
const entries = Number(args.entries ?? 1_000_000);
const dir = args.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'mapkv-compact-'));
const modulePath = path.resolve(
  args.module ?? path.join(path.dirname(fileURLToPath(import.meta.url)), '../dist/index.js'),
);
const { open } = require(modulePath);

const source = path.join(dir, 'source.mkv');
const copy = path.join(dir, 'copy.mkv');
const MiB = 2 ** 20;

if (!fs.existsSync(source)) {
  const db = open(source, { sync: 'none', keyEncoding: 'string' });
  const per = Math.ceil(entries / 20);
  for (let c = 0; c * per < entries; c++) {
    db.transactionSync((txn) => {
      for (let i = c * per; i < Math.min(entries, (c + 1) * per); i++) {
        txn.put(`k${c}-${i}`, { i, pad: 'x'.repeat(150) });
      }
    });
  }
  await db.close();
}

const db = open(source, { keyEncoding: 'string' });
let peak = 0;
let stall = 0;
let last = performance.now();
const timer = setInterval(() => {
  const now = performance.now();
  stall = Math.max(stall, now - last - 5);
  last = now;
  peak = Math.max(peak, process.memoryUsage().arrayBuffers);
}, 5);
const t0 = performance.now();
await db.backup(copy, { compact: true });
const ms = performance.now() - t0;
clearInterval(timer);
await db.close();

const c = open(copy, { readOnly: true });
const stats = c.stats();
const ok = c.check().ok;
await c.close();
console.log(
  JSON.stringify({
    module: modulePath,
    entries: stats.entries,
    sourceMiB: +(fs.statSync(source).size / MiB).toFixed(1),
    copyMiB: +(fs.statSync(copy).size / MiB).toFixed(1),
    copyPages: stats.pages,
    copyFreePages: stats.freePages,
    copyCheck: ok,
    ms: Math.round(ms),
    peakArrayBuffersMiB: +(peak / MiB).toFixed(1),
    longestStallMs: Math.round(stall),
  }),
);
fs.rmSync(copy, { force: true });
if (args.dir === undefined) fs.rmSync(dir, { recursive: true, force: true });
