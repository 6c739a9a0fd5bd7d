/**
 * Copy-on-write hash table: a trie of directory pages over the bits of a keyed 32-bit hash,
 * with bucket pages as leaves (layout in layout.ts and docs/HASH.md).
 *
 * A lookup hashes the key once and follows one slot per directory page, top hash bits first,
 * to a bucket, whose slot array (hash, record offset) it searches from the slot where the hash
 * should lie, comparing key bytes only on equal hashes: one page per directory level (none
 * while the table fits one bucket) plus the bucket. The descent takes at most 32 steps on any
 * file: every directory page must say it starts at the hash bit where the descent is, so the
 * bit position grows at every step.
 *
 * Growth is extendible hashing inside each directory page. A bucket of local depth L fills
 * the 2^(depth + bits - L) slots of its directory page that share its L-bit prefix; a full
 * bucket splits in two by hash bit L, each half taking half of those slots. A bucket that
 * fills a single slot first makes its directory page double (one more bit, in place, up to a
 * full page) or, below a full-width page, gets a two-slot directory page of its own: the trie
 * deepens where the keys are, and no directory is ever larger than a page. One insert
 * therefore writes the path (one copy per level), the bucket, and for a split one new bucket
 * and at most one new directory page, touching at most one directory page's slots: its cost
 * does not grow with the table.
 *
 * Shrinking is the reverse: after a removal, a bucket and its buddy (same depth, the other
 * half of their parent range) merge when both fit half a page, repeatedly; a directory page
 * whose slots come in equal pairs halves, and one left with a single child is replaced by that
 * child. Merging whenever a buddy pair fits half a page keeps this invariant: no buddy pair of
 * equal depth fits half a page. A table emptied therefore collapses to one empty bucket, which
 * is freed: every page goes back to the freelist.
 *
 * A bucket whose keys share all 32 bits and overflow a page (only keys chosen with knowledge
 * of the database's secret hash key can do that) becomes a collision holder: a small B+tree of
 * those keys. It turns back into a bucket when its tree fits half a page again.
 */
import { corrupt } from '../errors';
import {
  H_AUX,
  H_COUNT,
  H_FLAGS,
  H_TYPE,
  H_UPPER,
  HEADER_SIZE,
  LEAF_RECORD_HEADER,
  MAX_DEPTH,
  PageType,
  initPageHeader,
  readU32,
  writeU16,
  writeU32,
} from '../format/layout';
import { DbKind, type DbDescriptor } from '../format/meta';
import type { PageReader, PageWriter } from '../txn/pages';
import {
  type ValueRef,
  buildLeafRecord,
  freeRecordOverflow,
  overflowPages,
  treeGet,
  treePut,
  treeRemove,
  inlineRecordSize,
  writeInlineRecord,
} from '../btree/btree';
import { appendRecordCopy, checkNode, nodeCount, nodeUsed, slotAt } from '../btree/node';
import {
  SLOT_SIZE,
  appendRecords,
  appendSlot,
  bucketCount,
  bucketDepth,
  bucketLookup,
  bucketRoom,
  bucketSearch,
  bucketUsed,
  bucketValue,
  checkBucketForWrite,
  initBucket,
  recordBytes,
  removeSlot,
  replaceRecord,
  reserveSlot,
  slotRecord,
  takeCopiedBucket,
} from './bucket';
import { checkDirectory } from './directory';
import { checkHashFormat, ensureHashKey, hashOf } from './hashkey';
import { checkHolderTree } from './holder';
import {
  AUX_FORMAT,
  BUCKET_COLLISIONS,
  HASH_BITS,
  HASH_FORMAT,
  HOLDER_DEPTH,
  HOLDER_ENTRIES,
  HOLDER_HASH,
  HOLDER_ROOT,
  directoryBits,
  mergeLimit,
  slotOf,
} from './layout';

// --- reads ---

