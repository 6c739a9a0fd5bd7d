/**
 * Directory pages: their check, and flat copies of a committed table's directories that point
 * reads of a table read many times go through instead of the pages. The same cache keeps the
 * flat copies of B+trees' branch levels (src/btree/flat.ts), named and replaced the same way.
 *
 * A random point read of a large table spends one cache miss per directory level below the
 * root (the level's page line, and a TLB miss, since directory pages are spread over the
 * file) before it reaches its bucket. A flat table is one array, indexed by the top `bits` of
 * the hash, of what the descent through the directories finds at that point: the page it goes
 * on to and the hash bit it has reached. For 1M keys in 4 KiB pages that is 2^15 entries
 * (160 KiB) of the JS heap, which stays in the CPU caches, in place of 512 directory pages.
 *
 * Why an entry can stand in for the pages: a table is flattened from a committed snapshot,
 * and a committed page is never written again while a snapshot can reach it (invariant 1).
 * Every page carries the id of the commit that wrote it, and a commit that changes anything
 * in a table writes a new copy of its root (copy-on-write). So the root's page number and
 * commit id name one version of the whole tree, in a file whose commit ids only grow: a read
 * whose root page has that number and that id finds exactly the pages the flat table was
 * built from. The environment clears its cache if the commit it reads ever goes back (a newest
 * meta found damaged), since the next commit there would reuse a commit id.
 *
 * An entry is where the ordinary descent would be after the flattened levels, so the descent
 * goes on from it with all its usual checks: a bucket's page is still read and checked, and a
 * directory deeper than the flat table (a table past 2^MAX_FLAT_BITS slots, or one a damaged
 * file makes look deeper) is entered at the hash bit the entry names, which the page must
 * confirm. Only writes of a transaction and readers verifying every checksum do without.
 */
import { corrupt } from '../errors';
import {
  H_AUX,
  H_COUNT,
  H_TXN_LO,
  H_TYPE,
  HEADER_SIZE,
  PageType,
  readU32,
  readU64,
} from '../format/layout';
import type { DbDescriptor } from '../format/meta';
import type { PageReader } from '../txn/pages';
import { type FlatTree, flattenTree } from '../btree/flat';
import { HASH_BITS, directoryBits } from './layout';

/**
 * Checks directory page `pgno` found at hash bit `depth`; returns its slot bits. A directory
 * must start where the descent is, which bounds every descent by the 32 bits of the hash, and
 * hold 2 to 2^directoryBits slots.
 */
export function checkDirectory(
  b: Uint8Array,
  o: number,
  pageSize: number,
  pgno: number,
  depth: number,
): number {
  const n = b[o + H_COUNT]! | (b[o + H_COUNT + 1]! << 8);
  const bits = 31 - Math.clz32(n);
  if (
    readU32(b, o + H_AUX) !== depth ||
    depth >= HASH_BITS ||
    n !== 1 << bits ||
    bits < 1 ||
    bits > directoryBits(pageSize, depth)
  ) {
    corrupt(`hash directory ${pgno} does not start at hash bit ${depth} or has ${n} slots`);
  }
  return bits;
}

/** Hash bits a flat table covers at most: 2^18 entries, 1.25 MiB. */
export const MAX_FLAT_BITS = 18;
/**
 * Flat copies an environment keeps (one per hash table or B+tree version read often), and
 * versions it counts the reads of at the same time.
 */
const MAX_TABLES = 4;
/**
 * Reads of one table version before it is flattened: MIN_READS, or one per ENTRIES_PER_READ
 * entries of larger tables. For 1M entries a build takes 0.7-0.8 ms once compiled (2^15
 * entries from 513 directory pages), the time of some 700 reads, and the 7,813 reads before
 * it take about ten times that: a version replaced right after its build costs at most some
 * 10% more, and the reads of a version that lasts are some 10% faster. A B+tree of 1M keys
 * (12,628 leaves below 3 levels) flattens in 1.0-1.8 ms, against some 12 ms for its 7,813
 * reads before.
 */
const MIN_READS = 256;
const ENTRIES_PER_READ = 128;

