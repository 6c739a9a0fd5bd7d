/**
 * The hash sub-database through the public API: large values, atomic transactions across a
 * hash and a B+tree sub-database, snapshots, the per-database hash key, unordered iteration
 * and what it guarantees.
 */
import { afterEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MapKVError, open, type Database, type DatabaseBase } from '../../src/index';
import { compactStep } from '../../src/backup';
import { openOn } from '../../src/open';
import { MemoryStorage } from '../../src/storage/memory';
import { maxInlineRecord } from '../../src/format/layout';
import { hashOf, setHashMaskForTests } from '../../src/hash/hashkey';
import { hashIndex } from '../../src/hash/index';

type Bytes = Uint8Array;
const enc = { keyEncoding: 'string', valueEncoding: 'binary' } as const;

let storage: MemoryStorage;
let db: Database<string, Bytes>;

function fresh(pageSize = 4096): Database<string, Bytes> {
  storage = new MemoryStorage({ segmentSize: 65536 });
  db = openOn<string, Bytes>(storage, '', { ...enc, pageSize });
  return db;
}

function reopen(): Database<string, Bytes> {
  const image = storage.currentImage();
  storage = MemoryStorage.fromImage(image, { segmentSize: 65536 });
  db = openOn<string, Bytes>(storage, '', enc);
  return db;
}

const hashDb = (d: Database<string, Bytes>, name = 'h'): DatabaseBase<string, Bytes> =>
  d.openDB<string, Bytes>(name, { kind: 'hash', ...enc });

function bytes(seed: number, size: number): Bytes {
  const v = new Uint8Array(size);
  let x = seed | 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    v[i] = x;
  }
  return v;
}

const same = (a: Bytes | undefined, b: Bytes): boolean =>
  a !== undefined && Buffer.compare(a, b) === 0;

function expectCode(fn: () => unknown, code: string): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(MapKVError);
  expect((err as MapKVError).code).toBe(code);
}

afterEach(async () => {
  setHashMaskForTests(-1);
  await db.close();
});

describe('hash sub-database values', () => {
  it('1 MiB values round-trip, are replaced and removed, and give their pages back', () => {
    fresh();
    const h = hashDb(db);
    const big = bytes(1, 1 << 20);
    const big2 = bytes(2, (1 << 20) + 3);
    h.putSync('big', big);
    h.putSync('small', bytes(3, 10));
    expect(same(h.getBinary('big'), big)).toBe(true);
    expect(same(h.get('big'), big)).toBe(true);
    h.putSync('big', big2);
    expect(same(h.getBinary('big'), big2)).toBe(true);
    expect(db.check().problems).toEqual([]);
    expect(same(reopen().openDB<string, Bytes>('h').getBinary('big'), big2)).toBe(true);
    const h2 = hashDb(db);
    const free = db.stats().freePages;
    expect(h2.removeSync('big')).toBe(true);
    expect(h2.getBinary('big')).toBeUndefined();
    expect(db.check().problems).toEqual([]);
    // The removed value's overflow run went to the freelist.
    expect(db.stats().freePages - free).toBeGreaterThan(250);
    h2.putSync('again', big);
    expect(same(h2.get('again'), big)).toBe(true);
    expect(db.check().problems).toEqual([]);
  });

  it('values at the inline limit and just past it round-trip', () => {
    fresh();
    const h = hashDb(db);
    const limit = maxInlineRecord(4096) - 7;
    const sizes = [0, 1, limit - 2 - 3, limit - 1 - 3, limit - 3, limit + 1 - 3, limit + 2 - 3];
    h.transactionSync((txn) => {
      for (const [i, size] of sizes.entries()) txn.put(`k${i}`, bytes(i + 10, size));
      for (let i = 0; i < 300; i++) txn.put(`fill${i}`, bytes(i, i % 50));
    });
    for (const [i, size] of sizes.entries()) {
      expect(same(h.getBinary(`k${i}`), bytes(i + 10, size))).toBe(true);
    }
    // Swap each between inline and overflow.
    h.transactionSync((txn) => {
      for (const [i] of sizes.entries()) txn.put(`k${i}`, bytes(i, sizes[sizes.length - 1 - i]!));
    });
    for (const [i] of sizes.entries()) {
      expect(same(h.getBinary(`k${i}`), bytes(i, sizes[sizes.length - 1 - i]!))).toBe(true);
    }
    expect(db.check().problems).toEqual([]);
  });
});

