/**
 * Copy-on-write B+tree over pages of the mapped file.
 *
 * Reads descend from the descriptor's root through exactly `depth` levels; a page of the wrong
 * type at a level, or a record outside its page, is ERR_CORRUPT, so a damaged file can never
 * send a lookup into a loop or past the end of the mapping.
 *
 * Writes first make the root-to-leaf path writable (`touch` copies every page the transaction
 * did not allocate itself), then change the leaf in place and fix the path upwards: splits
 * push a separator into the parent, and a leaf or branch that falls under a quarter full is
 * merged into a sibling when the two fit one page, so a shrinking tree gives its pages back.
 */
import { corrupt } from '../errors';
import {
  BRANCH_RECORD_HEADER,
  HEADER_SIZE,
  LEAF_RECORD_HEADER,
  MAX_DEPTH,
  PageType,
  VALUE_OVERFLOW,
  H_AUX,
  H_FRAG,
  H_UPPER,
  initPageHeader,
  maxInlineRecord,
  readU16,
  readU32,
  writeU16,
  writeU32,
} from '../format/layout';
import type { DbDescriptor } from '../format/meta';
import type { PageReader, PageWriter } from '../txn/pages';
import { flatLeaf } from './flat';
import {
  appendRecordCopy,
  branchChild,
  branchSearch,
  checkNode,
  checkNodeDeep,
  checkNodeForWrite,
  checkRecords,
  compactNode,
  compareKey,
  leafSearch,
  leafSearchAppend,
  nodeCount,
  nodeRoom,
  nodeUsed,
  recordSize,
  removeRecord,
  reserveRecord,
  resetNode,
  setBranchChild,
  slotAt,
} from './node';

/** Where a value's bytes are: `buf[start, end)`. Filled by the lookup functions. */
export interface ValueRef {
  buf: Uint8Array;
  start: number;
  end: number;
}

/** Pages an overflow run of a value of `length` bytes takes. */
export function overflowPages(length: number, pageSize: number): number {
  return Math.ceil((HEADER_SIZE + length) / pageSize);
}

/** Validates a descriptor's root/depth pair before any descent. */
export function checkTreeShape(d: DbDescriptor): void {
  if ((d.root === 0) !== (d.depth === 0) || d.depth > MAX_DEPTH) {
    corrupt(`a tree has root ${d.root} and depth ${d.depth}`);
  }
}

/** Finds key `k[0, kl)`; on success fills `out` with the value's bytes. */
export function treeGet(
  r: PageReader,
  d: DbDescriptor,
  k: Uint8Array,
  kl: number,
  out: ValueRef,
): boolean {
  let pgno = d.root;
  if (pgno === 0) return false;
  checkTreeShape(d);
  const ps = r.pageSize;
  for (let level = d.depth; level > 1; level--) {
    const b = r.page(pgno);
    const o = r.at;
    checkNode(b, o, ps, PageType.Branch, pgno);
    pgno = branchChild(b, o, branchSearch(b, o, ps, k, kl));
  }
  return leafGet(r, pgno, k, kl, out);
}

/**
 * treeGet for a sub-database's tree: through the flat copy of its branch levels when the
 * reader has one (src/btree/flat.ts), else by the descent.
 */
export function treeGetFlat(
  r: PageReader,
  d: DbDescriptor,
  k: Uint8Array,
  kl: number,
  out: ValueRef,
): boolean {
  // A tree of one level has no branch to skip (and an empty one no root to name it by).
  if (d.depth < 2) return treeGet(r, d, k, kl, out);
  const flat = r.flatIndexes?.lookupTree(r, d) ?? null;
  if (flat === null || flat.depth !== d.depth) return treeGet(r, d, k, kl, out);
  return leafGet(r, flatLeaf(flat, k, kl), k, kl, out);
}

/** The lookup of `k` in leaf `pgno`, reached by a descent or a flat copy. */
function leafGet(r: PageReader, pgno: number, k: Uint8Array, kl: number, out: ValueRef): boolean {
  const ps = r.pageSize;
  const b = r.page(pgno);
  const o = r.at;
  startLeafProbes(b, o, ps, pgno);
  checkNode(b, o, ps, PageType.Leaf, pgno);
  const i = leafSearch(b, o, ps, k, kl);
  leafCount[pgno & LEAF_GUESS_MASK] = nodeCount(b, o);
  if (i < 0) return false;
  leafValue(r, b, o, i, out);
  return true;
}

