/**
 * The environment: one open file, its current meta, its readers and its single writer.
 *
 * Commit protocol under sync 'full' (invariant 3): every page the transaction wrote is made
 * durable (msync of their ranges, or fdatasync when the file grew so its new size is durable
 * too); only then is the meta written into slot txnId % 2 and flushed. A crash before the meta
 * flush leaves the previous meta, whose pages the transaction never touched (invariant 1); a
 * torn meta fails its checksum and open takes the other slot.
 */
import { MapKVError, corrupt } from '../errors';
import { FIRST_DATA_PAGE, MAX_DEPTH, META_PAGES, isValidPageSize, readU32 } from '../format/layout';
import {
  DbKind,
  type DbDescriptor,
  type MetaState,
  emptyDescriptor,
  peekPageSize,
  readMeta,
  writeMeta,
} from '../format/meta';
import type { Storage } from '../storage/storage';
import { type FreeChunk, readFreeDirectory } from './freelist';
import { Pager } from './pager';
import { SnapshotReader } from './snapshot';
import { WriteTxn } from './write';

export type SyncMode = 'full' | 'none';

/** Test-only pauses inside the commit protocol, for crash tests. */
export interface CommitHooks {
  afterDataFlush?: () => void;
  afterMetaWrite?: () => void;
}

export interface EnvOptions {
  /** Page size for a new file; for an existing file it must match (else ERR_INCOMPATIBLE). */
  pageSize?: number;
  sync: SyncMode;
  verifyChecksums: boolean;
  hooks?: CommitHooks;
}

/** Encoding ids as stored in descriptors. */
export const KEY_ENCODING_IDS = { ordered: 1, string: 2, binary: 3, uint32: 4 } as const;
export const VALUE_ENCODING_IDS = { msgpack: 1, json: 2, string: 3, binary: 4 } as const;

export class Environment {
  readonly pager: Pager;
  readonly pageSize: number;
  meta: MetaState;
  sync: SyncMode;
  readonly verifyChecksums: boolean;
  hooks: CommitHooks;
  /** The open write transaction, if any (one at a time: invariant 7). */
  writer: WriteTxn | null = null;
  /** Snapshots pinned in this process: txn id -> count. */
  private readonly pins = new Map<number, number>();
  private freeCache: { txnId: number; chunks: FreeChunk[]; dirPages: number[] } | null = null;
  private current: SnapshotReader;

  private constructor(
    readonly storage: Storage,
    meta: MetaState,
    opts: EnvOptions,
  ) {
    this.pageSize = meta.pageSize;
    this.pager = new Pager(storage, meta.pageSize);
    this.meta = meta;
    this.sync = opts.sync;
    this.verifyChecksums = opts.verifyChecksums;
    this.hooks = opts.hooks ?? {};
    this.pager.ensureCovers(meta.pageCount);
    this.current = new SnapshotReader(this.pager, meta, this.verifyChecksums);
  }

  /** Opens the environment on `storage`, creating the two metas of an empty file. */
  static open(storage: Storage, opts: EnvOptions): Environment {
    if (storage.size === 0 || isBlankFile(storage)) {
      if (storage.readOnly)
        throw new MapKVError('ERR_CORRUPT', 'the database file is empty and opened read-only');
      return new Environment(storage, initialize(storage, opts.pageSize ?? 4096), opts);
    }
    return new Environment(storage, chooseMeta(storage, opts.pageSize), opts);
  }

  /** A reader over the latest committed state, for one synchronous read. */
  latest(): SnapshotReader {
    if (this.current.meta !== this.meta)
      this.current = new SnapshotReader(this.pager, this.meta, this.verifyChecksums);
    return this.current;
  }

  /** Pins the latest state until `unpin`; pages it reaches are not reused meanwhile. */
  pin(): SnapshotReader {
    const r = this.latest();
    this.pins.set(r.meta.txnId, (this.pins.get(r.meta.txnId) ?? 0) + 1);
    return r;
  }

  unpin(r: SnapshotReader): void {
    const id = r.meta.txnId;
    const n = (this.pins.get(id) ?? 0) - 1;
    if (n <= 0) this.pins.delete(id);
    else this.pins.set(id, n);
  }

  /** The oldest txn id any pinned snapshot in this process reads (or the latest). */
  oldestReader(): number {
    let oldest = this.meta.txnId;
    for (const id of this.pins.keys()) if (id < oldest) oldest = id;
    return oldest;
  }

  get pinnedSnapshots(): number {
    let n = 0;
    for (const c of this.pins.values()) n += c;
    return n;
  }

  beginWrite(): WriteTxn {
    if (this.storage.readOnly)
      throw new MapKVError('ERR_READ_ONLY', 'the database was opened read-only');
    if (this.writer !== null) {
      throw new MapKVError('ERR_LOCKED', 'a write transaction is already open on this database');
    }
    const free = this.freelist();
    // Every commit this process acknowledged is durable (sync 'full') or in the page cache
    // (sync 'none'), so only pinned snapshots limit reuse.
    const txn = new WriteTxn(
      this.pager,
      this.meta,
      free,
      this.oldestReader(),
      this.verifyChecksums,
    );
    this.writer = txn;
    return txn;
  }

  abort(txn: WriteTxn): void {
    if (this.writer === txn) this.writer = null;
  }