/** Finds key `k[0, kl)`; on success fills `out` with the value's bytes. */
export function hashGet(
  r: PageReader,
  d: DbDescriptor,
  k: Uint8Array,
  kl: number,
  out: ValueRef,
): boolean {
  if (d.root === 0) return false;
  if (d.aux[AUX_FORMAT] !== HASH_FORMAT) checkHashFormat(d);
  return find(r, d, hashOf(d, k, kl), k, kl, out);
}

/**
 * Finds (h, k) under the root of `d`. Fills `out` when given; without it a bucket record is
 * only located.
 */
function find(
  r: PageReader,
  d: DbDescriptor,
  h: number,
  k: Uint8Array,
  kl: number,
  out: ValueRef | null,
): boolean {
  const ps = r.pageSize;
  let pgno = d.root;
  let depth = 0;
  const dirs = r.flatIndexes;
  if (dirs !== undefined) {
    // A committed snapshot: the descent may start below the directories (directory.ts).
    const flat = dirs.lookup(r, d);
    if (flat !== null) {
      const e = h >>> flat.shift;
      pgno = flat.pages[e]!;
      depth = flat.depths[e]!;
    }
  }
  for (;;) {
    const b = r.page(pgno);
    const o = r.at;
    const type = b[o + H_TYPE];
    if (type === PageType.HashDirectory) {
      const bits = checkDirectory(b, o, ps, pgno, depth);
      pgno = readU32(b, o + HEADER_SIZE + 4 * slotOf(h, depth, bits));
      depth += bits;
      continue;
    }
    if (type === PageType.HashBucket && b[o + H_FLAGS] === 0) {
      const i = bucketLookup(b, o, ps, pgno, h, k, kl);
      if (i < 0) return false;
      if (out !== null) bucketValue(r, b, o, i, out);
      return true;
    }
    const tree = readHolder(b, o, pgno, h, r.pageCountLimit());
    return treeGet(r, tree, k, kl, out ?? scratchRef);
  }
}

const scratchRef: ValueRef = { buf: new Uint8Array(0), start: 0, end: 0 };

/**
 * The B+tree of collision holder `b[o]` (page `pgno`) as a descriptor, after checking it is a
 * holder of hash `h` whose root lies in the file.
 */
export function readHolder(
  b: Uint8Array,
  o: number,
  pgno: number,
  h: number,
  pageCount: number,
): DbDescriptor {
  if (
    b[o + H_TYPE] !== PageType.HashBucket ||
    b[o + H_FLAGS] !== BUCKET_COLLISIONS ||
    readU32(b, o + H_AUX) !== HASH_BITS
  ) {
    corrupt(`page ${pgno} should be a hash bucket or directory`);
  }
  if (readU32(b, o + HOLDER_HASH) !== h) corrupt(`collision holder ${pgno} holds another hash`);
  const root = readU32(b, o + HOLDER_ROOT);
  const depth = readU32(b, o + HOLDER_DEPTH);
  if ((root === 0) !== (depth === 0) || depth > MAX_DEPTH || (root !== 0 && root >= pageCount)) {
    corrupt(`collision holder ${pgno} has tree root ${root} and depth ${depth}`);
  }
  return {
    kind: DbKind.BTree,
    keyEncoding: 0,
    valueEncoding: 0,
    root,
    depth,
    entries: readU32(b, o + HOLDER_ENTRIES),
    aux: [0, 0, 0, 0, 0, 0],
  };
}

// --- writes ---

// Scratch state of the write path. Writes are synchronous and never re-entered, so one set
// serves every table. The path holds the directory pages from the root to the current bucket,
// all writable: page, slot taken, hash bit where the page starts, its slot bits.
const pathPg: number[] = new Array<number>(HASH_BITS + 1).fill(0);
const pathSlot: number[] = new Array<number>(HASH_BITS + 1).fill(0);
const pathDepth: number[] = new Array<number>(HASH_BITS + 1).fill(0);
const pathBits: number[] = new Array<number>(HASH_BITS + 1).fill(0);
let pathLen = 0;
/**
 * Whether touchDown copied the bucket it returned from a committed page. A page this
 * transaction wrote was written by this code and needs no check; a copy is checked in full
 * before it is changed.
 */
