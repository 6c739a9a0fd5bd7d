// better-sqlite3 adapter. WAL + synchronous=FULL: every commit is durable when it returns.
// SQLite has no async batching of its own, so putBatched() emulates what lmdb-js and mapkv do:
// the puts of one event-loop turn go into one transaction, run at setImmediate, and their
// promises resolve after it commits.
import path from 'node:path';
import { createRequire } from 'node:module';
import { packageVersion, packr } from '../lib.mjs';

const require = createRequire(import.meta.url);
let Database;

export default {
  name: 'sqlite',
  settings:
    'journal_mode=WAL, synchronous=FULL, table kv (k TEXT PRIMARY KEY, v BLOB) WITHOUT ROWID, ' +
    'prepared statements, values packed by msgpackr { useRecords: false }, other pragmas default',

  load() {
    Database = require('better-sqlite3');
    return { version: packageVersion(require, 'better-sqlite3') };
  },

  create() {
    let db, sGet, sPut, sScan, sRange, putMany;
    let pending = [];
    let scheduled = false;

    function flush() {
      scheduled = false;
      const batch = pending;
      pending = [];
      try {
        putMany(batch);
      } catch (err) {
        for (const p of batch) p.reject(err);
        return;
      }
      for (const p of batch) p.resolve(true);
    }

    return {
      async open(dir) {
        db = new Database(path.join(dir, 'bench.sqlite'));
        db.pragma('journal_mode = WAL');
        db.pragma('synchronous = FULL');
        db.exec('CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v BLOB) WITHOUT ROWID');
        sGet = db.prepare('SELECT v FROM kv WHERE k = ?').pluck();
        sPut = db.prepare('INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)');
        sScan = db.prepare('SELECT k, v FROM kv ORDER BY k').raw();
        sRange = db.prepare('SELECT k, v FROM kv WHERE k >= ? ORDER BY k LIMIT ?').raw();
        putMany = db.transaction((batch) => {
          for (const p of batch) sPut.run(p.key, packr.pack(p.value));
        });
      },
      async close() {
        if (pending.length) flush();
        db.close();
      },
      getDecoded(key) {
        const v = sGet.get(key);
        return v === undefined ? undefined : packr.unpack(v);
      },
      getRaw: (key) => sGet.get(key),
      scanAll(cb) {
        let count = 0;
        for (const [k, v] of sScan.iterate()) {
          cb(k, packr.unpack(v));
          count++;
        }
        return count;
      },
      rangeFrom(start, limit, cb) {
        let count = 0;
        for (const [k, v] of sRange.iterate(start, limit)) {
          cb(k, packr.unpack(v));
          count++;
        }
        return count;
      },
      bulkLoad(n, keyOf, valueOf) {
        db.transaction(() => {
          for (let i = 0; i < n; i++) sPut.run(keyOf(i), packr.pack(valueOf(i)));
        })();
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
        sPut.run(key, packr.pack(value));
      },
    };
  },
};
