// Valid database files with every page type, a map of their pages, and the damage the hostile
// file harness (test/hostile) does to them: bit flips, junk bytes, truncation, extension,
// swapped and duplicated pages, zeroed metas, and header/record/meta fields set to extreme
// values - with the page checksum recomputed most of the time, so the damage gets past the
// CRC and has to be caught by the structural checks (invariant 5).
import * as fs from 'node:fs';
import { expect } from 'vitest';

import { open, type Database } from '../../src/index';
import { crc32c } from '../../src/format/crc32c';
import type { Rng } from './crash-common';

// Byte offsets of the on-disk format (src/format/layout.ts, src/format/meta.ts,
// src/btree/node.ts, src/txn/freelist.ts). Kept here as numbers: a hostile file is bytes.
export const HEADER = 32;
export const T_META = 1;
export const T_BRANCH = 2;
export const T_LEAF = 3;
export const T_OVERFLOW = 4;
export const T_FREE_CHUNK = 5;
export const T_FREE_DIR = 6;
const M_PAGE_SIZE = 40;
const M_TXN = 48;
const M_PAGE_COUNT = 56;
const M_FREE_DIR = 60;
const M_MAIN = 72;
const M_CATALOG = 120;

/** One value of a database in the expected content (binary values as hex). */
export type ExpectedEntry = [key: unknown, value: unknown];

/** What the reader child compares a damaged file with. */
export interface Expected {
  /** Sub-databases to read besides the unnamed one: name -> kind. */
  subs: Record<string, 'btree' | 'hash'>;
  /**
   * The encodings of every database, passed to open() and openDB() as an application would:
   * a damaged descriptor that names another encoding is then ERR_INCOMPATIBLE, not keys of
   * the wrong type.
   */
  keyEncoding: 'ordered';
  valueEncoding: 'msgpack';
  /** Content of the last commit and of the one before (a damaged newest meta falls back). */
  final: Record<string, ExpectedEntry[]>;
  prev: Record<string, ExpectedEntry[]>;
}

export interface BaseFile {
  file: string;
  bytes: Buffer;
  pageSize: number;
  expected: Expected;
  map: PageMap;
}

/** Reads a database's content into plain data (Buffers as { hex }), for expected.json. */
function contentOf(
  db: Database<any, any>,
  subs: Record<string, 'btree' | 'hash'>,
): Record<string, ExpectedEntry[]> {
  const plain = (v: unknown): unknown =>
    v instanceof Uint8Array ? { hex: Buffer.from(v).toString('hex') } : v;
  const out: Record<string, ExpectedEntry[]> = {};
  out[''] = [...db.range()].map((e) => [plain(e.key), plain(e.value)]);
  for (const [name, kind] of Object.entries(subs)) {
    const sub = db.openDB<any, any>(name, { kind });
    out[name] = [...sub.range()].map((e): ExpectedEntry => [plain(e.key), plain(e.value)]);
  }
  return out;
}

/**
 * Builds a valid file holding every page type: a main B+tree of depth >= 2 (branch and leaf
 * pages), overflow runs (values > pageSize / 4, some crossing a 64 KiB segment edge), free
 * pages listed in chunk pages and a free directory, the catalog, sub-database 'users'
 * (B+tree), 'hashed' (hash index, when this build has it) and 'cache' (an expiring hash
 * index with its expiry index, when this build has them), two metas. With `expiringMain`
 * the unnamed database expires too (open(path, { ttl })): its records
 * carry deadlines and it has an expiry index of its own.
 */
