// Issue #4 part 3, targeted: offsets and lengths inside a page, set to extreme values with the
// page checksum recomputed (so verifyChecksums cannot save the day), in the pages at the END of
// the file - where an offset past its page also lies past the end of the file, and following
// it without a check is a SIGBUS (invariant 5: "every page number, offset and length read from
// the file is checked ... before it is followed"). Every slot of the last branch and leaf
// pages, and the key/value lengths, flags and pointers of their records, get 0xFFFF, 0xFFF0,
// pageSize, pageSize - 1, 0 and 1; each damaged file is read whole by the child reader
// (crash-hostile.mjs), which must end with data or ERR_CORRUPT/ERR_INCOMPATIBLE.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { crashFolder, requireDist } from '../helpers/crash-common';
import { type Item, describeViolations, judge, runBatch } from '../helpers/crash-hostile-run';
import {
  type BaseFile,
  HEADER,
  T_BRANCH,
  T_LEAF,
  buildBase,
  fixChecksum,
} from '../helpers/crash-mutants';

const folder = crashFolder('offsets');
let base: BaseFile;
beforeAll(async () => {
  requireDist();
  base = await buildBase(folder.file('base.mkv'), 4096, true);
}, 60_000);
afterAll(() => folder.remove());

function u16(b: Uint8Array, o: number): number {
  return b[o]! | (b[o + 1]! << 8);
}

describe('offsets inside the last pages of the file', () => {
  it('slots and record lengths past the page end give ERR_CORRUPT, never a signal', async () => {
    const ps = base.pageSize;
    const map = base.map;
    const items: Item[] = [];
    const dir = path.join(folder.dir, 'mutants');
    fs.mkdirSync(dir, { recursive: true });
    const values = [0xffff, 0xfff0, ps, ps - 1, 1, 0];
    const add = (desc: string, edit: (b: Buffer) => void): void => {
      const b = Buffer.from(base.bytes);
      edit(b);
      const id = items.length;
      const file = path.join(dir, `o${id}.mkv`);
      fs.writeFileSync(file, b);
      for (const readOnly of [true, false]) {
        items.push({
          id: items.length,
          file,
          readOnly,
          verifyChecksums: !readOnly,
          write: !readOnly,
          desc,
          forged: true,
        });
      }
    };
    for (const type of [T_BRANCH, T_LEAF]) {
      // The page of that type with the highest number: the closest to the end of the file.
      const page = Math.max(...map.used.get(type)!);
      const o = page * ps;
      const n = u16(base.bytes, o + 6);
      const name = type === T_BRANCH ? 'branch' : 'leaf';
      const records = [...new Set([0, 1, n >> 1, n - 1])].filter((i) => i >= 0 && i < n);
      for (let i = 0; i < n; i++) {
        for (const v of values) {
          add(`last ${name} page ${page} of ${map.filePages}: slot ${i} = ${v}`, (b) => {
            b.writeUInt16LE(v, o + HEADER + 2 * i);
            fixChecksum(b, ps, page);
          });
        }
      }
      for (const i of records) {
        const r = u16(base.bytes, o + HEADER + 2 * i);
        for (const v of values) {
          add(`last ${name} page ${page}: record ${i} key length = ${v}`, (b) => {
            b.writeUInt16LE(v, o + r);
            fixChecksum(b, ps, page);
          });
          if (type === T_LEAF) {
            add(`last leaf page ${page}: record ${i} value length = ${v}`, (b) => {
              b.writeUInt32LE(v, o + r + 3);
              fixChecksum(b, ps, page);
            });
          }
        }
        if (type === T_LEAF) {
          add(`last leaf page ${page}: record ${i} flagged as overflow`, (b) => {
            b[o + r + 2] = 1;
            fixChecksum(b, ps, page);
          });
        }
      }
      for (const v of [0xffff, n + 1, (ps - HEADER) / 2]) {
        add(`last ${name} page ${page}: count = ${v}`, (b) => {
          b.writeUInt16LE(v & 0xffff, o + 6);
          fixChecksum(b, ps, page);
        });
      }
    }
    const { results, violations } = await runBatch(base.expected, items, dir);
    for (const item of items) {
      const bad = judge(item, results.get(item.id));
      if (bad !== null) violations.push(bad);
    }
    console.log(
      `[offsets] ${items.length} reads of ${items.length / 2} damaged files, ${violations.length} violations`,
    );
    expect(violations.length, describeViolations(violations, 80)).toBe(0);
  }, 300_000);
});
