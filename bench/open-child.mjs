// Cold-open probe: `node bench/open-child.mjs <store> <dir> <key>` in a fresh process.
// Times open() of an existing store plus the first get (decoded) of `key`; the driver module is
// imported before the clock starts. Prints one JSON line: { store, ms, found }.
import { performance } from 'node:perf_hooks';
import { loadStore } from './stores/index.mjs';

const [storeName, dir, key] = process.argv.slice(2);
const loaded = loadStore(storeName);
if (!loaded.adapter) {
  console.log(JSON.stringify({ store: storeName, error: loaded.skipped }));
  process.exit(1);
}
const db = loaded.adapter.create();
const t0 = performance.now();
await db.open(dir);
const value = db.getDecoded(key);
const ms = performance.now() - t0;
await db.close();
console.log(JSON.stringify({ store: storeName, ms, found: value !== undefined }));
