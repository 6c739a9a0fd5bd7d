/**
 * Meta pages (pages 0 and 1) and sub-database descriptors.
 *
 * Meta page, after the common header (type Meta, count 0):
 *
 *   32 u32 magic        MAGIC
 *   36 u32 version      FORMAT_VERSION
 *   40 u32 pageSize
 *   44 u32 flags        0
 *   48 u64 txnId        the commit this meta describes; it lives in page txnId % 2
 *   56 u32 pageCount    pages in use: every reachable page number is below it
 *   60 u32 freeDir      first free-directory page, 0 when nothing is free
 *   64 u32 freePages    pages listed free (in chunks, ready or pending)
 *   68 u32 hashSeed     per-file seed of the hash index
 *   72 [48] main        descriptor of the unnamed database
 *  120 [48] catalog     descriptor of the catalog (name -> descriptor) B+tree
 *  168 u32 written      pages listed below; 0 when the commit's pages were flushed before
 *                       this meta was written (nothing to verify)
 *  172 u32 inline       groups in the inline free list (version 2; 0 in version 1)
 *  176 [written] (u32 pgno, u32 checksum): every page (or overflow run, by its first page)
 *                       the commit wrote, with the checksum it was written with
 *  then [inline] groups: u32 count (at least 1), u64 txn, count u32 page numbers - free
 *                       pages kept in the meta instead of free chunk pages (txn as in a
 *                       free directory entry: the commit that freed them, 0 = free now)
 *
 * The inline free list is why a small commit writes no free-list page: the pages it frees,
 * and those it took from the pool but did not use, go into its meta while they fit, and the
 * directory chain is rewritten only when a commit takes one of its chunks or the meta is full.
 * Free pages are those of the directory's chunks and of the inline groups together.
 * The checksum in the header covers the whole page, so a torn meta write is detected.
 *
 * The list is what lets a commit be made durable with one flush: pages and meta are flushed
 * together, and open() takes this meta only if every listed page holds exactly the bytes the
 * commit wrote (see commitIntact in src/txn/env.ts); otherwise the commit before it.
 */
import { crc32c } from './crc32c';
import {
  FORMAT_VERSION,
  H_CHECKSUM,
  H_PGNO,
  H_TYPE,
  HEADER_SIZE,
  MAGIC,
  OLDEST_FORMAT_VERSION,
  PageType,
  initPageHeader,
  readU32,
  readU64,
  writeU32,
  writeU64,
} from './layout';

/** Kinds of sub-database. On disk: never reuse a number. */
export const enum DbKind {
  BTree = 1,
  Hash = 2,
}

export const DESCRIPTOR_SIZE = 48;

/**
 * Where a sub-database lives. `aux` holds the kind-specific words (hash: directory and level
 * state); a B+tree leaves them 0.
 */
export interface DbDescriptor {
  kind: DbKind;
  keyEncoding: number;
  valueEncoding: number;
  /** Root page, 0 when empty. */
  root: number;
  /** Levels of the tree: 0 when empty, 1 when the root is a leaf. */
  depth: number;
  entries: number;
  aux: number[];
}

export const AUX_WORDS = 6;

export function emptyDescriptor(
  kind: DbKind,
  keyEncoding: number,
  valueEncoding: number,
): DbDescriptor {
  return {
    kind,
    keyEncoding,
    valueEncoding,
    root: 0,
    depth: 0,
    entries: 0,
    aux: new Array<number>(AUX_WORDS).fill(0),
  };
}

export function copyDescriptor(d: DbDescriptor): DbDescriptor {
  return { ...d, aux: d.aux.slice() };
}

/**
 * Descriptor bytes: u8 kind, u8 keyEncoding, u8 valueEncoding, u8 0, u32 root, u32 depth,
 * u32 0, u64 entries, u32 aux[6].
 */
export function writeDescriptor(b: Uint8Array, o: number, d: DbDescriptor): void {
  b.fill(0, o, o + DESCRIPTOR_SIZE);
  b[o] = d.kind;
  b[o + 1] = d.keyEncoding;
  b[o + 2] = d.valueEncoding;
  writeU32(b, o + 4, d.root);
  writeU32(b, o + 8, d.depth);
  writeU64(b, o + 16, d.entries);
  for (let i = 0; i < AUX_WORDS; i++) writeU32(b, o + 24 + i * 4, d.aux[i] ?? 0);
}

export function readDescriptor(b: Uint8Array, o: number): DbDescriptor {
  const aux: number[] = [];
  for (let i = 0; i < AUX_WORDS; i++) aux.push(readU32(b, o + 24 + i * 4));
  return {
    kind: b[o]! as DbKind,
    keyEncoding: b[o + 1]!,
    valueEncoding: b[o + 2]!,
    root: readU32(b, o + 4),
    depth: readU32(b, o + 8),
    entries: readU64(b, o + 16),
    aux,
  };
}

