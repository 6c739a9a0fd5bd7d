/**
 * The environment: one open file, its current meta, its readers and its single writer.
 *
 * Commit protocol under sync 'full' (invariant 3). A commit that wrote few pages (its meta can
 * list them: see `written` in format/meta.ts) takes one flush: pages, then the meta that lists
 * each page with its checksum, then one fdatasync for all. At open, a listed meta is taken only
 * if every page it lists holds the bytes it was written with (`commitIntact`); a crash before
 * the flush finished may have persisted the meta without some page, and then open takes the
 * previous meta, which the transaction never touched (invariant 1). A larger commit takes two
 * flushes: its pages (fdatasync, which also makes the file's new size durable), then the meta
 * and its own flush; a crash before the meta flush leaves the previous meta. Either way a torn
 * meta fails its checksum and open takes the other slot.
 *
 * Many handles, in many processes and worker_threads, may have one file open. They share it
 * through the lock file (lockfile.ts, readers.ts):
 * - A write transaction holds the writer lock from beginWrite to commit/abort. Having taken
 *   it, the writer maps any growth, re-reads both metas and takes the newest valid one, so it
 *   always builds on the latest commit of any process, and reuses only pages freed by txns no
 *   live reader slot pins (invariant 4).
 * - Reads of the latest commit pin it in this handle's slot, lazily: the pin is taken by the
 *   first read of an event-loop turn, moved forward when a read finds a newer commit, and
 *   released when the turn ends. Whether anything was committed is a plain read of the meta
 *   pages' checksum and txn-id words, so a read makes no native call while nothing changes.
 * - A new meta is written with one pwrite of the whole page. A process killed during a
 *   system call is killed after it returns, so a writer that dies leaves the slot old or new,
 *   never torn, in the page cache (an in-place copy through the mapping could be cut halfway:
 *   test/crash/kill.test.ts found that as check() reporting the slot). A reader may still see
 *   a meta while the kernel copies it: a changed meta is checksum-validated from a private
 *   copy before use, and a torn one is passed over for the other slot.
 *
 * Visibility. Another handle adopts a commit only once its writer's commit call has made it
 * durable (sync 'full') or written it ('none'); until then it reads the commit before. The
 * meta goes into the file before its flush, so a handle that adopted it there could read a
 * commit whose flush then fails: the writer puts the old meta back and its retry takes the
 * same commit id and reuses the failed commit's pages, under a snapshot of it (wrong values)
 * and under flat hash directories named by root page and commit id. The lock file's
 * `published` word holds the newest id the writer let out, stored after the flush and under
 * the writer lock. A meta newer than it is adopted only when the writer lock is free, read
 * while holding it (a commit in progress always holds it, and one whose flush failed has
 * put the old meta back before letting go); otherwise the handle reads the meta before and
 * looks again once the word moves, the lock is let go, or its next event-loop turn begins
 * (`pendingTxn`: a writer whose process died after its flush leaves the word behind; every
 * writer also sets the word for its base). Two things make the rule hold against a writer
 * whose commits fail while a handle reads the metas: the word is read before the metas (a
 * meta copied after the word showed id n cannot be a failed commit's with id n, which was put
 * back before its retry was published), and both meta pages are read with the newest valid
 * one taken (ordering them by their words first let a page put back between the two pass for
 * the newest; test/concurrency/failing-commits.test.ts fails without it, 3 runs in 3). Only a
 * meta whose id equals the word counts as published: a word above the newest meta is not
 * this file's (a file replaced under its lock file). And a meta that turns out to have no
 * valid meta before it is taken only if its page still holds it: both pages may have been
 * rewritten since it was copied (visible()). A meta found unpublished with the lock free is a
 * dead writer's, maybe never flushed: the handle that takes it up flushes the file first
 * (read-only handles cannot), so no read sees a commit that a power loss could take back.
 */
import { MapKVError, corrupt } from '../errors';
import { crc32c } from '../format/crc32c';
import {
  FIRST_DATA_PAGE,
  FORMAT_VERSION,
  H_AUX,
  H_CHECKSUM,
  H_PGNO,
  H_TYPE,
  MAX_DEPTH,
  MAX_PAGE_SIZE,
  META_PAGES,
  OLDEST_FORMAT_VERSION,
  PageType,
  isValidPageSize,
  readU32,
} from '../format/layout';
import {
  DbKind,
  type DbDescriptor,
  type MetaState,
  emptyDescriptor,
  peekPageSize,
  readMeta,
  upgradedMeta,
  writeMeta,
} from '../format/meta';
import { DirectoryCache } from '../hash/directory';
import { native } from '../storage/native';
import type { PendingWrites, Storage } from '../storage/storage';
import { type FreeChunk, readFreeList } from './freelist';
import { DEFAULT_LOCK_TIMEOUT, type LockFile, sleep } from './lockfile';
import { Pager } from './pager';
import { SnapshotReader } from './snapshot';
import { type CommitPlan, WriteTxn, runChecksum } from './write';

export type SyncMode = 'full' | 'none';

/** A meta written into its slot, with the bytes it replaced (restored if its flush fails). */
interface WrittenMeta {
  slot: number;
  previous: Uint8Array;
}

/**
 * A valid meta found in its page, with its checksum and txn-id words: those of the copy it
 * was parsed from (or, for the handle's own meta, of its page when it was adopted).
 */
interface FoundMeta {
  meta: MetaState;
  ck: number;
  tx: number;
}

/** An async commit between its pages' sealing and its publication (its writes and flushes). */
interface InFlight {
  txn: WriteTxn;
  plan: CommitPlan;
  /** The page writes on an I/O thread; null until started. */
  pages: PendingWrites | null;
  /** Whether every page is in the file (the writes settled, or a synchronous finish made them). */
  pagesIn: boolean;
  written: WrittenMeta | null;
  /** Set when the commit is over: published, failed, or finished by a synchronous writer. */
  done: boolean;
  /** The error of a synchronous finish that failed, for the async caller. */
  error: unknown;
}

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
  /**
   * The lock file shared with every other handle of the file: writer lock and reader table.
   * The environment owns it from here on (close() closes it). Absent: the storage belongs to
   * this environment alone (MemoryStorage, a backup's private target).
   */
  lock?: LockFile;
  /** Milliseconds beginWrite waits for the writer lock before ERR_LOCKED (default 10 s). */
  lockTimeout?: number;
}