export async function buildBase(
  file: string,
  pageSize: number,
  trim = false,
  expiringMain = false,
): Promise<BaseFile> {
  fs.rmSync(file, { force: true });
  fs.rmSync(`${file}-lock`, { force: true });
  // Deadlines years away: the entries stay live.
  const db = open<any, any>(file, {
    pageSize,
    ...(expiringMain ? { ttl: 10 * 365 * 86_400_000 } : {}),
  });
  expect(db.expiring).toBe(expiringMain);
  const subs: Record<string, 'btree' | 'hash'> = { users: 'btree' };
  const users = db.openDB<string, any>('users');
  let hashed: typeof users | null = null;
  try {
    hashed = db.openDB<string, any>('hashed', { kind: 'hash' });
    subs.hashed = 'hash';
  } catch {
    hashed = null; // no hash index in this build
  }
  // An expiring sub-database (deadlines years away: its entries stay live): its values carry
  // deadlines and its expiry index is a B+tree of its own, both for the mutants to damage.
  let cache: typeof users | null = null;
  try {
    cache = db.openDB<string, any>('cache', { kind: 'hash', ttl: 10 * 365 * 86_400_000 });
    subs.cache = 'hash';
  } catch {
    cache = null; // no expiring sub-databases in this build
  }
  db.transactionSync((txn) => {
    for (let i = 0; i < 500; i++)
      txn.put(`m${String(i).padStart(4, '0')}`, { i, s: 'v'.repeat(20 + (i % 40)) });
    for (let i = 0; i < 6; i++) txn.put(['big', i], Buffer.alloc(3000 + i * 7000, 0x41 + i));
    for (let i = 0; i < 150; i++) txn.db(users).put(`u${i}`, { name: `user ${i}`, n: i });
    txn.db(users).put('avatar', Buffer.alloc(9000, 7));
    if (hashed !== null) for (let i = 0; i < 120; i++) txn.db(hashed).put(`h${i}`, i * 3);
    if (cache !== null) for (let i = 0; i < 200; i++) txn.db(cache).put(`c${i}`, { c: i });
  });
  // Free pages: overwrite and remove, a few commits so chunks are both pending and reusable.
  for (let round = 0; round < 3; round++) {
    db.transactionSync((txn) => {
      for (let i = round; i < 500; i += 7) txn.remove(`m${String(i).padStart(4, '0')}`);
      txn.put(['big', round], Buffer.alloc(5000 + round * 100, 0x61 + round));
      for (let i = 0; i < 150; i += 10)
        txn.db(users).put(`u${i}`, { name: `user ${i}`, n: i, round });
    });
  }
  db.putSync(['num', 1.5], -2);
  const prev = contentOf(db, subs);
  db.putSync('last', { the: 'last commit' });
  const final = contentOf(db, subs);
  await db.close();
  let bytes = fs.readFileSync(file);
  if (trim) {
    // Drop the preallocated tail: a file may end right after its last used page.
    bytes = bytes.subarray(0, pageMap(bytes, pageSize).pageCount * pageSize);
    fs.writeFileSync(file, bytes);
  }
  return {
    file,
    bytes,
    pageSize,
    expected: { subs, keyEncoding: 'ordered', valueEncoding: 'msgpack', final, prev },
    map: pageMap(bytes, pageSize),
  };
}

/** What each page of a valid file is. */
export interface PageMap {
  pageSize: number;
  pageCount: number;
  filePages: number;
  /** Slot of the newest meta. */
  newest: number;
  /** Page numbers by type byte, for pages in use (reachable, or a meta). */
  used: Map<number, number[]>;
  /** Every page in use. */
  usedPages: number[];
  free: Set<number>;
  /** First pages of overflow runs in use -> run length. */
  runs: Map<number, number>;
}

function u16(b: Uint8Array, o: number): number {
  return b[o]! | (b[o + 1]! << 8);
}
function u32(b: Uint8Array, o: number): number {
  return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
}

/** Maps the pages of a valid file (free ones from its freelist, the rest by type byte). */
export function pageMap(bytes: Uint8Array, ps: number): PageMap {
  const txn = (slot: number): number => u32(bytes, slot * ps + M_TXN);
  const newest = txn(1) > txn(0) ? 1 : 0;
  const mo = newest * ps;
  const pageCount = u32(bytes, mo + M_PAGE_COUNT);
  const free = new Set<number>();
  for (let d = u32(bytes, mo + M_FREE_DIR); d !== 0; d = u32(bytes, d * ps + 24)) {
    const n = u16(bytes, d * ps + 6);
    for (let i = 0; i < n; i++) {
      const e = d * ps + HEADER + 16 * i;
      const chunk = u32(bytes, e);
      const count = u32(bytes, e + 4);
      for (let j = 0; j < count; j++) free.add(u32(bytes, chunk * ps + HEADER + 4 * j));
    }
  }
  // The inline free list of a version-2 meta: groups of (u32 count, u64 txn, count pgnos)
  // after the written list (docs/FORMAT.md).
  if (u32(bytes, mo + 36) >= 2) {
    let at = mo + 176 + 8 * u32(bytes, mo + 168);
    for (let g = u32(bytes, mo + 172); g > 0; g--) {
      const n = u32(bytes, at);
      at += 12;
      for (let j = 0; j < n; j++, at += 4) free.add(u32(bytes, at));
    }
  }
  const used = new Map<number, number[]>();
  const runs = new Map<number, number>();
  const usedPages: number[] = [];
  for (let p = 0; p < pageCount; p++) {
    if (free.has(p)) continue;
    const type = bytes[p * ps + 4]!;
    usedPages.push(p);
    if (type === T_OVERFLOW) {
      const pages = u32(bytes, p * ps + 24);
      runs.set(p, pages);
      for (let i = 1; i < pages; i++) usedPages.push(p + i);
      if (!used.has(type)) used.set(type, []);
      used.get(type)!.push(p);
      p += pages - 1;
      continue;
    }
    if (!used.has(type)) used.set(type, []);
    used.get(type)!.push(p);
  }
  return {
    pageSize: ps,
    pageCount,
    filePages: Math.floor(bytes.length / ps),
    newest,
    used,
    usedPages,
    free,
    runs,
  };
}

