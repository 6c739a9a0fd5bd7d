/**
 * What a hash point read leans on for speed, and that must never change what it returns:
 *
 * - flat directories (src/hash/directory.ts): once a committed table version has been read
 *   often enough, reads start from a flat copy of its directories instead of reading the
 *   directory pages. A new commit, an older snapshot, a damaged directory and a commit id that
 *   comes round again (the newest meta damaged) must all read as the pages say.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MapKVError, type Database, type DatabaseBase } from '../../src/index';
import { openOn } from '../../src/open';
import { MemoryStorage } from '../../src/storage/memory';
import { crc32c } from '../../src/format/crc32c';
import {
  H_AUX,
  H_COUNT,
  H_TYPE,
  HEADER_SIZE,
  PageType,
  readU16,
  readU32,
  writeU32,
} from '../../src/format/layout';
import { SnapshotReader } from '../../src/txn/snapshot';
import { prng } from '../helpers/api-helpers';

type Bytes = Uint8Array;
type Reader = Pick<DatabaseBase<string, Bytes>, 'getBinary'>;
const PS = 4096;
const SEG = 1 << 20;
const enc = { keyEncoding: 'string', valueEncoding: 'binary' } as const;

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
    // The root page (to name the version) and the bucket; through the directories, four.
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
    t.h.transactionSync((txn) => {
      for (let i = 1; i < 12_000; i += 2) txn.put(`k${i}`, value(i + 1, 300));
    });
    for (let i = 1; i < 12_000; i += 2) t.live.set(`k${i}`, value(i + 1, 300));
    readAll(t.h, t.live);
    readAll(t.h, t.live);
    // A's meta is damaged (its checksum word): the handle reads the commit before it again.
    const txnA = latestTxn(t.h);
    const slot = txnA % 2;
    const word = t.storage.readSegment(0).slice(slot * PS, slot * PS + 4);
    word[0] ^= 0xff;
    t.storage.writeAt(slot * PS, [word]);
    readAll(t.h, base);
    // Commit B, from that older state, takes A's commit id (and, from the same free pages,
    // A's page numbers) and rewrites the even keys instead.
    t.h.transactionSync((txn) => {
      for (let i = 0; i < 12_000; i += 2) txn.put(`k${i}`, value(i + 2, 300));
    });
    expect(latestTxn(t.h)).toBe(txnA);
    const now = new Map(base);
    for (let i = 0; i < 12_000; i += 2) now.set(`k${i}`, value(i + 2, 300));
    readAll(t.h, now);
    readAll(t.h, now);
    expect(t.db.check().problems).toEqual([]);
    t.db.close();
  });
});
