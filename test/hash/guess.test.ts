/**
 * Lookups start from a guess of the bucket's slot count and depth, remembered per page number
 * across all open files (bucketLookup in src/hash/bucket.ts). A guess learnt on another file,
 * another page size or an older version of the page must never change what a read returns.
 */
import { describe, expect, it } from 'vitest';
import type { Database, DatabaseBase } from '../../src/index';
import { openOn } from '../../src/open';
import { MemoryStorage } from '../../src/storage/memory';

type Bytes = Uint8Array;
const enc = { keyEncoding: 'string', valueEncoding: 'binary' } as const;

interface Store {
  db: Database<string, Bytes>;
  h: DatabaseBase<string, Bytes>;
  valueOf: (i: number) => Bytes;
  n: number;
}

function value(i: number, size: number): Bytes {
  // A Buffer, as getBinary returns.
  const v = Buffer.alloc(size);
  for (let j = 0; j < size; j++) v[j] = (i * 31 + j * 7) & 0xff;
  return v;
}

function store(pageSize: number, n: number, size: number): Store {
  const db = openOn<string, Bytes>(new MemoryStorage({ segmentSize: 1 << 20 }), '', {
    ...enc,
    pageSize,
  });
  const h = db.openDB<string, Bytes>('h', { kind: 'hash', ...enc });
  const valueOf = (i: number): Bytes => value(i, size);
  h.transactionSync((txn) => {
    for (let i = 0; i < n; i++) txn.put(`k${i}`, valueOf(i));
  });
  return { db, h, valueOf, n };
}

describe('hash lookups under wrong guesses', () => {
  it('reads right when files of other page sizes and fill share the guesses', () => {
    // Same page numbers, different buckets: 64 KiB pages hold hundreds of records, 4 KiB pages
    // tens, and the third file's larger values make its counts differ from the second's.
    const stores = [store(65536, 20_000, 16), store(4096, 20_000, 8), store(4096, 6_000, 100)];
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 20_000; i++) {
        for (const s of stores) {
          const got = s.h.getBinary(`k${i}`);
          if (i < s.n) expect(got).toEqual(s.valueOf(i));
          else expect(got).toBeUndefined();
          expect(s.h.has(`k${i}x`)).toBe(false);
        }
      }
    }
    for (const s of stores) s.db.close();
  });

  it('reads right when a page number is reused by a bucket of another count', () => {
    const s = store(4096, 5_000, 24);
    // Every read of a round teaches the guesses; each commit between rounds rewrites buckets
    // into reused page numbers with other counts.
    const live = new Map<string, Bytes>();
    for (let i = 0; i < 5_000; i++) live.set(`k${i}`, s.valueOf(i));
    for (let round = 0; round < 8; round++) {
      for (const [k, v] of live) expect(s.h.getBinary(k)).toEqual(v);
      s.h.transactionSync((txn) => {
        for (let i = round; i < 5_000; i += 3) {
          const k = `k${i}`;
          if (live.has(k)) {
            txn.remove(k);
            live.delete(k);
          } else {
            const v = value(i + round, 10 + ((i * round) % 40));
            txn.put(k, v);
            live.set(k, v);
          }
        }
      });
      expect(s.db.check().ok).toBe(true);
    }
    for (let i = 0; i < 5_000; i++) expect(s.h.getBinary(`k${i}`)).toEqual(live.get(`k${i}`));
    s.db.close();
  });
});
