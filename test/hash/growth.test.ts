/**
 * Growth and shrink of the hash table at scale, and the cost of one write as it grows.
 *
 * - From empty to 1,000,000 entries and back to empty, check() clean at checkpoints; emptied,
 *   the table owns no page, and refilling it reuses the freed pages (the file barely grows).
 * - Pages one put or remove writes (counted by wrapping the PageWriter: every page a
 *   transaction writes is one it allocated) at 10, 10,000 and 1,000,000 entries, and at
 *   10,000,000 in a file on disk: bounded by the directory levels plus a split, not by the
 *   table size. Page counts, never times.
 */
import { describe, expect, it } from 'vitest';
import type { DatabaseBase } from '../../src/index';
import { open, openOn } from '../../src/open';
import { MemoryStorage } from '../../src/storage/memory';
import { hashShape } from '../../src/hash/check';
import { hashIndex } from '../../src/hash/index';
import type { PageWriter } from '../../src/txn/pages';
import type { WriteTxn } from '../../src/txn/write';
import { tempFolder } from '../helpers/temp-files';

const N = 1_000_000;
const BATCH = 100_000;

const key = (i: number): string => `key${String(i).padStart(8, '0')}`;
const value = (i: number): Uint8Array => {
  const v = new Uint8Array(20);
  new DataView(v.buffer).setUint32(0, i);
  return v;
};

const same = (a: Uint8Array | undefined, b: Uint8Array): boolean =>
  a !== undefined && Buffer.compare(a, b) === 0;

/** Delegates to a write transaction and counts the pages it hands out (new or copied). */
class CountingWriter implements PageWriter {
  written = 0;
  constructor(private readonly w: WriteTxn) {}
  get pageSize(): number {
    return this.w.pageSize;
  }
  get at(): number {
    return this.w.at;
  }
  set at(v: number) {
    this.w.at = v;
  }
  get txnId(): number {
    return this.w.txnId;
  }
  get layout(): number {
    return this.w.layout;
  }
  get treeHint(): object | null {
    return this.w.treeHint;
  }
  set treeHint(h: object | null) {
    this.w.treeHint = h;
  }
  get scratch(): Uint8Array {
    return this.w.scratch;
  }
  get verifyChecksums(): boolean {
    return this.w.verifyChecksums;
  }
  page(pgno: number): Uint8Array {
    return this.w.page(pgno);
  }
  runBytes(first: number, pages: number, from: number, length: number) {
    return this.w.runBytes(first, pages, from, length);
  }
  pageCountLimit(): number {
    return this.w.pageCountLimit();
  }
  touch(pgno: number): number {
    const copy = this.w.touch(pgno);
    if (copy !== pgno) this.written++;
    return copy;
  }
  allocPage(): number {
    this.written++;
    return this.w.allocPage();
  }
  freePage(pgno: number): void {
    this.w.freePage(pgno);
  }
  allocRun(pages: number): number {
    this.written += pages;
    return this.w.allocRun(pages);
  }
  freeRun(first: number, pages: number): void {
    this.w.freeRun(first, pages);
  }
  pageW(pgno: number): Uint8Array {
    return this.w.pageW(pgno);
  }
  writeRun(first: number, from: number, data: Uint8Array): void {
    this.w.writeRun(first, from, data);
  }
  zeroRun(first: number, from: number, to: number): void {
    this.w.zeroRun(first, from, to);
  }
}

interface Cost {
  levels: number;
  putMax: number;
  putMean: number;
  removeMax: number;
}

/**
 * Pages written by single puts of new keys and removes of present ones, each in a fresh write
 * transaction that is then dropped (so the table stays as it is).
 */
function writeCost(
  db: { store: { env: { beginWrite(): WriteTxn; abort(t: WriteTxn): void } } },
  h: DatabaseBase<string, Uint8Array>,
  size: number,
): Cost {
  const env = db.store.env;
  const ctx = h.readLatest();
  const levels = hashShape(ctx.r, ctx.desc).levels;
  const enc = new TextEncoder();
  const v = value(1);
  let putMax = 0;
  let putSum = 0;
  let removeMax = 0;
  const samples = 300;
  for (let s = 0; s < samples; s++) {
    for (const op of ['put', 'remove'] as const) {
      const txn = env.beginWrite();
      try {
        const w = new CountingWriter(txn);
        const desc = h.writeContext(txn).desc;
        if (op === 'put') {
          const k = enc.encode(`new${s}`);
          expect(hashIndex.put(w, desc, k, k.length, v, v.length)).toBe(true);
          putMax = Math.max(putMax, w.written);
          putSum += w.written;
        } else {
          const k = enc.encode(key(Math.floor((s * size) / samples)));
          expect(hashIndex.remove(w, desc, k, k.length)).toBe(true);
          removeMax = Math.max(removeMax, w.written);
        }
      } finally {
        env.abort(txn);
      }
    }
  }
  return { levels, putMax, putMean: putSum / samples, removeMax };
}