/**
 * Record counts of leaf pages, by page number (low bits), as the last lookup of each found
 * them; 0 when unknown.
 *
 * Why: a lookup that misses the CPU caches waits for the leaf's header (its count) before the
 * binary search can pick its first slot, then for that slot, then for the record it points
 * to, and so on down the search. startLeafProbes reads, before the header arrives, the slots
 * and records of the search's first two levels (the middle record, and the middle of each
 * half) where the remembered count puts them: up to six loads at once instead of in a row.
 * They only start cache misses early; the search reads the page as it would without them, so
 * a wrong or stale count costs nothing but the loads.
 */
const LEAF_GUESS_MASK = (1 << 15) - 1;
const leafCount = new Uint16Array(LEAF_GUESS_MASK + 1);

/** @internal Tests only: sets the remembered count of leaf `pgno`. */
export function setLeafCountForTests(pgno: number, n: number): void {
  leafCount[pgno & LEAF_GUESS_MASK] = n;
}

/** Where the early reads go: a live object's property, so the compiler cannot drop them. */
const early = { byte: 0 };

/** @internal Exported for test/engine/probes.test.ts. */
export function startLeafProbes(b: Uint8Array, o: number, pageSize: number, pgno: number): void {
  const n = leafCount[pgno & LEAF_GUESS_MASK]!;
  // A count learnt on a file of larger pages may not fit this page's slot array.
  if (n === 0 || HEADER_SIZE + 2 * n > pageSize) return;
  const mid = n >>> 1;
  // The first key byte of a record at offset r is r + 7: read it only when inside the page
  // (the page may be the file's last, and the byte after it past the end of the file).
  const end = pageSize - LEAF_RECORD_HEADER - 1;
  const s1 = o + HEADER_SIZE + 2 * mid;
  const s2 = o + HEADER_SIZE + 2 * (mid >>> 1);
  const s3 = o + HEADER_SIZE + 2 * ((mid + 1 + n) >>> 1);
  const r1 = b[s1]! | (b[s1 + 1]! << 8);
  const r2 = b[s2]! | (b[s2 + 1]! << 8);
  const r3 = s3 + 2 <= o + pageSize ? b[s3]! | (b[s3 + 1]! << 8) : 0;
  let x = 0;
  if (r1 <= end) x ^= b[o + r1 + LEAF_RECORD_HEADER]!;
  if (r2 <= end) x ^= b[o + r2 + LEAF_RECORD_HEADER]!;
  if (r3 <= end) x ^= b[o + r3 + LEAF_RECORD_HEADER]!;
  early.byte = x;
}

/** Fills `out` with the value of leaf record `i` (inline, or read from its overflow run). */
export function leafValue(r: PageReader, b: Uint8Array, o: number, i: number, out: ValueRef): void {
  const ps = r.pageSize;
  const rec = slotAt(b, o, i);
  if (rec > ps - LEAF_RECORD_HEADER) corrupt('a leaf record lies outside its page');
  const p = o + rec;
  const klen = readU16(b, p);
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
  const first = readU32(b, vp);
  const run = r.runBytes(first, overflowPages(vlen, ps), HEADER_SIZE, vlen);
  out.buf = run.buf;
  out.start = run.start;
  out.end = run.start + vlen;
}

// Scratch state of the write path. Writes are synchronous and never re-entered, so one set of
// buffers serves every tree.
const pathPg: number[] = new Array<number>(MAX_DEPTH + 1).fill(0);
const pathIdx: number[] = new Array<number>(MAX_DEPTH + 1).fill(0);
let recBuf = new Uint8Array(4096);
let sepBuf = new Uint8Array(4096);

function ensureBuffers(pageSize: number): void {
  if (recBuf.length < pageSize) {
    recBuf = new Uint8Array(pageSize);
    sepBuf = new Uint8Array(pageSize);
  }
}

