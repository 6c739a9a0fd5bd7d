/**
 * Freed pages are reused: overwriting the same keys again and again reaches a steady file
 * size, and a snapshot held open only delays reuse until it is closed.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { open } from '../../src/index';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempFile(): string {
  const dir = mkdtempSync(join(tmpdir(), 'mapkv-space-'));
  dirs.push(dir);
  return join(dir, 'db.mkv');
}

function keyOf(i: number): string {
  return `key${String(i).padStart(8, '0')}`;
}

describe('space reuse', () => {
  it('overwriting the same 10,000 keys 200 times reaches a steady file size', async () => {
    const file = tempFile();
    const db = open<string, { n: number; round: string; pad: string }>(file, {
      sync: 'none',
      keyEncoding: 'string',
    });
    const sizes: number[] = [];
    const pages: number[] = [];
    for (let round = 0; round < 200; round++) {
      db.transactionSync((txn) => {
        // The round is a fixed-width string so every round's values have the same size.
        const r = String(round).padStart(3, '0');
        for (let i = 0; i < 10_000; i++)
          txn.put(keyOf(i), { n: i, round: r, pad: 'x'.repeat(i % 40) });
      });
      sizes.push(statSync(file).size);
      pages.push(db.stats().pages);
    }
    expect(db.count()).toBe(10_000);
    expect(db.get(keyOf(4242))).toEqual({ n: 4242, round: '199', pad: 'x'.repeat(4242 % 40) });
    expect(db.check()).toEqual({ ok: true, problems: [] });
    // Steady: after the first rounds the pages in use stop growing at all.
    expect(pages[199]).toBe(pages[20]);
    expect(sizes[199]).toBe(sizes[20]);
    // The bound stated in the README: the file holds at most about twice the live data
    // (one copy being written while the last commit's pages are still reachable).
    const live = pages[0]!;
    expect(pages[199]!).toBeLessThanOrEqual(2 * live + 16);
    console.log(
      `space: 10k keys x 200 overwrites: live ${live} pages after round 1, ${pages[199]} pages and ${sizes[199]} bytes after round 200`,
    );
    await db.close();
  }, 120_000);

  it('single-put commits reuse pages too', async () => {
    const file = tempFile();
    const db = open<string, number>(file, { sync: 'none', keyEncoding: 'string' });
    db.transactionSync((txn) => {
      for (let i = 0; i < 2_000; i++) txn.put(keyOf(i), i);
    });
    const counts: number[] = [];
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 2_000; i += 7) db.putSync(keyOf(i), round);
      counts.push(db.stats().pages);
    }
    expect(counts[4]).toBe(counts[1]);
    expect(db.check().ok).toBe(true);
    await db.close();
  }, 120_000);

  it('a snapshot held open keeps its pages from reuse, and closing it lets the file stop growing', async () => {
    const file = tempFile();
    const db = open<string, number>(file, { sync: 'none', keyEncoding: 'string' });
    const write = (round: number): void =>
      db.transactionSync((txn) => {
        for (let i = 0; i < 3_000; i++) txn.put(keyOf(i), round);
      });
    write(0);
    const snap = db.snapshot();
    for (let round = 1; round <= 10; round++) write(round);
    const grownWhileHeld = db.stats().pages;
    // The snapshot still reads its own commit.
    expect(snap.get(keyOf(10))).toBe(0);
    snap.close();
    write(11);
    write(12);
    const afterRelease = db.stats().pages;
    for (let round = 13; round < 40; round++) write(round);
    expect(db.stats().pages).toBe(afterRelease);
    expect(afterRelease).toBeLessThanOrEqual(grownWhileHeld);
    expect(db.check().ok).toBe(true);
    await db.close();
  }, 120_000);

  it('after a long-held snapshot closes, commits reuse the freed pages instead of growing the file', async () => {
    const file = tempFile();
    const db = open<string, number>(file, { sync: 'none', keyEncoding: 'string' });
    db.transactionSync((txn) => {
      for (let i = 0; i < 20_000; i++) txn.put(keyOf(i), i);
    });
    const snap = db.snapshot();
    for (let r = 0; r < 30; r++) {
      db.transactionSync((txn) => {
        for (let i = 0; i < 20_000; i += 3) txn.put(keyOf(i), r);
      });
    }
    snap.close();
    const pinnedPages = db.stats().pages;
    expect(db.stats().freePages).toBeGreaterThan(1_000);
    // Regression: the freelist's own pages used to extend the file on every commit while
    // thousands of free pages waited in chunks.
    for (let r = 0; r < 3_000; r++) db.putSync(keyOf((r * 7919) % 20_000), r);
    expect(db.stats().pages).toBe(pinnedPages);
    expect(db.check().ok).toBe(true);
    await db.close();
  }, 120_000);
});

describe('nodes emptied by removals', () => {
  /** Pages in use: all pages but the two metas and the free ones. */
  function livePages(db: { stats(): { pages: number; freePages: number } }): number {
    const s = db.stats();
    return s.pages - s.freePages - 2;
  }

  // Removing keys in key order (a range, oldest-first expiry) empties leaves left to right.
  // A node merged only with its right sibling, which was still full when the node emptied,
  // so the under-full leaves stayed: here 352 leaves of one key each, where a fresh tree of
  // the same 400 keys takes 7.
  for (const order of ['ascending', 'descending', 'random'] as const) {
    it(`removals in ${order} key order leave a tree about the size of a fresh one`, async () => {
      const N = 40_000;
      const db = open<string, string>(tempFile(), { sync: 'none', keyEncoding: 'string' });
      db.transactionSync((txn) => {
        for (let i = 0; i < N; i++) txn.put(keyOf(i), 'v'.repeat(40));
      });
      const doomed: number[] = [];
      for (let i = 0; i < N; i++) if (i % 100 !== 0) doomed.push(i);
      if (order === 'descending') doomed.reverse();
      if (order === 'random') {
        let a = 7;
        for (let i = doomed.length - 1; i > 0; i--) {
          a = (Math.imul(a, 1103515245) + 12345) >>> 0;
          const j = a % (i + 1);
          [doomed[i], doomed[j]] = [doomed[j]!, doomed[i]!];
        }
      }
      // One commit: the free list then takes a page or two (a commit per few removals would
      // add a list page per commit until later writes reuse them).
      db.transactionSync((txn) => {
        for (const i of doomed) txn.remove(keyOf(i));
      });
      const fresh = open<string, string>(tempFile(), { sync: 'none', keyEncoding: 'string' });
      fresh.transactionSync((txn) => {
        for (let i = 0; i < N; i += 100) txn.put(keyOf(i), 'v'.repeat(40));
      });
      expect(db.count()).toBe(N / 100);
      expect([...db.keys()]).toEqual([...fresh.keys()]);
      expect(db.check()).toEqual({ ok: true, problems: [] });
      const [after, ideal] = [livePages(db), livePages(fresh)];
      console.log(
        `space: ${order} removal of 99% of ${N} keys: ${after} live pages, fresh ${ideal}`,
      );
      // Under-full nodes merge when a neighbour has room: at most about 4x a packed tree
      // (a node is merged only once under a quarter full).
      expect(after).toBeLessThanOrEqual(4 * ideal + 4);
      await db.close();
      await fresh.close();
    }, 60_000);
  }
});

