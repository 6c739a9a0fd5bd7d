/**
 * `db.check()`: every page of the latest commit is either reachable exactly once (meta,
 * index pages, overflow runs, freelist pages) or listed free exactly once; nothing else.
 */
import { TreeCursor } from './btree/cursor';
import { MapKVError } from './errors';
import { crc32c } from './format/crc32c';
import {
  type DbDescriptor,
  DESCRIPTOR_SIZE,
  DbKind,
  readDescriptor,
  readMeta,
} from './format/meta';
import { EXPIRING_FLAG, expiryIndexKey, expiryIndexOf, storedExpiry } from './expiry';
import { treeGet } from './btree/btree';
import { H_CHECKSUM, readU32 } from './format/layout';
import { type Index, type IndexCheck, indexFor } from './indexes';
import type { Environment } from './txn/env';
import { readChunk, readFreeList } from './txn/freelist';
import { sleep } from './txn/lockfile';
import type { SnapshotReader } from './txn/snapshot';

/** The result of `check()`. */
export interface CheckResult {
  /** True when no problem was found. */
  ok: boolean;
  /** One line per problem found (at most 1000), empty when `ok`. */
  problems: string[];
}

const MAX_PROBLEMS = 1000;

export function checkEnvironment(env: Environment, r: SnapshotReader): CheckResult {
  const meta = r.meta;
  const problems: string[] = [];
  const seen = new Uint8Array(meta.pageCount);
  seen[0] = 1;
  seen[1] = 1;
  const c: IndexCheck = {
    visit(pgno, pages, what) {
      for (let p = pgno; p < pgno + pages; p++) {
        if (p < 2 || p >= meta.pageCount) {
          this.problem(`${what} page ${p} is outside the file`);
          return;
        }
        if (seen[p]) this.problem(`page ${p} (${what}) is reachable twice or both used and free`);
        seen[p] = 1;
      }
    },
    problem(message) {
      if (problems.length < MAX_PROBLEMS) problems.push(message);
    },
  };
  const guard = (label: string, fn: () => void): void => {
    try {
      fn();
    } catch (err) {
      if (err instanceof MapKVError && err.code === 'ERR_CORRUPT')
        c.problem(`${label}: ${err.message}`);
      else throw err;
    }
  };

  guard('main database', () => {
    checkDatabase(indexFor(meta.main.kind), r, meta.main, c, 'main database');
  });
  guard('catalog', () => {
    indexFor(meta.catalog.kind).check(r, meta.catalog, c, 'catalog');
    if (meta.catalog.root === 0) return;
    const cur = new TreeCursor(r, meta.catalog, meta.pageCount);
    const ref = { buf: new Uint8Array(0), start: 0, end: 0 };
    for (let ok = cur.seek(null, 0); ok; ok = cur.next()) {
      const name = Buffer.from(
        cur.keyBuf().subarray(cur.keyStart(), cur.keyStart() + cur.keyLength()),
      ).toString('utf8');
      cur.value(ref);
      if (ref.end - ref.start !== DESCRIPTOR_SIZE) {
        c.problem(`catalog entry '${name}' has the wrong size`);
        continue;
      }
      const d = readDescriptor(ref.buf, ref.start);
      guard(`database '${name}'`, () => {
        let index;
        try {
          index = indexFor(d.kind);
        } catch {
          c.problem(`database '${name}' has an unknown kind ${d.kind}`);
          return;
        }
        checkDatabase(index, r, d, c, `database '${name}'`);
      });
    }
  });
  guard('freelist', () => {
    const { chunks, dirPages } = readFreeList(env.pager, meta);
    for (const p of dirPages) {
      c.visit(p, 1, 'free directory');
      verify(env, p, c);
    }
    let free = 0;
    for (const chunk of chunks) {
      // An inline group (the meta's) has no page of its own.
      if (chunk.pages === undefined) {
        c.visit(chunk.pgno, 1, 'free chunk');
        verify(env, chunk.pgno, c);
      }
      for (const p of readChunk(env.pager, chunk, meta.pageCount)) c.visit(p, 1, 'free');
      free += chunk.count;
    }
    if (free !== meta.freePages)
      c.problem(`the meta counts ${meta.freePages} free pages, the freelist lists ${free}`);
  });
  // The other meta slot is the fallback commit: damage there is damage too (a blank slot,
  // as a fresh backup leaves it, is not).
  const other = 1 - (meta.txnId % 2);
  const { bytes: ov, reading } = readOtherMeta(env, other);
  const passed = env.passedOver();
  if (passed !== null) {
    // A one-flush commit whose pages did not all reach the disk: a crash cut its flush short,
    // or one of its pages is damaged since. The two look alike, so say both.
    c.problem(
      `meta page ${passed.slot} holds txn ${passed.txnId}, passed over at open: a page it ` +
        `lists does not hold what that commit wrote (a crash during its flush, or damage); ` +
        `the database is at txn ${meta.txnId}`,
    );
  } else if (!reading.ok && reading.reason !== 'not-mkv')
    c.problem(`meta page ${other}: ${reading.detail}`);
  else if (!reading.ok && ov.some((x) => x !== 0)) {
    c.problem(`meta page ${other} is neither a meta page nor blank`);
  }
  let lost = 0;
  for (let p = 2; p < meta.pageCount; p++) {
    if (!seen[p] && lost++ < 20) c.problem(`page ${p} is neither reachable nor free`);
  }
  if (lost > 20) c.problem(`${lost} pages in all are neither reachable nor free`);
  return { ok: problems.length === 0, problems };
}

