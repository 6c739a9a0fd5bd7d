// Peak-RSS probe, one store per process: `node bench/rss-child.mjs <store> <N> [tmpBase]`.
// Loads N keys in one transaction, reads every key once in random order (decoded), scans all,
// then prints one JSON line: { store, n, maxRss, baselineRss, source } (bytes; baseline = after
// imports).
//
// On Linux the peak is VmHWM from /proc/self/status, NOT process.resourceUsage().maxRSS: the
// kernel carries ru_maxrss across fork + exec, so a child spawned by a big parent reports at least
// the parent's RSS at spawn time (seen here: every child reported the harness's own 300+ MiB).
// VmHWM belongs to the child's own address space. Elsewhere, maxRSS is the fallback.
import fs from 'node:fs';
import { loadStore } from './stores/index.mjs';
import { keyOf, valueOf, makeTempDir, removeDir, randomIndexes } from './lib.mjs';

const [storeName, nArg, base] = process.argv.slice(2);
const n = Number(nArg);
const loaded = loadStore(storeName);
if (!loaded.adapter || !(n > 0)) {
  console.log(JSON.stringify({ store: storeName, error: loaded.skipped ?? `bad N '${nArg}'` }));
  process.exit(1);
}
function peakRss() {
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    if (m) return { bytes: Number(m[1]) * 1024, source: 'VmHWM' };
  } catch {
    // not Linux
  }
  return { bytes: process.resourceUsage().maxRSS * 1024, source: 'maxRSS' };
}

const baselineRss = peakRss().bytes;
const keys = Array.from({ length: n }, (_, i) => keyOf(i));
const dir = makeTempDir(storeName, base || undefined);
try {
  const db = loaded.adapter.create();
  await db.open(dir);
  await db.bulkLoad(n, (i) => keys[i], valueOf);
  let sum = 0;
  for (const i of randomIndexes(7, n, n)) sum += db.getDecoded(keys[i]).n;
  await db.scanAll((_k, v) => {
    sum += v.n;
  });
  await db.close();
  const { bytes: maxRss, source } = peakRss();
  console.log(JSON.stringify({ store: storeName, n, maxRss, baselineRss, source, sum }));
} finally {
  removeDir(dir);
}
