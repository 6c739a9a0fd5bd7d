/**
 * What a hash point read leans on for speed, and that must never change what it returns:
 *
 * - flat directories (src/hash/directory.ts): once a committed table version has been read
 *   often enough, reads start from a flat copy of its directories instead of reading the
 *   directory pages. A new commit, an older snapshot, a damaged directory, a commit id that
 *   comes round again (the newest meta damaged) and a commit whose flush fails while another
 *   handle reads must all read as the pages say;
 * - bucket heaps in slot order (src/hash/bucket.ts, heapInOrder): writes keep each bucket's
 *   records in slot order, so that a read can fetch the record's lines before the slot names
 *   them. Buckets written by older versions, in insertion order, must read right and get in
 *   order.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MapKVError, type Database, type DatabaseBase } from '../../src/index';
import { openOn } from '../../src/open';
import { MemoryStorage } from '../../src/storage/memory';
import { crc32c } from '../../src/format/crc32c';
import {
  H_AUX,
  H_COUNT,
  H_FRAG,
  H_TYPE,
  H_UPPER,
  HEADER_SIZE,
  LEAF_RECORD_HEADER,
  PageType,
  readU16,
  readU32,
  writeU16,
  writeU32,
} from '../../src/format/layout';
import { hashIndex } from '../../src/hash/index';
import { MappedStorage } from '../../src/storage/mapped';
import { SnapshotReader } from '../../src/txn/snapshot';
import { ApiFolder, prng } from '../helpers/api-helpers';

type Bytes = Uint8Array;
type Reader = Pick<DatabaseBase<string, Bytes>, 'getBinary'>;
const PS = 4096;
const SEG = 1 << 20;
const enc = { keyEncoding: 'string', valueEncoding: 'binary' } as const;
const SLOT = 6;

function value(i: number, size: number): Bytes {
  // A Buffer, as getBinary returns.
  const v = Buffer.alloc(size);
  for (let j = 0; j < size; j++) v[j] = (i * 31 + j * 7) & 0xff;
  return v;
}

interface Table {
  storage: MemoryStorage;
  db: Database<string, Bytes>;
  h: DatabaseBase<string, Bytes>;
}

function openTable(storage = new MemoryStorage({ segmentSize: SEG }), verifyChecksums = false) {
  const db = openOn<string, Bytes>(storage, '', { ...enc, pageSize: PS, verifyChecksums });
  const h = db.openDB<string, Bytes>('h', { kind: 'hash', ...enc });
  return { storage, db, h };
}

/**
 * A table of `n` keys of 300-byte values: some 9 records per bucket, so from about 5,000 keys
 * on the root directory is at full width with directories below it.
 */
function bigTable(n: number): Table & { live: Map<string, Bytes> } {
  const t = openTable();
  const live = new Map<string, Bytes>();
  t.h.transactionSync((txn) => {
    for (let i = 0; i < n; i++) {
      const v = value(i, 300);
      txn.put(`k${i}`, v);
      live.set(`k${i}`, v);
    }
  });
  // One more commit, elsewhere: open checks the pages the newest commit lists (falling back
  // to the commit before when one does not hold what it wrote), and tests here damage or
  // rewrite hash pages on purpose.
  t.db.putSync('after', value(0, 1));
  return { ...t, live };
}

let spy: ReturnType<typeof vi.spyOn> | null = null;
afterEach(() => {
  spy?.mockRestore();
  spy = null;
});

function latestTxn(h: DatabaseBase<string, Bytes>): number {
  return (h.readLatest().r as SnapshotReader).meta.txnId;
}

/**
 * A writer on a real file whose next commit, once armed by `failNext(fn)`, runs `fn` after its
 * meta went into the file and then fails as a failed flush does (the meta is put back).
 */
function failingWriter(file: string): {
  w: Database<string, Bytes>;
  failNext: (fn: () => void) => void;
} {
  let during: (() => void) | null = null;
  const w = openOn<string, Bytes>(MappedStorage.open(file), file, enc, {
    afterMetaWrite: () => {
      const fn = during;
      if (fn === null) return;
      during = null;
      fn();
      throw new Error('the flush failed');
    },
  });
  return { w, failNext: (fn) => (during = fn) };
}

/**
 * Writes value(i + bump) under every other key of the 12,000, from key `first`, in one commit;
 * returns `model` with those values.
 */
