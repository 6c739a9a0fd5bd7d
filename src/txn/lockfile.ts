/**
 * The lock file `${path}-lock` beside a database file: the writer lock and the reader table.
 *
 * Writer lock (invariant 7): flock(LOCK_EX) on the lock file, held for the span of one write
 * transaction. flock belongs to an open file description, so every handle (each opens the
 * lock file itself) conflicts with every other: in another process, another worker_thread or
 * the same thread. The kernel drops it when its process dies, and Node closes a worker's
 * files when the worker ends, so a writer that dies never leaves the lock taken.
 *
 * Reader table (invariant 4): see readers.ts. Each handle maps the file MAP_SHARED and owns
 * one slot from open to close.
 */
import * as fs from 'node:fs';
import { MapKVError } from '../errors';
import { native } from '../storage/native';
import {
  H_DURABLE,
  H_MAGIC,
  H_PUBLISHED,
  H_SLOTS,
  H_SLOT_SIZE,
  H_VERSION,
  H_WRITER,
  HEADER_SIZE,
  LOCK_MAGIC,
  LOCK_VERSION,
  MAX_READERS,
  ReaderTable,
  SLOT_SIZE,
  TABLE_MAP_LENGTH,
  currentThread,
  loadWord64,
} from './readers';

/** Default `maxReaders`: a 4 KiB table (64-byte header + 126 slots of 32 bytes). */
export const DEFAULT_MAX_READERS = 126;
/** Default `lockTimeout` in milliseconds. */
export const DEFAULT_LOCK_TIMEOUT = 10_000;

export interface LockFileOptions {
  /** Slots the reader table must have at least (the table may be bigger already). */
  maxReaders: number;
}

/**
 * The handle of this thread holding the writer lock of each lock file (by device and inode).
 * Module state is per thread: each worker_thread loads its own copy.
 */
const heldByThisThread = new Map<string, LockFile>();

/** One word of shared memory to sleep on with Atomics.wait (nobody ever notifies it). */
const SLEEP_CELL = new Int32Array(new SharedArrayBuffer(4));

/** Blocks the calling thread for about `ms` milliseconds. */
export function sleep(ms: number): void {
  Atomics.wait(SLEEP_CELL, 0, 0, ms);
}

export class LockFile {
  /**
   * Opens (creating when missing) the lock file of the database at `dataPath`, makes sure
   * its table holds `maxReaders` slots, and claims a slot for this handle. Throws
   * ERR_READERS_FULL when every slot belongs to a live handle.
   */
  static open(dataPath: string, opts: LockFileOptions): LockFile {
    const path = `${dataPath}-lock`;
    const fd = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
    let buf: ArrayBuffer | null = null;
    try {
      const want = HEADER_SIZE + opts.maxReaders * SLOT_SIZE;
      // Concurrent fallocates of the same range are harmless: neither changes data.
      if (native.fileSize(fd) < want) native.fallocate(fd, 0, want);
      buf = native.map(fd, 0, TABLE_MAP_LENGTH, { write: true, shared: true });
      initHeader(buf, path);
      // Raise the table's size only now that the file holds it.
      for (;;) {
        const cur = native.atomicLoad32(buf, H_SLOTS);
        if (cur >= opts.maxReaders) break;
        if (native.atomicCas32(buf, H_SLOTS, cur, opts.maxReaders)) break;
      }
      const slots = native.atomicLoad32(buf, H_SLOTS);
      if (slots > MAX_READERS || native.fileSize(fd) < HEADER_SIZE + slots * SLOT_SIZE) {
        throw new MapKVError(
          'ERR_CORRUPT',
          `the lock file ${path} is damaged (its table claims ${slots} slots); delete it ` +
            'when no process has the database open',
        );
      }
      const st = fs.fstatSync(fd);
      const lock = new LockFile(path, fd, buf, `${st.dev}:${st.ino}`);
      lock.claim();
      return lock;
    } catch (err) {
      if (buf !== null) native.unmap(buf);
      fs.closeSync(fd);
      throw err;
    }
  }