/**
 * Where a put left off: the path to its leaf, valid for the next put into the same tree of the
 * same transaction while the transaction's layout counter is unchanged (no page allocated or freed,
 * no savepoint since), which rules out splits, merges and copies. Puts in key order (a bulk
 * load, a sorted batch) mostly land in the same leaf and skip the walk from the root.
 */
interface PutHint {
  d: DbDescriptor;
  layout: number;
  root: number;
  depth: number;
  pg: number[];
  idx: number[];
  /** The deepest branch level whose next record bounds the leaf from above; -1: none. */
  upper: number;
}

/**
 * The leaf that `k` belongs in, from the hint the last put into `d` left, with the path
 * restored into pathPg/pathIdx; -1 when there is no valid hint or `k` may lie outside the
 * leaf. `k` belongs in the leaf when it is not below the leaf's first key (which is not below
 * the separator that leads to the leaf) and below the next separator up the path.
 */
function hintedLeaf(w: PageWriter, d: DbDescriptor, k: Uint8Array, kl: number): number {
  const h = w.treeHint as PutHint | null;
  if (h === null || h.d !== d || h.layout !== w.layout) return -1;
  if (h.root !== d.root || h.depth !== d.depth) return -1;
  const depth = h.depth;
  const leaf = h.pg[depth - 1]!;
  const b = w.pageW(leaf);
  const o = w.at;
  if (nodeCount(b, o) === 0) return -1;
  const r = o + slotAt(b, o, 0);
  if (compareKey(k, kl, b, r + LEAF_RECORD_HEADER, readU16(b, r)) < 0) return -1;
  if (h.upper >= 0) {
    const bb = w.pageW(h.pg[h.upper]!);
    const oo = w.at;
    const rr = oo + slotAt(bb, oo, h.idx[h.upper]! + 1);
    if (compareKey(k, kl, bb, rr + BRANCH_RECORD_HEADER, readU16(bb, rr)) >= 0) return -1;
  }
  for (let l = 0; l < depth; l++) {
    pathPg[l] = h.pg[l]!;
    pathIdx[l] = h.idx[l]!;
  }
  return leaf;
}

/** Records pathPg/pathIdx, as the put into `d` that just ended left them, as `w`'s hint. */
function leaveHint(w: PageWriter, d: DbDescriptor): void {
  let h = w.treeHint as PutHint | null;
  if (h === null) {
    h = { d, layout: 0, root: 0, depth: 0, pg: [], idx: [], upper: -1 };
    w.treeHint = h;
  }
  h.d = d;
  h.layout = w.layout;
  h.root = d.root;
  h.depth = d.depth;
  h.upper = -1;
  for (let l = 0; l < d.depth; l++) {
    h.pg[l] = pathPg[l]!;
    h.idx[l] = pathIdx[l]!;
    if (l < d.depth - 1) {
      const b = w.pageW(pathPg[l]!);
      if (pathIdx[l]! < nodeCount(b, w.at) - 1) h.upper = l;
    }
  }
}

/**
 * Makes the path from the root to the leaf for key `k` writable, filling pathPg/pathIdx
 * (pathIdx of a branch level is the child taken). Returns the leaf's page number.
 */
function touchPath(w: PageWriter, d: DbDescriptor, k: Uint8Array, kl: number): number {
  const ps = w.pageSize;
  checkTreeShape(d);
  let pgno = w.touch(d.root);
  // A page copied now comes from a commit: check it in full before changing it. A page this
  // transaction already owns was checked when it was copied.
  let copied = pgno !== d.root;
  d.root = pgno;
  for (let level = 0; level < d.depth - 1; level++) {
    let b = w.pageW(pgno);
    if (copied) checkNodeDeep(b, w.at, ps, false, pgno);
    else checkNodeForWrite(b, w.at, ps, PageType.Branch, pgno);
    const i = branchSearch(b, w.at, ps, k, kl);
    pathPg[level] = pgno;
    pathIdx[level] = i;
    const child = branchChild(b, w.at, i);
    const copy = w.touch(child);
    copied = copy !== child;
    if (copied) {
      b = w.pageW(pgno);
      setBranchChild(b, w.at, i, copy);
    }
    pgno = copy;
  }
  pathPg[d.depth - 1] = pgno;
  const b = w.pageW(pgno);
  if (copied) checkNodeDeep(b, w.at, ps, true, pgno);
  else checkNodeForWrite(b, w.at, ps, PageType.Leaf, pgno);
  return pgno;
}

