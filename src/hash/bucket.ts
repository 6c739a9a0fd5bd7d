/**
 * Bucket pages: slotted pages whose slots carry the records' hashes.
 *
 *   32  slot[count]: u32 hash, u16 record offset   (6 bytes each, in (hash, key) order)
 *   ... free space ...
 *   upper .. pageSize: records, packed from the end of the page
 *
 * A record is a B+tree leaf record, byte for byte: u16 keyLength, u8 flags, u32 valueLength,
 * key, then the value or (flag VALUE_OVERFLOW) the u32 first page of its overflow run. `upper`
 * is the lowest record byte and `frag` counts dead record bytes inside the heap, reclaimed by
 * compaction, as in B+tree pages.
 *
 * A lookup reads the slot array only, and the one record whose hash matches: hashes are
 * uniform over the bucket's range, so the slot of hash h lies near count * (h's offset in the
 * range); the search starts there and walks a few slots (one or two cache lines) instead of
 * binary-searching records spread over the page.
 *
 * Every function reading a page it did not check in full (checkBucketForWrite) checks the
 * offsets it follows (invariant 5); the write path checks a bucket in full before changing it.
 */
import { corrupt } from '../errors';
import {
  H_AUX,
  H_COUNT,
  H_FLAGS,
  H_FRAG,
  H_TYPE,
  H_UPPER,
  HEADER_SIZE,
  LEAF_RECORD_HEADER,
  PageType,
  VALUE_OVERFLOW,
  initPageHeader,
  readU32,
  writeU16,
  writeU32,
} from '../format/layout';
import type { PageReader } from '../txn/pages';
import { type ValueRef, overflowPages } from '../btree/btree';
import { compactHeap, compareKey } from '../btree/node';
import { HASH_BITS } from './layout';

/** Bytes per slot: u32 hash, u16 record offset. */
export const SLOT_SIZE = 6;

/** Writes an empty bucket of local depth `depth` at `b[o]`. */
export function initBucket(
  b: Uint8Array,
  o: number,
  pgno: number,
  txnId: number,
  pageSize: number,
  depth: number,
): void {
  initPageHeader(b, o, PageType.HashBucket, pgno, txnId, pageSize);
  b.fill(0, o + HEADER_SIZE, o + pageSize);
  writeU32(b, o + H_AUX, depth);
}

export function bucketCount(b: Uint8Array, o: number): number {
  return b[o + H_COUNT]! | (b[o + H_COUNT + 1]! << 8);
}

/** The local depth of the bucket or holder at `b[o]`. */
export function bucketDepth(b: Uint8Array, o: number): number {
  return readU32(b, o + H_AUX);
}

/** The hash of slot `i`. */
export function slotHash(b: Uint8Array, o: number, i: number): number {
  const s = o + HEADER_SIZE + SLOT_SIZE * i;
  return (b[s]! | (b[s + 1]! << 8) | (b[s + 2]! << 16) | (b[s + 3]! << 24)) >>> 0;
}

/** The record offset (inside the page) of slot `i`. */
export function slotRecord(b: Uint8Array, o: number, i: number): number {
  const s = o + HEADER_SIZE + SLOT_SIZE * i + 4;
  return b[s]! | (b[s + 1]! << 8);
}

/** Size of the record at byte `p` (header, key and inline value or overflow pointer). */
export function recordBytes(b: Uint8Array, p: number): number {
  const klen = b[p]! | (b[p + 1]! << 8);
  if ((b[p + 2]! & VALUE_OVERFLOW) !== 0) return LEAF_RECORD_HEADER + klen + 4;
  return LEAF_RECORD_HEADER + klen + readU32(b, p + 3);
}

/** Free bytes for new records and slots once the page is compacted. */
export function bucketRoom(b: Uint8Array, o: number): number {
  return (
    readU32(b, o + H_UPPER) - (HEADER_SIZE + SLOT_SIZE * bucketCount(b, o)) + readU32(b, o + H_FRAG)
  );
}

