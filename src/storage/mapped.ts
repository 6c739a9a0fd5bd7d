/**
 * `MappedStorage`: the {@link Storage} of a real file, through the native mmap addon.
 *
 * The file is mapped in fixed-size segments (invariant 6). Segment `i` gets a read-only
 * MAP_PRIVATE view for readers and, when writable, a read-write MAP_SHARED view for the
 * writer, each `segmentSize` bytes long from file offset `i * segmentSize` even when the file
 * is shorter, so a view never has to move as the file grows. The read view of every segment
 * below `size` is mapped eagerly by `open`, `grow` and `refresh`, so `readSegment` makes no
 * system call and cannot fail for a segment below `size`. A write view is mapped by the first
 * `writeSegment` of its segment: commits write pages with `writeAt` and only meta pages (in
 * segment 0) through a view, so a handle that only reads maps none (a mapping's ArrayBuffer
 * is not charged to V8's external memory, see native/mapping.cc, so mapping costs no garbage
 * collection, but each is still a system call and address space).
 *
 * On Linux a MAP_PRIVATE view is not a snapshot: it sees later writes to pages it has not
 * copied (and readers never write, so it copies none). Snapshots come from copy-on-write
 * and the reader table (invariants 1 and 4), not from the mapping.
 */
import * as fs from 'node:fs';
import { constants as bufferConstants } from 'node:buffer';

import { MapKVError } from '../errors';
import { native } from './native';
import { checkByteCount, checkWrite, checkFlushRange, isPowerOfTwo, roundUp } from './ranges';
import type {
  FaultHook,
  FaultOp,
  FlushRange,
  PageWrite,
  PendingWrites,
  Storage,
  StorageOptions,
} from './storage';

/** The advice applied to read views; 'random' suits big files read by key. */
export type ReadAdvice = 'normal' | 'random' | 'sequential';

/** Options of {@link MappedStorage.open}. */
export interface MappedStorageOptions extends StorageOptions {
  /** Open for reads only: the file must exist; no write views are mapped. Default false. */
  readOnly?: boolean;
  /** MAP_POPULATE the read views: fault the file's pages in at open (warm start). */
  populate?: boolean;
  /** madvise advice for the read views. Default 'random'. */
  advice?: ReadAdvice;
}

/** The default segment size of a file: 1 GiB of address space per segment. */
export const DEFAULT_FILE_SEGMENT_SIZE = 2 ** 30;
/** The smallest segment size of a file. */
export const MIN_FILE_SEGMENT_SIZE = 64 * 1024;

export class MappedStorage implements Storage {
  /**
   * Opens `path`, creating it (mode 0o644) when missing unless `readOnly`; the parent folder
   * must exist. Maps every segment below the file's size. Throws MapKVError 'ERR_BAD_OPTION'
   * for a bad option or a path that is not a regular file (a directory, a device, a FIFO), or
   * the system error of open/fstat/mmap (with `path`).
   */
  static open(path: string, options: MappedStorageOptions = {}): MappedStorage {
    const readOnly = readBooleanOption(options.readOnly, 'readOnly');
    const populate = readBooleanOption(options.populate, 'populate');
    const segmentSize = checkSegmentSize(options.segmentSize ?? DEFAULT_FILE_SEGMENT_SIZE);
    const advice = options.advice ?? 'random';
    if (advice !== 'normal' && advice !== 'random' && advice !== 'sequential') {
      throw new MapKVError(
        'ERR_BAD_OPTION',
        `advice must be 'normal', 'random' or 'sequential', got ${String(advice)}`,
      );
    }
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, with the event
    // loop stopped. On a regular file, the only kind kept below, Linux ignores the flag.
    const flags =
      fs.constants.O_NONBLOCK |
      (readOnly ? fs.constants.O_RDONLY : fs.constants.O_RDWR | fs.constants.O_CREAT);
    let fd: number;
    try {
      fd = fs.openSync(path, flags, 0o644);
    } catch (err) {
      // A folder opened for writing fails here rather than at the regular-file check below.
      if ((err as NodeJS.ErrnoException).code === 'EISDIR') {
        throw new MapKVError('ERR_BAD_OPTION', `${path} is not a regular file (a folder)`);
      }
      throw err;
    }
    let st: fs.Stats | undefined;
    try {
      st = fs.fstatSync(fd);
    } finally {
      if (st?.isFile() !== true) fs.closeSync(fd);
    }
    if (!st.isFile()) {
      throw new MapKVError('ERR_BAD_OPTION', `${path} is not a regular file`);
    }
    const storage = new MappedStorage(path, fd, segmentSize, readOnly, populate, advice, st);
    try {
      storage.refresh();
    } catch (err) {
      try {
        storage.close();
      } catch {
        // The open's own error is the one to report.
      }
      throw err;
    }
    return storage;
  }

