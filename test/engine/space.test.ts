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