/** Encoding ids as stored in descriptors. */
export const KEY_ENCODING_IDS = { ordered: 1, string: 2, binary: 3, uint32: 4 } as const;
export const VALUE_ENCODING_IDS = { msgpack: 1, json: 2, string: 3, binary: 4 } as const;
/**
 * The value-encoding id of a 'msgpack' database written without msgpackr records (open option
 * `msgpack: { useRecords: false }`). Its objects are plain msgpack maps, which a decoder using
 * records reads back as Maps: the file records the choice so that a later open decodes them
 * as objects without being told, and refuses to mix the two forms.
 */
export const MSGPACK_PLAIN_ID = 5;

/** Word index, in a meta page read as u32 words, of the checksum (H_CHECKSUM, byte 0). */
const CHECKSUM_WORD = 0;
/** Word index of the low half of the txn id (format/meta.ts: u64 txnId at byte 48). */
const TXN_WORD = 12;
/**
 * Reads after which a handle waiting for an unpublished commit probes the writer lock again,
 * though the lock file still names a writer: that writer may have died in its commit. The
 * first read of each event-loop turn probes too.
 */
const PENDING_RECHECK = 1024;

/**
 * Closes what an environment dropped without close() held: its lock file (which frees its
 * reader slot) and its storage (the data file's descriptor and mappings). Neither may point
 * back to the environment, or it would never be collected.
 */
const lockRegistry = new FinalizationRegistry<{
  lock: LockFile | null;
  storage: Storage;
}>((held) => {
  for (const close of [() => held.lock?.close(), () => held.storage.close()]) {
    try {
      close();
    } catch {
      // Nothing to report to: the handle is gone.
    }
  }
});

