/**
 * Byte layout of the hash index: a trie of directory pages over the bits of a keyed 32-bit
 * hash, whose leaves are bucket pages. docs/HASH.md is the prose version; keep them in step.
 *
 * The descriptor: `root` is the root page (a bucket while the table fits one page, else a
 * directory), 0 when empty; `depth` is 0; `entries` counts records; `aux[0]`, `aux[1]` are the
 * 64-bit HalfSipHash key (low word first) and `aux[2]` is HASH_FORMAT once the key is set.
 *
 * Directory page (PageType.HashDirectory), after the common header:
 *   count = number of slots, 2^bits; aux = depth, the hash bits consumed above this page
 *   (0 for the root); upper = frag = 0.
 *   32  u32 child[2^bits]   page of the bucket, collision holder or directory for the
 *                           hash values whose bits [depth, depth + bits) are the slot index
 *   bits = min(floor(log2((pageSize - 32) / 4)), 32 - depth): 9 for 4 KiB pages, 13 for 64 KiB.
 *
 * Bucket page (PageType.HashBucket, flags 0), after the common header:
 *   count = records; upper = start of the record heap; frag = dead bytes in the heap;
 *   aux = local depth L: every record's hash starts with the same L bits, the bucket's prefix;
 *   in its directory page it fills the 2^(depth + bits - L) slots that share that prefix.
 *   32  slot[count]: u32 hash, u16 record offset, in (hash, key) order
 *   records packed from the end of the page, each a B+tree leaf record: u16 keyLength,
 *   u8 flags, u32 valueLength, key, value | u32 overflow pgno (flag VALUE_OVERFLOW; the
 *   B+tree's overflow runs).
 *
 * Collision holder (PageType.HashBucket, flags BUCKET_COLLISIONS, aux = 32): stands for a
 * bucket whose keys share all 32 hash bits but do not fit one page (possible only for keys
 * chosen with knowledge of the secret key). It holds a B+tree of those keys (user keys only,
 * B+tree leaf and branch pages):
 *   32 u32 tree root   36 u32 tree depth   40 u32 the common hash   44 u32 entries
 */
import { HEADER_SIZE } from '../format/layout';

/** aux[2] of a hash descriptor whose hash key is set: the layout this file describes. */
export const HASH_FORMAT = 1;
export const AUX_KEY_LO = 0;
export const AUX_KEY_HI = 1;
export const AUX_FORMAT = 2;

/** Bucket flag: the page is a collision holder. */
export const BUCKET_COLLISIONS = 1;

/** Bits of the hash. */
export const HASH_BITS = 32;

export const HOLDER_ROOT = HEADER_SIZE;
export const HOLDER_DEPTH = HEADER_SIZE + 4;
export const HOLDER_HASH = HEADER_SIZE + 8;
export const HOLDER_ENTRIES = HEADER_SIZE + 12;

/** Slot index bits of a directory page at full width for `pageSize`. */
export function maxDirectoryBits(pageSize: number): number {
  // pageSize is a power of two: (pageSize - 32) / 4 lies just under pageSize / 4.
  return 28 - Math.clz32(pageSize);
}

/** Slot index bits of a directory page whose slots start at hash bit `depth`. */
export function directoryBits(pageSize: number, depth: number): number {
  const full = maxDirectoryBits(pageSize);
  return depth + full <= HASH_BITS ? full : HASH_BITS - depth;
}

/** The slot of hash `h` in a directory page at `depth` with `bits` slot bits. */
export function slotOf(h: number, depth: number, bits: number): number {
  return (h << depth) >>> (HASH_BITS - bits);
}

/**
 * Bucket usage (slots and live record bytes) at or under which two buddy buckets merge: half
 * a page, so that a merged bucket must gain half a page before it splits again.
 */
export function mergeLimit(pageSize: number): number {
  return (pageSize - HEADER_SIZE) >>> 1;
}
