/**
 * Ordered iteration over one B+tree of one snapshot.
 *
 * The cursor keeps the root-to-leaf path (page and index per level) instead of sibling links,
 * so each step touches only pages of its own snapshot. A damaged file cannot loop it: a
 * descent takes exactly `depth` levels, and a walk that enters more leaves than the snapshot
 * has pages is ERR_CORRUPT.
 */
import { corrupt } from '../errors';
import { LEAF_RECORD_HEADER, PageType, VALUE_OVERFLOW, readU16, readU32 } from '../format/layout';
import type { DbDescriptor } from '../format/meta';
import type { IndexCursor } from '../indexes';
import type { PageReader } from '../txn/pages';
import { type ValueRef, checkTreeShape, leafValue } from './btree';
import {
  branchSearch,
  checkNode,
  checkedBranchChild,
  checkedLeafRecord,
  leafSearch,
  nodeCount,
} from './node';

export class TreeCursor implements IndexCursor {
  /** Page and record index taken at each branch level (level 0 is the root). */
  private readonly pg: number[] = [];
  private readonly idx: number[] = [];
  private depth: number;
  private leafBuf: Uint8Array = EMPTY;
  private leafOff = 0;
  private leafCount = 0;
  /** The leaf's page number, for error messages. */
  private leafPgno = 0;
  /** Index of the current record in the leaf; -1 or leafCount once off that end. */
  private slot = 0;
  /** Offset in `leafBuf` of the current record; meaningful only while `slot` is a record. */
  private rec = 0;
  private leavesEntered = 0;
  /** False once the cursor ran off either end. */
  valid = false;

  constructor(
    private r: PageReader,
    private d: DbDescriptor,
    private pageLimit: number,
  ) {
    checkTreeShape(d);
    this.depth = d.depth;
  }

  /**
   * Re-targets the cursor at another tree of `r` (after a write, or for another walk). The loop
   * guard becomes the reader's page count now: a write transaction may have added pages since
   * the cursor was made.
   */
  reset(r: PageReader, d: DbDescriptor): void {
    checkTreeShape(d);
    this.r = r;
    this.d = d;
    this.depth = d.depth;
    this.pageLimit = r.pageCountLimit();
    this.valid = false;
    // A new walk: the loop guard counts the leaves of one walk only.
    this.leavesEntered = 0;
  }

  /** Positions at the first key >= k (or the first key when `k` is null). */
  seek(k: Uint8Array | null, kl: number): boolean {
    if (this.depth === 0) return (this.valid = false);
    if (k === null) return this.descend(0, this.d.root, true);
    const r = this.r;
    const ps = r.pageSize;
    let pgno = this.d.root;
    for (let level = 0; level < this.depth - 1; level++) {
      const b = r.page(pgno);
      checkNode(b, r.at, ps, PageType.Branch, pgno);
      const i = branchSearch(b, r.at, ps, k, kl);
      this.pg[level] = pgno;
      this.idx[level] = i;
      pgno = checkedBranchChild(b, r.at, ps, i, pgno);
    }
    this.enterLeaf(pgno);
    let i = leafSearch(this.leafBuf, this.leafOff, ps, k, kl);
    if (i < 0) i = ~i;
    if (i >= this.leafCount) {
      // Every key of the leaf is below k: the answer is the next leaf's first key.
      this.slot = this.leafCount - 1;
      return this.next();
    }
    this.moveTo(i);
    return (this.valid = true);
  }

  /** Positions at the last key < k (or the last key when `k` is null). */
  seekBefore(k: Uint8Array | null, kl: number): boolean {
    if (this.depth === 0) return (this.valid = false);
    if (k === null) return this.descend(0, this.d.root, false);
    this.seek(k, kl);
    if (!this.valid) return this.descend(0, this.d.root, false);
    return this.prev();
  }

  /** Moves to the next key; false at the end. */
  next(): boolean {
    const i = this.slot + 1;
    if (i < this.leafCount) {
      this.moveTo(i);
      return (this.valid = true);
    }
    return this.nextLeaf();
  }