/** Reads of the other meta slot before a failed one counts as damage. */
const META_READS = 5;

/**
 * A private copy of meta slot `slot` and what it holds. The slot is where the next commit's
 * meta goes, so another handle or process may be writing it while check() reads: a copy taken
 * mid-write fails its checksum without anything being wrong. A write is a single pwrite, done
 * in microseconds, so a slot that still fails after META_READS copies a millisecond apart is
 * taken for what it is.
 */
function readOtherMeta(
  env: Environment,
  slot: number,
): { bytes: Uint8Array; reading: ReturnType<typeof readMeta> } {
  const ps = env.pageSize;
  for (let attempt = 1; ; attempt++) {
    const view = env.pager.readView(slot);
    const at = env.pager.offsetOf(slot);
    const bytes = view.slice(at, at + ps);
    const reading = readMeta(bytes, 0, slot, ps);
    if (reading.ok || attempt === META_READS) return { bytes, reading };
    sleep(1);
  }
}

function verify(env: Environment, pgno: number, c: IndexCheck): void {
  const b = env.pager.readView(pgno);
  const o = env.pager.offsetOf(pgno);
  if (readU32(b, o + H_CHECKSUM) !== crc32c(b, o + 4, o + env.pageSize))
    c.problem(`page ${pgno} fails its checksum`);
}

/** Checks database `d` (`label` names it in problems), and its expiry index when it expires. */
function checkDatabase(
  index: Index,
  r: SnapshotReader,
  d: DbDescriptor,
  c: IndexCheck,
  label: string,
): void {
  index.check(r, d, c, label);
  if ((d.valueEncoding & EXPIRING_FLAG) !== 0) checkExpiries(index, r, d, c, label);
}

/**
 * Checks the expiring database of `d` (`label` names it in problems): every value begins with
 * a readable deadline (expiry.ts), and its expiry index holds exactly one entry per record with
 * a deadline, under that deadline (its pages are visited as the database's).
 */
function checkExpiries(
  index: Index,
  r: SnapshotReader,
  d: DbDescriptor,
  c: IndexCheck,
  label: string,
): void {
  const x = expiryIndexOf(d);
  indexFor(DbKind.BTree).check(r, x, c, `expiry index of ${label}`);
  const ref = { buf: new Uint8Array(0), start: 0, end: 0 };
  const found = { buf: new Uint8Array(0), start: 0, end: 0 };
  let bad = 0;
  let dated = 0;
  let missing = 0;
  if (d.root !== 0) {
    const cur = index.cursor(r, d, r.pageCountLimit());
    for (let ok = cur.seek(null, 0); ok; ok = cur.next()) {
      cur.value(ref);
      let at: number;
      try {
        at = storedExpiry(ref);
      } catch {
        bad++;
        continue;
      }
      if (at === 0) continue;
      dated++;
      const ks = cur.keyStart();
      const ik = expiryIndexKey(
        at,
        cur.keyBuf().subarray(ks, ks + cur.keyLength()),
        cur.keyLength(),
      );
      if (!treeGet(r, x, ik, ik.length, found)) missing++;
    }
  }
  if (bad > 0) c.problem(`${label}: ${bad} values have no valid expiry time`);
  if (missing > 0) c.problem(`${label}: ${missing} deadlines are missing from its expiry index`);
  if (x.entries !== dated) {
    c.problem(
      `${label}: its expiry index counts ${x.entries} entries, ${dated} records have a deadline`,
    );
  }
}