/**
 * The bytes of the leaf record of a `kl`-byte key and a `vl`-byte value kept inline, or 0 when
 * the record would not fit maxInlineRecord and the value goes to an overflow run: the one rule
 * buildLeafRecord follows, asked by the puts that write inline records in place themselves.
 */
export function inlineRecordSize(kl: number, vl: number, pageSize: number): number {
  const size = LEAF_RECORD_HEADER + kl + vl;
  return size <= maxInlineRecord(pageSize) ? size : 0;
}

/**
 * Builds the leaf record of `k` and `v` at the start of `out` (a page-sized buffer): the value
 * inline when inlineRecordSize allows, else in a new overflow run. Returns its size. Hash
 * buckets hold the same records (hash/table.ts).
 */
export function buildLeafRecord(
  w: PageWriter,
  out: Uint8Array,
  k: Uint8Array,
  kl: number,
  v: Uint8Array,
  vl: number,
): number {
  const inlineSize = inlineRecordSize(kl, vl, w.pageSize);
  if (inlineSize !== 0) {
    writeInlineRecord(out, 0, k, kl, v, vl);
    return inlineSize;
  }
  writeU16(out, 0, kl);
  writeU32(out, 3, vl);
  for (let i = 0; i < kl; i++) out[LEAF_RECORD_HEADER + i] = k[i]!;
  out[2] = VALUE_OVERFLOW;
  writeU32(out, LEAF_RECORD_HEADER + kl, writeOverflow(w, v, vl));
  return LEAF_RECORD_HEADER + kl + 4;
}

/** Writes the leaf record of `k` with inline value `v` at `b[p]` (hash buckets use it too). */
export function writeInlineRecord(
  b: Uint8Array,
  p: number,
  k: Uint8Array,
  kl: number,
  v: Uint8Array,
  vl: number,
): void {
  writeU16(b, p, kl);
  b[p + 2] = 0;
  writeU32(b, p + 3, vl);
  const at = p + LEAF_RECORD_HEADER;
  // The key by a byte loop, not set(subarray()): it sits in a longer scratch buffer, and a
  // subarray is an allocation per put. A value that is the whole of `v` goes by set(), which
  // costs ~16 ns whatever its length where the loop takes ~1 ns a byte (16 to 64 bytes).
  for (let i = 0; i < kl; i++) b[at + i] = k[i]!;
  if (vl === v.length) b.set(v, at + kl);
  else for (let i = 0; i < vl; i++) b[at + kl + i] = v[i]!;
}

/** Writes a value into a new overflow run; returns the run's first page. */
export function writeOverflow(w: PageWriter, v: Uint8Array, vl: number): number {
  const ps = w.pageSize;
  const pages = overflowPages(vl, ps);
  const first = w.allocRun(pages);
  const b = w.pageW(first);
  initPageHeader(b, w.at, PageType.Overflow, first, w.txnId, ps);
  writeU32(b, w.at + H_AUX, pages);
  writeU32(b, w.at + H_UPPER, 0);
  w.writeRun(first, HEADER_SIZE, vl === v.length ? v : v.subarray(0, vl));
  w.zeroRun(first, HEADER_SIZE + vl, pages * ps);
  return first;
}

/**
 * Frees the overflow run of the leaf record at byte `p` (B+tree leaf and hash bucket records
 * share the layout), if it has one.
 */
export function freeRecordOverflow(w: PageWriter, b: Uint8Array, p: number): void {
  if ((b[p + 2]! & VALUE_OVERFLOW) === 0) return;
  const klen = readU16(b, p);
  const vlen = readU32(b, p + 3);
  const first = readU32(b, p + LEAF_RECORD_HEADER + klen);
  const pages = overflowPages(vlen, w.pageSize);
  w.runBytes(first, pages, 0, 0); // validates the run before it is freed
  w.freeRun(first, pages);
}

