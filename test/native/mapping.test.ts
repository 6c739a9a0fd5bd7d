import * as fs from 'node:fs';
import * as v8 from 'node:v8';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { native } from '../../src/storage/native';
import { runChild, tempFolder } from '../helpers/temp-files';

const PAGE = native.pageSize();

let folder: ReturnType<typeof tempFolder>;
let file: string;
let fd: number;

beforeEach(() => {
  folder = tempFolder();
  file = folder.file('data');
  const bytes = Buffer.alloc(4 * PAGE);
  for (let i = 0; i < bytes.length; i++) bytes[i] = i % 251;
  fs.writeFileSync(file, bytes);
  fd = fs.openSync(file, 'r+');
});

afterEach(() => {
  fs.closeSync(fd);
  folder.remove();
});

function mappingsOfFile(): number {
  return fs
    .readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .filter((line) => line.endsWith(file)).length;
}

describe('map', () => {
  it('bytes written through a shared view and msynced read back equal with fs.readFileSync', () => {
    const buffer = native.map(fd, 0, 4 * PAGE, { write: true, shared: true });
    const view = new Uint8Array(buffer);
    view.fill(0xab, PAGE, 2 * PAGE);
    native.msync(buffer, PAGE, PAGE, true);
    const onDisk = fs.readFileSync(file);
    expect(onDisk.subarray(PAGE, 2 * PAGE).every((b) => b === 0xab)).toBe(true);
    expect(onDisk[0]).toBe(0);
    native.unmap(buffer);
  });

  it('a fresh mapping in a child process reads the bytes the parent msynced', () => {
    const buffer = native.map(fd, 0, 2 * PAGE, { write: true, shared: true });
    new Uint8Array(buffer).set([1, 2, 3, 4, 5], PAGE + 10);
    native.msync(buffer, PAGE, PAGE, true);
    expect(runChild(['read', file, String(PAGE + 10), '5'])).toBe('0102030405');
    native.unmap(buffer);
  });

  it('an unaligned offset maps the bytes starting exactly at that offset', () => {
    for (const offset of [1, 7, PAGE - 1, PAGE + 13, 3 * PAGE + 100]) {
      const buffer = native.map(fd, offset, 50, {});
      expect(buffer.byteLength).toBe(50);
      const expected = Array.from({ length: 50 }, (_, i) => (offset + i) % 251);
      expect(Array.from(new Uint8Array(buffer))).toEqual(expected);
      native.unmap(buffer);
    }
  });

  it('a zero-length mapping is refused with a RangeError', () => {
    expect(() => native.map(fd, 0, 0, {})).toThrow(
      new RangeError('mapping length must be non-zero'),
    );
    expect(() => native.map(fd, 5, 0)).toThrow(RangeError);
  });

  it('a mapping may reach past the end of the file; bytes below the end read normally', () => {
    const buffer = native.map(fd, 0, 64 * PAGE, { populate: true });
    expect(buffer.byteLength).toBe(64 * PAGE);
    expect(new Uint8Array(buffer)[4 * PAGE - 1]).toBe((4 * PAGE - 1) % 251);
    native.unmap(buffer);
  });

  it('a read-only private view sees later writes made through a shared view (it is no snapshot)', () => {
    const reader = native.map(fd, 0, PAGE, {});
    const writer = native.map(fd, 0, PAGE, { write: true, shared: true, noReserve: true });
    expect(new Uint8Array(reader)[0]).toBe(0);
    new Uint8Array(writer)[0] = 99;
    expect(new Uint8Array(reader)[0]).toBe(99);
    native.unmap(reader);
    native.unmap(writer);
  });

  it('a private writable view keeps its writes out of the file', () => {
    const buffer = native.map(fd, 0, PAGE, { write: true });
    new Uint8Array(buffer)[0] = 200;
    expect(new Uint8Array(buffer)[0]).toBe(200);
    expect(fs.readFileSync(file)[0]).toBe(0);
    native.unmap(buffer);
  });

  it('a mapping longer than one Uint8Array can view is refused before anything is mapped', () => {
    const before = mappingsOfFile();
    for (const length of [2 ** 32 + 1, 2 ** 33]) {
      expect(() => native.map(fd, 0, length, { noReserve: true })).toThrow(
        new RangeError('mapping length must be at most 4294967296 bytes'),
      );
    }
    expect(mappingsOfFile()).toBe(before);
    const buffer = native.map(fd, 0, PAGE, {});
    expect(new Uint8Array(buffer)[1]).toBe(1);
    native.unmap(buffer);
  });
  it("is not charged to V8's external memory, which would make V8 collect garbage at every open", () => {
    // A database maps 1 GiB segments; a backing store V8 charges counts in full toward its
    // external-memory limit (the old napi_create_external_arraybuffer path added 1 GiB here).
    const before = v8.getHeapStatistics().external_memory;
    const buffer = native.map(fd, 0, 2 ** 30, { noReserve: true });
    expect(buffer.byteLength).toBe(2 ** 30);
    expect(v8.getHeapStatistics().external_memory - before).toBeLessThan(2 ** 20);
    expect(new Uint8Array(buffer)[PAGE + 1]).toBe((PAGE + 1) % 251);
    native.unmap(buffer);
  });
});