/** One level per directory page on the path, one page for the bucket, a split adds two. */
function expectBounded(c: Cost): void {
  expect(c.putMax).toBeLessThanOrEqual(c.levels + 3);
  expect(c.putMean).toBeLessThan(c.levels + 1.5);
  expect(c.removeMax).toBeLessThanOrEqual(c.levels + 1);
}

function fill(h: DatabaseBase<string, Uint8Array>, from: number, to: number): void {
  for (let start = from; start < to; start += BATCH) {
    h.transactionSync((txn) => {
      for (let i = start; i < Math.min(to, start + BATCH); i++) txn.put(key(i), value(i));
    });
  }
}

describe('hash table growth', () => {
  it('grows from empty to 1,000,000 entries and back, reusing its pages; one write stays bounded', async () => {
    const db = openOn<string, Uint8Array>(new MemoryStorage({ segmentSize: 1 << 24 }), '', {
      keyEncoding: 'string',
      valueEncoding: 'binary',
      sync: 'none',
    });
    const h = db.openDB<string, Uint8Array>('h', {
      kind: 'hash',
      keyEncoding: 'string',
      valueEncoding: 'binary',
    });
    const internals = db as unknown as Parameters<typeof writeCost>[0];
    const expectClean = (): void => expect(db.check().problems).toEqual([]);
    try {
      const costs: Cost[] = [];
      fill(h, 0, 10);
      expectClean();
      costs.push(writeCost(internals, h, 10));
      fill(h, 10, 10_000);
      expectClean();
      costs.push(writeCost(internals, h, 10_000));
      fill(h, 10_000, N);
      expectClean();
      costs.push(writeCost(internals, h, N));
      expect(h.count()).toBe(N);
      for (const i of [0, 1, 4242, 777_777, N - 1])
        expect(same(h.get(key(i)), value(i))).toBe(true);

      // One level per directory page on the path, one page for the bucket; a split adds a
      // bucket and at most a directory page. The table size does not appear.
      if (process.env.MAPKV_HASH_COSTS === '1') console.log(costs);
      expect(costs.map((c) => c.levels)).toEqual([0, 1, 2]);
      for (const c of costs) expectBounded(c);

      const full = db.stats();
      for (let start = 0; start < N; start += BATCH) {
        let removed = 0;
        h.transactionSync((txn) => {
          for (let i = start; i < start + BATCH; i++) if (txn.remove(key(i))) removed++;
        });
        expect(removed).toBe(BATCH);
        if (start === N / 2) expectClean();
      }
      expectClean();
      expect(h.count()).toBe(0);
      expect(h.readLatest().desc.root).toBe(0);
      const empty = db.stats();
      // Everything the table held is free (a few pages stay in use by the catalog and the
      // freelist itself).
      expect(empty.freePages).toBeGreaterThan(full.pages - 50);

      fill(h, 0, N);
      expectClean();
      const refilled = db.stats();
      expect(refilled.pages).toBeLessThanOrEqual(full.pages * 1.02);
      expect(same(h.get(key(123_456)), value(123_456))).toBe(true);
    } finally {
      await db.close();
    }
  }, 180_000);

  it('keeps one write bounded at 10,000,000 entries', async () => {
    // A real file (about 850 MB): the table is as a user's would be at that size.
    const tmp = tempFolder();
    const db = open<string, Uint8Array>(tmp.file('ten.mkv'), { sync: 'none' });
    try {
      const h = db.openDB<string, Uint8Array>('h', {
        kind: 'hash',
        keyEncoding: 'string',
        valueEncoding: 'binary',
      });
      const big = 10 * N;
      fill(h, 0, big);
      expect(h.count()).toBe(big);
      const cost = writeCost(db as unknown as Parameters<typeof writeCost>[0], h, big);
      if (process.env.MAPKV_HASH_COSTS === '1') console.log(cost);
      // 10x the entries of the 1,000,000 case: at most one directory level more.
      expect(cost.levels).toBeGreaterThanOrEqual(2);
      expect(cost.levels).toBeLessThanOrEqual(3);
      expectBounded(cost);
      for (const i of [0, 1, 4_242_424, 9_999_999])
        expect(same(h.get(key(i)), value(i))).toBe(true);
      expect(db.check().problems).toEqual([]);
    } finally {
      await db.close();
      tmp.remove();
    }
  }, 400_000);
});
