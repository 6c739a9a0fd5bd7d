// Every native function refuses a bad argument with a clear TypeError or RangeError, and a
// failed system call with a Node-shaped error: it never crashes the process.
import * as fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { crc32cJs } from '../../src/format/crc32c';
import { native, type NativeBinding } from '../../src/storage/native';
import { tempFolder } from '../helpers/temp-files';

const PAGE = native.pageSize();

let folder: ReturnType<typeof tempFolder>;
let file: string;
let fd: number;
let closedFd: number;
let shared: ArrayBuffer;
let readOnly: ArrayBuffer;
let unmapped: ArrayBuffer;

beforeAll(() => {
  folder = tempFolder();
  file = folder.file('data');
  fs.writeFileSync(file, Buffer.alloc(4 * PAGE));
  fd = fs.openSync(file, 'r+');
  closedFd = fs.openSync(file, 'r');
  fs.closeSync(closedFd);
  shared = native.map(fd, 0, 4 * PAGE, { write: true, shared: true });
  readOnly = native.map(fd, 0, 4 * PAGE, {});
  unmapped = native.map(fd, 0, PAGE, {});
  native.unmap(unmapped);
});

afterAll(() => {
  native.unmap(shared);
  native.unmap(readOnly);
  fs.closeSync(fd);
  folder.remove();
});

/** Calls `fn` with untyped arguments, as JavaScript callers can. */
function call(fn: (...args: any[]) => unknown, ...args: unknown[]): () => unknown {
  return () => fn(...args);
}

function expectSystemError(fn: () => unknown, code: string, syscall: string): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(Error);
  expect(caught).toMatchObject({ code, syscall });
  const { errno } = caught as { errno: unknown };
  expect(typeof errno).toBe('number');
  expect(errno as number).toBeLessThan(0);
  expect((caught as Error).message).toContain(code);
}

describe('numbers', () => {
  it.each([
    ['a negative offset', -1, /offset must be non-negative, got -1/],
    ['a NaN offset', NaN, /offset must be an integer, got NaN/],
    ['a fractional offset', 1.5, /offset must be an integer, got 1.5/],
    ['an infinite offset', Infinity, /offset must be an integer, got Infinity/],
    ['an offset above MAX_SAFE_INTEGER', 2 ** 53, /at most Number.MAX_SAFE_INTEGER/],
  ])('map refuses %s with a RangeError', (_name, offset, message) => {
    expect(call(native.map, fd, offset, PAGE, {})).toThrow(RangeError);
    expect(call(native.map, fd, offset, PAGE, {})).toThrow(message);
  });

  it('map refuses a length that is negative, NaN or fractional with a RangeError', () => {
    expect(call(native.map, fd, 0, -4096)).toThrow(/length must be non-negative/);
    expect(call(native.map, fd, 0, NaN)).toThrow(/length must be an integer/);
    expect(call(native.map, fd, 0, 0.5)).toThrow(/length must be an integer/);
  });

  it('map refuses offset + length above MAX_SAFE_INTEGER with a RangeError', () => {
    expect(call(native.map, fd, 2 ** 52, 2 ** 52)).toThrow(
      /offset \+ length must be at most Number.MAX_SAFE_INTEGER/,
    );
  });

  it('map refuses a wrong type with a TypeError naming the argument', () => {
    expect(call(native.map, '3', 0, PAGE)).toThrow(
      new TypeError('fd must be a number, got a string'),
    );
    expect(call(native.map, fd, undefined, PAGE)).toThrow(
      new TypeError('offset must be a number, got undefined'),
    );
    expect(call(native.map, fd, 0, 10n)).toThrow(
      new TypeError('length must be a number, got a bigint'),
    );
    expect(call(native.map, fd, 0, PAGE, 'rw')).toThrow(
      new TypeError('map options must be an object'),
    );
    expect(call(native.map, fd, 0, PAGE, { write: 1 })).toThrow(
      new TypeError("map option 'write' must be a boolean"),
    );
    expect(call(native.map, fd, 0, PAGE, null)).toThrow(TypeError);
  });

  it('map refuses an fd above the int range with a RangeError', () => {
    expect(call(native.map, 2 ** 31, 0, PAGE)).toThrow(RangeError);
  });

  it('fallocate refuses a zero length, and numbers that are not byte counts', () => {
    expect(call(native.fallocate, fd, 0, 0)).toThrow(
      new RangeError('fallocate length must be non-zero'),
    );
    expect(call(native.fallocate, fd, -1, 10)).toThrow(RangeError);
    expect(call(native.fallocate, fd, 0, 1.25)).toThrow(RangeError);
    expect(call(native.fallocate, fd, 2 ** 53 - 1, 1)).toThrow(RangeError);
  });
});

