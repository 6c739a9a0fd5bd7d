import * as fs from 'node:fs';
import * as os from 'node:os';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { MappedStorage } from '../../src/storage/mapped';
import { native } from '../../src/storage/native';
import { runChild, tempFolder } from '../helpers/temp-files';
import { spyOnWritev } from '../helpers/writev-spy';

const SEGMENT = 64 * 1024;
const PAGE = native.pageSize();
const EXT4_SUPER_MAGIC = 0xef53;

let folder: ReturnType<typeof tempFolder>;
let path: string;
const opened: MappedStorage[] = [];

function open(options: Parameters<typeof MappedStorage.open>[1] = {}): MappedStorage {
  const storage = MappedStorage.open(path, { segmentSize: SEGMENT, ...options });
  opened.push(storage);
  return storage;
}

beforeEach(() => {
  folder = tempFolder();
  path = folder.file('db');
});

afterEach(() => {
  for (const storage of opened.splice(0)) storage.close();
  folder.remove();
});

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
}

describe('open', () => {
  it('creates a missing file, empty, and exposes its path and descriptor', () => {
    const storage = open();
    expect(fs.existsSync(path)).toBe(true);
    expect(storage.size).toBe(0);
    expect(storage.path).toBe(path);
    expect(fs.fstatSync(storage.fd).size).toBe(0);
  });

  it('read-only open of a missing file fails with ENOENT and creates nothing', () => {
    expect(codeOf(() => open({ readOnly: true }))).toBe('ENOENT');
    expect(fs.existsSync(path)).toBe(false);
  });

  it.each([
    ['not a power of two', { segmentSize: 3 * SEGMENT }],
    ['below 64 KiB', { segmentSize: 32 * 1024 }],
    ['not an integer', { segmentSize: SEGMENT + 0.5 }],
    ['larger than an ArrayBuffer can be', { segmentSize: 2 ** 40 }],
    ['an unknown advice', { advice: 'willneed' as 'random' }],
    ['a non-boolean readOnly', { readOnly: 'yes' as unknown as boolean }],
  ])('refuses a segment size or option that is %s with ERR_BAD_OPTION', (_name, options) => {
    expect(codeOf(() => open(options))).toBe('ERR_BAD_OPTION');
    expect(fs.existsSync(path)).toBe(false);
  });

  it('defaults to 1 GiB segments', () => {
    const storage = MappedStorage.open(path);
    opened.push(storage);
    expect(storage.segmentSize).toBe(2 ** 30);
    storage.grow(PAGE);
    expect(storage.readSegment(0).length).toBe(2 ** 30);
  });

  it('maps an existing file with populate and sequential advice and reads its bytes', () => {
    const bytes = Buffer.alloc(2 * SEGMENT + PAGE, 3);
    fs.writeFileSync(path, bytes);
    const storage = open({ populate: true, advice: 'sequential', readOnly: true });
    expect(storage.size).toBe(2 * SEGMENT + PAGE);
    expect(storage.readSegment(2).length).toBe(SEGMENT); // the view reaches past the file's end
    expect(storage.readSegment(2)[PAGE - 1]).toBe(3);
    expect(storage.readSegment(0)[0]).toBe(3);
  });
});

