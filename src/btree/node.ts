/**
 * Branch and leaf pages: slotted pages with a record heap.
 *
 * After the 32-byte header comes an array of u16 slots, one per record, in key order; each
 * slot is the record's byte offset inside the page. Records are packed from the end of the
 * page downwards; `upper` (header) is the lowest record byte, `frag` counts dead bytes inside
 * the heap left by removals and shrinking updates, reclaimed by compaction.
 *
 *   leaf record:   u16 keyLength, u8 flags, u32 valueLength, key, value (or u32 overflow pgno)
 *   branch record: u16 keyLength, u32 child, key       (record 0 has an empty key: -infinity)
 *
 * Every function here trusts nothing it reads: offsets and lengths are checked against the
 * page before use, and a page that breaks the layout raises ERR_CORRUPT (invariant 5).
 */
import { corrupt } from '../errors';
import {
  BRANCH_RECORD_HEADER,
  H_COUNT,
  H_FRAG,
  H_PGNO,
  H_TYPE,
  H_UPPER,
  HEADER_SIZE,
  LEAF_RECORD_HEADER,
  PageType,
  VALUE_OVERFLOW,
  readU16,
  readU32,
  writeU16,
  writeU32,
} from '../format/layout';

export function nodeCount(b: Uint8Array, o: number): number {
  return b[o + H_COUNT]! | (b[o + H_COUNT + 1]! << 8);
}

/** Byte offset (inside the page) of record `i`. */
export function slotAt(b: Uint8Array, o: number, i: number): number {
  const s = o + HEADER_SIZE + 2 * i;
  return b[s]! | (b[s + 1]! << 8);
}

/**
 * Checks a page's type and the numbers every record access relies on: that the slot array and
 * the heap fit the page. Called on every page a tree operation visits.
 */
export function checkNode(
  b: Uint8Array,
  o: number,
  pageSize: number,
  type: PageType,
  pgno: number,
): void {
  if (b[o + H_TYPE] !== type) {
    corrupt(`page ${pgno} should be a ${type === PageType.Leaf ? 'leaf' : 'branch'} page`);
  }
  // The slot array must fit the page; each record's offset and length are checked where the
  // record is read (leafSearch, branchSearch, leafValue, recordSize callers on the write path).
  // A page holds its own number: a page written to the wrong place, or swapped with another,
  // fails here even though its checksum (which covers only its own bytes) is right.
  if (readU32(b, o + H_PGNO) !== pgno) corrupt(`page ${pgno} carries the number of another page`);
  const n = nodeCount(b, o);
  if (HEADER_SIZE + 2 * n > pageSize || (type === PageType.Branch && n === 0)) {
    corrupt(`page ${pgno} has a slot array that does not fit`);
  }
}

/**
 * checkNode plus the heap bounds the write path relies on (`upper`, `frag`): a damaged page is
 * refused before a write could land outside it.
 */
export function checkNodeForWrite(
  b: Uint8Array,
  o: number,
  pageSize: number,
  type: PageType,
  pgno: number,
): void {
  checkNode(b, o, pageSize, type, pgno);
  const upper = readU32(b, o + H_UPPER);
  if (
    upper < HEADER_SIZE + 2 * nodeCount(b, o) ||
    upper > pageSize ||
    readU32(b, o + H_FRAG) > pageSize
  ) {
    corrupt(`page ${pgno} has a record heap that does not fit`);
  }
}

/**
 * Checks that every record of a node lies inside the page (header, key and, for a leaf, the
 * inline value or overflow pointer). Cursors call it once per page they enter, so stepping
 * through the records afterwards reads only bytes of the page.
 */