export class Environment {
  readonly pager: Pager;
  readonly pageSize: number;
  /** The latest commit this handle knows of (refreshed by latest() and beginWrite()). */
  meta: MetaState;
  sync: SyncMode;
  readonly verifyChecksums: boolean;
  hooks: CommitHooks;
  /** The open write transaction, if any (one at a time: invariant 7). */
  writer: WriteTxn | null = null;
  /** Milliseconds a write waits for the writer lock before ERR_LOCKED. */
  readonly lockTimeout: number;
  /** The lock file; null when the storage is this environment's alone. */
  readonly lock: LockFile | null;
  /** Snapshots pinned through this handle: txn id -> count. */
  private readonly pins = new Map<number, number>();
  /** The async commit whose flushes are running, if any (it still holds the writer lock). */
  private inflight: InFlight | null = null;
  private freeCache: { meta: MetaState; chunks: FreeChunk[]; dirPages: number[] } | null = null;
  /** The reader of `meta`. */
  private current: SnapshotReader;
  /**
   * Flat hash directories of this file's committed tables (src/hash/directory.ts), for the
   * readers of commits since the last time a commit id could come again (see adopt).
   */
  private flatIndexes = new DirectoryCache();
  /** The two meta pages as u32 words (views of the read mapping). */
  private readonly words0: Uint32Array;
  private readonly words1: Uint32Array;
  /** Checksum and txn-id words of both meta pages when this handle last read them. */
  private ck0 = -1;
  private tx0 = -1;
  private ck1 = -1;
  private tx1 = -1;
  /** The same words of `meta`'s own page when it was validated. */
  private metaCk = -1;
  private metaTx = -1;
  /** Txn id the latest-read pin holds, 0 when none; released when the event-loop turn ends. */
  private pinned = 0;
  private releaseScheduled = false;
  /** What this handle's reader slot holds: the oldest txn id it pins, 0 for none. */
  private published = 0;
  /** The newest commit known durable: pages freed after it are reused only after a flush. */
  private durableTxn = 0;
  /**
   * A meta in the file this handle passed over as not yet published (see "Visibility"): its
   * txn id, 0 for none. metaMoved() looks at the lock file's words while it is set.
   */
  private pendingTxn = 0;
  /** Reads since `pendingTxn` was set or last looked at: see PENDING_RECHECK. */
  private pendingReads = 0;
  /** The last dead writer's commit this handle failed to flush (visible()); 0 when none. */
  private unflushedTxn = 0;
  private closed = false;
  private readonly metaScratch: Uint8Array;
  /** A private copy of a meta page being validated. */
  private readonly metaCopy: Uint8Array;
  /**
   * The meta open passed over because a page it lists did not hold what the commit wrote
   * (a commit cut short by a crash): its slot and checksum word. Reloads pass it over too,
   * until a new commit replaces it.
   */
  private rejected: Rejected | null = null;

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
    this.lock = opts.lock ?? null;
    if (this.lock !== null) {
      // Another handle of this thread that wants the writer lock finishes our commit's flush
      // first, as our own next writer would (startWrite). Through a WeakRef: lockRegistry
      // holds the lock file strongly, so a strong reference back to this environment would
      // keep a dropped handle alive for good, and its finalizer would never free its slot.
      const self = new WeakRef(this);
      this.lock.finishPending = () => self.deref()?.finishPendingCommit() ?? false;
    }
    this.lockTimeout = opts.lockTimeout ?? DEFAULT_LOCK_TIMEOUT;
    this.metaScratch = new Uint8Array(meta.pageSize);
    this.metaCopy = new Uint8Array(meta.pageSize);
    this.pager.ensureCovers(meta.pageCount);
    this.current = new SnapshotReader(this.pager, meta, this.verifyChecksums, this.flatIndexes);
    this.words0 = this.metaWords(0);
    this.words1 = this.metaWords(1);
    // The seen words start unknown (-1), so the first read validates the metas again: a
    // commit may have landed since open chose `meta`.
    // A real file is closed for a dropped handle, with or without a lock file (a read-only
    // file system has none); a MemoryStorage holds no descriptor, and tests reuse it.
    if (this.lock !== null || storage.path !== '') {
      lockRegistry.register(this, { lock: this.lock, storage }, this);
    }
  }

  /** Opens the environment on `storage`, creating the two metas of an empty file. */
  static open(storage: Storage, opts: EnvOptions): Environment {
    const lock = opts.lock;
    if (lock !== undefined) {
      const { meta, rejected, created } = chooseShared(storage, lock, opts);
      const env = new Environment(storage, meta, opts);
      if (created) env.durableTxn = meta.txnId;
      env.rejected = rejected;
      return env;
    }
    if (storage.size === 0 || isBlankFile(storage)) {
      if (storage.readOnly)
        throw new MapKVError('ERR_CORRUPT', 'the database file is empty and opened read-only');
      return new Environment(storage, initialize(storage, opts.pageSize ?? 4096), opts);
    }
    const { meta, rejected } = chooseMeta(storage, opts.pageSize);
    const env = new Environment(storage, meta, opts);
    env.rejected = rejected;
    return env;
  }

  /**
   * A reader over the latest commit (of any process), for reads until the event-loop turn
   * ends. Makes no native call while nothing was committed since the last read.
   */
  latest(): SnapshotReader {
    if (this.metaMoved()) this.reload();
    if (this.pinned !== this.meta.txnId) this.pinLatest();
    return this.current;
  }

  /**
   * The commit open passed over because a page it lists does not hold what it wrote, while its
   * meta is still in the file (the next commit replaces it); null when none.
   */
  passedOver(): { slot: number; txnId: number } | null {
    const rj = this.rejected;
    if (rj === null) return null;
    const words = rj.slot === 0 ? this.words0 : this.words1;
    return words[CHECKSUM_WORD] === rj.checksum ? { slot: rj.slot, txnId: rj.txnId } : null;
  }

  /** Pins the latest state until `unpin`; pages it reaches are not reused meanwhile. */
  pin(): SnapshotReader {
    const r = this.latest();
    const id = r.meta.txnId;
    this.pins.set(id, (this.pins.get(id) ?? 0) + 1);
    // The latest-read pin holds `id`, so the slot already protects it; this only keeps the
    // slot right once that pin is released.
    this.publish();
    return r;
  }

  unpin(r: SnapshotReader): void {
    const id = r.meta.txnId;
    const n = (this.pins.get(id) ?? 0) - 1;
    if (n <= 0) this.pins.delete(id);
    else this.pins.set(id, n);
    this.publish();
  }

  /**
   * The oldest txn id a snapshot pins - in any thread or process when the file is shared -
   * or the latest commit's id. A writer calls it holding the writer lock.
   */
  oldestReader(): number {
    if (this.lock !== null) return this.lock.table.oldest(this.meta.txnId);
    let oldest = this.meta.txnId;
    for (const id of this.pins.keys()) if (id < oldest) oldest = id;
    return oldest;
  }

  get pinnedSnapshots(): number {
    let n = 0;
    for (const c of this.pins.values()) n += c;
    return n;
  }

  /**
   * Begins the write transaction, waiting up to `lockTimeout` for the writer lock (ERR_LOCKED
   * after that).
   */
  beginWrite(): WriteTxn {
    return this.startWrite(true)!;
  }

  /** Begins the write transaction if the writer lock is free now; null when it is not. */
  tryBeginWrite(): WriteTxn | null {
    return this.startWrite(false);
  }

  /** The ERR_LOCKED error of a write that waited `lockTimeout` for the writer lock. */
  lockedError(): MapKVError {
    if (this.lock === null) {
      return new MapKVError('ERR_LOCKED', 'a write transaction is already open on this database');
    }
    return this.lock.lockedError(this.lockTimeout);
  }

  abort(txn: WriteTxn): void {
    if (this.writer === txn) {
      this.writer = null;
      this.lock?.unlock();
    }
  }

  /** Commits `txn`: data pages durable, then the meta, then the meta durable. */
  commit(txn: WriteTxn): void {
    if (this.writer !== txn)
      throw new MapKVError('ERR_TXN_DONE', 'the transaction is already finished');
    try {
      if (!txn.changed) return;
      const plan = txn.prepareCommit();
      const full = this.sync === 'full';
      const listed = plan.meta.written !== undefined;
      // On Linux msync(MS_SYNC) of a range is an fsync of the file (vfs_fsync_range), so one
      // msync per dirty range would cost one journal commit each. One fdatasync writes back
      // every dirty page of the file, and the file's new size when it grew.
      if (full && !listed) this.syncPages(plan);
      this.hooks.afterDataFlush?.();
      const written = this.writeMetaFor(plan);
      try {
        this.hooks.afterMetaWrite?.();
        // The meta went in by pwrite: one fdatasync flushes it (an msync of its range would
        // cost the same, an fsync of the file, but needs a writable mapping). A listed
        // commit's pages go with it.
        if (full) {
          if (listed) this.syncPages(plan);
          else this.storage.sync();
        }
      } catch (err) {
        this.restoreMeta(written);
        throw err;
      }
      this.publishCommit(plan);
    } finally {
      this.endWrite();
    }
  }

  /**
   * The same protocol as `commit`, with the page writes (from DEFER_MIN_BYTES of pages) and
   * both flushes on an I/O thread, so the event loop runs on while the disk works: reads see
   * the previous commit until this one is durable (under 'none': written), and async writes
   * queue up for the next commit (group commit). A synchronous writer arriving meanwhile
   * finishes this commit synchronously first (`finishInFlight`).
   */
  async commitAsync(txn: WriteTxn): Promise<void> {
    if (this.writer !== txn)
      throw new MapKVError('ERR_TXN_DONE', 'the transaction is already finished');
    let plan: CommitPlan;
    try {
      if (!txn.changed) {
        this.commit(txn);
        return;
      }
      // The pages are sealed here and, unless they are few (prepareCommit), written below on
      // an I/O thread: their page-cache copies (some 3 us a page) leave the event loop.
      plan = txn.prepareCommit(true);
    } catch (err) {
      if (this.writer === txn) this.endWrite();
      throw err;
    }
    const f: InFlight = {
      txn,
      plan,
      pages: null,
      pagesIn: false,
      written: null,
      done: false,
      error: undefined,
    };
    this.inflight = f;
    const full = this.sync === 'full';
    const listed = plan.meta.written !== undefined;
    try {
      if (plan.writes.length === 0) {
        f.pagesIn = true; // a small commit: prepareCommit wrote its pages
      } else {
        f.pages = this.storage.writeAsync(plan.writes, plan.writeUnit);
        try {
          await f.pages.done;
        } finally {
          // Written, or stopped by a synchronous finish that wrote them itself before it
          // returned: either way no write of these buffers is left, and they may be reused.
          f.pagesIn = true;
          plan.release();
        }
        if (f.done) return this.settled(f);
      }
      if (full && !listed) {
        await this.syncPagesAsync(f, plan);
        if (f.done) return this.settled(f);
      }
      this.hooks.afterDataFlush?.();
      f.written = this.writeMetaFor(plan);
      this.hooks.afterMetaWrite?.();
      // Under 'none' the commit is done once its meta is in the page cache, as in `commit`.
      if (full) {
        if (listed) await this.syncPagesAsync(f, plan);
        else await this.storage.syncAsync();
        if (f.done) return this.settled(f);
      }
      this.publishCommit(plan);
      f.done = true;
    } catch (err) {
      // A failure after a synchronous writer finished the commit is moot: it was flushed.
      if (f.done) return this.settled(f);
      if (f.written !== null) this.restoreMeta(f.written);
      f.done = true;
      throw err;
    } finally {
      if (f.pages === null) plan.release();
      if (this.inflight === f) {
        this.inflight = null;
        this.endWrite();
      }
    }
  }

  /** The outcome of an async commit that a synchronous writer completed. */
  private settled(f: InFlight): void {
    if (f.error !== undefined) throw f.error;
  }

  /**
   * Finishes this handle's in-flight async commit, for a writer of this handle or another
   * handle of the thread that wants the writer lock; false when there is none (no writer, or
   * an open write transaction).
   */
  private finishPendingCommit(): boolean {
    if (this.writer === null || this.inflight === null || this.writer !== this.inflight.txn)
      return false;
    this.finishInFlight();
    return true;
  }

  /** Completes the in-flight async commit with blocking flushes (a sync writer needs the lock). */
  private finishInFlight(): void {
    const f = this.inflight!;
    const full = this.sync === 'full';
    const listed = f.plan.meta.written !== undefined;
    try {
      this.stopPageWrites(f);
      if (f.written === null) {
        if (full && !listed) this.syncPages(f.plan);
        this.hooks.afterDataFlush?.();
        f.written = this.writeMetaFor(f.plan);
        this.hooks.afterMetaWrite?.();
      }
      if (full) {
        if (listed) this.syncPages(f.plan);
        else this.storage.sync();
      }
      this.publishCommit(f.plan);
    } catch (err) {
      if (f.written !== null) this.restoreMeta(f.written);
      f.error = err;
    } finally {
      f.done = true;
      this.inflight = null;
      this.endWrite();
    }
  }

  /**
   * Makes sure the pages of in-flight commit `f` are in the file and that its I/O-thread
   * writes make no call any more: a late write of them could land after a later commit reused
   * their pages. The writes the thread did not make in full are made here.
   */
  private stopPageWrites(f: InFlight): void {
    if (f.pagesIn) return;
    const made = f.pages?.stop() ?? false;
    if (!made) {
      for (const w of f.plan.writes) this.storage.writeAt(w.offset, w.buffers, f.plan.writeUnit);
    }
    f.pagesIn = true;
  }

  /**
   * The flush that makes a commit's pages durable (fdatasync). If it fails, the pages are
   * punched out of the file before the error goes on (CommitPlan.written says why): they
   * belong to no commit, and whatever the failed write-back left behind must not shadow their
   * next writes.
   */
  private syncPages(plan: CommitPlan): void {
    try {
      this.storage.sync();
    } catch (err) {
      this.discardPages(plan);
      throw err;
    }
  }

  /** `syncPages` on an I/O thread; no punch once a synchronous writer took over. */
  private async syncPagesAsync(f: InFlight, plan: CommitPlan): Promise<void> {
    try {
      await this.storage.syncAsync();
    } catch (err) {
      if (!f.done) this.discardPages(plan);
      throw err;
    }
  }

  private discardPages(plan: CommitPlan): void {
    for (const r of plan.written) {
      try {
        this.storage.discard(r.offset, r.length);
      } catch {
        // The flush's error is the one to report; a file system that cannot punch keeps the
        // pages as they are, which is how this worked before punching.
      }
    }
  }

  /** Writes the commit's meta into its slot, keeping the slot's previous bytes. */
  private writeMetaFor(plan: CommitPlan): WrittenMeta {
    const slot = plan.meta.txnId % 2;
    const at = this.pager.offsetOf(slot);
    // The slot holds the fallback commit. Keep its bytes: if the flush of the new meta fails,
    // they go back, so this process and others stay at the last good commit.
    const previous = this.pager.readView(slot).slice(at, at + this.pageSize);
    const s = this.metaScratch;
    writeMeta(s, 0, slot, plan.meta);
    this.storage.writeAt(slot * this.pageSize, [s]);
    return { slot, previous };
  }

  /**
   * Puts back the bytes a failed commit's meta replaced. Through the write view, not a
   * pwrite: a copy into the mapping cannot fail once the view is mapped, where the pwrite that
   * just failed to flush could fail again and leave an unflushed commit for readers to adopt.
   */
  private restoreMeta(w: WrittenMeta): void {
    this.pager.writeView(w.slot).set(w.previous, this.pager.offsetOf(w.slot));
  }

  /** Makes a durable (or, under sync 'none', written) commit the one readers see. */
  private publishCommit(plan: CommitPlan): void {
    const slot = plan.meta.txnId % 2;
    this.meta = plan.meta;
    this.current = new SnapshotReader(
      this.pager,
      plan.meta,
      this.verifyChecksums,
      this.flatIndexes,
    );
    this.recordSeen();
    this.metaCk = slot === 0 ? this.ck0 : this.ck1;
    this.metaTx = slot === 0 ? this.tx0 : this.tx1;
    if (this.sync === 'full') {
      this.durableTxn = plan.meta.txnId;
      this.lock?.setDurable(plan.meta.txnId);
    }
    // After the flush (under sync 'full'), still under the writer lock: other handles adopt it.
    this.lock?.setPublished(plan.meta.txnId);
    this.pendingTxn = 0;
    this.upgradeFallbackMeta(1 - slot);
  }

  /**
   * After the first commit to a version-1 file, marks the meta before it (the fallback, in
   * the other slot) with this format version too. A build that reads only version 1 would
   * otherwise pass the new meta over for that one, read the commit before, and write into the
   * new commit's slot; with both slots newer it refuses the file. The page differs only in its
   * first sector (see upgradedMeta), so a torn write leaves the old or the new bytes, both
   * valid. It goes to the page cache only: the next commit's flush takes it to the disk, and
   * until then a crash leaves it at version 1, as it was. Costs one read per commit otherwise.
   */
  private upgradeFallbackMeta(slot: number): void {
    const page = upgradedMeta(this.pager.readView(slot), this.pager.offsetOf(slot), this.pageSize);
    if (page === null) return;
    try {
      this.storage.writeAt(slot * this.pageSize, [page]);
    } catch {
      // The commit is done; the fallback meta just stays at version 1 (see above).
    }
  }

  private endWrite(): void {
    this.writer = null;
    this.lock?.unlock();
  }

  /** The committed freelist of the latest meta (cached per meta). */
  freelist(): { chunks: FreeChunk[]; dirPages: number[] } {
    const m = this.meta;
    if (this.freeCache === null || this.freeCache.meta !== m) {
      const { chunks, dirPages } = readFreeList(this.pager, m);
      this.freeCache = { meta: m, chunks, dirPages };
    }
    return this.freeCache;
  }

  /** Releases the reader slot and the lock file, then unmaps and closes the file. */
  close(): void {
    if (this.closed) {
      this.storage.close();
      return;
    }
    this.closed = true;
    // The file is closed below: an async commit's page writes, if still waiting for a thread,
    // must not reach its descriptor (or a file that reuses its number) after that.
    if (this.inflight !== null && !this.inflight.pagesIn) this.inflight.pages?.stop();
    try {
      lockRegistry.unregister(this);
      this.lock?.close();
    } finally {
      // A closed handle the application still references keeps nothing big alive.
      this.pager.dropSpareBuffers();
      this.storage.close();
    }
  }

  // --- shared-file internals ---

  private startWrite(wait: boolean): WriteTxn | null {
    if (this.storage.readOnly)
      throw new MapKVError('ERR_READ_ONLY', 'the database was opened read-only');
    // A file deleted or renamed over while open stays readable through this handle, but its
    // commits would land in a file that no open() can reach again: silent loss, so refused.
    if (!this.storage.namesFile()) {
      throw new MapKVError(
        'ERR_READ_ONLY',
        `${this.storage.path} no longer names the file this handle opened (it was deleted or ` +
          'replaced): the handle can read it but not write; open the path again',
      );
    }
    this.finishPendingCommit();
    if (this.writer !== null) {
      throw new MapKVError('ERR_LOCKED', 'a write transaction is already open on this database');
    }
    const lock = this.lock;
    if (lock !== null) {
      if (wait) lock.lock(this.lockTimeout);
      else if (!lock.tryLock()) return null;
    }
    try {
      if (lock !== null) {
        // Build on the latest commit of any process: when another committed since this handle
        // last looked, map what it grew the file by and re-read the metas. (Growth without a
        // commit - a writer that died - is harmless: growing over it allocates nothing new.)
        native.fence();
        // A meta passed over as unpublished is final now (the lock is ours): it may be a dead
        // writer's flushed commit, which the next commit must build on, not overwrite.
        if (this.pendingTxn !== 0 || this.metaMoved()) {
          this.storage.refresh();
          this.reload();
        }
        this.ensureDurableBase(lock);
        // Under the lock the base is final: let other handles adopt it (a dead writer's commit,
        // or a word left behind by a file replaced under its lock file).
        if (lock.publishedTxn() !== this.meta.txnId) lock.setPublished(this.meta.txnId);
        // This handle's latest-read pin guards readers used inside one synchronous call, none
        // of which is running now: let it not hold back this handle's own writes (a read in
        // the txn pins again, at the base, which the txn never overwrites).
        if (this.pinned !== 0) {
          this.pinned = 0;
          this.publish();
        }
      }
      const txn = new WriteTxn(
        this.pager,
        this.meta,
        this.freelist(),
        this.oldestReader(),
        this.verifyChecksums,
      );
      this.writer = txn;
      return txn;
    } catch (err) {
      lock?.unlock();
      throw err;
    }
  }

  /**
   * Under sync 'full', pages freed by a commit are reused only once that commit is durable
   * (invariant 4). Another handle's commit under sync 'none' may not be: flush it first.
   */
  private ensureDurableBase(lock: LockFile): void {
    const t = this.meta.txnId;
    if (this.sync !== 'full' || this.durableTxn === t) return;
    if (lock.durableTxn() !== t) {
      this.storage.sync();
      lock.setDurable(t);
    }
    this.durableTxn = t;
  }

  /** A meta page's words, as a view of the read mapping. */
  private metaWords(slot: number): Uint32Array {
    const v = this.pager.readView(slot);
    return new Uint32Array(v.buffer, v.byteOffset + this.pager.offsetOf(slot), this.pageSize >> 2);
  }

  /**
   * Whether a meta page changed since this handle last read them: four plain loads. While an
   * async commit of this handle is in flight (it holds the writer lock, so no other handle can
   * commit) the only change is its own meta, which readers must not see before it is durable.
   */
  private metaMoved(): boolean {
    if (this.inflight !== null) return false;
    const a = this.words0;
    const b = this.words1;
    return (
      a[CHECKSUM_WORD] !== this.ck0 ||
      a[TXN_WORD] !== this.tx0 ||
      b[CHECKSUM_WORD] !== this.ck1 ||
      b[TXN_WORD] !== this.tx1 ||
      (this.pendingTxn !== 0 && this.pendingSettled())
    );
  }

  /**
   * Whether the commit passed over as unpublished may be adoptable now: its writer published
   * it, or no writer is recorded in the lock (it let go: published, or put the old meta back).
   * Plain loads; reload() decides.
   */
  private pendingSettled(): boolean {
    const lock = this.lock!;
    return (
      lock.publishedHint() >= this.pendingTxn ||
      // A commit whose flush failed (see visible()) waits for a writer to publish past it: it
      // is looked at again by the recheck below, not at every read.
      (!lock.writerRecorded() && this.unflushedTxn !== this.pendingTxn) ||
      // A writer that died in its commit leaves its pid word behind: probe the lock anyway.
      ++this.pendingReads >= PENDING_RECHECK
    );
  }

  private recordSeen(): void {
    const a = this.words0;
    const b = this.words1;
    this.ck0 = a[CHECKSUM_WORD]!;
    this.tx0 = a[TXN_WORD]!;
    this.ck1 = b[CHECKSUM_WORD]!;
    this.tx1 = b[TXN_WORD]!;
  }

  /**
   * Re-reads the meta pages and adopts the newest valid commit. When that throws (a meta of a
   * newer format, a meta naming pages outside the file), the words seen are forgotten, so the
   * next read or write looks again and throws again instead of going on with the old commit.
   */
  private reload(): void {
    try {
      for (let attempt = 0; ; attempt++) {
        // The published word before the metas (see "Visibility"): a meta copied after it was
        // read cannot be a failed commit's with an id up to it, since a commit id is published
        // only after the failed attempt's meta was put back.
        const lock = this.lock;
        const published = lock === null || lock.held ? Infinity : lock.publishedTxn();
        // Words first: a page that changes while it is validated is looked at again next time.
        this.recordSeen();
        if (lock !== null) native.fence();
        const found = this.newestMeta();
        if (found !== null) {
          const v = this.visible(found, published);
          if (v !== null) {
            // The words that tell, next time, whether `meta`'s page still holds it: those of
            // the meta adopted, not of one looked at and passed over.
            this.metaCk = v.ck;
            this.metaTx = v.tx;
            if (v.meta !== this.meta) this.adopt(v.meta);
            return;
          }
        }
        // Both pages failed: two commits landed while we read. Read again.
        if (attempt >= 1000) corrupt('neither meta page holds a valid commit');
        if (attempt >= 10) sleep(0.1);
      }
    } catch (err) {
      // No word of a Uint32Array is -1: metaMoved() is true until a reload succeeds.
      this.ck0 = -1;
      throw err;
    }
  }

  /**
   * The commit to adopt when `m` is the newest valid meta (see "Visibility"): `m` when it is
   * published or no writer holds the lock, else the valid meta before it. Null when there is
   * none (both pages changed meanwhile: the caller reads again). Sets `pendingTxn`.
   */
  private visible(m: FoundMeta, published: number): FoundMeta | null {
    const lock = this.lock;
    this.pendingTxn = 0;
    // Under our own writer lock every meta is final; so is the one published. A published
    // commit stays in one of the two pages until a newer one replaces it, so a word above the
    // newest meta read after it is not this file's (a file replaced under its lock file): it
    // tells nothing, and the lock decides.
    if (lock === null || published === Infinity || m.meta.txnId === published) return m;
    const settled = lock.whileFree(() => {
      // Nothing commits while we hold the lock: read the metas again, they are final now.
      this.recordSeen();
      native.fence();
      const f = this.newestMeta();
      // Stable while we hold the lock: only a holder stores it.
      const word = lock.publishedTxn();
      if (f === null || f.meta.txnId === word) return f;
      // Nobody published f: its writer let go of the lock without publishing, so it died
      // between its meta write and the store of the word, maybe before its flush. Flush it
      // before any handle reads it, so that no read sees a commit a power loss could still
      // take back. (A lower id is a word left by a file replaced under its lock file, and
      // needs no flush.)
      const t = f.meta.txnId;
      if (t > word && lock.durableTxn() !== t) {
        // A read-only handle cannot flush: it reads f as it is, and leaves the word to a
        // handle that can, so that handles that can flush do not take f as published.
        if (this.storage.readOnly) return f;
        // After a failed fdatasync the kernel may have dropped the dirty pages, and a later
        // one can succeed without them: a commit whose flush failed once is not taken up
        // again. This handle reads the commit before until a writer publishes a newer one.
        if (this.unflushedTxn === t) return undefined;
        try {
          this.storage.sync();
        } catch {
          this.unflushedTxn = t;
          return undefined;
        }
        lock.setDurable(t);
      }
      // Let the other handles know too, as a writer would for its base (also lowering a word
      // left by a file replaced under its lock file).
      lock.setPublished(t);
      return f;
    });
    if (settled !== undefined) return settled;
    const known = published < m.meta.txnId;
    // The newest published commit; failing that (a word a build before this rule never
    // stores, or one not this file's), the one before `m`.
    const before = (known ? this.newestMeta(published) : null) ?? this.newestMeta(m.meta.txnId - 1);
    if (before === null) {
      // No valid meta before `m`: the other page is damaged, or both pages were rewritten
      // since `m` was copied (`m` may then be a failed commit's). Read again unless `m`'s page
      // still holds `m` (reading it then beats reading nothing).
      native.fence();
      const words = m.meta.txnId % 2 === 0 ? this.words0 : this.words1;
      return words[CHECKSUM_WORD] === m.ck && words[TXN_WORD] === m.tx ? m : null;
    }
    this.pendingTxn = m.meta.txnId;
    this.pendingReads = 0;
    return before;
  }

  /**
   * The newest checksum-valid meta in the file (`this.meta` itself when that is still it)
   * with a txn id up to `limit`, or null when neither page has one. Changes nothing of the
   * handle's: the caller may pass what it finds over.
   */
  private newestMeta(limit = Number.MAX_SAFE_INTEGER): FoundMeta | null {
    const v0 = this.pager.readView(0);
    const v1 = this.pager.readView(1);
    const o0 = this.pager.offsetOf(0);
    const o1 = this.pager.offsetOf(1);
    const cur = this.meta.txnId % 2;
    // Both pages are read, and the newest valid one wins. Ordering them first by their txn
    // words, as read before the copies, let a page put back between the two (a failed
    // commit's) pass for the newest and hide the commit in the other page.
    let best: FoundMeta | null = null;
    for (const slot of [0, 1]) {
      const rj = this.rejected;
      if (rj !== null && rj.slot === slot && (slot === 0 ? this.ck0 : this.ck1) === rj.checksum) {
        continue;
      }
      if (slot === cur && this.meta.txnId <= limit) {
        const ck = slot === 0 ? this.ck0 : this.ck1;
        const tx = slot === 0 ? this.tx0 : this.tx1;
        if (ck === this.metaCk && tx === this.metaTx) {
          if (best === null || this.meta.txnId > best.meta.txnId)
            best = { meta: this.meta, ck, tx };
          continue;
        }
      }
      const view = slot === 0 ? v0 : v1;
      const off = slot === 0 ? o0 : o1;
      const available = Math.min(this.storage.size - slot * this.pageSize, this.pageSize);
      // Validate and parse a private copy: a writer may rewrite the page while we read it
      // (two commits during one reload), and fields read after the checksum was checked
      // could then belong to another commit.
      const copy = this.metaCopy;
      copy.set(view.subarray(off, off + this.pageSize));
      const r = readMeta(copy, 0, slot, Math.max(0, available));
      // A checksum-valid meta of a newer format is a commit of a newer mapkv: passing it over
      // for the older slot would read stale data and let a write here overwrite that commit.
      if (!r.ok && (r.version ?? 0) > FORMAT_VERSION) {
        throw new MapKVError(
          'ERR_INCOMPATIBLE',
          `another process committed ${r.detail}; this mapkv reads versions ` +
            `${OLDEST_FORMAT_VERSION} to ${FORMAT_VERSION}`,
        );
      }
      if (r.ok && r.meta.pageSize === this.pageSize && r.meta.txnId <= limit) {
        if (best === null || r.meta.txnId > best.meta.txnId) {
          // The copy's own words (the page may have changed since recordSeen read them).
          const words = new Uint32Array(copy.buffer, copy.byteOffset, TXN_WORD + 1);
          best = { meta: r.meta, ck: words[CHECKSUM_WORD]!, tx: words[TXN_WORD]! };
        }
      }
    }
    return best;
  }

  /** Makes `m` the latest commit this handle knows, mapping the file's growth first. */
  private adopt(m: MetaState): void {
    this.pager.ensureCovers(m.pageCount);
    validateMeta(m, this.pager.filePages());
    // A commit id seen before, on another meta: an older commit again (the newest meta found
    // damaged), whose next commit reuses ids, or a commit that replaced one this handle read
    // (a writer's retry after a failed flush, which only a build before "Visibility" or a
    // damaged fallback meta lets a handle read). The flat
    // directories take a root page's number and commit id as naming one version of a table.
    // A new cache, not a cleared one: snapshots taken before keep theirs, whose tables are
    // right for them and must not be rebuilt into the one the latest commit reads through.
    if (m.txnId <= this.meta.txnId) this.flatIndexes = new DirectoryCache();
    this.meta = m;
    this.current = new SnapshotReader(this.pager, m, this.verifyChecksums, this.flatIndexes);
  }

  /**
   * Pins `meta` for reads of the latest commit until the event-loop turn ends. When that
   * lowers what the slot holds (from nothing), the meta is read again after a fence: if it
   * still names the pinned txn, every writer that commits after it sees the pin; if it moved
   * on, the newer meta was read after the (lower) pin was visible, and is pinned instead.
   */
  private pinLatest(): void {
    if (this.lock === null) {
      this.pinned = this.meta.txnId;
      return;
    }
    if (!this.releaseScheduled) {
      this.releaseScheduled = true;
      setImmediate(this.releaseLatest).unref();
    }
    for (;;) {
      this.pinned = this.meta.txnId;
      if (!this.publish()) return;
      native.fence();
      // A newer published commit means a writer may have started without seeing the pin (and
      // may reuse the pinned commit's pages); the metas' words alone can miss it when a failed
      // commit's retry has the very words of a meta this handle saw.
      if (!this.metaMoved() && this.lock.publishedHint() <= this.meta.txnId) return;
      this.reload();
      if (this.pinned === this.meta.txnId) return;
    }
  }

  private readonly releaseLatest = (): void => {
    this.releaseScheduled = false;
    if (this.closed) return;
    // Waiting for an unpublished commit: the next turn's first read probes the lock again.
    if (this.pendingTxn !== 0) this.pendingReads = PENDING_RECHECK;
    this.pinned = 0;
    this.publish();
  };

  /**
   * Stores the oldest txn id this handle pins in its slot. Returns true when that lowered the
   * slot (a pin where there was none): the caller must then re-check the meta.
   */
  private publish(): boolean {
    const lock = this.lock;
    if (lock === null || this.closed) return false;
    let want = this.pinned;
    for (const id of this.pins.keys()) if (want === 0 || id < want) want = id;
    const prev = this.published;
    if (want === prev) return false;
    lock.publish(want);
    this.published = want;
    if (want === 0 || (prev !== 0 && want > prev)) return false;
    if (!lock.ownsSlot()) {
      // Another process took the slot for a dead one's (pid namespaces that differ?):
      // take a new one and publish there.
      lock.claim();
      this.published = 0;
      return this.publish();
    }
    return true;
  }
}