/** Recomputes the checksum of page `p` (of its whole run for an overflow head). */
export function fixChecksum(b: Uint8Array, ps: number, p: number): void {
  const o = p * ps;
  if (o + ps > b.length) return;
  let end = o + ps;
  if (b[o + 4] === T_OVERFLOW) {
    const pages = u32(b, o + 24);
    if (pages < 1 || o + pages * ps > b.length) return;
    end = o + pages * ps;
  }
  const crc = crc32c(b, o + 4, end);
  put32(b, o, crc);
  // A meta that lists page p (a one-flush commit records each page's checksum) must agree,
  // or open() passes over that commit instead of reading the forgery.
  for (let slot = 0; slot < 2; slot++) {
    const m = slot * ps;
    if (p < 2 || m + ps > b.length || u32(b, m + 32) !== 0x31564b4d) continue;
    const count = Math.min(u32(b, m + 168), Math.floor((ps - 176) / 8));
    let listed = false;
    for (let j = 0; j < count; j++) {
      if (u32(b, m + 176 + 8 * j) === p) {
        put32(b, m + 180 + 8 * j, crc);
        listed = true;
      }
    }
    if (listed) put32(b, m, crc32c(b, m + 4, m + ps));
  }
}

function put16(b: Uint8Array, o: number, v: number): void {
  if (o < 0 || o + 2 > b.length) return;
  b[o] = v;
  b[o + 1] = v >>> 8;
}
function put32(b: Uint8Array, o: number, v: number): void {
  if (o < 0 || o + 4 > b.length) return;
  b[o] = v;
  b[o + 1] = v >>> 8;
  b[o + 2] = v >>> 16;
  b[o + 3] = v >>> 24;
}

/** A damaged copy of a base file, and what was done to it. */
export interface Mutant {
  bytes: Buffer;
  desc: string;
  /**
   * True when a page checksum was recomputed after the change: a forgery rather than damage.
   * It may change a value into another valid one, which no checksum can tell.
   */
  forged: boolean;
}

/** The extreme values tried for a numeric field. */
function extremes(map: PageMap): number[] {
  const { pageCount, pageSize } = map;
  return [
    0,
    1,
    2,
    3,
    0x7f,
    0xff,
    0x7fff,
    0x8000,
    0xfffe,
    0xffff,
    0x1_0000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_fffe,
    0xffff_ffff,
    pageCount - 1,
    pageCount,
    pageCount + 1,
    map.filePages,
    map.filePages + 1,
    pageSize - 1,
    pageSize,
    pageSize + 1,
    HEADER - 1,
    HEADER,
    pageSize / 4,
  ];
}