export function checkRecords(
  b: Uint8Array,
  o: number,
  pageSize: number,
  leaf: boolean,
  pgno: number,
): void {
  const n = nodeCount(b, o);
  const minRec = HEADER_SIZE + 2 * n;
  const head = leaf ? LEAF_RECORD_HEADER : BRANCH_RECORD_HEADER;
  for (let i = 0; i < n; i++) {
    const r = slotAt(b, o, i);
    if (r < minRec || r > pageSize - head) corrupt(`page ${pgno} has a record outside the page`);
    const p = o + r;
    let end = r + head + (b[p]! | (b[p + 1]! << 8));
    if (leaf) end += b[p + 2]! & VALUE_OVERFLOW ? 4 : readU32(b, p + 3);
    if (end > pageSize) corrupt(`page ${pgno} has a record outside the page`);
  }
}

/**
 * Offset (inside the view) of leaf record `i` after checking, as checkRecords does for every
 * record, that its header, key and inline value (or overflow pointer) lie inside the page:
 * a cursor checks each record it stands on instead of whole leaves it may leave early.
 * The caller checked the node with checkNode (so slot `i < count` is inside the page).
 */
export function checkedLeafRecord(
  b: Uint8Array,
  o: number,
  pageSize: number,
  i: number,
  pgno: number,
): number {
  const r = checkedSlot(b, o, pageSize, i, pgno, LEAF_RECORD_HEADER);
  const p = o + r;
  const end =
    r +
    LEAF_RECORD_HEADER +
    (b[p]! | (b[p + 1]! << 8)) +
    (b[p + 2]! & VALUE_OVERFLOW ? 4 : readU32(b, p + 3));
  if (end > pageSize) corrupt(`page ${pgno} has a record outside the page`);
  return p;
}

/**
 * The child of branch record `i`, after checking that the record's header lies inside the
 * page (its key is not read). The caller checked the node with checkNode.
 */
export function checkedBranchChild(
  b: Uint8Array,
  o: number,
  pageSize: number,
  i: number,
  pgno: number,
): number {
  return readU32(b, o + checkedSlot(b, o, pageSize, i, pgno, BRANCH_RECORD_HEADER) + 2);
}

/**
 * The offset in `b` of branch record `i`, after checking that the record, key included, lies
 * inside the page. The caller checked the node with checkNode.
 */
export function checkedBranchRecord(
  b: Uint8Array,
  o: number,
  pageSize: number,
  i: number,
  pgno: number,
): number {
  const r = checkedSlot(b, o, pageSize, i, pgno, BRANCH_RECORD_HEADER);
  const p = o + r;
  if (r + BRANCH_RECORD_HEADER + (b[p]! | (b[p + 1]! << 8)) > pageSize)
    corrupt(`page ${pgno} has a record outside the page`);
  return p;
}

/** Slot `i`'s record offset, after checking its `header` bytes lie past the slots, in the page. */
function checkedSlot(
  b: Uint8Array,
  o: number,
  pageSize: number,
  i: number,
  pgno: number,
  header: number,
): number {
  const r = slotAt(b, o, i);
  if (r < HEADER_SIZE + 2 * nodeCount(b, o) || r > pageSize - header)
    corrupt(`page ${pgno} has a record outside the page`);
  return r;
}

/**
 * The full check of a committed node the write path is about to copy and change: every record
 * inside the page, and the live records plus the dead bytes exactly filling the heap. Splits,
 * merges and compaction copy records by their stated sizes, so overlapping records in a
 * damaged page must be refused here (ERR_CORRUPT), not met later as a RangeError.
 */
export function checkNodeDeep(
  b: Uint8Array,
  o: number,
  pageSize: number,
  leaf: boolean,
  pgno: number,
): void {
  checkNodeForWrite(b, o, pageSize, leaf ? PageType.Leaf : PageType.Branch, pgno);
  checkRecords(b, o, pageSize, leaf, pgno);
  const n = nodeCount(b, o);
  let live = 0;
  for (let i = 0; i < n; i++) live += recordSize(b, o, slotAt(b, o, i), leaf);
  if (live + readU32(b, o + H_FRAG) !== pageSize - readU32(b, o + H_UPPER)) {
    corrupt(`page ${pgno} has records that overlap or leave its heap`);
  }
}

