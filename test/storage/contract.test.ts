// The Storage contract, proved on both implementations: the engine runs the same on each.
import { afterEach, describe, expect, it } from 'vitest';

import { MapKVError, systemError } from '../../src/errors';
import { MappedStorage } from '../../src/storage/mapped';
import { MemoryStorage } from '../../src/storage/memory';
import { native } from '../../src/storage/native';
import type { Storage } from '../../src/storage/storage';
import { tempFolder } from '../helpers/temp-files';

const SEGMENT = 64 * 1024;
const PAGE = native.pageSize();

interface Implementation {
  name: string;
  create(options?: { readOnly?: boolean }): Storage;
}

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

const implementations: Implementation[] = [
  {
    name: 'MappedStorage',
    create(options = {}) {
      const folder = tempFolder();
      const path = folder.file('db');
      if (options.readOnly) {
        const writer = MappedStorage.open(path, { segmentSize: SEGMENT });
        writer.grow(3 * SEGMENT);
        writer.writeSegment(1)[5] = 9;
        writer.close();
      }
      const storage = MappedStorage.open(path, { segmentSize: SEGMENT, ...options });
      cleanups.push(() => {
        storage.close();
        folder.remove();
      });
      return storage;
    },
  },
  {
    name: 'MemoryStorage',
    create(options = {}) {
      if (!options.readOnly) return new MemoryStorage({ segmentSize: SEGMENT });
      const image = new Uint8Array(3 * SEGMENT);
      image[SEGMENT + 5] = 9;
      return MemoryStorage.fromImage(image, { segmentSize: SEGMENT, readOnly: true });
    },
  },
];

function expectCode(fn: () => unknown, code: string): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(Error);
  expect((caught as { code?: string }).code).toBe(code);
}

