/**
 * Page addressing over a Storage: page number -> (segment view, byte offset).
 *
 * Segments hold a power-of-two number of pages, so the lookup is a shift and a mask. Views are
 * cached: a segment's view never moves while the storage is open (Storage contract).
 */
import { corrupt } from '../errors';
import { H_AUX, H_PGNO, H_TYPE, PageType, readU32 } from '../format/layout';
import type { Storage } from '../storage/storage';

/** Pages per allocation of dirty-page buffers. */
const SLAB_PAGES = 16;
/** Bytes of dirty-page buffers a pager keeps between transactions, at the least... */
const SPARE_MIN_BYTES = 32 << 20;
/** ...and at the most: as much as recent commits used, up to this. */
const SPARE_MAX_BYTES = 128 << 20;
/** Commits whose size the pool follows. */
const RECENT_COMMITS = 8;

export class Pager {
  readonly pageSize: number;
  readonly pageShift: number;
  /** log2(pages per segment). */
  readonly segShift: number;
  readonly segMask: number;
  private readonly reads: Uint8Array[] = [];
  /** Page-sized heap buffers kept for the next write transaction's dirty pages. */
  private readonly spare: Uint8Array[] = [];
  /** How many buffers `spare` may keep (see fitSpare). */
  private spareLimit: number;
  /** Dirty pages of the last RECENT_COMMITS commits, a ring. */
  private readonly recent: number[] = new Array<number>(RECENT_COMMITS).fill(0);
  private recentAt = 0;
  private readonly writes: Uint8Array[] = [];

  constructor(
    readonly storage: Storage,
    pageSize: number,
  ) {
    if (storage.segmentSize % pageSize !== 0 || storage.segmentSize > 2 ** 30) {
      throw new RangeError('segment size must be a multiple of the page size and at most 1 GiB');
    }
    this.pageSize = pageSize;
    this.pageShift = Math.log2(pageSize);
    this.segShift = Math.log2(storage.segmentSize / pageSize);
    this.segMask = (1 << this.segShift) - 1;
    this.spareLimit = Math.floor(SPARE_MIN_BYTES / pageSize);
  }

  /**
   * A page-sized heap buffer for a dirty page (contents undefined). Buffers come in slabs of
   * SLAB_PAGES pages: one allocation (and one external-memory charge for the GC) per slab
   * instead of per page, which a commit of thousands of scattered pages felt as GC time.
   */
  takeBuffer(): Uint8Array {
    const b = this.spare.pop();
    if (b !== undefined) return b;
    const ps = this.pageSize;
    const slab = new Uint8Array(SLAB_PAGES * ps);
    for (let i = SLAB_PAGES - 1; i > 0; i--) this.spare.push(slab.subarray(i * ps, (i + 1) * ps));
    return slab.subarray(0, ps);
  }

  /**
   * Gives a dirty page's buffer back once its bytes are in the file (or dropped). The pool
   * keeps up to `spareLimit` of them for the next transactions.
   */
  returnBuffer(buf: Uint8Array): void {
    if (this.spare.length < this.spareLimit) this.spare.push(buf);
  }

  /**
   * Sizes the pool after a commit of `pages` dirty pages: as large as the largest of the last
   * RECENT_COMMITS commits (between SPARE_MIN_BYTES and SPARE_MAX_BYTES), on the bet that the
   * next commits are alike. Buffers the pool does not keep are new allocations for the next
   * commit, which cost page faults and GC work on the event loop (batches of 12,000 dirty
   * pages spent a fifth of their time there with a fixed 32 MiB); once the commits have been
   * small for a while, the surplus goes.
   */
  fitSpare(pages: number): void {
    this.recent[this.recentAt] = pages;
    this.recentAt = (this.recentAt + 1) % RECENT_COMMITS;
    let most = 0;
    for (const n of this.recent) if (n > most) most = n;
    const ps = this.pageSize;
    const bytes = Math.min(Math.max(most * ps, SPARE_MIN_BYTES), SPARE_MAX_BYTES);
    this.spareLimit = Math.floor(bytes / ps);
    if (this.spare.length > this.spareLimit) this.spare.length = this.spareLimit;
  }

  /** Buffers the pool holds now (for tests). */
  get spareCount(): number {
    return this.spare.length;
  }

  /** Lets go of the kept dirty-page buffers, for a handle that closed. */
  dropSpareBuffers(): void {
    this.spare.length = 0;
  }

  /** Whole pages the file holds now. */
  filePages(): number {
    return Math.floor(this.storage.size / this.pageSize);
  }

  /**
   * Makes sure the file holds `pageCount` pages, refreshing once in case another process grew
   * it. A meta that claims more pages than the file has is damage: reading past the end of a
   * mapping would be a SIGBUS (invariant 5).
   */
  ensureCovers(pageCount: number): void {
    if (pageCount <= this.filePages()) return;
    this.storage.refresh();
    if (pageCount > this.filePages()) {
      corrupt(`the meta counts ${pageCount} pages but the file holds ${this.filePages()}`);
    }
  }

  /** The read view holding `pgno`; the page starts at byte `(pgno & segMask) << pageShift`. */
  readView(pgno: number): Uint8Array {
    const seg = pgno >>> this.segShift;
    return this.reads[seg] ?? this.mapRead(seg);
  }

  writeView(pgno: number): Uint8Array {
    const seg = pgno >>> this.segShift;
    return this.writes[seg] ?? this.mapWrite(seg);
  }

  offsetOf(pgno: number): number {
    return (pgno & this.segMask) << this.pageShift;
  }

  /**
   * Bytes `[from, from + length)` of the run that starts at page `first`. Zero-copy when the
   * bytes sit in one segment (the result is then a view of the mapping: read it before anything
   * else runs); copied otherwise.
   */
  runBytes(first: number, from: number, length: number): { buf: Uint8Array; start: number } {
    const startByte = first * this.pageSize + from;
    const seg = Math.floor(startByte / this.storage.segmentSize);
    const segOff = startByte - seg * this.storage.segmentSize;
    if (segOff + length <= this.storage.segmentSize) {
      return { buf: this.reads[seg] ?? this.mapRead(seg), start: segOff };
    }
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const pos = startByte + done;
      const s = Math.floor(pos / this.storage.segmentSize);
      const so = pos - s * this.storage.segmentSize;
      const n = Math.min(length - done, this.storage.segmentSize - so);
      const view = this.reads[s] ?? this.mapRead(s);
      out.set(view.subarray(so, so + n), done);
      done += n;
    }
    return { buf: out, start: 0 };
  }

  /** Checks an overflow run's first page: type and length, without trusting either. */
  checkOverflowHead(first: number, pages: number): void {
    const b = this.readView(first);
    const o = this.offsetOf(first);
    if (
      b[o + H_TYPE] !== PageType.Overflow ||
      readU32(b, o + H_AUX) !== pages ||
      readU32(b, o + H_PGNO) !== first
    ) {
      corrupt(`page ${first} is not the head of a ${pages}-page overflow run`);
    }
  }

  private mapRead(seg: number): Uint8Array {
    if (seg * this.storage.segmentSize >= this.storage.size) this.storage.refresh();
    const v = this.storage.readSegment(seg);
    this.reads[seg] = v;
    return v;
  }

  private mapWrite(seg: number): Uint8Array {
    const v = this.storage.writeSegment(seg);
    this.writes[seg] = v;
    return v;
  }
}
