/**
 * Structural check of one B+tree: page types per level, checksums, keys strictly increasing
 * within and across pages and inside their parents' separators, overflow runs intact, and the
 * entry count. Damage is reported, never thrown.
 */
import { MapKVError } from '../errors';
import { crc32c } from '../format/crc32c';
import {
  H_CHECKSUM,
  HEADER_SIZE,
  LEAF_RECORD_HEADER,
  PageType,
  VALUE_OVERFLOW,
  readU16,
  readU32,
} from '../format/layout';
import type { DbDescriptor } from '../format/meta';
import type { IndexCheck } from '../indexes';
import type { PageReader } from '../txn/pages';
import { overflowPages } from './btree';
import { branchChild, checkNode, compareBytes, nodeCount, slotAt } from './node';

/** Walks the tree of `d`; returns the number of entries found. */
export function checkTree(r: PageReader, d: DbDescriptor, c: IndexCheck, label: string): number {
  if (d.root === 0) {
    if (d.depth !== 0 || d.entries !== 0)
      c.problem(`${label}: an empty tree has depth ${d.depth} and ${d.entries} entries`);
    return 0;
  }
  if (d.depth === 0 || d.depth > 48) {
    c.problem(`${label}: root ${d.root} with depth ${d.depth}`);
    return 0;
  }
  const state = { entries: 0, last: null as Uint8Array | null };
  walk(r, d, c, label, d.root, 0, null, null, state);
  if (state.entries !== d.entries)
    c.problem(
      `${label}: the descriptor counts ${d.entries} entries, the tree holds ${state.entries}`,
    );
  return state.entries;
}

function walk(
  r: PageReader,
  d: DbDescriptor,
  c: IndexCheck,
  label: string,
  pgno: number,
  level: number,
  lo: Uint8Array | null,
  hi: Uint8Array | null,
  state: { entries: number; last: Uint8Array | null },
): void {
  const ps = r.pageSize;
  const leaf = level === d.depth - 1;
  c.visit(pgno, 1, `${label} ${leaf ? 'leaf' : 'branch'}`);
  try {
    const b = r.page(pgno);
    const o = r.at;
    if (readU32(b, o + H_CHECKSUM) !== crc32c(b, o + 4, o + ps))
      c.problem(`${label}: page ${pgno} fails its checksum`);
    checkNode(b, o, ps, leaf ? PageType.Leaf : PageType.Branch, pgno);
    const n = nodeCount(b, o);
    const keys: Uint8Array[] = [];
    const children: number[] = [];
    for (let i = 0; i < n; i++) {
      const rec = slotAt(b, o, i);
      if (rec > ps - (leaf ? LEAF_RECORD_HEADER : 6)) {
        c.problem(`${label}: page ${pgno} record ${i} lies outside the page`);
        return;
      }
      const p = o + rec;
      const klen = readU16(b, p);
      const kStart = p + (leaf ? LEAF_RECORD_HEADER : 6);
      if (rec < HEADER_SIZE + 2 * n || kStart + klen > o + ps) {
        c.problem(`${label}: page ${pgno} record ${i} lies outside the page`);
        return;
      }
      const key = b.slice(kStart, kStart + klen);
      if (leaf) {
        const flags = b[p + 2]!;
        const vlen = readU32(b, p + 3);
        if (flags & VALUE_OVERFLOW) {
          const first = readU32(b, kStart + klen);
          const pages = overflowPages(vlen, ps);
          c.visit(first, pages, `${label} overflow`);
          try {
            const head = r.runBytes(first, pages, 0, HEADER_SIZE);
            const stored = readU32(head.buf, head.start);
            let crc = 0;
            for (let from = 4; from < pages * ps;) {
              const len = Math.min(pages * ps - from, 1 << 20);
              const part = r.runBytes(first, pages, from, len);
              crc = crc32c(part.buf, part.start, part.start + len, crc);
              from += len;
            }
            if (crc !== stored) c.problem(`${label}: overflow run at ${first} fails its checksum`);
          } catch (err) {
            report(c, label, err);
          }
        } else if (kStart + klen + vlen > o + ps) {
          c.problem(`${label}: page ${pgno} record ${i} has a value past the page end`);
        }
        if (
          state.last !== null &&
          compareBytes(state.last, 0, state.last.length, key, 0, key.length) >= 0
        ) {
          c.problem(`${label}: keys out of order at page ${pgno} record ${i}`);
        }
        state.last = key;
        state.entries++;
      } else {
        if (i === 0 && klen !== 0)
          c.problem(`${label}: branch ${pgno} has a key on its first record`);
        if (
          i > 0 &&
          keys.length > 1 &&
          compareBytes(
            keys[keys.length - 1]!,
            0,
            keys[keys.length - 1]!.length,
            key,
            0,
            key.length,
          ) >= 0
        ) {
          c.problem(`${label}: separators out of order in branch ${pgno}`);
        }
        children.push(branchChild(b, o, i));
      }
      if (i > 0 || leaf) {
        if (lo !== null && compareBytes(key, 0, key.length, lo, 0, lo.length) < 0)
          c.problem(`${label}: page ${pgno} holds a key below its separator`);
        if (hi !== null && compareBytes(key, 0, key.length, hi, 0, hi.length) >= 0)
          c.problem(`${label}: page ${pgno} holds a key at or above the next separator`);
      }
      keys.push(key);
    }
    if (!leaf) {
      for (let i = 0; i < children.length; i++) {
        walk(
          r,
          d,
          c,
          label,
          children[i]!,
          level + 1,
          i === 0 ? lo : keys[i]!,
          i + 1 < keys.length ? keys[i + 1]! : hi,
          state,
        );
      }
    }
  } catch (err) {
    report(c, label, err);
  }
}

function report(c: IndexCheck, label: string, err: unknown): void {
  if (err instanceof MapKVError && err.code === 'ERR_CORRUPT')
    c.problem(`${label}: ${err.message}`);
  else throw err;
}
