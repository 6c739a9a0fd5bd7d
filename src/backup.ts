/**
 * `db.backup(path)`: a consistent copy of one pinned snapshot, written while commits go on.
 *
 * Plain copy: the pages below the snapshot's page count are copied as they are (pages the
 * snapshot reaches cannot change while it is pinned; free pages may, and stay free in the
 * copy), then the snapshot's meta is written into its slot and the other slot is left blank.
 * Compact copy: every database is re-inserted in key order into a fresh file, so it holds no
 * free pages and full leaves.
 *
 * Either copy is written to a temporary file beside `path` and renamed onto it once complete
 * and flushed: `path` never holds a partial copy, a failed backup leaves what was there, and
 * two backups to one path each write their own file (the last rename wins) instead of one
 * deleting or overwriting the other's.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, promises as fsp } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { TreeCursor } from './btree/cursor';
import { EXPIRING_FLAG, noteExpiry, storedExpiry } from './expiry';
import type { ValueRef } from './btree/btree';
import { MapKVError } from './errors';
import {
  DESCRIPTOR_SIZE,
  type DbDescriptor,
  emptyDescriptor,
  readDescriptor,
  writeDescriptor,
  writeMeta,
} from './format/meta';
import { treePut } from './btree/btree';
import { indexFor } from './indexes';
import { MappedStorage } from './storage/mapped';
import { Environment } from './txn/env';
import type { SnapshotReader } from './txn/snapshot';

/** Options of `backup`. An option left out or `undefined` takes its default. */
export interface BackupOptions {
  /** Rebuild the copy densely instead of copying pages. Default false. */
  compact?: boolean | undefined;
}

const COPY_CHUNK = 1 << 20;
const ENTRIES_PER_TURN = 10_000;

