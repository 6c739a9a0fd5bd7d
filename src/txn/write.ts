/**
 * The write transaction: page allocation, copy-on-write, savepoints, and the commit protocol.
 *
 * Invariant 1 holds because the only pages ever written are those in `dirty`, and a page enters
 * `dirty` only when this transaction allocates it: from the pool (pages of chunks freed by
 * transactions no pinned snapshot can see, and durable) or past the committed page count.
 *
 * Until commit, dirty pages live in heap buffers, not in the file: an aborted transaction (a
 * throw, bad input, a full disk at commit) leaves the file byte-for-byte as it was, and the
 * file grows only when a commit needs it. `prepareCommit` grows the file, checksums each dirty
 * page and writes it to the file (pwrites of at most 16 KiB) in one pass, or, for an async
 * commit, hands the writes to the environment, which makes them on a thread-pool thread.
 *
 * Savepoints (used to run several `transaction()` callbacks in one batched commit) raise
 * `level`; a page is written in place only if it was allocated at the current level, so an
 * outer level's pages stay intact and rolling back a level is dropping what it allocated.
 */
import { MapKVError, corrupt } from '../errors';
import { crc32c } from '../format/crc32c';
import {
  FIRST_DATA_PAGE,
  H_AUX,
  H_CHECKSUM,
  H_COUNT,
  H_PGNO,
  H_TXN_LO,
  HEADER_SIZE,
  MAX_PAGES,
  PageType,
  initPageHeader,
  readU32,
  writeU16,
  writeU32,
  writeU64,
} from '../format/layout';
import {
  INLINE_GROUP_HEAD,
  type DbDescriptor,
  type InlineFree,
  type MetaState,
  copyDescriptor,
  inlineFreeWords,
  inlineRoomWords,
  metaListWords,
} from '../format/meta';
import { DIR_ENTRY, type FreeChunk, chunkCapacity, directoryCapacity, readChunk } from './freelist';
import type { PageWriter } from './pages';
import type { Pager } from './pager';
import type { FlushRange, PageWrite } from '../storage/storage';

/** Bytes of pages a commit may ask open() to verify (larger commits flush before the meta). */
const VERIFY_BUDGET = 2 << 20;
/**
 * Bytes of pages from which an async commit leaves its page writes to a thread-pool thread;
 * smaller commits make them at once. The trip through the pool costs latency: 4 one-page
 * writes took 14-16 us made at once and 44-53 us from `await` to `await` through it (a
 * microbenchmark, 2,000 commits x 3). A single put writes 3 or 4 pages, and its `await` should
 * not pay that; a commit of a busy turn's puts (tens of pages) gives the event loop back 3 to
 * 4 us a page.
 */
const DEFER_MIN_BYTES = 32768;

/** Pages per write group (a range of CommitPlan.written, written in calls of WRITE_UNIT). */
const WRITE_GROUP = 1024;
/** Bytes per pwrite of a commit's neighbouring pages at most (see MappedStorage.writeAt). */
const WRITE_UNIT = 16384;

interface Savepoint {
  freedLength: number;
  shadowed: number[];
  main: DbDescriptor;
  /**
   * Each named database written at this level, with its descriptor as it was when the level
   * began (null: not in `named` then). Filled by `noteNamed` on first write, so a savepoint
   * costs O(1) and its rollback O(what the level wrote), however many databases the
   * transaction holds.
   */
  saved: Map<string, DbDescriptor | null>;
  /**
   * Pages allocated at this level (a page may appear twice, or have left `dirty` since: the
   * level is checked when the list is walked). Release and rollback walk this list, not the
   * whole transaction's `dirty`, which a batch of many callbacks made quadratic.
   */
  pages: number[];
}

/** What a commit hands to the environment to write as the new meta. */
export interface CommitPlan {
  meta: MetaState;
  /**
   * The byte ranges of the file the commit's pages were written to (neighbouring pages). When
   * the flush of these pages fails, the environment punches them out of the file: on ext4, a
   * page whose first write-back into never-written (fallocated) blocks failed can be written
   * again and flushed with success while its blocks stay marked unwritten, so it reads as
   * zeros after the page cache is dropped. Fresh blocks do not keep that state.
   */
  written: FlushRange[];
  /**
   * With `prepareCommit(true)` and at least DEFER_MIN_BYTES of pages: the page writes left to
   * the environment (in calls of `writeUnit` bytes), in page order; otherwise empty, the pages
   * being in the file already.
   */
  writes: PageWrite[];
  /** Bytes per write call for `writes` (MappedStorage.writeAt says why it is capped). */
  writeUnit: number;
  /**
   * Hands the page buffers of `writes` back to the pager for reuse: call it once they were
   * written or will never be (the storage's writes of them settled, or were stopped).
   */
  release(): void;
}