let copied = false;
/** The record being inserted. */
let recBuf = new Uint8Array(4096);
/** Page images of buckets being split or merged. */
let copyA = new Uint8Array(4096);
let copyB = new Uint8Array(4096);

function ensureBuffers(pageSize: number): void {
  if (recBuf.length < pageSize) {
    recBuf = new Uint8Array(pageSize);
    copyA = new Uint8Array(pageSize);
    copyB = new Uint8Array(pageSize);
  }
}

/**
 * Inserts or replaces `k` -> `v`. Returns true when the key is new. The descriptor is updated
 * in place (root, entries, and the hash key on the first write).
 */
export function hashPut(
  w: PageWriter,
  d: DbDescriptor,
  k: Uint8Array,
  kl: number,
  v: Uint8Array,
  vl: number,
): boolean {
  const ps = w.pageSize;
  ensureBuffers(ps);
  ensureHashKey(d);
  const h = hashOf(d, k, kl);
  if (d.root === 0) {
    const size = buildLeafRecord(w, recBuf, k, kl, v, vl);
    const pg = w.allocPage();
    const b = w.pageW(pg);
    const o = w.at;
    initBucket(b, o, pg, w.txnId, ps, 0);
    appendSlot(b, o, recBuf, 0, size, h);
    d.root = pg;
    d.entries = 1;
    return true;
  }
  const pg = touchDown(w, d, h);
  let b = w.pageW(pg);
  let o = w.at;
  if (b[o + H_FLAGS] !== 0) {
    const added = holderPut(w, pg, h, k, kl, v, vl);
    if (added) d.entries++;
    return added;
  }
  if (copied) takeCopiedBucket(b, o, ps, pg, w.scratch);
  let i = bucketSearch(b, o, ps, h, k, kl);
  const exists = i >= 0;
  // An inline record is written straight into its place in the bucket (writeRecord); a record
  // whose value goes to an overflow run is built in recBuf first.
  const inlineSize = inlineRecordSize(kl, vl, ps);
  const inline = inlineSize !== 0;
  let size: number;
  if (exists) {
    const r = slotRecord(b, o, i);
    freeRecordOverflow(w, b, o + r);
    const oldSize = recordBytes(b, o + r);
    size = inline ? inlineSize : buildLeafRecord(w, recBuf, k, kl, v, vl);
    b = w.pageW(pg);
    o = w.at;
    if (size <= oldSize) {
      // Same key, no larger: the record is replaced where it is (bucket.ts, replaceRecord).
      writeRecord(b, o + replaceRecord(b, o, i, size), inline, size, k, kl, v, vl);
      if (size < oldSize) mergeUp(w, d, pg);
      return false;
    }
    removeSlot(b, o, i);
  } else {
    i = ~i;
    size = inline ? inlineSize : buildLeafRecord(w, recBuf, k, kl, v, vl);
  }
  const full = insertRecord(w, d, pg, i, size, h, k, kl, v, vl, inline);
  if (full !== 0) {
    // All 32 bits used and still no room: the keys of this hash move into a B+tree, and the
    // value goes in again through it. Its overflow run, if any, is freed after the holder's
    // leaf is allocated and before the tree writes the value: the tree's run then reuses the
    // same pages (a free run of this transaction), where freeing it first let the leaf take
    // one of its pages and left the rest free for good (a compact backup showed 21 free pages).
    // A record that is not inline is the one in recBuf, with the run's first page.
    const run = inline ? 0 : readU32(recBuf, LEAF_RECORD_HEADER + kl);
    bucketToHolder(w, full, h);
    if (run !== 0) w.freeRun(run, overflowPages(vl, ps));
    holderPut(w, full, h, k, kl, v, vl);
  }
  if (!exists) d.entries++;
  return !exists;
}

