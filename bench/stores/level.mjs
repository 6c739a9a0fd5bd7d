// classic-level (LevelDB) adapter. Durable commits: { sync: true } (fsync of the log per write).
// Point reads use db.getSync() (classic-level 3 has it); iterators are async only, so scans and
// ranges are awaited (nextv() in chunks for the scan, all() for a 100-key range).
// putBatched() groups the puts of one event-loop turn into one db.batch(ops, { sync: true }),
// the same per-turn batching lmdb-js and mapkv do internally.
import { createRequire } from 'node:module';
import { packageVersion, packr } from '../lib.mjs';

const require = createRequire(import.meta.url);
let ClassicLevel;

const SYNC = { sync: true };

export default {
  name: 'level',
  settings:
    "valueEncoding: 'view' + msgpackr { useRecords: false }, compression: false, " +
    'sync: true on every durable write and per-turn batch, default 8 MiB block cache',
  asyncIteration: true,

  load() {
    ({ ClassicLevel } = require('classic-level'));
    return { version: packageVersion(require, 'classic-level') };
  },

  create() {
    let db;
    let pending = [];
    let scheduled = false;

    function flush() {
      scheduled = false;
      const batch = pending;
      pending = [];
      const ops = batch.map((p) => ({ type: 'put', key: p.key, value: packr.pack(p.value) }));
      db.batch(ops, SYNC).then(
        () => {
          for (const p of batch) p.resolve(true);
        },
        (err) => {
          for (const p of batch) p.reject(err);
        },
      );
    }

    return {
      async open(dir) {
        db = new ClassicLevel(dir, {
          keyEncoding: 'utf8',
          valueEncoding: 'view',
          compression: false,
        });
        await db.open();
      },
      async close() {
        await db.close();
      },
      getDecoded(key) {
        const v = db.getSync(key);
        return v === undefined ? undefined : packr.unpack(v);
      },
      getRaw: (key) => db.getSync(key),
      async scanAll(cb) {
        let count = 0;
        const it = db.iterator();
        try {
          while (true) {
            const entries = await it.nextv(1000);
            if (entries.length === 0) break;
            for (const [k, v] of entries) cb(k, packr.unpack(v));
            count += entries.length;
          }
        } finally {
          await it.close();
        }
        return count;
      },
      async rangeFrom(start, limit, cb) {
        const entries = await db.iterator({ gte: start, limit }).all();
        for (const [k, v] of entries) cb(k, packr.unpack(v));
        return entries.length;
      },
      async bulkLoad(n, keyOf, valueOf) {
        // One atomic batch: LevelDB's equivalent of "all keys in one transaction".
        const batch = db.batch();
        for (let i = 0; i < n; i++) batch.put(keyOf(i), packr.pack(valueOf(i)));
        await batch.write(SYNC);
      },
      putBatched(key, value) {
        return new Promise((resolve, reject) => {
          pending.push({ key, value, resolve, reject });
          if (!scheduled) {
            scheduled = true;
            setImmediate(flush);
          }
        });
      },
      putDurable(key, value) {
        return db.put(key, packr.pack(value), SYNC);
      },
    };
  },
};