describe('closed file descriptors', () => {
  it('map, fallocate, fdatasync, flock, funlock and fileSize give EBADF with errno and syscall', () => {
    expectSystemError(call(native.map, closedFd, 0, PAGE, {}), 'EBADF', 'mmap');
    expectSystemError(call(native.fallocate, closedFd, 0, PAGE), 'EBADF', 'fallocate');
    expectSystemError(call(native.fdatasync, closedFd), 'EBADF', 'fdatasync');
    expectSystemError(call(native.flock, closedFd, true, false), 'EBADF', 'flock');
    expectSystemError(call(native.funlock, closedFd), 'EBADF', 'flock');
    expectSystemError(call(native.fileSize, closedFd), 'EBADF', 'fstat');
  });

  it('a writable shared mapping of a read-only descriptor gives EACCES', () => {
    const readFd = fs.openSync(file, 'r');
    try {
      expectSystemError(
        call(native.map, readFd, 0, PAGE, { write: true, shared: true }),
        'EACCES',
        'mmap',
      );
    } finally {
      fs.closeSync(readFd);
    }
  });
});

describe('views', () => {
  const viewFunctions: [string, (view: unknown) => unknown][] = [
    ['unmap', (view) => call(native.unmap, view)()],
    ['msync', (view) => call(native.msync, view, 0, PAGE, true)()],
    ['madvise', (view) => call(native.madvise, view, 0, PAGE, 'random')()],
    ['atomicLoad32', (view) => call(native.atomicLoad32, view, 0)()],
    ['atomicStore32', (view) => call(native.atomicStore32, view, 0, 1)()],
    ['atomicCas32', (view) => call(native.atomicCas32, view, 0, 0, 1)()],
    ['atomicLoad64', (view) => call(native.atomicLoad64, view, 0)()],
    ['atomicStore64', (view) => call(native.atomicStore64, view, 0, 1)()],
    ['atomicCas64', (view) => call(native.atomicCas64, view, 0, 0, 1)()],
  ];

  it.each(viewFunctions)('%s refuses an unmapped view with a TypeError', (_name, fn) => {
    expect(() => fn(unmapped)).toThrow(new TypeError('view was unmapped'));
  });

  it.each(viewFunctions)('%s refuses an ArrayBuffer not created by map()', (_name, fn) => {
    expect(() => fn(new ArrayBuffer(PAGE))).toThrow(
      new TypeError('view is not a mapping created by map()'),
    );
    expect(() => fn(Buffer.alloc(PAGE).buffer)).toThrow(TypeError);
  });

  it.each(viewFunctions)('%s refuses a value that is not an ArrayBuffer', (_name, fn) => {
    expect(() => fn(new Uint8Array(shared))).toThrow(/not a TypedArray \(pass its \.buffer\)/);
    expect(() => fn(new SharedArrayBuffer(PAGE))).toThrow(TypeError);
    expect(() => fn(undefined)).toThrow(TypeError);
    expect(() => fn({ byteLength: PAGE })).toThrow(TypeError);
  });

  it('unmap of an already unmapped view throws instead of unmapping twice', () => {
    const buffer = native.map(fd, 0, PAGE, {});
    native.unmap(buffer);
    expect(() => native.unmap(buffer)).toThrow(new TypeError('view was unmapped'));
  });
});