/**
 * Chooses the meta of a shared file at open. A file that is empty, blank or without a valid
 * meta may be being created by another process right now: it is looked at again under the
 * writer lock, which a creator holds until both metas are written.
 */
function chooseShared(
  storage: Storage,
  lock: LockFile,
  opts: EnvOptions,
): Chosen & { created: boolean } {
  if (storage.size !== 0 && !isBlankFile(storage)) {
    try {
      return { ...chooseMeta(storage, opts.pageSize), created: false };
    } catch (err) {
      if (!(err instanceof MapKVError) || err.code !== 'ERR_CORRUPT') throw err;
    }
  }
  lock.lock(opts.lockTimeout ?? DEFAULT_LOCK_TIMEOUT);
  try {
    storage.refresh();
    if (storage.size === 0 || isBlankFile(storage)) {
      if (storage.readOnly)
        throw new MapKVError('ERR_CORRUPT', 'the database file is empty and opened read-only');
      return { meta: initialize(storage, opts.pageSize ?? 4096), rejected: null, created: true };
    }
    return { ...chooseMeta(storage, opts.pageSize), created: false };
  } finally {
    lock.unlock();
  }
}

/**
 * A file created but never initialised (crash at create): no longer than initialize() makes it
 * (16 pages of at most 64 KiB) and all zero. A file whose metas alone are zero is damage, not
 * a blank file to initialise over; so is a file with a meta in slot 1 only (with pages over
 * 4 KiB a backup writes only the slot of its commit, and slot 1 is not at byte 4096).
 */
