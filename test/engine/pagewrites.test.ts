/**
 * A commit writes its pages in system calls of at most 16 KiB, or one page when pages are
 * larger (MappedStorage.writeAt says why: pages written together share a page-cache folio as
 * large as the write, and later one-page writes into a large one, and their fdatasync, cost
 * several times more on Linux ext4).
 */
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { open } from '../../src/index';
import { spyOnWritev } from '../helpers/writev-spy';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

it.each([4096, 16384])(
  'a commit of many %i-byte pages and a multi-page value writes at most 16 KiB per call',
  (pageSize) => {
    const dir = fs.mkdtempSync(join(tmpdir(), 'mapkv-pagewrites-'));
    dirs.push(dir);
    const db = open<string, string>(join(dir, 'db.mkv'), {
      pageSize,
      sync: 'full',
      keyEncoding: 'string',
      valueEncoding: 'string',
    });
    const { calls, restore } = spyOnWritev();
    const big = 'v'.repeat(pageSize * 5 + 123);
    try {
      db.transactionSync((txn) => {
        for (let i = 0; i < 3_000; i++) txn.put(`key${i}`, 'x'.repeat(100));
        txn.put('big', big);
      });
    } finally {
      restore();
    }
    // Thousands of new pages in neighbouring groups, and a run of 6 pages for the value.
    const unit = Math.max(pageSize, 16384);
    expect(calls.length).toBeGreaterThan((3_000 * 100 + pageSize * 6) / unit);
    expect(calls.every((bytes) => bytes <= unit && bytes % pageSize === 0)).toBe(true);
    // Neighbouring pages still share a call up to the unit.
    if (pageSize < unit) expect(calls.some((bytes) => bytes === unit)).toBe(true);
    expect(db.get('big')).toBe(big);
    expect(db.get('key2999')).toBe('x'.repeat(100));
    expect(db.check()).toEqual({ ok: true, problems: [] });
  },
);