  /** Commits `txn`: data pages durable, then the meta, then the meta durable. */
  commit(txn: WriteTxn): void {
    if (this.writer !== txn)
      throw new MapKVError('ERR_TXN_DONE', 'the transaction is already finished');
    try {
      if (!txn.changed) return;
      const plan = txn.prepareCommit();
      const full = this.sync === 'full';
      if (full) {
        // On Linux msync(MS_SYNC) of a range is an fsync of the file (vfs_fsync_range), so
        // one msync per dirty range would cost one journal commit each. One fdatasync writes
        // back every dirty page of the file, and the file's new size when it grew.
        this.storage.sync();
      }
      this.hooks.afterDataFlush?.();
      const slot = plan.meta.txnId % 2;
      const view = this.pager.writeView(slot);
      const at = this.pager.offsetOf(slot);
      // The slot holds the fallback commit. Keep its bytes: if the flush of the new meta
      // fails, they go back, so this process and others stay at the last good commit.
      const previous = view.slice(at, at + this.pageSize);
      writeMeta(view, at, slot, plan.meta);
      try {
        this.hooks.afterMetaWrite?.();
        if (full) this.storage.flush([{ offset: slot * this.pageSize, length: this.pageSize }]);
      } catch (err) {
        view.set(previous, at);
        throw err;
      }
      this.meta = plan.meta;
    } finally {
      this.writer = null;
    }
  }

  /** The committed freelist of the latest meta (cached per txn id). */
  freelist(): { chunks: FreeChunk[]; dirPages: number[] } {
    const m = this.meta;
    if (this.freeCache === null || this.freeCache.txnId !== m.txnId) {
      const { chunks, dirPages } = readFreeDirectory(this.pager, m.freeDir, m.pageCount);
      this.freeCache = { txnId: m.txnId, chunks, dirPages };
    }
    return this.freeCache;
  }

  close(): void {
    this.storage.close();
  }
}

/** A file whose first two pages are all zero: created but never initialised (crash at create). */
function isBlankFile(storage: Storage): boolean {
  if (storage.size < 2 * 4096) return false;
  const v = storage.readSegment(0);
  for (let i = 0; i < 2 * 4096; i += 4) if (readU32(v, i) !== 0) return false;
  return true;
}

function initialize(storage: Storage, pageSize: number): MetaState {
  if (!isValidPageSize(pageSize)) {
    throw new MapKVError(
      'ERR_BAD_OPTION',
      `pageSize must be a power of two from 4096 to 65536, got ${pageSize}`,
    );
  }
  const meta: MetaState = {
    pageSize,
    txnId: 0,
    pageCount: META_PAGES,
    freeDir: 0,
    freePages: 0,
    hashSeed: (Math.random() * 0x1_0000_0000) >>> 0,
    main: emptyDescriptor(DbKind.BTree, 0, 0),
    catalog: emptyDescriptor(DbKind.BTree, KEY_ENCODING_IDS.string, VALUE_ENCODING_IDS.binary),
  };
  storage.grow(Math.max(META_PAGES * pageSize, 16 * pageSize));
  const w = storage.writeSegment(0);
  writeMeta(w, 0, 0, meta);
  writeMeta(w, pageSize, 1, { ...meta, txnId: 1 });
  storage.sync();
  return { ...meta, txnId: 1 };
}

function chooseMeta(storage: Storage, wantPageSize: number | undefined): MetaState {
  const v = storage.readSegment(0);
  const size = storage.size;
  const ps = peekPageSize(v, 0) || (size >= 8192 ? peekPageSize(v, 4096) : 0) || 4096;
  const readings = [0, 1].map((slot) => {
    const off = slot * ps;
    return readMeta(v, off, slot, Math.max(0, Math.min(size, storage.segmentSize) - off));
  });
  const valid = readings.flatMap((r) => (r.ok ? [r.meta] : []));
  if (valid.length === 0) {
    const version = readings.find((r) => !r.ok && r.reason === 'version');
    if (version !== undefined && !version.ok) {
      throw new MapKVError(
        'ERR_INCOMPATIBLE',
        `the file has ${version.detail}; this mapkv reads version 1`,
      );
    }
    if (readings.every((r) => !r.ok && r.reason === 'not-mkv')) corrupt('this is not a mapkv file');
    corrupt(readings.map((r) => (r.ok ? '' : r.detail)).join('; '));
  }
  valid.sort((a, b) => b.txnId - a.txnId);
  const meta = valid[0]!;
  if (wantPageSize !== undefined && wantPageSize !== meta.pageSize) {
    throw new MapKVError(
      'ERR_INCOMPATIBLE',
      `the file has page size ${meta.pageSize}, but pageSize ${wantPageSize} was asked for`,
    );
  }
  validateMeta(meta, Math.floor(size / meta.pageSize));
  return meta;
}

/** Checks the numbers of a checksum-valid meta against the file. */
export function validateMeta(m: MetaState, filePages: number): void {
  if (m.pageCount < META_PAGES || m.pageCount > filePages) {
    corrupt(`the meta counts ${m.pageCount} pages but the file holds ${filePages}`);
  }
  for (const d of [m.main, m.catalog]) checkDescriptor(d, m.pageCount);
  if (m.freeDir !== 0 && (m.freeDir < FIRST_DATA_PAGE || m.freeDir >= m.pageCount)) {
    corrupt(`the free directory page ${m.freeDir} is outside the file`);
  }
}

export function checkDescriptor(d: DbDescriptor, pageCount: number): void {
  if (d.root !== 0 && (d.root < FIRST_DATA_PAGE || d.root >= pageCount))
    corrupt(`root page ${d.root} is outside the file`);
  if (d.depth > MAX_DEPTH) corrupt(`a tree claims depth ${d.depth}`);
}