export class WriteTxn implements PageWriter {
  readonly txnId: number;
  readonly pageSize: number;
  readonly scratch: Uint8Array;
  readonly verifyChecksums: boolean;
  at = 0;
  pageCount: number;
  /** The unnamed database's descriptor, changed in place by the index code. */
  main: DbDescriptor;
  catalog: DbDescriptor;
  /** Named databases this transaction opened, by name. */
  readonly named = new Map<string, DbDescriptor>();
  /** Named databases written by this transaction: their descriptors go to the catalog. */
  readonly namedDirty = new Set<string>();
  /**
   * Bumped on every change, so iterators over this transaction know to re-seek (Transaction
   * bumps it for each of its writes too).
   */
  version = 0;
  /** PageWriter.layout: bumped with `version` here, but not by the writes of Transaction. */
  layout = 0;
  treeHint: object | null = null;
  /**
   * The write context (database.ts `writeContext`) last handed out in this transaction, and
   * the handle it was for: consecutive writes through one handle reuse it instead of making
   * an object and a closure per put. Kept here, not on the handle, so that it goes with the
   * transaction.
   */
  contextOwner: object | null = null;
  context: object | null = null;
  /**
   * Bytes of page buffers this transaction has allocated (never decreased): a bound on the
   * heap its dirty pages take, for writers that commit in steps (the compact backup).
   */
  allocatedBytes = 0;

  private readonly dirty = new Map<number, number>();
  /** Heap buffer of each dirty page, or of each dirty overflow run (keyed by its first page). */
  private readonly buffers = new Map<number, Uint8Array>();
  private readonly runs = new Map<number, number>();
  private pool: number[] = [];
  /** Whether `pool` is in descending order (allocPage pops keep it so; pushes do not). */
  private poolSorted = false;
  /** What the last run scan learned: no run of `pages` or more starts below `first`. */
  private runFloor: { pages: number; first: number } | null = null;
  private freed: number[] = [];
  private readonly consumedChunkPages: number[] = [];
  private readonly chunks: FreeChunk[];
  private readonly oldDirPages: number[];
  private level = 0;
  private readonly savepoints: Savepoint[] = [];
  /** Byte ranges written by sealPages (see CommitPlan.written). */
  private writtenRanges: FlushRange[] = [];

  constructor(
    private readonly pager: Pager,
    private readonly base: MetaState,
    free: { chunks: FreeChunk[]; dirPages: number[] },
    /** Chunks freed by txns up to this id may be reused. */
    private readonly reuseLimit: number,
    verifyChecksums: boolean,
  ) {
    this.txnId = base.txnId + 1;
    this.pageSize = pager.pageSize;
    this.scratch = new Uint8Array(this.pageSize);
    this.verifyChecksums = verifyChecksums;
    this.pageCount = base.pageCount;
    this.main = copyDescriptor(base.main);
    this.catalog = copyDescriptor(base.catalog);
    this.chunks = free.chunks.slice();
    this.oldDirPages = free.dirPages;
  }

  pageCountLimit(): number {
    return this.pageCount;
  }

  page(pgno: number): Uint8Array {
    const own = this.buffers.get(pgno);
    if (own !== undefined) {
      this.at = 0;
      return own;
    }
    // Not a page of this transaction, so a committed one: it must lie below the committed
    // page count (pages past it exist only as this transaction's buffers, if at all).
    if (pgno < FIRST_DATA_PAGE || pgno >= this.base.pageCount) {
      corrupt(`page ${pgno} is outside the file`);
    }
    const b = this.pager.readView(pgno);
    this.at = this.pager.offsetOf(pgno);
    if (this.verifyChecksums) verifyPage(b, this.at, this.pageSize, pgno);
    return b;
  }