function rewriteHalf(
  h: DatabaseBase<string, Bytes>,
  model: Map<string, Bytes>,
  first: number,
  bump: number,
): Map<string, Bytes> {
  h.transactionSync((txn) => {
    for (let i = first; i < 12_000; i += 2) txn.put(`k${i}`, value(i + bump, 300));
  });
  const next = new Map(model);
  for (let i = first; i < 12_000; i += 2) next.set(`k${i}`, value(i + bump, 300));
  return next;
}

/** Damages the checksum word of commit `txn`'s meta: the handle goes back to the one before. */
function damageMeta(storage: MemoryStorage, txn: number): void {
  const slot = txn % 2;
  const word = storage.readSegment(0).slice(slot * PS, slot * PS + 4);
  word[0] ^= 0xff;
  storage.writeAt(slot * PS, [word]);
}

/** Pages a committed snapshot's reader reads during `fn`. */
function pagesRead(fn: () => void): number {
  spy ??= vi.spyOn(SnapshotReader.prototype, 'page');
  const before = spy.mock.calls.length;
  fn();
  return spy.mock.calls.length - before;
}

/** Reads every key of `live` and some absent ones, comparing with the model. */
function readAll(h: Reader, live: Map<string, Bytes>): void {
  const wrong: string[] = [];
  for (const [k, v] of live) {
    const got = h.getBinary(k);
    if (got === undefined || Buffer.compare(got, v) !== 0) wrong.push(k);
  }
  for (let i = 0; i < 500; i++)
    if (h.getBinary(`absent${i}`) !== undefined) wrong.push(`absent${i}`);
  expect(wrong).toEqual([]);
}

