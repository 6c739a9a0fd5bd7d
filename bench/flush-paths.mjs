// Why commits write their pages with pwritev and not through the MAP_SHARED mapping: the cost of
// one fdatasync after writing 5 pages (4 scattered data pages and a meta page, like a one-put
// commit on a 50 MB file) through each path, on this machine's file system.
//
//   node bench/flush-paths.mjs [--commits 1000] [--dir /tmp]
//
// Prints, per path, the mean microseconds spent writing and in fdatasync. Uses the addon from
// build/ through dist/ (run `npm run build:ts` first).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));
const { native } = require(path.join(here, '../dist/storage/native.js'));

const { values: args } = parseArgs({
  options: { commits: { type: 'string' }, dir: { type: 'string' } },
});
const commits = Number(args.commits ?? 1000);
const dir = fs.mkdtempSync(path.join(String(args.dir ?? os.tmpdir()), 'mapkv-flush-'));
const PS = 4096;
const PAGES = 12_700; // about the benchmark's 1M-key file

const file = path.join(dir, 'f');
const fd = fs.openSync(file, 'w+');
native.fallocate(fd, 0, PAGES * PS);
const ab = native.map(fd, 0, PAGES * PS, { write: true, shared: true });
const view = new Uint8Array(ab);
// Write every page once, so no path pays for first writes into preallocated blocks.
for (let p = 0; p < PAGES; p++) view[p * PS] = 1;
native.fdatasync(fd);

let seed = 1;
const random = () => {
  seed = (seed * 1103515245 + 12345) & 0x7fffffff;
  return 2 + (seed % (PAGES - 2));
};
const page = Buffer.alloc(PS, 7);
const paths = {
  'pwrite data, map meta': (i, k, at) =>
    k === 4 ? view.set(page, at) : fs.writeSync(fd, page, 0, PS, at),
  'map data and meta': (i, k, at) => view.set(page, at),
  'pwrite data and meta': (i, k, at) => fs.writeSync(fd, page, 0, PS, at),
};
const results = {};
for (let round = 0; round < 2; round++) {
  for (const [name, write] of Object.entries(paths)) {
    let tw = 0n;
    let ts = 0n;
    for (let i = 0; i < commits; i++) {
      const a = process.hrtime.bigint();
      for (let k = 0; k < 5; k++) write(i, k, (k === 4 ? i & 1 : random()) * PS);
      const b = process.hrtime.bigint();
      native.fdatasync(fd);
      ts += process.hrtime.bigint() - b;
      tw += b - a;
    }
    if (round === 1)
      results[name] = {
        writeUs: Number(tw / BigInt(commits)) / 1000,
        fdatasyncUs: Number(ts / BigInt(commits)) / 1000,
      };
  }
}
native.unmap(ab);
fs.closeSync(fd);
fs.rmSync(dir, { recursive: true, force: true });
console.log(
  `${commits} commits of 5 pages each on a ${(PAGES * PS) >> 20} MiB file (second round of two):`,
);
for (const [name, r] of Object.entries(results)) {
  console.log(
    `  ${name.padEnd(24)} write ${r.writeUs.toFixed(1).padStart(6)} us   fdatasync ${r.fdatasyncUs.toFixed(1).padStart(6)} us`,
  );
}