function isBlankFile(storage: Storage): boolean {
  const size = storage.size;
  if (size < 2 * 4096 || size > 16 * 65536) return false;
  for (let seg = 0; seg * storage.segmentSize < size; seg++) {
    const v = storage.readSegment(seg);
    const end = Math.min(storage.segmentSize, size - seg * storage.segmentSize);
    for (let i = 0; i < end; i += 4) if (readU32(v, i) !== 0) return false;
  }
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
  // By pwrite, as commits write: a write view mapped here would stay mapped (address space,
  // one mapping per segment) for as long as the handle, which otherwise maps one only to put
  // back the meta of a commit whose flush failed.
  const page = new Uint8Array(pageSize);
  for (let slot = 0; slot < META_PAGES; slot++) {
    page.fill(0);
    writeMeta(page, 0, slot, { ...meta, txnId: slot });
    storage.writeAt(slot * pageSize, [page]);
  }
  storage.sync();
  return { ...meta, txnId: 1 };
}

/** A meta passed over at open: its slot, checksum word and commit. */
interface Rejected {
  slot: number;
  checksum: number;
  txnId: number;
}

interface Chosen {
  meta: MetaState;
  rejected: Rejected | null;
}

/**
 * Chooses the commit to open at: the newest checksum-valid meta, unless it lists the pages it
 * wrote (a one-flush commit) and one of them does not hold the bytes it was written with - a
 * crash cut its flush short - and then the meta before it.
 */
