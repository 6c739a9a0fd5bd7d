/**
 * Flat copies of a B+tree's branch levels (src/btree/flat.ts): once a committed tree version
 * has been read often enough, point reads go from a sorted array of leaf bounds straight to the
 * leaf. They must reach the leaf the descent reaches for every key, follow each commit, leave a
 * snapshot its own version, and step aside for a tree whose bounds a damaged file put out of
 * order.
 */
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { DatabaseBase } from '../../src/index';
import { openOn } from '../../src/open';
import { MemoryStorage } from '../../src/storage/memory';
import { SnapshotReader } from '../../src/txn/snapshot';
import type { PageReader } from '../../src/txn/pages';
import type { DbDescriptor } from '../../src/format/meta';
import { BRANCH_RECORD_HEADER, HEADER_SIZE, PageType } from '../../src/format/layout';
import { branchChild, branchSearch, checkNode, nodeCount, slotAt } from '../../src/btree/node';
import { flatLeaf, flattenTree } from '../../src/btree/flat';
import { prng } from '../helpers/api-helpers';

type Bytes = Uint8Array;
const PS = 4096;
const enc = { keyEncoding: 'binary', valueEncoding: 'binary' } as const;

let spy: ReturnType<typeof vi.spyOn> | null = null;
afterEach(() => {
  spy?.mockRestore();
  spy = null;
});

function openTree(storage = new MemoryStorage({ segmentSize: 1 << 20 }), verifyChecksums = false) {
  const db = openOn<Bytes, Bytes>(storage, '', { ...enc, pageSize: PS, verifyChecksums });
  const t = db.openDB<Bytes, Bytes>('t', { ...enc });
  return { storage, db, t };
}

/** The leaf page the descent of treeGet reaches for `k`. */
function descentLeaf(r: PageReader, d: DbDescriptor, k: Bytes): number {
  let pgno = d.root;
  for (let level = d.depth; level > 1; level--) {
    const b = r.page(pgno);
    checkNode(b, r.at, PS, PageType.Branch, pgno);
    pgno = branchChild(b, r.at, branchSearch(b, r.at, PS, k, k.length));
  }
  return pgno;
}

function latest(t: DatabaseBase<Bytes, Bytes>): { r: PageReader; d: DbDescriptor } {
  const { r, desc } = t.readLatest();
  return { r, d: desc };
}

/** Pages a committed snapshot's reader reads during `fn`. */
function pagesRead(fn: () => void): number {
  spy ??= vi.spyOn(SnapshotReader.prototype, 'page');
  const before = spy.mock.calls.length;
  fn();
  return spy.mock.calls.length - before;
}

const keyOf = (i: number): Buffer => Buffer.from(`key${String(i).padStart(8, '0')}`);
const valueOf = (i: number, size = 40): Bytes => Buffer.alloc(size, i & 0xff);

/** A tree of `n` keys (keyOf) with 40-byte values, and a model of it. */
function bigTree(n: number) {
  const o = openTree();
  const live = new Map<string, Bytes>();
  o.t.transactionSync((txn) => {
    for (let i = 0; i < n; i++) {
      txn.put(keyOf(i), valueOf(i));
      live.set(keyOf(i).toString('hex'), valueOf(i));
    }
  });
  // One more commit, elsewhere: open checks the pages the newest commit lists (falling back
  // to the commit before when one does not hold what it wrote), and a test here damages one.
  o.db.putSync(Buffer.from('after'), Buffer.from('x'));
  return { ...o, live };
}

function readAll(t: Pick<DatabaseBase<Bytes, Bytes>, 'getBinary'>, live: Map<string, Bytes>) {
  const wrong: string[] = [];
  for (const [hex, v] of live) {
    const got = t.getBinary(Buffer.from(hex, 'hex'));
    if (got === undefined || Buffer.compare(got, v) !== 0) wrong.push(hex);
  }
  for (const k of ['', 'a', 'key', 'key0000000', 'key99999999', 'kez', '\xff']) {
    const b = Buffer.from(k, 'latin1');
    if (!live.has(b.toString('hex')) && t.getBinary(b) !== undefined) wrong.push(k);
  }
  expect(wrong).toEqual([]);
}

