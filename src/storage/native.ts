/**
 * The native addon (`native/`, built by node-gyp to `build/Release/mapkv.node`): the system
 * calls JavaScript cannot make, and nothing above them, plus the page checksum (CRC-32C with the
 * CPU's crc32 instruction), which JavaScript computes ten times slower.
 *
 * Every function validates its arguments and throws a `TypeError` (wrong type, not a mapping,
 * unmapped view, read-only view) or a `RangeError` (negative, NaN, non-integer, above
 * `Number.MAX_SAFE_INTEGER`, zero length, out of the view, misaligned) rather than crash the
 * process. A failed system call throws a Node-shaped {@link NativeSystemError}: `code`
 * ('ENOSPC'), `errno` (negative, as in Node's own errors: -28) and `syscall` ('fallocate').
 *
 * A mapping is an external `ArrayBuffer` created by {@link NativeBinding.map}. It stays mapped
 * until {@link NativeBinding.unmap} (which also detaches it, so every view over it reads length
 * 0) or until it is garbage-collected (its finalizer unmaps it). The addon recognises its own
 * ArrayBuffers by a type tag plus a registry of live mappings keyed by data pointer.
 */
import { createRequire } from 'node:module';

/** Options of {@link NativeBinding.map}; each defaults to false. */
export interface MapOptions {
  /** PROT_READ | PROT_WRITE; otherwise PROT_READ only (stores through the view fault). */
  write?: boolean;
  /** MAP_SHARED; otherwise MAP_PRIVATE (copy-on-write, never written back). */
  shared?: boolean;
  /** MAP_POPULATE: fault the file's pages in at once (warm start). */
  populate?: boolean;
  /** MAP_NORESERVE: reserve no swap for the mapping. */
  noReserve?: boolean;
}

/** The advice values {@link NativeBinding.madvise} accepts (MADV_*). */
export type Advice = 'normal' | 'random' | 'sequential' | 'willneed' | 'dontneed';

/** The error a failed system call throws, shaped like Node's own system errors. */
export interface NativeSystemError extends Error {
  /** The errno name: 'ENOSPC', 'EBADF', ... */
  code: string;
  /** The negated errno value, as Node reports it: -28 for ENOSPC. */
  errno: number;
  /** The system call that failed: 'mmap', 'msync', 'fallocate', ... */
  syscall: string;
}

/** The addon's exports. */
export interface NativeBinding {
  /** The OS page size in bytes (sysconf(_SC_PAGESIZE)). */
  pageSize(): number;

  /**
   * Maps `length` bytes of `fd` from file offset `offset` (which need not be page-aligned:
   * the addon maps from the page holding it and the buffer starts at `offset`). A zero length
   * is a RangeError. Bytes past the end of the file are mapped but must never be touched
   * (SIGBUS): the caller keeps every access below the file's size.
   */
  map(fd: number, offset: number, length: number, options?: MapOptions): ArrayBuffer;

  /** Unmaps a mapping and detaches its ArrayBuffer. Throws a TypeError if already unmapped. */
  unmap(view: ArrayBuffer): void;

  /**
   * msync of `[offset, offset + length)` of the view, MS_SYNC when `sync` else MS_ASYNC. The
   * start must be page-aligned in memory (`offset` is relative to the view's first byte);
   * `length` > 0 and the range lies inside the view.
   */
  msync(view: ArrayBuffer, offset: number, length: number, sync: boolean): void;

  /** madvise of the pages holding `[offset, offset + length)` of the view. */
  madvise(view: ArrayBuffer, offset: number, length: number, advice: Advice): void;

  /**
   * posix_fallocate: real blocks for `[offset, offset + length)`, extending the file when the
   * range passes its end. A full disk throws ENOSPC; on failure some blocks may stay allocated
   * and the size may have changed (the caller restores it). `length` > 0.
   */
  fallocate(fd: number, offset: number, length: number): void;

  /**
   * fallocate(PUNCH_HOLE | KEEP_SIZE): frees the blocks of `[offset, offset + length)`, which
   * then read as zeros; the size does not change. `length` > 0. EOPNOTSUPP where the file
   * system cannot punch.
   */
  punchHole(fd: number, offset: number, length: number): void;

  /** fdatasync: the file's data and size reach the disk. */
  fdatasync(fd: number): void;
  /**
   * fdatasync on an I/O thread of the addon's: the promise settles when the flush is done (or
   * rejects with the system error). Keep `fd` open until it settles. Undefined, with nothing
   * started, when the calling thread's JavaScript is being ended (a worker terminated).
   */
  fdatasyncAsync(fd: number): Promise<void> | undefined;

