/**
 * A commit writes each page with its own system call (MappedStorage.writeAt says why: pages
 * written together share a large page-cache folio, and later one-page writes into it, and
 * their fdatasync, cost several times more on Linux ext4).
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
  'a commit of many pages and a multi-page value writes one %i-byte page per call',
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
    expect(calls.length).toBeGreaterThan((3_000 * 100) / pageSize + 6);
    expect(calls.every((bytes) => bytes === pageSize)).toBe(true);
    expect(db.get('big')).toBe(big);
    expect(db.get('key2999')).toBe('x'.repeat(100));
    expect(db.check()).toEqual({ ok: true, problems: [] });
  },
);
