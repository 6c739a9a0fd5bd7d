/**
 * What an index (B+tree, hash table) may ask of a transaction: pages by number, and for writes
 * copy-on-write copies, fresh pages and frees. Indexes know nothing of files, mappings or the
 * freelist; the transaction layer knows nothing of index layouts (it only hands committed
 * snapshots' readers the hash index's per-file cache, which it never looks into).
 */
import type { DirectoryCache } from '../hash/directory';

/** Read access to the pages of one snapshot. */
export interface PageReader {
  readonly pageSize: number;
  /** Set by `page`: the byte offset of the page inside the returned view. */
  at: number;
  /**
   * The view holding page `pgno`, with `at` set to its offset. Throws ERR_CORRUPT when `pgno`
   * is not a data page of this snapshot (0, 1, or >= its page count).
   */
  page(pgno: number): Uint8Array;
  /**
   * Bytes `[from, from + length)` of an overflow run of `pages` pages starting at `first`,
   * after checking the run lies inside the snapshot and its head page says so. The view may be
   * a mapping: decode it before anything else runs.
   */
  runBytes(
    first: number,
    pages: number,
    from: number,
    length: number,
  ): { buf: Uint8Array; start: number };
  /** The snapshot's page count: no valid page number reaches it. */
  pageCountLimit(): number;
  /** Whether `check()`-level verification of page checksums is on for every page read. */
  readonly verifyChecksums: boolean;
  /**
   * Flat copies of hash directories and B+tree branch levels (src/hash/directory.ts,
   * src/btree/flat.ts): present only on readers of a committed snapshot that do not verify
   * every page's checksum.
   */
  readonly flatIndexes?: DirectoryCache | undefined;
}

/** Write access: only pages this transaction allocated are ever written (invariant 1). */
export interface PageWriter extends PageReader {
  readonly txnId: number;
  /**
   * Bumped whenever a page is allocated or freed and at every savepoint: while it stays the
   * same, no page moved and every page this transaction wrote is still writable.
   */
  readonly layout: number;
  /** Where the B+tree's last put left off, for the next put (btree.ts); null when none. */
  treeHint: object | null;
  /** A page-sized buffer the caller may use until its next call into the writer. */
  readonly scratch: Uint8Array;
  /**
   * Returns a page this transaction may write that holds the content of `pgno`: `pgno` itself
   * when this transaction (at the current savepoint) allocated it, else a new page with a copy
   * of it, `pgno` then being freed.
   */
  touch(pgno: number): number;
  /** A new page for this transaction, content undefined. */
  allocPage(): number;
  /** Frees a page the index no longer references. */
  freePage(pgno: number): void;
  /** `pages` contiguous new pages; returns the first. */
  allocRun(pages: number): number;
  freeRun(first: number, pages: number): void;
  /** The writable view holding page `pgno` (allocated by this txn), with `at` set. */
  pageW(pgno: number): Uint8Array;
  /** Writes `data` into an allocated run at byte `from` of its first page, across segments. */
  writeRun(first: number, from: number, data: Uint8Array): void;
  /** Zeroes bytes `[from, to)` of an allocated run. */
  zeroRun(first: number, from: number, to: number): void;
}
