/**
 * The heap buffers of dirty pages go back to the pager once their commit is written, and the
 * next transaction takes them again (src/txn/pager.ts). The pool follows the commits: it keeps
 * as many as the largest of the last 8 commits dirtied (between 32 MiB and 128 MiB of pages),
 * so a run of large commits allocates no new buffers, and lets them go once the commits have
 * been small for 8 commits.
 */
import { describe, expect, it } from 'vitest';
import { openOn } from '../../src/open';
import { MemoryStorage } from '../../src/storage/memory';
import { Pager } from '../../src/txn/pager';

const PS = 4096;
const MIN = (32 << 20) / PS;
const MAX = (128 << 20) / PS;

/** Returns `n` buffers to the pool (one small buffer: the pool only counts them here). */
function giveBack(pager: Pager, n: number): void {
  const b = new Uint8Array(1);
  for (let i = 0; i < n; i++) pager.returnBuffer(b);
}

describe('the pool of dirty-page buffers', () => {
  it('keeps 32 MiB of buffers when commits are small', () => {
    const pager = new Pager(new MemoryStorage(), PS);
    pager.fitSpare(10);
    giveBack(pager, MIN + 500);
    expect(pager.spareCount).toBe(MIN);
  });

  it('keeps as many as the largest of the last 8 commits dirtied, then lets the surplus go', () => {
    const pager = new Pager(new MemoryStorage(), PS);
    pager.fitSpare(MIN + 4000);
    giveBack(pager, MIN + 5000);
    expect(pager.spareCount).toBe(MIN + 4000);
    for (let i = 0; i < 7; i++) pager.fitSpare(10);
    expect(pager.spareCount).toBe(MIN + 4000);
    pager.fitSpare(10);
    expect(pager.spareCount).toBe(MIN);
  });

  it('keeps no more than 128 MiB of buffers however large the commits', () => {
    const pager = new Pager(new MemoryStorage(), PS);
    pager.fitSpare(10 * MAX);
    giveBack(pager, MAX + 100);
    expect(pager.spareCount).toBe(MAX);
  });

  it('a commit of 12,000 pages leaves its buffers for the next commit', async () => {
    const db = openOn<number, Uint8Array>(new MemoryStorage(), '', {
      keyEncoding: 'uint32',
      valueEncoding: 'binary',
      sync: 'none',
    });
    try {
      // 12,000 leaves of one record each (values of 3,000 bytes) dirty more than 32 MiB.
      const value = new Uint8Array(3_000).fill(7);
      db.transactionSync((txn) => {
        for (let i = 0; i < 12_000; i++) txn.put(i, value);
      });
      const pager = (db as unknown as { store: { env: { pager: Pager } } }).store.env.pager;
      expect(pager.spareCount).toBeGreaterThan(MIN);
      await Promise.all(Array.from({ length: 12_000 }, (_, i) => db.put(i, value.subarray(1))));
      expect(Buffer.from(db.get(11_999)!).equals(value.subarray(1))).toBe(true);
    } finally {
      await db.close();
    }
  });
});