describe('msync and madvise ranges', () => {
  it('msync refuses a start that is not page-aligned in memory', () => {
    expect(() => native.msync(shared, 100, PAGE, true)).toThrow(RangeError);
    expect(() => native.msync(shared, 100, PAGE, true)).toThrow(/not page-aligned in memory/);
  });

  it('msync refuses a zero length and a range beyond the view', () => {
    expect(() => native.msync(shared, 0, 0, true)).toThrow(
      new RangeError('msync length must be non-zero'),
    );
    expect(() => native.msync(shared, 0, 4 * PAGE + 1, true)).toThrow(
      `msync range [0, ${4 * PAGE + 1}) is outside the view of ${4 * PAGE} bytes`,
    );
    expect(() => native.msync(shared, 5 * PAGE, PAGE, true)).toThrow(/outside the view/);
    expect(() => native.msync(shared, 3 * PAGE, 2 * PAGE, false)).toThrow(RangeError);
  });

  it('msync refuses a non-boolean sync flag', () => {
    expect(call(native.msync, shared, 0, PAGE, 1)).toThrow(
      new TypeError('sync must be a boolean, got a number'),
    );
  });

  it('madvise refuses an unknown advice, a non-string advice, and a range beyond the view', () => {
    expect(call(native.madvise, shared, 0, PAGE, 'free')).toThrow(/got 'free'/);
    expect(call(native.madvise, shared, 0, PAGE, 4)).toThrow(TypeError);
    expect(() => native.madvise(shared, 0, 0, 'normal')).toThrow(RangeError);
    expect(() => native.madvise(shared, PAGE, 4 * PAGE, 'normal')).toThrow(/outside the view/);
  });
});

describe('atomics arguments', () => {
  it('refuses offsets that are not naturally aligned in memory', () => {
    expect(() => native.atomicLoad64(shared, 4)).toThrow(
      new RangeError('atomic offset 4 is not 8-byte aligned in memory'),
    );
    expect(() => native.atomicStore64(shared, 12, 1)).toThrow(RangeError);
    expect(() => native.atomicCas64(shared, 1, 0, 1)).toThrow(RangeError);
    expect(() => native.atomicLoad32(shared, 2)).toThrow(/4-byte aligned/);
    expect(() => native.atomicStore32(shared, 6, 1)).toThrow(RangeError);
    expect(() => native.atomicCas32(shared, 3, 0, 1)).toThrow(RangeError);
  });

  it('refuses a word at or past the end of the view', () => {
    expect(() => native.atomicLoad64(shared, 4 * PAGE)).toThrow(/outside the view/);
    expect(() => native.atomicLoad64(shared, 4 * PAGE - 4)).toThrow(RangeError);
    expect(() => native.atomicLoad32(shared, 4 * PAGE)).toThrow(/outside the view/);
  });

  it('refuses stores and compare-and-swaps on a read-only view', () => {
    expect(() => native.atomicStore32(readOnly, 0, 1)).toThrow(/view is read-only/);
    expect(() => native.atomicCas64(readOnly, 0, 0, 1)).toThrow(TypeError);
    expect(native.atomicLoad64(readOnly, 0)).toBe(0);
  });

  it('refuses values outside the word: above 2^32 - 1, above MAX_SAFE_INTEGER, negative', () => {
    expect(() => native.atomicStore32(shared, 0, 2 ** 32)).toThrow(
      /value must be at most 4294967295/,
    );
    expect(() => native.atomicCas32(shared, 0, 2 ** 32, 0)).toThrow(/expected must be at most/);
    expect(() => native.atomicCas32(shared, 0, 0, -1)).toThrow(/desired must be non-negative/);
    expect(() => native.atomicStore64(shared, 0, 2 ** 53)).toThrow(RangeError);
    expect(() => native.atomicStore64(shared, 0, 0.5)).toThrow(RangeError);
    expect(call(native.atomicStore64, shared, 0, '1')).toThrow(TypeError);
  });
});

describe('flock arguments', () => {
  it('refuses non-boolean exclusive and wait flags', () => {
    expect(call(native.flock, fd, 'ex', false)).toThrow(
      new TypeError('exclusive must be a boolean, got a string'),
    );
    expect(call(native.flock, fd, true, undefined)).toThrow(
      new TypeError('wait must be a boolean, got undefined'),
    );
  });
});