/** Bytes in use by slots and live records. */
export function bucketUsed(b: Uint8Array, o: number, pageSize: number): number {
  return pageSize - HEADER_SIZE - bucketRoom(b, o);
}

/**
 * Checks what a read of the bucket at `b[o]` relies on: its type and flags, its depth, and
 * that the slot array fits. Records are checked one by one where they are read.
 */
export function checkBucket(b: Uint8Array, o: number, pageSize: number, pgno: number): void {
  if (b[o + H_TYPE] !== PageType.HashBucket || b[o + H_FLAGS] !== 0) {
    corrupt(`page ${pgno} should be a hash bucket`);
  }
  if (HEADER_SIZE + SLOT_SIZE * bucketCount(b, o) > pageSize || bucketDepth(b, o) > HASH_BITS) {
    corrupt(`hash bucket ${pgno} has a header that does not fit`);
  }
}

/**
 * Checks a bucket in full before it is changed, copied or walked: every record inside the
 * heap, and the heap's byte count (live records + dead bytes) equal to its size. Code that
 * moves records (compaction, splits, merges) then cannot reach outside the page.
 */
export function checkBucketForWrite(
  b: Uint8Array,
  o: number,
  pageSize: number,
  pgno: number,
): void {
  checkBucket(b, o, pageSize, pgno);
  const n = bucketCount(b, o);
  const upper = readU32(b, o + H_UPPER);
  const frag = readU32(b, o + H_FRAG);
  if (upper < HEADER_SIZE + SLOT_SIZE * n || upper > pageSize || frag > pageSize - upper) {
    corrupt(`hash bucket ${pgno} has a record heap that does not fit`);
  }
  let live = 0;
  for (let i = 0; i < n; i++) {
    const r = slotRecord(b, o, i);
    if (r < upper || r + LEAF_RECORD_HEADER > pageSize) {
      corrupt(`hash bucket ${pgno} has a record outside its heap`);
    }
    const size = recordBytes(b, o + r);
    if (r + size > pageSize) corrupt(`hash bucket ${pgno} has a record outside its page`);
    live += size;
  }
  if (live + frag !== pageSize - upper) corrupt(`hash bucket ${pgno} miscounts its heap`);
}

/**
 * Finds (h, k[0, kl)) in bucket `b[o]`. Returns the record's index when present, else `~i`
 * where `i` is the first slot that sorts after it. Key bytes are compared only for slots
 * whose hash equals `h`.
 */
export function bucketSearch(
  b: Uint8Array,
  o: number,
  pageSize: number,
  h: number,
  k: Uint8Array,
  kl: number,
): number {
  const n = b[o + H_COUNT]! | (b[o + H_COUNT + 1]! << 8);
  if (HEADER_SIZE + SLOT_SIZE * n > pageSize) {
    corrupt('a hash bucket has a slot array that does not fit');
  }
  if (n === 0) return ~0;
  const i = slotGuess(h, b[o + H_AUX]!, n);
  const s = o + HEADER_SIZE + SLOT_SIZE * i;
  return searchFrom(b, o, pageSize, n, i, readSlotHash(b, s), h, k, kl);
}

/**
 * Where hash `h` should lie among the `n` (> 0) slots of a bucket of local depth `depth`:
 * the depth bits are the bucket's prefix and the bits below them are uniform, so h's offset
 * in the bucket's range, scaled to the slot count, is near its slot.
 */
function slotGuess(h: number, depth: number, n: number): number {
  // The top 16 bits of h's offset in the range, times n (< 2^14): an exact small integer.
  const i = depth >= HASH_BITS ? 0 : (((h << depth) >>> 16) * n) >>> 16;
  return i < n ? i : n - 1;
}

function readSlotHash(b: Uint8Array, s: number): number {
  return (b[s]! | (b[s + 1]! << 8) | (b[s + 2]! << 16) | (b[s + 3]! << 24)) >>> 0;
}