/** Removes `k`. Returns whether it existed. */
export function hashRemove(w: PageWriter, d: DbDescriptor, k: Uint8Array, kl: number): boolean {
  if (d.root === 0) return false;
  checkHashFormat(d);
  const h = hashOf(d, k, kl);
  // Look first: a key that is absent costs no page copies.
  if (!find(w, d, h, k, kl, null)) return false;
  const ps = w.pageSize;
  ensureBuffers(ps);
  const pg = touchDown(w, d, h);
  let b = w.pageW(pg);
  let o = w.at;
  if (b[o + H_FLAGS] !== 0) {
    d.entries--;
    holderRemove(w, d, pg, h, k, kl);
    return true;
  }
  if (copied) takeCopiedBucket(b, o, ps, pg, w.scratch);
  const i = bucketSearch(b, o, ps, h, k, kl);
  if (i < 0) corrupt('a key vanished between two reads');
  freeRecordOverflow(w, b, o + slotRecord(b, o, i));
  b = w.pageW(pg);
  o = w.at;
  removeSlot(b, o, i);
  d.entries--;
  mergeUp(w, d, pg);
  return true;
}

/**
 * Makes the path from the root to the bucket of hash `h` writable, filling the path arrays;
 * returns the bucket's (or collision holder's) page number. A page copied by `touch` is
 * relinked in every slot that named the original.
 */
function touchDown(w: PageWriter, d: DbDescriptor, h: number): number {
  const ps = w.pageSize;
  let pgno = w.touch(d.root);
  copied = pgno !== d.root;
  d.root = pgno;
  let depth = 0;
  pathLen = 0;
  for (;;) {
    const b = w.pageW(pgno);
    const o = w.at;
    if (b[o + H_TYPE] !== PageType.HashDirectory) {
      if (pathLen === 0) {
        if (
          b[o + H_TYPE] !== PageType.HashBucket ||
          b[o + H_FLAGS] !== 0 ||
          bucketDepth(b, o) !== 0
        ) {
          corrupt(`the root ${pgno} of a hash table is neither a directory nor a bucket`);
        }
      } else childSpan(b, o, pgno, pathDepth[pathLen - 1]!, pathBits[pathLen - 1]!);
      return pgno;
    }
    const bits = checkDirectory(b, o, ps, pgno, depth);
    const s = slotOf(h, depth, bits);
    const child = readU32(b, o + HEADER_SIZE + 4 * s);
    pathPg[pathLen] = pgno;
    pathSlot[pathLen] = s;
    pathDepth[pathLen] = depth;
    pathBits[pathLen] = bits;
    pathLen++;
    const copy = w.touch(child);
    copied = copy !== child;
    if (copied) relink(w, pathLen - 1, child, copy);
    pgno = copy;
    depth += bits;
  }
}

/**
 * How many slots of a directory page at hash bit `depth` with `bits` slot bits the child page
 * `b[o]` fills: 1 for a directory (which must start at depth + bits), 2^(depth + bits - L)
 * for a bucket of local depth L (which must lie in [depth, depth + bits]).
 */
function childSpan(b: Uint8Array, o: number, pgno: number, depth: number, bits: number): number {
  const type = b[o + H_TYPE];
  if (type === PageType.HashDirectory) {
    if (readU32(b, o + H_AUX) !== depth + bits) {
      corrupt(`hash directory ${pgno} does not start at hash bit ${depth + bits}`);
    }
    return 1;
  }
  const l = readU32(b, o + H_AUX);
  if (
    type !== PageType.HashBucket ||
    l < depth ||
    l > depth + bits ||
    (b[o + H_FLAGS] !== 0 && (b[o + H_FLAGS] !== BUCKET_COLLISIONS || l !== HASH_BITS))
  ) {
    corrupt(`page ${pgno} is not a hash bucket of depth ${depth} to ${depth + bits}`);
  }
  return 1 << (depth + bits - l);
}