  readonly table: ReaderTable;
  /** This handle's slot in the reader table. */
  slot = -1;
  /** Random id of this handle, stored in its slot. */
  readonly owner = Math.floor(Math.random() * 2 ** 52) + 1;
  /**
   * Set by the environment owning this handle: when another handle of this thread wants the
   * writer lock while this one holds it only to finish an async commit's flush, finishes that
   * commit synchronously (which releases the lock) and returns true; returns false when this
   * handle is inside a write transaction.
   */
  finishPending: (() => boolean) | null = null;
  private locked = false;
  private closed = false;
  /** The header's words, for the diagnostic writer pid (plain loads and stores suffice). */
  private readonly header: Uint32Array;

  private constructor(
    readonly path: string,
    private readonly fd: number,
    private readonly buf: ArrayBuffer,
    /** The lock file's identity (device:inode). */
    private readonly key: string,
  ) {
    this.table = new ReaderTable(buf);
    this.header = new Uint32Array(buf, 0, HEADER_SIZE >> 2);
  }

  /** Claims a slot (again, if this handle's slot was lost); throws ERR_READERS_FULL. */
  claim(): void {
    const slot = this.table.claim(this.owner);
    if (slot < 0) {
      const n = this.table.slots();
      throw new MapKVError(
        'ERR_READERS_FULL',
        `the reader table of ${this.path} is full: ${n} live handles have the database open ` +
          `(each open handle, in any process or worker, takes one slot); raise the maxReaders ` +
          `option (${n} now) or close handles`,
      );
    }
    this.slot = slot;
  }

  /** Whether this handle still owns its slot (a plain read). */
  ownsSlot(): boolean {
    return this.slot >= 0 && this.table.owns(this.slot, this.owner);
  }

  /** Stores the oldest txn id this handle pins (0: none) in its slot. */
  publish(txnId: number): void {
    if (!this.closed) this.table.publish(this.slot, txnId);
  }

  /** The newest txn id a sync 'full' writer made durable (header word). */
  durableTxn(): number {
    return loadWord64(this.buf, H_DURABLE);
  }

  /** Records that commit `txnId` is durable; called by the writer, under the writer lock. */
  setDurable(txnId: number): void {
    native.atomicStore64(this.buf, H_DURABLE, txnId);
  }

  /**
   * The newest txn id other handles may adopt (header word; see env.ts, "Visibility"). A plain
   * read of its two halves, for the read path: a value torn by a concurrent store only makes
   * the caller look at the metas once more, where `publishedTxn` is read whole.
   */
  publishedHint(): number {
    const h = this.header;
    const at = H_PUBLISHED >> 2;
    return h[at]! + h[at + 1]! * 2 ** 32;
  }

  /** The newest txn id other handles may adopt, read whole. */
  publishedTxn(): number {
    return loadWord64(this.buf, H_PUBLISHED);
  }

  /** Records that other handles may adopt commit `txnId`; under the writer lock only. */
  setPublished(txnId: number): void {
    native.atomicStore64(this.buf, H_PUBLISHED, txnId);
  }

  /** Whether some handle holds (or, dead, last held and never released) the writer lock. */
  writerRecorded(): boolean {
    return this.header[H_WRITER >> 2] !== 0;
  }

  /** Whether this handle holds the writer lock. */
  get held(): boolean {
    return this.locked;
  }

  /**
   * Runs `fn` holding the writer lock when nobody holds it now, and returns what it returns;
   * undefined (without running it) when the lock is taken. For a reader that must see the
   * metas with no commit in progress: it neither waits nor marks itself as a writer (`fn` only
   * reads, and takes nothing else).
   */
  whileFree<T>(fn: () => T): T | undefined {
    if (this.locked) return fn();
    if (!native.flock(this.fd, true, false)) return undefined;
    try {
      return fn();
    } finally {
      native.funlock(this.fd);
    }
  }