  readonly segmentSize: number;
  readonly readOnly: boolean;
  readonly path: string;
  /** The open file descriptor (closed by `close()`). */
  readonly fd: number;

  private currentSize = 0;
  private closed = false;
  private faultHook: FaultHook | undefined = undefined;
  private readonly segments: Segment[] = [];
  private readonly populate: boolean;
  private readonly advice: ReadAdvice;
  /** Device and inode of the open file: what `path` must still name (namesFile). */
  private readonly dev: number;
  private readonly ino: number;

  private constructor(
    path: string,
    fd: number,
    segmentSize: number,
    readOnly: boolean,
    populate: boolean,
    advice: ReadAdvice,
    st: fs.Stats,
  ) {
    this.dev = st.dev;
    this.ino = st.ino;
    this.path = path;
    this.fd = fd;
    this.segmentSize = segmentSize;
    this.readOnly = readOnly;
    this.populate = populate;
    this.advice = advice;
  }

  get size(): number {
    return this.currentSize;
  }

  readSegment(i: number): Uint8Array {
    return this.segmentAt(i).read;
  }

  writeSegment(i: number): Uint8Array {
    this.checkWritable();
    const segment = this.segmentAt(i);
    if (segment.write === undefined) {
      try {
        segment.writeBuffer = native.map(this.fd, i * this.segmentSize, this.segmentSize, {
          write: true,
          shared: true,
        });
      } catch (err) {
        throw this.withPath(err);
      }
      segment.write = new Uint8Array(segment.writeBuffer);
    }
    return segment.write;
  }

  /**
   * pwritev of `buffers` at `offset`, in calls of at most `unit` bytes (libuv loops over
   * partial writes and IOV_MAX).
   *
   * Why commits cap each call at 16 KiB (one page, with larger pages): on Linux ext4 (6.x,
   * large folios) the page cache keeps a file's bytes in folios sized by the writes that
   * brought them in, so one pwritev of 1,024 pages leaves 4 MiB folios behind, and every later
   * one-page write into such a folio, and its flush, costs far more. `node
   * bench/folio-writes.mjs` (a 312 MiB file filled by writes of K 4 KiB pages, then commits of 7
   * scattered one-page pwrites and an fdatasync) measured per commit 32-42 us of writes and
   * 208-222 us of fdatasync for K = 1, 45 and 217-220 us for K = 4, 53-57 and 252-262 us for
   * K = 16, 430-452 and 492-515 us for K = 1,024. A copy-on-write store rewrites every page one
   * at a time sooner or later. K = 4 costs those later writes next to nothing and a large value
   * a quarter of the system calls of K = 1: a 10 MiB putSync took 54-55 ms (as with one call
   * per run), against 62 ms one page per call.
   */
  writeAt(offset: number, buffers: readonly Uint8Array[], unit = Infinity): void {
    this.checkWritable();
    checkWrite(offset, buffers, this.currentSize);
    const limit = writeLimit(unit);
    this.fault('write');
    try {
      splitCalls(offset, buffers, limit, (at, piece, bytes) => {
        const n = fs.writevSync(this.fd, piece, at);
        if (n !== bytes) throw new Error(`short write: ${n} of ${bytes} bytes at ${at}`);
      });
    } catch (err) {
      throw this.withPath(err);
    }
  }