/** Points every slot of path level `level` that named page `old` at its copy `copy`. */
function relink(w: PageWriter, level: number, old: number, copy: number): void {
  const cb = w.pageW(copy);
  const span = childSpan(cb, w.at, copy, pathDepth[level]!, pathBits[level]!);
  const start = pathSlot[level]! & ~(span - 1);
  const pb = w.pageW(pathPg[level]!);
  const so = w.at + HEADER_SIZE;
  for (let j = start; j < start + span; j++) {
    if (readU32(pb, so + 4 * j) !== old) {
      corrupt(`hash directory ${pathPg[level]} does not name page ${old} where its depth says`);
    }
    writeU32(pb, so + 4 * j, copy);
  }
}

/**
 * Inserts recBuf[0, size) as record `i` of writable bucket `pgno`, splitting the bucket until
 * the record fits. Returns 0, or the page of a full bucket that uses all 32 hash bits (the
 * record is then not inserted).
 */
function insertRecord(
  w: PageWriter,
  d: DbDescriptor,
  pgno: number,
  i: number,
  size: number,
  h: number,
  k: Uint8Array,
  kl: number,
  v: Uint8Array,
  vl: number,
  inline: boolean,
): number {
  const ps = w.pageSize;
  for (;;) {
    const b = w.pageW(pgno);
    const o = w.at;
    if (bucketRoom(b, o) >= size + SLOT_SIZE) {
      writeRecord(b, o + reserveSlot(b, o, i, size, h, w.scratch, ps), inline, size, k, kl, v, vl);
      return 0;
    }
    if (bucketDepth(b, o) >= HASH_BITS) return pgno;
    pgno = splitBucket(w, d, pgno, h);
    const nb = w.pageW(pgno);
    i = bucketSearch(nb, w.at, ps, h, k, kl);
    if (i >= 0) corrupt('a key appeared during a bucket split');
    i = ~i;
  }
}

/**
 * Writes the `size`-byte record of `k` -> `v` at `b[p]`: straight from the key and value when
 * `inline`, else the record buildLeafRecord left in recBuf (its value in an overflow run).
 */
function writeRecord(
  b: Uint8Array,
  p: number,
  inline: boolean,
  size: number,
  k: Uint8Array,
  kl: number,
  v: Uint8Array,
  vl: number,
): void {
  if (inline) writeInlineRecord(b, p, k, kl, v, vl);
  else b.set(recBuf.subarray(0, size), p);
}

/**
 * Splits writable bucket `pgno` (local depth L) by hash bit L into itself and a new bucket;
 * returns the one that hash `h` belongs to. A bucket that fills a single slot first makes its
 * directory page double its slots or, when that page is at full width (or the bucket is the
 * root), gets a two-slot directory page of its own.
 */
function splitBucket(w: PageWriter, d: DbDescriptor, pgno: number, h: number): number {
  const ps = w.pageSize;
  let b = w.pageW(pgno);
  let o = w.at;
  const l = bucketDepth(b, o);
  if (pathLen > 0 && l === pathDepth[pathLen - 1]! + pathBits[pathLen - 1]!) {
    const top = pathLen - 1;
    if (pathBits[top]! < directoryBits(ps, pathDepth[top]!)) doubleDirectory(w, top, h);
    else {
      const dir = newDirectory(w, l, pgno);
      setSlot(w, top, dir);
      pushDirectory(dir, l, h);
    }
  } else if (pathLen === 0) {
    d.root = newDirectory(w, 0, pgno);
    pushDirectory(d.root, 0, h);
  }
  const top = pathLen - 1;
  const span = 1 << (pathDepth[top]! + pathBits[top]! - l);
  const start = pathSlot[top]! & ~(span - 1);
  b = w.pageW(pgno);
  o = w.at;
  copyA.set(b.subarray(o, o + ps), 0);
  const right = w.allocPage();
  b = w.pageW(pgno);
  o = w.at;
  initBucket(b, o, pgno, w.txnId, ps, l + 1);
  appendRecords(b, o, copyA, l, 0);
  const rb = w.pageW(right);
  const ro = w.at;
  initBucket(rb, ro, right, w.txnId, ps, l + 1);
  appendRecords(rb, ro, copyA, l, 1);
  const pb = w.pageW(pathPg[top]!);
  const so = w.at + HEADER_SIZE;
  for (let j = start + (span >>> 1); j < start + span; j++) writeU32(pb, so + 4 * j, right);
  return ((h >>> (31 - l)) & 1) === 0 ? pgno : right;
}

