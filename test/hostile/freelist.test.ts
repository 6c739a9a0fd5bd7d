// Issue #4 part 3, targeted: a freelist that lies (checksums valid). Found by the hostile
// fuzzer's soak run (mutant "page 34 (free-chunk) entry1 = 2, checksum fixed", read-write).
// A free chunk that lists a page in use, or one page twice, or a directory that lists a
// chunk twice, hands the write transaction a page it also reaches. Writes to such a file must
// fail with ERR_CORRUPT - or succeed and leave damage that check() reports - never throw an
// internal Error; and check() must report the lie before any write.
// Also: a meta whose main or catalog descriptor names an unknown index kind - open() or
// check() must say ERR_CORRUPT / report it, not throw ERR_INCOMPATIBLE from check().
import * as fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { MapKVError, open } from '../../src/index';
import { crashFolder } from '../helpers/crash-common';
import {
  HEADER,
  T_FREE_CHUNK,
  T_FREE_DIR,
  T_LEAF,
  fixChecksum,
  pageMap,
} from '../helpers/crash-mutants';

const folder = crashFolder('freelist');
const file = folder.file('base.mkv');
let base: Buffer;
const PS = 4096;

beforeAll(async () => {
  const db = open<string, unknown>(file);
  db.transactionSync((txn) => {
    for (let i = 0; i < 400; i++)
      txn.put(`k${String(i).padStart(4, '0')}`, { i, pad: 'p'.repeat(30) });
  });
  // Free pages: rewrite spread keys over a few commits. A snapshot held meanwhile keeps the
  // freed pages from reuse, so they outgrow the meta's inline list and go to directory chunks.
  const snap = db.snapshot();
  for (let round = 0; round < 12; round++) {
    db.transactionSync((txn) => {
      for (let i = round; i < 400; i += 9) txn.put(`k${String(i).padStart(4, '0')}`, { round });
    });
  }
  snap.close();
  await db.close();
  base = fs.readFileSync(file);
});
afterAll(() => folder.remove());

function u16(b: Uint8Array, o: number): number {
  return b[o]! | (b[o + 1]! << 8);
}

/** Opens `bytes`, reports check(), then writes; returns what happened. */
async function writeTo(bytes: Buffer): Promise<{ checkBefore: string; writes: string }> {
  const f = folder.file('mutant.mkv');
  fs.rmSync(`${f}-lock`, { force: true });
  fs.writeFileSync(f, bytes);
  let db;
  try {
    db = open<string, unknown>(f);
  } catch (err) {
    return { checkBefore: `open: ${errName(err)}`, writes: 'not opened' };
  }
  let checkBefore: string;
  try {
    checkBefore = db.check().ok ? 'ok' : 'flagged';
  } catch (err) {
    checkBefore = `threw ${errName(err)}`;
  }
  let writes: string;
  try {
    for (let i = 0; i < 60; i++) db.putSync(`n${i}`, { i, pad: 'q'.repeat(200) });
    for (let i = 0; i < 400; i += 3) db.removeSync(`k${String(i).padStart(4, '0')}`);
    writes = db.check().ok ? 'succeeded, check ok' : 'succeeded, check flags';
  } catch (err) {
    writes = errName(err);
  } finally {
    await db.close();
  }
  return { checkBefore, writes };
}

function errName(err: unknown): string {
  return err instanceof MapKVError
    ? err.code
    : `${(err as Error)?.constructor?.name}: ${String(err)}`;
}