/** The state one commit leaves: what a meta page records. */
export interface MetaState {
  pageSize: number;
  txnId: number;
  pageCount: number;
  freeDir: number;
  freePages: number;
  hashSeed: number;
  main: DbDescriptor;
  catalog: DbDescriptor;
  /**
   * Pages the commit wrote and their checksums, flattened (pgno, checksum, pgno, ...), when
   * they were flushed together with this meta; absent when they were durable before it.
   */
  written?: readonly number[];
  /** The inline free list (absent or empty: none). Page numbers are checked by the reader. */
  inlineFree?: readonly InlineFree[];
}

/** One group of the meta's inline free list: pages freed by commit `txn` (0: free now). */
export interface InlineFree {
  txn: number;
  pages: readonly number[];
}

const M_MAGIC = 32;
const M_VERSION = 36;
const M_PAGE_SIZE = 40;
const M_TXN = 48;
const M_PAGE_COUNT = 56;
const M_FREE_DIR = 60;
const M_FREE_PAGES = 64;
const M_HASH_SEED = 68;
const M_MAIN = 72;
const M_CATALOG = 120;
const M_WRITTEN = 168;
const M_INLINE = 172;
const M_WRITTEN_LIST = 176;
/** Words of an inline group before its page numbers: u32 count, u64 txn. */
export const INLINE_GROUP_HEAD = 3;

/** How many (pgno, checksum) entries a meta page of this size can list. */
export function writtenCapacity(pageSize: number): number {
  return Math.floor((pageSize - M_WRITTEN_LIST) / 8);
}

/** The u32 words a meta page has for its written list (2 per page) and inline free list. */
export function metaListWords(pageSize: number): number {
  return (pageSize - M_WRITTEN_LIST) >>> 2;
}

/**
 * The u32 words the written list and the inline free list may take together when the meta has
 * an inline list: as many as keep the meta's bytes inside its first 512-byte sector. A disk
 * writes a sector whole or not at all, so a power cut during the meta write of a commit that
 * stays inside it (and follows one that did) leaves the old meta or the new one, never a torn
 * one that check() would report; an inline list spilling over would make that common.
 */
export function inlineRoomWords(pageSize: number): number {
  return Math.min(metaListWords(pageSize), (META_SECTOR - M_WRITTEN_LIST) >>> 2);
}
const META_SECTOR = 512;

/** The u32 words `groups` take in a meta page. */
export function inlineFreeWords(groups: readonly InlineFree[]): number {
  let n = 0;
  for (const g of groups) n += INLINE_GROUP_HEAD + g.pages.length;
  return n;
}

/** Writes `m` as meta page `slot` (0 or 1) at `b[o]`, checksum included. */
export function writeMeta(b: Uint8Array, o: number, slot: number, m: MetaState): void {
  initPageHeader(b, o, PageType.Meta, slot, m.txnId, m.pageSize);
  b.fill(0, o + HEADER_SIZE, o + m.pageSize);
  writeU32(b, o + M_MAGIC, MAGIC);
  writeU32(b, o + M_VERSION, FORMAT_VERSION);
  writeU32(b, o + M_PAGE_SIZE, m.pageSize);
  writeU64(b, o + M_TXN, m.txnId);
  writeU32(b, o + M_PAGE_COUNT, m.pageCount);
  writeU32(b, o + M_FREE_DIR, m.freeDir);
  writeU32(b, o + M_FREE_PAGES, m.freePages);
  writeU32(b, o + M_HASH_SEED, m.hashSeed);
  writeDescriptor(b, o + M_MAIN, m.main);
  writeDescriptor(b, o + M_CATALOG, m.catalog);
  const w = m.written ?? [];
  const groups = m.inlineFree ?? [];
  if (w.length % 2 !== 0 || w.length + inlineFreeWords(groups) > metaListWords(m.pageSize)) {
    throw new RangeError(
      `a meta cannot list ${w.length / 2} written pages and ${groups.length} free groups`,
    );
  }
  writeU32(b, o + M_WRITTEN, w.length / 2);
  let at = o + M_WRITTEN_LIST;
  for (let i = 0; i < w.length; i++, at += 4) writeU32(b, at, w[i]!);
  let count = 0;
  for (const g of groups) {
    if (g.pages.length === 0) continue;
    count++;
    writeU32(b, at, g.pages.length);
    writeU64(b, at + 4, g.txn);
    at += 4 * INLINE_GROUP_HEAD;
    for (const p of g.pages) {
      writeU32(b, at, p);
      at += 4;
    }
  }
  writeU32(b, o + M_INLINE, count);
  writeU32(b, o + H_CHECKSUM, crc32c(b, o + 4, o + m.pageSize));
}

/**
 * The meta page at `b[o]` marked as of FORMAT_VERSION, as a new page, when it is a
 * checksum-valid meta of an older version that this version reads as it is (a version-1 meta
 * has no inline free list, which version 2 reads as none); else null, after one read of its
 * version word (a blank slot has version 0). Only the version word, the inline count and the
 * checksum differ, all in the page's first 512 bytes.
 */