/** A new two-slot directory page starting at hash bit `depth`, both slots naming `child`. */
function newDirectory(w: PageWriter, depth: number, child: number): number {
  const ps = w.pageSize;
  const pg = w.allocPage();
  const b = w.pageW(pg);
  const o = w.at;
  initPageHeader(b, o, PageType.HashDirectory, pg, w.txnId, ps);
  writeU32(b, o + H_UPPER, 0);
  writeU16(b, o + H_COUNT, 2);
  writeU32(b, o + H_AUX, depth);
  b.fill(0, o + HEADER_SIZE, o + ps);
  writeU32(b, o + HEADER_SIZE, child);
  writeU32(b, o + HEADER_SIZE + 4, child);
  return pg;
}

/** Appends the two-slot directory `dir`, starting at hash bit `depth`, to the path. */
function pushDirectory(dir: number, depth: number, h: number): void {
  pathPg[pathLen] = dir;
  pathSlot[pathLen] = slotOf(h, depth, 1);
  pathDepth[pathLen] = depth;
  pathBits[pathLen] = 1;
  pathLen++;
}

/**
 * Doubles the slots of writable directory page at path level `level` (one more hash bit): slot
 * j becomes slots 2j and 2j + 1, so every child keeps its hash range and fills twice the slots.
 */
function doubleDirectory(w: PageWriter, level: number, h: number): void {
  const b = w.pageW(pathPg[level]!);
  const so = w.at + HEADER_SIZE;
  const n = 1 << pathBits[level]!;
  // Downwards: slots 2j and 2j + 1 are above every slot not yet read.
  for (let j = n - 1; j >= 0; j--) {
    const child = readU32(b, so + 4 * j);
    writeU32(b, so + 8 * j, child);
    writeU32(b, so + 8 * j + 4, child);
  }
  writeU16(b, w.at + H_COUNT, 2 * n);
  pathBits[level]!++;
  pathSlot[level] = slotOf(h, pathDepth[level]!, pathBits[level]!);
}

/**
 * Halves the slots of writable directory page at path level `level` while every pair of
 * slots names one child (no child needs the last bit) and two slots remain.
 */
function halveDirectory(w: PageWriter, level: number): void {
  const b = w.pageW(pathPg[level]!);
  const o = w.at;
  const so = o + HEADER_SIZE;
  for (;;) {
    const n = 1 << pathBits[level]!;
    if (n <= 2) return;
    for (let j = 0; j < n; j += 2) {
      if (readU32(b, so + 4 * j) !== readU32(b, so + 4 * j + 4)) return;
    }
    for (let j = 0; j < n / 2; j++) writeU32(b, so + 4 * j, readU32(b, so + 8 * j));
    b.fill(0, so + 2 * n, so + 4 * n);
    writeU16(b, o + H_COUNT, n / 2);
    pathBits[level]!--;
    pathSlot[level] = pathSlot[level]! >>> 1;
  }
}

/** Sets the slot path level `level` took to `child`. */
function setSlot(w: PageWriter, level: number, child: number): void {
  const pb = w.pageW(pathPg[level]!);
  writeU32(pb, w.at + HEADER_SIZE + 4 * pathSlot[level]!, child);
}