describe('unmap', () => {
  it('detaches the ArrayBuffer so every view over it reads length 0', () => {
    const buffer = native.map(fd, 0, PAGE, { write: true, shared: true });
    const bytes = new Uint8Array(buffer);
    const words = new Uint32Array(buffer, 8, 4);
    native.unmap(buffer);
    expect(buffer.byteLength).toBe(0);
    expect(bytes.length).toBe(0);
    expect(words.length).toBe(0);
    expect(bytes[0]).toBeUndefined();
    bytes[0] = 1; // a write to a detached view is dropped, not a fault
    expect(() => new DataView(buffer)).toThrow(TypeError);
  });

  it('removes the mapping from the process', () => {
    const before = mappingsOfFile();
    const buffer = native.map(fd, 0, PAGE, {});
    expect(mappingsOfFile()).toBe(before + 1);
    native.unmap(buffer);
    expect(mappingsOfFile()).toBe(before);
  });

  it('mapping and unmapping many times over reused addresses stays correct', () => {
    for (let i = 0; i < 2000; i++) {
      const buffer = native.map(fd, PAGE, PAGE, {});
      expect(new Uint8Array(buffer)[0]).toBe(PAGE % 251);
      native.unmap(buffer);
    }
  });

  it('a mapping dropped without unmap is unmapped by its finalizer, and never twice', () => {
    const report = JSON.parse(runChild(['finalize', file], ['--expose-gc'])) as {
      before: number;
      whileHeld: number;
      afterCollect: number;
      keptFirstByte: number;
    };
    expect(report.whileHeld).toBe(report.before + 20);
    expect(report.afterCollect).toBe(report.before + 1); // only the kept mapping is left
    expect(report.keptFirstByte).toBe(0);
  });
});

describe('msync', () => {
  it('flushes a page-aligned range synchronously and asynchronously', () => {
    const buffer = native.map(fd, 0, 4 * PAGE, { write: true, shared: true });
    new Uint8Array(buffer).fill(7, 0, 2 * PAGE);
    native.msync(buffer, 0, PAGE, false);
    native.msync(buffer, PAGE, PAGE + 1, true); // a length past a page edge covers its page
    expect(
      fs
        .readFileSync(file)
        .subarray(0, 2 * PAGE)
        .every((b) => b === 7),
    ).toBe(true);
    native.unmap(buffer);
  });

  it('accepts an offset that is page-aligned in memory inside an unaligned view', () => {
    const buffer = native.map(fd, 100, 3 * PAGE, { write: true, shared: true });
    new Uint8Array(buffer)[PAGE - 100] = 42; // file offset PAGE
    native.msync(buffer, PAGE - 100, PAGE, true);
    expect(fs.readFileSync(file)[PAGE]).toBe(42);
    expect(() => native.msync(buffer, 0, PAGE, true)).toThrow(/not page-aligned/);
    native.unmap(buffer);
  });
});

describe('madvise', () => {
  it('accepts each advice value over a whole view and an unaligned part of it', () => {
    const buffer = native.map(fd, 10, 3 * PAGE, {});
    for (const advice of ['normal', 'random', 'sequential', 'willneed', 'dontneed'] as const) {
      native.madvise(buffer, 0, 3 * PAGE, advice);
      native.madvise(buffer, 17, 100, advice);
    }
    // dontneed on a clean view drops its pages; they read back from the file
    expect(new Uint8Array(buffer)[0]).toBe(10);
    native.unmap(buffer);
  });
});