/** One table version's directories, flattened. */
export interface FlatTable {
  /** 32 - the hash bits covered: entry `h >>> shift` holds hash h's page and bit. */
  readonly shift: number;
  /** The page the descent reaches after the flattened levels. */
  readonly pages: Uint32Array;
  /** The hash bit it has reached there: where that page must start if it is a directory. */
  readonly depths: Uint8Array;
}

interface Version {
  /** The descriptor this version was last looked up by (snapshot descriptors never change). */
  desc: DbDescriptor;
  readonly root: number;
  readonly txn: number;
  /** What the root is: a hash directory, or a B+tree branch (src/btree/flat.ts). */
  readonly kind: PageType.HashDirectory | PageType.Branch | 0;
  table: FlatTable | FlatTree | null;
  reads: number;
  /** Reads after which the version is flattened; Infinity for never. */
  buildAfter: number;
}

/**
 * The flat tables of one environment (file handle). Page numbers name pages of one file only,
 * so the cache is never shared between environments.
 */
export class DirectoryCache {
  /** Versions with a flat table, oldest first. */
  private readonly tables: Version[] = [];
  /**
   * Versions counting their reads towards a build (or whose build failed), oldest first. Apart
   * from `tables`, so that the versions of a database written often, each read a few times,
   * never push out the table of one read often.
   */
  private readonly candidates: Version[] = [];
  private last: Version | null = null;
  /** The version `last` replaced: the one looked up before it. */
  private before: Version | null = null;

  /**
   * The flat table for the hash table of `d` in the committed snapshot `r`, or null: none yet
   * (it is built once the version has been read often enough) or its root is not a directory.
   */
  lookup(r: PageReader, d: DbDescriptor): FlatTable | null {
    const v = this.version(r, d);
    if (v.kind !== PageType.HashDirectory) return null;
    return (v.table ?? this.built(r, v)) as FlatTable | null;
  }

  /**
   * The flat copy of the branch levels of the B+tree of `d` (a sub-database's, not a
   * collision holder's: those are small and many) in the committed snapshot `r`, or null.
   */
  lookupTree(r: PageReader, d: DbDescriptor): FlatTree | null {
    const v = this.version(r, d);
    if (v.kind !== PageType.Branch) return null;
    return (v.table ?? this.built(r, v)) as FlatTree | null;
  }

  private version(r: PageReader, d: DbDescriptor): Version {
    const v = this.last;
    if (v !== null && v.desc === d) return v;
    // Reads that alternate between two databases find each other's version here, without
    // reading the root page again.
    const w = this.before;
    if (w !== null && w.desc === d) {
      this.before = v;
      this.last = w;
      return w;
    }
    return this.find(r, d);
  }

  /** The table of `v` once it has been read often enough, built then. */
  private built(r: PageReader, v: Version): FlatTable | FlatTree | null {
    return ++v.reads < v.buildAfter ? null : this.build(r, v);
  }

  /**
   * The version `d` names, found by its root page (kept when the root is a hash directory or a
   * B+tree branch).
   */
  private find(r: PageReader, d: DbDescriptor): Version {
    const root = d.root;
    const b = r.page(root);
    const o = r.at;
    let v: Version | undefined;
    const kind = b[o + H_TYPE];
    if (kind !== PageType.HashDirectory && kind !== PageType.Branch) {
      // Nothing to flatten: lookup() answers null for this descriptor after one comparison,
      // and the tables kept stay.
      v = { desc: d, root, txn: -1, kind: 0, table: null, reads: 0, buildAfter: Infinity };
    } else {
      const txn = readU64(b, o + H_TXN_LO);
      const same = (x: Version): boolean => x.root === root && x.txn === txn && x.kind === kind;
      v = this.tables.find(same) ?? this.candidates.find(same);
      if (v === undefined) {
        const buildAfter = Math.max(MIN_READS, d.entries / ENTRIES_PER_READ);
        v = { desc: d, root, txn, kind, table: null, reads: 0, buildAfter };
        if (this.candidates.length >= MAX_TABLES) this.candidates.shift();
        this.candidates.push(v);
      }
    }
    v.desc = d;
    this.before = this.last;
    this.last = v;
    return v;
  }