/**
 * After writable bucket `pgno` (at the end of the path) shrank: merges it with its buddy while
 * the two fit half a page, halving the directory page after each merge while it can, replaces
 * a directory page left with one bucket by that bucket, and frees the last bucket of an empty
 * table.
 */
function mergeUp(w: PageWriter, d: DbDescriptor, pgno: number): void {
  const ps = w.pageSize;
  const limit = mergeLimit(ps);
  for (;;) {
    let b = w.pageW(pgno);
    let o = w.at;
    if (b[o + H_FLAGS] !== 0) return;
    if (pathLen === 0) {
      if (bucketCount(b, o) === 0) {
        w.freePage(pgno);
        d.root = 0;
      }
      return;
    }
    const top = pathLen - 1;
    const dir = pathPg[top]!;
    const depth = pathDepth[top]!;
    const bits = pathBits[top]!;
    const l = bucketDepth(b, o);
    let pb = w.pageW(dir);
    let so = w.at + HEADER_SIZE;
    if (l === depth) {
      // The bucket fills its whole directory page: the page goes, the bucket takes its slot.
      for (let j = 0; j < 1 << bits; j++) {
        if (readU32(pb, so + 4 * j) !== pgno) corrupt(`hash directory ${dir} is inconsistent`);
      }
      w.freePage(dir);
      pathLen--;
      if (pathLen === 0) d.root = pgno;
      else setSlot(w, pathLen - 1, pgno);
      continue;
    }
    const used = bucketUsed(b, o, ps);
    if (used > limit) return;
    const span = 1 << (depth + bits - l);
    const start = pathSlot[top]! & ~(span - 1);
    const other = start ^ span;
    const buddy = readU32(pb, so + 4 * other);
    if (buddy === pgno) corrupt(`hash bucket ${pgno} fills more slots than its depth says`);
    const bb = w.page(buddy);
    const bo = w.at;
    if (bb[bo + H_TYPE] !== PageType.HashBucket || bb[bo + H_FLAGS] !== 0) return;
    if (bucketDepth(bb, bo) !== l || used + bucketUsed(bb, bo, ps) > limit) return;
    // A buddy of depth l fills the whole other half; if not, the file is damaged.
    for (let j = other + 1; j < other + span; j++) {
      if (readU32(pb, so + 4 * j) !== buddy) corrupt(`hash directory ${dir} is inconsistent`);
    }
    checkBucketForWrite(bb, bo, ps, buddy);
    copyB.set(bb.subarray(bo, bo + ps), 0);
    b = w.pageW(pgno);
    o = w.at;
    copyA.set(b.subarray(o, o + ps), 0);
    initBucket(b, o, pgno, w.txnId, ps, l - 1);
    // Lower half first: records stay in (hash, key) order.
    appendRecords(b, o, start < other ? copyA : copyB, -1, 0);
    appendRecords(b, o, start < other ? copyB : copyA, -1, 0);
    pb = w.pageW(dir);
    so = w.at + HEADER_SIZE;
    const lo = start < other ? start : other;
    for (let j = lo; j < lo + 2 * span; j++) writeU32(pb, so + 4 * j, pgno);
    w.freePage(buddy);
    halveDirectory(w, top);
  }
}

// --- collision holders ---

/** Inserts into the B+tree of writable holder `pgno`; returns whether the key is new. */
function holderPut(
  w: PageWriter,
  pgno: number,
  h: number,
  k: Uint8Array,
  kl: number,
  v: Uint8Array,
  vl: number,
): boolean {
  const tree = readHolder(w.pageW(pgno), w.at, pgno, h, w.pageCountLimit());
  if (copied) checkHolderTree(w, tree);
  const added = treePut(w, tree, k, kl, v, vl);
  writeHolder(w, pgno, tree);
  return added;
}