/**
 * bucketSearch's walk from slot `i` (at byte `s = o + 32 + 6i`, hash `sh`) of a bucket whose
 * `n` (> 0) slots fit the page: to the first slot of hash `h`, then over the slots of that
 * hash comparing keys.
 */
function searchFrom(
  b: Uint8Array,
  o: number,
  pageSize: number,
  n: number,
  i: number,
  sh: number,
  h: number,
  k: Uint8Array,
  kl: number,
): number {
  const minRec = HEADER_SIZE + SLOT_SIZE * n;
  let s = o + HEADER_SIZE + SLOT_SIZE * i;
  if (sh < h) {
    // Forwards to the first slot whose hash is >= h.
    do {
      i++;
      s += SLOT_SIZE;
      if (i === n) return ~n;
      sh = readSlotHash(b, s);
    } while (sh < h);
  } else {
    // Backwards while the slot before also has a hash >= h.
    while (i > 0) {
      const th = readSlotHash(b, s - SLOT_SIZE);
      if (th < h) break;
      i--;
      s -= SLOT_SIZE;
      sh = th;
    }
  }
  // Slots i.. with hash h, in key order.
  while (sh === h) {
    const r = b[s + 4]! | (b[s + 5]! << 8);
    const p = o + r;
    const len = b[p]! | (b[p + 1]! << 8);
    if (r < minRec || r + LEAF_RECORD_HEADER + len > pageSize) {
      corrupt('a hash record lies outside its page');
    }
    const c = compareKey(k, kl, b, p + LEAF_RECORD_HEADER, len);
    if (c === 0) return i;
    if (c < 0) break;
    if (++i === n) break;
    s += SLOT_SIZE;
    sh = readSlotHash(b, s);
  }
  return ~i;
}

/**
 * Guesses, per bucket page, of its slot count and local depth: what the last lookup of that
 * page (or of another page with the same low page-number bits) found, 0 when none yet.
 *
 * Why: a lookup that misses the CPU caches would wait for the bucket's header line (count,
 * depth) before it could compute which slot line to load, then for that line, then for the
 * record's line: three memory round trips in a row. With the guess, the slot line is read
 * without waiting for the header, and the header's check that the guess was right is a branch
 * the CPU predicts, so it goes on to the record's line meanwhile: the header's round trip
 * overlaps the others (bench/hash.mjs on 1M keys: the hash / lmdb-js ratios rose by 7 to 15%).
 *
 * Correctness needs only the count to be right, and it is checked before anything read with
 * it is used: searchFrom finds the slot from any start, the depth only makes the start close.
 * A wrong guess sends the lookup to bucketSearch, which starts again from the header: it
 * costs speed, never correctness (test/hash/guess.test.ts).
 */
const GUESS_BITS = 15;
const guessCount = new Uint16Array(1 << GUESS_BITS);
const guessDepth = new Uint8Array(1 << GUESS_BITS);
/** Bytes of the page's record heap (`pageSize - upper`), for the guess of the record's lines. */
const guessHeap = new Uint16Array(1 << GUESS_BITS);

/** How many slots either side of the guessed one bucketLookup brings records in for. */
const TOUCH_SLOTS = 3;

/**
 * Where the loads that only bring records' lines into the cache put what they read: a module
 * variable, so that the compiler keeps the loads. Its value means nothing.
 */
let touched = 0;