  /**
   * Flattens version `v`. A damaged directory anywhere in it stops the build for good: reads
   * then take the pages, and only those that reach the damage fail.
   */
  private build(r: PageReader, v: Version): FlatTable | FlatTree | null {
    v.buildAfter = Infinity;
    v.table = v.kind === PageType.Branch ? flatTree(r, v.desc) : flatTable(r, v.root);
    if (v.table !== null) {
      const i = this.candidates.indexOf(v);
      if (i >= 0) this.candidates.splice(i, 1);
      if (this.tables.length >= MAX_TABLES) this.tables.shift();
      this.tables.push(v);
    }
    return v.table;
  }
}

/** flattenTree, or null where the tree is damaged. */
function flatTree(r: PageReader, d: DbDescriptor): FlatTree | null {
  try {
    return flattenTree(r, d);
  } catch {
    return null;
  }
}

/** The flat table of the hash table whose root is `root`, or null where it is damaged. */
function flatTable(r: PageReader, root: number): FlatTable | null {
  try {
    const bits = flatBits(r, root, 0, MAX_FLAT_BITS);
    const table: FlatTable = {
      shift: HASH_BITS - bits,
      pages: new Uint32Array(1 << bits),
      depths: new Uint8Array(1 << bits),
    };
    flatten(r, root, 0, 0, bits, table);
    return table;
  } catch {
    return null;
  }
}

/**
 * Whether the build looks at the child in slot `j` of directory `b[o]` (`bits` slot bits,
 * `full` when that is the page's full width) to expand it if it is a directory: a child
 * directory fills exactly one slot of a parent at full width (docs/HASH.md), so no other
 * child's page is read. A damaged file that breaks this rule gets entries that enter such a
 * child where the descent would, with the descent's checks.
 */
function mayBeDirectory(b: Uint8Array, o: number, bits: number, full: boolean, j: number): boolean {
  if (!full) return false;
  const s = o + HEADER_SIZE + 4 * j;
  const child = readU32(b, s);
  return (
    (j === 0 || readU32(b, s - 4) !== child) && (j + 1 === 1 << bits || readU32(b, s + 4) !== child)
  );
}

/**
 * The hash bits a flat table of the directory tree below `pgno` (a page the descent reaches at
 * hash bit `depth`) needs, up to `limit`: the largest end bit of a directory whose slots fit.
 */
function flatBits(r: PageReader, pgno: number, depth: number, limit: number): number {
  const b = r.page(pgno);
  const o = r.at;
  if (b[o + H_TYPE] !== PageType.HashDirectory) return depth;
  const bits = checkDirectory(b, o, r.pageSize, pgno, depth);
  if (depth + bits > limit) return depth;
  const full = bits === directoryBits(r.pageSize, depth);
  let most = depth + bits;
  for (let j = 0; j < 1 << bits; j++) {
    if (!mayBeDirectory(b, o, bits, full, j)) continue;
    const below = flatBits(r, readU32(b, o + HEADER_SIZE + 4 * j), depth + bits, limit);
    if (below > most) most = below;
  }
  return most;
}

/**
 * Fills `table`'s entries for the hash range of `pgno`, reached at hash bit `depth`: entries
 * `[lo, lo + 2^(bits - depth))`.
 */
function flatten(
  r: PageReader,
  pgno: number,
  depth: number,
  lo: number,
  bits: number,
  table: FlatTable,
): void {
  const span = 1 << (bits - depth);
  const b = r.page(pgno);
  const o = r.at;
  const own =
    b[o + H_TYPE] === PageType.HashDirectory ? checkDirectory(b, o, r.pageSize, pgno, depth) : 0;
  if (own === 0 || depth + own > bits) {
    table.pages.fill(pgno, lo, lo + span);
    table.depths.fill(depth, lo, lo + span);
    return;
  }
  const full = own === directoryBits(r.pageSize, depth);
  const sub = span >>> own;
  const { pages, depths } = table;
  for (let j = 0, e = lo; j < 1 << own; j++) {
    const child = readU32(b, o + HEADER_SIZE + 4 * j);
    if (mayBeDirectory(b, o, own, full, j)) {
      flatten(r, child, depth + own, e, bits, table);
      e += sub;
    } else {
      // Entries one by one: most slots give one or two, and fill() costs a call each.
      for (const stop = e + sub; e < stop; e++) {
        pages[e] = child;
        depths[e] = depth + own;
      }
    }
  }
}