describe('flat hash directories', () => {
  it('take reads from three pages to one, and read what the pages hold', () => {
    const t = bigTable(12_000);
    // The first reads of a version go through the directory pages: root, child, bucket.
    expect(pagesRead(() => t.h.getBinary('k1'))).toBeGreaterThanOrEqual(3);
    readAll(t.h, t.live);
    // After that many reads the version is flat: one page (the bucket) per read.
    let pages = 0;
    for (let i = 0; i < 1000; i++) pages += pagesRead(() => t.h.getBinary(`k${i}`));
    expect(pages).toBe(1000);
    readAll(t.h, t.live);
    expect(t.db.check().problems).toEqual([]);
    t.db.close();
  });

  it('are built for a table read in turn with another', () => {
    const t = bigTable(12_000);
    const s = t.db.openDB<string, Bytes>('s', { kind: 'hash', ...enc });
    s.putSync('one', value(1, 10));
    // Reads alternate: each switch finds the version again by its root page.
    for (let i = 0; i < 2_000; i++) {
      expect(t.h.getBinary(`k${i}`)).toEqual(t.live.get(`k${i}`));
      expect(s.getBinary('one')).toEqual(value(1, 10));
    }
    let pages = 0;
    for (let i = 0; i < 100; i++) {
      pages += pagesRead(() => t.h.getBinary(`k${i}`));
      s.getBinary('one');
    }
    // The bucket alone: the handle remembers the last two versions it looked up, so reads
    // that alternate between two tables find theirs without its root page.
    expect(pages).toBe(100);
    // With a third table in the turn, each read names its version by the root page again:
    // the root and the bucket (through the directories, four).
    const u = t.db.openDB<string, Bytes>('u', { kind: 'hash', ...enc });
    u.putSync('two', value(2, 10));
    // One turn first: the first read after that commit also reads the catalog for the new
    // descriptor.
    expect(t.h.getBinary('k0')).toEqual(t.live.get('k0'));
    s.getBinary('one');
    u.getBinary('two');
    pages = 0;
    for (let i = 0; i < 100; i++) {
      pages += pagesRead(() => t.h.getBinary(`k${i}`));
      s.getBinary('one');
      u.getBinary('two');
    }
    expect(pages).toBe(200);
    readAll(t.h, t.live);
    t.db.close();
  });

  it('are not used by a handle that verifies every checksum', () => {
    const t = bigTable(12_000);
    const image = t.storage.currentImage();
    t.db.close();
    const v = openTable(MemoryStorage.fromImage(image, { segmentSize: SEG }), true);
    readAll(v.h, t.live);
    // Root, child directory and bucket for most keys; a flat table would read 100 pages.
    let pages = 0;
    for (let i = 0; i < 100; i++) pages += pagesRead(() => v.h.getBinary(`k${i}`));
    expect(pages).toBeGreaterThan(250);
    v.db.close();
  });

  it('follow each commit, while a snapshot keeps reading its own version', () => {
    const t = bigTable(12_000);
    readAll(t.h, t.live);
    const before = new Map(t.live);
    const snap = t.h.snapshot();
    const rnd = prng(7);
    for (let round = 0; round < 6; round++) {
      // Splits (new keys), merges (removals) and overwrites of other sizes.
      t.h.transactionSync((txn) => {
        for (let j = 0; j < 1500; j++) {
          const i = Math.floor(rnd.next() * 16_000);
          const k = `k${i}`;
          if (rnd.next() < 0.4 && t.live.has(k)) {
            txn.remove(k);
            t.live.delete(k);
          } else {
            const v = value(i + round, Math.floor(rnd.next() * 400));
            txn.put(k, v);
            t.live.set(k, v);
          }
        }
      });
      readAll(t.h, t.live);
      readAll(snap, before);
    }
    expect(snap.getBinary('k12000')).toBeUndefined();
    snap.close();
    expect(t.db.check().problems).toEqual([]);
    t.db.close();
  });

  it('leave a damaged directory to the reads that pass through it', () => {
    const t = bigTable(12_000);
    const root = t.h.readLatest().desc.root;
    const image = t.storage.currentImage();
    t.db.close();
    // A child directory of the root: its start bit no longer what the descent reaches.
    expect(image[root * PS + H_TYPE]).toBe(PageType.HashDirectory);
    let child = 0;
    for (let j = 0; j < readU16(image, root * PS + H_COUNT) && child === 0; j++) {
      const c = readU32(image, root * PS + HEADER_SIZE + 4 * j);
      if (image[c * PS + H_TYPE] === PageType.HashDirectory) child = c;
    }
    expect(child).not.toBe(0);
    writeU32(image, child * PS + H_AUX, readU32(image, child * PS + H_AUX) + 1);
    writeU32(image, child * PS, crc32c(image, child * PS + 4, child * PS + PS));

    const d = openTable(MemoryStorage.fromImage(image, { segmentSize: SEG }));
    const outcome = (k: string): string => {
      try {
        const v = d.h.getBinary(k);
        return v !== undefined && Buffer.compare(v, t.live.get(k)!) === 0 ? 'ok' : 'wrong';
      } catch (err) {
        if (err instanceof MapKVError && err.code === 'ERR_CORRUPT') return 'corrupt';
        throw err;
      }
    };
    // The first pass reads through the pages (and asks for a flat table on the way); the
    // second after it: the same keys fail, the same keys read right.
    const first = [...t.live.keys()].map(outcome);
    const second = [...t.live.keys()].map(outcome);
    expect(second).toEqual(first);
    expect(first).not.toContain('wrong');
    expect(first).toContain('corrupt');
    expect(first.filter((x) => x === 'ok').length).toBeGreaterThan(t.live.size / 2);
    d.db.close();
  });

  it('are dropped when the handle goes back to an older commit, whose id comes round again', () => {
    const t = bigTable(12_000);
    const base = new Map(t.live);
    // Commit A rewrites the odd keys; the handle flattens it.
    const a = rewriteHalf(t.h, base, 1, 1);
    readAll(t.h, a);
    readAll(t.h, a);
    // A's meta is damaged (its checksum word): the handle reads the commit before it again.
    const txnA = latestTxn(t.h);
    damageMeta(t.storage, txnA);
    readAll(t.h, base);
    // Commit B, from that older state, takes A's commit id (and, from the same free pages,
    // A's page numbers) and rewrites the even keys instead.
    const now = rewriteHalf(t.h, base, 0, 2);
    expect(latestTxn(t.h)).toBe(txnA);
    readAll(t.h, now);
    readAll(t.h, now);
    expect(t.db.check().problems).toEqual([]);
    t.db.close();
  });

  it('stay apart for a snapshot of the commit the handle went back from', () => {
    // As above, but a snapshot of commit A stays open and goes on reading A after the handle
    // went back: its tables must not serve commit B, which takes A's id and A's root page.
    const t = bigTable(12_000);
    const base = new Map(t.live);
    const a = rewriteHalf(t.h, base, 1, 1);
    const txnA = latestTxn(t.h);
    const snapA = t.h.snapshot();
    damageMeta(t.storage, txnA);
    readAll(t.h, base);
    readAll(snapA, a);
    readAll(snapA, a);
    const now = rewriteHalf(t.h, base, 0, 2);
    expect(latestTxn(t.h)).toBe(txnA);
    readAll(t.h, now);
    readAll(t.h, now);
    snapA.close();
    expect(t.db.check().problems).toEqual([]);
    t.db.close();
  });

  it("and the sub-databases a handle looks up during a failed commit's flush are the next commit's", async () => {
    // Handle R reads during the flush of W's commit A, which fails; W's next commit B, under
    // A's id, changes another sub-database only: R must read 'h' as B has it (unchanged). R
    // once adopted A there, and kept A's descriptor of 'h' for B (cached by commit id); it now
    // reads the commit before A until A is published (src/txn/env.ts, "Visibility").
    const folder = new ApiFolder();
    try {
      const file = folder.file('c.mkv');
      const { w, failNext } = failingWriter(file);
      const wh = w.openDB<string, Bytes>('h', { kind: 'hash', ...enc });
      const wx = w.openDB<string, Bytes>('x', { kind: 'hash', ...enc });
      wh.transactionSync((txn) => {
        for (let i = 0; i < 100; i++) txn.put(`k${i}`, value(i, 10));
      });
      const r = folder.open<string, Bytes>(enc, file);
      const rh = r.openDB<string, Bytes>('h', { kind: 'hash', ...enc });
      expect(rh.getBinary('k1')).toEqual(value(1, 10));
      let seen: Bytes | undefined;
      failNext(() => {
        seen = rh.getBinary('k1');
      });
      expect(() =>
        wh.transactionSync((txn) => {
          for (let i = 0; i < 100; i++) txn.put(`k${i}`, value(i + 1, 20));
        }),
      ).toThrow('the flush failed');
      expect(seen).toEqual(value(1, 10));
      wx.putSync('other', value(0, 5));
      for (let i = 0; i < 100; i++) expect(rh.getBinary(`k${i}`)).toEqual(value(i, 10));
      await w.close();
    } finally {
      await folder.cleanup();
    }
  });

  it("are never A's when another handle reads during the flush of a commit A that fails", async () => {
    // Handle W's commit A fails after its meta went into the file (its flush fails), while
    // handle R reads all the while (enough to flatten a table); W's next commit B takes A's
    // id. R once adopted A there and flattened A's table, then read B through it (ERR_CORRUPT
    // or wrong values) whenever B's meta came out byte for byte A's: R reads the commit before
    // A instead (src/txn/env.ts, "Visibility").
    const folder = new ApiFolder();
    try {
      const file = folder.file('h.mkv');
      const { w, failNext } = failingWriter(file);
      const wh = w.openDB<string, Bytes>('h', { kind: 'hash', ...enc });
      const live = new Map<string, Bytes>();
      wh.transactionSync((txn) => {
        for (let i = 0; i < 12_000; i++) {
          txn.put(`k${i}`, value(i, 300));
          live.set(`k${i}`, value(i, 300));
        }
      });
      const r = folder.open<string, Bytes>(enc, file);
      const rh = r.openDB<string, Bytes>('h', { kind: 'hash', ...enc });
      readAll(rh, live);
      const before = latestTxn(rh);
      let txnInFlush = 0;
      failNext(() => {
        readAll(rh, live);
        readAll(rh, live);
        txnInFlush = latestTxn(rh);
      });
      expect(() =>
        wh.transactionSync((txn) => {
          for (let i = 1; i < 12_000; i += 2) txn.put(`k${i}`, value(i + 1, 300));
        }),
      ).toThrow('the flush failed');
      expect(txnInFlush).toBe(before);
      // B: the even keys instead, under A's commit id; R reads nothing in between. B also
      // puts a key in the main database, whose entry count is in the meta.
      wh.transactionSync((txn) => {
        for (let i = 0; i < 12_000; i += 2) txn.put(`k${i}`, value(i + 2, 300));
        txn.db(w).put('b', value(0, 1));
      });
      for (let i = 0; i < 12_000; i += 2) live.set(`k${i}`, value(i + 2, 300));
      readAll(rh, live);
      expect(latestTxn(rh)).toBe(before + 1);
      readAll(rh, live);
      await w.close();
    } finally {
      await folder.cleanup();
    }
  });
});

