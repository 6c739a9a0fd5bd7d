/**
 * `MemoryStorage`: the {@link Storage} of plain buffers, for tests and power-loss simulation.
 *
 * Each segment is one zero-filled Uint8Array of `segmentSize` bytes; its read and write views
 * are the same object, so a write is visible to readers at once (as through the two mappings
 * of a file).
 *
 * Durability model. Beside the current bytes the storage keeps a durable image: what a power
 * loss is sure to keep.
 * - `flush(ranges)` copies those byte ranges into the durable image (msync MS_SYNC).
 * - `sync()` copies every byte below `size` and makes `size` durable (fdatasync).
 * - `grow(bytes)` is volatile until the next `sync()`: the durable size stays the size at the
 *   last sync. Bytes flushed past the durable size are in the durable image, but whether the
 *   file still reaches them after a crash depends on whether the size survived.
 * - A crash (`crashImage`) keeps the durable size, or (at random) the current size; within
 *   that length every unit (`unitSize` bytes, the simulated OS page) whose current bytes
 *   differ from the durable ones is dropped, kept or torn at random. Units never flushed past
 *   the durable size read as zeros when dropped, like blocks allocated by posix_fallocate.
 */
import { MapKVError, systemError } from '../errors';
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

/** Options of {@link MemoryStorage}. */
export interface MemoryStorageOptions extends StorageOptions {
  /** Reads only: `writeSegment`, `grow`, `flush` and `sync` throw ERR_READ_ONLY. */
  readOnly?: boolean;
  /**
   * The simulated OS page: flush ranges must be multiples of it, and crash images drop, keep
   * or tear whole units. A power of two from 512 up to `segmentSize`; default 4096.
   */
  unitSize?: number;
  /**
   * The simulated disk's capacity in bytes: `grow` past it throws an ENOSPC system error
   * (syscall 'fallocate') and changes nothing. Default unlimited.
   */
  capacity?: number;
}

/** Options of {@link MemoryStorage.crashImage}. */
export interface CrashImageOptions {
  /** The disk's atomic write unit (a sector): torn units mix whole sectors. Default 512. */
  tearUnit?: number;
}

/** The default segment size of a MemoryStorage: 1 MiB. */
export const DEFAULT_MEMORY_SEGMENT_SIZE = 2 ** 20;
/** The smallest segment size of a MemoryStorage. */
export const MIN_MEMORY_SEGMENT_SIZE = 4096;

export class MemoryStorage implements Storage {
  /**
   * A storage holding `image` as its file: size `image.length`, every byte durable. The
   * image is copied.
   */
  static fromImage(image: Uint8Array, options: MemoryStorageOptions = {}): MemoryStorage {
    const storage = new MemoryStorage(options);
    storage.extendTo(image.length);
    storage.currentSize = image.length;
    for (let i = 0; i < storage.segments.length; i++) {
      const start = i * storage.segmentSize;
      storage.segments[i].set(image.subarray(start, start + storage.segmentSize));
    }
    storage.makeAllDurable();
    return storage;
  }

  readonly segmentSize: number;
  readonly readOnly: boolean;
  readonly path = '';
  /** The simulated OS page size (see {@link MemoryStorageOptions.unitSize}). */
  readonly unitSize: number;

  private currentSize = 0;
  private durableBytes = 0;
  private closed = false;
  private faultHook: FaultHook | undefined = undefined;
  private readonly capacity: number;
  private segments: Uint8Array<ArrayBuffer>[] = [];
  /** Durable bytes per segment; a missing entry reads as zeros. */
  private durable: (Uint8Array | undefined)[] = [];

  /** An empty storage (size 0). Throws MapKVError 'ERR_BAD_OPTION' for a bad option. */
  constructor(options: MemoryStorageOptions = {}) {
    const segmentSize = options.segmentSize ?? DEFAULT_MEMORY_SEGMENT_SIZE;
    if (!isPowerOfTwo(segmentSize) || segmentSize < MIN_MEMORY_SEGMENT_SIZE) {
      throw new MapKVError(
        'ERR_BAD_OPTION',
        `segmentSize must be a power of two of at least ${MIN_MEMORY_SEGMENT_SIZE}, ` +
          `got ${segmentSize}`,
      );
    }
    const unitSize = options.unitSize ?? 4096;
    if (!isPowerOfTwo(unitSize) || unitSize < 512 || unitSize > segmentSize) {
      throw new MapKVError(
        'ERR_BAD_OPTION',
        `unitSize must be a power of two from 512 to segmentSize, got ${unitSize}`,
      );
    }
    const capacity = options.capacity ?? Number.MAX_SAFE_INTEGER;
    if (!Number.isSafeInteger(capacity) || capacity < 0) {
      throw new MapKVError('ERR_BAD_OPTION', `capacity must be a byte count, got ${capacity}`);
    }
    if (options.readOnly !== undefined && typeof options.readOnly !== 'boolean') {
      throw new MapKVError('ERR_BAD_OPTION', 'readOnly must be a boolean');
    }
    this.segmentSize = segmentSize;
    this.unitSize = unitSize;
    this.capacity = capacity;
    this.readOnly = options.readOnly ?? false;
  }