  /**
   * The writes of `writeAt` on an I/O thread (Storage.writeAsync), in the same calls:
   * the page-cache copies of a commit's pages (some 3 us per page here) leave the event loop.
   */
  writeAsync(writes: readonly PageWrite[], unit: number): PendingWrites {
    this.checkWritable();
    for (const w of writes) checkWrite(w.offset, w.buffers, this.currentSize);
    const limit = writeLimit(unit);
    this.fault('write');
    const buffers: Uint8Array[] = [];
    const offsets: number[] = [];
    const counts: number[] = [];
    for (const w of writes) {
      splitCalls(w.offset, w.buffers, limit, (at, piece) => {
        // A call of more than 1,024 buffers (pages smaller than the unit never make one) is
        // cut where pwritev would stop anyway: the next call starts where it ends.
        for (let from = 0; from < piece.length; from += IOV_MAX) {
          const part = piece.slice(from, from + IOV_MAX);
          offsets.push(at);
          counts.push(part.length);
          for (const b of part) {
            buffers.push(b);
            at += b.length;
          }
        }
      });
    }
    const started = native.writeAsync(
      this.fd,
      buffers,
      Float64Array.from(offsets),
      Uint32Array.from(counts),
    );
    // As in syncAsync: undefined only when this thread's JavaScript is being ended.
    if (started === undefined) throw new Error('pwritev was not started: the thread is ending');
    const { done, job } = started;
    return {
      done: done.catch((err: unknown) => {
        throw this.withPath(err);
      }),
      stop: () => native.stopWrites(job),
    };
  }

  /** @internal Most bytes per writev call (1 GiB; tests lower it to exercise the pieces). */
  static writePiece = 2 ** 30;

  /**
   * Extends the file to `bytes` with posix_fallocate and maps the segments it reaches. A
   * `bytes` at or below `size` changes nothing. On failure the file is truncated back to the
   * length it had before (posix_fallocate may extend it part way before ENOSPC) and `size`
   * is unchanged. The fault hook runs on every call, a no-op one included.
   */
  grow(bytes: number): void {
    this.checkWritable();
    checkByteCount(bytes, 'grow bytes');
    this.fault('grow');
    if (bytes <= this.currentSize) return;
    const before = fs.fstatSync(this.fd).size;
    const mappedBefore = this.segments.length;
    try {
      native.fallocate(this.fd, this.currentSize, bytes - this.currentSize);
      this.mapSegmentsBelow(bytes);
    } catch (err) {
      try {
        this.unmapSegmentsFrom(mappedBefore);
      } catch {
        // The grow's own error is the one to report.
      }
      this.restoreFileSize(before);
      throw this.withPath(err);
    }
    this.currentSize = bytes;
  }

  /** Re-reads the file's size and maps the segments it now reaches; returns the size. */
  refresh(): number {
    this.checkOpen();
    const size = fs.fstatSync(this.fd).size;
    try {
      this.mapSegmentsBelow(size);
    } catch (err) {
      throw this.withPath(err);
    }
    this.currentSize = size;
    return size;
  }

  /** Punches `[offset, offset + length)` out of the file (see Storage.discard). */
  discard(offset: number, length: number): void {
    this.checkWritable();
    if (length <= 0) return;
    try {
      native.punchHole(this.fd, offset, length);
    } catch (err) {
      throw this.withPath(err);
    }
  }

  /**
   * Whether `path` names the open file: a stat of the path against the device and inode of
   * the descriptor. A path that cannot be looked up for another reason than absence (EACCES
   * on a folder, say) counts as naming it: only a file known to be gone or replaced does not.
   */
  namesFile(): boolean {
    this.checkOpen();
    let st: fs.Stats | undefined;
    try {
      st = fs.statSync(this.path, { throwIfNoEntry: false });
    } catch (err) {
      return (err as NodeJS.ErrnoException).code !== 'ENOTDIR';
    }
    return st !== undefined && st.dev === this.dev && st.ino === this.ino;
  }