/**
 * Inserts or replaces `k` -> `v`. Returns true when the key is new. The descriptor is updated
 * in place (root, depth, entries).
 */
export function treePut(
  w: PageWriter,
  d: DbDescriptor,
  k: Uint8Array,
  kl: number,
  v: Uint8Array,
  vl: number,
): boolean {
  const ps = w.pageSize;
  ensureBuffers(ps);
  if (d.root === 0) {
    const size = buildLeafRecord(w, recBuf, k, kl, v, vl);
    const pg = w.allocPage();
    const b = w.pageW(pg);
    initPageHeader(b, w.at, PageType.Leaf, pg, w.txnId, ps);
    appendRecordCopy(b, w.at, recBuf, 0, size);
    d.root = pg;
    d.depth = 1;
    d.entries = 1;
    return true;
  }
  let leaf = hintedLeaf(w, d, k, kl);
  // A hint that served stays valid while no page is allocated or freed; a walk makes a new one.
  const walked = leaf < 0;
  if (walked) leaf = touchPath(w, d, k, kl);
  const layout = w.layout;
  let b = w.pageW(leaf);
  let o = w.at;
  // A put the hint served is most often the next key of a run in key order: it goes last.
  let i = walked ? leafSearch(b, o, ps, k, kl) : leafSearchAppend(b, o, ps, k, kl, leaf);
  const exists = i >= 0;
  // An inline record that has room is written straight into its place in the leaf (no copy
  // through recBuf, no view object for that copy): a new key, or a value that replaces one.
  const inlineSize = inlineRecordSize(kl, vl, ps);
  const inline = inlineSize !== 0;
  let size = -1; // set once recBuf holds the record
  if (exists) {
    const r = slotAt(b, o, i);
    freeRecordOverflow(w, b, o + r);
    const oldSize = recordSize(b, o, r, true);
    if (!inline) {
      size = buildLeafRecord(w, recBuf, k, kl, v, vl);
      // Its overflow run's pages were allocated: the leaf's buffer is looked up again.
      b = w.pageW(leaf);
      o = w.at;
    }
    const newSize = inline ? inlineSize : size;
    if (newSize <= oldSize) {
      // Same key, no larger: overwrite in place; the tail of the old record becomes dead bytes.
      if (inline) writeInlineRecord(b, o + r, k, kl, v, vl);
      else b.set(recBuf.subarray(0, size), o + r);
      writeU32(b, o + H_FRAG, readU32(b, o + H_FRAG) + oldSize - newSize);
      if (walked && w.layout === layout) leaveHint(w, d);
      return false;
    }
    removeRecord(b, o, i, true);
  } else {
    i = ~i;
  }
  if (inline && nodeRoom(b, o) >= inlineSize + 2) {
    const r = reserveRecord(b, o, i, inlineSize, w.scratch, ps, true);
    writeInlineRecord(b, o + r, k, kl, v, vl);
    if (!exists) d.entries++;
    if (walked && w.layout === layout) leaveHint(w, d);
    return !exists;
  }
  if (size < 0) size = buildLeafRecord(w, recBuf, k, kl, v, vl);
  insertRecord(w, d, d.depth - 1, leaf, i, size, true);
  if (!exists) d.entries++;
  if (walked && w.layout === layout) leaveHint(w, d);
  return !exists;
}

/**
 * Inserts the record in recBuf[0, size) as slot `i` of the writable node `pgno` at path
 * level `level`, splitting upwards as needed.
 */
function insertRecord(
  w: PageWriter,
  d: DbDescriptor,
  level: number,
  pgno: number,
  i: number,
  size: number,
  leaf: boolean,
): void {
  const ps = w.pageSize;
  const b = w.pageW(pgno);
  const o = w.at;
  if (nodeRoom(b, o) >= size + 2) {
    const r = reserveRecord(b, o, i, size, w.scratch, ps, leaf);
    b.set(recBuf.subarray(0, size), o + r);
    return;
  }
  splitInsert(w, d, level, pgno, i, size, leaf);
}

/** True when every index on the path above `level` is the last of its page. */
function onRightEdge(w: PageWriter, level: number): boolean {
  for (let l = 0; l < level; l++) {
    const b = w.pageW(pathPg[l]!);
    if (pathIdx[l] !== nodeCount(b, w.at) - 1) return false;
  }
  return true;
}