  get size(): number {
    return this.currentSize;
  }

  /** The size a power loss is sure to keep: the size at the last `sync()` (or open). */
  get durableSize(): number {
    return this.durableBytes;
  }

  readSegment(i: number): Uint8Array {
    return this.segmentAt(i);
  }

  writeSegment(i: number): Uint8Array {
    this.checkWritable();
    return this.segmentAt(i);
  }

  /**
   * Extends the storage to `bytes` (zero-filled). A `bytes` at or below `size` changes nothing.
   * Past `capacity` it throws ENOSPC and changes nothing. The fault hook runs on every call, a
   * no-op one included.
   */
  grow(bytes: number): void {
    this.checkWritable();
    checkByteCount(bytes, 'grow bytes');
    this.fault('grow');
    if (bytes <= this.currentSize) return;
    if (bytes > this.capacity) throw systemError('ENOSPC', 'fallocate');
    this.extendTo(bytes);
    // Bytes past the old end read as zeros, as the file's new blocks do.
    this.fill(this.currentSize, bytes, 0);
    this.currentSize = bytes;
  }

  /** No other process shares a MemoryStorage: the size is the size. */
  refresh(): number {
    this.checkOpen();
    return this.currentSize;
  }

  /**
   * Copies `buffers` into the current bytes at `offset` (volatile until flushed). There are no
   * system calls here, so the `unit` of Storage.writeAt has nothing to cap.
   */
  writeAt(offset: number, buffers: readonly Uint8Array[]): void {
    this.checkWritable();
    checkWrite(offset, buffers, this.currentSize);
    this.fault('write');
    this.copyIn(offset, buffers);
  }

  /**
   * Storage.writeAsync, made at once: every write is in when this returns, so `stop` always
   * says so. (The power-loss simulation sees the same bytes at the same points as with
   * writeAt.)
   */
  writeAsync(writes: readonly PageWrite[]): PendingWrites {
    this.checkWritable();
    for (const w of writes) checkWrite(w.offset, w.buffers, this.currentSize);
    this.fault('write');
    for (const w of writes) this.copyIn(w.offset, w.buffers);
    return { done: Promise.resolve(), stop: () => true };
  }

  private copyIn(offset: number, buffers: readonly Uint8Array[]): void {
    let at = offset;
    for (const b of buffers) {
      for (let done = 0; done < b.length;) {
        const i = Math.floor(at / this.segmentSize);
        const within = at - i * this.segmentSize;
        const piece = Math.min(b.length - done, this.segmentSize - within);
        this.segments[i].set(b.subarray(done, done + piece), within);
        done += piece;
        at += piece;
      }
    }
  }

  /** Copies the ranges' current bytes into the durable image. */
  flush(ranges: readonly FlushRange[]): void {
    this.checkWritable();
    const limit = roundUp(this.currentSize, this.unitSize);
    for (const range of ranges) checkFlushRange(range, this.unitSize, limit);
    this.fault('flush');
    for (const { offset, length } of ranges) {
      this.copyToDurable(offset, Math.min(offset + length, this.currentSize));
    }
  }

  /** Zeroes the range's current bytes, as a punched hole reads (volatile until synced). */
  discard(offset: number, length: number): void {
    this.checkWritable();
    if (length <= 0) return;
    this.fill(offset, Math.min(offset + length, this.currentSize), 0);
  }

  /** A MemoryStorage has no path to lose. */
  namesFile(): boolean {
    this.checkOpen();
    return true;
  }

  /** Makes every current byte and the current size durable. */
  sync(): void {
    this.checkWritable();
    this.fault('sync');
    this.makeAllDurable();
  }

  /** Like `sync`; the bytes written before the call are durable when the promise resolves. */
  async syncAsync(): Promise<void> {
    this.sync();
    await Promise.resolve();
  }