  /** Takes the writer lock if nobody holds it; never waits. */
  tryLock(): boolean {
    if (this.locked) throw new Error('internal: the writer lock is already held by this handle');
    if (!native.flock(this.fd, true, false)) return false;
    this.locked = true;
    heldByThisThread.set(this.key, this);
    this.header[H_WRITER >> 2] = currentThread().pid;
    return true;
  }

  /**
   * Takes the writer lock, waiting up to `timeoutMs` (short sleeps between non-blocking
   * tries, so a dying holder never leaves us blocked in the kernel); throws ERR_LOCKED after.
   */
  lock(timeoutMs: number): void {
    if (this.tryLock()) return;
    const holder = heldByThisThread.get(this.key);
    if (holder !== undefined) {
      // Another handle of this thread holds the lock. If it holds it only for the flush of an
      // async commit, that flush is finished here, as the holder's own next write would do.
      if (holder.finishPending?.() === true && this.tryLock()) return;
      // Otherwise it is inside a write transaction: that cannot end while this thread waits,
      // so waiting would only end in the timeout.
      throw new MapKVError(
        'ERR_LOCKED',
        `the write lock of ${this.path} is held by another handle in this thread, inside ` +
          'its write transaction: a write transaction cannot wait for another of the same thread',
      );
    }
    const deadline = Date.now() + timeoutMs;
    let pause = 0.05;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) throw this.lockedError(timeoutMs);
      sleep(Math.min(pause, left));
      if (this.tryLock()) return;
      pause = Math.min(pause * 2, 5);
    }
  }

  unlock(): void {
    if (!this.locked) return;
    this.locked = false;
    heldByThisThread.delete(this.key);
    this.header[H_WRITER >> 2] = 0;
    native.funlock(this.fd);
  }

  /** The error of a writer that waited `timeoutMs` for the lock in vain. */
  lockedError(timeoutMs: number): MapKVError {
    const holder = this.closed ? 0 : this.header[H_WRITER >> 2]!;
    const who =
      holder === 0
        ? ''
        : holder === process.pid
          ? ' (by this process: another handle or worker)'
          : ` (by process ${holder})`;
    return new MapKVError(
      'ERR_LOCKED',
      `the write lock of ${this.path} is held${who}; gave up after ${timeoutMs} ms ` +
        '(the lockTimeout option)',
    );
  }

  /** Releases the slot and the writer lock, unmaps and closes the lock file. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.unlock();
    this.closed = true;
    try {
      if (this.ownsSlot()) this.table.release(this.slot);
      native.unmap(this.buf);
    } finally {
      fs.closeSync(this.fd);
    }
  }
}

/** Writes the header of a new lock file, or checks the header of an existing one. */
function initHeader(buf: ArrayBuffer, path: string): void {
  if (native.atomicLoad32(buf, H_MAGIC) === 0) {
    // Every opener writes the same values, so racing openers agree; the magic goes last.
    native.atomicStore32(buf, H_VERSION, LOCK_VERSION);
    native.atomicStore32(buf, H_SLOT_SIZE, SLOT_SIZE);
    native.atomicCas32(buf, H_MAGIC, 0, LOCK_MAGIC);
  }
  if (native.atomicLoad32(buf, H_MAGIC) !== LOCK_MAGIC) {
    throw new MapKVError('ERR_INCOMPATIBLE', `${path} is not a mapkv lock file`);
  }
  const version = native.atomicLoad32(buf, H_VERSION);
  const slotSize = native.atomicLoad32(buf, H_SLOT_SIZE);
  if (version !== LOCK_VERSION || slotSize !== SLOT_SIZE) {
    throw new MapKVError(
      'ERR_INCOMPATIBLE',
      `the lock file ${path} has version ${version}; this mapkv uses version ${LOCK_VERSION}`,
    );
  }
}
