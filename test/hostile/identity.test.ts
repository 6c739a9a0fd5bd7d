// Issue #4 part 3: damage that keeps every checksum valid. A page is a self-consistent unit, so
// a page copied to the wrong place keeps a valid CRC32C; only the page number in its header
// (layout.ts: "a page copied to the wrong place is caught") and the meta can tell. Two such
// faults are real ones of disks and file systems: a misdirected write (a page lands at
// another page's address) and a lost write (a page keeps an older version of itself).
//
// And the two metas: invariant 2 says open takes the valid meta with the highest txn id and
// never trusts a torn one; a file whose metas are both unreadable is damage (ERR_CORRUPT), not
// a new file to initialise over the old data.
import * as fs from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';

import { MapKVError, open } from '../../src/index';
import { crashFolder } from '../helpers/crash-common';
import { pageMap } from '../helpers/crash-mutants';

const folder = crashFolder('identity');
afterAll(() => folder.remove());

function u32(b: Uint8Array, o: number): number {
  return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
}

/**
 * Opens `file` read-only; returns what reading `key` and check() say. A file open() refuses
 * with ERR_CORRUPT (a page the last commits list moved away) reads as that code, check() not ok.
 */
async function inspect(
  file: string,
  key: unknown,
): Promise<{ value: unknown; ok: boolean | string }> {
  let db;
  try {
    db = open<any, any>(file, { readOnly: true });
  } catch (err) {
    if (err instanceof MapKVError && err.code === 'ERR_CORRUPT') {
      return { value: 'ERR_CORRUPT', ok: false };
    }
    throw err;
  }
  try {
    let value: unknown;
    try {
      value = db.get(key);
    } catch (err) {
      value = err instanceof MapKVError ? err.code : String(err);
    }
    return { value, ok: db.check().ok };
  } finally {
    await db.close();
  }
}

describe('pages in the wrong place (checksums valid)', () => {
  it('two overflow runs of the same length swapped: check() reports it', async () => {
    const file = folder.file('swap.mkv');
    const db = open<string, Buffer>(file, { valueEncoding: 'binary' });
    db.putSync('a', Buffer.alloc(10_000, 0xaa));
    db.putSync('b', Buffer.alloc(10_000, 0xbb));
    await db.close();
    const bytes = fs.readFileSync(file);
    const map = pageMap(bytes, 4096);
    const runs = [...map.runs.entries()].filter(([, n]) => n === 3);
    expect(runs.length).toBe(2);
    const [[a], [b]] = runs as [[number, number], [number, number]];
    const ra = Buffer.from(bytes.subarray(a * 4096, (a + 3) * 4096));
    bytes.copy(bytes, a * 4096, b * 4096, (b + 3) * 4096);
    ra.copy(bytes, b * 4096);
    fs.writeFileSync(file, bytes);
    const seen = await inspect(file, 'a');
    // Either the read refuses (ERR_CORRUPT) or check() flags the file; never 'a' silently
    // returning b's bytes with a clean check().
    const silent = Buffer.isBuffer(seen.value) && seen.value[0] === 0xbb && seen.ok === true;
    expect(
      silent,
      "get('a') returned b's value and check() is ok: the header page number is never verified",
    ).toBe(false);
  });

  it('a leaf replaced by its older version from a free page (a lost write): check() reports it', async () => {
    const file = folder.file('stale.mkv');
    const db = open<string, number>(file);
    db.transactionSync((txn) => {
      for (let i = 0; i < 400; i++) txn.put(`k${String(i).padStart(4, '0')}`, i);
    });
    // The leaf of k0005 is copied on write: its old version stays behind in a page now free
    // (kept from reuse by a snapshot). The entry count does not change.
    const snap = db.snapshot();
    db.putSync('k0005', 555);
    db.putSync('k0399', 399_399);
    snap.close();
    await db.close();
    const bytes = fs.readFileSync(file);
    const map = pageMap(bytes, 4096);
    const holds = (p: number): boolean =>
      bytes.subarray(p * 4096, (p + 1) * 4096).includes('k0005');
    const leaf = map.used.get(3)!.find(holds);
    const stale = [...map.free].find(
      (p) => bytes[p * 4096 + 4] === 3 && u32(bytes, p * 4096 + 8) === p && holds(p),
    );
    expect(leaf, 'the leaf of k0005').toBeDefined();
    expect(stale, 'a free page with the older copy of that leaf').toBeDefined();
    bytes.copy(bytes, leaf! * 4096, stale! * 4096, (stale! + 1) * 4096);
    fs.writeFileSync(file, bytes);
    const seen = await inspect(file, 'k0005');
    const silent = seen.value === 5 && seen.ok === true;
    expect(
      silent,
      `the leaf at page ${leaf} says it is page ${stale}, yet reads return its old data ` +
        '(k0005 = 5, not 555) and check() is ok',
    ).toBe(false);
  });
});

describe('damaged metas', () => {
  for (const pageSize of [4096, 8192, 65536]) {
    it(`${pageSize}-byte pages: either meta alone damaged, open takes the other`, async () => {
      const file = folder.file(`metas-${pageSize}.mkv`);
      fs.rmSync(file, { force: true });
      const db = open<string, number>(file, { pageSize });
      for (let i = 0; i < 30; i++) db.putSync(`k${i}`, i);
      await db.close();
      const good = fs.readFileSync(file);
      const newest = pageMap(good, pageSize).newest;
      for (const slot of [0, 1]) {
        for (const damage of ['zero', 'flip'] as const) {
          const bytes = Buffer.from(good);
          if (damage === 'zero') bytes.fill(0, slot * pageSize, (slot + 1) * pageSize);
          else bytes[slot * pageSize + 100]! ^= 0x10;
          fs.writeFileSync(file, bytes);
          for (const readOnly of [true, false]) {
            const d = open<string, number>(file, { readOnly });
            try {
              // The newest meta damaged: the commit before it (k29 not yet written).
              expect(d.count(), `${damage} slot ${slot}`).toBe(slot === newest ? 29 : 30);
            } finally {
              await d.close();
            }
          }
        }
      }
    });
  }

  it('both metas zeroed, data pages intact: ERR_CORRUPT, and the file is left as it was', async () => {
    const file = folder.file('both.mkv');
    const db = open<string, number>(file);
    for (let i = 0; i < 30; i++) db.putSync(`k${i}`, i);
    await db.close();
    const bytes = fs.readFileSync(file);
    bytes.fill(0, 0, 2 * 4096);
    fs.writeFileSync(file, bytes);
    let outcome: string;
    try {
      const d = open<string, number>(file);
      outcome = `opened with ${d.count()} entries, check() ok: ${d.check().ok}`;
      await d.close();
    } catch (err) {
      outcome = err instanceof MapKVError ? err.code : String(err);
    }
    const after = fs.readFileSync(file);
    expect(
      { outcome, unchanged: after.equals(bytes) },
      'a read-write open re-initialised a damaged file over its 30 entries',
    ).toEqual({ outcome: 'ERR_CORRUPT', unchanged: true });
  });
});