  /**
   * Detaches every segment's buffer (a stale view reads length 0, like an unmapped one) and
   * drops the durable image. Idempotent; later calls other than `close` throw ERR_CLOSED.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const segment of this.segments) {
      const buffer = segment.buffer;
      // Transferring an ArrayBuffer detaches it; the clone is dropped at once.
      structuredClone(buffer, { transfer: [buffer] });
    }
    this.segments = [];
    this.durable = [];
  }

  setFaultHook(hook: FaultHook | undefined): void {
    this.faultHook = hook;
  }

  /**
   * A power-loss image: the file as a disk could hold it if power failed now.
   *
   * Random choices, each one call of `rng` (uniform in [0, 1)):
   * - when `size` > `durableSize`: the image is `durableSize` bytes long if `rng() < 0.5`,
   *   else `size` bytes long (the grown size reached the disk);
   * - for each unit whose current bytes differ from the durable ones: `rng() < 1/3` drops it
   *   (durable bytes), `< 2/3` keeps it (current bytes), else tears it: each `tearUnit`-byte
   *   sector is current if `rng() < 0.5`, else durable.
   *
   * So an rng that always returns 0 gives the durable image, and one that always returns 0.5
   * gives the current bytes. Returns a fresh buffer.
   */
  crashImage(rng: () => number, options: CrashImageOptions = {}): Uint8Array {
    this.checkOpen();
    const tearUnit = options.tearUnit ?? 512;
    if (!isPowerOfTwo(tearUnit) || tearUnit > this.unitSize) {
      throw new RangeError(`tearUnit must be a power of two up to unitSize, got ${tearUnit}`);
    }
    let length = this.currentSize;
    if (this.currentSize > this.durableBytes && rng() < 0.5) length = this.durableBytes;
    const image = this.readDurable(length);
    for (let unit = 0; unit < length; unit += this.unitSize) {
      const end = Math.min(unit + this.unitSize, length);
      const current = this.readCurrent(unit, end);
      if (bytesEqual(current, image.subarray(unit, end))) continue;
      const choice = rng();
      if (choice < 1 / 3) continue;
      if (choice < 2 / 3) {
        image.set(current, unit);
        continue;
      }
      for (let sector = unit; sector < end; sector += tearUnit) {
        if (rng() < 0.5) {
          image.set(current.subarray(sector - unit, sector - unit + tearUnit), sector);
        }
      }
    }
    return image;
  }

  /** A copy of the current bytes, `size` long. */
  currentImage(): Uint8Array {
    this.checkOpen();
    return this.readCurrent(0, this.currentSize);
  }

  /** A copy of the durable bytes, `durableSize` long. */
  durableImage(): Uint8Array {
    this.checkOpen();
    return this.readDurable(this.durableBytes);
  }

  // ---- helpers ----

  private segmentAt(i: number): Uint8Array {
    this.checkOpen();
    if (!Number.isInteger(i) || i < 0 || i * this.segmentSize >= this.currentSize) {
      throw new RangeError(
        `segment ${i} is not below the storage's size (${this.currentSize} bytes, ` +
          `${this.segmentSize}-byte segments)`,
      );
    }
    return this.segments[i];
  }

  /** Allocates the segments that start below `bytes`. */
  private extendTo(bytes: number): void {
    while (this.segments.length * this.segmentSize < bytes) {
      this.segments.push(new Uint8Array(this.segmentSize));
    }
  }

  /** Sets current bytes [start, end) to `value`. */
  private fill(start: number, end: number, value: number): void {
    for (let at = start; at < end;) {
      const i = Math.floor(at / this.segmentSize);
      const within = at - i * this.segmentSize;
      const piece = Math.min(end - at, this.segmentSize - within);
      this.segments[i].fill(value, within, within + piece);
      at += piece;
    }
  }

  /** Copies current bytes [start, end) into the durable image. */
  private copyToDurable(start: number, end: number): void {
    for (let at = start; at < end;) {
      const i = Math.floor(at / this.segmentSize);
      const within = at - i * this.segmentSize;
      const piece = Math.min(end - at, this.segmentSize - within);
      const target = (this.durable[i] ??= new Uint8Array(this.segmentSize));
      target.set(this.segments[i].subarray(within, within + piece), within);
      at += piece;
    }
  }

  private makeAllDurable(): void {
    this.copyToDurable(0, this.currentSize);
    this.durableBytes = this.currentSize;
  }

  /** A fresh copy of current bytes [start, end). */
  private readCurrent(start: number, end: number): Uint8Array {
    const out = new Uint8Array(end - start);
    for (let at = start; at < end;) {
      const i = Math.floor(at / this.segmentSize);
      const within = at - i * this.segmentSize;
      const piece = Math.min(end - at, this.segmentSize - within);
      out.set(this.segments[i].subarray(within, within + piece), at - start);
      at += piece;
    }
    return out;
  }

  /** A fresh copy of durable bytes [0, length); never-flushed bytes read as zeros. */
  private readDurable(length: number): Uint8Array {
    const out = new Uint8Array(length);
    for (let i = 0; i * this.segmentSize < length; i++) {
      const segment = this.durable[i];
      if (segment === undefined) continue;
      out.set(
        segment.subarray(0, Math.min(this.segmentSize, length - i * this.segmentSize)),
        i * this.segmentSize,
      );
    }
    return out;
  }

  private fault(op: FaultOp): void {
    this.faultHook?.(op);
  }

  private checkOpen(): void {
    if (this.closed) throw new MapKVError('ERR_CLOSED', 'memory storage is closed');
  }

  private checkWritable(): void {
    this.checkOpen();
    if (this.readOnly) {
      throw new MapKVError('ERR_READ_ONLY', 'memory storage is open for reads only');
    }
  }
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}
