// writeAsync makes pwritev calls on a thread-pool thread; stopWrites stops those not made yet.
import * as fs from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { native } from '../../src/storage/native';
import { tempFolder } from '../helpers/temp-files';

let folder: ReturnType<typeof tempFolder>;
let file: string;
let fd: number;

beforeEach(() => {
  folder = tempFolder();
  file = folder.file('data');
  fd = fs.openSync(file, 'w+');
  fs.ftruncateSync(fd, 65536);
});

afterEach(() => {
  fs.closeSync(fd);
  folder.remove();
});

/**
 * Keeps every I/O thread of the addon (those of writeAsync) busy for a while: work queued
 * after these waits. Resolves when they are done.
 */
function occupyIoThreads(): Promise<unknown> {
  const jobs: Promise<unknown>[] = [];
  // 300 ms each: the tests need only that they outlast a few synchronous statements.
  for (let i = 0; i < native.ioThreads; i++) jobs.push(native.ioSleep(300)!);
  return Promise.all(jobs);
}

/** writeAsync's offsets and counts, from plain numbers. */
function at(...offsets: number[]): Float64Array {
  return Float64Array.from(offsets);
}
function n(...counts: number[]): Uint32Array {
  return Uint32Array.from(counts);
}

/** A full garbage collection (the `gc` a `--expose-gc` flag would give). */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