/** Compares key `k[0, kl)` with `b[p, p + len)`: negative, zero or positive like memcmp. */
export function compareKey(
  k: Uint8Array,
  kl: number,
  b: Uint8Array,
  p: number,
  len: number,
): number {
  const n = kl < len ? kl : len;
  for (let i = 0; i < n; i++) {
    const d = k[i]! - b[p + i]!;
    if (d !== 0) return d;
  }
  return kl - len;
}

/** Compares two byte strings. */
export function compareBytes(
  a: Uint8Array,
  as: number,
  al: number,
  b: Uint8Array,
  bs: number,
  bl: number,
): number {
  const n = al < bl ? al : bl;
  for (let i = 0; i < n; i++) {
    const d = a[as + i]! - b[bs + i]!;
    if (d !== 0) return d;
  }
  return al - bl;
}

/**
 * Binary search of a leaf for key `k[0, kl)`. Returns the record's index when the key is there,
 * else `~i` (negative) where `i` is the index of the first record whose key is greater.
 *
 * Keys between two bounds of the search share with `k` at least the shorter of the bounds'
 * common prefixes with `k` (the keys are sorted), so each comparison starts past that prefix:
 * keys with long shared prefixes cost a few byte compares each, not their whole length.
 */
export function leafSearch(
  b: Uint8Array,
  o: number,
  pageSize: number,
  k: Uint8Array,
  kl: number,
): number {
  let lo = 0;
  let hi = nodeCount(b, o);
  let loPrefix = 0;
  let hiPrefix = 0;
  const minRec = HEADER_SIZE + 2 * hi;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const s = o + HEADER_SIZE + 2 * mid;
    const r = b[s]! | (b[s + 1]! << 8);
    // The record header must lie inside the page before its key length is even read: the page
    // may be the file's last, and a byte past it may be past the end of the file (SIGBUS).
    if (r < minRec || r > pageSize - LEAF_RECORD_HEADER)
      corrupt('a leaf record lies outside its page');
    const p = o + r;
    const len = b[p]! | (b[p + 1]! << 8);
    if (r + LEAF_RECORD_HEADER + len > pageSize) corrupt('a leaf record lies outside its page');
    const key = p + LEAF_RECORD_HEADER;
    const n = kl < len ? kl : len;
    let i = loPrefix < hiPrefix ? loPrefix : hiPrefix;
    while (i < n && k[i] === b[key + i]) i++;
    const c = i < n ? k[i]! - b[key + i]! : kl - len;
    if (c > 0) {
      lo = mid + 1;
      loPrefix = i;
    } else if (c < 0) {
      hi = mid;
      hiPrefix = i;
    } else return mid;
  }
  return ~lo;
}

/**
 * leafSearch for a key that probably sorts after every key of the leaf, as the puts of a bulk
 * load in key order do: one comparison with the last key settles that case (a binary search
 * takes log2(count), each from the keys' first byte). The leaf is a page of the writing
 * transaction, checked when it was copied (checkedLeafRecord's precondition).
 */
export function leafSearchAppend(
  b: Uint8Array,
  o: number,
  pageSize: number,
  k: Uint8Array,
  kl: number,
  pgno: number,
): number {
  const n = nodeCount(b, o);
  if (n > 0) {
    const p = checkedLeafRecord(b, o, pageSize, n - 1, pgno);
    if (compareKey(k, kl, b, p + LEAF_RECORD_HEADER, b[p]! | (b[p + 1]! << 8)) > 0) return ~n;
  }
  return leafSearch(b, o, pageSize, k, kl);
}

/**
 * Index of the child to follow in a branch for key `k`: the last record whose key is <= k
 * (record 0 stands for -infinity). Uses the same common-prefix skip as leafSearch.
 */