  pageW(pgno: number): Uint8Array {
    const own = this.buffers.get(pgno);
    // Only pages this transaction allocated are written. Asking for another means the file
    // lied: a free chunk listed a page that is in use (see allocPage).
    if (own === undefined) corrupt(`page ${pgno} is listed free but is in use`);
    this.at = 0;
    return own;
  }

  runBytes(
    first: number,
    pages: number,
    from: number,
    length: number,
  ): { buf: Uint8Array; start: number } {
    const own = this.buffers.get(first);
    if (own !== undefined && own.length === pages * this.pageSize) return { buf: own, start: from };
    if (first < FIRST_DATA_PAGE || pages < 1 || first + pages > this.base.pageCount) {
      corrupt(`overflow run ${first}+${pages} is outside the file`);
    }
    this.pager.checkOverflowHead(first, pages);
    return this.pager.runBytes(first, from, length);
  }

  writeRun(first: number, from: number, data: Uint8Array): void {
    this.buffers.get(first)!.set(data, from);
  }

  zeroRun(first: number, from: number, to: number): void {
    this.buffers.get(first)!.fill(0, from, to);
  }

  touch(pgno: number): number {
    if (this.dirty.get(pgno) === this.level) return pgno;
    const src = this.page(pgno);
    const so = this.at;
    // A committed page is checked before it is copied, even without verifyChecksums: the copy
    // gets a fresh checksum at commit, so damage copied now could never be found again (check()
    // would pass a file whose data is wrong).
    if (!this.verifyChecksums && !this.buffers.has(pgno)) verifyPage(src, so, this.pageSize, pgno);
    const copy = this.allocPage();
    if (copy === pgno) corrupt(`the freelist lists page ${pgno}, which is in use`);
    const dst = this.pageW(copy);
    dst.set(src.subarray(so, so + this.pageSize), 0);
    writeU32(dst, H_PGNO, copy);
    writeU64(dst, H_TXN_LO, this.txnId);
    this.freePage(pgno);
    return copy;
  }

  allocPage(): number {
    this.version++;
    this.layout++;
    let p = this.pool.pop();
    // A chunk may be empty (see writeFreelist), so refill until a page turns up.
    while (p === undefined && this.refill()) p = this.pool.pop();
    if (p === undefined) p = this.extend(1);
    // A page handed out twice means a free chunk listed a page in use or listed it twice.
    if (this.dirty.has(p)) corrupt(`the freelist lists page ${p}, which is in use`);
    this.markDirty(p);
    this.buffers.set(p, this.pager.takeBuffer());
    this.allocatedBytes += this.pageSize;
    return p;
  }

  freePage(pgno: number): void {
    this.version++;
    this.layout++;
    const lv = this.dirty.get(pgno);
    if (lv === this.level) {
      // Allocated at this level and never reachable from any commit: reusable at once.
      this.dirty.delete(pgno);
      this.dropBuffer(pgno);
      this.poolPush(pgno);
    } else if (lv !== undefined) {
      this.savepoints[this.level - 1]!.shadowed.push(pgno);
    } else {
      this.freed.push(pgno);
    }
  }

  allocRun(pages: number): number {
    if (pages === 1) return this.allocPage();
    this.version++;
    this.layout++;
    let first = this.takeRunFromPool(pages);
    if (first < 0) {
      // Pull every reusable chunk in before extending the file: runs need contiguous pages.
      while (this.refill()) {
        /* keep refilling */
      }
      first = this.takeRunFromPool(pages);
    }
    if (first < 0) first = this.extend(pages);
    for (let i = 0; i < pages; i++) this.markDirty(first + i);
    this.runs.set(first, pages);
    this.buffers.set(first, new Uint8Array(pages * this.pageSize));
    this.allocatedBytes += pages * this.pageSize;
    return first;
  }

  freeRun(first: number, pages: number): void {
    if (this.dirty.get(first) === this.level) {
      this.runs.delete(first);
      this.buffers.delete(first);
    }
    for (let i = 0; i < pages; i++) this.freePage(first + i);
  }

  /** Returns a dirty page's buffer to the pager's pool (a run's buffer is left to the GC). */
  private dropBuffer(pgno: number): void {
    const buf = this.buffers.get(pgno);
    if (buf === undefined) return;
    this.buffers.delete(pgno);
    if (buf.length === this.pageSize) this.pager.returnBuffer(buf);
  }