  /** Moves to the previous key; false at the start. */
  prev(): boolean {
    const i = this.slot - 1;
    if (i >= 0) {
      this.moveTo(i);
      return (this.valid = true);
    }
    return this.prevLeaf();
  }

  /** The current key's bytes: `keyBuf()[keyStart(), keyStart() + keyLength())`. */
  keyBuf(): Uint8Array {
    return this.leafBuf;
  }

  keyStart(): number {
    return this.rec + LEAF_RECORD_HEADER;
  }

  keyLength(): number {
    return readU16(this.leafBuf, this.rec);
  }

  /** Fills `out` with the current value's bytes. */
  value(out: ValueRef): void {
    const b = this.leafBuf;
    const p = this.rec;
    if ((b[p + 2]! & VALUE_OVERFLOW) === 0) {
      // moveTo checked that the record and its inline value lie inside the page.
      const start = p + LEAF_RECORD_HEADER + readU16(b, p);
      out.buf = b;
      out.start = start;
      out.end = start + readU32(b, p + 3);
      return;
    }
    leafValue(this.r, b, this.leafOff, this.slot, out);
  }

  /**
   * Stands on record `i` of the leaf. Every record the cursor stands on is checked here, so
   * keyStart, keyLength and value read only bytes of the page; records it steps past are
   * never read, and a short range does not pay for checking whole leaves.
   */
  private moveTo(i: number): void {
    this.rec = checkedLeafRecord(this.leafBuf, this.leafOff, this.r.pageSize, i, this.leafPgno);
    this.slot = i;
  }

  /** Moves to the first key of the next leaf; false (past the end) when there is none. */
  private nextLeaf(): boolean {
    const r = this.r;
    for (let level = this.depth - 2; level >= 0; level--) {
      const pgno = this.pg[level]!;
      const b = r.page(pgno);
      const j = this.idx[level]! + 1;
      if (j < nodeCount(b, r.at)) {
        this.idx[level] = j;
        return this.descend(level + 1, checkedBranchChild(b, r.at, r.pageSize, j, pgno), true);
      }
    }
    this.slot = this.leafCount;
    return (this.valid = false);
  }

  /** Moves to the last key of the previous leaf; false (before the start) when there is none. */
  private prevLeaf(): boolean {
    const r = this.r;
    for (let level = this.depth - 2; level >= 0; level--) {
      const j = this.idx[level]! - 1;
      if (j >= 0) {
        const pgno = this.pg[level]!;
        const b = r.page(pgno);
        this.idx[level] = j;
        return this.descend(level + 1, checkedBranchChild(b, r.at, r.pageSize, j, pgno), false);
      }
    }
    this.slot = -1;
    return (this.valid = false);
  }

  /** Descends from `pgno` at `level` along the first (or last) children to a leaf. */
  private descend(level: number, pgno: number, first: boolean): boolean {
    const r = this.r;
    const ps = r.pageSize;
    for (let l = level; l < this.depth - 1; l++) {
      const b = r.page(pgno);
      // The node's slot array fits the page (checkNode); each record's header is checked
      // where its child is read, here and when next()/prev() come back to this page.
      checkNode(b, r.at, ps, PageType.Branch, pgno);
      const i = first ? 0 : nodeCount(b, r.at) - 1;
      this.pg[l] = pgno;
      this.idx[l] = i;
      pgno = checkedBranchChild(b, r.at, ps, i, pgno);
    }
    this.enterLeaf(pgno);
    if (this.leafCount === 0) {
      // Only an empty root leaf may be empty; elsewhere skip it.
      this.slot = first ? -1 : 0;
      return first ? this.next() : this.prev();
    }
    this.moveTo(first ? 0 : this.leafCount - 1);
    return (this.valid = true);
  }

  private enterLeaf(pgno: number): void {
    if (++this.leavesEntered > this.pageLimit)
      corrupt('a tree walk visits more leaves than the file has pages');
    const r = this.r;
    const b = r.page(pgno);
    checkNode(b, r.at, r.pageSize, PageType.Leaf, pgno);
    this.leafPgno = pgno;
    this.leafBuf = b;
    this.leafOff = r.at;
    this.leafCount = nodeCount(b, r.at);
  }
}

const EMPTY = new Uint8Array(0);
