import * as fs from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { native } from '../../src/storage/native';
import { runChild, tempFolder } from '../helpers/temp-files';

const PAGE = native.pageSize();

let folder: ReturnType<typeof tempFolder>;
let file: string;
let fd: number;
let first: ArrayBuffer;
let second: ArrayBuffer;

beforeEach(() => {
  folder = tempFolder();
  file = folder.file('lock');
  fs.writeFileSync(file, Buffer.alloc(PAGE));
  fd = fs.openSync(file, 'r+');
  // Two MAP_SHARED mappings of the same page, as two processes map the lock file.
  first = native.map(fd, 0, PAGE, { write: true, shared: true });
  second = native.map(fd, 0, PAGE, { write: true, shared: true });
});

afterEach(() => {
  native.unmap(first);
  native.unmap(second);
  fs.closeSync(fd);
  folder.remove();
});

describe('32-bit atomics', () => {
  it('a store through one shared mapping is loaded through another', () => {
    native.atomicStore32(first, 16, 0xdeadbeef);
    expect(native.atomicLoad32(second, 16)).toBe(0xdeadbeef);
    expect(new DataView(second).getUint32(16, true)).toBe(0xdeadbeef);
  });

  it('compare-and-swap sets the word only when it holds the expected value', () => {
    native.atomicStore32(first, 4, 7);
    expect(native.atomicCas32(second, 4, 8, 9)).toBe(false);
    expect(native.atomicLoad32(first, 4)).toBe(7);
    expect(native.atomicCas32(second, 4, 7, 2 ** 32 - 1)).toBe(true);
    expect(native.atomicLoad32(first, 4)).toBe(2 ** 32 - 1);
  });
});

describe('64-bit atomics', () => {
  it('a store through one shared mapping is loaded through another, up to MAX_SAFE_INTEGER', () => {
    native.atomicStore64(first, 8, Number.MAX_SAFE_INTEGER);
    expect(native.atomicLoad64(second, 8)).toBe(Number.MAX_SAFE_INTEGER);
    expect(new DataView(second).getBigUint64(8, true)).toBe(BigInt(Number.MAX_SAFE_INTEGER));
    native.atomicStore64(second, 8, 0);
    expect(native.atomicLoad64(first, 8)).toBe(0);
  });

  it('compare-and-swap sets the word only when it holds the expected value', () => {
    native.atomicStore64(first, 24, 2 ** 40 + 3);
    expect(native.atomicCas64(second, 24, 2 ** 40, 1)).toBe(false);
    expect(native.atomicLoad64(first, 24)).toBe(2 ** 40 + 3);
    expect(native.atomicCas64(second, 24, 2 ** 40 + 3, 12345)).toBe(true);
    expect(native.atomicLoad64(first, 24)).toBe(12345);
  });

  it('a compare-and-swap in a child process is seen here and reaches the file', () => {
    native.atomicStore64(first, 32, 41);
    const report = JSON.parse(runChild(['cas64', file, '32', '41', '42'])) as {
      swapped: boolean;
      value: number;
    };
    expect(report).toEqual({ swapped: true, value: 42 });
    expect(native.atomicLoad64(first, 32)).toBe(42);
    expect(fs.readFileSync(file).readBigUInt64LE(32)).toBe(42n);
    const failed = JSON.parse(runChild(['cas64', file, '32', '41', '43'])) as { swapped: boolean };
    expect(failed.swapped).toBe(false);
    expect(native.atomicLoad64(second, 32)).toBe(42);
  });

  it('loading a stored value above MAX_SAFE_INTEGER is a RangeError, not a rounded number', () => {
    new DataView(first).setBigUint64(40, 2n ** 64n - 1n, true);
    expect(() => native.atomicLoad64(second, 40)).toThrow(/above Number.MAX_SAFE_INTEGER/);
  });

  it('words in a view that starts at an unaligned file offset are aligned by address', () => {
    const shifted = native.map(fd, 4, PAGE - 4, { write: true, shared: true });
    try {
      // file offset 16 is view offset 12: aligned in memory, since the page is
      native.atomicStore64(shifted, 12, 77);
      expect(native.atomicLoad64(first, 16)).toBe(77);
      expect(() => native.atomicLoad64(shifted, 8)).toThrow(RangeError);
    } finally {
      native.unmap(shifted);
    }
  });
});

describe('fence', () => {
  it('is a callable full barrier between a store and a load', () => {
    native.atomicStore32(first, 0, 1);
    expect(native.fence()).toBeUndefined();
    expect(native.atomicLoad32(second, 0)).toBe(1);
  });
});