describe('crc32c arguments', () => {
  const checksums: [string, NativeBinding['crc32c']][] = [
    ['crc32c', native.crc32c],
    ['crc32cTable', native.crc32cTable],
  ];
  const buf = new Uint8Array(8);

  it.each(checksums)('%s refuses a buf that is not a Uint8Array with a TypeError', (_n, fn) => {
    expect(call(fn, 'abc', 0, 0, 0)).toThrow(
      new TypeError('buf must be a Uint8Array, got a string'),
    );
    expect(call(fn, new ArrayBuffer(8), 0, 8, 0)).toThrow(
      new TypeError('buf must be a Uint8Array, got an ArrayBuffer'),
    );
    expect(call(fn, new Uint16Array(8), 0, 8, 0)).toThrow(/got a TypedArray of wider elements/);
    expect(call(fn, new Uint8ClampedArray(8), 0, 8, 0)).toThrow(/got a Uint8ClampedArray/);
    expect(call(fn, new Int8Array(8), 0, 8, 0)).toThrow(/got an Int8Array/);
    expect(call(fn, new DataView(new ArrayBuffer(8)), 0, 8, 0)).toThrow(/got a DataView/);
    expect(call(fn, [1, 2, 3], 0, 3, 0)).toThrow(/got an object/);
    expect(call(fn, undefined, 0, 0, 0)).toThrow(/got undefined/);
    expect(call(fn)).toThrow(TypeError);
  });

  it.each(checksums)('%s refuses a start, end or seed that is not a number', (_n, fn) => {
    expect(call(fn, buf, '0', 8, 0)).toThrow(new TypeError('start must be a number, got a string'));
    expect(call(fn, buf, 0, undefined, 0)).toThrow(
      new TypeError('end must be a number, got undefined'),
    );
    expect(call(fn, buf, 0, 8)).toThrow(new TypeError('seed must be a number, got undefined'));
    expect(call(fn, buf, 0, 8, 1n)).toThrow(new TypeError('seed must be a number, got a bigint'));
  });

  it.each(checksums)('%s refuses a range outside the buffer with a RangeError', (_n, fn) => {
    expect(call(fn, buf, 0, 9, 0)).toThrow(
      new RangeError('crc32c range [0, 9) is outside a buffer of 8 bytes'),
    );
    expect(call(fn, buf, 5, 4, 0)).toThrow(
      new RangeError('crc32c range [5, 4) is outside a buffer of 8 bytes'),
    );
    expect(call(fn, buf, -1, 4, 0)).toThrow(/start must be non-negative, got -1/);
    expect(call(fn, buf, 0.5, 4, 0)).toThrow(/start must be an integer, got 0.5/);
    expect(call(fn, buf, 0, NaN, 0)).toThrow(/end must be an integer, got NaN/);
    expect(call(fn, buf, 0, Infinity, 0)).toThrow(RangeError);
    expect(call(fn, buf, 0, 2 ** 53, 0)).toThrow(/at most Number.MAX_SAFE_INTEGER/);
    expect(call(fn, buf, 2 ** 40, 2 ** 40, 0)).toThrow(/is outside a buffer of 8 bytes/);
  });

  it.each(checksums)('%s refuses a seed that is not a uint32 with a RangeError', (_n, fn) => {
    expect(call(fn, buf, 0, 8, -1)).toThrow(/seed must be non-negative, got -1/);
    expect(call(fn, buf, 0, 8, 2 ** 32)).toThrow(/seed must be at most 4294967295/);
    expect(call(fn, buf, 0, 8, 1.5)).toThrow(/seed must be an integer, got 1.5/);
    expect(fn(buf, 0, 8, 2 ** 32 - 1)).toBe(crc32cJs(buf, 0, 8, 2 ** 32 - 1));
  });

  it.each(checksums)('%s reads only the view: subarrays, detached and mapped buffers', (_n, fn) => {
    const bytes = Buffer.from('xx123456789yy');
    expect(fn(bytes.subarray(2, 11), 0, 9, 0)).toBe(0xe3069283);
    expect(fn(new Uint8Array(bytes.buffer, bytes.byteOffset + 2, 9), 0, 9, 0)).toBe(0xe3069283);
    // A detached buffer has no bytes left: only the empty range is a range of it.
    const detached = new Uint8Array(new ArrayBuffer(64));
    structuredClone(detached.buffer, { transfer: [detached.buffer] });
    expect(fn(detached, 0, 0, 7)).toBe(7);
    expect(call(fn, detached, 0, 1, 0)).toThrow(/outside a buffer of 0 bytes/);
    // unmap() detaches its ArrayBuffer, so a view kept past it reads no unmapped memory.
    const view = new Uint8Array(native.map(fd, 0, PAGE, {}));
    native.unmap(view.buffer as ArrayBuffer);
    expect(call(fn, view, 0, PAGE, 0)).toThrow(/outside a buffer of 0 bytes/);
    const mapped = new Uint8Array(readOnly);
    expect(fn(mapped, 4, 4 * PAGE, 0)).toBe(crc32cJs(mapped, 4, 4 * PAGE));
  });
});