/** Removes a key known to be in holder `pgno`; turns the holder back into a bucket when small. */
function holderRemove(
  w: PageWriter,
  d: DbDescriptor,
  pgno: number,
  h: number,
  k: Uint8Array,
  kl: number,
): void {
  const ps = w.pageSize;
  const tree = readHolder(w.pageW(pgno), w.at, pgno, h, w.pageCountLimit());
  if (copied) checkHolderTree(w, tree);
  if (!treeRemove(w, tree, k, kl)) corrupt('a key vanished between two reads');
  writeHolder(w, pgno, tree);
  if (tree.depth > 1) return;
  if (tree.root !== 0) {
    const lb = w.page(tree.root);
    checkNode(lb, w.at, ps, PageType.Leaf, tree.root);
    // A bucket slot takes SLOT_SIZE bytes where a leaf slot takes 2.
    const used = nodeUsed(lb, w.at, ps) + (SLOT_SIZE - 2) * nodeCount(lb, w.at);
    if (used > mergeLimit(ps)) return;
  }
  holderToBucket(w, pgno, h, tree.root);
  mergeUp(w, d, pgno);
}

function writeHolder(w: PageWriter, pgno: number, tree: DbDescriptor): void {
  const b = w.pageW(pgno);
  const o = w.at;
  writeU32(b, o + HOLDER_ROOT, tree.root);
  writeU32(b, o + HOLDER_DEPTH, tree.depth);
  writeU32(b, o + HOLDER_ENTRIES, tree.entries);
}

/**
 * Turns full writable bucket `pgno` (depth 32: every record has hash `h`) into a collision
 * holder whose tree is one leaf with the same records: bucket records are leaf records, so
 * values and overflow runs move as they are.
 */
function bucketToHolder(w: PageWriter, pgno: number, h: number): void {
  const ps = w.pageSize;
  let b = w.pageW(pgno);
  let o = w.at;
  copyA.set(b.subarray(o, o + ps), 0);
  const n = bucketCount(copyA, 0);
  const leaf = w.allocPage();
  const lb = w.pageW(leaf);
  const lo = w.at;
  initPageHeader(lb, lo, PageType.Leaf, leaf, w.txnId, ps);
  lb.fill(0, lo + HEADER_SIZE, lo + ps);
  for (let j = 0; j < n; j++) {
    const p = slotRecord(copyA, 0, j);
    appendRecordCopy(lb, lo, copyA, p, recordBytes(copyA, p));
  }
  b = w.pageW(pgno);
  o = w.at;
  initPageHeader(b, o, PageType.HashBucket, pgno, w.txnId, ps);
  b.fill(0, o + HEADER_SIZE, o + ps);
  b[o + H_FLAGS] = BUCKET_COLLISIONS;
  writeU32(b, o + H_UPPER, 0);
  writeU32(b, o + H_AUX, HASH_BITS);
  writeU32(b, o + HOLDER_ROOT, leaf);
  writeU32(b, o + HOLDER_DEPTH, 1);
  writeU32(b, o + HOLDER_HASH, h);
  writeU32(b, o + HOLDER_ENTRIES, n);
}

/** Turns writable holder `pgno` whose tree is at most leaf `leaf` back into a bucket. */
function holderToBucket(w: PageWriter, pgno: number, h: number, leaf: number): void {
  const ps = w.pageSize;
  let n = 0;
  if (leaf !== 0) {
    const lb = w.page(leaf);
    copyA.set(lb.subarray(w.at, w.at + ps), 0);
    n = nodeCount(copyA, 0);
    w.freePage(leaf);
  }
  const b = w.pageW(pgno);
  const o = w.at;
  initBucket(b, o, pgno, w.txnId, ps, HASH_BITS);
  for (let j = 0; j < n; j++) {
    const p = slotAt(copyA, 0, j);
    if (p < HEADER_SIZE + 2 * n || p + LEAF_RECORD_HEADER > ps) {
      corrupt(`leaf ${leaf} has a record outside its page`);
    }
    const size = recordBytes(copyA, p);
    if (p + size > ps) corrupt(`leaf ${leaf} has a record outside its page`);
    appendSlot(b, o, copyA, p, size, h);
  }
}

// --- records ---