/** The buckets the latest commit of `h` reaches. */
function buckets(h: DatabaseBase<string, Bytes>): { b: Uint8Array; o: number; pgno: number }[] {
  const { r, desc } = h.readLatest();
  const pages: number[] = [];
  hashIndex.check(r, desc, { visit: (p) => pages.push(p), problem: (m) => expect.fail(m) }, 'h');
  const out: { b: Uint8Array; o: number; pgno: number }[] = [];
  for (const pgno of pages) {
    const b = r.page(pgno);
    const o = r.at;
    if (b[o + H_TYPE] === PageType.HashBucket && b[o + 5] === 0) out.push({ b, o, pgno });
  }
  return out;
}

function recordSize(b: Uint8Array, p: number): number {
  const klen = readU16(b, p);
  return LEAF_RECORD_HEADER + klen + ((b[p + 2]! & 1) !== 0 ? 4 : readU32(b, p + 3));
}

/** Whether bucket `b[o]`'s records tile its heap in slot order, slot 0's at the page's end. */
function inOrder(b: Uint8Array, o: number): boolean {
  const n = readU16(b, o + H_COUNT);
  if (readU32(b, o + H_FRAG) !== 0) return false;
  let end = PS;
  for (let i = 0; i < n; i++) {
    const r = readU16(b, o + HEADER_SIZE + SLOT * i + 4);
    if (r + recordSize(b, o + r) !== end) return false;
    end = r;
  }
  return end === readU32(b, o + H_UPPER);
}