describe('multi-page values and a large free list', () => {
  // A value of more than one page takes a run of free pages. Finding one sorted and spliced
  // the whole pool of free pages for each value (8 ms a put with 1 GiB free); it now scans
  // up from the lowest pages and remembers where no run starts. This checks the runs it
  // hands out: free, consecutive, never handed out twice, and the free space used.
  it('runs of every size come from a fragmented free list, and its free runs are used', async () => {
    const db = open<string, Uint8Array>(tempFile(), {
      sync: 'none',
      keyEncoding: 'string',
      valueEncoding: 'binary',
    });
    const value = (i: number, pages: number): Uint8Array =>
      Buffer.alloc(pages * 4096 - 200, i % 251);
    // Values of 1-6 pages, then every other one removed: free runs of every length,
    // between pages in use.
    db.transactionSync((txn) => {
      for (let i = 0; i < 2_000; i++) txn.put(keyOf(i), value(i, 1 + (i % 6)));
    });
    db.transactionSync((txn) => {
      for (let i = 0; i < 2_000; i += 2) txn.remove(keyOf(i));
    });
    db.putSync('bump', new Uint8Array(1)); // the removals' pages become reusable
    db.putSync('bump', new Uint8Array(2));
    const pagesBefore = db.stats().pages;
    let a = 99;
    let written = 0;
    const sizes = new Map<number, number>();
    for (let round = 0; round < 3; round++) {
      db.transactionSync((txn) => {
        for (let n = 0; n < 300; n++) {
          a = (Math.imul(a, 1103515245) + 12345) >>> 0;
          const i = 2 * ((a >>> 8) % 1_000); // a removed key, or one written since
          const pages = 1 + ((a >>> 4) % 7);
          sizes.set(i, pages);
          written += pages;
          txn.put(keyOf(i), value(i, pages));
        }
      });
    }
    const same = (got: Uint8Array | undefined, want: Uint8Array): boolean =>
      got !== undefined && Buffer.compare(got, want) === 0;
    for (const [i, pages] of sizes) expect(same(db.get(keyOf(i)), value(i, pages))).toBe(true);
    for (let i = 1; i < 2_000; i += 2) {
      expect(same(db.get(keyOf(i)), value(i, 1 + (i % 6)))).toBe(true);
    }
    expect(db.check()).toEqual({ ok: true, problems: [] });
    // The free runs were used: the file grew by well under what was written.
    const grown = db.stats().pages - pagesBefore;
    console.log(`space: ${written} pages of values written, the file grew ${grown} pages`);
    expect(grown).toBeLessThan(written / 2);
    await db.close();
  }, 60_000);
});