describe('hash sub-database space', () => {
  it('a bucket that turns into a collision holder reuses the run of the value that filled it', async () => {
    // Every key hashes to 0: the 199th 100 KB value no longer fits the one bucket, which then
    // becomes a B+tree holder. Its value's overflow run was freed, one of its pages taken for
    // the holder's leaf and the value written to a new run: 21 pages stayed free, even in a
    // compact backup built in one step, which should have none.
    fresh(); // afterEach closes it
    setHashMaskForTests(0);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mapkv-hash-space-'));
    try {
      const file = path.join(dir, 'db.mkv');
      const fileDb = open<string, Bytes>(file, { ...enc, sync: 'none' });
      const h = hashDb(fileDb);
      h.transactionSync((txn) => {
        for (let i = 0; i < 199; i++) txn.put(`k${i}`, bytes(i + 1, 100_000));
      });
      expect(fileDb.check().problems).toEqual([]);
      // One step (the copy is ~20 MiB): steps each leave a few free pages of their own.
      const step = compactStep.bytes;
      compactStep.bytes = 1 << 30;
      try {
        await fileDb.backup(path.join(dir, 'copy.mkv'), { compact: true });
      } finally {
        compactStep.bytes = step;
      }
      await fileDb.close();
      const copy = open<string, Bytes>(path.join(dir, 'copy.mkv'));
      try {
        expect(copy.stats().freePages).toBe(0);
        const ch = copy.openDB<string, Bytes>('h');
        for (let i = 0; i < 199; i += 7)
          expect(same(ch.getBinary(`k${i}`), bytes(i + 1, 100_000))).toBe(true);
        expect(copy.check().problems).toEqual([]);
      } finally {
        await copy.close();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('hash sub-database transactions and snapshots', () => {
  it('a transaction across a hash and a B+tree sub-database is atomic', async () => {
    fresh();
    const h = hashDb(db);
    const t = db.openDB<string, Bytes>('t', { kind: 'btree', ...enc });
    const one = new Uint8Array([1]);
    expect(() =>
      h.transactionSync((txn) => {
        for (let i = 0; i < 500; i++) txn.put(`h${i}`, one);
        txn.db(t).put('t', one);
        txn.db(db).put('root', one);
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(h.count()).toBe(0);
    expect(t.has('t')).toBe(false);
    expect(db.has('root')).toBe(false);
    h.transactionSync((txn) => {
      txn.put('h', one);
      txn.db(t).put('t', one);
      txn.abort();
    });
    expect(h.has('h') || t.has('t')).toBe(false);
    await expect(
      h.transaction((txn) => {
        txn.put('h', one);
        txn.db(t).put('t', one);
        throw new Error('async boom');
      }),
    ).rejects.toThrow('async boom');
    expect(h.has('h') || t.has('t')).toBe(false);
    t.transactionSync((txn) => {
      txn.put('t', one);
      txn.db(h).put('h', one);
    });
    expect(h.has('h') && t.has('t')).toBe(true);
    expect(db.check().problems).toEqual([]);
  });

  it('a snapshot never sees a later commit, while the table grows and shrinks', () => {
    fresh();
    const h = hashDb(db);
    h.transactionSync((txn) => {
      for (let i = 0; i < 2000; i++) txn.put(`k${i}`, bytes(i, 30));
    });
    const snap = db.snapshot();
    const view = snap.db(h);
    h.transactionSync((txn) => {
      for (let i = 2000; i < 20_000; i++) txn.put(`k${i}`, bytes(i, 30));
      for (let i = 0; i < 1000; i++) txn.remove(`k${i}`);
      txn.put('k1500', bytes(0, 5));
    });
    h.transactionSync((txn) => {
      for (let i = 1000; i < 19_000; i++) txn.remove(`k${i}`);
    });
    expect(view.count()).toBe(2000);
    expect([...view.keys()].length).toBe(2000);
    for (let i = 0; i < 2000; i += 37)
      expect(same(view.getBinary(`k${i}`), bytes(i, 30))).toBe(true);
    expect(view.has('k5000')).toBe(false);
    expect(h.count()).toBe(1000);
    snap.close();
    expect(db.check().problems).toEqual([]);
  });
});

describe('hash key', () => {
  it('is drawn per database at its first write, kept in the file, and differs between databases', () => {
    fresh();
    const a = hashDb(db, 'a');
    const b = hashDb(db, 'b');
    expect(a.readLatest().desc.aux).toEqual([0, 0, 0, 0, 0, 0]);
    a.putSync('x', new Uint8Array(1));
    b.putSync('x', new Uint8Array(1));
    const da = a.readLatest().desc;
    const db2 = b.readLatest().desc;
    expect(da.aux[2]).toBe(1);
    expect(da.aux.slice(0, 2)).not.toEqual(db2.aux.slice(0, 2));
    const key = new TextEncoder().encode('some key');
    expect(hashOf(da, key, key.length)).not.toBe(hashOf(db2, key, key.length));
    // Emptied and refilled, the table keeps its key; reopened, the file gives it back.
    a.removeSync('x');
    a.putSync('y', new Uint8Array(1));
    expect(a.readLatest().desc.aux).toEqual(da.aux);
    reopen();
    expect(hashDb(db, 'a').readLatest().desc.aux).toEqual(da.aux);
    expect(hashDb(db, 'a').has('y')).toBe(true);
  });
});

describe('hash iteration', () => {
  it('yields each entry once, in (hash, key) order; ordered options and backwards steps are refused', () => {
    fresh();
    const h = hashDb(db);
    h.transactionSync((txn) => {
      for (let i = 0; i < 3000; i++) txn.put(`k${i}`, bytes(i, 8));
    });
    const desc = h.readLatest().desc;
    const te = new TextEncoder();
    const keys = [...h.keys()];
    expect(new Set(keys).size).toBe(3000);
    const order = keys.map((k) => [hashOf(desc, te.encode(k), te.encode(k).length), k] as const);
    for (let i = 1; i < order.length; i++) {
      const [h0, k0] = order[i - 1]!;
      const [h1, k1] = order[i]!;
      expect(h0 < h1 || (h0 === h1 && Buffer.compare(Buffer.from(k0), Buffer.from(k1)) < 0)).toBe(
        true,
      );
    }
    expect([...h.range({ limit: 7 })].length).toBe(7);
    expectCode(() => h.range({ reverse: true }), 'ERR_BAD_OPTION');
    expectCode(() => h.range({ start: 'a' }), 'ERR_BAD_OPTION');
    const ctx = h.readLatest();
    const cur = hashIndex.cursor(ctx.r, ctx.desc, ctx.r.pageCountLimit());
    expectCode(() => cur.seekBefore(null, 0), 'ERR_BAD_OPTION');
    expect(cur.seek(null, 0)).toBe(true);
    expectCode(() => cur.prev(), 'ERR_BAD_OPTION');
  });

  it('seek(k) stands at k, or at the entry after where k would be', async () => {
    for (const mask of [-1, 0x8000_0001]) {
      setHashMaskForTests(mask);
      if (mask !== -1) await db.close();
      fresh();
      const h = hashDb(db);
      h.transactionSync((txn) => {
        for (let i = 0; i < 600; i++) txn.put(`k${i}`, bytes(i, 40));
      });
      const keys = [...h.keys()];
      const ctx = h.readLatest();
      const cur = hashIndex.cursor(ctx.r, ctx.desc, ctx.r.pageCountLimit());
      const te = new TextEncoder();
      const keyAt = (): string =>
        Buffer.from(
          cur.keyBuf().subarray(cur.keyStart(), cur.keyStart() + cur.keyLength()),
        ).toString();
      for (let i = 0; i < keys.length; i += 13) {
        const k = te.encode(keys[i]!);
        expect(cur.seek(k, k.length)).toBe(true);
        expect(keyAt()).toBe(keys[i]);
        // An absent key: the walk from its place reaches only keys after it in the order.
        const missing = te.encode(`${keys[i]}-`);
        const rest: string[] = [];
        for (let ok = cur.seek(missing, missing.length); ok; ok = cur.next()) rest.push(keyAt());
        expect(keys.slice(keys.length - rest.length)).toEqual(rest);
      }
    }
  });
});