/**
 * Splits full node `pgno` while inserting recBuf[0, size) as its record `i`. The left half
 * stays in `pgno`, the right half goes to a new page, and a separator is inserted into the
 * parent (or a new root).
 */
function splitInsert(
  w: PageWriter,
  d: DbDescriptor,
  level: number,
  pgno: number,
  i: number,
  size: number,
  leaf: boolean,
): void {
  const ps = w.pageSize;
  const scratch = w.scratch;
  let b = w.pageW(pgno);
  let o = w.at;
  scratch.set(b.subarray(o, o + ps), 0);
  const n = nodeCount(scratch, 0);
  const total = n + 1;
  const sizeOf = (j: number): number =>
    j === i ? size : recordSize(scratch, 0, slotAt(scratch, 0, j < i ? j : j - 1), leaf);

  // Records [0, split) stay left. Appending at the right edge of the tree (a sequential load)
  // keeps the left page full; otherwise the bytes are halved.
  let split: number;
  if (i === n && onRightEdge(w, level)) {
    split = n;
  } else {
    let all = 0;
    for (let j = 0; j < total; j++) all += sizeOf(j) + 2;
    let acc = 0;
    split = 0;
    while (split < total - 1 && acc + sizeOf(split) + 2 <= all / 2) acc += sizeOf(split++) + 2;
    if (split === 0) split = 1;
  }

  const right = w.allocPage();
  const txn = w.txnId;
  const type = leaf ? PageType.Leaf : PageType.Branch;
  if (split !== n || i !== n) {
    b = w.pageW(pgno);
    o = w.at;
    initPageHeader(b, o, type, pgno, txn, ps);
    resetNode(b, o, ps);
    for (let j = 0; j < split; j++) appendOne(b, o, j);
  }
  // Else an append at the right edge: the left page keeps exactly the records it has, where
  // they are (rewriting them would only squeeze out its dead bytes).
  const rb = w.pageW(right);
  const ro = w.at;
  initPageHeader(rb, ro, type, right, txn, ps);
  resetNode(rb, ro, ps);

  // Separator: the first key of the right half. In a branch that record moves up whole and
  // stays in the right page as its -infinity record.
  const firstBuf = split === i ? recBuf : scratch;
  const firstPos = split === i ? 0 : slotAt(scratch, 0, split < i ? split : split - 1);
  const sepLen = readU16(firstBuf, firstPos);
  const keyAt = firstPos + (leaf ? LEAF_RECORD_HEADER : BRANCH_RECORD_HEADER);
  writeU16(sepBuf, 0, sepLen);
  writeU32(sepBuf, 2, right);
  sepBuf.set(firstBuf.subarray(keyAt, keyAt + sepLen), BRANCH_RECORD_HEADER);
  let start = split;
  if (!leaf) {
    const child = readU32(firstBuf, firstPos + 2);
    const minus = new Uint8Array(BRANCH_RECORD_HEADER);
    writeU32(minus, 2, child);
    appendRecordCopy(rb, ro, minus, 0, BRANCH_RECORD_HEADER);
    start++;
  }
  for (let j = start; j < total; j++) appendOne(rb, ro, j);

  function appendOne(tb: Uint8Array, to: number, j: number): void {
    if (j === i) appendRecordCopy(tb, to, recBuf, 0, size);
    else {
      const r = slotAt(scratch, 0, j < i ? j : j - 1);
      appendRecordCopy(tb, to, scratch, r, recordSize(scratch, 0, r, leaf));
    }
  }

  const sepSize = BRANCH_RECORD_HEADER + sepLen;
  if (level === 0) {
    // The root split: a new root with two children.
    const root = w.allocPage();
    const nb = w.pageW(root);
    const no = w.at;
    initPageHeader(nb, no, PageType.Branch, root, txn, ps);
    resetNode(nb, no, ps);
    const minus = new Uint8Array(BRANCH_RECORD_HEADER);
    writeU32(minus, 2, pgno);
    appendRecordCopy(nb, no, minus, 0, BRANCH_RECORD_HEADER);
    appendRecordCopy(nb, no, sepBuf, 0, sepSize);
    d.root = root;
    d.depth++;
    if (d.depth > MAX_DEPTH) corrupt('the tree grew past its maximum depth');
    return;
  }
  recBuf.set(sepBuf.subarray(0, sepSize), 0);
  insertRecord(w, d, level - 1, pathPg[level - 1]!, pathIdx[level - 1]! + 1, sepSize, false);
}

