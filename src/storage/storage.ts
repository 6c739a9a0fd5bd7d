/**
 * The storage contract the engine runs on. Two implementations keep it:
 * `MappedStorage` (the real file, through the native mmap addon) and `MemoryStorage`
 * (plain buffers, for tests and power-loss simulation).
 *
 * The file is addressed in fixed-size segments. Segment `i` covers file bytes
 * `[i * segmentSize, (i + 1) * segmentSize)`. A segment's views are created once and never
 * move or shrink while the storage is open, so the engine may cache them (invariant 6).
 * A view may be longer than the file: bytes at or past `size` must never be touched (on a
 * real mapping that is a SIGBUS). The engine guarantees that by checking every page number
 * against the pinned snapshot's page count, and the page count against `size`.
 */
export interface Storage {
  /** Bytes per segment: a power of two, a multiple of the OS page size and of the db page size. */
  readonly segmentSize: number;
  /** The file's size in bytes, as last grown or refreshed by this handle. */
  readonly size: number;
  /** True when opened for reads only: `writeSegment`, `grow`, `flush` and `sync` throw. */
  readonly readOnly: boolean;
  /** The path of the backing file ('' for MemoryStorage). */
  readonly path: string;

  /**
   * The read view of segment `i` (a read-only MAP_PRIVATE mapping on MappedStorage).
   * Requires `i * segmentSize < size`. The same object is returned on every call.
   */
  readSegment(i: number): Uint8Array;

  /**
   * The writable view of segment `i` (a MAP_SHARED mapping on MappedStorage). Bytes written
   * here are visible through `readSegment(i)` at once, and reach the disk on `flush`.
   * Requires `i * segmentSize < size` and a writable storage.
   */
  writeSegment(i: number): Uint8Array;

  /**
   * Writes the bytes of `buffers`, one after the other, at byte `offset` of the file (pwritev
   * on MappedStorage). They are visible through every view at once and become durable on
   * `sync`. Requires `offset` plus their length at or below `size` and a writable storage.
   * Commits write their pages this way rather than through `writeSegment`: on Linux ext4,
   * fdatasync of a few scattered pages dirtied through a MAP_SHARED mapping was measured at
   * 2-3x the cost of the same pages written with pwrite (`node bench/flush-paths.mjs`).
   *
   * `unit` (a positive integer, default unlimited) caps the bytes of one system call: commits
   * pass their page size, so every page goes in on its own (see MappedStorage.writeAt for why).
   */
  writeAt(offset: number, buffers: readonly Uint8Array[], unit?: number): void;

  /**
   * `writeAt` of each of `writes` (with the same `unit`), made on an I/O thread on
   * MappedStorage, so that the event loop goes on meanwhile (at once on MemoryStorage). The
   * arguments are checked and the fault hook runs once at the call: a bad argument or a fault
   * throws from it, having written nothing. The caller leaves the buffers unchanged until
   * `done` settles.
   */
  writeAsync(writes: readonly PageWrite[], unit: number): PendingWrites;

  /**
   * Makes the file at least `bytes` long with real blocks (posix_fallocate), so that a full
   * disk is an ENOSPC error here and never a SIGBUS later. `bytes` must be a multiple of the
   * db page size. New segments are mapped on demand; existing views never move. On failure the
   * error (Node-shaped, e.g. code 'ENOSPC') is thrown and `size` is unchanged.
   */
  grow(bytes: number): void;

  /**
   * Re-reads the file's size (another process may have grown it) and maps any new segments.
   * Returns the new size.
   */
  refresh(): number;

  /**
   * Makes the bytes of the given ranges durable (msync MS_SYNC on MappedStorage). Offsets and
   * lengths are byte offsets in the file, multiples of the OS page size. Ranges may cross
   * segment edges. Throws the system error on failure.
   */
  flush(ranges: readonly FlushRange[]): void;

  /**
   * Frees the file's blocks under `[offset, offset + length)` (fallocate PUNCH_HOLE on
   * MappedStorage): the range reads as zeros and the next write there allocates fresh blocks.
   * Offsets and lengths are multiples of the db page size, inside `size`. Throws the system
   * error (EOPNOTSUPP where the file system cannot punch).
   */
  discard(offset: number, length: number): void;

  /**
   * Whether the storage's path still names the file it opened: false once the file was
   * deleted or another file was renamed over its path (always true for MemoryStorage).
   */
  namesFile(): boolean;

  /** fdatasync: makes the file's size and every written byte durable. */
  sync(): void;

  /**
   * `sync` without blocking the event loop: what was written before the call is durable when
   * the promise resolves. The fault hook runs at the call (a fault rejects the promise).
   */
  syncAsync(): Promise<void>;

  /**
   * Unmaps every view and detaches it, so a stale Uint8Array reads as length 0 instead of
   * freed memory. Idempotent.
   */
  close(): void;

  /**
   * Test-only fault injection: before each grow/write/flush/sync the hook is called and may throw
   * a system error, which the operation then throws having changed nothing. `undefined`
   * removes the hook.
   */
  setFaultHook(hook: FaultHook | undefined): void;
}

/** Bytes to write at `offset`: the buffers one after the other. */
export interface PageWrite {
  offset: number;
  buffers: readonly Uint8Array[];
}

/** The writes of one `writeAsync`. */
export interface PendingWrites {
  /** Settles once the writes were made or stopped; rejects with the first failed one's error. */
  readonly done: Promise<void>;
  /**
   * Stops the writes: none is made after this returns (one under way is waited for). True
   * when every write was made in full before the stop; false when some were not (none made,
   * or one failed), and the caller must write them itself.
   */
  stop(): boolean;
}

/** A byte range of the file: `[offset, offset + length)`. */
export interface FlushRange {
  offset: number;
  length: number;
}

/** The storage operations a fault hook can fail. */
export type FaultOp = 'grow' | 'write' | 'flush' | 'sync';

/** Called before an operation; throwing fails it. */
export type FaultHook = (op: FaultOp) => void;

/** Options shared by both storage implementations. */
export interface StorageOptions {
  /** Bytes per segment; default 1 GiB for files, 1 MiB for memory. Power of two, >= 64 KiB. */
  segmentSize?: number;
}