function chooseMeta(storage: Storage, wantPageSize: number | undefined): Chosen {
  const size = storage.size;
  const ps = peekPageSize(fileBytes(storage, 0, 64), 0) || slotOnePageSize(storage) || 4096;
  const readings = [0, 1].map((slot) => {
    // A private copy: another process may be writing this page (see newestMeta).
    const copy = fileBytes(storage, slot * ps, MAX_PAGE_SIZE);
    return readMeta(copy, 0, slot, copy.length);
  });
  const valid = readings.flatMap((r) => (r.ok ? [r.meta] : []));
  // A checksum-valid meta of a newer format is a newer mapkv's commit, whatever the other slot
  // holds: opening at the other one would read the commit before it, and a write here would go
  // into its slot.
  const newer = readings.find((r) => !r.ok && (r.version ?? 0) > FORMAT_VERSION);
  if (valid.length === 0 || newer !== undefined) {
    const version = newer ?? readings.find((r) => !r.ok && r.reason === 'version');
    if (version !== undefined && !version.ok) {
      throw new MapKVError(
        'ERR_INCOMPATIBLE',
        `the file has ${version.detail}; this mapkv reads versions ` +
          `${OLDEST_FORMAT_VERSION} to ${FORMAT_VERSION}`,
      );
    }
    if (readings.every((r) => !r.ok && r.reason === 'not-mkv')) corrupt('this is not a mapkv file');
    corrupt(readings.map((r) => (r.ok ? '' : r.detail)).join('; '));
  }
  valid.sort((a, b) => b.txnId - a.txnId);
  let rejected: Rejected | null = null;
  let meta = valid[0]!;
  if (valid.length === 2 && meta.written !== undefined && !commitIntact(storage, meta)) {
    // Invariant 1: the commit before never shared a page with the one cut short.
    const slot = meta.txnId % 2;
    rejected = {
      slot,
      checksum: readU32(fileBytes(storage, slot * meta.pageSize, 4), H_CHECKSUM),
      txnId: meta.txnId,
    };
    meta = valid[1]!;
    // Under sync 'full' the commit before was durable before this one began, so its own list
    // checks out; under 'none' nothing was flushed and it may not: then neither commit is whole.
    if (meta.written !== undefined && !commitIntact(storage, meta)) {
      corrupt(
        `the last two commits (txns ${meta.txnId} and ${meta.txnId + 1}) both miss pages they wrote`,
      );
    }
  }
  if (wantPageSize !== undefined && wantPageSize !== meta.pageSize) {
    throw new MapKVError(
      'ERR_INCOMPATIBLE',
      `the file has page size ${meta.pageSize}, but pageSize ${wantPageSize} was asked for`,
    );
  }
  validateMeta(meta, Math.floor(size / meta.pageSize));
  if (rejected === null && meta.written !== undefined && !commitIntact(storage, meta)) {
    corrupt(`a page written by the last commit (txn ${meta.txnId}) fails its checksum`);
  }
  return { meta, rejected };
}