/** bucketSearch for the read path of bucket page `pgno`, starting from guessCount's guess. */
export function bucketLookup(
  b: Uint8Array,
  o: number,
  pageSize: number,
  pgno: number,
  h: number,
  k: Uint8Array,
  kl: number,
): number {
  const g = pgno & ((1 << GUESS_BITS) - 1);
  const n = guessCount[g]!;
  const depth = guessDepth[g]!;
  const i = slotGuess(h, depth, n);
  const s = o + HEADER_SIZE + SLOT_SIZE * i;
  // A guess learnt on a file of larger pages can point past this page: the header check
  // below fails then, and the slot is not read.
  const sh = s + SLOT_SIZE <= o + pageSize ? readSlotHash(b, s) : 0;
  // The heap is in slot order (heapInOrder): the record of slot j lies about j + 1 average
  // records below the top of the page. The guessed slot is off by a few (the hashes are
  // random: sqrt(n) / 2 slots is one sigma), so the lines of the records of slots
  // i - TOUCH_SLOTS to i + TOUCH_SLOTS are read now, before the slot says where the record is:
  // their cache misses go out with the slot's and the header's instead of after them
  // (1M keys, random reads once the directories are flat: 5-10% off a getBinary). Only
  // where these loads go depends on the guess, and they stay inside the page whatever it
  // holds: p starts at or above the heap's guessed bottom, at least one byte into the page.
  if (n !== 0) {
    const heap = guessHeap[g]! & (pageSize - 1);
    const avg = heap / n;
    const top = o + pageSize;
    const bottom = top - heap;
    let p = top - ((avg * (i + 1 + TOUCH_SLOTS)) | 0);
    if (p < bottom) p = bottom;
    const end = Math.min(top, top - ((avg * (i - TOUCH_SLOTS)) | 0));
    let t = touched;
    for (; p < end; p += 64) t ^= b[p]!;
    touched = t;
  }
  if (
    n === 0 ||
    (b[o + H_COUNT]! | (b[o + H_COUNT + 1]! << 8)) !== n ||
    b[o + H_AUX]! !== depth ||
    HEADER_SIZE + SLOT_SIZE * n > pageSize
  ) {
    const found = bucketSearch(b, o, pageSize, h, k, kl);
    // bucketSearch checked that the count fits the page.
    guessCount[g] = b[o + H_COUNT]! | (b[o + H_COUNT + 1]! << 8);
    guessDepth[g] = b[o + H_AUX]!;
    guessHeap[g] = pageSize - readU32(b, o + H_UPPER);
    return found;
  }
  // The header holds the guessed count (and depth: the same start as bucketSearch's).
  return searchFrom(b, o, pageSize, n, i, sh, h, k, kl);
}

/** Fills `out` with the value of record `i` of bucket `b[o]` (inline, or its overflow run). */
export function bucketValue(
  r: PageReader,
  b: Uint8Array,
  o: number,
  i: number,
  out: ValueRef,
): void {
  const ps = r.pageSize;
  const p = o + slotRecord(b, o, i);
  const klen = b[p]! | (b[p + 1]! << 8);
  const vlen = readU32(b, p + 3);
  const vp = p + LEAF_RECORD_HEADER + klen;
  if ((b[p + 2]! & VALUE_OVERFLOW) === 0) {
    if (vp + vlen > o + ps) corrupt('a value runs past the end of its page');
    out.buf = b;
    out.start = vp;
    out.end = vp + vlen;
    return;
  }
  if (vp + 4 > o + ps) corrupt('an overflow pointer runs past the end of its page');
  const run = r.runBytes(readU32(b, vp), overflowPages(vlen, ps), HEADER_SIZE, vlen);
  out.buf = run.buf;
  out.start = run.start;
  out.end = run.start + vlen;
}

/**
 * Whether the heap of bucket `b[o]` (`n` slots) is in slot order: no dead byte, and each slot's
 * record lies below the one before (slot 0's at the top of the page). A bucket built by
 * appendSlot or compactBucket is; reserveSlot, removeSlot and replaceRecord keep it so (and
 * rely on it), and takeCopiedBucket puts a committed bucket in order when a transaction copies
 * it (older files' buckets hold their records in insertion order). Reads rely on the order
 * only to guess where a record lies (bucketLookup).
 */
function heapInOrder(b: Uint8Array, o: number, n: number): boolean {
  if (readU32(b, o + H_FRAG) !== 0) return false;
  let s = o + HEADER_SIZE + 4;
  let prev = 0x10000;
  for (let i = 0; i < n; i++, s += SLOT_SIZE) {
    const r = b[s]! | (b[s + 1]! << 8);
    if (r >= prev) return false;
    prev = r;
  }
  return true;
}