export async function backupEnvironment(
  env: Environment,
  r: SnapshotReader,
  path: string,
  opts: BackupOptions,
  assertOpen: () => void,
): Promise<void> {
  if (typeof opts !== 'object' || opts === null)
    throw new MapKVError('ERR_BAD_OPTION', 'backup options must be an object');
  if (opts.compact !== undefined && typeof opts.compact !== 'boolean') {
    throw new MapKVError('ERR_BAD_OPTION', 'compact must be a boolean');
  }
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true });
  const temp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.backup`);
  try {
    if (opts.compact === true) await compactCopy(env, r, temp, assertOpen);
    else await pageCopy(env, r, temp, assertOpen);
    assertOpen();
    await fsp.rename(temp, path);
  } catch (err) {
    await fsp.rm(temp, { force: true });
    // A close() during the copy unmaps the source under it: whatever the copy then tripped on
    // (a page read as zeros looks damaged), the cause is the close.
    assertOpen();
    throw err;
  }
  await syncDirectory(dir);
}

/** Makes a rename in `dir` durable (Linux: fsync of the directory). */
async function syncDirectory(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function pageCopy(
  env: Environment,
  r: SnapshotReader,
  path: string,
  assertOpen: () => void,
): Promise<void> {
  const ps = env.pageSize;
  const meta = r.meta;
  const fh = await fsp.open(path, 'wx');
  try {
    const metaPages = new Uint8Array(2 * ps);
    const slot = meta.txnId % 2;
    writeMeta(metaPages, slot * ps, slot, meta);
    await fh.write(metaPages, 0, metaPages.length, 0);
    const total = meta.pageCount * ps;
    for (let pos = 2 * ps; pos < total; pos += COPY_CHUNK) {
      assertOpen();
      const n = Math.min(COPY_CHUNK, total - pos);
      const { buf, start } = env.pager.runBytes(0, pos, n);
      // Copy before yielding: the view is a mapping, and a write must read a stable buffer.
      const bytes = buf.slice(start, start + n);
      await fh.write(bytes, 0, n, pos);
    }
    await fh.datasync();
  } finally {
    await fh.close();
  }
}

/**
 * How much a compact copy builds in memory before it commits what it has to the copy and goes
 * on in a new transaction. One transaction for the whole copy held all of it in heap buffers
 * (an 886 MiB database took 885 MiB) and wrote it in one synchronous commit that blocked the
 * event loop for seconds. Each step ends with a commit of at most this much, and costs the
 * copy a few free pages: the right edge of the tree being built, which the next step copies on
 * write. A mutable object, so tests can make steps small.
 */
export const compactStep = { bytes: 16 << 20 };

async function compactCopy(
  env: Environment,
  r: SnapshotReader,
  path: string,
  assertOpen: () => void,
): Promise<void> {
  assertOpen(); // the caller awaited since it last checked
  // Nothing reads the copy before the rename, so its steps need no flush: one fdatasync at
  // the end makes all of it durable.
  const storage = MappedStorage.open(path);
  let target: Environment;
  try {
    target = Environment.open(storage, {
      pageSize: env.pageSize,
      sync: 'none',
      verifyChecksums: false,
    });
  } catch (err) {
    // Creating the copy failed (a full disk at its first grow): its file stays open otherwise.
    storage.close();
    throw err;
  }
  let pageCount: number;
  try {
    let txn = target.beginWrite();
    /** The sub-database being copied, whose catalog entry a step must write before it commits. */
    let copying: { name: Uint8Array; desc: DbDescriptor } | null = null;
    const putCatalog = (name: Uint8Array, desc: DbDescriptor): void => {
      const vb = new Uint8Array(DESCRIPTOR_SIZE);
      writeDescriptor(vb, 0, desc);
      treePut(txn, txn.catalog, name, name.length, vb, vb.length);
    };
    /**
     * Commits the copy so far once it holds a step's worth of pages. Every page built must be
     * reachable from that commit (or it would be neither used nor free): the main database's
     * are, through the meta; a sub-database's through its catalog entry, written here first.
     */
    const stepIfFull = (): void => {
      if (txn.allocatedBytes < compactStep.bytes) return;
      if (copying !== null) putCatalog(copying.name, copying.desc);
      target.commit(txn);
      txn = target.beginWrite();
    };
    const ref: ValueRef = { buf: new Uint8Array(0), start: 0, end: 0 };
    /** Copies `from` into the descriptor `to()` names (the current transaction's, for main). */
    const copyIndex = async (
      from: DbDescriptor,
      to: () => DbDescriptor,
      expiring = false,
    ): Promise<void> => {
      assertOpen();
      const index = indexFor(from.kind);
      const cur = index.cursor(r, from, r.pageCount);
      let n = 0;
      for (let ok = cur.seek(null, 0); ok; ok = cur.next()) {
        const kb = cur.keyBuf().slice(cur.keyStart(), cur.keyStart() + cur.keyLength());
        cur.value(ref);
        const vb = ref.buf.subarray(ref.start, ref.end);
        // An expiring database's expiry index is built again beside its records.
        const at = expiring ? storedExpiry(ref) : 0;
        index.put(txn, to(), kb, kb.length, vb, vb.length);
        if (at !== 0) noteExpiry(txn, to(), kb, kb.length, 0, at);
        // The cursor reads the source snapshot, which a step does not touch.
        stepIfFull();
        if (++n % ENTRIES_PER_TURN === 0) {
          await yieldToLoop();
          assertOpen();
        }
      }
    };
    const meta = r.meta;
    txn.main.keyEncoding = meta.main.keyEncoding;
    txn.main.valueEncoding = meta.main.valueEncoding;
    await copyIndex(meta.main, () => txn.main, (meta.main.valueEncoding & EXPIRING_FLAG) !== 0);
    if (meta.catalog.root !== 0) {
      const cur = new TreeCursor(r, meta.catalog, r.pageCount);
      const named: Array<[Uint8Array, DbDescriptor]> = [];
      for (let ok = cur.seek(null, 0); ok; ok = cur.next()) {
        const name = cur.keyBuf().slice(cur.keyStart(), cur.keyStart() + cur.keyLength());
        cur.value(ref);
        if (ref.end - ref.start !== DESCRIPTOR_SIZE)
          throw new MapKVError('ERR_CORRUPT', 'a catalog entry has the wrong size');
        named.push([name, readDescriptor(ref.buf, ref.start)]);
      }
      for (const [name, d] of named) {
        const copy = emptyDescriptor(d.kind, d.keyEncoding, d.valueEncoding);
        copying = { name, desc: copy };
        await copyIndex(d, () => copy, (d.valueEncoding & EXPIRING_FLAG) !== 0);
        copying = null;
        putCatalog(name, copy);
      }
    }
    target.commit(txn);
    pageCount = txn.pageCount;
    target.storage.sync();
  } finally {
    target.close();
  }
  // The file grew in steps of up to an eighth of its size; a compact copy ends at its last page.
  // (Were this lost in a crash, the longer file would still be valid: zeros past the pages.)
  const fh = await fsp.open(path, 'r+');
  try {
    await fh.truncate(pageCount * env.pageSize);
    await fh.datasync();
  } finally {
    await fh.close();
  }
}
