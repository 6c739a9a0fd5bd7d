// mapkv adapter: the engine under test, loaded from the build output (dist/) of this repo.
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
// MAPKV_BENCH_MODULE=/path/to/index.js benchmarks another build (child processes inherit it).
const DIST = path.resolve(
  process.env.MAPKV_BENCH_MODULE ||
    path.join(path.dirname(fileURLToPath(import.meta.url)), '../../dist/index.js'),
);
let mapkv;

export default {
  name: 'mapkv',
  settings:
    "sync: 'full', keyEncoding: 'string', valueEncoding: 'msgpack', msgpack: { useRecords: false }",

  /** Loads dist/index.js; throws a readable reason when the engine is missing or incomplete. */
  load() {
    mapkv = require(DIST);
    if (typeof mapkv.open !== 'function') {
      throw new Error(`${path.relative(process.cwd(), DIST)} does not export open() (yet)`);
    }
    return { version: mapkv.VERSION ?? 'dev' };
  },

  create() {
    let db;
    return {
      async open(dir) {
        db = mapkv.open(path.join(dir, 'bench.mkv'), {
          sync: 'full',
          keyEncoding: 'string',
          valueEncoding: 'msgpack',
          // The fairness rule: every store holds the same bytes, msgpackr without records.
          msgpack: { useRecords: false },
        });
      },
      async close() {
        await db.close();
      },
      getDecoded: (key) => db.get(key),
      getRaw: (key) => db.getBinary(key),
      scanAll(cb) {
        let count = 0;
        for (const { key, value } of db.range()) {
          cb(key, value);
          count++;
        }
        return count;
      },
      rangeFrom(start, limit, cb) {
        let count = 0;
        for (const { key, value } of db.range({ start, limit })) {
          cb(key, value);
          count++;
        }
        return count;
      },
      bulkLoad(n, keyOf, valueOf) {
        db.transactionSync((txn) => {
          for (let i = 0; i < n; i++) txn.put(keyOf(i), valueOf(i));
        });
      },
      putBatched: (key, value) => db.put(key, value),
      putDurable(key, value) {
        db.putSync(key, value);
      },
    };
  },
};