export function branchSearch(
  b: Uint8Array,
  o: number,
  pageSize: number,
  k: Uint8Array,
  kl: number,
): number {
  let lo = 1;
  let hi = nodeCount(b, o);
  let loPrefix = 0;
  let hiPrefix = 0;
  const minRec = HEADER_SIZE + 2 * hi;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const s = o + HEADER_SIZE + 2 * mid;
    const r = b[s]! | (b[s + 1]! << 8);
    if (r < minRec || r > pageSize - BRANCH_RECORD_HEADER)
      corrupt('a branch record lies outside its page');
    const p = o + r;
    const len = b[p]! | (b[p + 1]! << 8);
    if (r + BRANCH_RECORD_HEADER + len > pageSize) corrupt('a branch record lies outside its page');
    const key = p + BRANCH_RECORD_HEADER;
    const n = kl < len ? kl : len;
    let i = loPrefix < hiPrefix ? loPrefix : hiPrefix;
    while (i < n && k[i] === b[key + i]) i++;
    const c = i < n ? k[i]! - b[key + i]! : kl - len;
    if (c >= 0) {
      lo = mid + 1;
      loPrefix = i;
    } else {
      hi = mid;
      hiPrefix = i;
    }
  }
  return lo - 1;
}

export function branchChild(b: Uint8Array, o: number, i: number): number {
  return readU32(b, o + slotAt(b, o, i) + 2);
}

export function setBranchChild(b: Uint8Array, o: number, i: number, child: number): void {
  writeU32(b, o + slotAt(b, o, i) + 2, child);
}

/** Size in bytes of the record at page offset `r`. */
export function recordSize(b: Uint8Array, o: number, r: number, leaf: boolean): number {
  const p = o + r;
  const klen = readU16(b, p);
  if (!leaf) return BRANCH_RECORD_HEADER + klen;
  return LEAF_RECORD_HEADER + klen + (b[p + 2]! & VALUE_OVERFLOW ? 4 : readU32(b, p + 3));
}

/** Free bytes available to a new record and its slot once the page is compacted. */
export function nodeRoom(b: Uint8Array, o: number): number {
  const n = nodeCount(b, o);
  return readU32(b, o + H_UPPER) - (HEADER_SIZE + 2 * n) + readU32(b, o + H_FRAG);
}

/** Bytes in use by slots and records. */
export function nodeUsed(b: Uint8Array, o: number, pageSize: number): number {
  return pageSize - HEADER_SIZE - nodeRoom(b, o);
}

/**
 * Reserves room for a record of `size` bytes as slot `i`, shifting later slots; returns the
 * page offset where the caller writes the record. The caller checked `nodeRoom` first.
 */
export function reserveRecord(
  b: Uint8Array,
  o: number,
  i: number,
  size: number,
  scratch: Uint8Array,
  pageSize: number,
  leaf: boolean,
): number {
  let n = nodeCount(b, o);
  let upper = readU32(b, o + H_UPPER);
  if (upper - (HEADER_SIZE + 2 * n) < size + 2) {
    compactNode(b, o, scratch, pageSize, leaf);
    upper = readU32(b, o + H_UPPER);
  }
  upper -= size;
  const s = o + HEADER_SIZE + 2 * i;
  b.copyWithin(s + 2, s, o + HEADER_SIZE + 2 * n);
  writeU16(b, s, upper);
  n++;
  writeU16(b, o + H_COUNT, n);
  writeU32(b, o + H_UPPER, upper);
  return upper;
}

/** Removes slot `i`; its record's bytes become fragmentation. */
export function removeRecord(b: Uint8Array, o: number, i: number, leaf: boolean): void {
  const n = nodeCount(b, o);
  const r = slotAt(b, o, i);
  const size = recordSize(b, o, r, leaf);
  const s = o + HEADER_SIZE + 2 * i;
  b.copyWithin(s, s + 2, o + HEADER_SIZE + 2 * n);
  writeU16(b, o + H_COUNT, n - 1);
  writeU32(b, o + H_FRAG, readU32(b, o + H_FRAG) + size);
}