/** Offsets of the numeric fields of page `p` worth setting to extremes: [offset, width, name]. */
function fieldsOf(b: Uint8Array, map: PageMap, p: number, r: Rng): [number, 2 | 4 | 1, string][] {
  const ps = map.pageSize;
  const o = p * ps;
  const type = b[o + 4]!;
  const f: [number, 2 | 4 | 1, string][] = [
    [o + 4, 1, 'type'],
    [o + 6, 2, 'count'],
    [o + 8, 4, 'pgno'],
    [o + 20, 4, 'upper'],
    [o + 24, 4, 'aux'],
    [o + 28, 4, 'frag'],
  ];
  if (type === T_META) {
    f.push([o + 36, 4, 'version'], [o + M_PAGE_SIZE, 4, 'pageSize'], [o + M_TXN, 4, 'txnId']);
    f.push([o + M_TXN + 4, 4, 'txnIdHi'], [o + M_PAGE_COUNT, 4, 'pageCount']);
    f.push([o + M_FREE_DIR, 4, 'freeDir'], [o + 64, 4, 'freePages']);
    for (const [base, name] of [
      [M_MAIN, 'main'],
      [M_CATALOG, 'catalog'],
    ] as const) {
      f.push([o + base, 1, `${name}.kind`], [o + base + 1, 1, `${name}.keyEncoding`]);
      f.push([o + base + 2, 1, `${name}.valueEncoding`], [o + base + 4, 4, `${name}.root`]);
      f.push([o + base + 8, 4, `${name}.depth`], [o + base + 16, 4, `${name}.entries`]);
      f.push([o + base + 20, 4, `${name}.entriesHi`]);
      for (let i = 0; i < 6; i++) f.push([o + base + 24 + 4 * i, 4, `${name}.aux${i}`]);
    }
  } else if (type === T_BRANCH || type === T_LEAF) {
    const n = Math.min(u16(b, o + 6), (ps - HEADER) >> 1);
    for (let i = 0; i < n; i++) {
      f.push([o + HEADER + 2 * i, 2, `slot${i}`]);
      const r = u16(b, o + HEADER + 2 * i);
      if (r + 11 > ps) continue;
      f.push([o + r, 2, `rec${i}.klen`]);
      if (type === T_BRANCH) f.push([o + r + 2, 4, `rec${i}.child`]);
      else {
        f.push([o + r + 2, 1, `rec${i}.flags`], [o + r + 3, 4, `rec${i}.vlen`]);
        const klen = u16(b, o + r);
        if (b[o + r + 2]! & 1 && r + 7 + klen + 4 <= ps)
          f.push([o + r + 7 + klen, 4, `rec${i}.overflowPgno`]);
      }
    }
  } else if (type === T_FREE_DIR) {
    const n = Math.min(u16(b, o + 6), (ps - HEADER) >> 4);
    for (let i = 0; i < n; i++) {
      const e = o + HEADER + 16 * i;
      f.push([e, 4, `entry${i}.chunk`], [e + 4, 4, `entry${i}.count`], [e + 8, 4, `entry${i}.txn`]);
    }
  } else if (type === T_FREE_CHUNK) {
    const n = Math.min(u16(b, o + 6), (ps - HEADER) >> 2);
    for (let i = 0; i < n; i++) f.push([o + HEADER + 4 * i, 4, `entry${i}`]);
  } else {
    // Hash directory/bucket pages and anything else: a few words of the body.
    for (let i = 0; i < 8; i++) {
      const at = HEADER + 4 * r.int((ps - HEADER) / 4);
      f.push([o + at, 4, `word@${at}`]);
    }
  }
  return f;
}

const TYPE_NAMES: Record<number, string> = {
  1: 'meta',
  2: 'branch',
  3: 'leaf',
  4: 'overflow',
  5: 'free-chunk',
  6: 'free-dir',
  7: 'hash-dir',
  8: 'hash-bucket',
};

function describePage(map: PageMap, bytes: Uint8Array, p: number): string {
  const t = bytes[p * map.pageSize + 4];
  return `page ${p} (${TYPE_NAMES[t ?? 0] ?? (map.free.has(p) ? 'free' : `type ${t}`)})`;
}

/** A random page in use, most often one of a random type (so rare types get their share). */
function usedPage(r: Rng, map: PageMap): number {
  if (r.chance(0.7)) {
    const types = [...map.used.keys()];
    const list = map.used.get(r.pick(types))!;
    return r.pick(list);
  }
  return r.pick(map.usedPages);
}