/** The keys bucket `b[o]` holds. */
function keysOf(b: Uint8Array, o: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < readU16(b, o + H_COUNT); i++) {
    const p = o + readU16(b, o + HEADER_SIZE + SLOT * i + 4);
    out.push(
      Buffer.from(
        b.subarray(p + LEAF_RECORD_HEADER, p + LEAF_RECORD_HEADER + readU16(b, p)),
      ).toString(),
    );
  }
  return out;
}

describe('bucket heaps in slot order', () => {
  it('stay in order through inserts, overwrites of every size and removals', () => {
    const t = openTable();
    const live = new Map<string, Bytes>();
    const rnd = prng(11);
    for (let round = 0; round < 40; round++) {
      t.h.transactionSync((txn) => {
        for (let j = 0; j < 150; j++) {
          const i = Math.floor(rnd.next() * 2_000);
          const k = `k${i}`;
          const roll = rnd.next();
          if (roll < 0.3 && live.has(k)) {
            txn.remove(k);
            live.delete(k);
          } else {
            // Values from empty to past a page (overflow runs) so overwrites shrink and grow.
            const size = roll > 0.98 ? 5000 : Math.floor(rnd.next() * 200);
            const v = value(i + round, size);
            txn.put(k, v);
            live.set(k, v);
          }
        }
      });
      const bs = buckets(t.h);
      expect(bs.length).toBeGreaterThan(0);
      for (const { b, o, pgno } of bs) expect(inOrder(b, o), `bucket ${pgno}`).toBe(true);
    }
    readAll(t.h, live);
    expect(t.db.check().problems).toEqual([]);
    t.db.close();
  });

  it('read right in insertion order (older files), and get in order at their next write', () => {
    const t = bigTable(3_000);
    const { b, o, pgno } = buckets(t.h).find((x) => readU16(x.b, x.o + H_COUNT) >= 6)!;
    const keys = keysOf(b, o);
    const image = t.storage.currentImage();
    t.db.close();
    // Reverse the heap: slot 0's record now lies lowest, as insertion order can leave it.
    const at = pgno * PS;
    const n = readU16(image, at + H_COUNT);
    const recs = [];
    for (let i = 0; i < n; i++) {
      const r = readU16(image, at + HEADER_SIZE + SLOT * i + 4);
      recs.push(image.slice(at + r, at + r + recordSize(image, at + r)));
    }
    let end = PS;
    for (let i = n - 1; i >= 0; i--) {
      end -= recs[i]!.length;
      image.set(recs[i]!, at + end);
      writeU16(image, at + HEADER_SIZE + SLOT * i + 4, end);
    }
    writeU32(image, at, crc32c(image, at + 4, at + PS));

    const d = openTable(MemoryStorage.fromImage(image, { segmentSize: SEG }));
    const holding = (k: string) => buckets(d.h).find((x) => keysOf(x.b, x.o).includes(k))!;
    expect(inOrder(holding(keys[0]!).b, holding(keys[0]!).o)).toBe(false);
    expect(d.db.check().problems).toEqual([]);
    readAll(d.h, t.live);
    // The first transaction to write the bucket puts it in order (here with removals, which
    // in an ordered heap leave no dead bytes), and inserts after keep it so.
    d.h.transactionSync((txn) => {
      txn.remove(keys[0]!);
      txn.remove(keys[2]!);
    });
    t.live.delete(keys[0]!);
    t.live.delete(keys[2]!);
    const after = holding(keys[1]!);
    expect(inOrder(after.b, after.o)).toBe(true);
    readAll(d.h, t.live);
    expect(d.db.check().problems).toEqual([]);
    const grown = value(99, 310);
    d.h.putSync(keys[1]!, grown);
    t.live.set(keys[1]!, grown);
    const ordered = holding(keys[1]!);
    expect(inOrder(ordered.b, ordered.o)).toBe(true);
    readAll(d.h, t.live);
    expect(d.db.check().problems).toEqual([]);
    d.db.close();
  });
});