/** Rewrites the heap without dead bytes, keeping slot order (see compactHeap). */
export function compactNode(
  b: Uint8Array,
  o: number,
  scratch: Uint8Array,
  pageSize: number,
  leaf: boolean,
): void {
  compactHeap(b, o, scratch, pageSize, nodeCount(b, o), 2, 0, leaf);
}

/**
 * Rewrites the record heap of page `b[o]` without dead bytes, keeping slot order: slot 0's
 * record at the top of the page, each next slot's below it. The page's `n` slots start at
 * HEADER_SIZE, `stride` bytes apart, each with its record's offset as a u16 `at` bytes in: a
 * B+tree node's (2, 0) and a hash bucket's (6, 4), whose records are leaf records.
 *
 * Records are moved a run at a time: slots whose records already lie one below the other (as
 * appends, splits, a hash bucket's heap order and earlier compactions leave them) move with
 * one copy, and a run already where it belongs is not copied at all. Why: a put that finds no
 * room in one piece compacts a page of ~60-80 records, and copying each record on its own
 * made a view object per record (random async puts into 1M keys: 450 of 1,200 sampled bytes
 * a put). Every record is read from `scratch`, a copy of the page taken first, so a run
 * written into the page never overwrites a record not yet moved. The caller's page was
 * checked when copied (checkNodeDeep, checkBucketForWrite) or built by these modules: each
 * record lies inside the page, so every run does too.
 */
export function compactHeap(
  b: Uint8Array,
  o: number,
  scratch: Uint8Array,
  pageSize: number,
  n: number,
  stride: number,
  at: number,
  leaf: boolean,
): void {
  scratch.set(b.subarray(o, o + pageSize), 0);
  let upper = pageSize;
  // The run gathered so far: source bytes [runLo, runHi), whose place in the page ends where
  // the records placed before it end, so it starts at `upper`.
  let runLo = 0;
  let runHi = 0;
  for (let i = 0, s = HEADER_SIZE + at; i < n; i++, s += stride) {
    const r = scratch[s]! | (scratch[s + 1]! << 8);
    const size = recordSize(scratch, 0, r, leaf);
    if (r + size !== runLo) {
      moveRun(b, o, scratch, runLo, runHi, upper);
      runHi = r + size;
    }
    runLo = r;
    upper -= size;
    writeU16(b, o + s, upper);
  }
  moveRun(b, o, scratch, runLo, runHi, upper);
  writeU32(b, o + H_UPPER, upper);
  writeU32(b, o + H_FRAG, 0);
}

/** Copies `scratch[lo, hi)` to page offset `to` of node `b[o]`, unless it is there already. */
function moveRun(
  b: Uint8Array,
  o: number,
  scratch: Uint8Array,
  lo: number,
  hi: number,
  to: number,
): void {
  if (lo !== hi && lo !== to) b.set(scratch.subarray(lo, hi), o + to);
}

/** Empties a node page (header already initialised by the caller). */
export function resetNode(b: Uint8Array, o: number, pageSize: number): void {
  writeU16(b, o + H_COUNT, 0);
  writeU32(b, o + H_UPPER, pageSize);
  writeU32(b, o + H_FRAG, 0);
}

/** Appends a copy of the record `src[p, p + size)` as the last slot of node `b[o]`. */
export function appendRecordCopy(
  b: Uint8Array,
  o: number,
  src: Uint8Array,
  p: number,
  size: number,
): number {
  const n = nodeCount(b, o);
  const upper = readU32(b, o + H_UPPER) - size;
  b.set(src.subarray(p, p + size), o + upper);
  writeU16(b, o + HEADER_SIZE + 2 * n, upper);
  writeU16(b, o + H_COUNT, n + 1);
  writeU32(b, o + H_UPPER, upper);
  return upper;
}
