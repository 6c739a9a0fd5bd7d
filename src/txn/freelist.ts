/**
 * The persistent freelist: free pages are listed in chunk pages, and a chain of directory pages
 * lists the chunks.
 *
 *   directory page (type FreeDirectory): count entries of 16 bytes from byte 32 -
 *       u32 chunk pgno, u32 pages in the chunk, u64 txn that freed them (0: free for reuse now);
 *       header `aux` is the next directory page (0 ends the chain).
 *   chunk page (type FreeChunk): count u32 page numbers from byte 32.
 *
 * A commit rewrites the directory (a page or two) and adds at most a few chunks, so its cost
 * does not grow with the number of free pages. Pages freed by txn T may be reused once no
 * snapshot older than T is pinned and T is durable (invariant 4); a chunk is taken whole.
 */
import { corrupt } from '../errors';
import { crc32c } from '../format/crc32c';
import {
  FIRST_DATA_PAGE,
  H_AUX,
  H_CHECKSUM,
  H_COUNT,
  H_PGNO,
  HEADER_SIZE,
  PageType,
  readU16,
  readU32,
  readU64,
} from '../format/layout';
import type { MetaState } from '../format/meta';
import type { Pager } from './pager';

/** One chunk of free pages as the directory lists it, or one group of the meta's inline list. */
export interface FreeChunk {
  /** The chunk page; 0 for an inline group, whose pages are in `pages`. */
  pgno: number;
  count: number;
  /** The txn that freed the pages; 0 for pages free for reuse by any later txn. */
  txn: number;
  /** An inline group's pages (checked against the file by validateMeta). */
  pages?: readonly number[];
}

/**
 * The free list of `meta`: its inline groups first (writers take those first, so that a
 * commit can leave the directory as it is), then the directory's chunks.
 */
export function readFreeList(
  pager: Pager,
  meta: MetaState,
): { chunks: FreeChunk[]; dirPages: number[] } {
  const { chunks, dirPages } = readFreeDirectory(pager, meta.freeDir, meta.pageCount);
  const inline: FreeChunk[] = (meta.inlineFree ?? []).map((g) => ({
    pgno: 0,
    count: g.pages.length,
    txn: g.txn,
    pages: g.pages,
  }));
  return { chunks: inline.concat(chunks), dirPages };
}

export const DIR_ENTRY = 16;

export function chunkCapacity(pageSize: number): number {
  return (pageSize - HEADER_SIZE) >>> 2;
}

export function directoryCapacity(pageSize: number): number {
  return Math.floor((pageSize - HEADER_SIZE) / DIR_ENTRY);
}

/** Reads the directory chain from `first`; returns the chunks and the directory's own pages. */
export function readFreeDirectory(
  pager: Pager,
  first: number,
  pageCount: number,
): { chunks: FreeChunk[]; dirPages: number[] } {
  const chunks: FreeChunk[] = [];
  const dirPages: number[] = [];
  const ps = pager.pageSize;
  const cap = directoryCapacity(ps);
  const chunkCap = chunkCapacity(ps);
  let p = first;
  while (p !== 0) {
    if (p < FIRST_DATA_PAGE || p >= pageCount || dirPages.length >= pageCount) {
      corrupt(`free directory page ${p} is outside the file or loops`);
    }
    dirPages.push(p);
    const b = pager.readView(p);
    const o = pager.offsetOf(p);
    if (b[o + 4] !== PageType.FreeDirectory || readU32(b, o + H_PGNO) !== p) {
      corrupt(`page ${p} should be a free directory page`);
    }
    checkFreelistPage(b, o, ps, p);
    const n = readU16(b, o + H_COUNT);
    if (n > cap) corrupt(`free directory page ${p} has ${n} entries`);
    for (let i = 0; i < n; i++) {
      const e = o + HEADER_SIZE + i * DIR_ENTRY;
      const chunk = { pgno: readU32(b, e), count: readU32(b, e + 4), txn: readU64(b, e + 8) };
      if (chunk.pgno < FIRST_DATA_PAGE || chunk.pgno >= pageCount || chunk.count > chunkCap) {
        corrupt(`free directory page ${p} lists a chunk outside the file`);
      }
      chunks.push(chunk);
    }
    p = readU32(b, o + H_AUX);
  }
  return { chunks, dirPages };
}

/**
 * Freelist pages are checked against their checksums even without verifyChecksums: a damaged
 * one could hand out a page in use, and the writer would overwrite live data with pages whose
 * fresh checksums no check() can fault afterwards. They are read once per write transaction.
 */
function checkFreelistPage(b: Uint8Array, o: number, pageSize: number, pgno: number): void {
  if (readU32(b, o + H_CHECKSUM) !== crc32c(b, o + 4, o + pageSize)) {
    corrupt(`free list page ${pgno} fails its checksum`);
  }
}

/** The page numbers a chunk lists, each checked to be a data page below `pageCount`. */
export function readChunk(pager: Pager, chunk: FreeChunk, pageCount: number): number[] {
  if (chunk.pages !== undefined) return chunk.pages.slice();
  const b = pager.readView(chunk.pgno);
  const o = pager.offsetOf(chunk.pgno);
  if (
    b[o + 4] !== PageType.FreeChunk ||
    readU16(b, o + H_COUNT) !== chunk.count ||
    readU32(b, o + H_PGNO) !== chunk.pgno
  ) {
    corrupt(`page ${chunk.pgno} should be a free chunk of ${chunk.count} pages`);
  }
  checkFreelistPage(b, o, pager.pageSize, chunk.pgno);
  const out: number[] = new Array<number>(chunk.count);
  for (let i = 0; i < chunk.count; i++) {
    const p = readU32(b, o + HEADER_SIZE + 4 * i);
    if (p < FIRST_DATA_PAGE || p >= pageCount) corrupt(`free chunk ${chunk.pgno} lists page ${p}`);
    out[i] = p;
  }
  return out;
}