  /** msync(MS_SYNC) of each range through the write views, split at segment edges. */
  flush(ranges: readonly FlushRange[]): void {
    this.checkWritable();
    const pageSize = native.pageSize();
    const limit = Math.min(
      roundUp(this.currentSize, pageSize),
      this.segments.length * this.segmentSize,
    );
    for (const range of ranges) checkFlushRange(range, pageSize, limit);
    this.fault('flush');
    try {
      for (const { offset, length } of ranges) {
        let at = offset;
        const end = offset + length;
        while (at < end) {
          const index = Math.floor(at / this.segmentSize);
          const within = at - index * this.segmentSize;
          const piece = Math.min(end - at, this.segmentSize - within);
          // msync syncs only a MAP_SHARED range: map the write view if it is not yet.
          this.writeSegment(index);
          native.msync(this.segments[index].writeBuffer!, within, piece, true);
          at += piece;
        }
      }
    } catch (err) {
      throw this.withPath(err);
    }
  }

  /** fdatasync of the file. */
  sync(): void {
    this.checkWritable();
    this.fault('sync');
    try {
      native.fdatasync(this.fd);
    } catch (err) {
      throw this.withPath(err);
    }
  }

  /** fdatasync of the file on an I/O thread. */
  async syncAsync(): Promise<void> {
    this.checkWritable();
    this.fault('sync');
    try {
      const flushed = native.fdatasyncAsync(this.fd);
      // Undefined only once this thread's JavaScript is being ended (native NewPromise): the
      // flush never started, so it must not count as done.
      if (flushed === undefined) throw new Error('fdatasync was not started: the thread is ending');
      await flushed;
    } catch (err) {
      throw this.withPath(err);
    }
  }

  /**
   * Unmaps (and so detaches) every view, then closes the file. Idempotent. Every view is
   * unmapped even if one fails; the first error is thrown after the file is closed.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    let failure: unknown = undefined;
    try {
      this.unmapSegmentsFrom(0);
    } catch (err) {
      failure = err;
    }
    fs.closeSync(this.fd);
    if (failure !== undefined) throw this.withPath(failure);
  }

  setFaultHook(hook: FaultHook | undefined): void {
    this.faultHook = hook;
  }

  // ---- helpers ----

  private segmentAt(i: number): Segment {
    this.checkOpen();
    if (!Number.isInteger(i) || i < 0 || i * this.segmentSize >= this.currentSize) {
      throw new RangeError(
        `segment ${i} is not below the file's size (${this.currentSize} bytes, ` +
          `${this.segmentSize}-byte segments)`,
      );
    }
    return this.segments[i];
  }

  /** Maps both views of every segment that starts below `bytes` and is not mapped yet. */
  private mapSegmentsBelow(bytes: number): void {
    while (this.segments.length * this.segmentSize < bytes) {
      const offset = this.segments.length * this.segmentSize;
      const readBuffer = native.map(this.fd, offset, this.segmentSize, {
        populate: this.populate,
      });
      try {
        native.madvise(readBuffer, 0, this.segmentSize, this.advice);
      } catch (err) {
        native.unmap(readBuffer);
        throw err;
      }
      this.segments.push({
        read: new Uint8Array(readBuffer),
        readBuffer,
        write: undefined,
        writeBuffer: undefined,
      });
    }
  }

  /** Unmaps the views of segments `from` and later and forgets them; throws the first error. */
  private unmapSegmentsFrom(from: number): void {
    let failure: unknown = undefined;
    for (const segment of this.segments.splice(from)) {
      for (const buffer of [segment.readBuffer, segment.writeBuffer]) {
        if (buffer === undefined) continue;
        try {
          native.unmap(buffer);
        } catch (err) {
          failure ??= err;
        }
      }
    }
    if (failure !== undefined) throw failure;
  }