describe.each(implementations)('$name', ({ create }) => {
  it('starts empty and grows to the requested size', () => {
    const storage = create();
    expect(storage.size).toBe(0);
    expect(storage.segmentSize).toBe(SEGMENT);
    storage.grow(2 * PAGE);
    expect(storage.size).toBe(2 * PAGE);
    storage.grow(PAGE); // never shrinks
    expect(storage.size).toBe(2 * PAGE);
    expect(storage.refresh()).toBe(2 * PAGE);
  });

  it('a write through the write view is visible through the read view at once', () => {
    const storage = create();
    storage.grow(SEGMENT);
    storage.writeSegment(0).set([1, 2, 3], 100);
    expect(Array.from(storage.readSegment(0).subarray(100, 103))).toEqual([1, 2, 3]);
  });

  it('returns the same view object on every call', () => {
    const storage = create();
    storage.grow(2 * SEGMENT);
    expect(storage.readSegment(1)).toBe(storage.readSegment(1));
    expect(storage.writeSegment(1)).toBe(storage.writeSegment(1));
    expect(storage.readSegment(0).length).toBe(SEGMENT);
  });

  it('growth across 40 segment edges keeps every earlier byte and every earlier view', () => {
    const storage = create();
    const reads: Uint8Array[] = [];
    const writes: Uint8Array[] = [];
    for (let segments = 1; segments <= 40; segments++) {
      // grow in steps that end inside a segment, then at its edge
      storage.grow(segments * SEGMENT - SEGMENT / 2);
      storage.grow(segments * SEGMENT);
      const i = segments - 1;
      reads.push(storage.readSegment(i));
      writes.push(storage.writeSegment(i));
      writes[i].fill(i + 1, 0, 16);
      writes[i][SEGMENT - 1] = i + 1;
      for (let j = 0; j <= i; j++) {
        expect(storage.readSegment(j)).toBe(reads[j]);
        expect(storage.writeSegment(j)).toBe(writes[j]);
        expect(reads[j][0]).toBe(j + 1);
        expect(reads[j][15]).toBe(j + 1);
        expect(reads[j][SEGMENT - 1]).toBe(j + 1);
        expect(reads[j][16]).toBe(0);
      }
    }
    expect(storage.size).toBe(40 * SEGMENT);
  });

  it('refuses segments at or past the size with a RangeError', () => {
    const storage = create();
    expect(() => storage.readSegment(0)).toThrow(RangeError);
    storage.grow(SEGMENT);
    expect(() => storage.readSegment(1)).toThrow(RangeError);
    expect(() => storage.writeSegment(-1)).toThrow(RangeError);
    expect(() => storage.readSegment(0.5)).toThrow(RangeError);
  });

  it('grow refuses a byte count that is negative, fractional or NaN', () => {
    const storage = create();
    expect(() => storage.grow(-1)).toThrow(RangeError);
    expect(() => storage.grow(1.5)).toThrow(RangeError);
    expect(() => storage.grow(NaN)).toThrow(RangeError);
  });

  it('flush accepts page-aligned ranges across segment edges and refuses others', () => {
    const storage = create();
    storage.grow(3 * SEGMENT);
    storage.writeSegment(0).fill(1);
    storage.writeSegment(1).fill(2);
    storage.flush([
      { offset: SEGMENT - PAGE, length: 2 * PAGE },
      { offset: 0, length: 3 * SEGMENT },
      { offset: PAGE, length: 0 },
    ]);
    storage.flush([]);
    expect(() => storage.flush([{ offset: 100, length: PAGE }])).toThrow(/not aligned/);
    expect(() => storage.flush([{ offset: 0, length: 100 }])).toThrow(RangeError);
    expect(() => storage.flush([{ offset: 3 * SEGMENT, length: PAGE }])).toThrow(/passes the end/);
    expect(() => storage.flush([{ offset: -PAGE, length: PAGE }])).toThrow(RangeError);
    storage.sync();
  });

  it('writeAt writes its buffers back to back, across segment edges, seen by the views at once', () => {
    const storage = create();
    storage.grow(3 * SEGMENT);
    const a = new Uint8Array(PAGE + 3).fill(4);
    const b = new Uint8Array(2 * PAGE).fill(5);
    const at = SEGMENT - PAGE;
    storage.writeAt(at, [a, b, new Uint8Array(0)]);
    const seg0 = storage.readSegment(0);
    const seg1 = storage.readSegment(1);
    expect(seg0[at - 1]).toBe(0);
    expect(seg0.subarray(at).every((x) => x === 4)).toBe(true);
    expect(seg1.subarray(0, 3).every((x) => x === 4)).toBe(true);
    expect(seg1.subarray(3, 3 + 2 * PAGE).every((x) => x === 5)).toBe(true);
    expect(seg1[3 + 2 * PAGE]).toBe(0);
    expect(storage.writeSegment(1)[3]).toBe(5);
    storage.writeAt(3 * SEGMENT - 1, [new Uint8Array([7])]);
    expect(storage.readSegment(2)[SEGMENT - 1]).toBe(7);
    storage.writeAt(3 * SEGMENT, []);
    expect(() => storage.writeAt(3 * SEGMENT - 1, [new Uint8Array(2)])).toThrow(/passes the end/);
    expect(() => storage.writeAt(-1, [a])).toThrow(RangeError);
    expect(() => storage.writeAt(0.5, [a])).toThrow(RangeError);
    storage.setFaultHook((op) => {
      if (op === 'write') throw systemError('EIO', 'pwritev', storage.path);
    });
    expectCode(() => storage.writeAt(0, [b]), 'EIO');
    expect(seg0[0]).toBe(0);
    storage.sync();
  });

  it('flush of bytes written only with writeAt works on a segment no view was asked for', () => {
    const storage = create();
    storage.grow(3 * SEGMENT);
    // Segment 2's write view is mapped lazily (MappedStorage): flush must not depend on it.
    storage.writeAt(2 * SEGMENT, [new Uint8Array(PAGE).fill(6)]);
    storage.flush([{ offset: 2 * SEGMENT, length: PAGE }]);
    expect(storage.readSegment(2)[0]).toBe(6);
  });

  it('close detaches every view it handed out, is idempotent, and later calls throw ERR_CLOSED', () => {
    const storage = create();
    storage.grow(2 * SEGMENT);
    const read = storage.readSegment(1);
    const write = storage.writeSegment(0);
    write[0] = 5;
    storage.close();
    expect(read.length).toBe(0);
    expect(write.length).toBe(0);
    expect(write[0]).toBeUndefined();
    storage.close();
    expectCode(() => storage.readSegment(0), 'ERR_CLOSED');
    expectCode(() => storage.writeSegment(0), 'ERR_CLOSED');
    expectCode(() => storage.writeAt(0, [new Uint8Array(1)]), 'ERR_CLOSED');
    expectCode(() => storage.grow(3 * SEGMENT), 'ERR_CLOSED');
    expectCode(() => storage.refresh(), 'ERR_CLOSED');
    expectCode(() => storage.flush([]), 'ERR_CLOSED');
    expectCode(() => storage.sync(), 'ERR_CLOSED');
    expect(() => storage.readSegment(0)).toThrow(MapKVError);
  });

  it('a read-only storage reads, and refuses writeSegment, writeAt, grow, flush and sync with ERR_READ_ONLY', () => {
    const storage = create({ readOnly: true });
    expect(storage.readOnly).toBe(true);
    expect(storage.size).toBe(3 * SEGMENT);
    expect(storage.readSegment(1)[5]).toBe(9);
    expectCode(() => storage.writeSegment(0), 'ERR_READ_ONLY');
    expectCode(() => storage.writeAt(0, [new Uint8Array(1)]), 'ERR_READ_ONLY');
    expect(storage.readSegment(0)[0]).toBe(0);
    expectCode(() => storage.grow(4 * SEGMENT), 'ERR_READ_ONLY');
    expectCode(() => storage.flush([]), 'ERR_READ_ONLY');
    expectCode(() => storage.sync(), 'ERR_READ_ONLY');
    expect(storage.refresh()).toBe(3 * SEGMENT);
  });

  it('an ENOSPC injected during growth reaches the caller and leaves the size as it was', () => {
    const storage = create();
    storage.grow(SEGMENT);
    const ops: string[] = [];
    storage.setFaultHook((op) => {
      ops.push(op);
      if (op === 'grow') throw systemError('ENOSPC', 'fallocate', storage.path);
    });
    expectCode(() => storage.grow(4 * SEGMENT), 'ENOSPC');
    expect(storage.size).toBe(SEGMENT);
    expect(() => storage.readSegment(1)).toThrow(RangeError);
    storage.flush([{ offset: 0, length: PAGE }]);
    storage.sync();
    expect(ops).toEqual(['grow', 'flush', 'sync']);
    storage.setFaultHook(undefined);
    storage.grow(4 * SEGMENT);
    expect(storage.size).toBe(4 * SEGMENT);
    expect(storage.readSegment(3).length).toBe(SEGMENT);
  });

  it('a fault injected into flush or sync reaches the caller', () => {
    const storage = create();
    storage.grow(SEGMENT);
    storage.setFaultHook((op) => {
      throw systemError('EIO', op === 'flush' ? 'msync' : 'fdatasync');
    });
    expectCode(() => storage.flush([{ offset: 0, length: PAGE }]), 'EIO');
    expectCode(() => storage.sync(), 'EIO');
    expectCode(() => storage.grow(2 * SEGMENT), 'EIO');
    expect(storage.size).toBe(SEGMENT);
  });
});