  /**
   * pwritev calls on an I/O thread of the addon's (not libuv's pool: see native/iothreads.cc),
   * in order: call i writes the next `counts[i]`
   * buffers one after the other at byte `offsets[i]` (at most 1,024 buffers and 0x7ffff000
   * bytes per call). `done` settles once they were made or stopped, rejecting with the first
   * error; the buffers stay referenced until then and must not change. Keep `fd` open until
   * it settles. Undefined, with nothing started, when the calling thread's JavaScript is being
   * ended (a worker terminated). Offsets and counts come as typed arrays, read in one step
   * each: a commit makes a call per run of adjacent pages, often one per page.
   */
  writeAsync(
    fd: number,
    buffers: Uint8Array[],
    offsets: Float64Array,
    counts: Uint32Array,
  ): { done: Promise<void>; job: unknown } | undefined;
  /**
   * Tests only: occupies one of the addon's I/O threads (the threads of writeAsync and
   * fdatasyncAsync) for `ms` milliseconds (0 to 10,000). With `ioThreads` of these queued,
   * work queued after them waits for a thread.
   */
  ioSleep(ms: number): Promise<void> | undefined;
  /** How many I/O threads an environment (the main thread, a worker) runs at most. */
  readonly ioThreads: number;
  /**
   * Stops the calls of a writeAsync job: none is made after this returns (calls under way are
   * waited for). True when every call had been made in full.
   */
  stopWrites(job: unknown): boolean;

  /**
   * flock with LOCK_EX (exclusive) or LOCK_SH, plus LOCK_NB when `wait` is false. Returns true
   * when taken, false when `wait` is false and a conflicting lock is held by another open file
   * description. EINTR is retried.
   */
  flock(fd: number, exclusive: boolean, wait: boolean): boolean;

  /** flock(LOCK_UN): releases this open file description's lock (a no-op when none). */
  funlock(fd: number): void;

  /** The file's size in bytes (fstat). */
  fileSize(fd: number): number;

  /** Sequentially consistent load of the aligned uint32 at `offset` of the view. */
  atomicLoad32(view: ArrayBuffer, offset: number): number;
  /** Sequentially consistent store of a uint32 (`value` in [0, 2^32 - 1]); writable view. */
  atomicStore32(view: ArrayBuffer, offset: number, value: number): void;
  /** Compare-and-swap of a uint32; returns true when the word held `expected` and was set. */
  atomicCas32(view: ArrayBuffer, offset: number, expected: number, desired: number): boolean;

  /**
   * Sequentially consistent load of the 8-aligned uint64 at `offset`. A stored value above
   * `Number.MAX_SAFE_INTEGER` is a RangeError rather than a rounded number.
   */
  atomicLoad64(view: ArrayBuffer, offset: number): number;
  /** Sequentially consistent store of a uint64 in [0, Number.MAX_SAFE_INTEGER]. */
  atomicStore64(view: ArrayBuffer, offset: number, value: number): void;
  /** Compare-and-swap of a uint64; returns true when the word held `expected` and was set. */
  atomicCas64(view: ArrayBuffer, offset: number, expected: number, desired: number): boolean;

  /** A sequentially consistent thread fence. */
  fence(): void;

  /**
   * The CRC-32C of `buf[start, end)` continuing from `seed` (the checksum of the bytes before;
   * 0 for none), as an unsigned 32-bit integer: the same result as `crc32cJs` in
   * `format/crc32c.ts`, with the CPU's SSE4.2 crc32 instruction when it has one, else a table.
   * `start` and `end` are integers with `0 <= start <= end <= buf.length` (else a RangeError,
   * a TypeError when not numbers); `seed` is an integer in [0, 2^32 - 1]; `buf` is a
   * Uint8Array (a Buffer is one).
   */
  crc32c(buf: Uint8Array, start: number, end: number, seed: number): number;
  /** {@link NativeBinding.crc32c} with the portable table loop on every CPU (for tests). */
  crc32cTable(buf: Uint8Array, start: number, end: number, seed: number): number;
}

// Relative to this file, the path holds from both src/storage (tests) and dist/storage.
const requireAddon = createRequire(__filename);

/** The loaded addon. */
export const native = requireAddon('../../build/Release/mapkv.node') as NativeBinding;
