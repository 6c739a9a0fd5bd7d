// lmdb-js adapter. Durable commits: overlappingSync is turned off, so a commit (putSync, or the
// batch a put() promise belongs to) is fsync'ed before it returns/resolves, like mapkv sync:'full'.
import { createRequire } from 'node:module';
import { packageVersion } from '../lib.mjs';

const require = createRequire(import.meta.url);
let lmdb;

export default {
  name: 'lmdb',
  settings:
    'compression: false, cache: off (default), encoder: msgpackr { useRecords: false }, ' +
    'no sharedStructuresKey, overlappingSync: false (every commit fsync-ed before it completes), ' +
    'keys: default ordered-binary strings',

  load() {
    lmdb = require('lmdb');
    return { version: packageVersion(require, 'lmdb') };
  },

  create() {
    let db;
    return {
      async open(dir) {
        db = lmdb.open({
          path: dir,
          compression: false,
          encoding: 'msgpack',
          encoder: { useRecords: false },
          overlappingSync: false,
        });
      },
      async close() {
        await db.close();
      },
      getDecoded: (key) => db.get(key),
      getRaw: (key) => db.getBinary(key),
      scanAll(cb) {
        let count = 0;
        for (const { key, value } of db.getRange()) {
          cb(key, value);
          count++;
        }
        return count;
      },
      rangeFrom(start, limit, cb) {
        let count = 0;
        for (const { key, value } of db.getRange({ start, limit })) {
          cb(key, value);
          count++;
        }
        return count;
      },
      bulkLoad(n, keyOf, valueOf) {
        db.transactionSync(() => {
          for (let i = 0; i < n; i++) db.put(keyOf(i), valueOf(i));
        });
      },
      putBatched: (key, value) => db.put(key, value),
      putDurable(key, value) {
        db.putSync(key, value);
      },
    };
  },
};
