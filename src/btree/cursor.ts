/**
 * Ordered iteration over one B+tree of one snapshot.
 *
 * The cursor keeps the root-to-leaf path (page and index per level) instead of sibling links,
 * so each step touches only pages of its own snapshot. A damaged file cannot loop it: a
 * descent takes exactly `depth` levels, and a walk that enters more leaves than the snapshot
 * has pages is ERR_CORRUPT.
 */
import { corrupt } from '../errors';
import { LEAF_RECORD_HEADER, MAX_DEPTH, PageType, readU16 } from '../format/layout';
import type { DbDescriptor } from '../format/meta';
import type { IndexCursor } from '../indexes';
import type { PageReader } from '../txn/pages';
import { type ValueRef, checkTreeShape, leafValue } from './btree';
import {
  branchChild,
  branchSearch,
  checkNode,
  checkRecords,
  leafSearch,
  nodeCount,
  slotAt,
} from './node';

export class TreeCursor implements IndexCursor {
  private readonly pg: number[] = new Array<number>(MAX_DEPTH).fill(0);
  private readonly idx: number[] = new Array<number>(MAX_DEPTH).fill(0);
  private depth: number;
  private leafBuf: Uint8Array = new Uint8Array(0);
  private leafOff = 0;
  private leafCount = 0;
  private leavesEntered = 0;
  /** False once the cursor ran off either end. */
  valid = false;

  constructor(
    private r: PageReader,
    private d: DbDescriptor,
    private readonly pageLimit: number,
  ) {
    checkTreeShape(d);
    this.depth = d.depth;
  }

  reset(r: PageReader, d: DbDescriptor): void {
    checkTreeShape(d);
    this.r = r;
    this.d = d;
    this.depth = d.depth;
    this.valid = false;
    // A new walk: the loop guard counts the leaves of one walk only.
    this.leavesEntered = 0;
  }

  /** Positions at the first key >= k (or the first key when `k` is null). */
  seek(k: Uint8Array | null, kl: number): boolean {
    if (this.depth === 0) return (this.valid = false);
    if (k === null) return this.descend(0, this.d.root, 'first');
    const r = this.r;
    const ps = r.pageSize;
    let pgno = this.d.root;
    for (let level = 0; level < this.depth - 1; level++) {
      const b = r.page(pgno);
      checkNode(b, r.at, ps, PageType.Branch, pgno);
      checkRecords(b, r.at, ps, false, pgno);
      const i = branchSearch(b, r.at, ps, k, kl);
      this.pg[level] = pgno;
      this.idx[level] = i;
      pgno = branchChild(b, r.at, i);
    }
    this.enterLeaf(this.depth - 1, pgno);
    let i = leafSearch(this.leafBuf, this.leafOff, ps, k, kl);
    if (i < 0) i = ~i;
    this.idx[this.depth - 1] = i;
    if (i >= this.leafCount) return this.next();
    return (this.valid = true);
  }

  /** Positions at the last key < k (or the last key when `k` is null). */
  seekBefore(k: Uint8Array | null, kl: number): boolean {
    if (this.depth === 0) return (this.valid = false);
    if (k === null) return this.descend(0, this.d.root, 'last');
    this.seek(k, kl);
    if (!this.valid) return this.descend(0, this.d.root, 'last');
    return this.prev();
  }

  /** Moves to the next key; false at the end. */
  next(): boolean {
    const leafLevel = this.depth - 1;
    const i = this.idx[leafLevel]! + 1;
    if (i < this.leafCount) {
      this.idx[leafLevel] = i;
      return (this.valid = true);
    }
    for (let level = leafLevel - 1; level >= 0; level--) {
      const b = this.r.page(this.pg[level]!);
      const j = this.idx[level]! + 1;
      if (j < nodeCount(b, this.r.at)) {
        this.idx[level] = j;
        return this.descend(level + 1, branchChild(b, this.r.at, j), 'first');
      }
    }
    this.idx[leafLevel] = this.leafCount;
    return (this.valid = false);
  }

  /** Moves to the previous key; false at the start. */
  prev(): boolean {
    const leafLevel = this.depth - 1;
    const i = this.idx[leafLevel]! - 1;
    if (i >= 0) {
      this.idx[leafLevel] = i;
      return (this.valid = true);
    }
    for (let level = leafLevel - 1; level >= 0; level--) {
      const j = this.idx[level]! - 1;
      if (j >= 0) {
        const b = this.r.page(this.pg[level]!);
        this.idx[level] = j;
        return this.descend(level + 1, branchChild(b, this.r.at, j), 'last');
      }
    }
    this.idx[leafLevel] = -1;
    return (this.valid = false);
  }

  /** The current key's bytes: `keyBuf()[keyStart(), keyStart() + keyLength())`. */
  keyBuf(): Uint8Array {
    return this.leafBuf;
  }

  keyStart(): number {
    return (
      this.leafOff +
      slotAt(this.leafBuf, this.leafOff, this.idx[this.depth - 1]!) +
      LEAF_RECORD_HEADER
    );
  }

  keyLength(): number {
    return readU16(
      this.leafBuf,
      this.leafOff + slotAt(this.leafBuf, this.leafOff, this.idx[this.depth - 1]!),
    );
  }

  /** Fills `out` with the current value's bytes. */
  value(out: ValueRef): void {
    leafValue(this.r, this.leafBuf, this.leafOff, this.idx[this.depth - 1]!, out);
  }

  private descend(level: number, pgno: number, side: 'first' | 'last'): boolean {
    const r = this.r;
    const ps = r.pageSize;
    for (let l = level; l < this.depth - 1; l++) {
      const b = r.page(pgno);
      checkNode(b, r.at, ps, PageType.Branch, pgno);
      // next()/prev() later read any record of this page: check them all once here.
      checkRecords(b, r.at, ps, false, pgno);
      const i = side === 'first' ? 0 : nodeCount(b, r.at) - 1;
      this.pg[l] = pgno;
      this.idx[l] = i;
      pgno = branchChild(b, r.at, i);
    }
    this.enterLeaf(this.depth - 1, pgno);
    if (this.leafCount === 0) {
      // Only an empty root leaf may be empty; elsewhere skip it.
      this.idx[this.depth - 1] = side === 'first' ? -1 : 0;
      return side === 'first' ? this.next() : this.prev();
    }
    this.idx[this.depth - 1] = side === 'first' ? 0 : this.leafCount - 1;
    return (this.valid = true);
  }

  private enterLeaf(level: number, pgno: number): void {
    if (++this.leavesEntered > this.pageLimit)
      corrupt('a tree walk visits more leaves than the file has pages');
    const b = this.r.page(pgno);
    checkNode(b, this.r.at, this.r.pageSize, PageType.Leaf, pgno);
    checkRecords(b, this.r.at, this.r.pageSize, true, pgno);
    this.pg[level] = pgno;
    this.leafBuf = b;
    this.leafOff = this.r.at;
    this.leafCount = nodeCount(b, this.r.at);
  }
}
