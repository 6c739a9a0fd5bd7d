// Why a commit writes each page with its own pwrite: on Linux (ext4 with large folios, 6.x
// kernels) the page cache keeps bytes in folios sized by the writes that brought them in.
// This fills a file with writes of K pages each, then runs commits of 6 scattered one-page
// pwrites, a meta pwrite and an fdatasync, and prints the median time of the writes and of
// the flush per commit, for each K.
//
//   node bench/folio-writes.mjs [--commits 1000] [--dir /tmp]
//
// Uses only node:fs. Runs each K twice, interleaved, so a change in the disk's speed shows.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: { commits: { type: 'string' }, dir: { type: 'string' } },
});
const commits = Number(args.commits ?? 1000);
const dir = fs.mkdtempSync(path.join(String(args.dir ?? os.tmpdir()), 'mapkv-folio-'));
const PS = 4096;
const PAGES = 80_000; // 312 MiB, about the benchmark's 1M-key file
const median = (xs) => xs.sort((a, b) => a - b)[xs.length >> 1];

function run(k) {
  const file = path.join(dir, `f${k}`);
  const fd = fs.openSync(file, 'w+');
  try {
    const fill = Buffer.alloc(PS * k, 3);
    for (let p = 0; p < PAGES; p += k) fs.writeSync(fd, fill, 0, fill.length, p * PS);
    fs.fdatasyncSync(fd);
    const page = Buffer.alloc(PS, 9);
    let seed = 7;
    const writes = [];
    const flushes = [];
    for (let i = 0; i < commits; i++) {
      const a = process.hrtime.bigint();
      for (let j = 0; j < 6; j++) {
        seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
        fs.writeSync(fd, page, 0, PS, (2 + (seed % (PAGES - 2))) * PS);
      }
      fs.writeSync(fd, page, 0, PS, (i & 1) * PS);
      const b = process.hrtime.bigint();
      fs.fdatasyncSync(fd);
      flushes.push(Number(process.hrtime.bigint() - b) / 1000);
      writes.push(Number(b - a) / 1000);
    }
    return { writes: median(writes), flush: median(flushes) };
  } finally {
    fs.closeSync(fd);
    fs.rmSync(file);
  }
}

console.log(
  `${commits} commits of 7 one-page pwrites + fdatasync on a ${(PAGES * PS) / 2 ** 20} MiB file`,
);
console.log(
  'pages per write when the file was filled | writes (median us) | fdatasync (median us)',
);
try {
  for (let round = 0; round < 2; round++) {
    for (const k of [1, 4, 16, 64, 256, 1024]) {
      const r = run(k);
      console.log(
        `${String(k).padStart(5)} | ${r.writes.toFixed(0).padStart(5)} | ${r.flush.toFixed(0).padStart(5)}`,
      );
    }
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