/**
 * Whether every page a listed commit wrote holds the bytes it was written with: the page's
 * checksum word is the one the meta recorded, and the page (or overflow run) hashes to it.
 * Pages and the file's size were flushed together with the meta, so any of them may be
 * missing after a crash; nothing here trusts a number it has not bounded first.
 */
function commitIntact(storage: Storage, meta: MetaState): boolean {
  const ps = meta.pageSize;
  const filePages = Math.floor(storage.size / ps);
  if (meta.pageCount < META_PAGES || meta.pageCount > filePages) return false;
  try {
    validateMeta(meta, filePages);
  } catch {
    return false;
  }
  const pager = new Pager(storage, ps);
  const list = meta.written!;
  for (let i = 0; i < list.length; i += 2) {
    const pgno = list[i]!;
    const checksum = list[i + 1]!;
    if (pgno < FIRST_DATA_PAGE || pgno >= meta.pageCount) return false;
    const b = pager.readView(pgno);
    const o = pager.offsetOf(pgno);
    if (readU32(b, o + H_CHECKSUM) !== checksum || readU32(b, o + H_PGNO) !== pgno) return false;
    if (b[o + H_TYPE] === PageType.Overflow) {
      const pages = readU32(b, o + H_AUX);
      if (pages < 1 || pages > meta.pageCount - pgno) return false;
      if (runChecksum(pager, pgno, pages) !== checksum) return false;
    } else if (crc32c(b, o + 4, o + ps) !== checksum) return false;
  }
  return true;
}