  /** Starts a nested level whose changes `rollback` undoes and `release` keeps. */
  savepoint(): void {
    // Pages written so far belong to the level below: the next write copies them again.
    this.version++;
    this.layout++;
    this.savepoints.push({
      freedLength: this.freed.length,
      shadowed: [],
      main: copyDescriptor(this.main),
      saved: new Map(),
      pages: [],
    });
    this.level++;
  }

  /**
   * Must be called before the descriptor of named database `name` is looked up for a write:
   * inside a savepoint, keeps the descriptor as it is now, for `rollback`.
   */
  noteNamed(name: string): void {
    if (this.level === 0) return;
    const saved = this.savepoints[this.level - 1]!.saved;
    if (saved.has(name)) return;
    const d = this.named.get(name);
    saved.set(name, d === undefined ? null : copyDescriptor(d));
  }

  /** Undoes everything since the last savepoint, the descriptors of `named` included. */
  rollback(): void {
    const sp = this.savepoints.pop()!;
    for (const p of sp.pages) {
      if (this.dirty.get(p) === this.level) {
        this.dirty.delete(p);
        this.runs.delete(p);
        this.dropBuffer(p);
        this.poolPush(p);
      }
    }
    this.level--;
    this.freed.length = sp.freedLength;
    this.main = sp.main;
    for (const [name, d] of sp.saved) {
      if (d === null) this.named.delete(name);
      else this.named.set(name, d);
    }
    this.version++;
    this.layout++;
  }

  /** Keeps the changes since the last savepoint, merging them into the level below. */
  release(): void {
    const sp = this.savepoints.pop()!;
    const outer = this.level > 1 ? this.savepoints[this.level - 2]! : null;
    for (const p of sp.pages) {
      if (this.dirty.get(p) === this.level) {
        this.dirty.set(p, this.level - 1);
        outer?.pages.push(p);
      }
    }
    // The outer level's rollback must restore what it had before this level wrote, too.
    if (outer !== null) {
      for (const [name, d] of sp.saved) if (!outer.saved.has(name)) outer.saved.set(name, d);
    }
    this.level--;
    this.version++;
    this.layout++;
    // Pages of the outer level that this level copied are garbage now.
    for (const p of sp.shadowed) this.freePage(p);
  }

  /** Marks page `p` dirty at the current level. */
  private markDirty(p: number): void {
    this.dirty.set(p, this.level);
    if (this.level > 0) this.savepoints[this.level - 1]!.pages.push(p);
  }

  /**
   * Writes the freelist and checksums, and returns what the environment needs to make the
   * commit durable. The transaction is spent afterwards.
   */
  prepareCommit(deferWrites = false): CommitPlan {
    const freeDir = this.writeFreelist();
    const writes: PageWrite[] = [];
    let defer = deferWrites;
    if (defer) {
      let bytes = 0;
      for (const buf of this.buffers.values()) bytes += buf.length;
      defer = bytes >= DEFER_MIN_BYTES;
    }
    const written = this.sealPages(inlineFreeWords(freeDir.inline), defer ? writes : null);
    const ranges = this.writtenRanges;
    this.writtenRanges = [];
    const meta: MetaState = {
      pageSize: this.pageSize,
      txnId: this.txnId,
      pageCount: this.pageCount,
      freeDir: freeDir.first,
      freePages: freeDir.freePages,
      hashSeed: this.base.hashSeed,
      main: this.main,
      catalog: this.catalog,
      ...(written !== null ? { written } : {}),
      ...(freeDir.inline.length > 0 ? { inlineFree: freeDir.inline } : {}),
    };
    const ps = this.pageSize;
    const pager = this.pager;
    return {
      meta,
      written: ranges,
      writes,
      writeUnit: Math.max(ps, WRITE_UNIT),
      release: () => {
        for (const w of writes)
          for (const b of w.buffers) if (b.length === ps) pager.returnBuffer(b);
        writes.length = 0;
      },
    };
  }

  /** Whether this transaction changed anything at all. */
  get changed(): boolean {
    return this.dirty.size > 0 || this.freed.length > 0 || this.metaChanged;
  }

  /** Set when the meta must be rewritten although no page changed (encodings recorded). */
  metaChanged = false;

  // --- allocation internals ---

  /** Moves one reusable chunk into the pool; false when none is ready. */
  private refill(): boolean {
    for (let i = 0; i < this.chunks.length; i++) {
      if (this.chunks[i]!.txn <= this.reuseLimit) {
        this.takeChunk(i);
        return true;
      }
    }
    return false;
  }

