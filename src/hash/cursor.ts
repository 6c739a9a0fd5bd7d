/**
 * Iteration over one hash table of one snapshot, in (hash, key) order: the records of each
 * bucket are in that order, and buckets are visited by increasing hash range.
 *
 * The cursor keeps no directory path. It stands in one bucket and knows where that bucket's
 * hash range ends; the next bucket is found by a fresh descent for that hash value. Each step
 * between buckets moves the position strictly forward, and a walk that enters more buckets
 * than the snapshot has pages is ERR_CORRUPT, so a damaged file cannot loop it.
 *
 * The order is a property of the data, not of the pages: `seek(k)` goes to the first entry at
 * or after (hash(k), k), whatever splits or merges happened since. The API's iterators re-seek
 * after a write in the same transaction with the last key they returned, so iterating while
 * writing returns every entry that exists throughout exactly once, never an entry twice, and
 * an entry written during the walk if and only if its (hash, key) is after the position.
 */
import { MapKVError, corrupt } from '../errors';
import {
  H_AUX,
  H_FLAGS,
  H_TYPE,
  HEADER_SIZE,
  LEAF_RECORD_HEADER,
  PageType,
  readU16,
  readU32,
} from '../format/layout';
import type { DbDescriptor } from '../format/meta';
import type { IndexCursor } from '../indexes';
import type { PageReader } from '../txn/pages';
import type { ValueRef } from '../btree/btree';
import { TreeCursor } from '../btree/cursor';
import { bucketCount, bucketSearch, bucketValue, checkBucketForWrite, slotRecord } from './bucket';
import { checkHashFormat, hashOf } from './hashkey';
import { HASH_BITS, slotOf } from './layout';
import { checkDirectory } from './directory';
import { readHolder } from './table';

const HASH_SPACE = 2 ** HASH_BITS;
const EMPTY = new Uint8Array(0);

export class HashCursor implements IndexCursor {
  private buf: Uint8Array = EMPTY;
  private off = 0;
  private count = 0;
  private idx = 0;
  /** First hash value after the current bucket's range (2^32 after the last bucket). */
  private after = HASH_SPACE;
  /** Set while the cursor stands in a collision holder: the cursor of its B+tree. */
  private tree: TreeCursor | null = null;
  private entered = 0;

  constructor(
    private r: PageReader,
    private d: DbDescriptor,
    private readonly pageLimit: number,
  ) {
    checkHashFormat(d);
  }

  reset(r: PageReader, d: DbDescriptor): void {
    checkHashFormat(d);
    this.r = r;
    this.d = d;
    this.tree = null;
    this.count = 0;
  }

  /** Positions at the first entry at or after (hash(k), k); the first entry when k is null. */
  seek(k: Uint8Array | null, kl: number): boolean {
    this.entered = 0;
    this.tree = null;
    this.count = 0;
    if (this.d.root === 0) return false;
    return this.enter(k === null ? 0 : hashOf(this.d, k, kl), k, kl);
  }

  seekBefore(_k: Uint8Array | null, _kl: number): boolean {
    throw unordered();
  }

  next(): boolean {
    if (this.tree !== null) {
      if (this.tree.next()) return true;
    } else if (++this.idx < this.count) return true;
    if (this.after >= HASH_SPACE) return this.finish();
    return this.enter(this.after, null, 0);
  }

  prev(): boolean {
    throw unordered();
  }

  keyBuf(): Uint8Array {
    return this.tree !== null ? this.tree.keyBuf() : this.buf;
  }

  keyStart(): number {
    if (this.tree !== null) return this.tree.keyStart();
    return this.off + slotRecord(this.buf, this.off, this.idx) + LEAF_RECORD_HEADER;
  }

  keyLength(): number {
    if (this.tree !== null) return this.tree.keyLength();
    return readU16(this.buf, this.off + slotRecord(this.buf, this.off, this.idx));
  }

  value(out: ValueRef): void {
    if (this.tree !== null) this.tree.value(out);
    else bucketValue(this.r, this.buf, this.off, this.idx, out);
  }

  /**
   * Positions at the first entry at or after (h, k) (k null: at or after hash h), moving on to
   * later buckets while a bucket has none.
   */
  private enter(h: number, k: Uint8Array | null, kl: number): boolean {
    for (;;) {
      if (++this.entered > this.limit()) {
        corrupt('a hash table walk visits more buckets than the file has pages');
      }
      this.descend(h);
      const tree = this.tree;
      if (tree !== null) {
        if (k !== null ? tree.seek(k, kl) : tree.seek(null, 0)) return true;
        this.tree = null;
      } else {
        let i = 0;
        if (k !== null) {
          i = bucketSearch(this.buf, this.off, this.r.pageSize, h, k, kl);
          if (i < 0) i = ~i;
        }
        if (i < this.count) {
          this.idx = i;
          return true;
        }
      }
      if (this.after >= HASH_SPACE) return this.finish();
      h = this.after;
      k = null;
    }
  }

  /** Enters the bucket (or holder) whose range holds hash `h`; sets `after` to its end. */
  private descend(h: number): void {
    const r = this.r;
    const ps = r.pageSize;
    let pgno = this.d.root;
    let depth = 0;
    let lowest = 0; // the least local depth a bucket may have where the descent ends
    for (;;) {
      const b = r.page(pgno);
      const o = r.at;
      if (b[o + H_TYPE] === PageType.HashDirectory) {
        const bits = checkDirectory(b, o, ps, pgno, depth);
        pgno = readU32(b, o + HEADER_SIZE + 4 * slotOf(h, depth, bits));
        lowest = depth;
        depth += bits;
        continue;
      }
      const l = readU32(b, o + H_AUX);
      if (l < lowest || l > depth)
        corrupt(`hash bucket ${pgno} has depth ${l} at hash bit ${depth}`);
      // The bucket's range: the hash values sharing its l-bit prefix, which holds h.
      const unit = 2 ** (HASH_BITS - l);
      this.after = h - (h % unit) + unit;
      if (b[o + H_FLAGS] !== 0) {
        const tree = readHolder(b, o, pgno, h, r.pageCountLimit());
        this.tree = new TreeCursor(r, tree, this.limit());
        return;
      }
      // Checked whole once per visit, so the per-entry accessors can trust its records.
      checkBucketForWrite(b, o, ps, pgno);
      this.tree = null;
      this.buf = b;
      this.off = o;
      this.count = bucketCount(b, o);
      return;
    }
  }

  /** Pages of the snapshot; a write transaction's count grows after the cursor is made. */
  private limit(): number {
    return Math.max(this.pageLimit, this.r.pageCountLimit());
  }

  private finish(): boolean {
    this.tree = null;
    this.count = 0;
    this.idx = 0;
    return false;
  }
}

function unordered(): MapKVError {
  return new MapKVError(
    'ERR_BAD_OPTION',
    "a 'hash' database has no key order: it iterates forwards only, in no particular order",
  );
}
