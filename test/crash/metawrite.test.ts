/**
 * A commit writes its meta page with one pwrite, never by copying into a writable mapping. A
 * process killed during a system call dies after it returns, so a writer killed while writing
 * a meta leaves the slot old or new in the page cache; a copy through the mapping can be cut
 * halfway, leaving a torn meta that check() must report (test/crash/kill.test.ts met one, once
 * in many runs). This test pins the mechanism: after commits, the file has no writable shared
 * mapping in this process (Linux: /proc/self/maps).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { open } from '../../src/index';

let dir = '';
afterEach(() => {
  if (dir !== '') fs.rmSync(dir, { recursive: true, force: true });
  dir = '';
});

/** The permission fields of this process's mappings of `file` ("r--p", "rw-s", ...). */
function mappingsOf(file: string): string[] {
  const real = fs.realpathSync(file);
  return fs
    .readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .filter((line) => line.endsWith(` ${real}`))
    .map((line) => line.split(/\s+/)[1]!);
}

describe('meta writes', () => {
  it.runIf(process.platform === 'linux')(
    'commits of every kind leave the file without a writable mapping',
    async () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mapkv-metawrite-'));
      const file = path.join(dir, 'db.mkv');
      // Creating a file writes both metas through a mapping: start from an existing one.
      open(file, { keyEncoding: 'string' }).close();
      for (const sync of ['full', 'none'] as const) {
        const db = open<string, unknown>(file, { sync, keyEncoding: 'string' });
        db.putSync('a', 1);
        // A commit too big for its meta to list its pages (over 2 MiB): two flushes.
        const big = 'x'.repeat(8192);
        db.transactionSync((txn) => {
          for (let i = 0; i < 400; i++) txn.put(`k${i}`, big);
        });
        await Promise.all([db.put('b', 2), db.put('c', 3)]);
        expect(db.get('c')).toBe(3);
        const perms = mappingsOf(file);
        expect(perms.length).toBeGreaterThan(0); // the read view
        expect(perms.filter((p) => p.startsWith('rw'))).toEqual([]);
        await db.close();
      }
    },
  );
});