  /**
   * Moves the pages of chunk `i` into the pool; a directory chunk's own page is freed (and the
   * directory must then be rewritten), an inline group has none.
   */
  private takeChunk(i: number): void {
    const c = this.chunks.splice(i, 1)[0]!;
    const pages = readChunk(this.pager, c, this.base.pageCount);
    for (let j = pages.length - 1; j >= 0; j--) this.poolPush(pages[j]!);
    if (c.pages === undefined) this.consumedChunkPages.push(c.pgno);
  }

  /** Adds a free page to the pool (which then may hold new runs, in any order). */
  private poolPush(p: number): void {
    this.pool.push(p);
    this.poolSorted = false;
    this.runFloor = null;
  }

  /**
   * Takes `pages` consecutive pages from the pool; -1 when it holds no such run. Each call
   * costs about the pool entries below the run it finds, not a sort and a splice of the
   * whole pool: those made a transaction of many multi-page values cost O(free pages) per
   * value (8 ms a put with 1 GiB free).
   */
  private takeRunFromPool(pages: number): number {
    const pool = this.pool;
    if (pool.length < pages) return -1;
    if (!this.poolSorted) {
      // Descending: the lowest pages at the end, where allocPage pops and a splice is short.
      pool.sort((a, b) => b - a);
      this.poolSorted = true;
      this.runFloor = null;
    }
    // Runs cannot start below the floor a scan for as many pages (or fewer) found (taking
    // pages out of the pool makes no new runs): skip the pool entries below it.
    let i = pool.length - 1;
    const floor = this.runFloor;
    if (floor !== null && floor.pages <= pages) {
      if (floor.first === Infinity) return -1;
      let lo = 0;
      let hi = i;
      // The last index whose page is at or above the floor (pool[0] is the highest page).
      while (lo < hi) {
        const mid = (lo + hi + 1) >>> 1;
        if (pool[mid]! >= floor.first) lo = mid;
        else hi = mid - 1;
      }
      if (pool[lo]! < floor.first) return -1;
      i = lo;
    }
    // Scanning up from the lowest page: `len` neighbours end at pool[i], each one more than
    // the entry after it.
    let len = 1;
    for (i--; i >= 0; i--) {
      if (pool[i] === pool[i + 1]! + 1) {
        if (++len === pages) {
          const first = pool[i + pages - 1]!;
          pool.splice(i, pages);
          // No run of `pages` starts lower: the scan would have ended there.
          this.runFloor = { pages, first };
          return first;
        }
      } else len = 1;
    }
    this.runFloor = { pages, first: Infinity };
    return -1;
  }

  /** Takes `pages` pages past the end of the used file; the file grows at commit. */
  private extend(pages: number): number {
    const first = this.pageCount;
    const next = first + pages;
    if (next > MAX_PAGES)
      throw new MapKVError('ERR_BAD_VALUE', 'the database would exceed its maximum size');
    this.pageCount = next;
    return first;
  }

  /** Grows the file to hold `pageCount` pages (an eighth more, 1 to 64 MiB at a time). */
  private growFile(): void {
    const filePages = this.pager.filePages();
    if (this.pageCount <= filePages) return;
    const bytes = filePages * this.pageSize;
    // Growing by a step keeps fallocate calls rare without leaving much unused at the end.
    const step = Math.min(Math.max(bytes / 8, 1 << 20), 64 << 20);
    const want = Math.max(
      this.pageCount * this.pageSize,
      Math.ceil((bytes + step) / this.pageSize) * this.pageSize,
    );
    this.pager.storage.grow(Math.min(want, MAX_PAGES * this.pageSize));
  }

  /** A page for the freelist itself: from the pool or the end of the file, never a refill. */
  private allocListPage(): number {
    const p = this.pool.pop() ?? this.extend(1);
    this.markDirty(p);
    this.buffers.set(p, this.pager.takeBuffer());
    return p;
  }

  /**
   * Whether inline groups of `words` words fit the meta's first sector (inlineRoomWords)
   * beside the list of `pages` written pages, or beside none when so many pages could not be
   * listed anyway. An inline list never costs a commit its one-flush form.
   */
  private inlineFits(words: number, pages: number): boolean {
    const room = inlineRoomWords(this.pageSize);
    if (words > room) return false;
    return 2 * pages + words <= room || 2 * pages > metaListWords(this.pageSize);
  }

