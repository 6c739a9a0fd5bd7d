/**
 * The B+tree of a collision holder, checked in full before the B+tree code changes it.
 *
 * The B+tree's write path trusts the record heap of the pages it splits and merges (their
 * records are copied by their stated sizes). A holder's tree comes from the file, so before the
 * first write of a transaction into a holder (when the holder itself is first copied), every
 * page of its tree is checked the way checkBucketForWrite checks a bucket: type per level, slot
 * array, every record inside the page, and the heap's bytes accounted for exactly. Holders
 * exist only for keys that collide on all 32 bits of a keyed hash, so their trees are small.
 */
import { corrupt } from '../errors';
import {
  BRANCH_RECORD_HEADER,
  H_FRAG,
  H_TYPE,
  H_UPPER,
  HEADER_SIZE,
  LEAF_RECORD_HEADER,
  PageType,
  VALUE_OVERFLOW,
  readU32,
} from '../format/layout';
import type { DbDescriptor } from '../format/meta';
import type { PageReader } from '../txn/pages';
import { nodeCount, slotAt } from '../btree/node';

/** Throws ERR_CORRUPT unless every page of the tree of `tree` is sound for writing. */
export function checkHolderTree(r: PageReader, tree: DbDescriptor): void {
  if (tree.root === 0) return;
  const ps = r.pageSize;
  const limit = r.pageCountLimit();
  const seen = new Set<number>();
  let level = [tree.root];
  for (let depth = 1; level.length > 0; depth++) {
    if (depth > tree.depth) corrupt('a collision tree is deeper than its holder says');
    const leaf = depth === tree.depth;
    const next: number[] = [];
    for (const pgno of level) {
      if (seen.has(pgno) || seen.size >= limit)
        corrupt(`collision tree page ${pgno} is reached twice`);
      seen.add(pgno);
      const b = r.page(pgno);
      const o = r.at;
      checkHeap(b, o, ps, pgno, leaf);
      if (!leaf) {
        const n = nodeCount(b, o);
        for (let i = 0; i < n; i++) next.push(readU32(b, o + slotAt(b, o, i) + 2));
      }
    }
    level = next;
  }
}

function checkHeap(b: Uint8Array, o: number, ps: number, pgno: number, leaf: boolean): void {
  const n = nodeCount(b, o);
  const upper = readU32(b, o + H_UPPER);
  const frag = readU32(b, o + H_FRAG);
  if (
    b[o + H_TYPE] !== (leaf ? PageType.Leaf : PageType.Branch) ||
    (!leaf && n === 0) ||
    upper < HEADER_SIZE + 2 * n ||
    upper > ps ||
    frag > ps - upper
  ) {
    corrupt(`collision tree page ${pgno} has a header that does not fit`);
  }
  const head = leaf ? LEAF_RECORD_HEADER : BRANCH_RECORD_HEADER;
  let live = 0;
  for (let i = 0; i < n; i++) {
    const rec = slotAt(b, o, i);
    if (rec < upper || rec + head > ps) corrupt(`collision tree page ${pgno} has a record outside`);
    const p = o + rec;
    let size = head + (b[p]! | (b[p + 1]! << 8));
    if (leaf) size += (b[p + 2]! & VALUE_OVERFLOW) !== 0 ? 4 : readU32(b, p + 3);
    if (rec + size > ps) corrupt(`collision tree page ${pgno} has a record outside`);
    live += size;
  }
  if (live + frag !== ps - upper) corrupt(`collision tree page ${pgno} miscounts its heap`);
}