describe('writeAsync', () => {
  it('makes each call at its offset, with its buffers one after the other', async () => {
    const a = Buffer.alloc(4096, 1);
    const b = Buffer.alloc(4096, 2);
    // A view into the middle of a larger buffer, and an empty one: only their bytes go in.
    const c = Buffer.alloc(300, 9).fill(3, 100, 200).subarray(100, 200);
    const empty = new Uint8Array(0);
    const { done, job } = native.writeAsync(fd, [a, b, empty, c], at(4096, 32768), n(2, 2))!;
    await expect(done).resolves.toBeUndefined();
    const got = fs.readFileSync(file);
    expect(got.subarray(0, 4096).every((x) => x === 0)).toBe(true);
    expect(got.subarray(4096, 8192).every((x) => x === 1)).toBe(true);
    expect(got.subarray(8192, 12288).every((x) => x === 2)).toBe(true);
    expect(got.subarray(12288, 32768).every((x) => x === 0)).toBe(true);
    expect(got.subarray(32768, 32868).every((x) => x === 3)).toBe(true);
    expect(got.subarray(32868).every((x) => x === 0)).toBe(true);
    // Every call was made: a stop now says so, and changes nothing.
    expect(native.stopWrites(job)).toBe(true);
    expect(native.stopWrites(job)).toBe(true);
    // A call of empty buffers only writes nothing, and succeeds.
    await expect(native.writeAsync(fd, [empty], at(0), n(1))!.done).resolves.toBeUndefined();
    expect(fs.readFileSync(file).equals(got)).toBe(true);
  });

  it('makes no call once stopped before a thread took it up', async () => {
    const busy = occupyIoThreads();
    const { done, job } = native.writeAsync(fd, [Buffer.alloc(4096, 7)], at(0), n(1))!;
    expect(native.stopWrites(job)).toBe(false);
    await busy;
    await expect(done).resolves.toBeUndefined();
    expect(fs.readFileSync(file).every((x) => x === 0)).toBe(true);
  });

  it("keeps writing buffers the caller let go of: the job holds them, not the caller's array", async () => {
    const busy = occupyIoThreads();
    // 1 MiB: the allocator maps it on its own, so a freed buffer would leave unmapped memory
    // (pwritev then fails with EFAULT) rather than stale bytes.
    const buffers = [new Uint8Array(1 << 20).fill(5)];
    fs.ftruncateSync(fd, 1 << 20);
    const { done } = native.writeAsync(fd, buffers, at(0), n(1))!;
    buffers.length = 0;
    for (let i = 0; i < 3; i++) collectGarbage();
    await busy;
    await expect(done).resolves.toBeUndefined();
    expect(fs.readFileSync(file).every((x) => x === 5)).toBe(true);
  });

  it('keeps writing a buffer an element getter made: the job holds what it read', async () => {
    const busy = occupyIoThreads();
    // Each read of element 0 makes a new buffer that nothing else references. 40 MiB: above
    // the largest size glibc serves from its heap (32 MiB, however far freed mappings raised
    // the threshold), so once freed the buffer's memory is unmapped, not left with its bytes.
    const size = 40 << 20;
    fs.ftruncateSync(fd, size);
    const buffers: Uint8Array[] = [];
    Object.defineProperty(buffers, 0, {
      get: () => new Uint8Array(size).fill(6),
      enumerable: true,
    });
    const { done } = native.writeAsync(fd, buffers, at(0), n(1))!;
    for (let i = 0; i < 3; i++) collectGarbage();
    await busy;
    await expect(done).resolves.toBeUndefined();
    expect(fs.readFileSync(file).every((x) => x === 6)).toBe(true);
  });

  it('reads offsets and counts after the buffers: a getter that detaches them gets an error', () => {
    // 40 MiB each (see above): once detached and collected, their memory is unmapped, so a
    // read of what the getter freed would crash the process rather than find stale numbers.
    const calls = 5 << 20;
    const offsets = new Float64Array(calls);
    const counts = new Uint32Array(calls).fill(1);
    const page = Buffer.alloc(16);
    const buffers: Uint8Array[] = [];
    Object.defineProperty(buffers, 0, {
      get: () => {
        structuredClone(offsets.buffer, { transfer: [offsets.buffer] });
        structuredClone(counts.buffer, { transfer: [counts.buffer] });
        for (let i = 0; i < 3; i++) collectGarbage();
        return page;
      },
      enumerable: true,
    });
    const writeAsync = native.writeAsync as (...args: unknown[]) => unknown;
    expect(() => writeAsync(fd, buffers, offsets, counts)).toThrow(RangeError);
    expect(offsets.length).toBe(0);
  });

  it('rejects with the system error of a failed call', async () => {
    const other = fs.openSync(file, 'r');
    fs.closeSync(other);
    const { done, job } = native.writeAsync(other, [Buffer.alloc(16)], at(0), n(1))!;
    await expect(done).rejects.toMatchObject({ code: 'EBADF', syscall: 'pwritev' });
    expect(native.stopWrites(job)).toBe(false);
  });

  it('refuses bad arguments with a TypeError or RangeError, queueing nothing', () => {
    const page = Buffer.alloc(4096);
    const bad: Array<[unknown[], ErrorConstructor]> = [
      [[-1, [page], at(0), n(1)], RangeError],
      [[fd, page, at(0), n(1)], TypeError],
      [[fd, [page], 0, n(1)], TypeError],
      [[fd, [page], at(0), 1], TypeError],
      // Plain arrays, and typed arrays of another type, are not taken for offsets and counts.
      [[fd, [page], [0], n(1)], TypeError],
      [[fd, [page], at(0), [1]], TypeError],
      [[fd, [page], Uint32Array.of(0), n(1)], TypeError],
      [[fd, [page], at(0), Float64Array.of(1)], TypeError],
      [[fd, [page], at(0, 1), n(1)], RangeError],
      [[fd, [new Uint16Array(4)], at(0), n(1)], TypeError],
      [[fd, ['page'], at(0), n(1)], TypeError],
      [[fd, [{ length: 4096 }], at(0), n(1)], TypeError],
      [[fd, [page], at(-1), n(1)], RangeError],
      [[fd, [page], at(0.5), n(1)], RangeError],
      [[fd, [page], at(NaN), n(1)], RangeError],
      [[fd, [page], at(Infinity), n(1)], RangeError],
      [[fd, [page], at(2 ** 53), n(1)], RangeError],
      [[fd, [page], at(2 ** 64), n(1)], RangeError],
      [[fd, [page], at(0), n(0)], RangeError],
      [[fd, [page], at(0), n(2)], RangeError],
      [[fd, [page], at(0), n(1025)], RangeError],
      [[fd, [page, page], at(0), n(1)], RangeError],
      [[fd, [page], at(2 ** 53 - 2), n(1)], RangeError],
    ];
    const writeAsync = native.writeAsync as (...args: unknown[]) => unknown;
    for (const [args, type] of bad) expect(() => writeAsync(...args)).toThrow(type);
    const stopWrites = native.stopWrites as (...args: unknown[]) => unknown;
    for (const job of [undefined, {}, 1, null, 'job']) {
      expect(() => stopWrites(job)).toThrow(TypeError);
    }
  });
});