  /**
   * The free list when the directory chain can stay as it is: no chunk of it was taken, and
   * the inline groups left, the pool's leftovers (txn 0) and the pages this transaction freed
   * fit the meta. Null otherwise; changes nothing either way. A single put's commit takes
   * this path: it writes no free-list page.
   */
  private inlineFreelist(): { first: number; freePages: number; inline: InlineFree[] } | null {
    if (this.consumedChunkPages.length > 0) return null;
    const inline: InlineFree[] = [];
    const now = this.pool.slice();
    let freePages = 0;
    for (const c of this.chunks) {
      freePages += c.count;
      if (c.pages === undefined) continue;
      if (c.txn === 0) now.push(...c.pages);
      else inline.push({ txn: c.txn, pages: c.pages });
    }
    if (now.length > 0) inline.push({ txn: 0, pages: now });
    if (this.freed.length > 0) inline.push({ txn: this.txnId, pages: this.freed.slice() });
    if (!this.inlineFits(inlineFreeWords(inline), this.buffers.size)) return null;
    freePages += this.pool.length + this.freed.length;
    return { first: this.base.freeDir, freePages, inline };
  }

  private writeFreelist(): { first: number; freePages: number; inline: InlineFree[] } {
    const quick = this.inlineFreelist();
    if (quick !== null) return quick;
    const ps = this.pageSize;
    const chunkCap = chunkCapacity(ps);
    const dirCap = directoryCapacity(ps);
    const freed = this.freed;
    // The freelist's own pages come from the pool (never from a refill in the middle of
    // writing the list), so top the pool up from ready chunks first: otherwise each commit
    // would extend the file by a few pages while free ones wait in chunks.
    const want = 3 + Math.ceil((this.chunks.length + 2) / dirCap);
    while (this.pool.length < want && this.refill()) {
      /* refilled */
    }
    // Every commit lists what is left in the pool as a chunk of pages free now (txn 0), and
    // the pages it freed as another. Chunks of the first kind are merged into the pool while
    // they fit one page with it: taken one per commit, they were left behind a page each, and
    // a file whose keys were all removed in 200 commits kept 124 list pages for 1,000 free.
    const chunks = this.chunks;
    // The directory is rewritten: the inline groups left go into it, those free now through
    // the pool, the others with this commit's freed pages (tagged with this commit, so reused
    // no sooner than before: a later tag only waits longer).
    for (let i = 0; i < chunks.length;) {
      const c = chunks[i]!;
      if (c.pages === undefined) i++;
      else {
        chunks.splice(i, 1);
        if (c.txn === 0) for (const p of c.pages) this.poolPush(p);
        else for (const p of c.pages) freed.push(p);
      }
    }
    for (let i = 0; i < chunks.length && this.pool.length < chunkCap;) {
      const c = chunks[i]!;
      if (c.txn === 0 && this.pool.length + c.count <= chunkCap) this.takeChunk(i);
      else i++;
    }
    for (const p of this.oldDirPages) freed.push(p);
    for (const p of this.consumedChunkPages) freed.push(p);
    // Fold the newest chunk of freed pages into this commit's when both fit one page, so that
    // a reader that pins an old snapshot for long does not make the directory grow a chunk per
    // commit. It is the last chunk with a txn (a pool chunk, txn 0, may follow it).
    let newest = chunks.length - 1;
    while (newest >= 0 && chunks[newest]!.txn === 0) newest--;
    const last = newest >= 0 ? chunks[newest]! : undefined;
    if (last !== undefined && last.count + freed.length + 1 <= chunkCap) {
      chunks.splice(newest, 1);
      for (const p of readChunk(this.pager, last, this.base.pageCount)) freed.push(p);
      freed.push(last.pgno);
    }
    // This commit's freed pages stay in the meta when they fit (with the pool's leftovers when
    // those fit too), so that the next commit finds its pages there and leaves the directory
    // as it is. Sized against every page this commit may still add: the list pages of a
    // directory that holds everything.
    const pool = this.pool;
    const listPages: number[] = [];
    let freedInline = false;
    let poolInline = false;
    const needFor = (): number => {
      const newChunks =
        (poolInline ? 0 : Math.ceil(pool.length / chunkCap)) +
        (freedInline ? 0 : Math.ceil(freed.length / chunkCap));
      const entries = chunks.length + newChunks;
      return newChunks + (entries === 0 ? 0 : Math.ceil(entries / dirCap));
    };
    const pages = this.buffers.size + needFor();
    const head = INLINE_GROUP_HEAD; // words before each group's page numbers
    freedInline = freed.length > 0 && this.inlineFits(head + freed.length, pages);
    poolInline =
      freedInline &&
      pool.length > 0 &&
      this.inlineFits(2 * head + freed.length + pool.length, pages);
    while (listPages.length < needFor()) listPages.push(this.allocListPage());
    const inline: InlineFree[] = [];
    if (freedInline) inline.push({ txn: this.txnId, pages: freed });
    // Taken after the list pages, which may have come out of the pool.
    if (poolInline && pool.length > 0) inline.push({ txn: 0, pages: pool.slice() });
    const inlinePages = (freedInline ? freed.length : 0) + (poolInline ? pool.length : 0);
    const total = listPages.length;
    if (total === 0) return { first: 0, freePages: inlinePages, inline };

    // The fewest directory pages that list every chunk; the rest are chunk pages. Taking pages
    // from the pool shrank the need, so a chunk page or two may end up empty: harmless.
    let dirCount = 1;
    while (dirCount * dirCap < chunks.length + total - dirCount) dirCount++;
    const dirPages = listPages.slice(0, dirCount);
    const chunkPages = listPages.slice(dirCount);
    const freedOut = freedInline ? [] : freed;
    const poolOut = poolInline ? [] : pool;
    const freedChunks = Math.ceil(freedOut.length / chunkCap);
    if (poolOut.length > (chunkPages.length - freedChunks) * chunkCap) {
      throw new Error('internal: the freelist pages cannot hold the free pages');
    }
    const newChunks: FreeChunk[] = [];
    for (let i = 0; i < chunkPages.length; i++) {
      const p = chunkPages[i]!;
      const isFreed = i < freedChunks;
      const src = isFreed ? freedOut : poolOut;
      const from = (isFreed ? i : i - freedChunks) * chunkCap;
      const n = Math.max(0, Math.min(src.length, from + chunkCap) - from);
      const b = this.pageW(p);
      const o = this.at;
      initPageHeader(b, o, PageType.FreeChunk, p, this.txnId, ps);
      writeU16(b, o + H_COUNT, n);
      b.fill(0, o + HEADER_SIZE, o + ps);
      for (let j = 0; j < n; j++) writeU32(b, o + HEADER_SIZE + 4 * j, src[from + j]!);
      newChunks.push({ pgno: p, count: n, txn: isFreed ? this.txnId : 0 });
    }
    const all = chunks.concat(newChunks);
    if (all.length > dirPages.length * dirCap) {
      throw new Error(
        `internal: free directory of ${dirPages.length} pages cannot list ${all.length} chunks`,
      );
    }
    let freePages = inlinePages;
    for (let d = 0; d < dirPages.length; d++) {
      const p = dirPages[d]!;
      const b = this.pageW(p);
      const o = this.at;
      initPageHeader(b, o, PageType.FreeDirectory, p, this.txnId, ps);
      const part = all.slice(d * dirCap, (d + 1) * dirCap);
      writeU16(b, o + H_COUNT, part.length);
      writeU32(b, o + H_AUX, dirPages[d + 1] ?? 0);
      b.fill(0, o + HEADER_SIZE, o + ps);
      for (let i = 0; i < part.length; i++) {
        const e = o + HEADER_SIZE + i * DIR_ENTRY;
        writeU32(b, e, part[i]!.pgno);
        writeU32(b, e + 4, part[i]!.count);
        writeU64(b, e + 8, part[i]!.txn);
        freePages += part[i]!.count;
      }
    }
    return { first: dirPages[0]!, freePages, inline };
  }