/** One damaged copy of `base`, chosen by `r`. */
export function mutate(base: BaseFile, r: Rng): Mutant {
  const map = base.map;
  const ps = map.pageSize;
  const b = Buffer.from(base.bytes);
  const kinds = [
    'bits',
    'bits',
    'bytes',
    'field',
    'field',
    'field',
    'field',
    'truncate',
    'extend',
    'swap',
    'duplicate',
    'zero',
    'metas',
    'stale',
  ] as const;
  const kind = r.pick(kinds);
  switch (kind) {
    case 'bits': {
      const n = r.pick([1, 1, 1, 2, 3, 8, 64]);
      const inUsed = r.chance(0.8);
      const where: string[] = [];
      for (let i = 0; i < n; i++) {
        const p = inUsed ? usedPage(r, map) : r.int(map.filePages);
        const bit = p * ps * 8 + r.int(ps * 8);
        b[bit >> 3] ^= 1 << (bit & 7);
        where.push(`${describePage(map, base.bytes, p)} bit ${bit - p * ps * 8}`);
      }
      return { bytes: b, desc: `flip ${n} bit(s): ${where.slice(0, 4).join(', ')}`, forged: false };
    }
    case 'bytes': {
      const p = usedPage(r, map);
      const n = 1 + r.int(16);
      for (let i = 0; i < n; i++) b[p * ps + r.int(ps)] = r.int(256);
      const fix = r.chance(0.5);
      if (fix) fixChecksum(b, ps, p);
      return {
        bytes: b,
        desc: `${n} junk byte(s) in ${describePage(map, base.bytes, p)}${fix ? ', checksum fixed' : ''}`,
        forged: fix,
      };
    }
    case 'field': {
      const p = usedPage(r, map);
      const fields = fieldsOf(b, map, p, r);
      const [off, width, name] = r.pick(fields);
      let v = r.chance(0.85) ? r.pick(extremes(map)) : r.int(0x1_0000_0000);
      if (width === 1) {
        v &= 0xff;
        b[off] = v;
      } else if (width === 2) {
        v &= 0xffff;
        put16(b, off, v);
      } else put32(b, off, v);
      const fix = r.chance(0.75);
      if (fix) fixChecksum(b, ps, p);
      return {
        bytes: b,
        desc: `${describePage(map, base.bytes, p)} ${name} = ${v}${fix ? ', checksum fixed' : ''}`,
        forged: fix,
      };
    }
    case 'truncate': {
      const choices = [
        0,
        1,
        100,
        4095,
        ps,
        2 * ps - 1,
        2 * ps,
        2 * ps + 1,
        (map.pageCount - 1) * ps,
        map.pageCount * ps - 1,
        r.int(b.length),
        r.int(map.pageCount) * ps,
        r.int(map.pageCount) * ps + 1 + r.int(ps - 1),
      ];
      const len = Math.max(0, Math.min(b.length - 1, r.pick(choices)));
      return {
        bytes: b.subarray(0, len),
        desc: `truncate to ${len} bytes (${len / ps} pages)`,
        forged: false,
      };
    }
    case 'extend': {
      const n = r.pick([1, 100, ps, 3 * ps, ps + 7]);
      const junk = Buffer.alloc(n);
      for (let i = 0; i < n; i++) junk[i] = r.chance(0.5) ? 0 : r.int(256);
      return { bytes: Buffer.concat([b, junk]), desc: `extend by ${n} junk bytes`, forged: false };
    }
    case 'swap': {
      const [p, q] = [usedPage(r, map), r.chance(0.7) ? usedPage(r, map) : r.int(map.filePages)];
      const a = Buffer.from(b.subarray(p * ps, (p + 1) * ps));
      b.copy(b, p * ps, q * ps, (q + 1) * ps);
      a.copy(b, q * ps);
      return {
        bytes: b,
        desc: `swap ${describePage(map, base.bytes, p)} and ${describePage(map, base.bytes, q)}`,
        forged: false,
      };
    }
    case 'duplicate': {
      const [p, q] = [r.int(map.filePages), usedPage(r, map)];
      b.copy(b, q * ps, p * ps, (p + 1) * ps);
      return {
        bytes: b,
        desc: `copy ${describePage(map, base.bytes, p)} over ${describePage(map, base.bytes, q)}`,
        forged: false,
      };
    }
    case 'zero': {
      const p = usedPage(r, map);
      b.fill(0, p * ps, (p + 1) * ps);
      return { bytes: b, desc: `zero ${describePage(map, base.bytes, p)}`, forged: false };
    }
    case 'metas': {
      const which = r.pick(['newest', 'older', 'both'] as const);
      const slots = which === 'both' ? [0, 1] : [which === 'newest' ? map.newest : 1 - map.newest];
      for (const s of slots) b.fill(0, s * ps, (s + 1) * ps);
      return {
        bytes: b,
        desc: `zero the ${which} meta${which === 'both' ? 's' : ''}`,
        forged: false,
      };
    }
    case 'stale': {
      // A page replaced by a free page (an older version of some page): a "lost write".
      const free = [...map.free];
      if (free.length === 0) return mutate(base, r);
      const q = usedPage(r, map);
      const p = r.pick(free);
      b.copy(b, q * ps, p * ps, (p + 1) * ps);
      return {
        bytes: b,
        desc: `free page ${p} (a stale copy) written over ${describePage(map, base.bytes, q)}`,
        forged: false,
      };
    }
  }
}