/** Removes `k`. Returns whether it existed. */
export function treeRemove(w: PageWriter, d: DbDescriptor, k: Uint8Array, kl: number): boolean {
  // A removal can move records between leaves without allocating a page: no put hint survives.
  const h = w.treeHint as PutHint | null;
  if (h !== null) h.layout = -1;
  if (d.root === 0) return false;
  if (!treeFind(w, d, k, kl)) return false;
  const ps = w.pageSize;
  ensureBuffers(ps);
  const leaf = touchPath(w, d, k, kl);
  const b = w.pageW(leaf);
  const o = w.at;
  const i = leafSearch(b, o, ps, k, kl);
  if (i < 0) corrupt('a key vanished between two reads');
  freeRecordOverflow(w, b, o + slotAt(b, o, i));
  const lb = w.pageW(leaf);
  removeRecord(lb, w.at, i, true);
  d.entries--;
  rebalance(w, d, d.depth - 1, leaf);
  return true;
}

/** Like treeGet without producing the value. */
function treeFind(r: PageReader, d: DbDescriptor, k: Uint8Array, kl: number): boolean {
  checkTreeShape(d);
  const ps = r.pageSize;
  let pgno = d.root;
  for (let level = d.depth; level > 1; level--) {
    const b = r.page(pgno);
    checkNode(b, r.at, ps, PageType.Branch, pgno);
    pgno = branchChild(b, r.at, branchSearch(b, r.at, ps, k, kl));
  }
  const b = r.page(pgno);
  checkNode(b, r.at, ps, PageType.Leaf, pgno);
  return leafSearch(b, r.at, ps, k, kl) >= 0;
}

/**
 * After a removal from writable node `pgno` at path level `level`: collapses the root,
 * unlinks an empty node, or merges an under-full node with a sibling when both fit one page.
 */