export function upgradedMeta(b: Uint8Array, o: number, pageSize: number): Uint8Array | null {
  const version = readU32(b, o + M_VERSION);
  if (version >= FORMAT_VERSION || version < OLDEST_FORMAT_VERSION) return null;
  const page = b.slice(o, o + pageSize);
  if (readU32(page, M_MAGIC) !== MAGIC || readU32(page, M_PAGE_SIZE) !== pageSize) return null;
  if (readU32(page, H_CHECKSUM) !== crc32c(page, 4, pageSize)) return null;
  writeU32(page, M_VERSION, FORMAT_VERSION);
  writeU32(page, M_INLINE, 0);
  writeU32(page, H_CHECKSUM, crc32c(page, 4, pageSize));
  return page;
}

/** What reading one meta slot found. */
export type MetaReading =
  | { ok: true; meta: MetaState }
  | {
      ok: false;
      reason: 'not-mkv' | 'version' | 'torn' | 'invalid';
      detail: string;
      version?: number;
    };

/**
 * Reads and validates the meta page at `b[o]`. `available` is how many bytes of the page
 * exist in the file (a short file is read as torn, never past its end).
 */
export function readMeta(b: Uint8Array, o: number, slot: number, available: number): MetaReading {
  if (available < 4096) return { ok: false, reason: 'torn', detail: `meta ${slot} is cut short` };
  if (readU32(b, o + M_MAGIC) !== MAGIC) {
    return { ok: false, reason: 'not-mkv', detail: `meta ${slot} has no mapkv magic` };
  }
  const version = readU32(b, o + M_VERSION);
  const pageSize = readU32(b, o + M_PAGE_SIZE);
  if (pageSize < 4096 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0) {
    return { ok: false, reason: 'invalid', detail: `meta ${slot} has page size ${pageSize}` };
  }
  if (available < pageSize)
    return { ok: false, reason: 'torn', detail: `meta ${slot} is cut short` };
  if (readU32(b, o + H_CHECKSUM) !== crc32c(b, o + 4, o + pageSize)) {
    return { ok: false, reason: 'torn', detail: `meta ${slot} fails its checksum` };
  }
  if (version < OLDEST_FORMAT_VERSION || version > FORMAT_VERSION) {
    return { ok: false, reason: 'version', detail: `format version ${version}`, version };
  }
  if (b[o + H_TYPE] !== PageType.Meta || readU32(b, o + H_PGNO) !== slot) {
    return { ok: false, reason: 'invalid', detail: `meta ${slot} has a wrong header` };
  }
  const txnId = readU64(b, o + M_TXN);
  if (txnId % 2 !== slot || txnId > Number.MAX_SAFE_INTEGER) {
    return { ok: false, reason: 'invalid', detail: `meta ${slot} holds txn ${txnId}` };
  }
  const count = readU32(b, o + M_WRITTEN);
  if (count > writtenCapacity(pageSize)) {
    return { ok: false, reason: 'invalid', detail: `meta ${slot} lists ${count} written pages` };
  }
  let written: number[] | undefined;
  if (count > 0) {
    written = new Array<number>(2 * count);
    for (let i = 0; i < 2 * count; i++) written[i] = readU32(b, o + M_WRITTEN_LIST + 4 * i);
  }
  // Version 1 wrote 0 in the inline field; a version-1 meta has no inline list whatever it holds.
  let inlineFree: InlineFree[] | undefined;
  const groups = version >= 2 ? readU32(b, o + M_INLINE) : 0;
  if (groups > 0) {
    inlineFree = [];
    const end = o + M_WRITTEN_LIST + 4 * metaListWords(pageSize);
    let at = o + M_WRITTEN_LIST + 8 * count;
    for (let g = 0; g < groups; g++) {
      const n = at + 4 * INLINE_GROUP_HEAD <= end ? readU32(b, at) : 0;
      if (n === 0 || at + 4 * (INLINE_GROUP_HEAD + n) > end) {
        return { ok: false, reason: 'invalid', detail: `meta ${slot} has a bad inline free list` };
      }
      const txn = readU64(b, at + 4);
      at += 4 * INLINE_GROUP_HEAD;
      const pages = new Array<number>(n);
      for (let i = 0; i < n; i++, at += 4) pages[i] = readU32(b, at);
      inlineFree.push({ txn, pages });
    }
  }
  return {
    ok: true,
    meta: {
      pageSize,
      txnId,
      pageCount: readU32(b, o + M_PAGE_COUNT),
      freeDir: readU32(b, o + M_FREE_DIR),
      freePages: readU32(b, o + M_FREE_PAGES),
      hashSeed: readU32(b, o + M_HASH_SEED),
      main: readDescriptor(b, o + M_MAIN),
      catalog: readDescriptor(b, o + M_CATALOG),
      ...(written !== undefined ? { written } : {}),
      ...(inlineFree !== undefined ? { inlineFree } : {}),
    },
  };
}

/** The page size recorded in a meta page, read without trusting anything else (0 if absurd). */
export function peekPageSize(b: Uint8Array, o: number): number {
  if (readU32(b, o + M_MAGIC) !== MAGIC) return 0;
  const ps = readU32(b, o + M_PAGE_SIZE);
  return ps >= 4096 && ps <= 65536 && (ps & (ps - 1)) === 0 ? ps : 0;
}