  /**
   * Grows the file if needed, checksums every page this transaction wrote and writes it to the
   * file; returns each written page with its checksum when the commit is small enough for its
   * meta to list them (else null). A failed grow (ENOSPC) throws before any byte of the file
   * changed.
   */
  private sealPages(inlineWords: number, deferred: PageWrite[] | null): number[] | null {
    const ps = this.pageSize;
    this.pager.fitSpare(this.buffers.size);
    this.growFile();
    // A listed commit is verified page by page at open, so bound the bytes that costs too.
    let budget = Math.max(32, Math.floor(VERIFY_BUDGET / ps));
    // With an inline list the two stay in the meta's first sector (inlineRoomWords): the inline
    // list was sized against an upper bound of the pages, so a commit that came out smaller
    // could otherwise be listed past it. Not listed, it takes two flushes.
    const room = inlineWords > 0 ? inlineRoomWords(ps) : metaListWords(ps);
    let written: number[] | null = 2 * this.buffers.size + inlineWords <= room ? [] : null;
    const firsts = [...this.buffers.keys()].sort((a, b) => a - b);
    // Neighbouring pages form one group (one range of `written`), in pwrites of 16 KiB; a
    // failed write leaves only pages that no commit reaches (invariant 1), so the transaction
    // just fails.
    let group: Uint8Array[] = [];
    let groupAt = 0;
    let groupEnd = -1;
    for (const p of firsts) {
      const buf = this.buffers.get(p)!;
      const crc = crc32c(buf, 4, buf.length);
      writeU32(buf, H_CHECKSUM, crc);
      if (written !== null) {
        budget -= buf.length / ps;
        if (budget < 0) written = null;
        else written.push(p, crc);
      }
      if (p !== groupEnd || group.length >= WRITE_GROUP) {
        if (group.length > 0) this.writeGroup(groupAt, groupEnd, group, deferred);
        group = [];
        groupAt = p;
      }
      group.push(buf);
      groupEnd = p + buf.length / ps;
    }
    if (group.length > 0) this.writeGroup(groupAt, groupEnd, group, deferred);
    // Deferred pages go back to the pager only once written (CommitPlan.release).
    if (deferred === null) {
      for (const buf of this.buffers.values()) if (buf.length === ps) this.pager.returnBuffer(buf);
    }
    this.buffers.clear();
    // A commit that wrote no page (it only freed some) is not listed: the format reads an
    // empty list as "the pages were flushed before the meta" (FORMAT.md), so open would not
    // check such a meta against the file, and when the commit extended the page count (pages
    // taken from past the end and freed again within it) the file's grown size must be durable
    // before the meta: the first of the two flushes makes it so.
    return written !== null && written.length === 0 ? null : written;
  }