describe('flat B+tree branch levels', () => {
  it('reach the leaf the descent reaches, for any keys and any probe', () => {
    // Keys from a small alphabet with shared prefixes, zero bytes and lengths from 0 up to
    // past the 4 head bytes; values long enough for trees of depth 2 and 3.
    const keyArb = fc.uint8Array({ minLength: 0, maxLength: 14 }).map((a) => {
      const b = Buffer.from(a);
      for (let i = 0; i < b.length; i++) b[i] = [0, 1, 0x61, 0x62, 0xff][b[i]! % 5]!;
      return b;
    });
    fc.assert(
      fc.property(
        fc.uniqueArray(keyArb, {
          minLength: 200,
          maxLength: 1500,
          selector: (k) => k.toString('hex'),
        }),
        fc.array(keyArb, { minLength: 50, maxLength: 200 }),
        fc.integer({ min: 20, max: 600 }),
        (keys, probes, size) => {
          const o = openTree();
          o.t.transactionSync((txn) => {
            for (const k of keys) txn.put(k, Buffer.alloc(size, 7));
          });
          const { r, d } = latest(o.t);
          const flat = flattenTree(r, d);
          if (d.depth < 2) {
            expect(flat).toBeNull();
          } else {
            expect(flat).not.toBeNull();
            for (const k of [...keys, ...probes]) {
              expect(flatLeaf(flat!, k, k.length)).toBe(descentLeaf(r, d, k));
            }
          }
          o.db.close();
        },
      ),
      { numRuns: 40 },
    );
  });

  it('take a read from the depth of the tree to one page, and read what the pages hold', () => {
    const o = bigTree(30_000);
    expect(latest(o.t).d.depth).toBe(3);
    // The first reads of a version descend: root, branch, leaf (and the first one reads the
    // root once more, to name the version).
    expect(pagesRead(() => o.t.getBinary(keyOf(5)))).toBe(4);
    expect(pagesRead(() => o.t.getBinary(keyOf(6)))).toBe(3);
    readAll(o.t, o.live);
    let pages = 0;
    for (let i = 0; i < 1000; i++) pages += pagesRead(() => o.t.getBinary(keyOf(i * 29)));
    expect(pages).toBe(1000);
    readAll(o.t, o.live);
    expect(o.db.check().problems).toEqual([]);
    o.db.close();
  });

  it('follow each commit, while a snapshot keeps reading its own version', () => {
    const o = bigTree(20_000);
    readAll(o.t, o.live);
    const before = new Map(o.live);
    const snap = o.t.snapshot();
    const rnd = prng(11);
    for (let round = 0; round < 5; round++) {
      // Splits (new keys between and past the old ones), merges (removals), overwrites.
      o.t.transactionSync((txn) => {
        for (let j = 0; j < 3000; j++) {
          const i = Math.floor(rnd.next() * 26_000);
          const k = rnd.next() < 0.2 ? Buffer.from(`key${String(i).padStart(8, '0')}x`) : keyOf(i);
          const hex = k.toString('hex');
          if (rnd.next() < 0.4 && o.live.has(hex)) {
            txn.remove(k);
            o.live.delete(hex);
          } else {
            const v = valueOf(i + round, 1 + Math.floor(rnd.next() * 100));
            txn.put(k, v);
            o.live.set(hex, v);
          }
        }
      });
      readAll(o.t, o.live);
      readAll(snap, before);
    }
    snap.close();
    expect(o.db.check().problems).toEqual([]);
    o.db.close();
  });

  it('are not kept for a tree whose bounds a damaged file put out of order', () => {
    const o = bigTree(3_000);
    const { r, d } = latest(o.t);
    expect(d.depth).toBe(2);
    expect(flattenTree(r, d)).not.toBeNull();
    // Separator 2 of the root branch made smaller than separator 1: its first byte to 0.
    const b = r.page(d.root);
    const at = r.at;
    expect(nodeCount(b, at)).toBeGreaterThan(3);
    const key2 = at + slotAt(b, at, 2) + BRANCH_RECORD_HEADER;
    expect(key2).toBeGreaterThan(at + HEADER_SIZE);
    const image = o.storage.currentImage();
    o.db.close();
    image[d.root * PS + (key2 - at)] = 0;
    const v = openTree(MemoryStorage.fromImage(image, { segmentSize: 1 << 20 }));
    const l = latest(v.t);
    expect(flattenTree(l.r, l.d)).toBeNull();
    // Reads keep descending through the pages, however often they come.
    let pages = 0;
    for (let i = 0; i < 2000; i++) pages += pagesRead(() => v.t.getBinary(keyOf(i)));
    // The descent's two pages per read; besides them only the root, read once to name the
    // version and once by the build that gave up.
    expect(pages).toBeGreaterThanOrEqual(4000);
    expect(pages).toBeLessThanOrEqual(4002);
    v.db.close();
  });

  it('are not built over a branch record that runs past its page', () => {
    const o = bigTree(3_000);
    const { r, d } = latest(o.t);
    const b = r.page(d.root);
    const at = r.at;
    const rec = slotAt(b, at, 1);
    const image = o.storage.currentImage();
    o.db.close();
    // Record 1's key length: to the end of the page and one byte past it.
    const len = PS - rec - BRANCH_RECORD_HEADER + 1;
    image[d.root * PS + rec] = len & 0xff;
    image[d.root * PS + rec + 1] = len >>> 8;
    const v = openTree(MemoryStorage.fromImage(image, { segmentSize: 1 << 20 }));
    const l = latest(v.t);
    expect(() => flattenTree(l.r, l.d)).toThrow(/record outside the page/);
    // One byte less ends at the page's end: a longer key, but inside the page.
    const fits = v.storage.currentImage();
    v.db.close();
    fits[d.root * PS + rec] = (len - 1) & 0xff;
    fits[d.root * PS + rec + 1] = (len - 1) >>> 8;
    const w = openTree(MemoryStorage.fromImage(fits, { segmentSize: 1 << 20 }));
    const m = latest(w.t);
    expect(() => flattenTree(m.r, m.d)).not.toThrow();
    w.db.close();
  });

  it('are not used by a handle that verifies every checksum', () => {
    const o = bigTree(3_000);
    const image = o.storage.currentImage();
    o.db.close();
    const v = openTree(MemoryStorage.fromImage(image, { segmentSize: 1 << 20 }), true);
    readAll(v.t, o.live);
    let pages = 0;
    for (let i = 0; i < 100; i++) pages += pagesRead(() => v.t.getBinary(keyOf(i)));
    expect(pages).toBe(200);
    v.db.close();
  });

  it("do not push out a hash table's flat copy, however many versions of a tree are read", () => {
    const o = bigTree(20_000);
    const h = o.db.openDB<Bytes, Bytes>('h', { kind: 'hash', ...enc });
    h.transactionSync((txn) => {
      for (let i = 0; i < 12_000; i++) txn.put(keyOf(i), valueOf(i, 300));
    });
    // Read often enough, the hash table's version is flat: one page (the bucket) per read.
    for (let i = 0; i < 2_000; i++) h.getBinary(keyOf(i));
    let pages = 0;
    for (let i = 0; i < 100; i++) pages += pagesRead(() => h.getBinary(keyOf(i)));
    expect(pages).toBe(100);
    // Ten commits to the tree, each version read a few times (each one counts its reads
    // towards a flat copy of its own), the hash table read in between.
    for (let c = 0; c < 10; c++) {
      o.t.putSync(keyOf(c), valueOf(c + 1));
      for (let i = 0; i < 3; i++) o.t.getBinary(keyOf(i));
      expect(h.getBinary(keyOf(c))).toEqual(valueOf(c, 300));
    }
    pages = 0;
    for (let i = 0; i < 100; i++) pages += pagesRead(() => h.getBinary(keyOf(i)));
    // The bucket per read: the last read of the loop found the version again (by its root).
    expect(pages).toBe(100);
    o.db.close();
  });
});