/** Adds `delta` to the record offsets of slots `[from, to)`. */
function shiftOffsets(b: Uint8Array, o: number, from: number, to: number, delta: number): void {
  for (let s = o + HEADER_SIZE + SLOT_SIZE * from + 4, i = from; i < to; i++, s += SLOT_SIZE) {
    writeU16(b, s, (b[s]! | (b[s + 1]! << 8)) + delta);
  }
}

/**
 * Readies committed bucket `b[o]` (page `pgno`), just copied by a transaction, for its writes:
 * checks it in full (checkBucketForWrite) and puts its heap in slot order if it is not (see
 * heapInOrder). Every bucket a transaction writes is then in order, which reserveSlot,
 * removeSlot and replaceRecord rely on without looking.
 */
export function takeCopiedBucket(
  b: Uint8Array,
  o: number,
  pageSize: number,
  pgno: number,
  scratch: Uint8Array,
): void {
  checkBucketForWrite(b, o, pageSize, pgno);
  if (!heapInOrder(b, o, bucketCount(b, o))) compactBucket(b, o, scratch, pageSize);
}

/**
 * Reserves room for a record of `size` bytes with hash `h` as slot `i`, shifting later slots;
 * returns the page offset where the caller writes the record. The caller checked bucketRoom,
 * and the heap is in slot order (takeCopiedBucket).
 *
 * It stays so: the records of slots `i..` (the bytes from `upper` to the record of slot
 * `i - 1`) move down by `size`, and the new record takes the gap. Bounds, whatever the heap
 * holds: `upper - size` is at or above the slot array's new end (the room check; compaction
 * when the room is not in one piece); every record offset lies in `[upper, pageSize)`
 * (checkBucketForWrite checked those of a copied page, this module wrote the others), so the
 * bytes moved stay inside the page and each offset moved stays at or above the new `upper`.
 */
export function reserveSlot(
  b: Uint8Array,
  o: number,
  i: number,
  size: number,
  h: number,
  scratch: Uint8Array,
  pageSize: number,
): number {
  const n = bucketCount(b, o);
  let upper = readU32(b, o + H_UPPER);
  if (upper - (HEADER_SIZE + SLOT_SIZE * n) < size + SLOT_SIZE) {
    compactBucket(b, o, scratch, pageSize);
    upper = readU32(b, o + H_UPPER);
  }
  const end = i === 0 ? pageSize : slotRecord(b, o, i - 1);
  b.copyWithin(o + upper - size, o + upper, o + end);
  shiftOffsets(b, o, i, n, -size);
  upper -= size;
  const s = o + HEADER_SIZE + SLOT_SIZE * i;
  b.copyWithin(s + SLOT_SIZE, s, o + HEADER_SIZE + SLOT_SIZE * n);
  writeU32(b, s, h);
  writeU16(b, s + 4, end - size);
  writeU16(b, o + H_COUNT, n + 1);
  writeU32(b, o + H_UPPER, upper);
  return end - size;
}

/**
 * Removes slot `i`: the records of the later slots, in `[upper, r)` of the ordered heap
 * (takeCopiedBucket), move up over its bytes. Every record offset lies in `[upper, pageSize)`
 * (checkBucketForWrite checked those of a copied page, this module wrote the others), so
 * `r + size` is inside the page.
 */
export function removeSlot(b: Uint8Array, o: number, i: number): void {
  const n = bucketCount(b, o);
  const r = slotRecord(b, o, i);
  const size = recordBytes(b, o + r);
  const upper = readU32(b, o + H_UPPER);
  b.copyWithin(o + upper + size, o + upper, o + r);
  shiftOffsets(b, o, i + 1, n, size);
  writeU32(b, o + H_UPPER, upper + size);
  const s = o + HEADER_SIZE + SLOT_SIZE * i;
  b.copyWithin(s, s + SLOT_SIZE, o + HEADER_SIZE + SLOT_SIZE * n);
  writeU16(b, o + H_COUNT, n - 1);
}