  /**
   * Writes pages `[first, end)` from `group`, or adds them to `deferred` when given, and
   * records their range (CommitPlan.written).
   */
  private writeGroup(
    first: number,
    end: number,
    group: Uint8Array[],
    deferred: PageWrite[] | null,
  ): void {
    const ps = this.pageSize;
    // Recorded first: a write that fails part-way may still have put some of its pages in.
    this.writtenRanges.push({ offset: first * ps, length: (end - first) * ps });
    if (deferred !== null) {
      deferred.push({ offset: first * ps, buffers: group });
      return;
    }
    // At most 16 KiB (or one larger page) per system call: MappedStorage.writeAt says why.
    this.pager.storage.writeAt(first * ps, group, Math.max(ps, WRITE_UNIT));
  }
}

/** CRC32C of bytes [4, pages * pageSize) of a run, across segment edges. */
export function runChecksum(pager: Pager, first: number, pages: number): number {
  const total = pages * pager.pageSize;
  let crc = 0;
  let from = 4;
  while (from < total) {
    const n = Math.min(total - from, 1 << 20);
    const { buf, start } = pager.runBytes(first, from, n);
    crc = crc32c(buf, start, start + n, crc);
    from += n;
  }
  return crc;
}

/** Throws ERR_CORRUPT unless an overflow run's checksum matches its bytes. */
export function verifyRun(pager: Pager, first: number, pages: number): void {
  const head = pager.readView(first);
  if (readU32(head, pager.offsetOf(first) + H_CHECKSUM) !== runChecksum(pager, first, pages)) {
    corrupt(`overflow run at page ${first} fails its checksum`);
  }
}

/** Throws ERR_CORRUPT unless the page's checksum matches its bytes. */
export function verifyPage(b: Uint8Array, o: number, pageSize: number, pgno: number): void {
  if (b[o + 4] === PageType.Overflow) return; // a run is verified when its value is read
  if (readU32(b, o + H_CHECKSUM) !== crc32c(b, o + 4, o + pageSize)) {
    corrupt(`page ${pgno} fails its checksum`);
  }
}
