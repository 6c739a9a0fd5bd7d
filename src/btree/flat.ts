/**
 * Flat copies of a committed B+tree's branch levels: one sorted array of every leaf's lower
 * bound, which point reads of a tree read many times search instead of the branch pages.
 *
 * Why: a random point read of a large tree binary-searches each branch level on its way to the
 * leaf, and every probe of those searches reads a record somewhere in the branch page, a load
 * that depends on the probe before. For the benchmark's 1M keys in 4 KiB pages (12,628 leaves
 * below a root and one level of branches) that is some 15 probes, many of them cache misses,
 * before the leaf is even asked for. The flat copy keeps, per leaf, the first 4 bytes of its
 * bound after the bytes all bounds share (`heads`, a Uint32Array: 49 KiB for those leaves): its
 * binary search compares numbers, and its first levels stay in the CPU caches from one read to
 * the next. The whole bound is compared only where two heads are equal.
 *
 * Why the result is the leaf the descent would reach: the descent takes, at each level, the
 * last record whose key is <= k (record 0 of a branch is -infinity); the flat copy lists the
 * leaves in order with the bound the descent compares for each (the separator in the level-2
 * branch, or for a branch's first child the bound its own parent gave it). When that list is
 * strictly increasing, the last leaf whose bound is <= k lies below the same child at every
 * level as the descent's choice, so it is the same leaf. A build that finds the list out of
 * order (a damaged file) keeps no copy, and reads take the pages. Versions are named and
 * replaced as in src/hash/directory.ts (the root's page number and commit id), and the leaf is
 * read and checked as the descent reads it.
 */
import { BRANCH_RECORD_HEADER, PageType, readU16, readU32 } from '../format/layout';
import type { DbDescriptor } from '../format/meta';
import type { PageReader } from '../txn/pages';
import { checkNode, checkedBranchRecord, compareBytes, nodeCount } from './node';

/** Leaves a flat copy holds at most (3 MiB of heads, pages and offsets). */
export const MAX_FLAT_LEAVES = 1 << 18;
/** Bytes of bounds a flat copy holds at most. */
export const MAX_FLAT_BYTES = 4 << 20;

/** One tree version's branch levels, flattened: entry i is leaf i, in key order. */
export interface FlatTree {
  /** The depth of the tree it was built from. */
  readonly depth: number;
  /** Leaves (entries); entry 0's bound is -infinity. */
  readonly count: number;
  /** The bytes every bound of entries 1.. starts with. */
  readonly prefix: Uint8Array;
  /** Bytes [prefix.length, prefix.length + 4) of each bound, big-endian, zero past its end. */
  readonly heads: Uint32Array;
  /** The bounds, one after another: entry i's is bounds[starts[i], starts[i + 1]). */
  readonly bounds: Uint8Array;
  readonly starts: Uint32Array;
  /** The leaf page of each entry. */
  readonly pages: Uint32Array;
}

/**
 * Bytes [from, from + 4) of a key that ends at `end` (bytes at `end` and past it count as 0),
 * big-endian: what FlatTree.heads holds for a bound.
 */
function headOf(k: Uint8Array, from: number, end: number): number {
  let h = 0;
  for (let t = from; t < from + 4; t++) h = h * 256 + (t < end ? k[t]! : 0);
  return h;
}

/**
 * The leaf page of the tree `f` copies that holds key `k[0, kl)` if any does.
 *
 * Heads order keys wherever they differ: bytes past a key's end count as 0 in a head, and a
 * key that ends there is the smaller one; so head(k) < head(b) means k < b, and equal heads
 * leave the order to the whole bytes.
 */
export function flatLeaf(f: FlatTree, k: Uint8Array, kl: number): number {
  const prefix = f.prefix;
  const p = prefix.length;
  const n = f.count;
  // Every bound of entries 1.. starts with the prefix: a key that does not lies before them
  // all or after them all.
  for (let t = 0; t < p; t++) {
    if (t >= kl) return f.pages[0]!;
    const d = k[t]! - prefix[t]!;
    if (d !== 0) return d < 0 ? f.pages[0]! : f.pages[n - 1]!;
  }
  const hk = headOf(k, p, kl);
  const heads = f.heads;
  let lo = 1;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const h = heads[mid]!;
    let c = hk - h;
    if (c === 0) {
      const s = f.starts[mid]!;
      c = compareBytes(k, 0, kl, f.bounds, s, f.starts[mid + 1]! - s);
    }
    if (c >= 0) lo = mid + 1;
    else hi = mid;
  }
  return f.pages[lo - 1]!;
}