/**
 * Makes room for a record of `size` bytes, no larger than the record of slot `i`, in the place
 * of that record in the ordered heap (takeCopiedBucket): the new record ends where the old one
 * did, and the records below move up to it. Returns the page offset where the caller writes
 * the record.
 */
export function replaceRecord(b: Uint8Array, o: number, i: number, size: number): number {
  const r = slotRecord(b, o, i);
  const gap = recordBytes(b, o + r) - size;
  const upper = readU32(b, o + H_UPPER);
  b.copyWithin(o + upper + gap, o + upper, o + r);
  shiftOffsets(b, o, i + 1, bucketCount(b, o), gap);
  writeU16(b, o + HEADER_SIZE + SLOT_SIZE * i + 4, r + gap);
  writeU32(b, o + H_UPPER, upper + gap);
  return r + gap;
}

/** Rewrites the heap in slot order without dead bytes. */
function compactBucket(b: Uint8Array, o: number, scratch: Uint8Array, pageSize: number): void {
  compactHeap(b, o, scratch, pageSize, bucketCount(b, o), SLOT_SIZE, 4, true);
}

/** Appends the record `src[p, p + size)` with hash `h` as the last slot of bucket `b[o]`. */
export function appendSlot(
  b: Uint8Array,
  o: number,
  src: Uint8Array,
  p: number,
  size: number,
  h: number,
): void {
  const n = bucketCount(b, o);
  const upper = readU32(b, o + H_UPPER) - size;
  b.set(src.subarray(p, p + size), o + upper);
  const s = o + HEADER_SIZE + SLOT_SIZE * n;
  writeU32(b, s, h);
  writeU16(b, s + 4, upper);
  writeU16(b, o + H_COUNT, n + 1);
  writeU32(b, o + H_UPPER, upper);
}

/**
 * Appends to bucket `b[o]` the records of `src` (a bucket image at offset 0, checked by
 * checkBucketForWrite) whose hash bit `bit` (counted from the top) is `side`; with `bit` < 0,
 * all of them. Order is kept.
 *
 * Records that lie one below the other in `src` go with one copy, as in compactHeap: a split
 * takes the records of a side, a run of slots (they are in hash order) whose records lie in
 * one piece (the heap is in slot order), and copying them one by one made a view object per
 * record (a 300k-key hash load: 140 of 430 sampled bytes a put). Like appendSlot, it relies
 * on the caller's room check: the records and slots appended fit between the slot array and
 * `upper`.
 */
export function appendRecords(
  b: Uint8Array,
  o: number,
  src: Uint8Array,
  bit: number,
  side: number,
): void {
  const n = bucketCount(src, 0);
  let count = bucketCount(b, o);
  let upper = readU32(b, o + H_UPPER);
  // The run gathered so far: bytes [runLo, runHi) of src, going to the page at `upper`.
  let runLo = 0;
  let runHi = 0;
  for (let j = 0; j < n; j++) {
    const h = slotHash(src, 0, j);
    if (bit >= 0 && ((h >>> (31 - bit)) & 1) !== side) continue;
    const r = slotRecord(src, 0, j);
    const size = recordBytes(src, r);
    if (r + size !== runLo) {
      if (runLo !== runHi) b.set(src.subarray(runLo, runHi), o + upper);
      runHi = r + size;
    }
    runLo = r;
    upper -= size;
    const s = o + HEADER_SIZE + SLOT_SIZE * count;
    writeU32(b, s, h);
    writeU16(b, s + 4, upper);
    count++;
  }
  if (runLo !== runHi) b.set(src.subarray(runLo, runHi), o + upper);
  writeU16(b, o + H_COUNT, count);
  writeU32(b, o + H_UPPER, upper);
}