describe('durability through the file', () => {
  it('flushed bytes across a segment edge are in the file and seen by a child process', () => {
    const storage = open();
    storage.grow(2 * SEGMENT);
    storage.writeSegment(0).fill(0xaa, SEGMENT - PAGE);
    storage.writeSegment(1).fill(0xbb, 0, PAGE);
    storage.flush([{ offset: SEGMENT - PAGE, length: 2 * PAGE }]);
    const file = fs.readFileSync(path);
    expect(file.length).toBe(2 * SEGMENT);
    expect(file.subarray(SEGMENT - PAGE, SEGMENT).every((b) => b === 0xaa)).toBe(true);
    expect(file.subarray(SEGMENT, SEGMENT + PAGE).every((b) => b === 0xbb)).toBe(true);
    expect(runChild(['read', path, String(SEGMENT - 2), '4'])).toBe('aaaabbbb');
  });

  it('bytes written before close are there when the file is opened again', () => {
    const storage = open();
    storage.grow(3 * SEGMENT);
    storage.writeSegment(2).set([4, 5, 6], 10);
    storage.flush([{ offset: 2 * SEGMENT, length: PAGE }]);
    storage.sync();
    storage.close();
    const again = open({ readOnly: true });
    expect(again.size).toBe(3 * SEGMENT);
    expect(Array.from(again.readSegment(2).subarray(10, 13))).toEqual([4, 5, 6]);
  });

  it('writeAt goes out in pieces of at most writePiece bytes, splitting a buffer as needed', () => {
    const storage = open();
    storage.grow(2 * SEGMENT);
    const piece = MappedStorage.writePiece;
    // A piece limit of 3 bytes makes every kind of cut happen in a few bytes (the real one,
    // 1 GiB, needs a value of over 2 GiB to matter: MAPKV_SOAK runs that in values.test.ts).
    MappedStorage.writePiece = 3;
    const { calls, restore } = spyOnWritev();
    try {
      const buffers = [[1], [2, 3, 4, 5, 6, 7, 8], [], [9, 10], [11]].map((b) =>
        Uint8Array.from(b),
      );
      storage.writeAt(100, buffers);
    } finally {
      MappedStorage.writePiece = piece;
      restore();
    }
    expect(calls).toEqual([3, 3, 3, 2]);
    expect(Array.from(fs.readFileSync(path).subarray(99, 113))).toEqual([
      0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0, 0,
    ]);
  });

  it('writeAt with a unit writes at most that many bytes per call, whole buffers or not', () => {
    const storage = open();
    storage.grow(2 * SEGMENT);
    const { calls, restore } = spyOnWritev();
    const piece = MappedStorage.writePiece;
    try {
      const buffers = [[1, 2], [3, 4, 5, 6, 7], [8], [9, 10, 11]].map((b) => Uint8Array.from(b));
      storage.writeAt(200, buffers, 4);
      expect(calls).toEqual([4, 4, 3]);
      // The writePiece bound still holds under a larger unit.
      calls.length = 0;
      MappedStorage.writePiece = 5;
      storage.writeAt(300, buffers, 8);
      expect(calls).toEqual([5, 5, 1]);
      // Under the unit: one call, as without one.
      calls.length = 0;
      MappedStorage.writePiece = piece;
      storage.writeAt(400, buffers, 11);
      expect(calls).toEqual([11]);
    } finally {
      MappedStorage.writePiece = piece;
      restore();
    }
    const bytes = fs.readFileSync(path);
    const expected = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
    for (const at of [200, 300, 400]) {
      expect(Array.from(bytes.subarray(at, at + 11))).toEqual(expected);
    }
  });

  it('writeAt refuses a unit that is not a positive integer, writing nothing', () => {
    const storage = open();
    storage.grow(SEGMENT);
    for (const unit of [0, -4096, 1.5, NaN]) {
      expect(() => storage.writeAt(0, [Uint8Array.of(1)], unit)).toThrow(RangeError);
    }
    expect(fs.readFileSync(path)[0]).toBe(0);
  });

  it('close unmaps every view and closes the descriptor', () => {
    const storage = open();
    storage.grow(SEGMENT);
    const fd = storage.fd;
    const view = storage.readSegment(0);
    storage.close();
    expect(view.length).toBe(0);
    expect(codeOf(() => fs.fstatSync(fd))).toBe('EBADF');
  });
});

describe('refresh', () => {
  it('notices growth by another handle, maps the new segments and sees its bytes', () => {
    const writer = open();
    const reader = open({ readOnly: true });
    writer.grow(SEGMENT);
    expect(() => reader.readSegment(0)).toThrow(RangeError); // not refreshed yet
    expect(reader.refresh()).toBe(SEGMENT);
    const view = reader.readSegment(0);
    writer.grow(5 * SEGMENT);
    writer.writeSegment(4)[7] = 44;
    writer.writeSegment(0)[7] = 11;
    expect(reader.refresh()).toBe(5 * SEGMENT);
    expect(reader.readSegment(0)).toBe(view);
    expect(view[7]).toBe(11); // the private view is no snapshot: it sees the shared write
    expect(reader.readSegment(4)[7]).toBe(44);
  });
});

describe('grow failures', () => {
  it('an ENOSPC from the fault hook leaves the file exactly as long as before', () => {
    const storage = open();
    storage.grow(SEGMENT);
    storage.setFaultHook((op) => {
      if (op === 'grow') {
        throw Object.assign(new Error('ENOSPC: no space left on device'), {
          code: 'ENOSPC',
          syscall: 'fallocate',
        });
      }
    });
    expect(codeOf(() => storage.grow(2 * SEGMENT))).toBe('ENOSPC');
    expect(fs.statSync(path).size).toBe(SEGMENT);
    expect(storage.size).toBe(SEGMENT);
    storage.setFaultHook(undefined);
    storage.grow(2 * SEGMENT);
    expect(fs.statSync(path).size).toBe(2 * SEGMENT);
  });

  it.runIf(fs.statfsSync(os.tmpdir()).type === EXT4_SUPER_MAGIC)(
    'a real fallocate failure carries code, syscall and path, and leaves size and file unchanged',
    () => {
      const storage = open();
      storage.grow(SEGMENT);
      storage.writeSegment(0)[0] = 1;
      let caught: unknown;
      try {
        storage.grow(2 ** 50);
      } catch (err) {
        caught = err;
      }
      expect(caught).toMatchObject({ syscall: 'fallocate', path });
      expect(['EFBIG', 'ENOSPC']).toContain((caught as { code: string }).code);
      expect(storage.size).toBe(SEGMENT);
      expect(fs.statSync(path).size).toBe(SEGMENT);
      expect(() => storage.readSegment(1)).toThrow(RangeError);
      storage.grow(2 * SEGMENT);
      expect(storage.readSegment(0)[0]).toBe(1);
      expect(storage.size).toBe(2 * SEGMENT);
    },
  );
});