function rebalance(w: PageWriter, d: DbDescriptor, level: number, pgno: number): void {
  const ps = w.pageSize;
  const leaf = level === d.depth - 1;
  let b = w.pageW(pgno);
  let o = w.at;
  const n = nodeCount(b, o);
  if (level === 0) {
    if (leaf && n === 0) {
      w.freePage(pgno);
      d.root = 0;
      d.depth = 0;
    } else if (!leaf && n === 1) {
      d.root = branchChild(b, o, 0);
      d.depth--;
      w.freePage(pgno);
    }
    return;
  }
  const parent = pathPg[level - 1]!;
  const j = pathIdx[level - 1]!;
  if (n === 0) {
    w.freePage(pgno);
    removeChild(w, parent, j);
    rebalance(w, d, level - 1, parent);
    return;
  }
  if (nodeUsed(b, o, ps) >= (ps - HEADER_SIZE) / 4) return;

  let pb = w.pageW(parent);
  checkRecords(pb, w.at, ps, false, parent);
  const pn = nodeCount(pb, w.at);
  if (pn < 2) return;
  // Merge the right one of (this, a sibling) into the left one: with the right sibling, else
  // with the left one. Trying only the right one left nodes emptied in key order (a removal
  // of a key range, oldest-first expiry) unmerged: their right sibling was still full when
  // they emptied, and the next one to empty looked only further right (removing 99 of each
  // 100 of 40,000 keys left 352 leaves of one key, where a fresh tree takes 7).
  let leftIdx = j + 1 < pn && mergeFits(w, parent, j, leaf) ? j : -1;
  if (leftIdx < 0 && j > 0 && mergeFits(w, parent, j - 1, leaf)) leftIdx = j - 1;
  if (leftIdx < 0) return;
  const rightIdx = leftIdx + 1;
  pb = w.pageW(parent);
  const sepLen = readU16(pb, w.at + slotAt(pb, w.at, rightIdx));
  const leftPg = branchChild(pb, w.at, leftIdx);
  const rightPg = branchChild(pb, w.at, rightIdx);

  // Keep the separator key: the parent is about to lose the record that holds it.
  ensureBuffers(ps);
  pb = w.pageW(parent);
  const sp = w.at + slotAt(pb, w.at, rightIdx);
  sepBuf.set(pb.subarray(sp + BRANCH_RECORD_HEADER, sp + BRANCH_RECORD_HEADER + sepLen), 0);

  const left = w.touch(leftPg);
  if (left !== leftPg) {
    checkNodeDeep(w.pageW(left), w.at, ps, leaf, left);
    pb = w.pageW(parent);
    setBranchChild(pb, w.at, leftIdx, left);
  }
  // Copy the right node aside (it may be a committed page we only read).
  const rsrc = w.page(rightPg);
  const scratch = w.scratch;
  scratch.set(rsrc.subarray(w.at, w.at + ps), 0);
  b = w.pageW(left);
  o = w.at;
  const need = nodeUsed(scratch, 0, ps) + (leaf ? 0 : sepLen);
  if (readU32(b, o + H_UPPER) - (HEADER_SIZE + 2 * nodeCount(b, o)) < need) {
    // compactNode uses scratch: move the right node's copy out of the way first.
    const keep = scratch.slice(0, ps);
    compactNode(b, o, scratch, ps, leaf);
    scratch.set(keep, 0);
  }
  const rn = nodeCount(scratch, 0);
  for (let r = 0; r < rn; r++) {
    const rp = slotAt(scratch, 0, r);
    if (!leaf && r === 0) {
      // The right node's -infinity record takes the separator as its key.
      writeU16(recBuf, 0, sepLen);
      writeU32(recBuf, 2, readU32(scratch, rp + 2));
      recBuf.set(sepBuf.subarray(0, sepLen), BRANCH_RECORD_HEADER);
      appendRecordCopy(b, o, recBuf, 0, BRANCH_RECORD_HEADER + sepLen);
    } else {
      appendRecordCopy(b, o, scratch, rp, recordSize(scratch, 0, rp, leaf));
    }
  }
  w.freePage(rightPg);
  removeChild(w, parent, rightIdx);
  rebalance(w, d, level - 1, parent);
}

/**
 * Whether children `leftIdx` and `leftIdx + 1` of writable branch `parent` (records checked)
 * fit one page together, with their separator key when they are branches. Checks both nodes
 * as the merge will use them.
 */
function mergeFits(w: PageWriter, parent: number, leftIdx: number, leaf: boolean): boolean {
  const ps = w.pageSize;
  const pb = w.pageW(parent);
  const po = w.at;
  const sepLen = readU16(pb, po + slotAt(pb, po, leftIdx + 1));
  const leftPg = branchChild(pb, po, leftIdx);
  const rightPg = branchChild(pb, po, leftIdx + 1);
  const lb = w.page(leftPg);
  checkNodeForWrite(lb, w.at, ps, leaf ? PageType.Leaf : PageType.Branch, leftPg);
  const leftUsed = nodeUsed(lb, w.at, ps);
  const rb = w.page(rightPg);
  checkNodeDeep(rb, w.at, ps, leaf, rightPg);
  const rightUsed = nodeUsed(rb, w.at, ps);
  return leftUsed + rightUsed + (leaf ? 0 : sepLen) <= ps - HEADER_SIZE;
}

/** Removes child record `j` from writable branch `parent`, keeping record 0 key-less. */
function removeChild(w: PageWriter, parent: number, j: number): void {
  const pb = w.pageW(parent);
  const o = w.at;
  removeRecord(pb, o, j, false);
  if (j === 0 && nodeCount(pb, o) > 0) {
    // The new first record must become -infinity: re-insert its child without the key.
    const child = branchChild(pb, o, 0);
    removeRecord(pb, o, 0, false);
    const r = reserveRecord(pb, o, 0, BRANCH_RECORD_HEADER, w.scratch, w.pageSize, false);
    writeU16(pb, o + r, 0);
    writeU32(pb, o + r + 2, child);
  }
}