/**
 * The page size when slot 0 is blank or damaged: a meta in slot 1 sits at byte offset equal
 * to its own page size, so try each possible size.
 */
function slotOnePageSize(storage: Storage): number {
  for (let ps = 4096; ps <= 65536 && 2 * ps <= storage.size; ps *= 2) {
    if (peekPageSize(fileBytes(storage, ps, 64), 0) === ps) return ps;
  }
  return 0;
}

/**
 * A copy of up to `len` bytes of the file from `off`, fewer at the end of the file or of the
 * segment holding `off`. The metas are read through this, not through segment 0: with one-page
 * segments (pageSize = segmentSize = 64 KiB) meta 1 is in segment 1.
 */
function fileBytes(storage: Storage, off: number, len: number): Uint8Array {
  if (off >= storage.size) return new Uint8Array(0);
  const seg = Math.floor(off / storage.segmentSize);
  const at = off - seg * storage.segmentSize;
  const n = Math.min(len, storage.size - off, storage.segmentSize - at);
  return storage.readSegment(seg).slice(at, at + n);
}

/** Checks the numbers of a checksum-valid meta against the file. */
export function validateMeta(m: MetaState, filePages: number): void {
  if (m.pageCount < META_PAGES || m.pageCount > filePages) {
    corrupt(`the meta counts ${m.pageCount} pages but the file holds ${filePages}`);
  }
  for (const d of [m.main, m.catalog]) checkDescriptor(d, m.pageCount);
  // The unnamed database and the catalog are B+trees in every file.
  if (m.main.kind !== DbKind.BTree || m.catalog.kind !== DbKind.BTree) {
    corrupt(`the meta names index kinds ${m.main.kind} and ${m.catalog.kind}`);
  }
  if (m.freeDir !== 0 && (m.freeDir < FIRST_DATA_PAGE || m.freeDir >= m.pageCount)) {
    corrupt(`the free directory page ${m.freeDir} is outside the file`);
  }
  // A free page outside the file would be handed to a writer as a page to overwrite.
  for (const g of m.inlineFree ?? []) {
    for (const p of g.pages) {
      if (p < FIRST_DATA_PAGE || p >= m.pageCount) corrupt(`the meta lists free page ${p}`);
    }
  }
}

export function checkDescriptor(d: DbDescriptor, pageCount: number): void {
  if (d.root !== 0 && (d.root < FIRST_DATA_PAGE || d.root >= pageCount))
    corrupt(`root page ${d.root} is outside the file`);
  if (d.depth > MAX_DEPTH) corrupt(`a tree claims depth ${d.depth}`);
}
