/**
 * Byte layout shared by every page type. All integers are little-endian. docs/FORMAT.md is the
 * prose version of this file; keep them in step.
 *
 * Every page starts with a 32-byte header:
 *
 *   0  u32 checksum   CRC32C of bytes [4, pageSize) of the page (of the whole run for overflow)
 *   4  u8  type       PageType
 *   5  u8  flags      0
 *   6  u16 count      entries on the page (slots for branch/leaf, pgnos for free chunks, ...)
 *   8  u32 pgno       the page's own number: a page copied to the wrong place is caught
 *  12  u32 txnLo      id of the transaction that wrote the page (low 32 bits)
 *  16  u32 txnHi      (high 21 bits; ids stay below 2^53)
 *  20  u32 upper      branch/leaf: start of the record heap; other types: 0
 *  24  u32 aux        overflow: pages in the run; free directory: next directory page
 *  28  u32 frag       branch/leaf: bytes of dead records inside the heap
 */

export const HEADER_SIZE = 32;

export const H_CHECKSUM = 0;
export const H_TYPE = 4;
export const H_FLAGS = 5;
export const H_COUNT = 6;
export const H_PGNO = 8;
export const H_TXN_LO = 12;
export const H_TXN_HI = 16;
export const H_UPPER = 20;
export const H_AUX = 24;
export const H_FRAG = 28;

/** The kinds of page. The numbers are on disk: never reuse one. */
export const enum PageType {
  Meta = 1,
  Branch = 2,
  Leaf = 3,
  Overflow = 4,
  FreeChunk = 5,
  FreeDirectory = 6,
  HashDirectory = 7,
  HashBucket = 8,
}

/** The two meta pages; data pages start at FIRST_DATA_PAGE. */
export const META_PAGES = 2;
export const FIRST_DATA_PAGE = 2;

export const MIN_PAGE_SIZE = 4096;
export const MAX_PAGE_SIZE = 65536;

/**
 * File magic 'MKV1' read as a little-endian u32, and the format version this code writes.
 * Version 2 added the meta's inline free list (format/meta.ts); version 1 files, whose metas
 * have none, are read as they are and become version 2 at their first commit.
 */
export const MAGIC = 0x31564b4d;
export const FORMAT_VERSION = 2;
/** The oldest format version this code reads. */
export const OLDEST_FORMAT_VERSION = 1;

/** Largest page count: page numbers are u32 and 0 means "none". */
export const MAX_PAGES = 0xffff_fff0;

/** Deepest B+tree any valid file can hold (fan-out >= 4 at the largest key); deeper = corrupt. */
export const MAX_DEPTH = 48;

export function readU16(b: Uint8Array, o: number): number {
  return b[o]! | (b[o + 1]! << 8);
}

export function readU32(b: Uint8Array, o: number): number {
  return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
}

/** A u64 stored as two u32 halves; values stay below 2^53 so a JS number holds them exactly. */
export function readU64(b: Uint8Array, o: number): number {
  return readU32(b, o) + readU32(b, o + 4) * 0x1_0000_0000;
}

export function writeU16(b: Uint8Array, o: number, v: number): void {
  b[o] = v;
  b[o + 1] = v >>> 8;
}

export function writeU32(b: Uint8Array, o: number, v: number): void {
  b[o] = v;
  b[o + 1] = v >>> 8;
  b[o + 2] = v >>> 16;
  b[o + 3] = v >>> 24;
}

export function writeU64(b: Uint8Array, o: number, v: number): void {
  writeU32(b, o, v >>> 0);
  writeU32(b, o + 4, Math.floor(v / 0x1_0000_0000));
}

/** Writes a fresh header for a page about to be filled. */
export function initPageHeader(
  b: Uint8Array,
  o: number,
  type: PageType,
  pgno: number,
  txnId: number,
  pageSize: number,
): void {
  for (let i = 0; i < HEADER_SIZE; i += 4) {
    b[o + i] = 0;
    b[o + i + 1] = 0;
    b[o + i + 2] = 0;
    b[o + i + 3] = 0;
  }
  b[o + H_TYPE] = type;
  writeU32(b, o + H_PGNO, pgno);
  writeU64(b, o + H_TXN_LO, txnId);
  writeU32(b, o + H_UPPER, pageSize);
}

/** True for page sizes the format accepts: powers of two in [4096, 65536]. */
export function isValidPageSize(n: number): boolean {
  return Number.isInteger(n) && n >= MIN_PAGE_SIZE && n <= MAX_PAGE_SIZE && (n & (n - 1)) === 0;
}

/**
 * The largest record kept inline in a branch or leaf page: a quarter of the usable space less
 * its slot, so that any page that overflows splits into two that fit, with room to spare.
 */
export function maxInlineRecord(pageSize: number): number {
  return Math.floor((pageSize - HEADER_SIZE) / 4) - 2;
}

/** Leaf record: u16 keyLength, u8 flags, u32 valueLength, key, then the value or a u32 pgno. */
export const LEAF_RECORD_HEADER = 7;
/** Branch record: u16 keyLength, u32 child pgno, key. */
export const BRANCH_RECORD_HEADER = 6;
/** Leaf record flag: the value lives in an overflow run whose first pgno follows the key. */
export const VALUE_OVERFLOW = 1;

/**
 * The largest key for a page size. A leaf record with an overflow value is key + 11 bytes, a
 * branch record key + 6; both must fit maxInlineRecord.
 */
export function maxKeySize(pageSize: number): number {
  return maxInlineRecord(pageSize) - LEAF_RECORD_HEADER - 4;
}