describe('a freelist that lies', () => {
  it('a free chunk or the meta inline list naming a page in use or twice, a directory listing a chunk twice', async () => {
    const map = pageMap(base, PS);
    const chunks = map.used.get(T_FREE_CHUNK) ?? [];
    const dirs = map.used.get(T_FREE_DIR) ?? [];
    expect(chunks.length, 'the base file has free chunks').toBeGreaterThan(0);
    const chunk = chunks.find((c) => u16(base, c * PS + 6) >= 2)!;
    expect(chunk, 'a chunk listing two pages or more').toBeDefined();
    const leaf = map.used.get(T_LEAF)![0]!;
    const cases: [string, (b: Buffer) => void][] = [];
    for (const target of [2, leaf, ...map.used.get(2)!.slice(0, 1)]) {
      cases.push([
        `free chunk ${chunk} entry 0 = page ${target} (in use)`,
        (b) => {
          b.writeUInt32LE(target, chunk * PS + HEADER);
          fixChecksum(b, PS, chunk);
        },
      ]);
    }
    cases.push([
      `free chunk ${chunk} lists its entry 0 twice`,
      (b) => {
        b.writeUInt32LE(b.readUInt32LE(chunk * PS + HEADER), chunk * PS + HEADER + 4);
        fixChecksum(b, PS, chunk);
      },
    ]);
    cases.push([
      `free chunk ${chunk} lists itself`,
      (b) => {
        b.writeUInt32LE(chunk, chunk * PS + HEADER);
        fixChecksum(b, PS, chunk);
      },
    ]);
    const dir = dirs[0]!;
    if (u16(base, dir * PS + 6) >= 2) {
      cases.push([
        `free directory ${dir} lists its first chunk twice`,
        (b) => {
          b.copy(b, dir * PS + HEADER + 16, dir * PS + HEADER, dir * PS + HEADER + 16);
          fixChecksum(b, PS, dir);
        },
      ]);
    }
    // The newest meta's inline free list (docs/FORMAT.md): its first group's pages.
    const meta = map.newest * PS;
    const group = meta + 176 + 8 * base.readUInt32LE(meta + 168);
    expect(
      base.readUInt32LE(meta + 172),
      'the newest meta has an inline free list',
    ).toBeGreaterThan(0);
    expect(base.readUInt32LE(group), 'its first group lists two pages or more').toBeGreaterThan(1);
    for (const target of [leaf, map.used.get(2)![0]!]) {
      cases.push([
        `the meta's inline free list names page ${target} (in use)`,
        (b) => {
          b.writeUInt32LE(target, group + 12);
          fixChecksum(b, PS, map.newest);
        },
      ]);
    }
    cases.push([
      `the meta's inline free list names a page twice`,
      (b) => {
        b.writeUInt32LE(b.readUInt32LE(group + 12), group + 16);
        fixChecksum(b, PS, map.newest);
      },
    ]);
    const wrong: string[] = [];
    for (const [what, edit] of cases) {
      const b = Buffer.from(base);
      edit(b);
      const r = await writeTo(b);
      const checkOk = r.checkBefore === 'flagged' || r.checkBefore.startsWith('open: ERR_CORRUPT');
      const writesOk =
        r.writes === 'ERR_CORRUPT' ||
        r.writes === 'succeeded, check flags' ||
        r.writes === 'not opened';
      if (!checkOk || !writesOk)
        wrong.push(`${what}: check() before writes ${r.checkBefore}; writes ${r.writes}`);
    }
    expect(wrong).toEqual([]);
  });

  it('a meta naming an unknown index kind for the main database or the catalog', async () => {
    const newest = pageMap(base, PS).newest;
    const wrong: string[] = [];
    for (const [what, offset] of [
      ['main', 72],
      ['catalog', 120],
    ] as const) {
      for (const kind of [0, 9, 255]) {
        const b = Buffer.from(base);
        b[newest * PS + offset] = kind;
        fixChecksum(b, PS, newest);
        const f = folder.file('kind.mkv');
        fs.rmSync(`${f}-lock`, { force: true });
        fs.writeFileSync(f, b);
        let outcome: string;
        try {
          const db = open<string, unknown>(f, { readOnly: true });
          try {
            const c = db.check();
            outcome = c.ok ? 'check ok' : 'check flags';
          } catch (err) {
            outcome = `check threw ${errName(err)}`;
          } finally {
            await db.close();
          }
        } catch (err) {
          outcome = `open ${errName(err)}`;
        }
        if (outcome !== 'check flags' && outcome !== 'open ERR_CORRUPT')
          wrong.push(`${what} kind ${kind}: ${outcome}`);
      }
    }
    expect(wrong).toEqual([]);
  });
});