  /** After a failed grow: puts the file back to `length` if the attempt changed its size. */
  private restoreFileSize(length: number): void {
    try {
      if (fs.fstatSync(this.fd).size !== length) fs.ftruncateSync(this.fd, length);
    } catch {
      // The grow's own error is the one to report; a file left longer is harmless, since
      // `size` is unchanged and the next grow allocates over it.
    }
  }

  private fault(op: FaultOp): void {
    this.faultHook?.(op);
  }

  private checkOpen(): void {
    if (this.closed) throw new MapKVError('ERR_CLOSED', `storage '${this.path}' is closed`);
  }

  private checkWritable(): void {
    this.checkOpen();
    if (this.readOnly) {
      throw new MapKVError('ERR_READ_ONLY', `storage '${this.path}' is open for reads only`);
    }
  }

  /** Adds `path` to a system error from the addon, as Node's fs errors carry it. */
  private withPath(err: unknown): unknown {
    if (err instanceof Error && 'syscall' in err && !('path' in err)) {
      Object.assign(err, { path: this.path });
    }
    return err;
  }
}

/** Both views of one segment. */
interface Segment {
  read: Uint8Array;
  readBuffer: ArrayBuffer;
  /** Mapped by the first writeSegment of the segment; never on a read-only storage. */
  write: Uint8Array | undefined;
  writeBuffer: ArrayBuffer | undefined;
}

function checkSegmentSize(segmentSize: number): number {
  const pageSize = native.pageSize();
  if (
    !Number.isInteger(segmentSize) ||
    segmentSize < MIN_FILE_SEGMENT_SIZE ||
    !isPowerOfTwo(segmentSize) ||
    segmentSize % pageSize !== 0 ||
    segmentSize > bufferConstants.MAX_LENGTH
  ) {
    throw new MapKVError(
      'ERR_BAD_OPTION',
      `segmentSize must be a power of two of at least ${MIN_FILE_SEGMENT_SIZE} bytes, a ` +
        `multiple of the OS page size (${pageSize}) and at most ${bufferConstants.MAX_LENGTH}, ` +
        `got ${segmentSize}`,
    );
  }
  return segmentSize;
}

function readBooleanOption(value: boolean | undefined, name: string): boolean {
  if (value === undefined) return false;
  if (typeof value !== 'boolean') {
    throw new MapKVError('ERR_BAD_OPTION', `${name} must be a boolean, got ${typeof value}`);
  }
  return value;
}

/** Buffers per pwritev call at most (Linux's IOV_MAX). */
const IOV_MAX = 1024;

/**
 * The most bytes one call of a write in units of `unit` may carry: the unit, and never more
 * than `MappedStorage.writePiece` (Linux writes at most 0x7ffff000 bytes per call, and Node's
 * writevSync turns a longer count into a bogus error: an overflow run of several GiB goes out in
 * pieces). Throws a RangeError for a unit that is not a positive integer or Infinity.
 */
function writeLimit(unit: number): number {
  if (!(unit > 0 && (Number.isInteger(unit) || unit === Infinity))) {
    throw new RangeError(`write unit must be a positive integer, got ${unit}`);
  }
  return Math.min(unit, MappedStorage.writePiece);
}

/**
 * Cuts the bytes of `buffers`, written one after the other from `offset`, into calls of at
 * most `limit` bytes, and hands each to `call` with its file offset and byte count.
 */
function splitCalls(
  offset: number,
  buffers: readonly Uint8Array[],
  limit: number,
  call: (at: number, piece: Uint8Array[], bytes: number) => void,
): void {
  let at = offset;
  let piece: Uint8Array[] = [];
  let pieceBytes = 0;
  const flush = (): void => {
    if (piece.length === 0) return;
    call(at, piece, pieceBytes);
    at += pieceBytes;
    piece = [];
    pieceBytes = 0;
  };
  for (const buf of buffers) {
    for (let from = 0; from < buf.length;) {
      const take = Math.min(buf.length - from, limit - pieceBytes);
      piece.push(from === 0 && take === buf.length ? buf : buf.subarray(from, from + take));
      pieceBytes += take;
      from += take;
      if (pieceBytes === limit) flush();
    }
  }
  flush();
}