/** The walk's output: bounds packed one after another, and the leaves' pages. */
interface Collected {
  bytes: Uint8Array;
  used: number;
  starts: number[];
  pages: number[];
}

/**
 * Flattens the tree of `d` (depth 2 or more) in committed snapshot `r`; null when it has more
 * than MAX_FLAT_LEAVES leaves or MAX_FLAT_BYTES of bounds, or its bounds are out of order.
 * Throws ERR_CORRUPT for a branch page that breaks the layout (the caller keeps no copy then).
 */
export function flattenTree(r: PageReader, d: DbDescriptor): FlatTree | null {
  if (d.depth < 2 || d.root === 0) return null;
  const into: Collected = { bytes: new Uint8Array(4096), used: 0, starts: [], pages: [] };
  if (!collect(r, d.root, d.depth, EMPTY, 0, 0, into)) return null;
  const n = into.pages.length;
  if (n < 2) return null;
  const bytes = into.bytes.slice(0, into.used);
  const starts = Uint32Array.from(into.starts);
  const at = (i: number): number => starts[i]!;
  const len = (i: number): number => (i + 1 < n ? starts[i + 1]! : into.used) - starts[i]!;
  // Strictly increasing bounds (entry 0 is -infinity): what makes the copy agree with the
  // descent (see the top of this file).
  for (let i = 2; i < n; i++) {
    if (compareBytes(bytes, at(i - 1), len(i - 1), bytes, at(i), len(i)) >= 0) return null;
  }
  // Sorted, so the first and last bounds share what all of them share.
  let p = 0;
  const l1 = len(1);
  const ln = len(n - 1);
  while (p < l1 && p < ln && bytes[at(1) + p] === bytes[at(n - 1) + p]) p++;
  const heads = new Uint32Array(n);
  for (let i = 1; i < n; i++) heads[i] = headOf(bytes, at(i) + p, at(i) + len(i));
  const ends = new Uint32Array(n + 1);
  ends.set(starts);
  ends[n] = into.used;
  return {
    depth: d.depth,
    count: n,
    prefix: bytes.slice(at(1), at(1) + p),
    heads,
    bounds: bytes,
    starts: ends,
    pages: Uint32Array.from(into.pages),
  };
}

const EMPTY = new Uint8Array(0);

/** Appends `src[from, from + len)` to the packed bounds as the next leaf's, for `pgno`. */
function push(into: Collected, src: Uint8Array, from: number, len: number, pgno: number): boolean {
  if (into.used + len > MAX_FLAT_BYTES) return false;
  if (into.used + len > into.bytes.length) {
    const grown = new Uint8Array(Math.max(2 * into.bytes.length, into.used + len));
    grown.set(into.bytes.subarray(0, into.used));
    into.bytes = grown;
  }
  into.bytes.set(src.subarray(from, from + len), into.used);
  into.starts.push(into.used);
  into.used += len;
  into.pages.push(pgno);
  return true;
}

/**
 * Adds the leaves below branch `pgno` (at `level` >= 2) to `into`, the first with the bound
 * `bound[from, from + len)`; false once past MAX_FLAT_LEAVES or MAX_FLAT_BYTES. Each page is
 * checked as the descent checks it, and each of its records whole.
 */
function collect(
  r: PageReader,
  pgno: number,
  level: number,
  bound: Uint8Array,
  from: number,
  len: number,
  into: Collected,
): boolean {
  const ps = r.pageSize;
  const b = r.page(pgno);
  const o = r.at;
  checkNode(b, o, ps, PageType.Branch, pgno);
  const n = nodeCount(b, o);
  if (level === 2 && into.pages.length + n > MAX_FLAT_LEAVES) return false;
  for (let j = 0; j < n; j++) {
    const at = checkedBranchRecord(b, o, ps, j, pgno);
    const kl = readU16(b, at);
    const child = readU32(b, at + 2);
    // Record 0's key stands for -infinity: the leaf's bound is the one this branch was given.
    const src = j === 0 ? bound : b;
    const f = j === 0 ? from : at + BRANCH_RECORD_HEADER;
    const l = j === 0 ? len : kl;
    // `b` stays a valid view of this page below: the recursion moves r.at, not the mapping.
    const ok =
      level === 2 ? push(into, src, f, l, child) : collect(r, child, level - 1, src, f, l, into);
    if (!ok) return false;
  }
  return true;
}
