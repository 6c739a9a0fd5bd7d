/**
 * Structural check of one hash table: page types and checksums; every directory starting at
 * the hash bit its parent ends at, its children filling aligned slot ranges that match their
 * depths, and at least two children below the root; every bucket's heap accounted for, its
 * records in strict (hash, key) order, each record's stored hash equal to the key's hash under
 * the database's key and starting with the bucket's prefix; overflow runs intact; collision
 * holders' B+trees checked as trees; and the entry count. Damage is reported, never thrown.
 */
import { MapKVError } from '../errors';
import { crc32c } from '../format/crc32c';
import {
  H_AUX,
  H_CHECKSUM,
  H_COUNT,
  H_FLAGS,
  H_FRAG,
  H_TYPE,
  H_UPPER,
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
import { overflowPages } from '../btree/btree';
import { checkTree } from '../btree/check';
import { TreeCursor } from '../btree/cursor';
import { compareBytes } from '../btree/node';
import { SLOT_SIZE, bucketCount, bucketUsed, recordBytes, slotHash, slotRecord } from './bucket';
import { hashOf } from './hashkey';
import {
  AUX_FORMAT,
  BUCKET_COLLISIONS,
  HASH_BITS,
  HASH_FORMAT,
  HOLDER_ENTRIES,
  directoryBits,
  mergeLimit,
} from './layout';
import { readHolder } from './table';

/** Walks the hash table of `d`; returns the number of entries found. */
export function checkHash(r: PageReader, d: DbDescriptor, c: IndexCheck, label: string): number {
  if (d.root === 0) {
    if (d.entries !== 0) c.problem(`${label}: an empty hash table counts ${d.entries} entries`);
    return 0;
  }
  if (d.aux[AUX_FORMAT] !== HASH_FORMAT) {
    c.problem(`${label}: a hash table without its hash key (format ${d.aux[AUX_FORMAT]})`);
    return 0;
  }
  const walk = new Walk(r, d, c, label);
  walk.node(d.root, 0, 0, 0);
  if (walk.entries !== d.entries) {
    c.problem(
      `${label}: the descriptor counts ${d.entries} entries, the table holds ${walk.entries}`,
    );
  }
  return walk.entries;
}

/** Shape figures of a hash table, for tests and tuning. */
export interface HashShape {
  directories: number;
  buckets: number;
  holders: number;
  /** Directory levels on the longest path (0: the root is a bucket). */
  levels: number;
  /** Buddy buckets of equal depth that fit half a page together: merges that were missed. */
  mergeablePairs: number;
  /** Directory pages wider than their children need: halvings that were missed. */
  halvable: number;
}

/** @internal Walks a (valid) table and counts its pages by kind. */
export function hashShape(r: PageReader, d: DbDescriptor): HashShape {
  const shape: HashShape = {
    directories: 0,
    buckets: 0,
    holders: 0,
    levels: 0,
    mergeablePairs: 0,
    halvable: 0,
  };
  if (d.root === 0) return shape;
  const ps = r.pageSize;
  const info = (pgno: number): { bucket: boolean; dir: boolean; l: number; used: number } => {
    const b = r.page(pgno);
    const o = r.at;
    const bucket = b[o + H_TYPE] === PageType.HashBucket && b[o + H_FLAGS] === 0;
    return {
      bucket,
      dir: b[o + H_TYPE] === PageType.HashDirectory,
      l: readU32(b, o + H_AUX),
      used: bucket ? bucketUsed(b, o, ps) : 0,
    };
  };
  const visit = (pgno: number, level: number): void => {
    const b = r.page(pgno);
    const o = r.at;
    if (b[o + H_TYPE] === PageType.HashBucket) {
      if (b[o + H_FLAGS] === BUCKET_COLLISIONS) shape.holders++;
      else shape.buckets++;
      shape.levels = Math.max(shape.levels, level);
      return;
    }
    shape.directories++;
    const depth = readU32(b, o + H_AUX);
    const bits = 31 - Math.clz32(readU16(b, o + H_COUNT));
    const slots: number[] = [];
    for (let j = 0; j < 1 << bits; j++) slots.push(readU32(b, o + HEADER_SIZE + 4 * j));
    let pairs = true;
    for (let j = 0; j < slots.length; j += 2) if (slots[j] !== slots[j + 1]) pairs = false;
    if (pairs && bits > 1) shape.halvable++;
    for (let j = 0; j < slots.length;) {
      const child = info(slots[j]!);
      const span = child.dir ? 1 : 1 << (depth + bits - child.l);
      if (child.bucket && child.l > depth && (j & span) === 0) {
        const buddy = slots[j + span]!;
        const other = info(buddy);
        let whole = other.bucket && other.l === child.l;
        for (let x = j + span; x < j + 2 * span; x++) if (slots[x] !== buddy) whole = false;
        if (whole && child.used + other.used <= mergeLimit(ps)) shape.mergeablePairs++;
      }
      visit(slots[j]!, level + 1);
      j += span;
    }
  };
  visit(d.root, 0);
  return shape;
}

class Walk {
  entries = 0;
  private readonly ps: number;
  private readonly walked = new Set<number>();

  constructor(
    private readonly r: PageReader,
    private readonly d: DbDescriptor,
    private readonly c: IndexCheck,
    private readonly label: string,
  ) {
    this.ps = r.pageSize;
  }

  /**
   * Checks page `pgno`, reached at hash bit `depth` with hash prefix `prefix` (its top `depth`
   * bits), in a directory whose slots start at `lowest`: a bucket there must have a local depth
   * in [lowest, depth]. A page named twice is reported by `visit` and walked once.
   */
  node(pgno: number, depth: number, prefix: number, lowest: number): void {
    const { r, c, label } = this;
    if (this.walked.has(pgno)) {
      c.visit(pgno, 1, `${label} hash page`);
      return;
    }
    this.walked.add(pgno);
    try {
      const b = r.page(pgno);
      const o = r.at;
      const type = b[o + H_TYPE];
      if (type === PageType.HashDirectory) {
        c.visit(pgno, 1, `${label} hash directory`);
        this.checksum(b, o, pgno);
        this.directory(b, o, pgno, depth, prefix);
        return;
      }
      if (type !== PageType.HashBucket) {
        c.visit(pgno, 1, `${label} hash page`);
        c.problem(`${label}: page ${pgno} of the hash table has type ${type}`);
        return;
      }
      c.visit(pgno, 1, `${label} hash bucket`);
      this.checksum(b, o, pgno);
      const l = readU32(b, o + H_AUX);
      if (l < lowest || l > depth) {
        c.problem(`${label}: hash bucket ${pgno} has depth ${l}, its directory says otherwise`);
        return;
      }
      if (b[o + H_FLAGS] === BUCKET_COLLISIONS) this.holder(b, o, pgno, l, prefix);
      else if (b[o + H_FLAGS] === 0) this.bucket(b, o, pgno, l, prefix);
      else c.problem(`${label}: hash bucket ${pgno} has flags ${b[o + H_FLAGS]}`);
    } catch (err) {
      report(c, label, err);
    }
  }

  private checksum(b: Uint8Array, o: number, pgno: number): void {
    if (readU32(b, o + H_CHECKSUM) !== crc32c(b, o + 4, o + this.ps)) {
      this.c.problem(`${this.label}: page ${pgno} fails its checksum`);
    }
  }

  private directory(b: Uint8Array, o: number, pgno: number, depth: number, prefix: number): void {
    const { r, c, label, ps } = this;
    if (depth >= HASH_BITS) {
      c.problem(`${label}: hash directory ${pgno} lies below the last hash bit`);
      return;
    }
    const n = readU16(b, o + H_COUNT);
    const bits = 31 - Math.clz32(n);
    if (readU32(b, o + H_AUX) !== depth) {
      c.problem(`${label}: hash directory ${pgno} does not start at hash bit ${depth}`);
      return;
    }
    if (n !== 1 << bits || bits < 1 || bits > directoryBits(ps, depth)) {
      c.problem(`${label}: hash directory ${pgno} has ${n} slots`);
      return;
    }
    const fullWidth = bits === directoryBits(ps, depth);
    // Read the slots first: the walk below moves `r.at`.
    const slots = new Uint32Array(n);
    for (let j = 0; j < n; j++) slots[j] = readU32(b, o + HEADER_SIZE + 4 * j);
    let children = 0;
    for (let j = 0; j < n;) {
      const child = slots[j]!;
      let run = 1;
      while (j + run < n && slots[j + run] === child) run++;
      const at = (prefix | (j << (HASH_BITS - depth - bits))) >>> 0;
      children++;
      let span = 1;
      try {
        const cb = r.page(child);
        const co = r.at;
        if (cb[co + H_TYPE] === PageType.HashBucket) {
          const l = readU32(cb, co + H_AUX);
          span = l >= depth && l <= depth + bits ? 1 << (depth + bits - l) : run;
        } else if (!fullWidth) {
          c.problem(`${label}: hash directory ${pgno} has a directory below it but is not full`);
        }
      } catch (err) {
        report(c, label, err);
        j += run;
        continue;
      }
      if (span !== run && !(span < run && run % span === 0)) {
        c.problem(`${label}: hash directory ${pgno} names page ${child} in ${run} slots from ${j}`);
        j += run;
        continue;
      }
      if (j % span !== 0) {
        c.problem(`${label}: hash directory ${pgno} names page ${child} at an unaligned slot ${j}`);
      }
      if (span < run) {
        c.problem(
          `${label}: page ${child} is named by more slots of directory ${pgno} than its depth says`,
        );
      }
      this.node(child, depth + bits, at, depth);
      j += run;
    }
    if (children < 2) c.problem(`${label}: hash directory ${pgno} has a single child`);
  }

  private bucket(b: Uint8Array, o: number, pgno: number, l: number, prefix: number): void {
    const { c, label, ps, d } = this;
    const n = bucketCount(b, o);
    const upper = readU32(b, o + H_UPPER);
    const frag = readU32(b, o + H_FRAG);
    if (HEADER_SIZE + SLOT_SIZE * n > upper || upper > ps || frag > ps - upper) {
      c.problem(`${label}: hash bucket ${pgno} has a heap that does not fit`);
      return;
    }
    const mask = l === 0 ? 0 : (0xffff_ffff << (HASH_BITS - l)) >>> 0;
    let live = 0;
    let lastHash = -1;
    let lastKey = -1;
    let lastLen = 0;
    for (let i = 0; i < n; i++) {
      const rec = slotRecord(b, o, i);
      const p = o + rec;
      if (rec < upper || rec + LEAF_RECORD_HEADER > ps) {
        c.problem(`${label}: hash bucket ${pgno} record ${i} lies outside the heap`);
        return;
      }
      const klen = readU16(b, p);
      const size = recordBytes(b, p);
      if (rec + size > ps) {
        c.problem(`${label}: hash bucket ${pgno} record ${i} lies outside the page`);
        return;
      }
      live += size;
      const h = slotHash(b, o, i);
      const kStart = p + LEAF_RECORD_HEADER;
      if (hashOf(d, b.subarray(kStart, kStart + klen), klen) !== h) {
        c.problem(`${label}: hash bucket ${pgno} record ${i} carries a wrong hash`);
      }
      if ((h & mask) >>> 0 !== (prefix & mask) >>> 0) {
        c.problem(`${label}: hash bucket ${pgno} record ${i} belongs in another bucket`);
      }
      if (
        lastKey >= 0 &&
        (h < lastHash ||
          (h === lastHash && compareBytes(b, lastKey, lastLen, b, kStart, klen) >= 0))
      ) {
        c.problem(`${label}: hash bucket ${pgno} records out of order at ${i}`);
      }
      lastHash = h;
      lastKey = kStart;
      lastLen = klen;
      if ((b[p + 2]! & VALUE_OVERFLOW) !== 0) {
        this.overflow(readU32(b, kStart + klen), readU32(b, p + 3));
      }
    }
    if (live + frag !== ps - upper) {
      c.problem(`${label}: hash bucket ${pgno} miscounts its heap`);
    }
    this.entries += n;
  }

  private overflow(first: number, length: number): void {
    const { r, c, label, ps } = this;
    const pages = overflowPages(length, ps);
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
  }

  private holder(b: Uint8Array, o: number, pgno: number, l: number, prefix: number): void {
    const { r, c, label, d } = this;
    if (l !== HASH_BITS) {
      c.problem(`${label}: collision holder ${pgno} has depth ${l}`);
      return;
    }
    const tree = readHolder(b, o, pgno, prefix, r.pageCountLimit());
    const counted = readU32(b, o + HOLDER_ENTRIES);
    const sub = `${label} collision tree ${pgno}`;
    const found = checkTree(r, tree, c, sub);
    if (found !== counted)
      c.problem(`${sub}: holds ${found} entries, its holder counts ${counted}`);
    if (tree.root !== 0) {
      const cur = new TreeCursor(r, tree, r.pageCountLimit());
      for (let ok = cur.seek(null, 0); ok; ok = cur.next()) {
        const kb = cur.keyBuf();
        const ks = cur.keyStart();
        const kl = cur.keyLength();
        if (hashOf(d, kb.subarray(ks, ks + kl), kl) !== prefix) {
          c.problem(`${sub}: holds a key of another hash`);
          break;
        }
      }
    }
    this.entries += found;
  }
}

function report(c: IndexCheck, label: string, err: unknown): void {
  if (err instanceof MapKVError && err.code === 'ERR_CORRUPT')
    c.problem(`${label}: ${err.message}`);
  else throw err;
}
