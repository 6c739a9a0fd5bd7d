/**
 * A commit writes its pages in system calls of at most 16 KiB, or one page when pages are
 * larger, on the event loop or, for an async commit, on a thread-pool thread
 * (MappedStorage.writeAt says why: pages written together share a page-cache folio as large
 * as the write, and later one-page writes into a large one, and their fdatasync, cost several
 * times more on Linux ext4).
 */
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { type Database, open } from '../../src/index';
import { native } from '../../src/storage/native';
import { spyOnWritev } from '../helpers/writev-spy';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function openDb(pageSize: number): Database<string, string> {
  const dir = fs.mkdtempSync(join(tmpdir(), 'mapkv-pagewrites-'));
  dirs.push(dir);
  return open<string, string>(join(dir, 'db.mkv'), {
    pageSize,
    sync: 'full',
    keyEncoding: 'string',
    valueEncoding: 'string',
  });
}

/** 3,000 small records and a value of 6 pages: thousands of new pages in neighbouring groups. */
const BIG_PAGES = 6;
const bigValue = (pageSize: number): string => 'v'.repeat(pageSize * (BIG_PAGES - 1) + 123);

/** Checks the bytes per call of that commit's writes, then what it stored. */
function expectCommit(db: Database<string, string>, pageSize: number, calls: number[]): void {
  const unit = Math.max(pageSize, 16384);
  expect(calls.length).toBeGreaterThan((3_000 * 100 + pageSize * BIG_PAGES) / unit);
  expect(calls.every((bytes) => bytes <= unit && bytes % pageSize === 0)).toBe(true);
  // Neighbouring pages still share a call up to the unit.
  if (pageSize < unit) expect(calls.some((bytes) => bytes === unit)).toBe(true);
  expect(db.get('big')).toBe(bigValue(pageSize));
  expect(db.get('key2999')).toBe('x'.repeat(100));
  expect(db.check()).toEqual({ ok: true, problems: [] });
}

it.each([4096, 16384])(
  'a commit of many %i-byte pages and a multi-page value writes at most 16 KiB per call',
  (pageSize) => {
    const db = openDb(pageSize);
    const { calls, restore } = spyOnWritev();
    try {
      db.transactionSync((txn) => {
        for (let i = 0; i < 3_000; i++) txn.put(`key${i}`, 'x'.repeat(100));
        txn.put('big', bigValue(pageSize));
      });
    } finally {
      restore();
    }
    expectCommit(db, pageSize, calls);
  },
);

it.each([4096, 16384])(
  'an async commit of many %i-byte pages makes its thread-pool writes in calls of at most 16 KiB',
  async (pageSize) => {
    const db = openDb(pageSize);
    const calls: number[] = [];
    const writeAsync = native.writeAsync;
    native.writeAsync = (fd, buffers, offsets, counts) => {
      let next = 0;
      for (const count of counts) {
        let bytes = 0;
        for (const b of buffers.slice(next, next + count)) bytes += b.byteLength;
        calls.push(bytes);
        next += count;
      }
      return writeAsync(fd, buffers, offsets, counts);
    };
    try {
      const puts: Promise<void>[] = [];
      for (let i = 0; i < 3_000; i++) puts.push(db.put(`key${i}`, 'x'.repeat(100)));
      puts.push(db.put('big', bigValue(pageSize)));
      await Promise.all(puts);
    } finally {
      native.writeAsync = writeAsync;
    }
    expectCommit(db, pageSize, calls);
    await db.close();
  },
);

it('an async commit of a few pages writes them at once, without the trip through the thread pool', async () => {
  const db = openDb(4096);
  const calls: number[] = [];
  const writeAsync = native.writeAsync;
  native.writeAsync = (fd, buffers, offsets, counts) => {
    calls.push(buffers.length);
    return writeAsync(fd, buffers, offsets, counts);
  };
  const { calls: inline, restore } = spyOnWritev();
  try {
    await db.put('one', 'x'.repeat(100));
    await Promise.all([db.put('two', 'y'), db.put('three', 'z')]);
  } finally {
    restore();
    native.writeAsync = writeAsync;
  }
  expect(calls).toEqual([]);
  // Each commit wrote its leaf page and its meta (the meta goes through writeAt too).
  expect(inline.length).toBeGreaterThanOrEqual(4);
  expect([db.get('one'), db.get('two'), db.get('three')]).toEqual(['x'.repeat(100), 'y', 'z']);
  await db.close();
});