describe('the free list itself', () => {
  // Each commit lists what is left of its pool as a chunk of pages free now, and what it freed
  // as another chunk; refills took one chunk per commit, and the fold of the newest freed
  // chunk looked only at the last entry, which was the pool's chunk. Removals in many commits
  // left a list page behind per commit: 124 list pages for 1,000 free pages once every key of
  // 20,000 was removed in 200 commits.
  it('removing every key in 200 commits leaves a free list of a few pages', async () => {
    const db = open<string, string>(tempFile(), { sync: 'none', keyEncoding: 'string' });
    for (let c = 0; c < 200; c++) {
      db.transactionSync((txn) => {
        for (let i = 0; i < 100; i++) txn.put(keyOf(c * 100 + i), 'v'.repeat(200));
      });
    }
    for (let c = 0; c < 200; c++) {
      db.transactionSync((txn) => {
        for (let i = 0; i < 100; i++) txn.remove(keyOf(c * 100 + i));
      });
    }
    const s = db.stats();
    expect(s.entries).toBe(0);
    expect(db.check()).toEqual({ ok: true, problems: [] });
    const inUse = s.pages - s.freePages - 2;
    console.log(`space: 20,000 keys removed in 200 commits: ${s.freePages} free, ${inUse} in use`);
    expect(inUse).toBeLessThanOrEqual(8);
    // And the free pages are there to be used: writing again does not grow the file.
    db.transactionSync((txn) => {
      for (let i = 0; i < 5_000; i++) txn.put(keyOf(i), 'w'.repeat(200));
    });
    expect(db.stats().pages).toBe(s.pages);
    await db.close();
  }, 60_000);
});
